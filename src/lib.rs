//! twinscene's viewer: a Bevy app that shows a scene's mesh with live twin state painted on it.
//! It runs in the browser (wasm32, WebGL2) and on the desktop. All domain logic lives in
//! `twinscene-core`; this crate only adapts it to Bevy and the page.
//!
//! The plugins, one concern per file:
//! - [`app_phase`]: the phase the viewer is in (loading stages, ready, failed).
//! - [`scene_loading`]: fetch the scene file, spawn the glTF, map mesh nodes to elements.
//! - [`twin_state`]: the twin runtime (core's `SceneRuntime`) and the style changes it emits.
//! - [`batched_geometry`]: the model merged per source material, element looks in a texture.
//! - [`detail_levels`]: which level of detail each chunk of a large model is drawn at.
//! - [`element_styles`]: element looks: state texture texels, or shared materials per style.
//! - [`element_picking`]: the picking backend: which element (not just mesh) a pointer is on.
//! - [`camera`]: orbit camera, lights, framing the scene once it is loaded, flying to elements.
//! - [`selection`]: hover and click picking, the selected element.
//! - [`page_bridge`]: commands from the page (select, focus, search, ghosting, reset view).
//! - [`live_link`]: the WebSocket to the server: snapshot, deltas, reconnects.
//! - [`freshness`]: the wall clock: `age(...)` expressions and stale elements.
//! - [`state_publishing`]: the viewer's state as `window.twinscene`, for pages and tests.
//! - [`cpu_timings`]: main-thread CPU time of live updates, element looks and picking.

use bevy::asset::{AssetMetaCheck, UnapprovedPathMode};
use bevy::prelude::*;
use bevy::window::WindowResolution;

pub mod app_phase;
pub mod batched_geometry;
pub mod camera;
pub mod cpu_timings;
pub mod detail_levels;
pub mod element_picking;
pub mod element_styles;
pub mod freshness;
pub mod live_link;
pub mod model_reading;
pub mod page_bridge;
pub mod scene_loading;
pub mod selection;
pub mod state_publishing;
pub mod twin_state;
#[cfg(target_arch = "wasm32")]
mod web_logging;

/// What the viewer shows and where it gets live data; given by the page or the command line.
#[derive(Resource, Clone, Debug)]
pub struct ViewerConfig {
    /// CSS selector of the canvas to draw into (browser only).
    pub canvas: Option<String>,
    /// URL (browser) or file path (desktop) of the scene file.
    pub scene_url: String,
    /// WebSocket URL of the live endpoint; `None` shows the scene's own twin state only.
    pub live_url: Option<String>,
    /// Access token for the live endpoint, sent in the `hello`.
    pub token: Option<String>,
    /// Replaces the scene's mesh URL (for peer files whose mesh lives where this site cannot
    /// fetch it, such as a 3D Scenes blob URL).
    pub mesh_url: Option<String>,
    /// Which scene of a file that holds several (3D Scenes configurations): id or name.
    pub scene_name: Option<String>,
    /// Up to this many elements, every element's screen position is published; above it only
    /// those the page draws something at (see `state_publishing`).
    pub screen_positions_up_to: usize,
    /// At most this many stale elements are listed and marked (see `state_publishing`).
    pub stale_markers_up_to: usize,
    /// Below this frame rate a large model's far levels drop more of the elements too small to
    /// see (see `detail_levels`); 0 keeps the finest far detail.
    pub min_fps: f32,
}

/// Page options for [`start`] beyond the positional ones, as JSON:
/// `{"mesh": "/models/plant.glb", "scene": "Factory floor"}`.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct StartOptions {
    #[serde(default)]
    pub mesh: Option<String>,
    #[serde(default)]
    pub scene: Option<String>,
    #[serde(default, rename = "screenPositionsUpTo")]
    pub screen_positions_up_to: Option<usize>,
    #[serde(default, rename = "staleMarkersUpTo")]
    pub stale_markers_up_to: Option<usize>,
    #[serde(default, rename = "minFps")]
    pub min_fps: Option<f32>,
}

