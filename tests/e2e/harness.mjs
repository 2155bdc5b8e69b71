// Browser end-to-end harness: starts the `twinscene` server, drives the system Chromium through
// playwright-core, and reads what a person would see (published viewer state and screen pixels).
//
// What this harness relies on from the Rust side:
// - `twinscene serve --scene S --port 0 --dist D` prints `listening on http://127.0.0.1:PORT` on
//   stdout (newline-terminated, so Rust's line-buffered stdout flushes it) and exits on SIGTERM.
// - The page publishes `window.twinscene` (state, ready, error, seq, live, publishedAt, elements).
// - A Rust panic in the wasm app reaches the console as a message containing `panicked at`
//   (console_error_panic_hook does this).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

/** The repository root (two levels above this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How many pixels of the page within `clip` have the hue of `hex` (saturated ones only: a
 * gray pixel has no hue). */
export async function countHue(page, hex, clip) {
  const target = hueOf(hexToRgb(hex)).hue;
  const image = decodePng(await page.screenshot({ type: 'png', clip, scale: 'css' }));
  let matching = 0;
  for (let py = 0; py < image.height; py += 1) {
    for (let px = 0; px < image.width; px += 1) {
      const { hue, saturation } = hueOf(image.rgbAt(px, py));
      if (saturation > 0.4 && hueDistance(hue, target) < 25) matching += 1;
    }
  }
  return matching;
}

/** Waits until, around an element's published screen position, at least `minPixels` pixels
 * have the hue of `hex` (the camera may still be framing the model, so the position is read
 * anew each time); fails with what it saw once `deadlineMs` have passed. */
export async function waitForHueAround(page, elementId, hex, { radius = 14, minPixels = 10, deadlineMs = 20_000 } = {}) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const [x, y] = (await readTwinscene(page, (ts) => ts.elements))[elementId].screen.map(Math.round);
    const clip = { x: Math.max(0, x - radius), y: Math.max(0, y - radius), width: 2 * radius + 1, height: 2 * radius + 1 };
    const matching = await countHue(page, hex, clip);
    const seen = `${matching} pixels near ${x},${y} have the hue of ${hex}`;
    if (matching >= minPixels) return seen;
    assert.ok(Date.now() < deadline, seen);
    await page.waitForTimeout(250);
  }
}

/** True when the user asked for server and browser output even on success. */
export const VERBOSE = Boolean(process.env.TWINSCENE_E2E_VERBOSE);

export const CHROMIUM_PATH = process.env.TWINSCENE_CHROMIUM ?? '/usr/bin/chromium';

/** Flags verified for WebGL2 through ANGLE + SwiftShader in headless Chromium on this machine. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--use-gl=angle',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--ignore-gpu-blocklist',
  '--enable-webgl',
];

export const VIEWPORT = { width: 400, height: 300 };

const LISTENING_RE = /listening on (http:\/\/\S+)/;
// Strips ANSI colour/style sequences (a tracing subscriber may colour its output even into a pipe).
const ANSI_RE = /\u001b\[[0-9;?]*[ -\/]*[@-~]/g;
const PANIC_MARK = 'panicked at';
// winit on the web may throw this on purpose to unwind out of its event loop; it is not an error.
const BENIGN_PAGE_ERRORS = ["Using exceptions for control flow, don't mind me"];

const SERVER_START_TIMEOUT_MS = 30_000;
const SERVER_STOP_GRACE_MS = 5_000;

// Children still alive when this Node process exits (e.g. after an uncaught error) are killed.
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function stripAnsi(text) {
  return text.replace(ANSI_RE, '');
}

function indent(text) {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

/**
 * Starts `twinscene serve` on an ephemeral port and resolves once it says where it listens.
 *
 * @param {{ scene?: string, extraArgs?: string[] }} [options]
 * @returns {Promise<{ url: string, stop: () => Promise<void>, output: () => string, process: import('node:child_process').ChildProcess }>}
 */
