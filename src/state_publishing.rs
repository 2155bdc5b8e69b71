//! Publishes what the viewer shows as one JSON object: phase, live status, last applied `seq`,
//! and per element its twin, color and where it is on screen. In the browser it becomes the
//! `twinscene` property of the viewer's canvas element (the `<twin-scene>` element reads it);
//! on the desktop it is the
//! [`PublishedState`] resource. It is rebuilt only when something in it can have changed.

use bevy::prelude::*;
use bevy_panorbit_camera::PanOrbitCamera;
use serde::Serialize;

use crate::ViewerConfig;
use crate::app_phase::AppPhase;
use crate::batched_geometry::{BatchGeometry, slot_of};
use crate::cpu_timings::CpuTimings;
use crate::detail_levels::{DetailDistances, FarDetail, FrameRateGovernor};
use crate::element_picking::ElementRayCast;
use crate::element_styles::Ghosting;
use crate::freshness::Freshness;
use crate::live_link::LiveLink;
use crate::page_bridge::SearchResults;
use crate::scene_loading::{ElementBounds, ElementMeshes, SceneSource};
use crate::selection::Selection;
use crate::twin_state::{ElementStyleChanged, TwinRuntime};
use twinscene_core::scene::Element as SceneElement;

#[derive(Resource, Serialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PublishedState {
    /// booting | loading | ready | failed
    pub state: &'static str,
    /// The loading stage (scene, mesh, layout) while loading.
    pub stage: Option<&'static str>,
    /// While the mesh downloads: bytes received and expected (0: not told by the server).
    pub mesh_bytes: Option<[u64; 2]>,
    pub ready: bool,
    pub error: Option<String>,
    /// off | connecting | live | offline
    pub live: &'static str,
    pub live_error: Option<String>,
    /// While offline: milliseconds from `publishedAt` until the next connection attempt.
    pub live_retry_in_ms: Option<u32>,
    /// The last applied live sequence number.
    pub seq: Option<u64>,
    /// How many elements show stale data (see `staleAfterSeconds` in the scene format).
    pub stale_count: usize,
    pub stale_after_seconds: Option<f64>,
    pub scene: Option<String>,
    /// The scene file's format: twinscene, adt-3dscenes, twinmaker or adt-explorer.
    pub source_format: Option<&'static str>,
    /// What the scene file has that the viewer does not show (`pointer: message`).
    pub import_notes: Vec<String>,
    /// What checking the scene found (`severity pointer: message`): expressions that do not
    /// parse or do not fit the twins' DTDL types, unknown names. The scene is shown anyway.
    pub scene_checks: Vec<String>,
    /// Every element's entry, by scene index (the page's `elements` object has them by id). In
    /// the browser that object is kept between publishes and only the entries that changed are
    /// rewritten (see `write_to_page`). By index, not in a map by id: at 10^6 elements the
    /// string comparisons of an ordered map's lookups were a sixth of a 10,000-element update.
    #[serde(skip)]
    pub elements: Vec<Option<PublishedElement>>,
    pub element_count: usize,
    /// Elements whose primary twin is not in the twin graph.
    pub missing_twin_count: usize,
    /// Elements with alert badges, in scene order: the page's `alerts` array, one entry
    /// `{element, badges}` each. A new array only when it changed (`alerts_changed`), otherwise
    /// the page keeps its array; and a new array keeps the entry objects of the elements whose
    /// badges did not change (see `write_to_page`). With 10^4 alerting elements, rebuilding,
    /// serializing and parsing every entry was the largest part of a publish.
    #[serde(skip)]
    pub alerts: PublishedAlerts,
    #[serde(skip)]
    pub alerts_changed: bool,
    /// Elements that show stale data, in scene order: the first `stale_markers_up_to` of them
    /// (`stale_count` has them all). Only these get a marker on the canvas.
    pub stale_elements: Vec<String>,
    /// Mesh node names the scene names but the model lacks: `element id → node name`.
    pub missing_nodes: Vec<(String, String)>,
    /// Batches drawn in the last frame: `[full detail, every element's box, sparse boxes]` (see
    /// `detail_levels`: a chunk farther than 1.5 of its diagonals draws its elements as boxes,
    /// and farther still only the largest box of each cell). `None` until the model is batched.
    pub detail: Option<[usize; 3]>,
    /// How many pixels tall a sparse level's cell is where the level starts (2–4, more while
    /// the frame rate is below the page's `min-fps`). `None` for a model without far levels.
    pub far_detail_pixels: Option<f32>,
    /// The selected and hovered element ids.
    pub selected: Option<String>,
    pub hovered: Option<String>,
    /// Details of the selected element for the inspector panel.
    pub inspector: Option<Inspector>,
    pub ghosting: bool,
    pub search: Option<PublishedSearch>,
    /// The color scales of the scene's behaviors, for a legend.
    pub legend: Vec<LegendEntry>,
    /// The scene's layers and whether each is switched on.
    pub layers: Vec<PublishedLayer>,
    /// The scene's viewpoints, for a menu.
    pub viewpoints: Vec<PublishedViewpoint>,
    /// Main-thread CPU time of live updates, element looks and picking (`cpu_timings`).
    pub timings: CpuTimings,
    /// `performance.now()` when this state was written (browser only).
    pub published_at: f64,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Inspector {
    pub element: String,
    pub name: Option<String>,
    /// The primary twin as ADT JSON, or `null` when the scene's twin is not found.
    pub twin: Option<serde_json::Value>,
    pub twin_id: String,
    pub relationships: Vec<PublishedRelationship>,
    /// Popover widgets of the element's behaviors with their current values.
    pub widgets: Vec<twinscene_core::runtime::WidgetValue>,
    /// Display units of the twin's properties, from its DTDL model (property → `°C`).
    pub units: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRelationship {
    pub name: String,
    /// `out` when the selected twin is the source, `in` when it is the target.
    pub direction: &'static str,
    /// The twin at the other end.
    pub twin: String,
    /// The first element bound to that twin, if any.
    pub element: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct LegendEntry {
    pub name: String,
    pub ranges: Vec<LegendRange>,
}

#[derive(Serialize, Debug, Clone)]
pub struct LegendRange {
    pub label: String,
    pub color: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PublishedSearch {
    pub query: String,
    pub results: Vec<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedElement {
    pub twin: String,
    pub twin_found: bool,
    /// The style color (`#rrggbb`), or `null` when the element shows its model material.
    pub color: Option<String>,
    /// Where the element's center is on the canvas, in CSS pixels from its top-left corner.
    pub screen: Option<[f32; 2]>,
    /// Whether the element is what a user sees at `screen` (not hidden behind another).
    pub on_top: bool,
    /// False while a visibility rule hides the element.
    pub visible: bool,
    /// Alert badges from the scene's behaviors, in scene order.
    pub badges: Vec<PublishedBadge>,
    /// Text from label rules.
    pub label: Option<String>,
    /// The primary twin was not written for longer than the scene's `staleAfterSeconds`.
    pub stale: bool,
    /// Opacity from the scene's rules (`0..1`), or `null` for the model's own.
    pub opacity: Option<f32>,
}

/// The alerting elements as the page's `alerts` array holds them.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct PublishedAlerts {
    /// Element indexes in scene order, one entry of the array each.
    pub order: Vec<usize>,
    /// The elements of `order` whose entry is new in this publish (all of them after a reset):
    /// their badges changed or they started alerting.
    pub fresh: std::collections::BTreeSet<usize>,
    /// `order` as last published, where the entries kept are found.
    pub previous_order: Vec<usize>,
}

impl PublishedAlerts {
    /// For each element of `order`: where its entry is in the previous array, or `None` when
    /// it needs a new one.
    pub fn kept_positions(&self) -> impl Iterator<Item = (usize, Option<usize>)> + '_ {
        let mut previous = 0;
        self.order.iter().map(move |&element| {
            if self.fresh.contains(&element) {
                return (element, None);
            }
            while self.previous_order.get(previous).is_some_and(|&p| p < element) {
                previous += 1;
            }
            (element, (self.previous_order.get(previous) == Some(&element)).then_some(previous))
        })
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PublishedBadge {
    pub icon: String,
    pub color: Option<String>,
    pub label: Option<String>,
    /// info | warning | error, when the scene says.
    pub severity: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct PublishedViewpoint {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct PublishedLayer {
    pub id: String,
    pub name: String,
    pub visible: bool,
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<PublishedState>().add_systems(Last, publish_state);
}

/// The orbit camera with change detection, to know when screen positions moved.
type OrbitCameraView<'w, 's> =
    Single<'w, 's, (Ref<'static, GlobalTransform>, Ref<'static, Camera>), With<PanOrbitCamera>>;

/// What the page can act on besides twin state: selection, search, view options.
#[derive(bevy::ecs::system::SystemParam)]
struct Interaction<'w> {
    selection: Res<'w, Selection>,
    search: Res<'w, SearchResults>,
    ghosting: Res<'w, Ghosting>,
    freshness: Res<'w, Freshness>,
}

impl Interaction<'_> {
    fn is_changed(&self) -> bool {
        self.selection.is_changed()
            || self.search.is_changed()
            || self.ghosting.is_changed()
            || self.freshness.is_changed()
    }
}

/// Up to this many elements (by default) every element's screen position is published. Above it
/// only the elements the page draws something at (alerts, stale markers, selection, hover,
/// search results) get one: each position costs a projection and a ray cast on every camera
/// move. Pages set it with the `screen-positions-up-to` attribute.
pub const ALL_SCREEN_POSITIONS_UP_TO: usize = 5_000;

/// By default at most this many stale elements are listed in `staleElements`, positioned and
/// marked on the canvas (pages set it with the `stale-markers-up-to` attribute). When a large
/// facility's data goes quiet, up to all of its elements turn stale at once: listing,
/// ray casting and marking each of them on every publish took the page (10^6 elements, after
/// 3.5 × 10^5 random writes went quiet) from 3.7 to 6.3 GB and left it unresponsive. The
/// count, the status line and each element's own `stale` flag still cover them all.
pub const STALE_MARKERS_UP_TO: usize = 1_000;

/// What a publish needs besides the published entries themselves (`PublishedState::elements`),
/// so that it writes only the elements that changed: at 10^5 elements rebuilding and sending
/// every element on each live update or camera move would take longer than a frame.
#[derive(Default)]
struct ElementCache {
    /// Per element (scene index); its length is the element count of the scene cached.
    screen: Vec<ScreenPosition>,
    /// Elements with badges, in scene order.
    alerting: std::collections::BTreeSet<usize>,
    /// Elements that started or stopped alerting or whose badges changed since the alerts were
    /// last published.
    changed_alerts: std::collections::BTreeSet<usize>,
    /// The alerts were not published since the scene (re)started: every entry is new.
    alerts_reset: bool,
    /// Elements with a screen position, when not every element has one.
    positioned: std::collections::BTreeSet<usize>,
    /// Published entries whose twin is not found.
    missing_twins: usize,
    /// The elements a publish rewrites; kept between publishes so that a publish costs what
    /// changed, not the element count (a million at the largest).
    dirty: DirtyElements,
}

/// A set of element indices: a flag per element to test and a list to go through.
#[derive(Default)]
struct DirtyElements {
    flags: Vec<bool>,
    list: Vec<usize>,
}

impl DirtyElements {
    fn insert(&mut self, element: usize) {
        if let Some(flag) = self.flags.get_mut(element)
            && !*flag
        {
            *flag = true;
            self.list.push(element);
        }
    }

    /// The elements in scene order.
    fn sorted(&mut self) -> &[usize] {
        self.list.sort_unstable();
        &self.list
    }

    /// Empties the set for `count` elements.
    fn clear(&mut self, count: usize) {
        if self.flags.len() == count {
            for &element in &self.list {
                self.flags[element] = false;
            }
        } else {
            self.flags = vec![false; count];
        }
        self.list.clear();
    }
}

/// Every batch (full detail or a far level), whether it was drawn, and its far level.
type DrawnBatches<'w, 's> = Query<
    'w,
    's,
    (&'static ViewVisibility, Option<&'static FarDetail>),
    Or<(With<BatchGeometry>, With<FarDetail>)>,
>;

#[allow(clippy::too_many_arguments)] // One reader per kind of published fact.
fn publish_state(
    mut published: ResMut<PublishedState>,
    config: Res<ViewerConfig>,
    phase: Res<AppPhase>,
    link: Res<LiveLink>,
    interaction: Interaction,
    runtime: Option<Res<TwinRuntime>>,
    source: Option<Res<SceneSource>>,
    layout: Option<(Res<ElementBounds>, Res<ElementMeshes>)>,
    camera: Option<OrbitCameraView>,
    mut style_changes: MessageReader<ElementStyleChanged>,
    mut ray_cast: ElementRayCast,
    mut cache: Local<ElementCache>,
    (batches, far_levels, governor): (DrawnBatches, Option<Res<DetailDistances>>, Res<FrameRateGovernor>),
    new_batches: Query<(), Added<BatchGeometry>>,
    timings: Res<CpuTimings>,
) {
    // Which level each chunk is drawn at follows the camera, a frame after it moved.
    let detail = (!batches.is_empty()).then(|| {
        batches.iter().filter(|(visibility, _)| visibility.get()).fold(
            [0, 0, 0],
            |[near, boxes, sparse], (_, level)| match level {
                None => [near + 1, boxes, sparse],
                Some(FarDetail::Boxes) => [near, boxes + 1, sparse],
                Some(FarDetail::Sparse(_)) => [near, boxes, sparse + 1],
            },
        )
    });
    let far_detail_pixels = far_levels.is_some().then(|| governor.cell_pixels());
    let detail_changed = detail != published.detail || far_detail_pixels != published.far_detail_pixels;
    let twins_changed = runtime.as_ref().is_some_and(|r| r.is_changed());
    // New batches change what is on top where: the model is drawn (and hit) only once it is
    // batched, a frame or more after the layout is known.
    let layout_changed = layout.as_ref().is_some_and(|(bounds, _)| bounds.is_changed())
        || camera.as_ref().is_some_and(|c| c.0.is_changed() || c.1.is_changed())
        || !new_batches.is_empty();
    let first = published.state.is_empty();
    // The download progresses between other changes: publish it as it moves.
    let mesh_bytes = (*phase == AppPhase::Loading(crate::app_phase::LoadStage::Mesh)).then(|| {
        use std::sync::atomic::Ordering::Relaxed;
        [crate::scene_loading::MESH_BYTES.0.load(Relaxed), crate::scene_loading::MESH_BYTES.1.load(Relaxed)]
    });
    let download_moved = mesh_bytes.is_some() && mesh_bytes != published.mesh_bytes;
    let styled: Vec<usize> = style_changes.read().map(|ElementStyleChanged(change)| change.element).collect();
    if !(first
        || phase.is_changed()
        || link.is_changed()
        || interaction.is_changed()
        || twins_changed
        || layout_changed
        || download_moved
        || detail_changed
        || !styled.is_empty()
        || source.as_ref().is_some_and(|s| s.is_changed()))
    {
        return;
    }
    let (state, stage, error) = match &*phase {
        AppPhase::Booting => ("booting", None, None),
        AppPhase::Loading(stage) => ("loading", Some(stage.name()), None),
        AppPhase::Ready => ("ready", None, None),
        AppPhase::Failed(message) => ("failed", None, Some(message.clone())),
    };
    let mut next = PublishedState {
        state,
        stage,
        mesh_bytes,
        ready: *phase == AppPhase::Ready,
        error,
        live: link.status.name(),
        live_error: link.last_error.clone(),
        live_retry_in_ms: link.retry_in_ms,
        seq: link.sequence.last_applied(),
        detail,
        far_detail_pixels,
        stale_count: interaction.freshness.stale_count(),
        // Carried over: only changed entries are rewritten below.
        elements: std::mem::take(&mut published.elements),
        timings: *timings,
        ..default()
    };
    let mut changed = ChangedElements::default();
    if let Some(runtime) = &runtime {
        next.scene = runtime.scene().name.clone();
        next.stale_after_seconds = runtime.scene().stale_after_seconds;
        if let Some(source) = &source {
            next.source_format = Some(source.format.name());
            next.import_notes = source.notes.iter().map(ToString::to_string).collect();
            next.scene_checks = source.findings.iter().flatten().map(ToString::to_string).collect();
        }
        next.legend = legend(runtime.scene());
        next.viewpoints = runtime
            .scene()
            .viewpoints
            .iter()
            .map(|viewpoint| PublishedViewpoint {
                id: viewpoint.id.clone(),
                name: viewpoint.name.clone().unwrap_or_else(|| viewpoint.id.clone()),
            })
            .collect();
        next.layers = runtime
            .scene()
            .layers
            .iter()
            .map(|layer| PublishedLayer {
                id: layer.id.clone(),
                name: layer.name.clone().unwrap_or_else(|| layer.id.clone()),
                visible: runtime.layer_visible(&layer.id),
            })
            .collect();
        let view = match (&layout, &camera) {
            (Some((bounds, meshes)), Some(camera)) => {
                Some(View { bounds, meshes, transform: &camera.0, camera: &camera.1 })
            }
            _ => None,
        };
        changed = update_elements(
            &mut cache,
            &mut next.elements,
            &config,
            runtime,
            &interaction,
            &styled,
            view.as_ref(),
            layout_changed,
            &mut ray_cast,
        );
        next.element_count = runtime.elements().len();
        next.missing_twin_count = cache.missing_twins;
        let reset = std::mem::take(&mut cache.alerts_reset);
        let changed_alerts = std::mem::take(&mut cache.changed_alerts);
        next.alerts_changed = reset || !changed_alerts.is_empty();
        let previous_order = std::mem::take(&mut published.alerts.order);
        next.alerts = if next.alerts_changed {
            let order: Vec<usize> = cache.alerting.iter().copied().collect();
            let fresh = if reset {
                order.iter().copied().collect()
            } else {
                changed_alerts.intersection(&cache.alerting).copied().collect()
            };
            PublishedAlerts { order, fresh, previous_order }
        } else {
            PublishedAlerts { order: previous_order, ..default() }
        };
        next.stale_elements = interaction
            .freshness
            .stale_elements()
            .take(config.stale_markers_up_to)
            .map(|index| runtime.elements()[index].id.clone())
            .collect();
        let element_id = |index: usize| runtime.elements()[index].id.clone();
        next.selected = interaction.selection.selected.map(element_id);
        next.hovered = interaction.selection.hovered.map(element_id);
        next.inspector = interaction.selection.selected.map(|index| inspect(runtime, index));
        next.ghosting = interaction.ghosting.0;
        if !interaction.search.query.is_empty() {
            next.search = Some(PublishedSearch {
                query: interaction.search.query.clone(),
                results: interaction.search.elements.iter().map(|&index| element_id(index)).collect(),
            });
        }
        if let Some((_, meshes)) = &layout {
            next.missing_nodes = meshes
                .missing_nodes
                .iter()
                .map(|(element, node)| (runtime.elements()[*element].id.clone(), node.clone()))
                .collect();
        }
    }
    let scene_elements = runtime.as_ref().map_or(&[][..], |runtime| runtime.elements());
    write_to_page(&mut next, &changed, scene_elements, config.canvas.as_deref());
    *published = next;
}

/// The camera and layout that screen positions come from.
struct View<'a> {
    bounds: &'a ElementBounds,
    meshes: &'a ElementMeshes,
    transform: &'a GlobalTransform,
    camera: &'a Camera,
}

/// The element entries a publish rewrote, by scene index (the entries themselves are in
/// `PublishedState::elements`); `reset` when the page must drop the entries it has (another
/// scene).
#[derive(Default)]
struct ChangedElements {
    // Read only where there is a page to write to.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    reset: bool,
    elements: Vec<usize>,
}

/// The rewritten entries as one object by element id, serialized from where they are kept:
/// copying each (its id, twin id, colors and badges) for the page cost as much as making it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct ChangedEntries<'a> {
    elements: &'a [usize],
    scene_elements: &'a [SceneElement],
    published: &'a [Option<PublishedElement>],
}

impl Serialize for ChangedEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = |&element: &usize| {
            Some((&self.scene_elements.get(element)?.id, self.published.get(element)?.as_ref()?))
        };
        serializer.collect_map(self.elements.iter().filter_map(entry))
    }
}

