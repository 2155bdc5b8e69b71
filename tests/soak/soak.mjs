// Soak test of the kiosk page (`cargo xtask soak --minutes N`): headless Chromium shows
// web/examples/kiosk.html while the server's simulator writes at a high rate and the server is
// restarted periodically (the viewer must reconnect each time). Every sample records the JS heap (after a forced GC), the viewer's wasm
// linear memory, the DOM node count, the User Timing entries and the frame count. After a
// warm-up, none of the four may grow by more than 5 %, frames must keep coming, the page must not panic or reload,
// and the viewer must end live.
//
// Options: --minutes N (default 3), --restart-every S (default 60), --sample-every S
// (default 10), --interval-ms MS (simulator tick, default 50), --port P (default 18080),
// --report FILE (default target/soak/report.json).

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { REPO_ROOT, openViewer, startServer, waitForReady, waitForState } from '../e2e/harness.mjs';

const { values: options } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    'restart-every': { type: 'string', default: '60' },
    'sample-every': { type: 'string', default: '10' },
    'interval-ms': { type: 'string', default: '50' },
    port: { type: 'string', default: '18080' },
    report: { type: 'string', default: 'target/soak/report.json' },
  },
});
const minutes = Number(options.minutes);
const restartEveryMs = Number(options['restart-every']) * 1000;
const sampleEveryMs = Number(options['sample-every']) * 1000;
const port = Number(options.port);
/** The share of the run that is warm-up: caches fill, the JIT settles, the first snapshot lands. */
const WARM_UP_SHARE = 0.25;
const MAX_GROWTH = 0.05;
/** A badge (wrapper, button, icon, text) and an alert list entry (button, dot, severity), plus slack. */
const MAX_NODES_PER_ALERT = 12;

const dbDir = await mkdtemp(path.join(tmpdir(), 'twinscene-soak-'));
const serverArgs = [
  '--simulate',
  '--simulate-interval-ms',
  options['interval-ms'],
  '--db',
  path.join(dbDir, 'soak.sqlite'),
];
let server = await startServer({ port, extraArgs: serverArgs });
const viewer = await openViewer(server.url, { path: '/examples/kiosk.html?dwell=15&hold=10&watchdog=60' });
const { page } = viewer;
const cdp = await page.context().newCDPSession(page);
await cdp.send('Performance.enable');
const kioskEvents = [];
await page.exposeFunction('soakKioskEvent', (detail) => kioskEvents.push(detail));
await page.evaluate(() =>
  document.querySelector('twin-scene').addEventListener('kiosk', (e) => window.soakKioskEvent(e.detail)));

const samples = [];
let restarts = 0;
try {
  await waitForReady(page);
  await waitForState(page, () => window.twinscene.live === 'live');
  const started = Date.now();
  const end = started + minutes * 60_000;
  let nextRestart = started + restartEveryMs;
  while (Date.now() < end) {
    await page.waitForTimeout(Math.min(sampleEveryMs, Math.max(0, end - Date.now())));
    if (Date.now() >= nextRestart && Date.now() < end - sampleEveryMs) {
      await server.stop();
      server = await startServer({ port, extraArgs: serverArgs });
      restarts += 1;
      nextRestart += restartEveryMs;
    }
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const metric = (name) => metrics.find((m) => m.name === name)?.value ?? 0;
    const page_ = await page.evaluate(() => {
      const host = document.querySelector('twin-scene');
      return {
        wasmBytes: host.wasmMemoryBytes,
        frames: host.frameCount,
        // Badges and the alert list follow how many alerts are active (the simulator's alarms
        // come and go); they are counted apart, per active alert, so a leak shows in either.
        domNodes: document.getElementsByTagName('*').length + host.shadowRoot.querySelectorAll('*').length -
          host.shadowRoot.querySelectorAll('[data-role="badges"] *, [data-role="alerts"] *').length,
        alertNodes: host.shadowRoot.querySelectorAll('[data-role="badges"] *, [data-role="alerts"] *').length,
        activeAlerts: Object.values(window.twinscene?.elements ?? {}).reduce((n, e) => n + e.badges.length, 0),
        // User Timing entries are kept by the browser without limit; a logger that marks every
        // span once grew the JS heap by ~7 KB a minute this way.
        timelineEntries: performance.getEntriesByType('mark').length + performance.getEntriesByType('measure').length,
        live: window.twinscene?.live,
        seq: window.twinscene?.seq,
        kiosk: host.dataset.kiosk,
      };
    });
    samples.push({ minute: (Date.now() - started) / 60_000, jsHeapBytes: metric('JSHeapUsedSize'), ...page_ });
    const last = samples.at(-1);
    console.log(
      `soak ${last.minute.toFixed(1)} min: heap ${(last.jsHeapBytes / 1e6).toFixed(2)} MB, wasm ${(last.wasmBytes / 1e6).toFixed(1)} MB, ` +
        `${last.domNodes} nodes, ${last.timelineEntries} timeline entries, ${last.frames} frames, live ${last.live}, seq ${last.seq}, kiosk ${last.kiosk}, restarts ${restarts}`,
    );
  }
  // After the last restart the viewer is live again.
  await waitForState(page, () => window.twinscene.live === 'live', undefined, 60_000);
  viewer.assertNoPanics();
} finally {
  await viewer.close();
  await server.stop();
  await rm(dbDir, { recursive: true, force: true });
}

