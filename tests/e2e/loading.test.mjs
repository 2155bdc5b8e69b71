// The viewer bundle (~58 MB of wasm) travels gzip-compressed: the server sends the `.gz` that
// `cargo xtask build-web` writes, and the page still compiles it while it streams.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useViewer, withDiagnostics } from './harness.mjs';

const context = useViewer({ live: false });

test('the wasm bundle is sent gzip-compressed', { timeout: 60_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const entry = await page.evaluate(() => {
      const wasm = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/twinscene_viewer_bg.wasm'));
      return wasm && { transfer: wasm.transferSize, encoded: wasm.encodedBodySize, decoded: wasm.decodedBodySize };
    });
    assert.ok(entry, 'the page loaded the wasm bundle');
    assert.ok(entry.decoded > 1e6, `decoded ${entry.decoded} bytes`);
    assert.ok(entry.encoded < entry.decoded / 2, `sent ${entry.encoded} bytes for ${entry.decoded}`);
    context.viewer.assertNoPanics();
  }));

test('the scene and its GLB download with the bundle, once', { timeout: 60_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const timing = await page.evaluate(() => {
      const entries = performance.getEntriesByType('resource');
      const wasm = entries.find((e) => e.name.endsWith('/twinscene_viewer_bg.wasm'));
      const starts = (test) => entries.filter((e) => test(new URL(e.name).pathname)).map((e) => e.startTime);
      return {
        wasmEnd: wasm?.responseEnd,
        sceneStarts: starts((path) => path === '/api/scene'),
        meshStarts: starts((path) => path.startsWith('/api/scene/mesh/')),
      };
    });
    // The page fetches both while the bundle downloads (the server's config names the mesh),
    // and the viewer takes those responses instead of asking again once its renderer is up
    // (over a second later) and once it has read the scene.
    assert.equal(timing.sceneStarts.length, 1, `scene requests: ${JSON.stringify(timing)}`);
    assert.ok(timing.sceneStarts[0] < timing.wasmEnd, `scene requested at ${timing.sceneStarts[0]} ms, bundle in at ${timing.wasmEnd} ms`);
    assert.equal(timing.meshStarts.length, 1, `mesh requests: ${JSON.stringify(timing)}`);
    assert.ok(timing.meshStarts[0] < timing.wasmEnd, `mesh requested at ${timing.meshStarts[0]} ms, bundle in at ${timing.wasmEnd} ms`);
    context.viewer.assertNoPanics();
  }));
