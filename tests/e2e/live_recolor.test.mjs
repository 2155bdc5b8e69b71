// The walking skeleton, end to end: a REST PATCH to a twin reaches the server, goes out over the
// live link, is evaluated in the browser, and repaints the element a person is looking at.
//
// Needs a built server (TWINSCENE_BIN, default target/debug/twinscene) and web bundle
// (TWINSCENE_DIST, default target/web). Run: npm run test:e2e

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  REPO_ROOT,
  VIEWPORT,
  hexToRgb,
  hueDistance,
  hueOf,
  openViewer,
  pixelAt,
  readTwinscene,
  startServer,
  waitForReady,
  withDiagnostics,
} from './harness.mjs';

const SCENE = 'scenes/demo.json';
const EDGE_MARGIN_PX = 6;
const MIN_HUE_CHANGE_DEG = 60;
const PIXEL_HUE_TOLERANCE_DEG = 30;
const PIXEL_MIN_SATURATION = 0.25;
const PIXEL_DEADLINE_MS = 10_000;

let server = null;
let viewer = null;
const diagnostics = {
  get server() {
    return server;
  },
  get viewer() {
    return viewer;
  },
};

before(async () => {
  server = await startServer({ scene: SCENE });
});

after(async () => {
  try {
    await viewer?.close();
  } finally {
    await server?.stop();
  }
});

// --- the scene's colour rules, as the scene file states them ------------------------------------

/** The behavior's colour ranges: `visual.ranges`, or those of its first colour visual in `visuals`. */
function colorRangesOf(behavior) {
  const visuals = Array.isArray(behavior?.visuals) ? behavior.visuals : [];
  return visuals.find((visual) => visual?.type === 'color' && Array.isArray(visual.ranges))?.ranges ?? null;
}

/** Numeric ranges are [min, max) with null for an open end. */
function inRange(range, value) {
  return (range.min == null || value >= range.min) && (range.max == null || value < range.max);
}

/** The colour a value shows: the LAST matching range wins (as in ADT 3D Scenes). */
function colorFor(ranges, value) {
  let color = null;
  for (const range of ranges) if (inRange(range, value)) color = range.color.toLowerCase();
  return color;
}

/** Values to try inside a range: its midpoint, or 5 inside an open end. */
function valuesInside(range) {
  const { min, max } = range;
  if (min != null && max != null) return [(min + max) / 2, min, max - (max - min) / 10];
  if (min != null) return [min + 5, min + 1, min];
  if (max != null) return [max - 5, max - 1];
  return [20];
}

/** Every value the test may PATCH with the colour it must produce (respecting overlaps). */
function colorChoices(ranges) {
  const choices = [];
  for (const range of ranges) {
    for (const value of valuesInside(range)) {
      const color = colorFor(ranges, value);
      if (color === range.color.toLowerCase()) {
        choices.push({ value, color, range });
        break;
      }
    }
  }
  return choices;
}

/** A value whose colour a person can tell apart from `current` on screen. */
function pickVisibleChange(ranges, current) {
  const currentHsv = current ? hueOf(hexToRgb(current)) : null;
  const candidates = colorChoices(ranges)
    .filter(({ color }) => color !== current)
    .map((choice) => ({ ...choice, hsv: hueOf(hexToRgb(choice.color)) }))
    .filter(({ hsv }) => hsv.saturation >= PIXEL_MIN_SATURATION)
    .map((choice) => ({
      ...choice,
      hueChange:
        currentHsv && currentHsv.saturation >= PIXEL_MIN_SATURATION
          ? hueDistance(choice.hsv.hue, currentHsv.hue)
          : 180,
    }))
    .filter(({ hueChange }) => hueChange >= MIN_HUE_CHANGE_DEG)
    .sort((a, b) => b.hueChange - a.hueChange);
  return candidates[0] ?? null;
}

function insideViewport([x, y], margin) {
  return x >= margin && y >= margin && x <= VIEWPORT.width - 1 - margin && y <= VIEWPORT.height - 1 - margin;
}

// --- talking to the viewer ------------------------------------------------------------------------

