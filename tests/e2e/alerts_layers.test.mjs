// Alerts and layers as a user meets them: a badge appears over an element when its twin
// crosses the scene's threshold and goes away when it recovers; clicking the badge selects the
// element; switching a layer off removes the looks of its behaviors and on brings them back.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { framesLater, readTwinscene, setTemperature, useViewer, waitForElement, waitForState, withDiagnostics } from './harness.mjs';

const context = useViewer();

const patchTemperature = (twin, value) => setTemperature(context.server.url, twin, value);

const badgeShown = (id) =>
  Boolean(document.querySelector('twin-scene').shadowRoot.querySelector(`[data-alert-element="${id}"]`));

test('an alert badge appears when a room overheats and disappears when it cools', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const [id, element] = await readTwinscene(page, (ts) =>
      Object.entries(ts.elements).find(([key, e]) => key.startsWith('room-') && e.badges.length === 0));
    await patchTemperature(element.twin, 35);
    await waitForState(page, (id) => window.twinscene.elements[id].badges.length === 1, id);
    const badge = await readTwinscene(page, (ts) => ts.elements);
    assert.equal(badge[id].badges[0].icon, 'Warning');
    assert.match(badge[id].badges[0].label, /35 °C$/);
    await waitForState(page, `(${badgeShown})(${JSON.stringify(id)})`);
    const alertList = () => document.querySelector('twin-scene').shadowRoot.querySelector('[data-role="alerts"]').innerText;
    await waitForState(page, `(${alertList})().includes(${JSON.stringify(badge[id].badges[0].label)})`);

    // The badge follows the camera: zooming moves the element on screen and its badge with it,
    // in publishes that keep the alerts array (no alert changed).
    const badgeAt = (id) => {
      const node = document.querySelector('twin-scene').shadowRoot.querySelector(`[data-alert-element="${id}"]`);
      return node && [parseFloat(node.style.left), parseFloat(node.style.top)];
    };
    const before = await page.evaluate(`(${badgeAt})(${JSON.stringify(id)})`);
    await page.evaluate(() => {
      window.__alerts = window.twinscene.alerts;
    });
    await page.keyboard.down('Equal');
    await framesLater(page, 10);
    await page.keyboard.up('Equal');
    await waitForState(
      page,
      `((at, before) => at && Math.hypot(at[0] - before[0], at[1] - before[1]) > 3)((${badgeAt})(${JSON.stringify(id)}), ${JSON.stringify(before)})`,
    );
    assert.ok(await page.evaluate(() => window.twinscene.alerts === window.__alerts), 'the camera move kept the alerts array');
    // Back to the framed view, and settled there (the badge where it started), before the
    // steps below point at elements by their screen positions.
    await page.evaluate(() => document.querySelector('twin-scene').command({ type: 'resetView' }));
    await waitForState(
      page,
      `((at, before) => at && Math.hypot(at[0] - before[0], at[1] - before[1]) < 2)((${badgeAt})(${JSON.stringify(id)}), ${JSON.stringify(before)})`,
    );
    await framesLater(page, 2);

    // A publish in which no alert changed (the pointer hovers an element) keeps the alerts
    // array; one in which an alert goes away makes a new one.
    await page.evaluate(() => {
      window.__alerts = window.twinscene.alerts;
    });
    const [hovered, under] = await waitForElement(page, (_, e) => e.onTop && e.screen);
    await page.mouse.move(under.screen[0], under.screen[1]);
    await waitForState(page, (hovered) => window.twinscene.hovered === hovered, hovered);
    assert.ok(await page.evaluate(() => window.twinscene.alerts === window.__alerts), 'a hover rewrote the alerts');
    await page.mouse.move(0, 0);

    // A second room alerts too; when the first one's alert goes, the new array keeps the second
    // one's entry object (its badges did not change) and drops the first's.
    const [otherId, other] = await page.evaluate((id) =>
      Object.entries(window.twinscene.elements).find(([key, e]) => key.startsWith('room-') && key !== id && e.badges.length === 0), id);
    await patchTemperature(other.twin, 36);
    await waitForState(page, (otherId) => window.twinscene.alerts.some((a) => a.element === otherId), otherId);
    await page.evaluate(() => {
      window.__alerts = window.twinscene.alerts;
    });
    await patchTemperature(element.twin, 21);
    await waitForState(page, (id) => window.twinscene.elements[id].badges.length === 0, id);
    await waitForState(page, `!(${badgeShown})(${JSON.stringify(id)})`);
    assert.ok(await page.evaluate(() => window.twinscene.alerts !== window.__alerts), 'the alerts array outlived its alert');
    const kept = await page.evaluate(([id, otherId]) => {
      const entry = (alerts) => alerts.find((a) => a.element === otherId);
      return {
        same: entry(window.twinscene.alerts) === entry(window.__alerts),
        gone: !window.twinscene.alerts.some((a) => a.element === id),
        label: entry(window.twinscene.alerts)?.badges[0]?.label,
        elements: window.twinscene.alerts.map((a) => a.element).join(' '),
        published: Object.entries(window.twinscene.elements).filter(([, e]) => e.badges.length).map(([k]) => k).join(' '),
      };
    }, [id, otherId]);
    assert.ok(kept.same, 'the second alert kept its entry');
    assert.ok(kept.gone, 'the first alert left the array');
    assert.match(kept.label ?? '', /36 °C$/);
    assert.equal(kept.elements, kept.published, 'the array lists exactly the elements with badges, in scene order');
    await patchTemperature(other.twin, 21);
    await waitForState(page, (otherId) => !window.twinscene.alerts.some((a) => a.element === otherId), otherId);
    context.viewer.assertNoPanics();
  }),
);

