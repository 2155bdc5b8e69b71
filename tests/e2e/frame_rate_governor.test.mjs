// A large model seen from afar trades far detail for frame rate (src/detail_levels.rs): while
// the viewer draws fewer frames a second than the page's `min-fps`, the sparse far levels start
// where a cell is more pixels tall, a step of half a pixel per second of slow frames, from 2 up
// to 4. A page asking for 1,000 fps (which no frame of the duplex tiled 4×4 reaches) must see
// the published `farDetailPixels` climb through every step to 4 and stay there, with the model
// still drawn in its style colors and no panic; a page with `min-fps="0"` keeps 2 through
// seconds of the same slow frames (the default, 10, would coarsen them on a software renderer).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  REPO_ROOT, framesLater, openViewer, saturatedPixels, startServer, waitForReady, waitForState, withDiagnostics,
} from './harness.mjs';

const SCENE = 'target/facility/duplex-4x4/scene.json';

let server;
let viewer;
let pageDir;

/** A page whose viewer has the given `min-fps`. */
function pageWith(minFps) {
  return `<!doctype html><meta charset="utf-8"><title>min-fps ${minFps}</title>
    <script type="module" src="/twinscene.js"></script>
    <twin-scene live="off" min-fps="${minFps}" style="display: block; width: 100%; height: 100vh"></twin-scene>`;
}

/** Records in the page every `farDetailPixels` the viewer publishes (`window.cellSizesSeen`). */
function recordCellSizes(page) {
  return page.evaluate(() => {
    window.cellSizesSeen = [];
    const record = () => {
      const pixels = window.twinscene?.farDetailPixels;
      if (pixels != null && window.cellSizesSeen.at(-1) !== pixels) window.cellSizesSeen.push(pixels);
      requestAnimationFrame(record);
    };
    record();
  });
}

const diagnostics = {};

after(async () => {
  await viewer?.close();
  await server?.stop();
  if (pageDir) await rm(pageDir, { recursive: true, force: true });
});

test('below the page\'s min-fps the far levels coarsen step by step up to 4-pixel cells', { timeout: 300_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    execFileSync('cargo', ['xtask', 'gen-facility', '--source', 'assets/duplex.glb', '--tiles', '4'], { cwd: REPO_ROOT, stdio: 'pipe' });
    pageDir = await mkdtemp(path.join(tmpdir(), 'twinscene-governor-'));
    await copyFile(path.join(REPO_ROOT, 'web', 'twinscene.js'), path.join(pageDir, 'twinscene.js'));
    await writeFile(path.join(pageDir, 'index.html'), pageWith(0));
    await writeFile(path.join(pageDir, 'coarse.html'), pageWith(1000));
    server = await startServer({ scene: SCENE, extraArgs: ['--web', pageDir] });
    diagnostics.server = server;

    // No minimum: the finest far detail, however slow the frames (each second of them is one
    // of the governor's windows).
    viewer = await openViewer(server.url);
    diagnostics.viewer = viewer;
    await recordCellSizes(viewer.page);
    await waitForReady(viewer.page);
    await waitForState(viewer.page, () => window.twinscene.farDetailPixels != null);
    await framesLater(viewer.page, 15, 5);
    assert.deepEqual(await viewer.page.evaluate(() => window.cellSizesSeen), [2], 'min-fps 0 keeps 2-pixel cells');
    viewer.assertNoPanics();
    await viewer.close();

    viewer = await openViewer(server.url, { path: '/coarse.html' });
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await recordCellSizes(page);
    await waitForReady(page);
    await waitForState(page, () => window.twinscene.farDetailPixels === 4, null, 120_000);
    // Settled: more slow frames change nothing.
    await framesLater(page, 10, 2);
    const seen = await page.evaluate(() => window.cellSizesSeen);
    assert.deepEqual(seen, [2, 2.5, 3, 3.5, 4], 'one half-pixel step at a time, never past 4');

    // Still drawn in the rules' colors.
    const colored = await saturatedPixels(page);
    assert.ok(colored > 500, `only ${colored} sampled pixels show a style color`);
    viewer.assertNoPanics();
  }),
);
