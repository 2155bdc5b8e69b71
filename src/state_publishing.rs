//! Publishes what the viewer shows as one JSON object: phase, live status, last applied `seq`,
//! and per element its twin, color and where it is on screen. In the browser it becomes
//! `window.twinscene` (pages and browser tests read it); on the desktop it is the
//! [`PublishedState`] resource. It is rebuilt only when something in it can have changed.

use bevy::picking::mesh_picking::ray_cast::{MeshRayCast, MeshRayCastSettings, RayCastVisibility};
use bevy::prelude::*;
use bevy_panorbit_camera::PanOrbitCamera;
use serde::Serialize;

use crate::app_phase::AppPhase;
use crate::live_link::LiveLink;
use crate::scene_loading::{ElementBounds, ElementMeshes};
use crate::twin_state::{ElementStyleChanged, TwinRuntime};

#[derive(Resource, Serialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PublishedState {
    /// booting | loading | ready | failed
    pub state: &'static str,
    /// The loading stage (scene, mesh, layout) while loading.
    pub stage: Option<&'static str>,
    pub ready: bool,
    pub error: Option<String>,
    /// off | connecting | live | offline
    pub live: &'static str,
    pub live_error: Option<String>,
    /// The last applied live sequence number.
    pub seq: Option<u64>,
    pub scene: Option<String>,
    pub elements: std::collections::BTreeMap<String, PublishedElement>,
    /// Mesh node names the scene names but the model lacks: `element id → node name`.
    pub missing_nodes: Vec<(String, String)>,
    /// `performance.now()` when this state was written (browser only).
    pub published_at: f64,
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
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<PublishedState>().add_systems(Last, publish_state);
}

#[allow(clippy::too_many_arguments)] // One reader per kind of published fact.
fn publish_state(
    mut published: ResMut<PublishedState>,
    phase: Res<AppPhase>,
    link: Res<LiveLink>,
    runtime: Option<Res<TwinRuntime>>,
    mut style_changes: MessageReader<ElementStyleChanged>,
    layout: Option<(Res<ElementBounds>, Res<ElementMeshes>)>,
    camera: Option<Single<(Ref<GlobalTransform>, &Camera), With<PanOrbitCamera>>>,
    mut ray_cast: MeshRayCast,
) {
    let styles_changed = style_changes.read().count() > 0;
    let camera_moved = camera.as_ref().is_some_and(|c| c.0.is_changed());
    let first = published.state.is_empty();
    if !(first || phase.is_changed() || link.is_changed() || styles_changed || camera_moved) {
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
        ready: *phase == AppPhase::Ready,
        error,
        live: link.status.name(),
        live_error: link.last_error.clone(),
        seq: link.sequence.last_applied(),
        ..default()
    };
    if let Some(runtime) = &runtime {
        next.scene = runtime.scene().name.clone();
        let screen_of = |element: usize, ray_cast: &mut MeshRayCast| -> (Option<[f32; 2]>, bool) {
            let (Some((bounds, meshes)), Some(camera)) = (&layout, &camera) else { return (None, false) };
            let Some((min, max)) = bounds.elements.get(element).copied().flatten() else {
                return (None, false);
            };
            let (transform, camera) = (&camera.0, camera.1);
            let Ok(point) = camera.world_to_viewport(transform, (min + max) * 0.5) else {
                return (None, false);
            };
            let on_top = camera.viewport_to_world(transform, point).is_ok_and(|ray| {
                let settings = MeshRayCastSettings::default().with_visibility(RayCastVisibility::Visible);
                ray_cast
                    .cast_ray(ray, &settings)
                    .first()
                    .is_some_and(|(hit, _)| meshes.meshes_of(element).iter().any(|m| m.entity == *hit))
            });
            (Some([point.x, point.y]), on_top)
        };
        for (index, element) in runtime.elements().iter().enumerate() {
            let style = runtime.style(index);
            let (screen, on_top) = screen_of(index, &mut ray_cast);
            next.elements.insert(
                element.id.clone(),
                PublishedElement {
                    twin: element.twin.clone(),
                    twin_found: style.twin_found,
                    color: style.color.map(|c| c.to_string()),
                    screen,
                    on_top,
                },
            );
        }
        if let Some((_, meshes)) = &layout {
            next.missing_nodes = meshes
                .missing_nodes
                .iter()
                .map(|(element, node)| (runtime.elements()[*element].id.clone(), node.clone()))
                .collect();
        }
    }
    write_to_page(&mut next);
    *published = next;
}

#[cfg(target_arch = "wasm32")]
fn write_to_page(state: &mut PublishedState) {
    use wasm_bindgen::{JsCast, JsValue};
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &JsValue::from_str("performance")).unwrap_or_default();
    state.published_at = js_sys::Reflect::get(&performance, &JsValue::from_str("now"))
        .ok()
        .and_then(|now| now.dyn_into::<js_sys::Function>().ok())
        .and_then(|now| now.call0(&performance).ok())
        .and_then(|value| value.as_f64())
        .unwrap_or_default();
    let Ok(json) = serde_json::to_string(state) else { return };
    if let Ok(value) = js_sys::JSON::parse(&json) {
        let _ = js_sys::Reflect::set(&global, &JsValue::from_str("twinscene"), &value);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn write_to_page(_state: &mut PublishedState) {}
