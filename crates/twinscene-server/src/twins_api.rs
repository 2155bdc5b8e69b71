//! ADT's twin routes, `GET` and `PATCH /digitaltwins/{id}`: twins in the ADT JSON shape, writes
//! as JSON Patch, and the twin's etag in an `ETag` header.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::ETAG;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use twinscene_core::patch::parse_patch;

use crate::api_error::ApiError;
use crate::state::AppState;

/// The largest request body accepted; a twin patch is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub async fn get_twin(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let twin = state.twin(&id).ok_or_else(|| ApiError::TwinNotFound(format!("no twin has id {id:?}")))?;
    Ok((etag_header(&twin.etag), Json(twin)).into_response())
}

/// Takes the body as bytes whatever its content type: ADT clients send
/// `application/json-patch+json`, hand-written ones often `application/json`.
pub async fn patch_twin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES },
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not UTF-8 text: {error}")))?;
    let patch = parse_patch(text)
        .map_err(|error| ApiError::BadRequest(format!("the body is not a JSON Patch: {error}")))?;
    let accepted = state.apply_patch(&id, patch)?;
    tracing::debug!(twin = %id, seq = accepted.seq, "twin patched");
    Ok((StatusCode::NO_CONTENT, etag_header(&accepted.etag)))
}

/// The etag comes from the scene file, so it may not be a valid header value; the twin is
/// still served then, without the header.
fn etag_header(etag: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(etag) {
        Ok(value) => {
            headers.insert(ETAG, value);
        }
        Err(_) => tracing::warn!("twin etag {etag:?} is not a valid ETag header value"),
    }
    headers
}
