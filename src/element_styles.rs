//! Paints elements by their style and emphasis. Materials are shared: one per (style color or
//! model material, emphasis) pair, never one per element. "No color" restores the model's own
//! material; hover, selection and ghosting derive variants from whichever base applies. A style
//! opacity (e.g. TwinMaker's `opacity` rule targets) makes a translucent variant of the base.
//! Once the model is batched (batched_geometry.rs), the same look is written to the element's
//! texels in the state texture instead; only meshes left out of batching still swap materials.
//! There a stale element (`Freshness`) is also flagged, and drawn with its color faded to gray.

use std::collections::HashMap;

use bevy::camera::visibility::VisibilitySystems;
use bevy::prelude::*;
use twinscene_core::color::{Color as StyleColor, Opacity};

use crate::batched_geometry::{
    BatchMaterial, Batched, ElementStates, SlotLook, StateFlags, UNBOUND_SLOT, slot_of,
};
use crate::cpu_timings::{CpuTimings, elapsed_ms};
use crate::freshness::Freshness;
use crate::scene_loading::{ElementMesh, ElementMeshes};
use crate::selection::Selection;
use crate::twin_state::{ElementStyleChanged, TwinRuntime};

/// When on, everything but the selected and the alerting elements is drawn translucent.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ghosting(pub bool);

/// How strongly an element is set apart from the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emphasis {
    Normal,
    Hovered,
    Selected,
    Ghosted,
}

/// What a material is derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MaterialBase {
    Style(StyleColor),
    Model(AssetId<StandardMaterial>),
}

/// The shared materials in use, by base, emphasis and style opacity.
#[derive(Resource, Default)]
pub struct StyleMaterials {
    by_key: HashMap<(MaterialBase, Emphasis, Option<Opacity>), Handle<StandardMaterial>>,
}

/// Highlight of unstyled elements: a cool tint that no temperature or alert color uses.
// Both are mirrored in batched_geometry.wgsl.
const HIGHLIGHT: LinearRgba = LinearRgba::rgb(0.1, 0.55, 1.0);
const GHOST_ALPHA: f32 = 0.12;

/// The parts of an element's style that choose its material.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Look {
    color: Option<StyleColor>,
    opacity: Option<Opacity>,
}

impl StyleMaterials {
    /// How many distinct materials styles have created (for tests and diagnostics).
    pub fn count(&self) -> usize {
        self.by_key.len()
    }

    fn get(
        &mut self,
        look: Look,
        mesh: &ElementMesh,
        emphasis: Emphasis,
        materials: &mut Assets<StandardMaterial>,
    ) -> Handle<StandardMaterial> {
        // Ghosting sets its own alpha; an opaque style opacity is the model's own look.
        let opacity = look.opacity.filter(|o| *o != Opacity::OPAQUE && emphasis != Emphasis::Ghosted);
        let base = match look.color {
            Some(color) => MaterialBase::Style(color),
            None if emphasis == Emphasis::Normal && opacity.is_none() => return mesh.model_material.clone(),
            None => MaterialBase::Model(mesh.model_material.id()),
        };
        if let Some(handle) = self.by_key.get(&(base, emphasis, opacity)) {
            return handle.clone();
        }
        let mut material = match base {
            MaterialBase::Style(color) => style_material(color),
            MaterialBase::Model(id) => materials.get(id).cloned().unwrap_or_default(),
        };
        emphasize(&mut material, emphasis, matches!(base, MaterialBase::Style(_)));
        if let Some(opacity) = opacity {
            material.base_color.set_alpha(material.base_color.alpha() * opacity.as_f32());
            material.alpha_mode = AlphaMode::Blend;
        }
        let handle = materials.add(material);
        self.by_key.insert((base, emphasis, opacity), handle.clone());
        handle
    }
}

