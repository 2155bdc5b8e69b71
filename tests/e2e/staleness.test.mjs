// Per-element staleness: with `staleAfterSeconds` in the scene, an element whose twin was written
// once and then went quiet is marked stale (element state, marker on the canvas, inspector note)
// and the global indicator says "stale"; the next write makes it fresh again. Twins that were
// never written (walls, slabs) are never marked.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { REPO_ROOT, openViewer, readTwinscene, setTemperature, startServer, waitForReady, waitForState, withDiagnostics } from './harness.mjs';

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
    const room = demo.elements.find((e) => demo.twins.some((t) => t.$dtId === e.twin && typeof t.temperature === 'number'));
    assert.ok(room, 'the demo scene has an element bound to a twin with a temperature');

    server = await startServer({ scene: scenePath });
    diagnostics.server = server;
    viewer = await openViewer(server.url);
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await waitForReady(page);
    await waitForState(page, () => window.twinscene.live === 'live');
    assert.equal(await readTwinscene(page, (ts) => ts.staleAfterSeconds), STALE_AFTER_SECONDS);

    await setTemperature(server.url, room.twin, 21.5);
    // Written just now: fresh, then stale once the configured age has passed.
    await waitForState(page, (id) => window.twinscene.elements[id]?.stale === true, room.id, 60_000);
    const stale = await readTwinscene(page, (ts) =>
      Object.entries(ts.elements).filter(([, e]) => e.stale).map(([id]) => id));
    assert.deepEqual(stale, [room.id], 'only the element whose twin was written and went quiet is stale');
    assert.equal(await readTwinscene(page, (ts) => ts.staleCount), 1);
    await waitForState(page, () => document.querySelector('twin-scene').dataset.live === 'stale');
    const statusText = await page.evaluate(
      () => document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="status-text"]').textContent);
    assert.match(statusText, /1 stale/);

    await page.evaluate((id) => document.querySelector('twin-scene').select(id), room.id);
    await waitForState(page, () =>
      Boolean(document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="stale"]')));

    await setTemperature(server.url, room.twin, 22.5);
    await waitForState(page, (id) => window.twinscene.elements[id]?.stale === false, room.id, 30_000);
    await waitForState(page, () => document.querySelector('twin-scene').dataset.live === 'live');
    assert.equal(await readTwinscene(page, (ts) => ts.staleCount), 0);
    viewer.assertNoPanics();
  }),
);