test('clicking an alert badge selects its element', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    const [id, element] = await waitForElement(page, (key, e) => key.startsWith('wall-') && e.onTop && e.badges.length === 0);
    await patchTemperature(element.twin, 33);
    await waitForState(page, `(${badgeShown})(${JSON.stringify(id)})`);
    await page.locator(`twin-scene [data-alert-element="${id}"] button`).first().click();
    await waitForState(page, (id) => window.twinscene.selected === id, id);
    await patchTemperature(element.twin, 20);
    // Applied before the next test reads the colors it compares against.
    await waitForState(page, (id) => window.twinscene.elements[id].badges.length === 0, id);
    context.viewer.assertNoPanics();
  }),
);

test('switching the temperature layer off removes its colors; on brings them back', { timeout: 120_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    // Close the inspector a previous test opened; on a small screen it covers the layers panel.
    await page.evaluate(() => document.querySelector('twin-scene').select(null));
    await waitForState(page, () => window.twinscene.selected === null);
    const before = await readTwinscene(page, (ts) => Object.fromEntries(Object.entries(ts.elements).map(([id, e]) => [id, e.color])));
    assert.ok(Object.values(before).every((color) => color !== null), 'every demo element starts colored');
    const checkbox = page.locator('twin-scene input[data-layer="temperature"]');
    await checkbox.uncheck();
    await waitForState(page, () => Object.values(window.twinscene.elements).every((e) => e.color === null));
    assert.equal(await readTwinscene(page, (ts) => ts.layers.find((l) => l.id === 'temperature').visible), false);
    await checkbox.check();
    await waitForState(
      page,
      (before) => Object.entries(window.twinscene.elements).every(([id, e]) => e.color === before[id]),
      before,
    );
    context.viewer.assertNoPanics();
  }),
);

test('above merge-badges-from, overlapping badges merge and every alert is still counted', { timeout: 180_000 }, () =>
  withDiagnostics(context.diagnostics, async () => {
    const { page } = context.viewer;
    await page.evaluate(() => document.querySelector('twin-scene').setAttribute('merge-badges-from', '0'));
    const twins = await readTwinscene(page, (ts) =>
      Object.entries(ts.elements).filter(([id, e]) => e.visible && (id.startsWith('room-') || id.startsWith('wall-'))).map(([id, e]) => [id, e.twin]));
    assert.ok(twins.length > 4, `rooms and walls to raise: ${twins.length}`);
    for (const [, twin] of twins) await patchTemperature(twin, 36);
    const ids = twins.map(([id]) => id);
    await waitForState(page, (ids) => ids.every((id) => window.twinscene.elements[id].badges.length > 0), ids);
    // The badges drawn, each with how many others it stands for, account for every alerting
    // element with a screen position; fewer nodes than alerts where positions share a cell.
    const counted = () => {
      const root = document.querySelector('twin-scene').shadowRoot;
      const nodes = [...root.querySelectorAll('[data-alert-element]')];
      const standing = nodes.reduce((sum, node) => sum + 1 + Number(node.querySelector('[data-more]')?.dataset.more ?? 0), 0);
      const positioned = window.twinscene.alerts.filter((a) => window.twinscene.elements[a.element].screen).length;
      return standing === positioned ? { nodes: nodes.length, positioned } : null;
    };
    const { nodes, positioned } = await (await page.waitForFunction(counted, null, { timeout: 30_000, polling: 200 })).jsonValue();
    assert.ok(positioned >= ids.length, `${positioned} positioned alerts`);
    assert.ok(nodes < positioned, `${nodes} badges drawn for ${positioned} alerts: some share a 32-px cell at 400×300`);
    const listed = await page.evaluate(() =>
      document.querySelector('twin-scene').shadowRoot.querySelectorAll('[data-role="alerts"] button[data-element]').length);
    assert.equal(listed, positioned, 'the alerts panel lists every alert');
    for (const [, twin] of twins) await patchTemperature(twin, 21);
    await waitForState(page, () => window.twinscene.alerts.length === 0);
    await page.evaluate(() => document.querySelector('twin-scene').removeAttribute('merge-badges-from'));
    context.viewer.assertNoPanics();
  }),
);
