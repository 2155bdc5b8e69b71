// <twin-scene>: the twinscene viewer as one HTML element. It creates its canvas (in the light
// DOM, because Bevy finds its canvas with document.querySelector), runs its own instance of the
// wasm viewer (several elements per page each get one; the compiled module is shared), and
// draws its panels in its shadow root from the state the viewer publishes on the canvas
// (`canvas.twinscene`). Panels act on the viewer only through command(json).
//
// docs/embedding.md documents the attributes, methods and events; twinscene.d.ts types them.

const LIGHT_THEME = `--ts-background: #eef1f5; --ts-panel: rgba(255, 255, 255, 0.92); --ts-text: #111827;
  --ts-muted: #4b5563; --ts-badge-background: rgba(255, 255, 255, 0.95); --ts-accent: #0369a1;`;

const STYLE = `
:host([theme="light"]) { ${LIGHT_THEME} }
@media (prefers-color-scheme: light) { :host(:not([theme])) { ${LIGHT_THEME} } }
:host([controls="none"]) .toolbar, :host([controls="none"]) .inspector, :host([controls="none"]) .layers,
:host([controls="none"]) .results { display: none !important; }
:host { display: block; position: relative; overflow: hidden; background: var(--ts-background, #1b1f24);
  font: 13px/1.4 var(--ts-font, system-ui, sans-serif); color: var(--ts-text, #e6e9ee); }
::slotted(canvas) { display: block; width: 100%; height: 100%; outline: none; }
.panel { position: absolute; background: var(--ts-panel, rgba(17, 20, 25, 0.86)); border-radius: 8px;
  box-shadow: 0 2px 10px rgba(0,0,0,0.35); }
.status { left: 10px; bottom: 10px; padding: 5px 10px; pointer-events: none; max-width: calc(100% - 40px); }
.status .dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: #9ca3af; }
.status[data-live="live"] .dot { background: #22c55e; }
.status[data-live="offline"] .dot { background: #ef4444; }
.status[data-live="connecting"] .dot { background: #f59e0b; }
.status[data-live="stale"] .dot { background: #a855f7; }
.alerts .severity { font-size: 10px; text-transform: uppercase; letter-spacing: 0.04em; opacity: 0.8; margin-right: 4px; }
.stale-marker { position: absolute; transform: translate(-50%, 4px); padding: 1px 6px; border-radius: 8px; font-size: 11px;
  background: rgba(75, 85, 99, 0.92); color: #f3f4f6; pointer-events: none; white-space: nowrap; }
.progress { height: 3px; margin-top: 4px; background: rgba(255,255,255,0.15); border-radius: 2px; overflow: hidden; }
.progress > div { height: 100%; width: 0; background: var(--ts-accent, #38bdf8); transition: width 0.3s; }
.failure { inset: 0; border-radius: 0; display: none; padding: 24px; overflow: auto; background: #2a1215; }
.failure h2 { margin: 0 0 8px; font-size: 16px; color: #fecaca; }
.failure pre { white-space: pre-wrap; margin: 0; font: 12px/1.5 ui-monospace, monospace; }
:host([data-state="failed"]) .failure { display: block; }
.toolbar { left: 10px; top: 10px; display: flex; gap: 6px; padding: 6px; align-items: center; }
.toolbar select { background: #262b33; color: inherit; border: 1px solid rgba(255,255,255,0.15); border-radius: 5px; padding: 3px 4px; font: inherit; }
.widgets { margin: 8px 0; display: grid; gap: 6px; }
.widget .label { color: var(--ts-muted, #9ca3af); font-size: 12px; }
.widget .value { font-size: 15px; font-variant-numeric: tabular-nums; }
.widget .novalue { color: var(--ts-muted, #9ca3af); font-style: italic; }
.gauge { display: block; width: 100%; height: 16px; }
.widget a { color: var(--ts-accent, #38bdf8); }
.toolbar input { width: 180px; background: rgba(255,255,255,0.08); border: 1px solid rgba(255,255,255,0.15);
  color: inherit; border-radius: 5px; padding: 4px 8px; font: inherit; }
button { background: rgba(127,127,127,0.12); color: inherit; border: 1px solid rgba(127,127,127,0.3);
  border-radius: 5px; padding: 4px 8px; font: inherit; cursor: pointer; }
button:hover { background: rgba(255,255,255,0.16); }
button[aria-pressed="true"] { background: var(--ts-accent, #38bdf8); color: #0b1220; }
.results { left: 10px; top: 52px; max-height: 50%; overflow: auto; min-width: 220px; display: none; padding: 4px; }
.results.open { display: block; }
.results button, .inspector .link { display: block; width: 100%; text-align: left; border: 0; background: none; padding: 4px 8px; }
.results button:hover, .inspector .link:hover { background: rgba(255,255,255,0.1); }
.inspector { right: 10px; top: 56px; width: min(300px, 45%); max-height: calc(100% - 110px); overflow: auto; padding: 10px 12px; display: none; }
.inspector.open { display: block; }
.inspector h2 { margin: 0; font-size: 15px; }
.inspector .sub { color: var(--ts-muted, #9ca3af); font-size: 12px; word-break: break-all; }
.inspector table { width: 100%; border-collapse: collapse; margin: 8px 0; }
.inspector td { padding: 2px 0; vertical-align: top; }
.inspector td.value { text-align: right; font-variant-numeric: tabular-nums; }
.inspector h3 { margin: 10px 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--ts-muted, #9ca3af); }
.inspector .close { position: absolute; right: 8px; top: 8px; padding: 0 6px; }
.missing { color: #fca5a5; }
.legend { right: 10px; bottom: 10px; padding: 8px 10px; }
.legend h3 { margin: 0 0 4px; font-size: 12px; }
.legend .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.badges { position: absolute; inset: 0; pointer-events: none; overflow: hidden; }
.badge { position: absolute; transform: translate(-50%, -100%); display: flex; flex-direction: column; gap: 2px; align-items: center; }
.badge button { pointer-events: auto; display: flex; align-items: center; gap: 4px; padding: 2px 7px 2px 3px; border-radius: 12px;
  background: var(--ts-badge-background, rgba(17, 20, 25, 0.9)); border: 2px solid var(--badge-color, #dc2626); white-space: nowrap; font-size: 12px; }
.badge .icon { display: inline-grid; place-items: center; width: 18px; height: 18px; border-radius: 50%; background: var(--badge-color, #dc2626); color: #fff; font-size: 11px; font-weight: 700; }
.badge.edge button, .badge.compact button { padding: 2px 3px; }
.badge .more { pointer-events: none; padding: 0 5px; border-radius: 8px; background: var(--ts-panel, rgba(17, 24, 39, 0.88)); color: var(--ts-text, #f9fafb); font-size: 10px; }
.alerts .unlisted { margin: 4px; font-size: 11px; color: var(--ts-muted, #9ca3af); }
.badge.edge .text, .badge.compact .text { display: none; }
.badge.compact { flex-direction: row; }
.alerts { left: 10px; bottom: 46px; width: min(280px, 60%); max-height: 40%; overflow: auto; padding: 6px; display: none; }
.alerts.open { display: block; }
.alerts h3, .layers h3 { margin: 2px 4px 4px; font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--ts-muted, #9ca3af); }
.alerts button { display: flex; gap: 6px; align-items: center; width: 100%; text-align: left; border: 0; background: none; padding: 3px 4px; }
.alerts button:hover { background: rgba(255,255,255,0.1); }
.layers { right: 10px; bottom: 120px; padding: 6px 10px; }
.layers label { display: block; cursor: pointer; padding: 1px 0; }
.banner { left: 50%; top: 10px; transform: translateX(-50%); padding: 6px 12px; background: #7f1d1d; color: #fee2e2; display: none; }
.banner.open { display: block; }
:host([data-state="failed"]) .banner { display: none; }
.trend { display: block; width: 100%; height: 22px; }
:host([kiosk]) .toolbar, :host([kiosk]) .results, :host([kiosk]) .layers, :host([kiosk]) .inspector .close { display: none !important; }
:host([kiosk]) .banner { top: 50%; transform: translate(-50%, -50%); font-size: 22px; padding: 16px 24px; max-width: 80%; text-align: center; }
:host([kiosk]) .banner.stale { background: #4c1d95; color: #ede9fe; }
.trend polyline { fill: none; stroke: var(--ts-accent, #38bdf8); stroke-width: 1.5; }
@media (max-width: 520px) { .toolbar input { width: 100px; } .legend { display: none; } .inspector { width: min(300px, 60%); } }
`;

