// Rendering benchmark: twinscene against a Babylon.js baseline, on the same generated facility
// files, served by the same `twinscene serve`, in headless Chromium (SwiftShader, the flags and
// 400x300 viewport of tests/e2e/harness.mjs). Run through `cargo xtask bench render`, which
// generates the facilities and passes --scenes; docs/performance.md explains every figure.
//
//   node tests/bench/render.mjs --scenes target/facility/office_a-1x1/scene.json[,...] \
//        [--seconds 10] [--out target/bench] [--viewers twinscene,babylon]
//   node tests/bench/render.mjs --from target/bench/render.json [--out DIR]   (report only)
//
// Per facility and viewer: time to first frame, fps idle and while 1 % and 10 % of the elements
// change per second (CloudEvents ingest), time to apply an update of 10k elements (or all),
// WebGL draw calls per frame (counted by wrapping the context's draw functions), JS heap, wasm
// memory, renderer and GPU process RSS, and pick latency (pointer release → selection known).

import { cp, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import readline from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, CHROMIUM_PATH, REPO_ROOT, VIEWPORT, startServer } from '../e2e/harness.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const SCENES = (args.scenes ?? 'target/facility/office_a-1x1/scene.json').split(',');
const SECONDS = Number(args.seconds ?? 10);
const OUT = path.resolve(REPO_ROOT, args.out ?? 'target/bench');
const SITE = path.join(OUT, 'site');
const CONFIG = path.join(OUT, 'bench-server.toml');
const VIEWERS = (args.viewers ?? 'twinscene,babylon').split(',');
// The Babylon.js baseline keeps 10^5 meshes and materials in the JS heap (2.9 GB at office_a
// 10×10): V8's default limit would leave it collecting garbage instead of drawing.
const BENCH_CHROMIUM_ARGS = [...CHROMIUM_ARGS, '--js-flags=--max-old-space-size=8192'];
const BIG_UPDATE = 10_000;
const REPEATS = 3;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : NaN;
};
const log = (message) => process.stderr.write(`bench: ${message}\n`);

/** Runs in every page before its scripts: draw-call counter, first-frame clock, helpers. */
function instrument() {
  const b = (window.__bench = { draws: 0 });
  for (const proto of [window.WebGL2RenderingContext?.prototype, window.WebGLRenderingContext?.prototype]) {
    if (!proto) continue;
    for (const name of ['drawArrays', 'drawElements', 'drawArraysInstanced', 'drawElementsInstanced', 'drawRangeElements']) {
      const original = proto[name];
      if (typeof original !== 'function') continue;
      proto[name] = function () {
        b.draws += 1;
        return original.apply(this, arguments);
      };
    }
  }
  const ready = () => window.twinscene?.ready === true || window.babylonBench?.ready === true;
  const tick = () => {
    if (b.readyAt === undefined) {
      if (ready()) b.readyAt = performance.now();
    } else if (b.firstFrameAt === undefined) {
      b.firstFrameAt = performance.now();
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  b.frames = () => (window.benchFrames ? window.benchFrames() : document.querySelector('twin-scene')?.frameCount ?? 0);
  b.seq = () => window.twinscene?.seq ?? window.babylonBench?.seq ?? 0;
  b.selected = () => window.twinscene?.selected ?? window.babylonBench?.selected ?? null;
  b.sample = () => ({ frames: b.frames(), at: performance.now(), draws: b.draws, seq: b.seq() });
  // The viewer's own main-thread CPU for live updates (parse, apply, restyle) and its last pick.
  b.cpu = () => {
    const t = window.twinscene?.timings;
    return t
      ? { applyMs: t.liveMs + t.paintMs, paintMs: t.paintMs, applyFrames: t.liveFrames, pickMs: t.pickMs }
      : { applyMs: window.babylonBench?.applyMs ?? NaN, paintMs: NaN, applyFrames: NaN, pickMs: window.babylonBench?.pickCpuMs ?? NaN };
  };
  // When live messages reach the page (either engine's socket): the in-page part of an update
  // starts with the first message after the ingest was sent, as the issue's Babylon.js figure
  // ("recolor 10 % + frame") has no server in it.
  b.messageAt = [];
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => {
        if (b.messageAt.length < 100_000) b.messageAt.push(performance.now());
      });
    }
  };
  b.now = () => performance.now();
  b.firstMessageAfter = (at) => b.messageAt.find((t) => t >= at) ?? NaN;
  b.waitSeqAt = (target) =>
    new Promise((resolve) => {
      const poll = () =>
        b.seq() >= target ? resolve({ at: performance.now(), wall: Date.now() }) : requestAnimationFrame(poll);
      poll();
    });
  b.waitSeq = (target) =>
    new Promise((resolve) => {
      const poll = () => (b.seq() >= target ? resolve(Date.now()) : requestAnimationFrame(poll));
      poll();
    });
}

