// Browsing a facility: picking an element opens the inspector with its twin, Esc closes it,
// a relationship in the inspector selects the related element, search flies to a twin, and
// ghosting is switched from the toolbar. Everything is read from what the page shows
// (window.twinscene and the <twin-scene> panels), never from timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { panelText, readTwinscene, useViewer, VIEWPORT, waitForElement, waitForState, withDiagnostics } from './harness.mjs';

const context = useViewer({ live: false });

/** An element the user sees at its published screen point, clear of the panels. */
async function visibleElement(page) {
  const [id, element] = await waitForElement(
    page,
    (_, e) => e.onTop && e.screen && document.elementFromPoint(e.screen[0], e.screen[1])?.tagName === 'CANVAS',
  );
  return { id, ...element };
}

test('clicking an element opens the inspector with its twin; Esc closes it', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const target = await visibleElement(page);
    // Pointing highlights first; the click then selects what is under the pointer.
    await page.mouse.move(target.screen[0], target.screen[1]);
    await waitForState(page, (id) => window.twinscene.hovered === id, target.id);
    await page.mouse.click(target.screen[0], target.screen[1]);
    await waitForState(page, (id) => window.twinscene.selected === id, target.id);
    const inspector = await readTwinscene(page, (ts) => ts.inspector);
    assert.equal(inspector.twinId, target.twin);
    assert.equal(typeof inspector.twin.temperature, 'number');
    await waitForState(page, (twin) => {
      const panel = document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="inspector"]');
      return panel.classList.contains('open') && panel.innerText.includes(twin);
    }, target.twin);
    assert.match(await panelText(page, 'inspector'), /temperature/);

    await page.keyboard.press('Escape');
    await waitForState(page, () => window.twinscene.selected === null);
    await waitForState(page, () =>
      !document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="inspector"]').classList.contains('open'));
    context.viewer.assertNoPanics();
  }),
);

test('a click right after moving onto an element selects it, even within one slow frame', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    await page.evaluate(() => document.querySelector('twin-scene').select(null));
    await waitForState(page, () => window.twinscene.selected === null);
    // Away from every element first, so that the click's frame is the first to see it hovered.
    await page.mouse.move(2, 2);
    await waitForState(page, () => window.twinscene.hovered === null);
    const target = await visibleElement(page);
    await page.mouse.move(target.screen[0], target.screen[1]);
    await page.mouse.click(target.screen[0], target.screen[1]);
    await waitForState(page, (id) => window.twinscene.selected === id, target.id);
    await page.keyboard.press('Escape');
    await waitForState(page, () => window.twinscene.selected === null);
    context.viewer.assertNoPanics();
  }),
);

test('the inspector shows live values with their DTDL units as deltas arrive', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const target = await visibleElement(page);
    await page.evaluate((id) => document.querySelector('twin-scene').select(id), target.id);
    await waitForState(page, (id) => window.twinscene.inspector?.element === id, target.id);
    const response = await fetch(`${context.server.url}/digitaltwins/${encodeURIComponent(target.twin)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'replace', path: '/temperature', value: 12.34 }]),
    });
    assert.equal(response.status, 204);
    await waitForState(page, () => {
      const cell = document.querySelector('twin-scene').shadowRoot.querySelector('[data-property="temperature"]');
      // The unit comes from the twin's DTDL model (the demo's models say degreeCelsius).
      return cell?.textContent === '12.34 °C';
    });
    assert.equal(await readTwinscene(page, (ts) => ts.inspector.units.temperature), '°C');
    context.viewer.assertNoPanics();
  }),
);

test('a relationship in the inspector selects the related element', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const roof = await readTwinscene(page, (ts) => Object.keys(ts.elements).find((id) => id.startsWith('roof-')));
    await page.evaluate((id) => document.querySelector('twin-scene').select(id), roof);
    await waitForState(page, (id) => window.twinscene.inspector?.element === id, roof);
    const related = await readTwinscene(page, (ts) => ts.inspector.relationships.find((r) => r.element));
    assert.ok(related, 'the demo roof covers rooms that have elements');
    await page.locator(`twin-scene [data-role="inspector"] [data-element="${related.element}"]`).click();
    await waitForState(page, (id) => window.twinscene.selected === id, related.element);
    assert.equal(await readTwinscene(page, (ts) => ts.inspector.twinId), related.twin);
    context.viewer.assertNoPanics();
  }),
);

test('searching a room by name and picking the result flies to it', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    await page.keyboard.press('Escape');
    await page.evaluate(() => document.querySelector('twin-scene').command({ type: 'resetView' }));
    const input = page.locator('twin-scene input[type="search"]');
    await input.fill('Room B103');
    await waitForState(page, () => window.twinscene.search?.results?.length > 0);
    const results = await readTwinscene(page, (ts) => ts.search.results);
    assert.deepEqual(results, ['room-b103']);
    const center = [VIEWPORT.width / 2, VIEWPORT.height / 2];
    await page.locator('twin-scene [data-role="results"] button').first().click();
    await waitForState(page, () => window.twinscene.selected === 'room-b103');
    // The camera flies until the room is in the middle of the view.
    await waitForState(
      page,
      ([cx, cy]) => {
        const screen = window.twinscene.elements['room-b103'].screen;
        return screen && Math.hypot(screen[0] - cx, screen[1] - cy) < 20;
      },
      center,
    );
    context.viewer.assertNoPanics();
  }),
);

test('the ghost button turns ghosting on and off', { timeout: 60_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const ghost = page.locator('twin-scene [data-role="ghost"]');
    await ghost.click();
    const pressed = () =>
      document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="ghost"]').getAttribute('aria-pressed');
    await waitForState(page, () => window.twinscene.ghosting === true);
    await waitForState(page, `(${pressed})() === 'true'`);
    await ghost.click();
    await waitForState(page, () => window.twinscene.ghosting === false);
    await waitForState(page, `(${pressed})() === 'false'`);
    context.viewer.assertNoPanics();
  }),
);

test('the inspector shows the popover widgets of the selected element', { timeout: 60_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const room = 'room-a101';
    await page.evaluate((id) => document.querySelector('twin-scene').select(id), room);
    await waitForState(page, (id) => window.twinscene.inspector?.element === id, room);
    const { widgets, twin } = await readTwinscene(page, (ts) => ts.inspector);
    const gauge = widgets.find((w) => w.type === 'gauge');
    assert.equal(gauge.value, twin.temperature, 'the gauge shows the twin\'s temperature');
    assert.equal(widgets.find((w) => w.type === 'link').url, `/digitaltwins/${twin.$dtId}`);
    await waitForState(page, () => {
      const panel = document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="inspector"]');
      return ['gauge', 'trend', 'link'].every((type) => panel.querySelector(`[data-widget="${type}"]`));
    });
    context.viewer.assertNoPanics();
  }),
);

test('choosing a viewpoint flies the camera to it', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const viewpoints = await readTwinscene(page, (ts) => ts.viewpoints.map((v) => v.id));
    assert.ok(viewpoints.includes('roof'), `the demo has a roof viewpoint: ${viewpoints}`);
    await page.locator('twin-scene select[data-role="viewpoints"]').selectOption('roof');
    const center = [VIEWPORT.width / 2, VIEWPORT.height / 2];
    // The roof viewpoint frames the roof element: its center comes to the middle of the view.
    await waitForState(
      page,
      ([cx, cy]) => {
        const screen = window.twinscene.elements['roof-184483'].screen;
        return screen && Math.hypot(screen[0] - cx, screen[1] - cy) < 20;
      },
      center,
    );
    context.viewer.assertNoPanics();
  }),
);
