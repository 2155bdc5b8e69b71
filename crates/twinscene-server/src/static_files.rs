//! The files served as they are: the viewer's wasm bundle at `/pkg`, assets, scene files, and
//! the web page for every other path. A missing directory is warned about, never fatal.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;
use tower_http::services::ServeDir;

use crate::config::StaticDirs;
use crate::state::AppState;

/// Routes for the static directories; the web page is the fallback, so this goes last.
pub fn routes(dirs: &StaticDirs) -> Router<AppState> {
    // ServeDir picks content types by extension: .wasm goes out as application/wasm, which
    // browsers require for streaming compilation. The bundle is ~58 MB; `cargo xtask build-web`
    // writes a `.gz` beside each file (~12 MB for the wasm), sent with `Content-Encoding: gzip`
    // to clients that accept it (a `.br`, if someone adds one, is preferred likewise).
    let dist = dirs.dist.clone();
    let bundle = Router::new()
        .fallback_service(ServeDir::new(&dirs.dist).precompressed_br().precompressed_gzip())
        .layer(axum::middleware::map_response(move |uri: Uri, response: Response| {
            let dist = dist.clone();
            async move { with_decoded_length(&dist, &uri, response) }
        }));
    Router::new()
        .nest_service("/pkg", bundle)
        .nest_service("/assets", ServeDir::new(&dirs.assets))
        .nest_service("/scenes", ServeDir::new(&dirs.scenes))
        .fallback_service(ServeDir::new(&dirs.web))
}

/// The header that tells the page how many bytes a compressed bundle file decodes to, so that
/// its download progress can count against the right total (`Content-Length` is the compressed
/// size, the page sees decoded bytes).
pub const DECODED_LENGTH: &str = "x-decoded-length";

fn with_decoded_length(dist: &Path, uri: &Uri, mut response: Response) -> Response {
    if !response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    // `uri` is relative to /pkg; ServeDir already refused anything outside `dist`.
    let relative = uri.path().trim_start_matches('/');
    if relative.split('/').any(|part| part == ".." || part.is_empty()) {
        return response;
    }
    if let Ok(metadata) = std::fs::metadata(dist.join(relative))
        && let Ok(value) = HeaderValue::from_str(&metadata.len().to_string())
    {
        response.headers_mut().insert(DECODED_LENGTH, value);
    }
    response
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
