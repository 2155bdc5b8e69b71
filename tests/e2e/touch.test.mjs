// Touch: one finger dragged across the canvas orbits the camera, and a tap on an element
// selects it (tablets at a plant floor have no mouse).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readTwinscene, useViewer, waitForState, withDiagnostics } from './harness.mjs';

const context = useViewer();

/** Sends touch events through the DevTools protocol, as a touchscreen would. */
async function touch(cdp, type, points) {
  await cdp.send('Input.dispatchTouchEvent', {
    type,
    touchPoints: points.map(([x, y]) => ({ x, y, radiusX: 4, radiusY: 4, force: 1, id: 1 })),
  });
}

test('a one-finger drag orbits and a tap selects', { timeout: 180_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
    const box = await page.locator('twin-scene canvas').boundingBox();
    // Input is paced by the viewer's frames: the app reads touches frame by frame, and a whole
    // gesture inside one slow (software-rendered) frame would show it no motion at all.
    const nextFrame = async () => {
      const frame = await page.evaluate(() => document.querySelector('twin-scene').frameCount);
      await waitForState(page, (f) => document.querySelector('twin-scene').frameCount > f, frame);
    };

    // A tap on an element the user sees selects it.
    const [id, element] = await readTwinscene(page, (ts) =>
      Object.entries(ts.elements).find(([, e]) => e.onTop && e.screen && e.screen[0] > 40 && e.screen[1] > 60));
    const at = [box.x + element.screen[0], box.y + element.screen[1]];
    await touch(cdp, 'touchStart', [at]);
    await nextFrame();
    await touch(cdp, 'touchEnd', []);
    await waitForState(page, () => window.twinscene.selected !== null);
    assert.ok(await readTwinscene(page, (ts) => ts.selected), `a tap at ${at} selected an element (aimed at ${id})`);

    // A drag moves the camera: the element's projected position moves with it.
    const before = element.screen;
    const start = [box.x + box.width * 0.3, box.y + box.height * 0.5];
    await touch(cdp, 'touchStart', [start]);
    await nextFrame();
    for (let step = 1; step <= 12; step += 1) {
      await touch(cdp, 'touchMove', [[start[0] + step * 12, start[1]]]);
      await nextFrame();
    }
    await touch(cdp, 'touchEnd', []);
    await waitForState(
      page,
      ([id, x, y]) => {
        const screen = window.twinscene.elements[id].screen;
        return screen && Math.hypot(screen[0] - x, screen[1] - y) > 20;
      },
      [id, before[0], before[1]],
    );
    context.viewer.assertNoPanics();
  }),
);
