// Peer files load unchanged in the browser: the viewer tells the format by content. The AWS IoT
// TwinMaker water tank scene (scenes/water-tank/, as published) shows its rule-driven colors:
// the FlowMeter's model shader rule "AlwaysOn" paints it #d13212 and "TransparencyOn" makes the
// SupplyTank translucent; what the file has that twinscene does not show is listed, not dropped.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  decodePng,
  hexToRgb,
  hueDistance,
  hueOf,
  readTwinscene,
  useViewer,
  withDiagnostics,
} from './harness.mjs';

const TWINMAKER_SCENE = '/scenes/water-tank/CookieFactoryWaterTank.scene.json';
const FLOW_METER_COLOR = '#d13212';
const SAMPLE_RADIUS = 14;
const MIN_MATCHING_PIXELS = 10;
const PIXEL_DEADLINE_MS = 20_000;

const context = useViewer({ live: false, path: `/?scene=${encodeURIComponent(TWINMAKER_SCENE)}&live=off` });

test('a TwinMaker scene loads by URL and its rule maps color the model', { timeout: 240_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { viewer } = context;
    const { page } = viewer;
    const state = await readTwinscene(page);
    assert.equal(state.sourceFormat, 'twinmaker');
    assert.deepEqual(state.missingNodes, [], 'every SubModelRef selector names a node of the GLB');
    const flowMeter = Object.entries(state.elements).find(([, e]) => e.color === FLOW_METER_COLOR);
    assert.ok(flowMeter, `an element is painted ${FLOW_METER_COLOR}: ${JSON.stringify(state.elements)}`);
    assert.match(flowMeter[0], /FlowMeter/);
    const supplyTank = Object.entries(state.elements).find(([id]) => /SupplyTank/.test(id));
    assert.ok(supplyTank, 'the SupplyTank node is an element');
    assert.ok(Math.abs(supplyTank[1].opacity - 0.32) < 0.01, `SupplyTank opacity ${supplyTank[1].opacity}`);
    // Lights, the motion indicator and such are reported, not silently dropped.
    assert.ok(state.importNotes.some((note) => /light/i.test(note)), state.importNotes.join('\n'));

    // What a person sees: around the flow meter's projected center (the pipe may cross the
    // center itself), a patch of pixels has the rule's hue. The camera frames the model after
    // it is ready, so the position is read anew until the pixels show or the deadline passes.
    const target = hueOf(hexToRgb(FLOW_METER_COLOR)).hue;
    const deadline = Date.now() + PIXEL_DEADLINE_MS;
    let seen = '';
    for (;;) {
      const [x, y] = (await readTwinscene(page, (ts) => ts.elements))[flowMeter[0]].screen.map(Math.round);
      const clip = { x: Math.max(0, x - SAMPLE_RADIUS), y: Math.max(0, y - SAMPLE_RADIUS), width: 2 * SAMPLE_RADIUS + 1, height: 2 * SAMPLE_RADIUS + 1 };
      const image = decodePng(await page.screenshot({ type: 'png', clip, scale: 'css' }));
      let matching = 0;
      for (let py = 0; py < image.height; py += 1) {
        for (let px = 0; px < image.width; px += 1) {
          const { hue, saturation } = hueOf(image.rgbAt(px, py));
          if (saturation > 0.4 && hueDistance(hue, target) < 25) matching += 1;
        }
      }
      seen = `${matching} pixels near ${x},${y} have the hue of ${FLOW_METER_COLOR}`;
      if (matching >= MIN_MATCHING_PIXELS) break;
      assert.ok(Date.now() < deadline, seen);
      await page.waitForTimeout(250);
    }
    viewer.assertNoPanics();
  }),
);
