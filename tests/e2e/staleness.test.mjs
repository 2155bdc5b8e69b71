// Per-element staleness: with `staleAfterSeconds` in the scene, an element whose twin was written
// once and then went quiet is marked stale (element state, marker on the canvas, inspector note)
// and the global indicator says "stale"; the next write makes it fresh again. Twins that were
// never written (walls, slabs) are never marked. The page's `stale-markers-up-to` bounds the
// stale elements listed and marked (a facility whose data goes quiet at once has 10^5 of them);
// the count and each element's own flag still cover them all.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  REPO_ROOT, VIEWPORT, countHue, openViewer, readTwinscene, setTemperature, startServer, waitForReady, waitForState, withDiagnostics,
} from './harness.mjs';

const STALE_AFTER_SECONDS = 3;

let server;
let viewer;
let sceneDir;
const diagnostics = {};

after(async () => {
  await viewer?.close();
  await server?.stop();
  if (sceneDir) await rm(sceneDir, { recursive: true, force: true });
});

test('a twin that goes quiet is shown stale, and fresh again after its next write', { timeout: 240_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    const demo = JSON.parse(await readFile(path.join(REPO_ROOT, 'scenes/demo.json'), 'utf8'));
    sceneDir = await mkdtemp(path.join(tmpdir(), 'twinscene-stale-'));
    const scenePath = path.join(sceneDir, 'stale.json');
    await writeFile(
      scenePath,
      JSON.stringify({ ...demo, mesh: path.join(REPO_ROOT, 'assets/duplex.glb'), staleAfterSeconds: STALE_AFTER_SECONDS }),
    );
    const rooms = demo.elements.filter((e) => demo.twins.some((t) => t.$dtId === e.twin && typeof t.temperature === 'number'));
    assert.ok(rooms.length >= 2, 'the demo scene has two elements bound to twins with a temperature');
    // In scene order: the first is the one listed when only one may be.
    const [room, other] = rooms;
    await copyFile(path.join(REPO_ROOT, 'web', 'twinscene.js'), path.join(sceneDir, 'twinscene.js'));
    await writeFile(
      path.join(sceneDir, 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>staleness</title>
       <script type="module" src="/twinscene.js"></script>
       <twin-scene stale-markers-up-to="1" style="display: block; width: 100%; height: 100vh"></twin-scene>`,
    );

    server = await startServer({ scene: scenePath, extraArgs: ['--web', sceneDir] });
    diagnostics.server = server;
    viewer = await openViewer(server.url);
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await waitForReady(page);
    await waitForState(page, () => window.twinscene.live === 'live');
    assert.equal(await readTwinscene(page, (ts) => ts.staleAfterSeconds), STALE_AFTER_SECONDS);

    await setTemperature(server.url, room.twin, 21.5);
    await setTemperature(server.url, other.twin, 21.5);
    // Written just now: fresh, then stale once the configured age has passed.
    await waitForState(page, (id) => window.twinscene.elements[id]?.stale === true, room.id, 60_000);
    await waitForState(page, () => window.twinscene.staleCount === 2, null, 30_000);
    const stale = await readTwinscene(page, (ts) =>
      Object.entries(ts.elements).filter(([, e]) => e.stale).map(([id]) => id).sort());
    assert.deepEqual(stale, [room.id, other.id].sort(), 'only the elements whose twins were written and went quiet are stale');
    assert.deepEqual(await readTwinscene(page, (ts) => ts.staleElements), [room.id], 'one listed, the first in scene order');
    const markers = await page.evaluate(() => [...document.querySelector('twin-scene').shadowRoot
      .querySelectorAll('[data-stale-element]')].map((node) => node.getAttribute('data-stale-element')));
    assert.ok(markers.every((id) => id === room.id), `only the listed element is marked: ${markers}`);
    await waitForState(page, () => document.querySelector('twin-scene').dataset.live === 'stale');
    const statusText = await page.evaluate(
      () => document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="status-text"]').textContent);
    assert.match(statusText, /2 stale/);

    // The listed one turns fresh: the other takes its place in the list.
    await setTemperature(server.url, room.twin, 22.0);
    await waitForState(page, (id) => window.twinscene.staleElements.length === 1 && window.twinscene.staleElements[0] === id, other.id, 30_000);
    assert.equal(await readTwinscene(page, (ts) => ts.staleCount), 1);

    await waitForState(page, (id) => window.twinscene.elements[id]?.stale === true, room.id, 60_000);

    await page.evaluate((id) => document.querySelector('twin-scene').select(id), room.id);
    await waitForState(page, () =>
      Boolean(document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="stale"]')));

    await setTemperature(server.url, room.twin, 22.5);
    await setTemperature(server.url, other.twin, 22.5);
    await waitForState(page, (id) => window.twinscene.elements[id]?.stale === false, room.id, 30_000);
    await waitForState(page, () => document.querySelector('twin-scene').dataset.live === 'live');
    assert.equal(await readTwinscene(page, (ts) => ts.staleCount), 0);

    // On the model a stale element keeps little of its color (its data is not to be trusted):
    // every room gone quiet shows a faded gray, and its color again once written.
    const writeAll = async () => {
      for (const element of rooms) await setTemperature(server.url, element.twin, 21.5);
    };
    const nextFrame = () => page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    const canvas = { x: 0, y: 0, ...VIEWPORT };
    await writeAll();
    await waitForState(page, (count) => window.twinscene.staleCount === count, rooms.length, 30_000);
    // Every write is applied by now: the rooms' most common color is the one to look for.
    const elements = await readTwinscene(page, (ts) => ts.elements);
    const tally = new Map();
    for (const element of rooms) tally.set(elements[element.id].color, (tally.get(elements[element.id].color) ?? 0) + 1);
    const [color] = [...tally].filter(([c]) => c).sort((a, b) => b[1] - a[1])[0];
    await nextFrame();
    const faded = await countHue(page, color, canvas);
    await writeAll();
    await waitForState(page, () => window.twinscene.staleCount === 0, null, 30_000);
    await nextFrame();
    const fresh = await countHue(page, color, canvas);
    assert.ok(fresh > 1000, `${fresh} pixels have the rooms' color ${color} while they are fresh`);
    assert.ok(faded < fresh / 10, `stale rooms are drawn faded: ${faded} pixels of ${color}, ${fresh} when fresh`);
    viewer.assertNoPanics();
  }),
);
