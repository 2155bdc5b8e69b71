// Large scenes: above `screen-positions-up-to` elements the viewer publishes screen positions
// only where the page draws something (alerts, stale markers, selection, hover, search
// results), and every publish rewrites only the element entries that changed, in one
// `elements` object the page keeps. The demo scene (38 elements) stands in for a large one by
// setting the limit to 5.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { REPO_ROOT, openViewer, setTemperature, startServer, waitForReady, waitForState, withDiagnostics } from './harness.mjs';

const LIMIT = 5;
let server;
let viewer;
let webDir;
const diagnostics = {};

after(async () => {
  await viewer?.close();
  await server?.stop();
  if (webDir) await rm(webDir, { recursive: true, force: true });
});

/** Element ids with and without a published screen position. */
const positioned = () => {
  const state = window.twinscene;
  const ids = Object.keys(state.elements);
  return {
    with: ids.filter((id) => state.elements[id].screen !== null),
    without: ids.filter((id) => state.elements[id].screen === null),
    alerting: state.alerts.map((alert) => alert.element),
    count: state.elementCount,
  };
};

test('above the limit only alerting and selected elements get screen positions, and entries change in place', { timeout: 300_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    webDir = await mkdtemp(path.join(tmpdir(), 'twinscene-large-'));
    await copyFile(path.join(REPO_ROOT, 'web', 'twinscene.js'), path.join(webDir, 'twinscene.js'));
    await writeFile(
      path.join(webDir, 'index.html'),
      `<!doctype html><meta charset="utf-8"><title>large scene</title>
       <script type="module" src="/twinscene.js"></script>
       <twin-scene screen-positions-up-to="${LIMIT}" style="display: block; width: 100%; height: 100vh"></twin-scene>`,
    );
    server = await startServer({ extraArgs: ['--web', webDir] });
    diagnostics.server = server;
    viewer = await openViewer(server.url);
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await waitForReady(page);
    await waitForState(page, () => window.twinscene.live === 'live');

    const start = await page.evaluate(positioned);
    assert.ok(start.count > LIMIT, `the demo has more than ${LIMIT} elements (${start.count})`);
    assert.equal(start.with.length + start.without.length, start.count, 'every element is published');
    assert.deepEqual(start.with.sort(), [...start.alerting].sort(), 'exactly the alerting elements have screen positions');

    // An element that starts alerting gets a position; the elements object stays the same one.
    const quiet = await page.evaluate(() => {
      window.keptElements = window.twinscene.elements;
      const state = window.twinscene;
      return Object.entries(state.elements).find(([id, e]) => id.startsWith('room-') && e.badges.length === 0 && e.screen === null);
    });
    assert.ok(quiet, 'a room without alert and without position');
    const [quietId, quietElement] = quiet;
    await setTemperature(server.url, quietElement.twin, 35);
    await waitForState(page, (id) => window.twinscene.alerts.some((alert) => alert.element === id), quietId);
    await waitForState(page, (id) => window.twinscene.elements[id].screen !== null, quietId);
    assert.ok(await page.evaluate(() => window.twinscene.elements === window.keptElements), 'one elements object, updated in place');

    // When it stops alerting it loses its position again.
    await setTemperature(server.url, quietElement.twin, 20);
    await waitForState(page, (id) => window.twinscene.elements[id].screen === null, quietId);

    // The selection is positioned while selected.
    await page.evaluate((id) => document.querySelector('twin-scene').select(id), quietId);
    await waitForState(page, (id) => window.twinscene.selected === id && window.twinscene.elements[id].screen !== null, quietId);
    const badgeNodes = await page.evaluate(() => document.querySelector('twin-scene').shadowRoot.querySelectorAll('[data-alert-element]').length);
    assert.ok(badgeNodes > 0, 'alert badges are drawn from the positioned elements');
    viewer.assertNoPanics();
  }),
);
