// Cross-origin embedding: a page on one site (server A) loads twinscene.js from another
// (server B, another port: another origin) and gets B's scene, mesh, bundle and live data.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { openViewer, setTemperature, startServer, waitForReady, waitForState, withDiagnostics } from './harness.mjs';

let site;
let twins;
let viewer;
let webDir;
const diagnostics = {};

after(async () => {
  await viewer?.close();
  await site?.stop();
  await twins?.stop();
  if (webDir) await rm(webDir, { recursive: true, force: true });
});

test('a page on another origin embeds the viewer with one script tag and follows live data', { timeout: 240_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    twins = await startServer();
    diagnostics.server = twins;
    webDir = await mkdtemp(path.join(tmpdir(), 'twinscene-site-'));
    await writeFile(
      path.join(webDir, 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>another site</title>
       <script type="module" src="${twins.url}/twinscene.js"></script>
       <twin-scene style="width: 100%; height: 100vh"></twin-scene>`,
    );
    site = await startServer({ extraArgs: ['--web', webDir] });
    assert.notEqual(new URL(site.url).origin, new URL(twins.url).origin);

    viewer = await openViewer(site.url);
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await waitForReady(page);
    await waitForState(page, () => window.twinscene.live === 'live');
    const elements = await page.evaluate(() => Object.keys(window.twinscene.elements).length);
    assert.ok(elements > 30, `the other server's scene is shown (${elements} elements)`);

    const target = await page.evaluate(() => Object.entries(window.twinscene.elements).find(([id]) => id.startsWith('room-')));
    const before = target[1].color;
    await setTemperature(twins.url, target[1].twin, before === '#dc2626' ? 10 : 35);
    await waitForState(page, ([id, color]) => window.twinscene.elements[id].color !== color, [target[0], before]);
    viewer.assertNoPanics();
  }),
);