/// Brings the cached and published entries up to date: elements whose style changed, whose
/// staleness flipped, or whose screen position moved. Returns the entries that changed.
#[allow(clippy::too_many_arguments)] // The facts one element entry is made of.
fn update_elements(
    cache: &mut ElementCache,
    published: &mut Vec<Option<PublishedElement>>,
    config: &ViewerConfig,
    runtime: &TwinRuntime,
    interaction: &Interaction,
    styled: &[usize],
    view: Option<&View>,
    layout_changed: bool,
    ray_cast: &mut ElementRayCast,
) -> ChangedElements {
    let count = runtime.elements().len();
    let reset = cache.screen.len() != count;
    if reset {
        *cache = ElementCache { screen: vec![ScreenPosition::default(); count], ..default() };
        published.clear();
        published.resize_with(count, || None);
    }
    let mut dirty = std::mem::take(&mut cache.dirty);
    dirty.clear(count);
    if reset {
        (0..count).for_each(|element| dirty.insert(element));
    }
    for &element in styled {
        dirty.insert(element);
    }
    if interaction.freshness.is_changed() {
        for &element in &interaction.freshness.flipped {
            dirty.insert(element);
        }
    }
    // Badges decide which elements are positioned in a large scene, so they are known first.
    // A new scene's alerts replace the old one's, even when it has none.
    cache.alerts_reset |= reset;
    for &element in &dirty.list {
        if runtime.style(element).badges.is_empty() {
            cache.alerting.remove(&element);
        } else {
            cache.alerting.insert(element);
        }
    }
    // Screen positions: all of them when the view moved, else those of rewritten elements (and
    // of the selection and hover, which position large scenes).
    let every_position = count <= config.screen_positions_up_to;
    let wanted: std::collections::BTreeSet<usize> = if every_position {
        Default::default()
    } else {
        positioned_in_large_scene(cache, interaction, count, config.stale_markers_up_to).collect()
    };
    let to_position: std::collections::BTreeSet<usize> = if layout_changed || reset {
        if every_position {
            (0..count).collect()
        } else {
            // Those positioned before too, so that an element that no longer needs one drops it.
            cache.positioned.iter().chain(&wanted).copied().collect()
        }
    } else {
        let mut elements: std::collections::BTreeSet<usize> = dirty.list.iter().copied().collect();
        if !every_position && (interaction.selection.is_changed() || interaction.search.is_changed()) {
            elements.extend(cache.positioned.iter().chain(&wanted).copied());
        }
        if !every_position && interaction.freshness.is_changed() {
            // An element can join the listed stale ones without a change of its own (one
            // before it turned fresh): it needs its position for its marker.
            let listed = interaction.freshness.stale_elements().take(config.stale_markers_up_to);
            elements.extend(listed.filter(|element| !cache.positioned.contains(element)));
        }
        elements
    };
    for element in to_position {
        let position = match view {
            Some(view) if every_position || wanted.contains(&element) => {
                screen_position(element, view, ray_cast)
            }
            _ => ScreenPosition::default(),
        };
        if !every_position {
            if position.screen.is_some() {
                cache.positioned.insert(element);
            } else {
                cache.positioned.remove(&element);
            }
        }
        if cache.screen[element] != position {
            cache.screen[element] = position;
            dirty.insert(element);
        }
    }
    let mut changed = ChangedElements { reset, ..default() };
    for &element in dirty.sorted() {
        let entry = published_element(runtime, interaction, element, cache.screen[element]);
        let previous = published.get(element).and_then(Option::as_ref);
        if previous != Some(&entry) {
            // Alerts came, went or changed exactly where an entry's badges did.
            if previous.map_or(&[][..], |p| &p.badges[..]) != &entry.badges[..] {
                cache.changed_alerts.insert(element);
            }
            let was_missing = previous.is_some_and(|e| !e.twin_found);
            cache.missing_twins =
                cache.missing_twins + usize::from(!entry.twin_found) - usize::from(was_missing);
            changed.elements.push(element);
            if let Some(slot) = published.get_mut(element) {
                *slot = Some(entry);
            }
        }
    }
    // The page's object gets its keys in the order of the first publish: by id, as it always
    // had them (later publishes rewrite entries in place).
    if reset {
        let elements = runtime.elements();
        changed.elements.sort_unstable_by(|&a, &b| elements[a].id.cmp(&elements[b].id));
    }
    cache.dirty = dirty;
    changed
}

