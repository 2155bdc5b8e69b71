//! The `twinscene` server: serves the viewer, the scene and its mesh, ADT-style twin reads and
//! JSON Patch writes, and streams every accepted write to viewers over the `/live` WebSocket.

pub mod api_error;
pub mod config;
pub mod live_socket;
pub mod scene_api;
pub mod simulator;
pub mod state;
pub mod static_files;
pub mod twins_api;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::trace::TraceLayer;

pub use crate::config::{LiveTimings, LoadedScene, MeshSource, StaticDirs};
pub use crate::state::AppState;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/config", get(scene_api::config))
        .route("/api/scene", get(scene_api::scene))
        .route("/api/scene/mesh/{file}", get(scene_api::mesh))
        .route("/digitaltwins/{id}", get(twins_api::get_twin).patch(twins_api::patch_twin))
        .route("/live", get(live_socket::upgrade))
        .merge(static_files::routes(state.static_dirs()))
        .layer(DefaultBodyLimit::max(twins_api::MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Logs a warning for each file or directory the server will serve that is not there.
pub fn warn_about_missing_files(state: &AppState) {
    if let MeshSource::File { path, .. } = state.mesh()
        && !path.is_file()
    {
        tracing::warn!("mesh file {} does not exist; /api/scene/mesh will answer 404", path.display());
    }
    static_files::warn_about_missing(state.static_dirs());
}
