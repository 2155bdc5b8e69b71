// Embedding: two <twin-scene> elements on one page run independently; the element's events
// tell a page what happens; a deep link restores selection and layers and follows the user.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { openViewer, setTemperature, startServer, waitForState, withDiagnostics } from './harness.mjs';

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function setUp(pagePath) {
  const server = await startServer();
  cleanup.push(() => server.stop());
  const viewer = await openViewer(server.url, { path: pagePath });
  cleanup.push(() => viewer.close());
  return { server, viewer, page: viewer.page };
}

const patchTemperature = (server, twin, value) => setTemperature(server.url, twin, value);

const stateOf = (id) => `document.getElementById(${JSON.stringify(id)}).state`;

test('two viewers on one page each load and follow their own data', { timeout: 300_000 }, async () => {
  const { server, viewer, page } = await setUp('/examples/two-viewers.html');
  await withDiagnostics({ server, viewer }, async () => {
    await waitForState(page, `${stateOf('live')}?.ready && ${stateOf('live')}.live === 'live' && ${stateOf('static')}?.ready`, null, 240_000);
    assert.equal(await page.evaluate(`${stateOf('static')}.live`), 'off');
    await page.evaluate(() => document.getElementById('static').select('room-a101'));
    await waitForState(page, `${stateOf('static')}.selected === 'room-a101'`);
    assert.equal(await page.evaluate(`${stateOf('live')}.selected`), null, 'selection stays in its viewer');

    await patchTemperature(server, 'Room-A102', 33);
    await waitForState(page, `${stateOf('live')}.elements['room-a102'].color === '#dc2626'`);
    assert.notEqual(await page.evaluate(`${stateOf('static')}.elements['room-a102'].color`), '#dc2626',
      "the viewer without live data keeps the file's values");
    viewer.assertNoPanics();
  });
});

test('the element tells the page about readiness, selection and alerts', { timeout: 300_000 }, async () => {
  const { server, viewer, page } = await setUp('/examples/dashboard.html');
  await withDiagnostics({ server, viewer }, async () => {
    const seen = (type, text = '') =>
      `[...document.querySelectorAll('#events li[data-type="${type}"]')].some((li) => li.textContent.includes(${JSON.stringify(text)}))`;
    await waitForState(page, seen('ready'), null, 240_000);
    await waitForState(page, seen('live-status', '"status":"live"'));
    await page.evaluate(() => document.getElementById('viewer').select('room-b101'));
    await waitForState(page, seen('select', '"element":"room-b101"'));
    await patchTemperature(server, 'Room-B101', 35);
    await waitForState(page, seen('alert', '"element":"room-b101"'));
    await patchTemperature(server, 'Room-B101', 20);
    await waitForState(page, seen('alert-cleared', '"element":"room-b101"'));
    const twin = await page.evaluate(() => document.getElementById('viewer').getTwin('Room-B101'));
    assert.equal(twin.temperature, 20);
    viewer.assertNoPanics();
  });
});

test('a deep link restores selection and layers, and the URL follows the selection', { timeout: 300_000 }, async () => {
  const { server, viewer, page } = await setUp('/?selected=room-a101&layers=alarms');
  await withDiagnostics({ server, viewer }, async () => {
    await waitForState(page, () => window.twinscene?.selected === 'room-a101', null, 240_000);
    await waitForState(page, () => window.twinscene.layers.find((l) => l.id === 'temperature')?.visible === false);
    assert.equal(await page.evaluate(() => window.twinscene.elements['room-a101'].color), null);
    await page.evaluate(() => document.querySelector('twin-scene').select('room-b102'));
    await waitForState(page, () => new URL(location.href).searchParams.get('selected') === 'room-b102');
    viewer.assertNoPanics();
  });
});
