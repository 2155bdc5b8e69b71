// Types of the <twin-scene> element (web/twinscene.js). See docs/embedding.md.

export interface TwinsceneBadge { icon: string; color: string | null; label: string | null; severity: 'info' | 'warning' | 'error' | null }

export interface TwinsceneElementState {
  twin: string;
  twinFound: boolean;
  /** `#rrggbb`, or null when the element shows its model's own material. */
  color: string | null;
  /** Canvas position of the element's center in CSS pixels, or null when behind the camera —
   * and, in a scene with more elements than `screen-positions-up-to`, for every element that is
   * not alerting, stale, selected, hovered or a search result. */
  screen: [number, number] | null;
  onTop: boolean;
  visible: boolean;
  badges: TwinsceneBadge[];
  label: string | null;
  /** The primary twin was not written for longer than the scene's `staleAfterSeconds`. */
  stale: boolean;
  /** Opacity from the scene's rules (0..1), or null for the model's own. */
  opacity: number | null;
}

export interface TwinsceneState {
  state: 'booting' | 'loading' | 'ready' | 'failed';
  stage: 'scene' | 'mesh' | 'layout' | null;
  /** While the mesh downloads: [bytes received, bytes expected (0: unknown)]. */
  meshBytes: [number, number] | null;
  ready: boolean;
  error: string | null;
  live: 'off' | 'connecting' | 'live' | 'offline';
  liveError: string | null;
  liveRetryInMs: number | null;
  seq: number | null;
  /** Batches drawn in the last frame, `[full detail, every element's box, sparse boxes]`: a
   * chunk of a large model (over 2,000 mesh nodes) seen from farther than 1.5 of its diagonals
   * draws its elements as boxes, and farther still (where a cell of the model's median element
   * size is `farDetailPixels` tall) only the largest box of each cell, unless an element is
   * hidden. `null` until the model is batched. */
  detail: [number, number, number] | null;
  /** How many pixels tall a sparse far level's cell is where the level starts: 2, and up to 4
   * while the viewer draws fewer frames a second than the page's `min-fps` (default 10).
   * `null` for a model without far levels. */
  farDetailPixels: number | null;
  /** Elements whose primary twin was not written for longer than `staleAfterSeconds`. */
  staleCount: number;
  staleAfterSeconds: number | null;
  scene: string | null;
  /** The scene file's format, told by content. */
  sourceFormat: 'twinscene' | 'adt-3dscenes' | 'twinmaker' | 'adt-explorer' | null;
  /** What the scene file has that the viewer does not show (`pointer: message`). */
  importNotes: string[];
  /** What checking the scene found, `severity pointer: message` (as `twinscene validate` says
   * it): expressions that do not parse or do not fit the twins' DTDL types, unknown names. The
   * scene is shown anyway; an expression that fails has no value. */
  sceneChecks: string[];
  /** Every element by id. One object for the life of a scene: each publish rewrites only the
   * entries that changed (compare entries, not this object, to see changes). */
  elements: Record<string, TwinsceneElementState>;
  elementCount: number;
  /** Elements whose primary twin is not in the twin graph. */
  missingTwinCount: number;
  /** Elements with alert badges, in scene order; a new array with every publish. */
  alerts: { element: string; badges: TwinsceneBadge[] }[];
  /** Elements that show stale data, in scene order: the first 1,000 of them (`staleCount` has
   * them all, and each element's entry its own `stale`). Only these get a marker. */
  staleElements: string[];
  missingNodes: [string, string][];
  selected: string | null;
  hovered: string | null;
  inspector: {
    element: string;
    name: string | null;
    twinId: string;
    twin: Record<string, unknown> | null;
    relationships: { name: string; direction: 'in' | 'out'; twin: string; element: string | null }[];
    widgets: Record<string, unknown>[];
    /** Display units of the twin's properties from its DTDL model, e.g. `{temperature: "°C"}`. */
    units: Record<string, string>;
  } | null;
  ghosting: boolean;
  search: { query: string; results: string[] } | null;
  legend: { name: string; ranges: { label: string; color: string }[] }[];
  layers: { id: string; name: string; visible: boolean }[];
  viewpoints: { id: string; name: string }[];
  /** performance.now() when the viewer wrote this state. */
  publishedAt: number;
}

export type TwinsceneCommand =
  | { type: 'select'; element: string | null }
  | { type: 'focus'; element: string }
  | { type: 'resetView' }
  | { type: 'setGhosting'; on: boolean }
  | { type: 'search'; query: string }
  | { type: 'setLayer'; layer: string; visible: boolean }
  | { type: 'viewpoint'; id: string };

export interface TwinsceneAlertDetail extends TwinsceneBadge { element: string; twin: string }

export interface TwinsceneEventMap {
  ready: CustomEvent<{ scene: string | null; elements: number }>;
  select: CustomEvent<{ element: string | null; twin: string | null }>;
  alert: CustomEvent<TwinsceneAlertDetail>;
  'alert-cleared': CustomEvent<TwinsceneAlertDetail>;
  /** `status` is the global indicator: the link's state, or `stale` while connected with stale elements. */
  /** Kiosk mode changed: touring, holding on an alert, or reloading after a stall or panic. */
  kiosk: CustomEvent<{ mode: 'tour' | 'alert' | 'reloading'; viewpoint?: string; element?: string; reason?: string }>;
  'live-status': CustomEvent<{ status: TwinsceneState['live'] | 'stale'; error: string | null; retryInMs: number | null; staleCount: number }>;
  error: CustomEvent<{ message: string }>;
}

export declare class TwinSceneElement extends HTMLElement {
  /** The state last published by this viewer; undefined until it starts. */
  readonly state: TwinsceneState | undefined;
  /** Sends a command; false before the viewer runs. */
  command(command: TwinsceneCommand): boolean;
  select(element: string | null): boolean;
  focus(element: string): boolean;
  setLayer(layer: string, visible: boolean): boolean;
  viewpoint(id: string): boolean;
  getTwin(id: string): Promise<Record<string, unknown>>;
  /** Frames the viewer has run (the kiosk watchdog checks that it grows). */
  readonly frameCount: number;
  /** Bytes of the viewer's wasm linear memory. */
  readonly wasmMemoryBytes: number;
  addEventListener<K extends keyof TwinsceneEventMap>(
    type: K,
    listener: (this: TwinSceneElement, event: TwinsceneEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap { 'twin-scene': TwinSceneElement }
}