export async function startServer({ scene = 'scenes/demo.json', extraArgs = [], port = 0 } = {}) {
  const bin = process.env.TWINSCENE_BIN ?? 'target/debug/twinscene';
  const dist = process.env.TWINSCENE_DIST ?? 'target/web';
  const binPath = path.resolve(REPO_ROOT, bin);
  if (!existsSync(binPath)) {
    throw new Error(
      `twinscene server binary not found at ${binPath}: build it first (cargo build -p twinscene-server) ` +
        'or point TWINSCENE_BIN at it',
    );
  }
  // In memory unless a test asks for a database: every test starts from the scene's twins.
  const storage = extraArgs.includes('--db') ? [] : ['--memory'];
  const args = ['serve', '--scene', scene, '--port', String(port), '--dist', dist, ...storage, ...extraArgs];
  const child = spawn(binPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);

  let stdout = '';
  let stderr = '';
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveChildren.delete(child);
      resolve(exitInfo);
    });
  });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    if (VERBOSE) process.stderr.write(`[twinscene stdout] ${chunk}`);
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    if (VERBOSE) process.stderr.write(`[twinscene stderr] ${chunk}`);
  });

  const output = () =>
    `$ ${bin} ${args.join(' ')}\n--- stdout ---\n${stripAnsi(stdout)}\n--- stderr ---\n${stripAnsi(stderr)}` +
    (exitInfo ? `\n--- exited: code ${exitInfo.code}, signal ${exitInfo.signal} ---` : '');

  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (exitInfo) return;
      child.kill('SIGTERM');
      let timer;
      const forced = new Promise((resolve) => {
        timer = setTimeout(() => {
          if (!exitInfo) child.kill('SIGKILL');
          resolve();
        }, SERVER_STOP_GRACE_MS);
      });
      await Promise.race([exited, forced]);
      clearTimeout(timer);
      await exited;
    })();
    return stopping;
  };

  const url = await new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      child.stdout.off('data', check);
      fn(value);
    };
    const check = () => {
      const match = LISTENING_RE.exec(stripAnsi(stdout));
      if (match) finish(resolve, match[1].replace(/[.,;)\]'"]+$/, '').replace(/\/+$/, ''));
    };
    child.stdout.on('data', check);
    const poll = setInterval(check, 50);
    const timer = setTimeout(() => {
      finish(
        reject,
        new Error(
          `twinscene did not print "listening on http://..." within ${SERVER_START_TIMEOUT_MS / 1000} s\n` +
            indent(output()),
        ),
      );
    }, SERVER_START_TIMEOUT_MS);
    child.once('error', (err) => {
      finish(reject, new Error(`could not start ${binPath}: ${err.message}\n${indent(output())}`));
    });
    exited.then(() => {
      check(); // the line may have arrived together with the exit
      finish(reject, new Error(`twinscene exited before it was listening\n${indent(output())}`));
    });
  }).catch(async (err) => {
    await stop();
    throw err;
  });

  return { url, stop, output, process: child };
}

// Per-page console guard state, so that waitForReady can see panics logged before it was called.
const guards = new WeakMap();

function isBenignPageError(text) {
  return BENIGN_PAGE_ERRORS.some((benign) => text.includes(benign));
}

function formatEntry(entry) {
  return `[${entry.type}] ${entry.text}`;
}

function installConsoleGuard(page) {
  const consoleLog = [];
  const pageErrors = [];
  const panicListeners = new Set();
  const notifyFatal = (message) => {
    for (const listener of panicListeners) listener(message);
  };
  page.on('console', (msg) => {
    const entry = { type: msg.type(), text: msg.text(), at: Date.now() };
    consoleLog.push(entry);
    if (VERBOSE) process.stderr.write(`[browser ${entry.type}] ${entry.text}\n`);
    if (entry.text.includes(PANIC_MARK)) notifyFatal(`console ${formatEntry(entry)}`);
  });
  page.on('pageerror', (error) => {
    const text = error?.stack || String(error);
    const entry = { type: 'pageerror', text, at: Date.now() };
    consoleLog.push(entry);
    if (VERBOSE) process.stderr.write(`[browser pageerror] ${text}\n`);
    if (isBenignPageError(text)) return;
    pageErrors.push(entry);
    if (text.includes(PANIC_MARK) || /RuntimeError: unreachable/.test(text)) notifyFatal(`uncaught ${text}`);
  });
  page.on('crash', () => {
    const entry = { type: 'crash', text: 'the page crashed (renderer process gone)', at: Date.now() };
    consoleLog.push(entry);
    pageErrors.push(entry);
    notifyFatal(entry.text);
  });
  const guard = {
    consoleLog,
    pageErrors,
    /** Messages that count as panics or uncaught errors so far. */
    problems() {
      return [
        ...consoleLog.filter((e) => e.type !== 'pageerror' && e.text.includes(PANIC_MARK)),
        ...pageErrors,
      ];
    },
    /** Calls `listener(message)` on every later panic, uncaught wasm trap or crash; returns an unsubscribe function. */
    onFatal(listener) {
      panicListeners.add(listener);
      return () => panicListeners.delete(listener);
    },
  };
  guards.set(page, guard);
  return guard;
}

