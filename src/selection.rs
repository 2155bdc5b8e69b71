//! Which element the user points at and which one is selected: hover by pointer, select by
//! click (a drag that orbits the camera is not a click), clear with Esc or a click on empty
//! space. Other plugins read [`Selection`]; the page can select through `PageCommand`.

use bevy::picking::events::{Click, Out, Over, Pointer, Press};
use bevy::picking::pointer::PointerButton;
use bevy::prelude::*;

use crate::app_phase::ready;
use crate::scene_loading::ElementMeshes;

/// The hovered and selected elements, by element index.
#[derive(Resource, Default, Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub hovered: Option<usize>,
    pub selected: Option<usize>,
}

/// A press that moved farther than this (in logical pixels) before release was a drag.
const CLICK_SLOP: f32 = 5.0;

/// Where the primary button went down, to tell clicks from drags.
#[derive(Resource, Default)]
struct PressPosition(Option<Vec2>);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Selection>()
        .init_resource::<PressPosition>()
        .add_plugins(MeshPickingPlugin)
        .add_systems(Update, (track_hover, select_on_click, clear_on_escape).run_if(ready));
}

fn track_hover(
    mut overs: MessageReader<Pointer<Over>>,
    mut outs: MessageReader<Pointer<Out>>,
    element_meshes: Res<ElementMeshes>,
    mut selection: ResMut<Selection>,
) {
    for out in outs.read() {
        if selection.hovered.is_some() && element_meshes.element_of(out.entity) == selection.hovered {
            selection.hovered = None;
        }
    }
    for over in overs.read() {
        if let Some(element) = element_meshes.element_of(over.entity) {
            selection.set_if_neq(Selection { hovered: Some(element), ..selection.clone() });
        }
    }
}

fn select_on_click(
    mut presses: MessageReader<Pointer<Press>>,
    mut clicks: MessageReader<Pointer<Click>>,
    mut press_position: ResMut<PressPosition>,
    element_meshes: Res<ElementMeshes>,
    mut selection: ResMut<Selection>,
) {
    for press in presses.read().filter(|p| p.button == PointerButton::Primary) {
        press_position.0 = Some(press.pointer_location.position);
    }
    for click in clicks.read().filter(|c| c.button == PointerButton::Primary) {
        let moved =
            press_position.0.is_some_and(|at| at.distance(click.pointer_location.position) > CLICK_SLOP);
        if moved {
            continue;
        }
        // A click on a mesh outside every element, or on empty space (the window), clears.
        let selected = element_meshes.element_of(click.entity);
        selection.set_if_neq(Selection { selected, ..selection.clone() });
    }
}

fn clear_on_escape(keys: Res<ButtonInput<KeyCode>>, mut selection: ResMut<Selection>) {
    if keys.just_pressed(KeyCode::Escape) {
        selection.set_if_neq(Selection { selected: None, ..selection.clone() });
    }
}
