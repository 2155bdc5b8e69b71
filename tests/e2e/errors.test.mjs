// Loading failures are shown to the user, precisely: a scene whose mesh is missing names the
// mesh; a malformed scene names the line and column. The viewer fails cleanly, never panics.
// A scene whose rules do not fit its twins still shows, and says what is wrong where.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { REPO_ROOT, openViewer, startServer, waitForReady, withDiagnostics } from './harness.mjs';

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function failureOf(viewer) {
  await viewer.page.waitForFunction(() => window.twinscene?.state === 'failed', null, { polling: 100, timeout: 120_000 });
  const error = await viewer.page.evaluate(() => window.twinscene.error);
  const screen = () => document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="failure"]');
  await viewer.page.waitForFunction(`getComputedStyle((${screen})()).display !== 'none'`, null, { polling: 100, timeout: 10_000 });
  const shown = await viewer.page.evaluate(`(${screen})().innerText`);
  return { error, shown };
}

test('a scene whose mesh is missing shows a failure screen naming the mesh', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'twinscene-e2e-scene-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const scene = path.join(dir, 'scene.json');
  await writeFile(scene, JSON.stringify({
    version: 1,
    mesh: 'no-such-model.glb',
    twins: [{ $dtId: 't', $metadata: { $model: 'dtmi:t:T;1' } }],
    elements: [{ id: 'e', twin: 't', nodes: ['n'] }],
  }));
  const server = await startServer({ scene });
  cleanup.push(() => server.stop());
  const viewer = await openViewer(server.url);
  cleanup.push(() => viewer.close());
  await withDiagnostics({ server, viewer }, async () => {
    const { error, shown } = await failureOf(viewer);
    assert.match(error, /cannot load mesh .*no-such-model\.glb/);
    assert.match(shown, /no-such-model\.glb/);
    viewer.assertNoPanics();
  });
});

test('a malformed scene shows the parse error with line and column', { timeout: 180_000 }, async () => {
  const server = await startServer();
  cleanup.push(() => server.stop());
  const broken = `data:application/json,${encodeURIComponent('{\n  "version": 1,\n  "mesh": \n}')}`;
  const viewer = await openViewer(server.url, { path: `/?live=off&scene=${encodeURIComponent(broken)}` });
  cleanup.push(() => viewer.close());
  await withDiagnostics({ server, viewer }, async () => {
    const { error, shown } = await failureOf(viewer);
    assert.match(error, /line 4, column 1/);
    assert.match(shown, /line 4, column 1/);
    viewer.assertNoPanics();
  });
});

test('a rule expression that does not fit the twins is reported with its pointer, and the scene still shows', { timeout: 180_000 }, async () => {
  const demo = JSON.parse(await readFile(path.join(REPO_ROOT, 'scenes/demo.json'), 'utf8'));
  const dir = await mkdtemp(path.join(tmpdir(), 'twinscene-e2e-typo-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const behavior = demo.behaviors.findIndex((b) => b.visuals.some((v) => v.type === 'color'));
  const visual = demo.behaviors[behavior].visuals.findIndex((v) => v.type === 'color');
  demo.behaviors[behavior].visuals[visual].expression = 'PrimaryTwin.temprature';
  const scene = path.join(dir, 'typo.json');
  await writeFile(scene, JSON.stringify({ ...demo, mesh: path.join(REPO_ROOT, 'assets/duplex.glb') }));
  const server = await startServer({ scene });
  cleanup.push(() => server.stop());
  const viewer = await openViewer(server.url);
  cleanup.push(() => viewer.close());
  await withDiagnostics({ server, viewer }, async () => {
    await waitForReady(viewer.page);
    const checks = await viewer.page.evaluate(() => window.twinscene.sceneChecks);
    const pointer = `/behaviors/${behavior}/visuals/${visual}/expression`;
    const finding = checks.find((check) => check.includes(pointer));
    assert.ok(finding, `a finding at ${pointer}: ${JSON.stringify(checks)}`);
    assert.match(finding, /temprature/);
    assert.match(finding, /did you mean "temperature"/);
    viewer.assertNoPanics();
  });
});