fn style_material(color: StyleColor) -> StandardMaterial {
    let base = Color::srgb_u8(color.r, color.g, color.b);
    StandardMaterial {
        base_color: base,
        // A little self-light keeps the hue readable on faces turned from the sun.
        emissive: base.to_linear() * 0.25,
        perceptual_roughness: 0.85,
        metallic: 0.0,
        // Building exports often wind faces inconsistently.
        double_sided: true,
        cull_mode: None,
        ..default()
    }
}

/// Derives the emphasized variant. Styled elements keep their hue (it carries the twin's
/// state) and only brighten; unstyled ones take the highlight tint.
fn emphasize(material: &mut StandardMaterial, emphasis: Emphasis, styled: bool) {
    let glow = if styled { material.base_color.to_linear() } else { HIGHLIGHT };
    match emphasis {
        Emphasis::Normal => {}
        Emphasis::Hovered => material.emissive += glow * 0.2,
        Emphasis::Selected => material.emissive += glow * 0.6,
        Emphasis::Ghosted => {
            material.base_color.set_alpha(GHOST_ALPHA);
            material.emissive = LinearRgba::BLACK;
            material.alpha_mode = AlphaMode::Blend;
        }
    }
}

pub(super) fn plugin(app: &mut App) {
    // After Update, where every style change is made (live messages, the clock, layer switches,
    // selection): painting in Update too, in no set order, left a change unpainted until the
    // next frame whenever the painter happened to run first, while the page already had its
    // `seq`. Before visibility propagates, so that a hidden unbatched mesh is hidden this frame.
    app.init_resource::<StyleMaterials>().init_resource::<Ghosting>().add_systems(
        PostUpdate,
        (
            paint_all.run_if(
                resource_added::<ElementMeshes>
                    .or_else(resource_changed::<Ghosting>)
                    .or_else(resource_added::<ElementStates>),
            ),
            paint_changed,
        )
            .chain()
            .run_if(resource_exists::<ElementMeshes>)
            .before(VisibilitySystems::VisibilityPropagate),
    );
}

fn paint_all(
    runtime: Res<TwinRuntime>,
    element_meshes: Res<ElementMeshes>,
    mut painter: ElementPainter,
    mut changes: MessageReader<ElementStyleChanged>,
) {
    // Every element is painted from the runtime's current state; earlier messages are moot.
    changes.clear();
    for element in 0..runtime.elements().len() {
        painter.paint(element, &runtime, &element_meshes);
    }
    painter.paint_unbound(&element_meshes);
    painter.finish();
}

fn paint_changed(
    runtime: Res<TwinRuntime>,
    element_meshes: Res<ElementMeshes>,
    mut painter: ElementPainter,
    mut changes: MessageReader<ElementStyleChanged>,
    mut previous_selection: Local<Selection>,
    mut timings: ResMut<CpuTimings>,
) {
    // Timed from here: gathering the changed elements is part of the work a live update costs.
    let start = bevy::platform::time::Instant::now();
    // Sorted (slots near each other are written together) and each element once.
    let mut dirty: Vec<usize> = changes.read().map(|ElementStyleChanged(change)| change.element).collect();
    if painter.freshness.is_changed() {
        dirty.extend_from_slice(&painter.freshness.flipped);
    }
    let selection = painter.selection.clone();
    if selection != *previous_selection {
        dirty.extend(
            [previous_selection.hovered, previous_selection.selected, selection.hovered, selection.selected]
                .into_iter()
                .flatten(),
        );
        *previous_selection = selection;
    }
    dirty.sort_unstable();
    dirty.dedup();
    let count = dirty.len();
    for element in dirty {
        painter.paint(element, &runtime, &element_meshes);
    }
    painter.finish();
    if count > 0 {
        timings.painted_elements += count as u64;
        timings.paint_ms += elapsed_ms(start);
    }
}