async function prepareSite() {
  await rm(SITE, { recursive: true, force: true });
  await cp(path.join(REPO_ROOT, 'web'), SITE, { recursive: true });
  await copyFile(path.join(REPO_ROOT, 'tests/bench/babylon.html'), path.join(SITE, 'babylon.html'));
  await mkdir(path.join(SITE, 'vendor'), { recursive: true });
  await copyFile(path.join(REPO_ROOT, 'node_modules/babylonjs/babylon.js'), path.join(SITE, 'vendor/babylon.js'));
  await copyFile(
    path.join(REPO_ROOT, 'node_modules/babylonjs-loaders/babylonjs.loaders.min.js'),
    path.join(SITE, 'vendor/babylonjs.loaders.min.js'),
  );
  // Big update batches in one request, no write-rate limit, short history.
  await writeFile(
    CONFIG,
    '[limits]\nmax_body_bytes = 67108864\ningest_requests_per_second = 100000\n\n[history]\nmax_points_per_property = 16\n',
  );
}

/** RSS (bytes) of this browser's renderer and GPU processes, found by its profile directory. */
async function processMemory(userDataDir) {
  const out = { renderer: 0, gpu: 0 };
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!cmdline.includes(userDataDir)) continue;
    const kind = cmdline.includes('--type=renderer') ? 'renderer' : cmdline.includes('--type=gpu-process') ? 'gpu' : null;
    if (!kind) continue;
    const status = await readFile(`/proc/${pid}/status`, 'latin1').catch(() => '');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    out[kind] += kb * 1024;
  }
  return out;
}

/** The element twins of a generated facility's scene file and their starting temperatures,
 * read line by line (`cargo xtask gen-facility` writes each twin and element on a line of its
 * own): the 10^6-element scene is 412 MB, a string V8 can hold but not parse within Node's
 * default heap. */
async function sceneTwins(scenePath) {
  const temperature = new Map();
  const twins = [];
  let name;
  const lines = readline.createInterface({ input: createReadStream(scenePath), crlfDelay: Infinity });
  for await (const line of lines) {
    // An item ends in "," or, the last of its list, in "]," or "]}".
    const item = line.replace(/(\],?|\]\})?,?$/, '');
    if (item.startsWith('{"$dtId"')) {
      const twin = JSON.parse(item);
      if (twin.temperature !== undefined) temperature.set(twin.$dtId, twin.temperature);
    } else if (item.startsWith('{"id"')) {
      twins.push(JSON.parse(item).twin);
    } else if (name === undefined) {
      name = /"name":("(?:[^"\\]|\\.)*")/.exec(item)?.[1];
    }
  }
  if (!twins.length) throw new Error(`${scenePath}: no elements on lines of their own (not a generated facility?)`);
  return { twins, temperature, name: name && JSON.parse(name) };
}

let eventCounter = 0;
function cloudEvent(twin, value) {
  eventCounter += 1;
  return {
    specversion: '1.0',
    id: `bench-${process.pid}-${eventCounter}`,
    source: 'twinscene-bench',
    type: 'Microsoft.DigitalTwins.Twin.Update',
    subject: twin,
    data: { patch: [{ op: 'replace', path: '/temperature', value }] },
  };
}