/// The elements of a large scene that the page draws something at.
fn positioned_in_large_scene<'a>(
    cache: &'a ElementCache,
    interaction: &'a Interaction,
    count: usize,
    stale_markers_up_to: usize,
) -> impl Iterator<Item = usize> + 'a {
    let stale = interaction.freshness.stale_elements().take(stale_markers_up_to);
    cache
        .alerting
        .iter()
        .copied()
        .chain(stale)
        .chain(interaction.selection.selected)
        .chain(interaction.selection.hovered)
        .chain(interaction.search.elements.iter().copied())
        .filter(move |&element| element < count)
}

fn published_element(
    runtime: &TwinRuntime,
    interaction: &Interaction,
    index: usize,
    position: ScreenPosition,
) -> PublishedElement {
    let element = &runtime.elements()[index];
    let style = runtime.style(index);
    PublishedElement {
        twin: element.twin.clone(),
        twin_found: style.twin_found,
        color: style.color.map(|c| c.to_string()),
        screen: position.screen,
        on_top: position.on_top,
        visible: style.visible,
        badges: style
            .badges
            .iter()
            .map(|badge| PublishedBadge {
                icon: badge.icon.clone(),
                color: badge.color.map(|c| c.to_string()),
                label: badge.label.clone(),
                severity: badge.severity.map(|s| s.to_string()),
            })
            .collect(),
        label: style.label.clone(),
        stale: interaction.freshness.is_stale(index),
        opacity: style.opacity_f32(),
    }
}

