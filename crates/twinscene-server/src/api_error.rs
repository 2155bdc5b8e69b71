//! The one error type of the HTTP API and its response: a status code and a JSON body shaped
//! as Azure Digital Twins shapes its errors, `{"error": {"code": ..., "message": ...}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use twinscene_core::graph::UpdateError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No twin has the requested id.
    #[error("{0}")]
    TwinNotFound(String),
    /// Some other resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request body is not what the route takes (e.g. not JSON, or not a JSON Patch).
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed JSON Patch that the twin store refused.
    #[error("{0}")]
    PatchRejected(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::TwinNotFound(_) => (StatusCode::NOT_FOUND, "DigitalTwinNotFound"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            Self::PatchRejected(_) => (StatusCode::BAD_REQUEST, "JsonPatchInvalid"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }
}

impl From<UpdateError> for ApiError {
    fn from(error: UpdateError) -> Self {
        match error {
            UpdateError::UnknownTwin(_) => Self::TwinNotFound(error.to_string()),
            UpdateError::Rejected { .. } => Self::PatchRejected(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}