async function ingest(url, events) {
  const response = await fetch(`${url}/ingest/cloudevents`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(events),
  });
  if (!response.ok) throw new Error(`ingest: HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
  const answer = await response.json();
  if (answer.rejected) throw new Error(`ingest rejected ${answer.rejected} events`);
  return Math.max(0, ...answer.results.map((r) => r.seq ?? 0));
}

/** Sends `perSecond` random temperature changes per second (batches every 100 ms) until stopped. */
function startLoad(url, state, perSecond) {
  let stopped = false;
  let lastSeq = 0;
  let sent = 0;
  const done = (async () => {
    let carry = 0;
    while (!stopped) {
      const started = Date.now();
      carry += perSecond / 10;
      const count = Math.floor(carry);
      carry -= count;
      if (count > 0) {
        const events = [];
        for (let i = 0; i < count; i++) {
          const twin = state.twins[Math.floor(Math.random() * state.twins.length)];
          const value = Math.round((16 + Math.random() * 14) * 10) / 10;
          state.temperature.set(twin, value);
          events.push(cloudEvent(twin, value));
        }
        lastSeq = Math.max(lastSeq, await ingest(url, events));
        sent += count;
      }
      await sleep(Math.max(0, 100 - (Date.now() - started)));
    }
  })();
  return async () => {
    stopped = true;
    await done;
    return { lastSeq, sent };
  };
}

/** Waits (at most 30 s) until twinscene's far detail has not moved for 4 s: the viewer coarsens
 * it while frames are slower than its `min-fps`, a step a second, and the frame rate of a large
 * model is measured once it has found its level, as a user would see it. */
async function farDetailSettled(page) {
  let last;
  let since = Date.now();
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(500)) {
    const pixels = await page.evaluate(() => window.twinscene?.farDetailPixels ?? null);
    if (pixels === null) return;
    if (pixels !== last) [last, since] = [pixels, Date.now()];
    else if (Date.now() - since >= 4000) return;
  }
}

async function steady(page, seconds, load) {
  const start = await page.evaluate(() => window.__bench.sample());
  const stop = load?.();
  await sleep(seconds * 1000);
  const end = await page.evaluate(() => window.__bench.sample());
  const result = {
    fps: (end.frames - start.frames) / ((end.at - start.at) / 1000),
    drawsPerFrame: end.frames > start.frames ? (end.draws - start.draws) / (end.frames - start.frames) : NaN,
    // twinscene's far detail as the frame rate left it (cells of 2–4 pixels; null without far levels).
    farDetailPixels: await page.evaluate(() => window.twinscene?.farDetailPixels ?? null),
  };
  if (stop) {
    const { lastSeq, sent } = await stop();
    const stoppedAt = Date.now();
    const caughtUpAt = await page.evaluate((target) => window.__bench.waitSeq(target), lastSeq);
    result.catchUpMs = caughtUpAt - stoppedAt;
    result.sent = sent;
  }
  return result;
}

async function bigUpdate(page, url, state) {
  const count = Math.min(BIG_UPDATE, state.twins.length);
  const chosen = [...state.twins].sort(() => Math.random() - 0.5).slice(0, count);
  // Every chosen element changes color: green/blue → amber, amber/red → green; no alerts.
  const events = chosen.map((twin) => {
    const value = (state.temperature.get(twin) ?? 20) < 22 ? 24 : 19;
    state.temperature.set(twin, value);
    return cloudEvent(twin, value);
  });
  const before = await page.evaluate(() => window.__bench.cpu());
  const pageStarted = await page.evaluate(() => window.__bench.now());
  const started = Date.now();
  const target = await ingest(url, events);
  const acked = Date.now();
  const { at: pageApplied, wall: applied } = await page.evaluate((seq) => window.__bench.waitSeqAt(seq), target);
  const arrived = await page.evaluate((at) => window.__bench.firstMessageAfter(at), pageStarted);
  const after = await page.evaluate(() => window.__bench.cpu());
  return {
    count,
    totalMs: applied - started,
    ingestMs: acked - started,
    // From the first live message after the ingest reached the page to the frame after the
    // update was applied.
    inPageMs: pageApplied - arrived,
    cpuMs: after.applyMs - before.applyMs,
    // Of it, writing the changed elements' looks (state texture slots).
    paintMs: after.paintMs - before.paintMs,
    // Frames that applied live messages for it (twinscene): the CPU per frame is cpuMs / this.
    cpuFrames: after.applyFrames - before.applyFrames,
  };
}

/** A canvas point over an element for twinscene: large scenes publish screen positions only
 * for elements with badges (which the badges then cover), so points are tried by hovering. The
 * alert badges left by the 10 %/s load are made transparent to the pointer first: after it, at
 * 10^5 elements, they cover nearly the whole facility, and clicking one is a DOM event, not the
 * 3D pick this measures (Babylon.js has no badges). */
async function twinscenePickTarget(page) {
  const candidates = await page.evaluate(() => {
    const style = document.createElement('style');
    style.textContent = '.badge button { pointer-events: none !important; }';
    document.querySelector('twin-scene').shadowRoot.append(style);
    const clear = (x, y) => document.elementFromPoint(x, y)?.tagName === 'CANVAS';
    // Every 10 px of the canvas, nearest the centre first: at 10^5 elements the alert badges
    // left by the 10 %/s load cover most of the middle.
    const points = [];
    for (let y = 20; y < 290; y += 10) {
      for (let x = 20; x < 390; x += 10) {
        if (clear(x, y)) points.push([x, y]);
      }
    }
    const distance = ([x, y]) => (x - 200) ** 2 + ((y - 150) / 0.75) ** 2;
    points.sort((a, b) => distance(a) - distance(b));
    // Spread out: at this size the centre may well fall between two buildings.
    const spread = [];
    for (const [x, y] of points) {
      if (spread.every(([sx, sy]) => Math.abs(sx - x) + Math.abs(sy - y) >= 40)) spread.push([x, y]);
    }
    return spread;
  });
  for (const [x, y] of candidates.slice(0, 8)) {
    await page.mouse.move(x, y);
    const hovered = await page
      .waitForFunction(() => window.twinscene.hovered, null, { timeout: 20_000, polling: 100 })
      .then((handle) => handle.jsonValue())
      .catch(() => null);
    if (hovered) return { id: hovered, x, y };
  }
  return null;
}

async function pickLatency(page, kind) {
  const target = kind === 'twinscene' ? await twinscenePickTarget(page) : await page.evaluate(() => {
    const clear = (x, y) => x > 30 && y > 50 && x < 370 && y < 250 && document.elementFromPoint(x, y)?.tagName === 'CANVAS';
    for (let y = 150; y < 250; y += 10) {
      for (let x = 200, d = 0; d < 170; d += 10) {
        for (const px of [x - d, x + d]) {
          const id = window.babylonBench.pickAt(px, y);
          if (id && clear(px, y)) return { id, x: px, y };
        }
      }
    }
    return null;
  });
  if (!target) return { ms: NaN, note: 'no element on screen to click' };
  const times = [];
  const cpu = [];
  for (let i = 0; i < REPEATS; i++) {
    await page.mouse.move(target.x + 1, target.y + 1);
    await sleep(300);
    await page.evaluate(() => {
      const b = window.__bench;
      b.pickStart = undefined;
      b.pickEnd = undefined;
      window.addEventListener(
        'pointerup',
        () => {
          b.pickStart = performance.now();
          const poll = () => (b.selected() ? (b.pickEnd = performance.now()) : requestAnimationFrame(poll));
          requestAnimationFrame(poll);
        },
        { capture: true, once: true },
      );
    });
    await page.mouse.click(target.x, target.y);
    try {
      await page.waitForFunction(() => window.__bench.pickEnd !== undefined, null, { timeout: 45_000, polling: 50 });
    } catch {
      // At a fraction of a frame per second the selection may take longer than we wait.
      return { ms: median(times), cpuMs: median(cpu), note: `no selection within 45 s after ${times.length} pick(s)` };
    }
    times.push(await page.evaluate(() => window.__bench.pickEnd - window.__bench.pickStart));
    cpu.push(await page.evaluate(() => window.__bench.cpu().pickMs));
    // Clear the selection for the next round.
    if (kind === 'twinscene') {
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => window.twinscene.selected === null, null, { timeout: 45_000 }).catch(() => {});
    } else {
      await page.evaluate(() => (window.babylonBench.selected = null));
    }
  }
  return { ms: median(times), cpuMs: median(cpu), all: times };
}

async function measure(scenePath, kind) {
  const state = await sceneTwins(scenePath);
  const server = await startServer({ scene: scenePath, extraArgs: ['--web', SITE, '--config', CONFIG] });
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'twinscene-bench-chromium-'));
  let context;
  const errors = [];
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: BENCH_CHROMIUM_ARGS,
      viewport: VIEWPORT,
      deviceScaleFactor: 1,
    });
    await context.addInitScript(instrument);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.goto(`${server.url}/${kind === 'twinscene' ? '' : 'babylon.html'}`, { waitUntil: 'load', timeout: 120_000 });
    await page.waitForFunction(
      () =>
        window.__bench.firstFrameAt !== undefined || window.babylonBench?.error || window.twinscene?.state === 'failed',
      null,
      { timeout: 600_000, polling: 200 },
    );
    const boot = await page.evaluate(() => ({
      firstFrameMs: window.__bench.firstFrameAt,
      error: window.babylonBench?.error ?? window.twinscene?.error ?? null,
    }));
    if (boot.firstFrameMs === undefined) throw new Error(`${kind} failed to start: ${boot.error}`);
    await page.waitForFunction(() => window.twinscene?.live === 'live' || window.babylonBench?.live === true, null, {
      timeout: 120_000,
    });
    await sleep(2000);
    await farDetailSettled(page);
    const elements = state.twins.length;
    log(`${kind} ${path.basename(path.dirname(scenePath))}: first frame ${Math.round(boot.firstFrameMs)} ms`);
    const idle = await steady(page, SECONDS);
    const load1 = await steady(page, SECONDS, () => startLoad(server.url, state, Math.max(1, elements * 0.01)));
    const load10 = await steady(page, SECONDS, () => startLoad(server.url, state, Math.max(1, elements * 0.1)));
    const updates = [];
    for (let i = 0; i < REPEATS; i++) {
      updates.push(await bigUpdate(page, server.url, state));
      await sleep(1000);
    }
    const pick = await pickLatency(page, kind);
    await cdp.send('HeapProfiler.collectGarbage').catch(() => {});
    const metrics = Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
    const wasmBytes = await page.evaluate(() => document.querySelector('twin-scene')?.wasmMemoryBytes ?? 0);
    // Only a scene with `staleAfterSeconds` has any: what the written twins had become by the end.
    const staleCount = await page.evaluate(() => window.twinscene?.staleCount ?? null);
    const rss = await processMemory(userDataDir);
    const result = {
      kind,
      elements,
      firstFrameMs: boot.firstFrameMs,
      fpsIdle: idle.fps,
      farDetailPixels: [idle.farDetailPixels, load1.farDetailPixels, load10.farDetailPixels],
      drawsPerFrame: idle.drawsPerFrame,
      fps1: load1.fps,
      catchUp1Ms: load1.catchUpMs,
      sent1: load1.sent,
      fps10: load10.fps,
      catchUp10Ms: load10.catchUpMs,
      sent10: load10.sent,
      updateCount: updates[0].count,
      updateMs: median(updates.map((u) => u.totalMs)),
      updateIngestMs: median(updates.map((u) => u.ingestMs)),
      updateInPageMs: median(updates.map((u) => u.inPageMs)),
      updateCpuMs: median(updates.map((u) => u.cpuMs)),
      updateCpuFrames: median(updates.map((u) => u.cpuFrames)),
      updatePaintMs: median(updates.map((u) => u.paintMs)),
      pickMs: pick.ms,
      pickCpuMs: pick.cpuMs,
      pickNote: pick.note,
      jsHeapBytes: metrics.JSHeapUsedSize,
      wasmBytes,
      staleCount,
      rendererRssBytes: rss.renderer,
      gpuRssBytes: rss.gpu,
      pageErrors: errors.slice(0, 5),
    };
    log(`${kind}: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await context?.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
    await server.stop();
  }
}