/** The browser console so far, one line per message (for failure reports). */
export function formatConsoleLog(consoleLog, { last = 200 } = {}) {
  const shown = consoleLog.slice(-last);
  const skipped = consoleLog.length - shown.length;
  return (skipped > 0 ? `... ${skipped} earlier messages\n` : '') + shown.map(formatEntry).join('\n');
}

/**
 * Launches headless Chromium (fresh profile, 400x300 CSS px at device scale 1) and opens the viewer.
 * The console guard is installed before navigation, so nothing the app logs while booting is missed.
 *
 * @param {string} url the server's base URL, e.g. http://127.0.0.1:1234
 * @param {{ path?: string }} [options]
 */
export async function openViewer(url, { path: pagePath = '/' } = {}) {
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'twinscene-e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: VIEWPORT,
      deviceScaleFactor: 1,
    });
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true });
    throw err;
  }

  let closed = null;
  const close = () => {
    closed ??= (async () => {
      try {
        await context.close();
      } finally {
        await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
      }
    })();
    return closed;
  };

  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const guard = installConsoleGuard(page);
    const assertNoPanics = () => {
      const problems = guard.problems();
      if (problems.length > 0) {
        throw new Error(
          `the page panicked or threw ${problems.length} time(s):\n${indent(problems.map(formatEntry).join('\n'))}`,
        );
      }
    };
    await page.goto(new URL(pagePath, url).href, { waitUntil: 'load', timeout: 60_000 });
    return { page, context, consoleLog: guard.consoleLog, assertNoPanics, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Waits until the viewer says it is ready (`window.twinscene.ready === true`), failing fast when it
 * reports `state: 'failed'`, when a Rust panic reaches the console, or when the page crashes.
 */
export async function waitForReady(page, timeoutMs = 180_000) {
  const guard = guards.get(page) ?? installConsoleGuard(page);
  const early = guard.problems().find((e) => e.text.includes(PANIC_MARK) || e.type === 'crash');
  if (early) throw new Error(`the viewer panicked before it was ready: ${formatEntry(early)}`);

  let unsubscribe = () => {};
  const panicked = new Promise((_, reject) => {
    unsubscribe = guard.onFatal((message) =>
      reject(new Error(`the viewer panicked before it was ready: ${message}`)),
    );
  });
  const ready = page.waitForFunction(
    () => window.twinscene?.ready === true || window.twinscene?.state === 'failed',
    null,
    { timeout: timeoutMs, polling: 100 },
  );
  ready.catch(() => {}); // the race below may settle first; keep a late rejection from going unhandled
  try {
    await Promise.race([ready, panicked]);
  } catch (err) {
    if (err?.name === 'TimeoutError' || /Timeout .*exceeded/.test(String(err?.message))) {
      const state = await readTwinscene(page, (ts) => ({ state: ts?.state, error: ts?.error })).catch(
        () => undefined,
      );
      throw new Error(
        `the viewer was not ready within ${timeoutMs} ms (window.twinscene: ${JSON.stringify(state) ?? 'absent'})`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    unsubscribe();
  }
  const { state, error } = await page.evaluate(() => ({
    state: window.twinscene?.state,
    error: window.twinscene?.error ?? null,
  }));
  if (state === 'failed') throw new Error(`the viewer failed to start: ${error ?? '(no error message)'}`);
}

/** Reads (a projection of) `window.twinscene` afresh; `pick` runs in the page. */
export function readTwinscene(page, pick = (ts) => ts) {
  return page.evaluate(`(${pick.toString()})(window.twinscene)`);
}

/** Waits until the page publishes an element for which `test(id, element)` holds, and returns
 * `[id, element]`. `test` is run in the page: it can use only its arguments. The viewer says it
 * is ready a frame or two before its first batched frame, when nothing is on top yet: tests
 * that need an element the user sees wait for it here. */
export async function waitForElement(page, test, timeoutMs = 30_000) {
  // `test` runs in the page, so it sees none of the caller's variables (and, by these names,
  // none of this expression's).
  const find = `Object.entries(window.twinscene?.elements ?? {}).find(([key__, element__]) => (${test.toString()})(key__, element__))`;
  try {
    const found = await page.waitForFunction(`${find} ?? false`, null, { timeout: timeoutMs, polling: 100 });
    return await found.jsonValue();
  } catch (error) {
    const elements = await readTwinscene(page, (ts) => ts?.elements).catch(() => undefined);
    throw new Error(`no published element passes ${test}: ${JSON.stringify(elements)?.slice(0, 4000)}`, { cause: error });
  }
}

/** `#rrggbb` (or `#rgb`) to [r, g, b] in 0..255. */
export function hexToRgb(hex) {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(hex).trim());
  if (!m) throw new Error(`not a #rrggbb colour: ${JSON.stringify(hex)}`);
  let digits = m[1];
  if (digits.length === 3) digits = [...digits].map((d) => d + d).join('');
  return [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
}

/**
 * HSV of an [r, g, b] (0..255) colour: `hue` in degrees [0, 360) (0 for greys), `saturation` and
 * `value` in 0..1.
 */
export function hueOf([r, g, b]) {
  const [rn, gn, bn] = [r / 255, g / 255, b / 255];
  const max = Math.max(rn, gn, bn);
  const min = Math.min(rn, gn, bn);
  const delta = max - min;
  let hue = 0;
  if (delta > 0) {
    if (max === rn) hue = 60 * (((gn - bn) / delta) % 6);
    else if (max === gn) hue = 60 * ((bn - rn) / delta + 2);
    else hue = 60 * ((rn - gn) / delta + 4);
  }
  if (hue < 0) hue += 360;
  return { hue, saturation: max === 0 ? 0 : delta / max, value: max };
}

/** Shortest angular distance between two hues, in degrees (0..180). */
export function hueDistance(a, b) {
  const d = Math.abs(a - b) % 360;
  return d > 180 ? 360 - d : d;
}

/**
 * The RGB a person sees at CSS pixel (x, y): a screenshot of that one pixel (so compositing,
 * tone mapping and anything drawn over the canvas count), decoded in Node. The WebGL canvas is not
 * read directly because its drawing buffer is not preserved.
 *
 * @returns {Promise<[number, number, number]>}
 */
export async function pixelAt(page, x, y) {
  const px = Math.floor(x);
  const py = Math.floor(y);
  const png = await page.screenshot({ type: 'png', clip: { x: px, y: py, width: 1, height: 1 }, scale: 'css' });
  const image = decodePng(png);
  return image.rgbAt(0, 0);
}

/**
 * A minimal PNG decoder (8-bit greyscale/RGB/RGBA, optionally with alpha, non-interlaced — what
 * Chromium's screenshots are), using only node:zlib.
 */
export function decodePng(buffer) {
  const SIGNATURE = '89504e470d0a1a0a';
  if (buffer.subarray(0, 8).toString('hex') !== SIGNATURE) throw new Error('not a PNG');
  let offset = 8;
  let header = null;
  const idat = [];
  while (offset < buffer.length) {
    const length = buffer.readUInt32BE(offset);
    const type = buffer.toString('latin1', offset + 4, offset + 8);
    const data = buffer.subarray(offset + 8, offset + 8 + length);
    offset += 12 + length;
    if (type === 'IHDR') {
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        bitDepth: data[8],
        colorType: data[9],
        interlace: data[12],
      };
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
  }
  if (!header) throw new Error('PNG without IHDR');
  const channelsByType = { 0: 1, 2: 3, 4: 2, 6: 4 };
  const channels = channelsByType[header.colorType];
  if (header.bitDepth !== 8 || !channels || header.interlace !== 0) {
    throw new Error(
      `unsupported PNG (bit depth ${header.bitDepth}, colour type ${header.colorType}, interlace ${header.interlace})`,
    );
  }
  const { width, height } = header;
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(idat));
  const pixels = Buffer.alloc(stride * height);
  for (let row = 0; row < height; row++) {
    const filter = raw[row * (stride + 1)];
    const src = raw.subarray(row * (stride + 1) + 1, (row + 1) * (stride + 1));
    const out = pixels.subarray(row * stride, (row + 1) * stride);
    const prev = row > 0 ? pixels.subarray((row - 1) * stride, row * stride) : null;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[i - channels] : 0;
      const b = prev ? prev[i] : 0;
      const c = prev && i >= channels ? prev[i - channels] : 0;
      let predictor;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad PNG filter type ${filter} in row ${row}`);
      }
      out[i] = (src[i] + predictor) & 0xff;
    }
  }
  return {
    width,
    height,
    channels,
    pixels,
    rgbAt(x, y) {
      const i = (y * width + x) * channels;
      return channels >= 3 ? [pixels[i], pixels[i + 1], pixels[i + 2]] : [pixels[i], pixels[i], pixels[i]];
    },
  };
}

/**
 * Runs `body`; if it throws, prints the server's output and the browser console before rethrowing
 * (and prints them anyway when TWINSCENE_E2E_VERBOSE is set).
 *
 * @param {{ server?: { output: () => string } | null, viewer?: { consoleLog: Array<{type: string, text: string}> } | null }} sources
 */
export async function withDiagnostics(sources, body) {
  try {
    return await body();
  } catch (err) {
    printDiagnostics(sources, 'test failed');
    throw err;
  }
}

export function printDiagnostics({ server, viewer } = {}, why = 'diagnostics') {
  const parts = [];
  if (server) parts.push(`=== twinscene server output (${why}) ===\n${server.output()}`);
  if (viewer) parts.push(`=== browser console (${why}) ===\n${formatConsoleLog(viewer.consoleLog)}`);
  if (parts.length > 0) process.stderr.write(`${parts.join('\n')}\n`);
}

/** Waits until `predicate` (a function or an expression string) holds in the page. */
export function waitForState(page, predicate, arg, timeout = 60_000) {
  return page.waitForFunction(predicate, arg, { polling: 100, timeout });
}

/** Waits until the viewer has drawn `frames` more frames (so what is on screen is current),
 * and, with `seconds`, until at least that long has passed in the page as well. */
export async function framesLater(page, frames, seconds = 0) {
  const start = await page.evaluate(() => [document.querySelector('twin-scene').frameCount, performance.now()]);
  await waitForState(
    page,
    ([count, at, frames, seconds]) =>
      document.querySelector('twin-scene').frameCount >= count + frames && performance.now() - at >= seconds * 1000,
    [...start, frames, seconds],
  );
}

/** Pixels of the whole page (every second one each way; overlays included) with a saturated
 * color, as style colors are. */
export async function saturatedPixels(page) {
  const image = decodePng(await page.screenshot({ type: 'png', scale: 'css' }));
  let count = 0;
  for (let y = 0; y < image.height; y += 2) {
    for (let x = 0; x < image.width; x += 2) {
      if (hueOf(image.rgbAt(x, y)).saturation > 0.4) count += 1;
    }
  }
  return count;
}

/**
 * One server and one viewer for all tests of a file: registers node:test `before`/`after`
 * hooks and returns `{ server, viewer, diagnostics }`, filled in once the viewer (on the page at
 * `path`) is ready (and its live link is up, unless `live` is false). `scene` replaces the demo
 * scene; `prepare` runs first (to generate files the scene needs, say).
 */
export function useViewer({ live = true, path: pagePath = '/', scene = undefined, prepare = undefined } = {}) {
  const context = { server: undefined, viewer: undefined, diagnostics: {} };
  before(async () => {
    await prepare?.();
    context.server = await startServer(scene ? { scene } : undefined);
    context.diagnostics.server = context.server;
    context.viewer = await openViewer(context.server.url, { path: pagePath });
    context.diagnostics.viewer = context.viewer;
    await waitForReady(context.viewer.page);
    if (live) await waitForState(context.viewer.page, () => window.twinscene.live === 'live');
  });
  after(async () => {
    await context.viewer?.close();
    await context.server?.stop();
  });
  return context;
}

/** Sets a twin's `temperature` through the server's REST API (a JSON Patch `replace`), as a
 * data source would, and asserts the server took it. */
export async function setTemperature(serverUrl, twin, value) {
  const response = await fetch(`${serverUrl}/digitaltwins/${encodeURIComponent(twin)}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'replace', path: '/temperature', value }]),
  });
  assert.equal(response.status, 204, `PATCH ${twin} temperature=${value}: ${await response.text()}`);
}

/** Text of a panel (by `data-role`) in the <twin-scene> element's shadow root. */
export function panelText(page, role) {
  return page.evaluate(
    (role) => document.querySelector('twin-scene').shadowRoot.querySelector(`[data-role="${role}"]`)?.innerText ?? '',
    role,
  );
}