/// Builds the viewer app; the caller runs it.
pub fn build_app(config: ViewerConfig) -> App {
    let mut app = App::new();
    // Before the asset plugin: the in-memory source the web viewer loads fetched GLBs from.
    scene_loading::register_mesh_source(&mut app);
    let plugins = DefaultPlugins
        .set(WindowPlugin {
            primary_window: Some(Window {
                title: "twinscene".into(),
                canvas: config.canvas.clone(),
                fit_canvas_to_parent: true,
                // Let the embedding page keep its keyboard shortcuts and scrolling.
                prevent_default_event_handling: false,
                resolution: WindowResolution::new(1280, 720),
                ..default()
            }),
            ..default()
        })
        .set(AssetPlugin {
            // Scene files name their mesh by URL or path; the scene loader resolves it to an
            // absolute path, so the asset root itself is the site (web) or the filesystem.
            file_path: String::new(),
            meta_check: AssetMetaCheck::Never,
            unapproved_path_mode: UnapprovedPathMode::Allow,
            ..default()
        });
    // In the browser the viewer installs its own console logger (see web_logging.rs).
    #[cfg(target_arch = "wasm32")]
    let plugins = {
        web_logging::install();
        plugins.disable::<bevy::log::LogPlugin>()
    };
    app.add_plugins(plugins);
    app.insert_resource(config);
    app.add_plugins((
        app_phase::plugin,
        cpu_timings::plugin,
        twin_state::plugin,
        scene_loading::plugin,
        batched_geometry::plugin,
        detail_levels::plugin,
        element_styles::plugin,
        element_picking::plugin,
        selection::plugin,
        page_bridge::plugin,
        camera::plugin,
        live_link::plugin,
        freshness::plugin,
        state_publishing::plugin,
    ));
    app
}

/// Starts the viewer in the browser, drawing into the canvas matched by `canvas_selector`.
/// `live_url` may be empty for no live data; `token` is sent to the live endpoint when given.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn start(
    canvas_selector: String,
    scene_url: String,
    live_url: String,
    token: Option<String>,
    options: Option<String>,
) -> Result<(), wasm_bindgen::JsError> {
    let options: StartOptions = match options.filter(|o| !o.is_empty()) {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| wasm_bindgen::JsError::new(&format!("viewer options {json}: {e}")))?,
        None => StartOptions::default(),
    };
    let config = ViewerConfig {
        canvas: Some(canvas_selector),
        scene_url,
        live_url: (!live_url.is_empty()).then_some(live_url),
        token: token.filter(|t| !t.is_empty()),
        mesh_url: options.mesh.filter(|m| !m.is_empty()),
        scene_name: options.scene.filter(|s| !s.is_empty()),
        screen_positions_up_to: options
            .screen_positions_up_to
            .unwrap_or(state_publishing::ALL_SCREEN_POSITIONS_UP_TO),
        stale_markers_up_to: options.stale_markers_up_to.unwrap_or(state_publishing::STALE_MARKERS_UP_TO),
        min_fps: options.min_fps.unwrap_or(detail_levels::DEFAULT_MIN_FPS),
    };
    // On the web, `run` hands the app to the browser's event loop and returns at once.
    build_app(config).run();
    Ok(())
}

/// Frames the viewer has run (a page's watchdog checks that it grows).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn frame_count() -> u32 {
    page_bridge::frame_count()
}

/// Sends the viewer a command from the page, as JSON (see `page_bridge::PageCommand`), e.g.
/// `{"type": "focus", "element": "room-a101"}`. Errors name what is wrong with the command.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn command(json: &str) -> Result<(), wasm_bindgen::JsError> {
    page_bridge::queue_command_json(json).map_err(|message| wasm_bindgen::JsError::new(&message))
}