const TEMPLATE = `
<style>${STYLE}</style>
<slot></slot>
<div class="panel toolbar" part="toolbar">
  <input type="search" placeholder="Search twins…" aria-label="Search twins" data-role="search">
  <button type="button" data-role="reset" title="Frame the whole model (R)">Reset view</button>
  <button type="button" data-role="ghost" aria-pressed="false" title="Show everything but the selection translucent (G)">Ghost</button>
  <select data-role="viewpoints" aria-label="Viewpoints" hidden></select>
</div>
<div class="panel results" data-role="results" role="listbox"></div>
<aside class="panel inspector" data-role="inspector" part="inspector" aria-live="polite"></aside>
<div class="badges" data-role="badges" part="badges"></div>
<div class="panel legend" data-role="legend" part="legend" hidden></div>
<div class="panel layers" data-role="layers" part="layers" hidden></div>
<div class="panel alerts" data-role="alerts" part="alerts" aria-live="polite"></div>
<div class="panel banner" data-role="banner" role="alert"></div>
<div class="panel status" data-role="status" role="status"><span class="dot"></span><span data-role="status-text">Loading viewer…</span>
  <div class="progress"><div data-role="progress"></div></div></div>
<div class="panel failure" data-role="failure" role="alert"><h2>This scene cannot be shown</h2><pre data-role="failure-text"></pre></div>
`;

// Glyphs for the icon names that 3D Scenes configurations use; anything else shows "!".
const ICONS = { Warning: '!', Error: '×', Alert: '!', Frigid: '❄', Fire: '▲', Info: 'i', Completed: '✓', Blocked: '⦸' };
const EDGE_INSET = 14;
/** Above this many alerting elements (attribute `merge-badges-from`), badges that fall into one
 * cell of this many pixels merge into the most severe one with a "+N" count: 20,000 badges over
 * a facility cost seconds of layout on every change and show nothing a person can read. */
const BADGE_CELL_PX = 32;
const MERGE_BADGES_FROM = 40;
/** The alerts panel lists this many, most severe first, and says how many more there are. */
const ALERT_LIST_ROWS = 200;

const SEVERITY_RANK = { error: 3, warning: 2, info: 1 };
const SEVERITY_COLOR = { error: '#dc2626', warning: '#d97706', info: '#0284c7' };

function severityRank(badge) {
  return SEVERITY_RANK[badge.severity] ?? 0;
}

/** Alerts in the order they need attention: most severe first, then longest-standing (the
 * time this page first saw each), then by element id. */
function mostUrgentFirst(a, b) {
  return severityRank(b.badge) - severityRank(a.badge) || a.since - b.since || a.id.localeCompare(b.id);
}

/** A badge's color: the scene's, else its severity's, else alert red. */
function badgeColor(badge) {
  return badge.color ?? SEVERITY_COLOR[badge.severity] ?? '#dc2626';
}

/** The global live indicator: off, connecting, live, stale (connected, but some elements'
 * data is older than the scene allows) or offline. */
function liveState(state) {
  return state.live === 'live' && state.staleCount > 0 ? 'stale' : state.live;
}

function formatSeconds(seconds) {
  if (!(seconds > 0)) return '';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}
/** Values kept per property for trend lines (a ring buffer: older ones drop off). */
const TREND_POINTS = 120;
const TREND_KEYS = 200;

/** The twinscene server this module was loaded from: where the viewer bundle, the default
 * scene, live data and the twin API are, also when the page itself is on another site. */
const SERVER = new URL('/', import.meta.url);

const STAGES = { booting: 0.1, scene: 0.25, mesh: 0.5, layout: 0.85 };
let instances = 0;
/** The compiled wasm module, fetched and compiled once per page for every viewer. */
let compiledModule = null;


function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const SEVERITY_RANKS = [3, 2, 1, 0];

/**
 * The alerts of the published states as the page keeps them: every badge under a key (element,
 * icon, position) that an alert keeps from one publish to the next, with the time this page
 * first saw it (`since`). Brought up to date from each new `alerts` array by the entries that
 * changed: the viewer keeps the entry objects of elements whose badges did not change, so with
 * 10^4 alerting elements a publish costs the changes and a pass over the entry objects, not
 * rebuilding, diffing and sorting every badge (which was a quarter of the page's time under
 * load at 10^6 elements). Each severity keeps its badges in `since` order, which is arrival
 * order: a new badge always arrives last (those of one publish in element id order).
 */
class AlertBook {
  /** The `alerts` array read last, and its entry objects. */
  #array = null;
  #entries = new Set();
  /** Element id → { entry, alerts: [{ key, id, twin, badge, since }] }. */
  #byElement = new Map();
  /** Severity rank → (key → alert), in `since` order. */
  #bySeverity = new Map(SEVERITY_RANKS.map((rank) => [rank, new Map()]));
  /** Severities whose order a changed severity broke (sorted again when next read). */
  #unsorted = new Set();