// ---- report -------------------------------------------------------------------------------

const ROWS = [
  ['Time to first frame (ms)', 'firstFrameMs', 0, 'lower'],
  ['fps, idle', 'fpsIdle', 1, 'higher'],
  ['fps, 1 % of elements/s changing', 'fps1', 1, 'higher'],
  ['fps, 10 % of elements/s changing', 'fps10', 1, 'higher'],
  ['Catch-up after the 10 %/s load (ms)', 'catchUp10Ms', 0, 'lower'],
  ['Apply an update of N elements (ms)', 'updateMs', 0, 'lower'],
  ['… of which in the page (ms)', 'updateInPageMs', 0, 'lower'],
  ['… of which main-thread CPU in the viewer (ms)', 'updateCpuMs', 1, 'lower'],
  ['… of that, writing the changed elements\' looks (ms)', 'updatePaintMs', 1, 'lower'],
  ['WebGL draw calls per frame', 'drawsPerFrame', 0, 'lower'],
  ['JS heap used (MB)', 'jsHeapBytes', 1, 'lower', 1e6],
  ['wasm memory (MB)', 'wasmBytes', 1, 'lower', 1e6],
  ['Renderer process RSS (MB)', 'rendererRssBytes', 0, 'lower', 1e6],
  ['GPU process RSS (MB)', 'gpuRssBytes', 0, 'lower', 1e6],
  ['Pick latency (ms)', 'pickMs', 0, 'lower'],
  ['… of which casting the ray, CPU (ms)', 'pickCpuMs', 2, 'lower'],
];

