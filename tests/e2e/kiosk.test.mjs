// Kiosk mode (web/examples/kiosk.html): no controls, a tour through the scene's viewpoints, and
// a new alert interrupts the tour: the camera flies to the element and holds, then the tour goes on.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { REPO_ROOT, readTwinscene, setTemperature, useViewer, waitForReady, waitForState, withDiagnostics } from './harness.mjs';

const DWELL_SECONDS = 2;
const HOLD_SECONDS = 3;

const context = useViewer({ path: `/examples/kiosk.html?dwell=${DWELL_SECONDS}&hold=${HOLD_SECONDS}` });

test('a kiosk tours the viewpoints, flies to a new alert, holds, then tours on', { timeout: 240_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { server, viewer } = context;
    const { page } = viewer;
    const toolbarShown = await page.evaluate(
      () => getComputedStyle(document.querySelector("twin-scene").shadowRoot.querySelector(".toolbar")).display !== "none");
    assert.equal(toolbarShown, false, 'a kiosk shows no controls');

    // The tour visits the scene's viewpoints in order.
    const viewpoints = await readTwinscene(page, (ts) => ts.viewpoints.map((v) => v.id));
    assert.ok(viewpoints.length >= 2, 'the demo scene has viewpoints to tour');
    await waitForState(page, () => Boolean(document.querySelector('twin-scene').dataset.kioskView));
    const first = await page.evaluate(() => document.querySelector('twin-scene').dataset.kioskView);
    const next = viewpoints[(viewpoints.indexOf(first) + 1) % viewpoints.length];
    await waitForState(page, (id) => document.querySelector('twin-scene').dataset.kioskView === id, next, 30_000);

    // A room overheats: the kiosk flies to it and holds.
    const demo = JSON.parse(await readFile(path.join(REPO_ROOT, 'scenes/demo.json'), 'utf8'));
    const room = demo.elements.find((e) => e.id.startsWith('room-'));
    await setTemperature(server.url, room.twin, 35);
    await waitForState(page, (id) => window.twinscene.elements[id]?.badges.length > 0, room.id);
    await waitForState(page, () => document.querySelector('twin-scene').dataset.kiosk === 'alert');
    await waitForState(page, (id) => window.twinscene.selected === id, room.id);
    // After the hold, the tour resumes and lets go of the alert's element.
    await waitForState(page, () => document.querySelector('twin-scene').dataset.kiosk === 'tour', undefined, 30_000);
    await waitForState(page, () => window.twinscene.selected === null);
    assert.ok((await page.evaluate(() => document.querySelector('twin-scene').frameCount)) > 0, 'the viewer reports its frames');
    viewer.assertNoPanics();
  }),
);

test('the watchdog reloads a kiosk whose viewer stops producing frames', { timeout: 240_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    // A short watchdog, and a viewer whose frame counter stands still from now on.
    await page.evaluate(() => {
      const host = document.querySelector('twin-scene');
      host.setAttribute('kiosk-watchdog', '2');
      sessionStorage.removeItem('twinscene-kiosk-reloads');
      Object.defineProperty(host, 'frameCount', { get: () => 7, configurable: true });
    });
    const reloaded = page.waitForEvent('load', { timeout: 60_000 });
    await waitForState(page, () => document.querySelector('twin-scene').dataset.kiosk === 'reloading', undefined, 30_000);
    await reloaded;
    // The reloaded page runs the viewer again and remembers that it had to reload once.
    await waitForReady(page);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('twinscene-kiosk-reloads')), '1');
    const frames = await page.evaluate(() => document.querySelector('twin-scene').frameCount);
    await waitForState(page, (f) => document.querySelector('twin-scene').frameCount > f, frames);
    context.viewer.assertNoPanics();
  }),
);
