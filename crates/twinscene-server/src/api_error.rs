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
    /// No bearer token, or one the server does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// The token is known but does not reach this scene or twin, or may not write.
    #[error("{0}")]
    Forbidden(String),
    /// `If-Match` / `If-None-Match` did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The write conflicts with the current state (e.g. deleting a twin with relationships).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RelationshipNotFound(String),
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    ModelExists(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// The server cannot take this now (storage failed, too many connections).
    #[error("{0}")]
    Unavailable(String),
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
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "PreconditionFailed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Self::RelationshipNotFound(_) => (StatusCode::NOT_FOUND, "RelationshipNotFound"),
            Self::ModelNotFound(_) => (StatusCode::NOT_FOUND, "ModelNotFound"),
            Self::ModelExists(_) => (StatusCode::CONFLICT, "ModelIdAlreadyExists"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }
}

impl ApiError {
    /// The `{"code", "message"}` object of the error body.
    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.status_and_code().1, "message": self.to_string() })
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
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        let body = json!({ "error": self.body() });
        (status, Json(body)).into_response()
    }
}
