// Touch: one finger dragged across the canvas orbits the camera, and a tap on an element
// selects it (tablets at a plant floor have no mouse).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readTwinscene, useViewer, waitForElement, waitForState, withDiagnostics } from './harness.mjs';

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
    const [id, element] = await waitForElement(page, (_, e) => e.onTop && e.screen && e.screen[0] > 40 && e.screen[1] > 60);
    const at = [box.x + element.screen[0], box.y + element.screen[1]];
    await touch(cdp, 'touchStart', [at]);
    await nextFrame();
    await touch(cdp, 'touchEnd', []);
    await waitForState(page, () => window.twinscene.selected !== null);
    assert.ok(await readTwinscene(page, (ts) => ts.selected), `a tap at ${at} selected an element (aimed at ${id})`);

    // A drag moves the camera: the elements' projected positions move with it. (Not one
    // element's: one on the orbit axis, e.g. at the focus, stays where it is.)
    const before = await readTwinscene(page, (ts) =>
      Object.fromEntries(Object.entries(ts.elements).filter(([, e]) => e.screen).map(([key, e]) => [key, e.screen])));
    // Start on bare canvas: a touch that starts on a badge or a panel goes to that, not the camera.
    const start = await page.evaluate(() => {
      const host = document.querySelector('twin-scene');
      const r = host.getBoundingClientRect();
      for (const fy of [0.5, 0.6, 0.4, 0.7, 0.3]) {
        for (const fx of [0.3, 0.2, 0.4, 0.1]) {
          const [x, y] = [r.left + r.width * fx, r.top + r.height * fy];
          const hit = host.shadowRoot?.elementFromPoint(x, y) ?? document.elementFromPoint(x, y);
          if (hit?.tagName === 'CANVAS') return [x, y];
        }
      }
      return null;
    });
    assert.ok(start, 'some point of the canvas is not covered by badges or panels');
    await touch(cdp, 'touchStart', [start]);
    await nextFrame();
    for (let step = 1; step <= 12; step += 1) {
      await touch(cdp, 'touchMove', [[start[0] + step * 12, start[1]]]);
      await nextFrame();
    }
    await touch(cdp, 'touchEnd', []);
    await waitForState(
      page,
      (before) =>
        Object.entries(before).some(([key, [x, y]]) => {
          const screen = window.twinscene.elements[key]?.screen;
          return screen && Math.hypot(screen[0] - x, screen[1] - y) > 20;
        }),
      before,
    );
    context.viewer.assertNoPanics();
  }),
);
