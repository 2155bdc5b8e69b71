// Batched geometry: the Duplex model draws 348 glTF primitives with 22 materials; the viewer
// merges them per material, so a frame takes a few dozen draw calls, not hundreds. (That
// restyled elements still show their colors on batched geometry is what the pixel check in
// live_recolor.test.mjs sees.)
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useViewer, waitForState, withDiagnostics } from './harness.mjs';

const context = useViewer({ live: false });

/** Counts WebGL draw calls from now on (wasm-bindgen looks the methods up on every call). */
async function countDrawCalls(page) {
  await page.evaluate(() => {
    window.drawCalls = 0;
    const proto = WebGL2RenderingContext.prototype;
    for (const name of ['drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced', 'drawRangeElements']) {
      const original = proto[name];
      proto[name] = function (...args) {
        window.drawCalls += 1;
        return original.apply(this, args);
      };
    }
  });
}

async function framesFrom(page, count) {
  const start = await page.evaluate(() => [document.querySelector('twin-scene').frameCount, window.drawCalls]);
  await waitForState(page, ([frame, n]) => document.querySelector('twin-scene').frameCount >= frame + n, [start[0], count]);
  const end = await page.evaluate(() => [document.querySelector('twin-scene').frameCount, window.drawCalls]);
  return (end[1] - start[1]) / (end[0] - start[0]);
}

test('draw calls follow the model\'s materials, not its primitives', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    await countDrawCalls(page);
    const perFrame = await framesFrom(page, 3);
    assert.ok(perFrame > 0, 'the viewer draws');
    // 22 batches plus the passes Bevy adds; one draw per primitive would be 348.
    assert.ok(perFrame <= 40, `${perFrame} draw calls per frame`);
    context.viewer.assertNoPanics();
  }));