fn legend(scene: &twinscene_core::scene::Scene) -> Vec<LegendEntry> {
    let mut entries = Vec::new();
    for behavior in &scene.behaviors {
        for visual in &behavior.visuals {
            let twinscene_core::scene::Visual::Color { ranges, .. } = visual else { continue };
            let ranges = ranges
                .iter()
                .map(|range| LegendRange {
                    label: match (range.min, range.max) {
                        (None, None) => "any value".to_owned(),
                        (None, Some(max)) => format!("below {max}"),
                        (Some(min), None) => format!("{min} and above"),
                        (Some(min), Some(max)) => format!("{min} to {max}"),
                    },
                    color: range.color.to_string(),
                })
                .collect();
            entries.push(LegendEntry {
                name: behavior.name.clone().unwrap_or_else(|| behavior.id.clone()),
                ranges,
            });
        }
    }
    entries
}

/// Where an element appears on the canvas, cached between camera moves.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ScreenPosition {
    screen: Option<[f32; 2]>,
    on_top: bool,
}

fn screen_position(element: usize, view: &View, ray_cast: &mut ElementRayCast) -> ScreenPosition {
    let Some((min, max)) = view.bounds.elements.get(element).copied().flatten() else {
        return ScreenPosition::default();
    };
    let Ok(point) = view.camera.world_to_viewport(view.transform, (min + max) * 0.5) else {
        return ScreenPosition::default();
    };
    let on_top = view.camera.viewport_to_world(view.transform, point).is_ok_and(|ray| {
        ray_cast.nearest(ray).is_some_and(|hit| match hit.slot {
            Some(slot) => slot == slot_of(element),
            None => view.meshes.meshes_of(element).iter().any(|m| m.entity == hit.entity),
        })
    });
    ScreenPosition { screen: Some([point.x, point.y]), on_top }
}