  /** Reads a state's `alerts`: the alerts that came and went since the last array read, or
   * `null` when it is the same array. */
  read(state) {
    const array = state?.alerts ?? [];
    if (array === this.#array) return null;
    const now = performance.now();
    const came = [];
    const went = [];
    const next = new Set(array);
    // Elements whose entry was replaced or dropped: their old alerts, until matched below.
    const replaced = new Map();
    for (const entry of this.#entries) {
      if (next.has(entry)) continue;
      const held = this.#byElement.get(entry.element);
      if (held?.entry === entry) {
        this.#byElement.delete(entry.element);
        replaced.set(entry.element, held);
      }
    }
    for (const entry of array) {
      if (this.#entries.has(entry)) continue;
      const id = entry.element;
      const before = new Map((replaced.get(id)?.alerts ?? []).map((alert) => [alert.key, alert]));
      replaced.delete(id);
      const alerts = entry.badges.map((badge, index) => {
        const key = `${id}\u0000${badge.icon}\u0000${index}`;
        const old = before.get(key);
        if (!old) {
          const alert = { key, id, twin: state.elements[id]?.twin, badge, since: now };
          came.push(alert);
          return alert;
        }
        before.delete(key);
        const alert = { ...old, badge };
        if (severityRank(badge) === severityRank(old.badge)) {
          // In place: a Map keeps a key's position when its value is set again.
          this.#bySeverity.get(severityRank(badge)).set(key, alert);
        } else {
          this.#bySeverity.get(severityRank(old.badge)).delete(key);
          this.#bySeverity.get(severityRank(badge)).set(key, alert);
          this.#unsorted.add(severityRank(badge));
        }
        return alert;
      });
      for (const gone of before.values()) this.#forget(gone, went);
      // The element's badge is placed at its lead alert: the most severe, longest-standing.
      alerts.sort(mostUrgentFirst);
      alerts.forEach((alert, index) => { alert.lead = index === 0; });
      this.#byElement.set(id, { entry, alerts });
    }
    for (const held of replaced.values()) for (const gone of held.alerts) this.#forget(gone, went);
    // All of the same `since`: within a severity, in element id order.
    came.sort(mostUrgentFirst);
    for (const alert of came) this.#bySeverity.get(severityRank(alert.badge)).set(alert.key, alert);
    this.#array = array;
    this.#entries = next;
    return { came, went };
  }

  #forget(alert, went) {
    this.#bySeverity.get(severityRank(alert.badge)).delete(alert.key);
    went.push(alert);
  }

  /** How many alerts (badges) there are. */
  get count() {
    let count = 0;
    for (const alerts of this.#bySeverity.values()) count += alerts.size;
    return count;
  }

  /** Calls `visit` with every alert, most severe first, then longest-standing, until it
   * returns `false`. (A loop, not a generator: it runs over every alert on each publish.) */
  forEachOrdered(visit) {
    for (const rank of SEVERITY_RANKS) {
      let alerts = this.#bySeverity.get(rank);
      if (this.#unsorted.delete(rank)) {
        alerts = new Map([...alerts].sort(([, a], [, b]) => mostUrgentFirst(a, b)));
        this.#bySeverity.set(rank, alerts);
      }
      for (const alert of alerts.values()) if (visit(alert) === false) return;
    }
  }

  /** How many elements have alerts. */
  get elementCount() {
    return this.#byElement.size;
  }

  /** An element's alerts, most severe first, then longest-standing (its lead first). */
  alertsOf(id) {
    return this.#byElement.get(id)?.alerts ?? [];
  }
}

function formatValue(value) {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(2);
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export class TwinSceneElement extends HTMLElement {
  #viewer = null;
  #lastPublished = -1;
  /** What the page sees once the viewer failed outside the wasm (it publishes no more). */
  #failedState = null;
  #lastInspector = '';
  #lastResults = '';
  #lastAlerts = '';
  #alerts = new AlertBook();
  #lastLayers = '';
  #lastViewpoints = '';
  /** Recent values per `twin/property` for the inspector's trend lines: [[ms since epoch, value]]. */
  #trends = new Map();
  #frame = 0;
  #previous = null;
  #failed = false;

  static get observedAttributes() { return ['selected', 'camera']; }
  /** The kiosk controller while the `kiosk` attribute is set (see `Kiosk`). */
  #kiosk = null;
  /** The wasm instance's exports: its linear memory and frame counter, for kiosk and soak. */
  #exports = null;

  /** The state the viewer last published (see docs/embedding.md), or undefined while loading. */
  get state() { return this.canvas?.twinscene; }

  attributeChangedCallback(name, _old, value) {
    if (!this.state?.ready) return; // applied once ready
    if (name === 'selected') this.select(value || null);
    if (name === 'camera' && value) this.viewpoint(value);
  }

  connectedCallback() {
    if (this.shadowRoot) return;
    instances += 1;
    this.instance = instances;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = TEMPLATE;
    this.canvas = document.createElement('canvas');
    this.canvas.id = `twin-scene-canvas-${instances}`;
    this.canvas.tabIndex = 0;
    this.append(this.canvas);
    this.$ = (role) => root.querySelector(`[data-role="${role}"]`);
    this.#wireControls();
    this.#boot().catch((error) => this.#showFailure(`Cannot start the viewer: ${error?.message ?? error}`));
  }

  disconnectedCallback() {
    cancelAnimationFrame(this.#frame);
    this.#kiosk?.stop();
  }

  /** Bytes of the viewer's wasm linear memory (it only grows; a kiosk's must level off). */
  get wasmMemoryBytes() { return this.#exports?.memory?.buffer?.byteLength ?? 0; }

  /** Frames the viewer has run; the kiosk watchdog reloads the page when this stops. */
  get frameCount() { return this.#viewer?.frame_count?.() ?? 0; }

  /** Sends a command to the viewer (see docs); returns false before the viewer runs. */
  command(command) {
    if (!this.#viewer) return false;
    this.#viewer.command(JSON.stringify(command));
    return true;
  }

  select(element) { return this.command({ type: 'select', element }); }
  viewpoint(id) { return this.command({ type: 'viewpoint', id }); }
  setLayer(layer, visible) { return this.command({ type: 'setLayer', layer, visible }); }
  /** The twin as the server has it now (ADT JSON). */
  async getTwin(id) {
    const response = await fetch(new URL(`/digitaltwins/${encodeURIComponent(id)}`, SERVER), { headers: this.#authHeaders() });
    if (!response.ok) throw new Error(`twin ${id}: HTTP ${response.status}`);
    return response.json();
  }

  #authHeaders() {
    const token = this.getAttribute('token');
    return token ? { authorization: `Bearer ${token}` } : {};
  }
  focus(element) { return this.command({ type: 'focus', element }); }

  async #boot() {
    // The bundle downloads and compiles while the page reads its config and checks WebGL2
    // (creating a context takes a few hundred milliseconds under software WebGL).
    compiledModule ??= WebAssembly.compileStreaming(this.#fetchWithProgress(new URL('/pkg/twinscene_viewer_bg.wasm', SERVER)));
    const params = new URLSearchParams(location.search);
    // What the page names is relative to the page; the server's defaults to the server.
    const pageScene = this.getAttribute('src') ?? params.get('scene');
    // The scene downloads while the bundle does, from now on: the viewer asks for it only once
    // its renderer is up (seconds later at 10^5 elements), and takes this response instead
    // (src/scene_loading.rs, `take_prefetched`). Without a page scene it is the server's, which
    // its config names (`/api/scene` for twinscene's server; fetched again if it says otherwise).
    const guess = pageScene ? new URL(pageScene, location.href) : new URL('/api/scene', SERVER);
    const download = (url) => {
      const response = fetch(url.href);
      // Handled here as well, so that a failed download is the viewer's error to report (it
      // awaits this promise), not an unhandled rejection.
      response.catch(() => {});
      return response;
    };
    const guessed = download(guess);
    const config = await fetch(new URL('/api/config', SERVER)).then((r) => (r.ok ? r.json() : {}), () => ({}));
    const scene = pageScene ? guess : new URL(config.scene ?? '/api/scene', SERVER);
    const prefetched = (globalThis.__twinscenePrefetched ??= new Map());
    prefetched.set(scene.href, scene.href === guess.href ? guessed : download(scene));
    // The server's scene names the server's mesh: a GLB downloads now too, not once the viewer
    // has read the scene (src/scene_loading.rs, `fetch_bytes`). Not when the page names another
    // scene or mesh, which the viewer would load instead.
    const pageMesh = this.getAttribute('mesh') ?? (this.hasAttribute('deep-link') ? params.get('mesh') : null);
    if (!pageScene && !pageMesh && typeof config.mesh === 'string' && /\.glb$/i.test(new URL(config.mesh, SERVER).pathname)) {
      const mesh = new URL(config.mesh, SERVER);
      prefetched.set(mesh.href, download(mesh));
    }
    const pageLive = this.getAttribute('live') ?? params.get('live');
    const live = pageLive ?? config.live ?? '/live';
    const liveUrl = live === 'off' ? '' : new URL(live, pageLive ? location.href : SERVER).href.replace(/^http/, 'ws');
    if (this.getAttribute('theme') === null && this.hasAttribute('deep-link') && params.get('theme')) {
      this.setAttribute('theme', params.get('theme'));
    }
    const probe = document.createElement('canvas').getContext('webgl2');
    if (!probe) {
      throw new Error('this browser cannot draw 3D: WebGL2 is not available. Turn on hardware acceleration, or use a current Chrome, Edge, Firefox or Safari.');
    }
    // Browsers cap live WebGL contexts; the probe's is not kept.
    probe.getExtension('WEBGL_lose_context')?.loseContext();
    this.$('status-text').textContent = 'Loading viewer…';
    const module = await compiledModule;
    // A module instance per viewer: the glue imported under its own URL gets its own memory.
    const viewer = await import(new URL(`/pkg/twinscene_viewer.js?instance=${this.instance}`, SERVER).href);
    this.#exports = await viewer.default({ module_or_path: module });
    this.#viewer = viewer;
    // `mesh` replaces the scene's mesh (a peer file's blob URL this site cannot fetch);
    // `scene-name` picks one scene of a 3D Scenes configuration.
    const options = JSON.stringify({
      mesh: pageMesh ? new URL(pageMesh, location.href).href : undefined,
      scene: this.getAttribute('scene-name') ?? (this.hasAttribute('deep-link') ? params.get('sceneName') : null) ?? undefined,
      // Above this many elements only alerting, stale, selected, hovered and found elements
      // get a screen position (each costs a ray cast whenever the camera moves).
      screenPositionsUpTo: this.hasAttribute('screen-positions-up-to') ? Number(this.getAttribute('screen-positions-up-to')) : undefined,
      // At most this many stale elements are listed in `staleElements` and marked.
      staleMarkersUpTo: this.hasAttribute('stale-markers-up-to') ? Number(this.getAttribute('stale-markers-up-to')) : undefined,
      // Below this frame rate a large model seen from afar drops more of the elements too
      // small to see (0: never).
      minFps: this.hasAttribute('min-fps') ? Number(this.getAttribute('min-fps')) : undefined,
    });
    viewer.start(`#${this.canvas.id}`, new URL(scene, location.href).href, liveUrl, this.getAttribute('token') ?? undefined, options);
    this.#mirrorToWindow();
    const render = () => {
      const state = this.state;
      this.#render(state);
      this.#renderBanner(state);
      this.#frame = requestAnimationFrame(render);
    };
    render();
    if (this.hasAttribute('kiosk')) {
      this.#kiosk = new Kiosk(this);
      this.#kiosk.start();
    }
  }

  /** Fetches the wasm bundle, showing the bytes received; returns a Response that still
   * compiles while it streams. */
  async #fetchWithProgress(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
    // The stream yields decoded bytes; a gzip-encoded response's Content-Length counts the
    // compressed ones, so the server says the decoded size (x-decoded-length) when it compresses.
    const decoded = Number(response.headers.get('x-decoded-length')) || 0;
    const encoded = response.headers.get('content-encoding');
    let total = decoded || (encoded ? 0 : Number(response.headers.get('content-length')) || 0);
    let received = 0;
    const megabytes = (bytes) => (bytes / 1e6).toFixed(1);
    // The stream comes in thousands of chunks; the page shows the count at most every 100 ms so
    // that the main thread stays free for the rest of the start (the scene's download).
    let shownAt = -Infinity;
    const counter = new TransformStream({
      transform: (chunk, controller) => {
        received += chunk.byteLength;
        // More than announced: an encoding the page could not see (another server); no total.
        if (received > total) total = 0;
        const now = performance.now();
        if (now - shownAt >= 100) {
          shownAt = now;
          this.$('status-text').textContent = `Loading viewer ${megabytes(received)}${total ? ` of ${megabytes(total)}` : ''} MB…`;
          if (total) this.$('progress').style.width = `${Math.round((received / total) * STAGES.booting * 100)}%`;
        }
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(counter), { headers: { 'content-type': 'application/wasm' } });
  }

  #wireControls() {
    const search = this.$('search');
    search.addEventListener('input', () => this.command({ type: 'search', query: search.value }));
    search.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') this.$('results').querySelector('button')?.click();
      if (event.key === 'Escape') { search.value = ''; this.command({ type: 'search', query: '' }); }
      event.stopPropagation();
    });
    this.$('reset').addEventListener('click', () => this.command({ type: 'resetView' }));
    // Esc clears the selection wherever focus is inside the element (canvas or a panel).
    this.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.select(null);
    });
    this.$('ghost').addEventListener('click', (event) => {
      const on = event.currentTarget.getAttribute('aria-pressed') !== 'true';
      this.command({ type: 'setGhosting', on });
    });
    const onFocusLink = (event) => {
      const target = event.target.closest('[data-element]');
      if (target) this.focus(target.dataset.element);
      if (event.target.closest('[data-role="close"]')) this.select(null);
    };
    this.$('results').addEventListener('click', onFocusLink);
    this.$('inspector').addEventListener('click', onFocusLink);
    this.$('badges').addEventListener('click', onFocusLink);
    this.$('alerts').addEventListener('click', onFocusLink);
    this.$('viewpoints').addEventListener('change', (event) => {
      if (event.target.value) {
        this.viewpoint(event.target.value);
        if (this.hasAttribute('deep-link')) this.#updateDeepLink({ view: event.target.value });
      }
      event.target.value = '';
    });
    this.$('layers').addEventListener('change', (event) => {
      const box = event.target.closest('input[data-layer]');
      if (!box) return;
      this.setLayer(box.dataset.layer, box.checked);
      if (this.hasAttribute('deep-link')) {
        const shown = [...this.$('layers').querySelectorAll('input[data-layer]')].filter((b) => b.checked).map((b) => b.dataset.layer);
        this.#updateDeepLink({ layers: shown.join(',') });
      }
    });
  }

  #render(state) {
    if (!state || state.publishedAt === this.#lastPublished) return;
    const previous = this.#previous;
    this.#previous = state;
    this.#lastPublished = state.publishedAt;
    this.#announce(previous, state);
    this.dataset.state = state.state;
    this.dataset.live = liveState(state);
    const status = this.$('status');
    status.dataset.live = liveState(state);
    if (state.state === 'failed') {
      this.#showFailure(state.error);
      return;
    }
    if (state.state !== 'ready') {
      const [received, total] = state.meshBytes ?? [0, 0];
      const bytes = received ? ` ${(received / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ''} MB` : '';
      this.$('status-text').textContent = `Loading ${state.stage ?? 'viewer'}${bytes}…`;
      this.$('progress').style.width = `${Math.round((STAGES[state.stage] ?? 0.1) * 100)}%`;
      return;
    }
    this.$('progress').parentElement.hidden = true;
    const count = state.elementCount;
    const live = {
      live: 'live',
      stale: `live · ${state.staleCount} stale (no update for ${formatSeconds(state.staleAfterSeconds)})`,
      connecting: 'connecting to live data…',
      offline: `live data offline${state.liveError ? ` (${state.liveError})` : ''}, retrying`,
      off: 'no live data',
    }[liveState(state)];
    const missing = state.missingTwinCount;
    this.$('status-text').textContent = `${count} elements${missing ? `, ${missing} without twin` : ''} · ${live}`;
    this.$('ghost').setAttribute('aria-pressed', String(state.ghosting));
    this.#renderResults(state);
    this.#renderInspector(state);
    this.#renderLegend(state);
    this.#renderLayers(state);
    this.#renderViewpoints(state);
    this.#renderAlerts(state);
  }

  #renderAlerts(state) {
    const book = this.#alerts;
    // Badges follow the camera: placed anew on every publish, but the nodes stay (keyed by
    // element) unless their content changes, so a badge can be clicked while the view moves
    // and a kiosk does not churn the DOM.
    const layer = this.$('badges');
    const { width, height } = layer.getBoundingClientRect();
    const wanted = new Map();
    const mergeFrom = Number(this.getAttribute('merge-badges-from') ?? MERGE_BADGES_FROM);
    // Cell → the badge drawn there (the first to land in it: alerts come most severe first).
    const cells = book.elementCount > mergeFrom ? new Map() : null;
    const cellsPerRow = Math.ceil(width / BADGE_CELL_PX) + 1;
    // An element is placed at its lead alert, in the order of those.
    book.forEachOrdered(({ id, lead }) => {
      if (!lead) return;
      // Looked up now: an element's entry is replaced when its screen position moves.
      const screen = state.elements[id]?.screen;
      if (!screen) return;
      const inside = screen[0] >= 0 && screen[1] >= 0 && screen[0] <= width && screen[1] <= height;
      const x = Math.min(Math.max(screen[0], EDGE_INSET), width - EDGE_INSET);
      const y = Math.min(Math.max(screen[1], EDGE_INSET * 2), height - EDGE_INSET);
      if (cells) {
        const cell = Math.floor(y / BADGE_CELL_PX) * cellsPerRow + Math.floor(x / BADGE_CELL_PX);
        const drawn = cells.get(cell);
        if (drawn) {
          drawn.more += 1;
          return;
        }
        cells.set(cell, { key: `alert:${id}`, more: 0 });
      }
      const html = book.alertsOf(id).map(({ badge }) => `<button type="button" data-element="${escapeHtml(id)}" title="${escapeHtml(badge.label ?? badge.icon)}"
          style="--badge-color:${escapeHtml(badgeColor(badge))}"><span class="icon">${escapeHtml(ICONS[badge.icon] ?? '!')}</span>
          <span class="text">${escapeHtml(badge.label ?? badge.icon)}</span></button>`).join('');
      // Merged badges show their icon only (the label is the tooltip): labels of neighbouring
      // cells would still overlap.
      const className = `badge${inside ? '' : ' edge'}${cells ? ' compact' : ''}`;
      wanted.set(`alert:${id}`, { id, html, x, y, className, attribute: 'data-alert-element' });
    });
    for (const { key, more } of cells?.values() ?? []) {
      if (more > 0) wanted.get(key).html += `<span class="more" data-more="${more}" title="${more} more alerting here">+${more}</span>`;
    }
    for (const id of state.staleElements) {
      const e = state.elements[id];
      if (!(e?.stale && e.visible && e.screen)) continue;
      const [x, y] = e.screen;
      if (x < 0 || y < 0 || x > width || y > height) continue;
      wanted.set(`stale:${id}`, { id, html: 'stale', x, y, className: 'stale-marker', attribute: 'data-stale-element' });
    }
    const existing = new Map();
    for (const node of [...layer.children]) {
      if (wanted.has(node.dataset.key)) existing.set(node.dataset.key, node);
      else node.remove();
    }
    for (const [key, item] of wanted) {
      let node = existing.get(key);
      if (!node) {
        node = document.createElement('div');
        node.dataset.key = key;
        node.setAttribute(item.attribute, item.id);
        layer.append(node);
      }
      if (node.className !== item.className) node.className = item.className;
      if (node.twinsceneHtml !== item.html) {
        node.innerHTML = item.html;
        node.twinsceneHtml = item.html;
      }
      node.style.left = `${item.x}px`;
      node.style.top = `${item.y}px`;
    }
    const listed = [];
    book.forEachOrdered((alert) => listed.push(alert) < ALERT_LIST_ROWS);
    const count = book.count;
    const key = `${count} ${JSON.stringify(listed.map((a) => [a.id, a.badge]))}`;
    if (key === this.#lastAlerts) return;
    this.#lastAlerts = key;
    const panel = this.$('alerts');
    panel.classList.toggle('open', count > 0);
    const unlisted = count - listed.length;
    panel.innerHTML = count ? `<h3>Alerts (${count})</h3>` + listed.map(({ id, badge }) =>
      `<button type="button" data-element="${escapeHtml(id)}"><span class="badge-dot" style="color:${escapeHtml(badgeColor(badge))}">●</span>${badge.severity ? `<span class="severity">${escapeHtml(badge.severity)}</span>` : ''}
        ${escapeHtml(badge.label ?? `${badge.icon} on ${id}`)}</button>`).join('')
      + (unlisted > 0 ? `<p class="unlisted" data-unlisted="${unlisted}">and ${unlisted} more</p>` : '') : '';
  }

  #renderViewpoints(state) {
    const key = JSON.stringify(state.viewpoints ?? []);
    if (key === this.#lastViewpoints) return;
    this.#lastViewpoints = key;
    const menu = this.$('viewpoints');
    menu.hidden = !state.viewpoints?.length;
    menu.innerHTML = '<option value="">Views…</option>' + (state.viewpoints ?? [])
      .map((v) => `<option value="${escapeHtml(v.id)}">${escapeHtml(v.name)}</option>`).join('');
  }

  #renderWidgets(info) {
    const twin = info.twin ?? {};
    const units = (u) => (u ? ` ${escapeHtml(u)}` : '');
    const noValue = '<span class="novalue">no value</span>';
    const html = info.widgets.map((w) => {
      const label = `<div class="label">${escapeHtml(w.label)}</div>`;
      switch (w.type) {
        case 'value':
          return `<div class="widget" data-widget="value">${label}<div class="value">${w.value === null ? noValue : escapeHtml(formatValue(w.value)) + units(w.units)}</div></div>`;
        case 'gauge': {
          const span = w.max - w.min;
          const x = (v) => Math.min(100, Math.max(0, ((v - w.min) / span) * 100));
          const bands = w.ranges.map((r) => {
            const from = x(r.min ?? w.min);
            return `<rect x="${from}" y="5" width="${Math.max(0, x(r.max ?? w.max) - from)}" height="6" fill="${escapeHtml(r.color)}"/>`;
          }).join('');
          const marker = w.value === null ? '' : `<rect x="${x(w.value) - 0.8}" y="0" width="1.6" height="16" fill="#fff"/>`;
          return `<div class="widget" data-widget="gauge">${label}<div class="value">${w.value === null ? noValue : escapeHtml(formatValue(w.value)) + units(w.units)}</div>
            <svg class="gauge" viewBox="0 0 100 16" preserveAspectRatio="none"><rect x="0" y="5" width="100" height="6" fill="rgba(255,255,255,0.15)"/>${bands}${marker}</svg></div>`;
        }
        case 'link':
          return `<div class="widget" data-widget="link">${w.url ? `<a href="${escapeHtml(w.url)}" target="_blank" rel="noopener">${escapeHtml(w.label)}</a>` : `${label}${noValue}`}</div>`;
        case 'trend': {
          const value = twin[w.property];
          const line = typeof value === 'number' ? this.#trendLine(w.twin, w.property, value, twin.$metadata?.[w.property]?.lastUpdateTime) : '';
          const waiting = typeof value === 'number' ? '<span class="novalue">collecting values…</span>' : noValue;
          return `<div class="widget" data-widget="trend">${label}${line || waiting}</div>`;
        }
        default:
          return '';
      }
    }).join('');
    return html ? `<div class="widgets">${html}</div>` : '';
  }

  #renderLayers(state) {
    const key = JSON.stringify(state.layers ?? []);
    if (key === this.#lastLayers) return;
    this.#lastLayers = key;
    const panel = this.$('layers');
    panel.hidden = !state.layers?.length;
    panel.innerHTML = '<h3>Layers</h3>' + (state.layers ?? []).map((layer) =>
      `<label><input type="checkbox" data-layer="${escapeHtml(layer.id)}" ${layer.visible ? 'checked' : ''}> ${escapeHtml(layer.name)}</label>`).join('');
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** Turns state changes into the element's events, and applies the initial attributes and
   * deep link once the scene is ready. */
  #announce(previous, state) {
    if (liveState(state) !== (previous ? liveState(previous) : undefined)) {
      this.#emit('live-status', { status: liveState(state), error: state.liveError ?? null, retryInMs: state.liveRetryInMs ?? null,
        staleCount: state.staleCount ?? 0 });
    }
    if (!state.ready) return;
    if (!previous?.ready) {
      this.#applyInitialView(state);
      this.#emit('ready', { scene: state.scene, elements: state.elementCount });
    }
    if (state.selected !== (previous?.ready ? previous.selected : null)) {
      this.#emit('select', { element: state.selected, twin: state.selected ? state.elements[state.selected]?.twin : null });
      if (this.hasAttribute('deep-link')) this.#updateDeepLink({ selected: state.selected });
    }
    const changes = this.#alerts.read(state);
    if (!changes) return;
    const detail = ({ id, twin, badge }) => ({ element: id, twin, ...badge });
    for (const alert of changes.came) {
      this.#emit('alert', detail(alert));
      // Alerts already there when the scene became ready are not news to a kiosk.
      if (previous?.ready) this.#kiosk?.onAlert(alert.id);
    }
    for (const alert of changes.went) this.#emit('alert-cleared', detail(alert));
  }

  /** Attributes first, then the page URL when the element has `deep-link`. */
  #applyInitialView(state) {
    const params = this.hasAttribute('deep-link') ? new URLSearchParams(location.search) : new URLSearchParams();
    const layers = params.get('layers') ?? this.getAttribute('layer');
    if (layers !== null) {
      const shown = new Set(layers.split(',').map((l) => l.trim()).filter(Boolean));
      for (const layer of state.layers) this.setLayer(layer.id, shown.has(layer.id));
    }
    const view = params.get('view') ?? this.getAttribute('camera');
    if (view) this.viewpoint(view);
    const selected = params.get('selected') ?? this.getAttribute('selected');
    if (selected) (view ? this.select(selected) : this.focus(selected));
  }