/** PATCHes `/temperature` from inside the page; resolves with the page's performance.now() before the request. */
async function patchTemperatureFromPage(page, baseUrl, twin, value) {
  const { t0, status, body } = await page.evaluate(
    async ({ baseUrl, twin, value }) => {
      const t0 = performance.now();
      const response = await fetch(`${baseUrl}/digitaltwins/${encodeURIComponent(twin)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: JSON.stringify([{ op: 'replace', path: '/temperature', value }]),
      });
      return { t0, status: response.status, body: await response.text() };
    },
    { baseUrl, twin, value },
  );
  assert.equal(status, 204, `PATCH ${twin} temperature=${value} answered ${status}: ${body}`);
  return t0;
}

/** Waits (every animation frame) until the element's published colour is `expected`; returns that publish. */
async function waitForPublishedColor(page, elementId, expected, timeout = 30_000) {
  try {
    const handle = await page.waitForFunction(
      ({ elementId, expected }) => {
        const ts = window.twinscene;
        const color = ts?.elements?.[elementId]?.color;
        return typeof color === 'string' && color.toLowerCase() === expected
          ? { publishedAt: ts.publishedAt, seq: ts.seq }
          : false;
      },
      { elementId, expected },
      { polling: 'raf', timeout },
    );
    return await handle.jsonValue();
  } catch (err) {
    const seen = await readTwinscene(page, (ts) => ({
      live: ts?.live,
      seq: ts?.seq,
      elements: ts?.elements,
    })).catch(() => undefined);
    throw new Error(
      `element ${elementId} was never published with colour ${expected} within ${timeout} ms; ` +
        `last published: live=${seen?.live}, seq=${seen?.seq}, element=${JSON.stringify(seen?.elements?.[elementId])}`,
      { cause: err },
    );
  }
}

/** Polls screenshots until the element's on-screen pixel shows `expected`'s hue; returns what it saw. */
async function waitForPixelHue(page, elementId, expected, sinceMs) {
  const expectedHue = hueOf(hexToRgb(expected)).hue;
  const deadline = performance.now() + PIXEL_DEADLINE_MS;
  let last = null;
  for (;;) {
    const element = await readTwinscene(page, (ts) => ts?.elements).then((elements) => elements?.[elementId]);
    if (element?.screen && insideViewport(element.screen, 0)) {
      const [x, y] = element.screen;
      const rgb = await pixelAt(page, x, y);
      const hsv = hueOf(rgb);
      last = { x, y, rgb, hsv, onTop: element.onTop };
      if (hsv.saturation >= PIXEL_MIN_SATURATION && hueDistance(hsv.hue, expectedHue) <= PIXEL_HUE_TOLERANCE_DEG) {
        return { ...last, latencyMs: performance.now() - sinceMs };
      }
    } else {
      last = { screen: element?.screen ?? null, onTop: element?.onTop };
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `the pixel of element ${elementId} never showed ${expected} (hue ${expectedHue.toFixed(0)}°) within ` +
          `${PIXEL_DEADLINE_MS} ms; last seen: ${describePixel(last)}`,
      );
    }
    await page.waitForTimeout(100);
  }
}

function describePixel(seen) {
  if (!seen) return 'nothing (no screen position published)';
  if (!seen.rgb) return `no pixel: screen=${JSON.stringify(seen.screen)}, onTop=${seen.onTop}`;
  const hex = `#${seen.rgb.map((c) => c.toString(16).padStart(2, '0')).join('')}`;
  return (
    `${hex} rgb(${seen.rgb.join(', ')}) at (${seen.x.toFixed(1)}, ${seen.y.toFixed(1)}), ` +
    `hue ${seen.hsv.hue.toFixed(0)}°, saturation ${seen.hsv.saturation.toFixed(2)}, onTop=${seen.onTop}`
  );
}

async function readJsonError(response) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`expected a JSON body with an "error" field, got: ${text}`);
  }
  // ADT's error shape: {"error": {"code": "...", "message": "..."}}.
  assert.equal(typeof body?.error?.code, 'string', `expected an "error.code" string in ${text}`);
  assert.equal(typeof body?.error?.message, 'string', `expected an "error.message" string in ${text}`);
  assert.ok(body.error.message.length > 0, `expected a non-empty "error.message" in ${text}`);
  return body;
}

// --- the tests ------------------------------------------------------------------------------------