const afterWarmUp = samples.filter((s) => s.minute >= minutes * WARM_UP_SHARE);
assert.ok(afterWarmUp.length >= 4, `too few samples after warm-up (${afterWarmUp.length}); run longer or sample more often`);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const window3 = (list) => list.slice(0, 3);
const growth = {};
for (const key of ['jsHeapBytes', 'wasmBytes', 'domNodes', 'timelineEntries']) {
  const baseline = median(window3(afterWarmUp).map((s) => s[key]));
  const final = median(afterWarmUp.slice(-3).map((s) => s[key]));
  // A count that starts at zero must stay there (growth from nothing is infinite).
  const grew = baseline > 0 ? (final - baseline) / baseline : final > 0 ? Infinity : 0;
  growth[key] = { baseline, final, growth: grew };
}
// Nodes per active alert must stay what they are: a badge and a list entry each.
const perAlert = afterWarmUp.filter((s) => s.activeAlerts > 0).map((s) => s.alertNodes / s.activeAlerts);
const maxNodesPerAlert = perAlert.length ? Math.max(...perAlert) : 0;
const frameGaps = afterWarmUp.slice(1).filter((s, i) => s.frames <= afterWarmUp[i].frames).length;
const report = {
  machine: 'see the closing note',
  minutes,
  restarts,
  simulatorIntervalMs: Number(options['interval-ms']),
  samples,
  growth,
  frameGaps,
  maxNodesPerAlert,
  kioskEvents: kioskEvents.length,
  reloads: kioskEvents.filter((e) => e.mode === 'reloading').length,
};
await mkdir(path.dirname(path.resolve(REPO_ROOT, options.report)), { recursive: true });
await writeFile(path.resolve(REPO_ROOT, options.report), JSON.stringify(report, null, 2));
console.log('soak growth after warm-up:');
for (const [key, { baseline, final, growth: g }] of Object.entries(growth)) {
  console.log(`  ${key}: ${baseline} -> ${final} (${(g * 100).toFixed(2)} %)`);
}
console.log(`  DOM nodes per active alert: at most ${maxNodesPerAlert.toFixed(1)}`);
console.log(`  restarts ${restarts}, kiosk events ${report.kioskEvents}, reloads ${report.reloads}, frame stalls ${frameGaps}`);
const failures = Object.entries(growth).filter(([, g]) => g.growth > MAX_GROWTH).map(([key, g]) => `${key} grew ${(g.growth * 100).toFixed(1)} %`);
if (maxNodesPerAlert > MAX_NODES_PER_ALERT) failures.push(`${maxNodesPerAlert.toFixed(1)} DOM nodes per active alert`);
if (frameGaps > 0) failures.push(`frames stopped in ${frameGaps} sampling interval(s)`);
if (report.reloads > 0) failures.push(`the kiosk reloaded ${report.reloads} time(s)`);
if (failures.length) {
  console.error(`soak failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('soak passed');