  #updateDeepLink(changes) {
    const url = new URL(location.href);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null || value === undefined || value === '') url.searchParams.delete(key);
      else url.searchParams.set(key, value);
    }
    if (url.href !== location.href) history.replaceState(history.state, '', url);
  }

  /** The offline banner counts down to the next attempt between publishes too. */
  #renderBanner(state) {
    const banner = this.$('banner');
    const offline = state?.state === 'ready' && state.live === 'offline';
    // A kiosk nobody watches closely says plainly when what it shows is old.
    const stale = Boolean(this.#kiosk) && state?.state === 'ready' && liveState(state) === 'stale';
    banner.classList.toggle('open', offline || stale);
    banner.classList.toggle('stale', stale && !offline);
    if (stale && !offline) {
      const text = `Stale data: ${state.staleCount} element${state.staleCount === 1 ? '' : 's'} without updates for more than ${formatSeconds(state.staleAfterSeconds)}`;
      if (banner.textContent !== text) banner.textContent = text;
      return;
    }
    if (!offline) return;
    const left = Math.max(0, (state.liveRetryInMs ?? 0) - (performance.now() - state.publishedAt));
    const text = left > 500 ? `retrying in ${Math.ceil(left / 1000)} s` : 'retrying now…';
    banner.textContent = `Live data is offline: values may be out of date; ${text}`;
  }

  #renderResults(state) {
    const results = state.search?.results ?? [];
    const key = JSON.stringify(state.search ?? null);
    if (key === this.#lastResults) return;
    this.#lastResults = key;
    const list = this.$('results');
    list.classList.toggle('open', Boolean(state.search));
    list.innerHTML = results.length
      ? results.map((id) => `<button type="button" role="option" data-element="${escapeHtml(id)}">${escapeHtml(id)}
          <span class="sub">${escapeHtml(state.elements[id]?.twin ?? '')}</span></button>`).join('')
      : `<div class="sub" style="padding:4px 8px">No twin matches “${escapeHtml(state.search?.query ?? '')}”</div>`;
  }

  #renderInspector(state) {
    const panel = this.$('inspector');
    const info = state.inspector;
    const key = JSON.stringify([info ?? null, Boolean(info && state.elements[info.element]?.stale)]);
    if (key === this.#lastInspector) return;
    this.#lastInspector = key;
    panel.classList.toggle('open', Boolean(info));
    if (!info) { panel.innerHTML = ''; return; }
    const twin = info.twin;
    const times = twin?.$metadata ?? {};
    const properties = twin
      ? Object.entries(twin).filter(([name]) => !name.startsWith('$'))
          .map(([name, value]) => `<tr><td title="${escapeHtml(times[name]?.lastUpdateTime ? `updated ${times[name].lastUpdateTime}` : '')}">${escapeHtml(name)}</td>
            <td class="value" data-property="${escapeHtml(name)}">${escapeHtml(formatValue(value))}${info.units?.[name] && typeof value === 'number' ? ` <span class="unit">${escapeHtml(info.units[name])}</span>` : ''}</td></tr>
            ${typeof value === 'number' ? `<tr><td colspan="2">${this.#trendLine(info.twinId, name, value, times[name]?.lastUpdateTime)}</td></tr>` : ''}`).join('')
      : '';
    const updated = Object.values(times).map((m) => m?.lastUpdateTime).filter(Boolean).sort().pop();
    const relationships = info.relationships.map((r) => r.element
      ? `<button type="button" class="link" data-element="${escapeHtml(r.element)}">${r.direction === 'out' ? '→' : '←'} ${escapeHtml(r.name)} ${escapeHtml(r.twin)}</button>`
      : `<div class="sub">${r.direction === 'out' ? '→' : '←'} ${escapeHtml(r.name)} ${escapeHtml(r.twin)} (no element in this scene)</div>`).join('');
    panel.innerHTML = `
      <button type="button" class="close" data-role="close" aria-label="Close">×</button>
      <h2>${escapeHtml(info.name ?? info.element)}</h2>
      <div class="sub">twin ${escapeHtml(info.twinId)}${twin ? ` · ${escapeHtml(twin.$metadata?.$model ?? '')}` : ''}</div>
      ${this.#renderWidgets(info)}
      ${state.elements[info.element]?.stale ? `<p class="missing" data-role="stale">Stale: no update for more than ${formatSeconds(state.staleAfterSeconds)}.</p>` : ''}
      ${twin ? `<table>${properties}</table>${updated ? `<div class="sub">last update ${escapeHtml(updated)}</div>` : ''}`
             : '<p class="missing">Twin not found: the scene names a twin that the twin data does not contain.</p>'}
      ${relationships ? `<h3>Relationships</h3>${relationships}` : ''}`;
  }

  /** A sparkline of a numeric property: server history when the server keeps it, then the
   * live values this page saw. */
  #trendLine(twin, property, value, updated) {
    const key = `${twin}/${property}`;
    if (!this.#trends.has(key)) {
      // Keep the trends of the most recently inspected properties only (kiosks run for weeks).
      if (this.#trends.size >= TREND_KEYS) this.#trends.delete(this.#trends.keys().next().value);
      this.#trends.set(key, []);
      fetch(new URL(`/digitaltwins/${encodeURIComponent(twin)}/history/${encodeURIComponent(property)}?points=60`, SERVER), { headers: this.#authHeaders() })
        .then((r) => (r.ok ? r.json() : null))
        .then((history) => {
          if (!history?.points?.length) return;
          const live = this.#trends.get(key) ?? [];
          const first = live[0]?.[0] ?? Infinity;
          const past = history.points.map((p) => [Date.parse(p.t), p.last]).filter(([t]) => t < first);
          this.#trends.set(key, [...past, ...live].slice(-TREND_POINTS));
          this.#lastInspector = ''; // redraw with the history
        })
        .catch(() => {});
    }
    const points = this.#trends.get(key);
    const at = Date.parse(updated ?? '') || Date.now();
    if (!points.length || points[points.length - 1][0] !== at) points.push([at, value]);
    if (points.length > TREND_POINTS) points.splice(0, points.length - TREND_POINTS);
    if (points.length < 2) return '';
    const values = points.map(([, v]) => v);
    const [low, high] = [Math.min(...values), Math.max(...values)];
    const [start, end] = [points[0][0], points[points.length - 1][0]];
    const xy = points.map(([t, v]) => `${(((t - start) / (end - start || 1)) * 100).toFixed(1)},${(20 - ((v - low) / (high - low || 1)) * 18).toFixed(1)}`);
    return `<svg class="trend" viewBox="0 0 100 22" preserveAspectRatio="none" data-trend="${escapeHtml(property)}"
      aria-label="${escapeHtml(property)} from ${formatValue(low)} to ${formatValue(high)}"><polyline points="${xy.join(' ')}"/></svg>`;
  }

  #renderLegend(state) {
    const legend = this.$('legend');
    if (!state.legend?.length || legend.dataset.rendered) return;
    legend.dataset.rendered = 'true';
    legend.hidden = false;
    legend.innerHTML = state.legend.map((behavior) => `<h3>${escapeHtml(behavior.name)}</h3>` + behavior.ranges
      .map((r) => `<div><span class="swatch" style="background:${escapeHtml(r.color)}"></span>${escapeHtml(r.label)}</div>`).join('')).join('');
  }

  /** The first viewer's state is also window.twinscene, for simple pages: always the latest
   * one, never a copy a frame old (its `elements` object is shared with newer states). */
  #mirrorToWindow() {
    if (this.instance !== 1) return;
    Object.defineProperty(window, 'twinscene', { configurable: true, get: () => this.#failedState ?? this.state });
  }

  #showFailure(message) {
    this.dataset.state = 'failed';
    this.$('failure-text').textContent = message;
    this.$('status').hidden = true;
    this.#failedState = { ...(this.state ?? {}), state: 'failed', ready: false, error: message };
    this.#mirrorToWindow();
    if (!this.#failed) this.#emit('error', { message });
    this.#failed = true;
  }
}

/**
 * Kiosk mode (`<twin-scene kiosk>`), for displays nobody operates: no controls; a tour through
 * the scene's viewpoints (`kiosk-dwell` seconds each, default 20); a new alert interrupts it:
 * the camera flies to the element and holds (`kiosk-hold` seconds, default 30), then the tour
 * resumes; the screen is kept awake (Screen Wake Lock, re-taken when the page is shown again);
 * a watchdog reloads the page when the viewer stops producing frames for `kiosk-watchdog`
 * seconds (default 60) or panics. The live link reconnects forever on its own. The host's
 * `data-kiosk` says `tour` or `alert`, `data-kiosk-view` the viewpoint shown, and a `kiosk`
 * event reports every change.
 */
class Kiosk {
  #host;
  #timer = 0;
  #watchdog = 0;
  #wakeLock = null;
  #viewIndex = -1;
  /** The latest alert that came during a hold. */
  #waiting = null;
  #lastFrames = -1;
  #quietSince = 0;
  #onVisibility = () => { if (document.visibilityState === 'visible') this.#keepAwake(); };
  #onConsoleError = null;

  constructor(host) { this.#host = host; }

  #seconds(name, fallback) {
    const value = Number(this.#host.getAttribute(name));
    return value > 0 ? value * 1000 : fallback * 1000;
  }

  start() {
    this.#keepAwake();
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.#watchPanics();
    this.#watchdog = setInterval(() => this.#checkFrames(), WATCHDOG_TICK_MS);
    // Ten healthy minutes forgive earlier reloads.
    setTimeout(() => sessionStorage.removeItem('twinscene-kiosk-reloads'), 10 * 60_000);
    this.#tour();
  }

  stop() {
    clearTimeout(this.#timer);
    clearInterval(this.#watchdog);
    document.removeEventListener('visibilitychange', this.#onVisibility);
    this.#wakeLock?.release?.().catch(() => {});
    if (this.#onConsoleError) console.error = this.#onConsoleError;
  }

  #report(mode, detail) {
    this.#host.dataset.kiosk = mode;
    if (detail.viewpoint) this.#host.dataset.kioskView = detail.viewpoint;
    this.#host.dispatchEvent(new CustomEvent('kiosk', { detail: { mode, ...detail }, bubbles: true, composed: true }));
  }

  /** Shows the next viewpoint now and schedules the one after. */
  #tour() {
    clearTimeout(this.#timer);
    const views = this.#host.state?.viewpoints ?? [];
    if (this.#host.state?.ready && views.length) {
      this.#viewIndex = (this.#viewIndex + 1) % views.length;
      const id = views[this.#viewIndex].id;
      this.#host.select(null);
      this.#host.viewpoint(id);
      this.#report('tour', { viewpoint: id });
    } else if (this.#host.state?.ready) {
      this.#report('tour', {});
    }
    // Before the scene is ready, try again soon; then every dwell.
    this.#timer = setTimeout(() => this.#tour(), this.#host.state?.ready ? this.#seconds('kiosk-dwell', 20) : 500);
  }

  /** A new alert: fly to it and hold. One that comes during a hold waits for the hold to end
   * (the latest one wins), so a burst of alerts cannot keep the camera jumping. */
  onAlert(element) {
    if (this.#host.dataset.kiosk === 'reloading') return;
    if (this.#host.dataset.kiosk === 'alert') {
      this.#waiting = element;
      return;
    }
    clearTimeout(this.#timer);
    this.#host.focus(element);
    this.#report('alert', { element });
    this.#timer = setTimeout(() => this.#afterHold(), this.#seconds('kiosk-hold', 30));
  }

  #afterHold() {
    const next = this.#waiting;
    this.#waiting = null;
    const stillAlerting = next && this.#host.state?.elements?.[next]?.badges?.length > 0;
    this.#host.dataset.kiosk = 'tour';
    if (stillAlerting) this.onAlert(next);
    else this.#tour();
  }

  async #keepAwake() {
    try {
      this.#wakeLock = await navigator.wakeLock?.request('screen');
    } catch {
      // Not allowed (hidden page, no permission) or not supported: the display's own settings apply.
    }
  }

  #checkFrames() {
    // Browsers pause hidden pages' frames on purpose.
    if (document.visibilityState !== 'visible') { this.#quietSince = 0; return; }
    const frames = this.#host.frameCount;
    const now = performance.now();
    if (frames !== this.#lastFrames) {
      this.#lastFrames = frames;
      this.#quietSince = now;
    } else if (this.#quietSince && now - this.#quietSince > this.#seconds('kiosk-watchdog', 60)) {
      this.#reload(`no frames for ${Math.round((now - this.#quietSince) / 1000)} s`);
    }
  }

  /** A Rust panic reaches the console as "panicked at"; the app is dead after it. */
  #watchPanics() {
    const original = console.error;
    this.#onConsoleError = original;
    console.error = (...args) => {
      original.apply(console, args);
      if (args.some((a) => String(a).includes('panicked at'))) this.#reload('the viewer panicked');
    };
  }

  #reload(why) {
    if (this.#host.dataset.kiosk === 'reloading') return;
    // The tour and an alert's hold stop here: their next step would say `tour` over
    // `reloading` while the reload waits (up to minutes when reloads repeat), and the next
    // watchdog tick would then count and schedule a second reload.
    clearTimeout(this.#timer);
    this.#report('reloading', { reason: why });
    // Back off when reloads repeat (a scene that panics on load must not spin the CPU).
    const count = Number(sessionStorage.getItem('twinscene-kiosk-reloads') ?? 0) + 1;
    sessionStorage.setItem('twinscene-kiosk-reloads', String(count));
    setTimeout(() => location.reload(), Math.min(5 * 60_000, 2_000 * 2 ** Math.min(count, 8)));
  }
}

const WATCHDOG_TICK_MS = 5_000;

customElements.define('twin-scene', TwinSceneElement);
