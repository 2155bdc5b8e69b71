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
