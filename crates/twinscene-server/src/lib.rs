//! The `twinscene` server: serves the viewer, the scene and its mesh; ingests twin writes (ADT
//! REST, CloudEvents, MQTT), keeps them durable, and streams them to viewers over `/live`.

pub mod api_error;
pub mod auth;
pub mod cli;
pub mod config;
pub mod feed;
pub mod ingest;
pub mod json_input;
pub mod live_socket;
pub mod metrics;
pub mod mqtt;
pub mod scene_api;
pub mod server_config;
pub mod simulator;
pub mod state;
pub mod static_files;
pub mod storage;
pub mod twins_api;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tower_http::trace::TraceLayer;

use crate::api_error::ApiError;
pub use crate::config::{LiveTimings, LoadedScene, MeshSource, StaticDirs};
pub use crate::server_config::ServerConfig;
pub use crate::state::AppState;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    // Bodies past the limit are cut off by axum; the handlers turn that into a 413 error.
    let body_limit = state.config().limits.max_body_bytes;
    Router::new()
        .route("/api/config", get(scene_api::config))
        .route("/api/scene", get(scene_api::scene))
        .route("/api/scene/mesh/{file}", get(scene_api::mesh))
        .route(
            "/digitaltwins/{id}",
            get(twins_api::get_twin)
                .put(twins_api::put_twin)
                .patch(twins_api::patch_twin)
                .delete(twins_api::delete_twin),
        )
        .route("/digitaltwins/{id}/relationships", get(twins_api::list_relationships))
        .route(
            "/digitaltwins/{id}/relationships/{relationship}",
            get(twins_api::get_relationship)
                .put(twins_api::put_relationship)
                .patch(twins_api::patch_relationship)
                .delete(twins_api::delete_relationship),
        )
        .route("/digitaltwins/{id}/incomingrelationships", get(twins_api::incoming_relationships))
        .route("/digitaltwins/{id}/history/{property}", get(twins_api::history))
        .route("/query/twins", get(twins_api::query_twins))
        .route("/models", get(twins_api::list_models).post(twins_api::add_models))
        .route("/models/{id}", get(twins_api::get_model).delete(twins_api::delete_model))
        .route("/ingest/cloudevents", post(ingest::cloudevents))
        .route("/live", get(live_socket::upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .merge(static_files::routes(state.static_dirs()))
        .layer(middleware::from_fn_with_state(state.clone(), ingest_rate_limit))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors(&state.config().embedding))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Lets pages on the configured origins load the viewer, its bundle and the twin API from here.
fn cors(embedding: &server_config::Embedding) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = if embedding.allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            embedding.allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::PUT, Method::PATCH, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_MATCH, header::IF_NONE_MATCH])
        .expose_headers([
            header::ETAG,
            header::HeaderName::from_static(static_files::DECODED_LENGTH),
            header::HeaderName::from_static(twinscene_core::live::SCENE_SEQ_HEADER),
        ])
}

/// Serves `router(state)` on `listener` until `shutdown` completes, with each connection's
/// peer address known (the ingest rate limit uses it for clients without a token).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Deltas are small and latency matters: without TCP_NODELAY, Nagle's algorithm and the
    // viewer's delayed ACK hold the tail of a message back for up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// `200 ok` while the server can take writes; `503` once storage failed.
async fn healthz(State(state): State<AppState>) -> Response {
    if state.storage_healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage failed\n").into_response()
    }
}

async fn metrics_page() -> Response {
    let body = metrics::handle().render();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// Writes (anything but GET and HEAD) are limited per client: its bearer token, or its address.
async fn ingest_rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let client = match request.headers().get(AUTHORIZATION) {
        // The secret itself is the key; it stays in memory and never reaches a log.
        Some(value) => format!("token:{}", String::from_utf8_lossy(value.as_bytes())),
        None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(address)) => format!("address:{}", address.ip()),
            None => "anonymous".to_owned(),
        },
    };
    if !state.take_ingest_allowance(&client) {
        metrics::refused("ingest_rate");
        let rate = state.config().limits.ingest_requests_per_second;
        return ApiError::TooManyRequests(format!("too many requests: at most {rate} per second per client"))
            .into_response();
    }
    next.run(request).await
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