#[derive(bevy::ecs::system::SystemParam)]
struct ElementPainter<'w, 's> {
    materials: ResMut<'w, Assets<StandardMaterial>>,
    style_materials: ResMut<'w, StyleMaterials>,
    selection: Res<'w, Selection>,
    ghosting: Res<'w, Ghosting>,
    freshness: Res<'w, Freshness>,
    mesh_materials: Query<'w, 's, &'static mut MeshMaterial3d<StandardMaterial>>,
    visibilities: Query<'w, 's, &'static mut Visibility>,
    batched: Query<'w, 's, (), With<Batched>>,
    states: Option<ResMut<'w, ElementStates>>,
    batch_materials: ResMut<'w, Assets<BatchMaterial>>,
}

impl ElementPainter<'_, '_> {
    fn emphasis(&self, element: usize, alerting: bool) -> Emphasis {
        if self.selection.selected == Some(element) {
            Emphasis::Selected
        } else if self.selection.hovered == Some(element) {
            Emphasis::Hovered
        } else if self.ghosting.0 && !alerting {
            Emphasis::Ghosted
        } else {
            Emphasis::Normal
        }
    }

    fn paint(&mut self, element: usize, runtime: &TwinRuntime, element_meshes: &ElementMeshes) {
        let style = runtime.style(element);
        // Alerting elements stay solid while ghosting: they are what the user must see.
        let emphasis = self.emphasis(element, !style.badges.is_empty());
        let visibility = if style.visible { Visibility::Inherited } else { Visibility::Hidden };
        let look = Look { color: style.color, opacity: style.opacity };
        for mesh in element_meshes.meshes_of(element) {
            if self.batched.contains(mesh.entity) {
                continue;
            }
            self.set(mesh, look, emphasis);
            if let Ok(mut shown) = self.visibilities.get_mut(mesh.entity) {
                shown.set_if_neq(visibility);
            }
        }
        let hidden = if style.visible { 0 } else { StateFlags::HIDDEN };
        // Only batched geometry shows staleness in 3D; the page's markers cover the rest.
        let stale = if self.freshness.is_stale(element) { StateFlags::STALE } else { 0 };
        self.write_slot(slot_of(element), look, emphasis, hidden | stale);
    }

    /// The look of a slot of batched geometry, as the batch shader reads it.
    fn write_slot(&mut self, slot: u32, look: Look, emphasis: Emphasis, extra_flags: u8) {
        let Some(states) = self.states.as_mut() else { return };
        let emphasis_flag = match emphasis {
            Emphasis::Normal => 0,
            Emphasis::Hovered => StateFlags::HOVERED,
            Emphasis::Selected => StateFlags::SELECTED,
            Emphasis::Ghosted => StateFlags::GHOSTED,
        };
        let slot_look = SlotLook {
            color: look.color,
            opacity: look.opacity.unwrap_or(Opacity::OPAQUE),
            flags: emphasis_flag | extra_flags,
        };
        states.write(slot, slot_look);
    }

    /// Hands the written slots to the state texture; batches blend while anything is translucent.
    fn finish(&mut self) {
        if let Some(states) = self.states.as_mut() {
            states.flush(&mut self.batch_materials);
        }
    }

    fn paint_unbound(&mut self, element_meshes: &ElementMeshes) {
        let emphasis = if self.ghosting.0 { Emphasis::Ghosted } else { Emphasis::Normal };
        for mesh in &element_meshes.unbound {
            if !self.batched.contains(mesh.entity) {
                self.set(mesh, Look::default(), emphasis);
            }
        }
        self.write_slot(UNBOUND_SLOT, Look::default(), emphasis, 0);
    }

    fn set(&mut self, mesh: &ElementMesh, look: Look, emphasis: Emphasis) {
        let wanted = self.style_materials.get(look, mesh, emphasis, &mut self.materials);
        if let Ok(mut material) = self.mesh_materials.get_mut(mesh.entity)
            && material.0 != wanted
        {
            material.0 = wanted;
        }
    }
}
