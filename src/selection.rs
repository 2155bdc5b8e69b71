//! Which element the user points at and which one is selected: hover by pointer, select by
//! click (a drag that orbits the camera is not a click), clear with Esc or a click on empty
//! space. Other plugins read [`Selection`]; the page can select through `PageCommand`.

use bevy::picking::backend::HitData;
use bevy::picking::events::{Move, Out, Over, Pointer, Press};
use bevy::picking::pointer::{PointerAction, PointerButton, PointerId, PointerInput};
use bevy::prelude::*;

use crate::app_phase::ready;
use crate::batched_geometry::element_of_slot;
use crate::element_picking::SlotHit;
use crate::scene_loading::ElementMeshes;

/// The hovered and selected elements, by element index.
#[derive(Resource, Default, Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub hovered: Option<usize>,
    pub selected: Option<usize>,
}

/// A press that moved farther than this (in logical pixels) before release was a drag.
const CLICK_SLOP: f32 = 5.0;

/// The primary button's last press: which pointer, where, and the element it went down on
/// (`None`: on empty space or a mesh outside every element).
#[derive(Resource, Default)]
struct PressPosition(Option<(PointerId, Vec2, Option<usize>)>);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Selection>()
        .init_resource::<PressPosition>()
        .add_systems(Update, (track_hover, select_on_click, clear_on_escape).run_if(ready));
}

/// The element a hit is on: from the slot a batch hit carries, else from the mesh entity.
fn element_at(element_meshes: &ElementMeshes, entity: Entity, hit: &HitData) -> Option<usize> {
    match hit.extra_as::<SlotHit>() {
        Some(SlotHit(slot)) => element_of_slot(*slot),
        None => element_meshes.element_of(entity),
    }
}

fn track_hover(
    mut overs: MessageReader<Pointer<Over>>,
    mut moves: MessageReader<Pointer<Move>>,
    mut outs: MessageReader<Pointer<Out>>,
    element_meshes: Res<ElementMeshes>,
    mut selection: ResMut<Selection>,
) {
    for out in outs.read() {
        if selection.hovered.is_some()
            && element_at(&element_meshes, out.entity, &out.hit) == selection.hovered
        {
            selection.hovered = None;
        }
    }
    for over in overs.read() {
        if let Some(element) = element_at(&element_meshes, over.entity, &over.hit) {
            selection.set_if_neq(Selection { hovered: Some(element), ..selection.clone() });
        }
    }
    // One batch holds many elements: moving within it changes the element without an Over.
    for moved in moves.read().filter(|m| m.hit.extra_as::<SlotHit>().is_some()) {
        let hovered = element_at(&element_meshes, moved.entity, &moved.hit);
        selection.set_if_neq(Selection { hovered, ..selection.clone() });
    }
}

/// A click selects what the press went down on. Bevy's own `Click` needs the element hovered in
/// the frame before the release, so at a few frames per second (software rendering) a quick
/// move-and-click within one frame was lost; the press knows what is under the pointer.
fn select_on_click(
    mut presses: MessageReader<Pointer<Press>>,
    mut inputs: MessageReader<PointerInput>,
    mut press_position: ResMut<PressPosition>,
    element_meshes: Res<ElementMeshes>,
    mut selection: ResMut<Selection>,
) {
    // One press reaches every entity under the pointer (an element and the window behind it):
    // the nearest one is what the user pressed.
    let nearest = presses
        .read()
        .filter(|p| p.button == PointerButton::Primary)
        .min_by(|a, b| a.hit.depth.total_cmp(&b.hit.depth));
    if let Some(press) = nearest {
        let element = element_at(&element_meshes, press.entity, &press.hit);
        press_position.0 = Some((press.pointer_id, press.pointer_location.position, element));
    }
    for input in inputs.read() {
        let PointerAction::Release(PointerButton::Primary) = input.action else { continue };
        let Some((pointer, at, element)) = press_position.0 else { continue };
        if pointer != input.pointer_id {
            continue;
        }
        press_position.0 = None;
        // A press that moved before release was a drag (the camera orbits), not a click.
        if at.distance(input.location.position) > CLICK_SLOP {
            continue;
        }
        // A click on a mesh outside every element, or on empty space (the window), clears.
        selection.set_if_neq(Selection { selected: element, ..selection.clone() });
    }
}

fn clear_on_escape(keys: Res<ButtonInput<KeyCode>>, mut selection: ResMut<Selection>) {
    if keys.just_pressed(KeyCode::Escape) {
        selection.set_if_neq(Selection { selected: None, ..selection.clone() });
    }
}
