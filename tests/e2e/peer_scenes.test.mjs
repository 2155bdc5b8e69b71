// Peer files load unchanged in the browser: the viewer tells the format by content. The AWS IoT
// TwinMaker water tank scene (scenes/water-tank/, as published) shows its rule-driven colors:
// the FlowMeter's model shader rule "AlwaysOn" paints it #d13212 and "TransparencyOn" makes the
// SupplyTank translucent; what the file has that twinscene does not show is listed, not dropped.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readTwinscene, useViewer, waitForHueAround, withDiagnostics } from './harness.mjs';

const TWINMAKER_SCENE = '/scenes/water-tank/CookieFactoryWaterTank.scene.json';
const GLTF_MODEL = '/scenes/water-tank/CookieFactoryWaterTank.gltf';
const FLOW_METER_COLOR = '#d13212';

// The same scene twice: with its GLB, which the viewer reads itself (src/model_reading.rs), and
// with the same model as a .gltf with an embedded buffer, which goes through Bevy's glTF loader.
const fromGlb = useViewer({ live: false, path: `/?scene=${encodeURIComponent(TWINMAKER_SCENE)}&live=off` });
const fromGltf = useViewer({
  live: false,
  path: `/?scene=${encodeURIComponent(TWINMAKER_SCENE)}&mesh=${encodeURIComponent(GLTF_MODEL)}&live=off`,
});

async function assertWaterTankShown(context) {
  const { viewer } = context;
  const { page } = viewer;
  const state = await readTwinscene(page);
  assert.equal(state.sourceFormat, 'twinmaker');
  assert.deepEqual(state.missingNodes, [], 'every SubModelRef selector names a node of the model');
  const flowMeter = Object.entries(state.elements).find(([, e]) => e.color === FLOW_METER_COLOR);
  assert.ok(flowMeter, `an element is painted ${FLOW_METER_COLOR}: ${JSON.stringify(state.elements)}`);
  assert.match(flowMeter[0], /FlowMeter/);
  const supplyTank = Object.entries(state.elements).find(([id]) => /SupplyTank/.test(id));
  assert.ok(supplyTank, 'the SupplyTank node is an element');
  assert.ok(Math.abs(supplyTank[1].opacity - 0.32) < 0.01, `SupplyTank opacity ${supplyTank[1].opacity}`);
  // Lights, the motion indicator and such are reported, not silently dropped.
  assert.ok(state.importNotes.some((note) => /light/i.test(note)), state.importNotes.join('\n'));
  // What a person sees: around the flow meter's projected center (the pipe may cross the
  // center itself), a patch of pixels has the rule's hue.
  await waitForHueAround(page, flowMeter[0], FLOW_METER_COLOR);
  viewer.assertNoPanics();
  return state;
}

test('a TwinMaker scene loads by URL and its rule maps color the model', { timeout: 240_000 }, () =>
  withDiagnostics(fromGlb.diagnostics, () => assertWaterTankShown(fromGlb)),
);

test('the same model as a .gltf (Bevy\'s loader) shows the same elements and colors', { timeout: 240_000 }, () =>
  withDiagnostics(fromGltf.diagnostics, async () => {
    const viaGltf = await assertWaterTankShown(fromGltf);
    const viaGlb = await readTwinscene(fromGlb.viewer.page);
    const summary = (state) =>
      Object.entries(state.elements)
        .map(([id, e]) => `${id} ${e.color} ${e.opacity}`)
        .sort();
    assert.deepEqual(summary(viaGltf), summary(viaGlb));
  }),
);
