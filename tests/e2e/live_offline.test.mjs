// When the server goes away, the viewer keeps showing the last state, says that live data is
// offline with a countdown to the next attempt, and never panics.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { openViewer, readTwinscene, startServer, waitForReady, withDiagnostics } from './harness.mjs';

let server;
let viewer;
const diagnostics = {};

after(async () => {
  await viewer?.close();
  await server?.stop();
});

test('a stopped server shows the offline banner with a retry countdown', { timeout: 180_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    server = await startServer();
    diagnostics.server = server;
    viewer = await openViewer(server.url);
    diagnostics.viewer = viewer;
    const { page } = viewer;
    await waitForReady(page);
    await page.waitForFunction(() => window.twinscene.live === 'live', null, { polling: 100, timeout: 60_000 });
    const colorsBefore = await readTwinscene(page, (ts) => Object.values(ts.elements).map((e) => e.color));

    await server.stop();
    await page.waitForFunction(() => window.twinscene.live === 'offline', null, { polling: 100, timeout: 60_000 });
    const retry = await readTwinscene(page, (ts) => ts.liveRetryInMs);
    assert.ok(retry >= 500 && retry <= 30_000, `next attempt within the backoff bounds: ${retry} ms`);
    const bannerText = () => document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="banner"]');
    await page.waitForFunction(
      `(${bannerText})().classList.contains('open') && /offline.*(retrying in \\d+ s|retrying now)/.test((${bannerText})().textContent)`,
      null,
      { polling: 100, timeout: 10_000 },
    );
    // The last known state stays on screen.
    assert.deepEqual(await readTwinscene(page, (ts) => Object.values(ts.elements).map((e) => e.color)), colorsBefore);
    viewer.assertNoPanics();
  }),
);