fn inspect(runtime: &TwinRuntime, index: usize) -> Inspector {
    let element = &runtime.elements()[index];
    let twin_id = element.twin.clone();
    let element_of_twin =
        |twin: &str| runtime.element_of_twin(twin).map(|e| runtime.elements()[e].id.clone());
    let relationships = runtime
        .graph()
        .relationships_of(&twin_id)
        .into_iter()
        .filter_map(|relationship| {
            let (direction, other) = if relationship.source == twin_id {
                ("out", &relationship.target)
            } else if relationship.target == twin_id {
                ("in", &relationship.source)
            } else {
                return None;
            };
            Some(PublishedRelationship {
                name: relationship.name.clone(),
                direction,
                twin: other.clone(),
                element: element_of_twin(other),
            })
        })
        .collect();
    let twin = runtime.graph().twin(&twin_id);
    let units = match (twin, runtime.graph().models()) {
        (Some(twin), Some(models)) => twin
            .properties
            .keys()
            .filter_map(|name| {
                twinscene_core::units::property_unit(models, &twin.model, name)
                    .map(|unit| (name.to_owned(), unit))
            })
            .collect(),
        _ => Default::default(),
    };
    Inspector {
        element: element.id.clone(),
        name: element.name.clone(),
        twin: twin.map(|twin| twin.to_adt_json()),
        units,
        twin_id,
        relationships,
        widgets: runtime.popover(index),
    }
}