function format(value, digits, scale = 1) {
  if (value === undefined || value === null || !Number.isFinite(value)) return 'n/a';
  return (value / scale).toFixed(digits);
}

function ratio(a, b) {
  // A zero (a catch-up or CPU time below the clock step) has no meaningful ratio.
  return Number.isFinite(a) && Number.isFinite(b) && a !== 0 && b !== 0 ? a / b : NaN;
}

function markdown(runs, machine) {
  const lines = [];
  lines.push(`Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memGB} GB RAM, ${machine.browser} with SwiftShader (software WebGL2), 400×300 viewport. Load average ${machine.loadBefore} before, ${machine.loadAfter} after. ${machine.note}`);
  lines.push('');
  for (const run of runs) {
    // With --viewers naming one, the other's column stays n/a.
    const [t, b] = [run.results.twinscene ?? {}, run.results.babylon ?? {}];
    const measured = run.results.twinscene ?? run.results.babylon;
    lines.push(`### ${run.label}: ${measured.elements} elements (update of N = ${measured.updateCount})`);
    lines.push('');
    lines.push('| metric | twinscene | Babylon.js | twinscene / Babylon |');
    lines.push('|---|---:|---:|---:|');
    for (const [name, key, digits, better, scale] of ROWS) {
      const r = ratio(t[key], b[key]);
      // A page's clock ticks in 0.1 ms steps (Chromium, not cross-origin isolated): a CPU time
      // of 0 was too short to see, not free.
      const tooShort = (value) => key.endsWith('CpuMs') && value === 0;
      const cell = (value) => (tooShort(value) ? '< 0.1' : format(value, digits, scale));
      const ratioText =
        key === 'wasmBytes' ? 'n/a (no wasm)'
        : tooShort(t[key]) || tooShort(b[key]) ? 'n/a (below the 0.1 ms clock step)'
        : Number.isFinite(r) ? `${r.toFixed(2)} (${better} is better)` : 'n/a';
      lines.push(`| ${name} | ${cell(t[key])} | ${cell(b[key])} | ${ratioText} |`);
    }
    lines.push('');
    if (t.farDetailPixels?.some((pixels) => pixels !== null)) {
      lines.push(`twinscene's far detail at the end of the idle, 1 % and 10 % phases: sparse levels from cells of ${t.farDetailPixels.join(' / ')} pixels (2 is the finest; coarser while frames are slower than \`min-fps\`, 10).`, '');
    }
    const errors = [...(t.pageErrors ?? []).map((e) => `twinscene: ${e}`), ...(b.pageErrors ?? []).map((e) => `Babylon: ${e}`)];
    if (errors.length) lines.push(`Page errors: ${errors.map((e) => `\`${e.slice(0, 160)}\``).join('; ')}`, '');
  }
  return lines.join('\n');
}

/** Ratios twinscene/Babylon per metric and size, as horizontal bars on a log2 axis. */
function svgPlot(runs, machine) {
  const metrics = ROWS.filter(([, key]) => key !== 'wasmBytes');
  const rowH = 16;
  // Wide enough for the longest row name beside a ratio's label below 1.
  const left = 300;
  const width = 840;
  const axis = (r) => left + ((Math.log2(r) + 4) / 8) * (width - left - 20); // 1/16 .. 16
  const colors = ['#2563eb', '#f59e0b', '#16a34a', '#dc2626'];
  let y = 50;
  const parts = [];
  for (const [name, key, , better] of metrics) {
    parts.push(`<text x="8" y="${y + 12}" font-size="12">${name} (${better})</text>`);
    runs.forEach((run, i) => {
      const r = ratio(run.results.twinscene?.[key], run.results.babylon?.[key]);
      if (Number.isFinite(r) && r > 0) {
        const clamped = Math.min(16, Math.max(1 / 16, r));
        const [x0, x1] = [axis(1), axis(clamped)].sort((a, b) => a - b);
        parts.push(`<rect x="${x0}" y="${y + i * rowH / runs.length + 2}" width="${Math.max(1, x1 - x0)}" height="${rowH / runs.length - 1}" fill="${colors[i % colors.length]}"/>`);
        parts.push(`<text x="${axis(clamped) + (r >= 1 ? 3 : -3)}" y="${y + (i + 1) * rowH / runs.length}" font-size="9" text-anchor="${r >= 1 ? 'start' : 'end'}">${r.toFixed(2)}</text>`);
      }
    });
    y += rowH + 6;
  }
  const ticks = [1 / 16, 1 / 4, 1, 4, 16]
    .map((t) => `<line x1="${axis(t)}" y1="40" x2="${axis(t)}" y2="${y}" stroke="${t === 1 ? '#000' : '#ccc'}"/><text x="${axis(t)}" y="${y + 14}" font-size="10" text-anchor="middle">${t >= 1 ? t : `1/${1 / t}`}</text>`)
    .join('');
  const legend = runs
    .map((run, i) => `<rect x="${left + i * 170}" y="${y + 24}" width="10" height="10" fill="${colors[i % colors.length]}"/><text x="${left + i * 170 + 14}" y="${y + 33}" font-size="11">${run.label} (${(run.results.twinscene ?? run.results.babylon).elements} el.)</text>`)
    .join('');
  const height = y + 50;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="18" font-size="14" font-weight="bold">twinscene / Babylon.js (log scale; 1 = equal)</text>
<text x="8" y="34" font-size="10">${[`${machine.cpus} × ${machine.cpuModel}`, `${machine.browser} with SwiftShader, 400×300`, machine.note].filter(Boolean).join(', ').replace(/&/g, '&amp;').replace(/</g, '&lt;')}</text>
${ticks}${parts.join('')}${legend}
</svg>`;
}