test('a PATCHed temperature repaints its element in the browser', { timeout: 300_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    const scene = JSON.parse(await readFile(path.join(REPO_ROOT, SCENE), 'utf8'));
    const behavior = scene.behaviors?.[0];
    const ranges = colorRangesOf(behavior);
    assert.ok(
      Array.isArray(ranges) && ranges.length >= 2,
      `${SCENE}: behaviors[0] needs a visual of type "color" with ≥ 2 ranges`,
    );
    const sceneElements = new Map((scene.elements ?? []).map((element) => [element.id, element]));
    const behaviorScope =
      Array.isArray(behavior.elements) && behavior.elements.every((id) => typeof id === 'string')
        ? new Set(behavior.elements)
        : null;

    viewer = await openViewer(server.url);
    const { page } = viewer;
    await waitForReady(page);

    await page
      .waitForFunction(() => window.twinscene?.live === 'live' && typeof window.twinscene?.seq === 'number', null, {
        polling: 100,
        timeout: 60_000,
      })
      .catch(async (err) => {
        const seen = await readTwinscene(page, (ts) => ({ live: ts?.live, seq: ts?.seq })).catch(() => undefined);
        throw new Error(`the live link never came up: ${JSON.stringify(seen)}`, { cause: err });
      });
    // The scene came with the live seq its twins are as of (x-twinscene-seq): the viewer resumed
    // from it, and the server never had to send it a snapshot of every twin.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const snapshots = Number(/^twinscene_snapshots_out_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.equal(snapshots, 0, 'the viewer took a snapshot although its scene named its live seq');

    // An element a person can see, whose colour the behavior controls.
    const published = await readTwinscene(page, (ts) => ({ seq: ts.seq, elements: ts.elements }));
    const visible = Object.entries(published.elements ?? {})
      .filter(([, element]) => element.onTop === true && Array.isArray(element.screen))
      .filter(([, element]) => insideViewport(element.screen, 0))
      .filter(([id]) => sceneElements.has(id) && (!behaviorScope || behaviorScope.has(id)))
      .map(([id, element]) => ({
        id,
        ...element,
        color: element.color?.toLowerCase() ?? null,
        change: pickVisibleChange(ranges, element.color?.toLowerCase() ?? null),
        awayFromEdges: insideViewport(element.screen, EDGE_MARGIN_PX),
      }))
      .filter((element) => element.change);
    // The canvas must be what is on top in the page too (the status line overlays its corner).
    const overlayChecks = await page.evaluate(
      ({ points, margin }) => {
        const canvasAt = (x, y) => document.elementFromPoint(x, y)?.tagName === 'CANVAS';
        return points.map(([x, y]) => ({
          canvas: canvasAt(x, y),
          canvasAround: [[-margin, 0], [margin, 0], [0, -margin], [0, margin]].every(([dx, dy]) =>
            canvasAt(x + dx, y + dy),
          ),
        }));
      },
      { points: visible.map((element) => element.screen), margin: EDGE_MARGIN_PX },
    );
    const candidates = visible
      .map((element, i) => ({ ...element, ...overlayChecks[i] }))
      .filter((element) => element.canvas);
    const score = (element) => Number(element.awayFromEdges) + Number(element.canvasAround);
    candidates.sort((a, b) => score(b) - score(a));
    const target = candidates[0];
    assert.ok(
      target,
      `no element of ${SCENE} is on top (in the 3D view and in the page) at a published screen point inside the ` +
        `${VIEWPORT.width}x${VIEWPORT.height} viewport with a colour change to show; ` +
        `published elements: ${JSON.stringify(published.elements)}`,
    );
    const { id, twin, color: originalColor, change } = target;
    console.log(
      `element ${id} (twin ${twin}) at (${target.screen.join(', ')}) shows ${originalColor}; ` +
        `PATCH temperature=${change.value} → ${change.color}`,
    );

    // PATCH → published state.
    const seqBefore = published.seq;
    const patchedAt = performance.now(); // Node's clock, for the screenshot-based latency
    const t0 = await patchTemperatureFromPage(page, server.url, twin, change.value);
    const repainted = await waitForPublishedColor(page, id, change.color);
    console.log(`PATCH→published latency: ${(repainted.publishedAt - t0).toFixed(1)} ms`);
    assert.equal(typeof repainted.seq, 'number', 'seq is a number after a live update');
    assert.ok(repainted.seq > seqBefore, `seq increased (${seqBefore} → ${repainted.seq})`);

    // PATCH → pixels a person sees.
    const pixel = await waitForPixelHue(page, id, change.color, patchedAt);
    console.log(`PATCH→pixel latency: ≤ ${pixel.latencyMs.toFixed(0)} ms; pixel ${describePixel(pixel)}`);

    // And back: a value in the original range restores the original colour.
    const restore = originalColor
      ? colorChoices(ranges).find(({ color }) => color === originalColor)
      : pickVisibleChange(ranges, change.color);
    assert.ok(restore, `no range of ${SCENE} produces the original colour ${originalColor}`);
    const t1 = await patchTemperatureFromPage(page, server.url, twin, restore.value);
    const restored = await waitForPublishedColor(page, id, restore.color);
    console.log(
      `PATCH temperature=${restore.value} → ${restore.color}: published after ${(restored.publishedAt - t1).toFixed(1)} ms`,
    );
    assert.ok(restored.seq > repainted.seq, `seq increased (${repainted.seq} → ${restored.seq})`);

    viewer.assertNoPanics();
  }),
);

test('PATCHing an unknown twin answers 404 with an error message', { timeout: 30_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    const response = await fetch(`${server.url}/digitaltwins/${encodeURIComponent(`no-such-twin-${Date.now()}`)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'replace', path: '/temperature', value: 21 }]),
    });
    assert.equal(response.status, 404);
    await readJsonError(response);
  }),
);

test('PATCHing malformed JSON answers 400 with an error message', { timeout: 30_000 }, () =>
  withDiagnostics(diagnostics, async () => {
    const scene = JSON.parse(await readFile(path.join(REPO_ROOT, SCENE), 'utf8'));
    const twin = scene.elements?.[0]?.twin;
    assert.equal(typeof twin, 'string', `${SCENE}: elements[0].twin`);
    const response = await fetch(`${server.url}/digitaltwins/${encodeURIComponent(twin)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json-patch+json' },
      body: '[{"op": "replace", "path": "/temperature", "value": ',
    });
    assert.equal(response.status, 400);
    await readJsonError(response);
  }),
);
