//! Commands from the embedding page (`command(json)` in the browser, keys on the desktop) into
//! the app as [`PageCommand`] messages, and what they do to selection, camera and search.
//! The page's panels call these; they never reach into the app otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use bevy::prelude::*;
use serde::Deserialize;

use crate::app_phase::ready;
use crate::camera::CameraRequest;
use crate::element_styles::Ghosting;
use crate::selection::Selection;
use crate::twin_state::{ElementStyleChanged, TwinRuntime, announce};

/// Something the page asks the viewer to do.
#[derive(Message, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum PageCommand {
    /// Select an element (or clear the selection with `null`) without moving the camera.
    Select { element: Option<String> },
    /// Select an element and fly the camera to it.
    Focus { element: String },
    /// Fly back to the view that frames the whole model.
    ResetView,
    /// Draw everything but the selection translucent, or stop doing so.
    SetGhosting { on: bool },
    /// Find elements by id, name, twin id, twin name or property value.
    Search { query: String },
    /// Switch a layer (the behaviors in it) on or off.
    SetLayer { layer: String, visible: bool },
    /// Fly to one of the scene's viewpoints, by id.
    Viewpoint { id: String },
}

/// Frames the app has run: the page's kiosk watchdog reloads when this stops growing.
static FRAMES: AtomicU32 = AtomicU32::new(0);

pub fn frame_count() -> u32 {
    FRAMES.load(Ordering::Relaxed)
}

fn count_frame() {
    FRAMES.fetch_add(1, Ordering::Relaxed);
}

/// Commands the page sent since the last frame. The browser calls in between frames, from
/// outside the ECS, so they wait here.
static PENDING: Mutex<Vec<PageCommand>> = Mutex::new(Vec::new());

/// Queues a command given as JSON; the error says what is wrong with it.
pub fn queue_command_json(json: &str) -> Result<(), String> {
    let command: PageCommand =
        serde_json::from_str(json).map_err(|e| format!("invalid command {json}: {e}"))?;
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(command);
    Ok(())
}

/// Results of the last search, published for the page.
#[derive(Resource, Default, Debug, Clone, PartialEq)]
pub struct SearchResults {
    pub query: String,
    /// Element indices, best matches first.
    pub elements: Vec<usize>,
}

/// Searches stop after this many matches; the page shows a list, not a report.
const MAX_SEARCH_RESULTS: usize = 50;

pub(super) fn plugin(app: &mut App) {
    app.add_message::<PageCommand>()
        .init_resource::<SearchResults>()
        .add_systems(PreUpdate, drain_pending_commands)
        .add_systems(Last, count_frame)
        .add_systems(Update, (keyboard_commands, apply_commands).chain().run_if(ready));
}

fn drain_pending_commands(mut writer: MessageWriter<PageCommand>) {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    writer.write_batch(pending);
}

fn keyboard_commands(
    keys: Res<ButtonInput<KeyCode>>,
    selection: Res<Selection>,
    runtime: Res<TwinRuntime>,
    ghosting: Res<Ghosting>,
    mut writer: MessageWriter<PageCommand>,
) {
    if keys.just_pressed(KeyCode::KeyR) {
        writer.write(PageCommand::ResetView);
    }
    if keys.just_pressed(KeyCode::KeyG) {
        writer.write(PageCommand::SetGhosting { on: !ghosting.0 });
    }
    if keys.just_pressed(KeyCode::KeyF)
        && let Some(selected) = selection.selected
    {
        writer.write(PageCommand::Focus { element: runtime.elements()[selected].id.clone() });
    }
}

#[allow(clippy::too_many_arguments)] // One parameter per thing a command can change.
fn apply_commands(
    mut commands: MessageReader<PageCommand>,
    mut runtime: ResMut<TwinRuntime>,
    mut style_changes: MessageWriter<ElementStyleChanged>,
    mut selection: ResMut<Selection>,
    mut ghosting: ResMut<Ghosting>,
    mut search: ResMut<SearchResults>,
    mut camera: MessageWriter<CameraRequest>,
) {
    for command in commands.read() {
        match command {
            PageCommand::Select { element } => {
                let selected = element.as_deref().and_then(|id| runtime.element_index(id));
                if element.is_some() && selected.is_none() {
                    warn!("the page asked to select {element:?}, which is not an element of this scene");
                }
                selection.set_if_neq(Selection { selected, ..selection.clone() });
            }
            PageCommand::Focus { element } => match runtime.element_index(element) {
                Some(index) => {
                    selection.set_if_neq(Selection { selected: Some(index), ..selection.clone() });
                    camera.write(CameraRequest::FlyTo(index));
                }
                None => warn!("the page asked to focus {element:?}, which is not an element of this scene"),
            },
            PageCommand::ResetView => {
                camera.write(CameraRequest::FrameAll);
            }
            PageCommand::SetGhosting { on } => {
                ghosting.set_if_neq(Ghosting(*on));
            }
            PageCommand::Viewpoint { id } => {
                match runtime.scene().viewpoints.iter().position(|v| v.id == *id) {
                    Some(index) => {
                        camera.write(CameraRequest::Viewpoint(index));
                    }
                    None => warn!("the page asked for viewpoint {id:?}, which this scene does not have"),
                }
            }
            PageCommand::SetLayer { layer, visible } => {
                if runtime.scene().layers.iter().all(|l| l.id != *layer) {
                    warn!("the page asked to switch layer {layer:?}, which this scene does not have");
                }
                announce(runtime.set_layer_visible(layer, *visible), &mut style_changes);
            }
            PageCommand::Search { query } => {
                let elements = search_elements(&runtime, query);
                search.set_if_neq(SearchResults { query: query.clone(), elements });
            }
        }
    }
}

/// Elements whose id or name, or whose twin's id or any property value, contains `query`
/// (case-insensitive). Matches on the element itself come before matches on its twin's values.
fn search_elements(runtime: &TwinRuntime, query: &str) -> Vec<usize> {
    let needle = query.trim().to_lowercase();
    if needle.is_empty() {
        return Vec::new();
    }
    let contains = |text: &str| text.to_lowercase().contains(&needle);
    let mut by_name = Vec::new();
    let mut by_value = Vec::new();
    for (index, element) in runtime.elements().iter().enumerate() {
        if contains(&element.id) || element.name.as_deref().is_some_and(contains) || contains(&element.twin) {
            by_name.push(index);
        } else if let Some(twin) = runtime.graph().twin(&element.twin)
            && twin.properties.values().any(|value| match value {
                serde_json::Value::String(text) => contains(text),
                serde_json::Value::Number(number) => contains(&number.to_string()),
                serde_json::Value::Bool(flag) => contains(&flag.to_string()),
                _ => false,
            })
        {
            by_value.push(index);
        }
    }
    by_name.into_iter().chain(by_value).take(MAX_SEARCH_RESULTS).collect()
}