async function renderPng(svg, file) {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 760, height: 400 }, deviceScaleFactor: 2 });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    await page.locator('svg').screenshot({ path: file });
  } finally {
    await browser.close();
  }
}

/** Writes the table, the SVG and the PNG of a run (measured now, or read back with --from). */
async function report(runs, machine) {
  const md = markdown(runs, machine);
  await writeFile(path.join(OUT, 'render.json'), JSON.stringify({ machine, runs }, null, 2));
  await writeFile(path.join(OUT, 'render.md'), `${md}\n`);
  const svg = svgPlot(runs, machine);
  await writeFile(path.join(OUT, 'render.svg'), svg);
  await renderPng(svg, path.join(OUT, 'render.png'));
  return md;
}

async function main() {
  if (args.from) {
    // Draws an earlier run's report again (after a change to the report), measuring nothing.
    const { machine, runs } = JSON.parse(await readFile(path.resolve(args.from), 'utf8'));
    await mkdir(OUT, { recursive: true });
    await report(runs, machine);
    process.stdout.write(`Written again from ${args.from}: ${path.join(OUT, 'render.md')}, render.json, render.svg, render.png\n`);
    return;
  }
  for (const scene of SCENES) {
    if (!existsSync(path.resolve(REPO_ROOT, scene))) throw new Error(`no scene ${scene}: run cargo xtask gen-facility first`);
  }
  await mkdir(OUT, { recursive: true });
  await prepareSite();
  const browserVersion = await (async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    const version = browser.version();
    await browser.close();
    return version;
  })();
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown CPU',
    memGB: Math.round(os.totalmem() / 2 ** 30),
    browser: `Chromium ${browserVersion}`,
    loadBefore: os.loadavg()[0].toFixed(1),
    note: process.env.TWINSCENE_BENCH_NOTE ?? '',
    date: new Date().toISOString(),
  };
  const started = Date.now();
  const runs = [];
  for (const scene of SCENES) {
    const label = path.basename(path.dirname(scene));
    const results = {};
    for (const kind of VIEWERS) results[kind] = await measure(path.resolve(REPO_ROOT, scene), kind);
    runs.push({ label, scene, results });
  }
  machine.loadAfter = os.loadavg()[0].toFixed(1);
  machine.minutes = ((Date.now() - started) / 60_000).toFixed(1);
  const md = await report(runs, machine);
  process.stdout.write(`${md}\nWritten: ${path.join(OUT, 'render.md')}, render.json, render.svg, render.png (${machine.minutes} min)\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
