//! The routes a viewer starts from: `/api/config` (where things are), `/api/scene` (the scene
//! with the current twin state) and `/api/scene/mesh/{file}` (the scene's mesh file).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tower_http::services::ServeFile;
use twinscene_core::live::SCENE_SEQ_HEADER;

use crate::api_error::ApiError;
use crate::auth::Grant;
use crate::config::MeshSource;
use crate::state::AppState;

/// Where the scene, its mesh and the live data are. The page starts downloading the mesh from
/// here while the viewer's bundle loads (web/twinscene.js).
pub async fn config(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "scene": "/api/scene", "mesh": state.mesh_url(), "live": "/live" }))
}

/// With tokens configured, only the twins the bearer may read. The `x-twinscene-seq` header
/// (core's `SCENE_SEQ_HEADER`) says which live seq the twins are as of, when they all are
/// published; the viewer then resumes the live link from it instead of taking a snapshot.
pub async fn scene(State(state): State<AppState>, grant: Arc<Grant>) -> Response {
    let (scene, seq) = state.current_scene(&grant);
    let mut response = Json(scene).into_response();
    if let Some(seq) = seq {
        response.headers_mut().insert(SCENE_SEQ_HEADER, HeaderValue::from(seq));
    }
    response
}

/// Serves only the scene's own mesh, found by its file name, so that no other file can be
/// reached through this route.
pub async fn mesh(
    State(state): State<AppState>,
    Path(file): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let MeshSource::File { name, path } = state.mesh() else {
        return Err(ApiError::NotFound("this scene's mesh is a URL, not a file served here".into()));
    };
    if file != *name {
        return Err(ApiError::NotFound(format!("no mesh {file:?}; this scene's mesh is {name:?}")));
    }
    let missing = || ApiError::NotFound(format!("mesh file {} does not exist", path.display()));
    // ServeFile picks the content type from the extension (model/gltf-binary for .glb,
    // model/gltf+json for .gltf) and handles ranges and conditional requests.
    match ServeFile::new(path).try_call(request).await {
        Ok(response) if response.status() == StatusCode::NOT_FOUND => Err(missing()),
        Ok(response) => Ok(response.map(Body::new)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(ApiError::Internal(format!("cannot read mesh file {}: {error}", path.display()))),
    }
}
