//! The files served as they are: the viewer's wasm bundle at `/pkg`, assets, scene files, and
//! the web page for every other path. A missing directory is warned about, never fatal.

use std::path::Path;

use axum::Router;
use tower_http::services::ServeDir;

use crate::config::StaticDirs;
use crate::state::AppState;

/// Routes for the static directories; the web page is the fallback, so this goes last.
pub fn routes(dirs: &StaticDirs) -> Router<AppState> {
    // ServeDir picks content types by extension: .wasm goes out as application/wasm, which
    // browsers require for streaming compilation.
    Router::new()
        .nest_service("/pkg", ServeDir::new(&dirs.dist))
        .nest_service("/assets", ServeDir::new(&dirs.assets))
        .nest_service("/scenes", ServeDir::new(&dirs.scenes))
        .fallback_service(ServeDir::new(&dirs.web))
}

/// Logs a warning for each directory that is not there, saying what will be missing.
pub fn warn_about_missing(dirs: &StaticDirs) {
    let warn = |dir: &Path, what: &str| {
        if !dir.is_dir() {
            tracing::warn!("{} is not a directory: {what}", dir.display());
        }
    };
    warn(&dirs.dist, "the viewer (/pkg) is not built; run `cargo xtask build-web`");
    warn(&dirs.web, "the web page (/) will be missing");
    warn(&dirs.assets, "/assets will be empty");
    warn(&dirs.scenes, "/scenes will be empty");
}