#[cfg(target_arch = "wasm32")]
fn write_to_page(
    state: &mut PublishedState,
    changed: &ChangedElements,
    scene_elements: &[SceneElement],
    canvas: Option<&str>,
) {
    use wasm_bindgen::{JsCast, JsValue};
    let global = js_sys::global();
    // The state goes onto the viewer's canvas element (several viewers per page each have
    // their own), or onto `window` when there is no canvas selector.
    let target = canvas
        .and_then(|selector| {
            let document = js_sys::Reflect::get(&global, &JsValue::from_str("document")).ok()?;
            let query = js_sys::Reflect::get(&document, &JsValue::from_str("querySelector")).ok()?;
            let element = query
                .dyn_into::<js_sys::Function>()
                .ok()?
                .call1(&document, &JsValue::from_str(selector))
                .ok()?;
            (!element.is_null()).then_some(element)
        })
        .unwrap_or_else(|| global.clone().into());
    let performance = js_sys::Reflect::get(&global, &JsValue::from_str("performance")).unwrap_or_default();
    state.published_at = js_sys::Reflect::get(&performance, &JsValue::from_str("now"))
        .ok()
        .and_then(|now| now.dyn_into::<js_sys::Function>().ok())
        .and_then(|now| now.call0(&performance).ok())
        .and_then(|value| value.as_f64())
        .unwrap_or_default();
    let key = JsValue::from_str("twinscene");
    let elements_key = JsValue::from_str("elements");
    let alerts_key = JsValue::from_str("alerts");
    let previous = js_sys::Reflect::get(&target, &key).ok().filter(|previous| previous.is_object());
    // The elements object outlives a publish: only the entries that changed are written into it,
    // so a page holding it sees them change in place.
    let kept = previous
        .as_ref()
        .filter(|_| !changed.reset)
        .and_then(|previous| js_sys::Reflect::get(previous, &elements_key).ok())
        .and_then(|elements| elements.dyn_into::<js_sys::Object>().ok());
    let elements = kept.unwrap_or_default();
    let previous_alerts = previous
        .as_ref()
        .and_then(|previous| js_sys::Reflect::get(previous, &alerts_key).ok())
        .and_then(|alerts| alerts.dyn_into::<js_sys::Array>().ok());
    if !changed.elements.is_empty() {
        let entries =
            ChangedEntries { elements: &changed.elements, scene_elements, published: &state.elements };
        let Ok(json) = serde_json::to_string(&entries) else { return };
        if let Ok(entries) = js_sys::JSON::parse(&json).and_then(|v| v.dyn_into::<js_sys::Object>()) {
            js_sys::Object::assign(&elements, &entries);
        }
    }
    // The alerts array is the previous one while no alert came, went or changed. A new one
    // keeps the previous entry objects of the elements whose badges did not change, and makes
    // the others from the (updated) elements object.
    let alerts: JsValue = match previous_alerts {
        Some(alerts) if !state.alerts_changed => alerts.into(),
        previous_alerts => {
            let previous_alerts = previous_alerts.filter(|alerts| {
                !changed.reset && alerts.length() as usize == state.alerts.previous_order.len()
            });
            let (element_key, badges_key) = (JsValue::from_str("element"), JsValue::from_str("badges"));
            let alerts = js_sys::Array::new();
            for (element, kept) in state.alerts.kept_positions() {
                let entry = match (kept, &previous_alerts) {
                    (Some(kept), Some(previous)) => previous.get(kept as u32),
                    _ => {
                        let Some(scene_element) = scene_elements.get(element) else { continue };
                        let id = JsValue::from_str(&scene_element.id);
                        let badges = js_sys::Reflect::get(&elements, &id)
                            .and_then(|entry| js_sys::Reflect::get(&entry, &badges_key))
                            .ok()
                            .filter(js_sys::Array::is_array)
                            .unwrap_or_else(|| js_sys::Array::new().into());
                        let entry = js_sys::Object::new();
                        let _ = js_sys::Reflect::set(&entry, &element_key, &id);
                        let _ = js_sys::Reflect::set(&entry, &badges_key, &badges);
                        entry.into()
                    }
                };
                alerts.push(&entry);
            }
            alerts.into()
        }
    };
    let Ok(json) = serde_json::to_string(state) else { return };
    if let Ok(value) = js_sys::JSON::parse(&json) {
        let _ = js_sys::Reflect::set(&value, &elements_key, &elements);
        let _ = js_sys::Reflect::set(&value, &alerts_key, &alerts);
        let _ = js_sys::Reflect::set(&target, &key, &value);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn write_to_page(
    _state: &mut PublishedState,
    _changed: &ChangedElements,
    _scene_elements: &[SceneElement],
    _canvas: Option<&str>,
) {
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_alerts_array_keeps_the_entries_of_unchanged_elements() {
        let alerts = PublishedAlerts {
            order: vec![1, 3, 5, 7, 9],
            fresh: [5, 9].into_iter().collect(),
            previous_order: vec![1, 2, 5, 7],
        };
        let kept: Vec<(usize, Option<usize>)> = alerts.kept_positions().collect();
        // 3 is new (not in the previous array) although not marked fresh; 5 and 9 changed; 2
        // stopped alerting.
        assert_eq!(kept, vec![(1, Some(0)), (3, None), (5, None), (7, Some(3)), (9, None)]);
        let all_new = PublishedAlerts { fresh: alerts.order.iter().copied().collect(), ..alerts.clone() };
        assert!(all_new.kept_positions().all(|(_, kept)| kept.is_none()));
        assert_eq!(PublishedAlerts::default().kept_positions().count(), 0);
    }
}
