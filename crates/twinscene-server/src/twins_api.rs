//! ADT's twin routes: `/digitaltwins/{id}` (GET, PUT, PATCH, DELETE with `If-Match` etags), its
//! relationships, `/models`, a twin query by model and relationship, and property history.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use twinscene_core::twin::{Relationship, Twin};

use crate::api_error::ApiError;
use crate::auth::Grant;
use crate::json_input::{body_bytes, parse_json, parse_patch_body};
use crate::state::{AppState, PutOutcome, Source, TwinQuery};

/// The largest request body accepted by default; a twin patch is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

type Body = Result<Bytes, BytesRejection>;

pub async fn get_twin(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let twin = state.twin(&grant, &id)?;
    Ok((etag_header(&twin.etag), Json(twin)).into_response())
}

/// Takes the body as bytes whatever its content type: ADT clients send
/// `application/json-patch+json`, hand-written ones often `application/json`.
pub async fn patch_twin(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let limits = &state.config().limits;
    let body = body_bytes(body, limits.max_body_bytes)?;
    let patch = parse_patch_body(&body, limits.max_json_depth)?;
    let accepted = state.patch_twin(&grant, &id, patch, header(&headers, &IF_MATCH), Source::Rest).await?;
    tracing::debug!(twin = %id, seq = accepted.seq, "twin patched");
    Ok((StatusCode::NO_CONTENT, etag_header(&accepted.etag)))
}

/// Creates or replaces a twin from ADT twin JSON; `$dtId` comes from the path.
pub async fn put_twin(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = &state.config().limits;
    let mut value = parse_json(&body_bytes(body, limits.max_body_bytes)?, limits.max_json_depth)?;
    let object =
        value.as_object_mut().ok_or_else(|| ApiError::BadRequest("a twin must be a JSON object".into()))?;
    object.insert("$dtId".into(), Value::String(id.clone()));
    let twin = Twin::from_adt_json(&value).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let outcome = state
        .put_twin(&grant, &id, twin, header(&headers, &IF_MATCH), header(&headers, &IF_NONE_MATCH))
        .await?;
    let (status, twin) = match outcome {
        PutOutcome::Created(twin) => (StatusCode::CREATED, twin),
        PutOutcome::Replaced(twin) => (StatusCode::OK, twin),
    };
    Ok((status, etag_header(&twin.etag), Json(twin)).into_response())
}

pub async fn delete_twin(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.delete_twin(&grant, &id, header(&headers, &IF_MATCH)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipFilter {
    relationship_name: Option<String>,
}

pub async fn list_relationships(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
    filter: Result<Query<RelationshipFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let value = state.relationships_of(&grant, &id, filter.relationship_name.as_deref(), false)?;
    Ok(Json(json!({ "value": value, "nextLink": null })))
}

pub async fn incoming_relationships(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let value = state.relationships_of(&grant, &id, None, true)?;
    Ok(Json(json!({ "value": value, "nextLink": null })))
}

pub async fn get_relationship(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let relationship = state.relationship(&grant, &source, &id)?;
    let etag = relationship.properties.get("$etag").and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((etag_header(&etag), Json(relationship)).into_response())
}

/// Body: `{"$targetId", "$relationshipName", properties…}`; source and id come from the path.
pub async fn put_relationship(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = &state.config().limits;
    let mut value = parse_json(&body_bytes(body, limits.max_body_bytes)?, limits.max_json_depth)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("a relationship must be a JSON object".into()))?;
    object.insert("$sourceId".into(), Value::String(source));
    object.insert("$relationshipId".into(), Value::String(id));
    // Etags are the server's to give.
    object.remove("$etag");
    let relationship: Relationship = serde_json::from_value(value).map_err(|error| {
        ApiError::BadRequest(format!(
            "not a relationship (it needs \"$targetId\" and \"$relationshipName\"): {error}"
        ))
    })?;
    let stored = state
        .put_relationship(&grant, relationship, header(&headers, &IF_MATCH), header(&headers, &IF_NONE_MATCH))
        .await?;
    let etag = stored.properties.get("$etag").and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((StatusCode::OK, etag_header(&etag), Json(stored)).into_response())
}

pub async fn patch_relationship(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let limits = &state.config().limits;
    let patch = parse_patch_body(&body_bytes(body, limits.max_body_bytes)?, limits.max_json_depth)?;
    let etag = state.patch_relationship(&grant, &source, &id, patch, header(&headers, &IF_MATCH)).await?;
    Ok((StatusCode::NO_CONTENT, etag_header(&etag)))
}

pub async fn delete_relationship(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path((source, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.delete_relationship(&grant, &source, &id, header(&headers, &IF_MATCH)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /query/twins?model=…&relatedFrom=…&relatedTo=…&relationship=…`: the twins of a model,
/// and/or those related to a twin (by a relationship name), as `{"value": [twins]}`.
pub async fn query_twins(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    query: Result<Query<TwinQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    Ok(Json(json!({ "value": state.query_twins(&grant, &query) })))
}

pub async fn list_models(State(state): State<AppState>, _grant: Arc<Grant>) -> Json<Value> {
    Json(json!({ "value": state.models(), "nextLink": null }))
}

pub async fn get_model(
    State(state): State<AppState>,
    _grant: Arc<Grant>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.model(&id).map(Json).ok_or_else(|| ApiError::ModelNotFound(format!("no model has id {id:?}")))
}

/// `POST /models` with an array of DTDL interfaces (each with an `@id`).
pub async fn add_models(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limits = &state.config().limits;
    let value = parse_json(&body_bytes(body, limits.max_body_bytes)?, limits.max_json_depth)?;
    let Value::Array(models) = value else {
        return Err(ApiError::BadRequest("the body must be a JSON array of models".into()));
    };
    let added = state.add_models(&grant, models).await?;
    Ok((StatusCode::CREATED, Json(Value::Array(added))))
}

pub async fn delete_model(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.delete_model(&grant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryRange {
    /// RFC 3339; default: an hour before `to`.
    from: Option<String>,
    /// RFC 3339; default: now.
    to: Option<String>,
    /// At most this many points (buckets); default 200, at most 2000.
    points: Option<u32>,
}

/// `GET /digitaltwins/{id}/history/{property}`: the property's samples in a range, averaged
/// into at most `points` buckets, for trend widgets.
pub async fn history(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    Path((id, property)): Path<(String, String)>,
    range: Result<Query<HistoryRange>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(range) = range.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    state.twin(&grant, &id)?;
    let parse = |text: &str| {
        humantime::parse_rfc3339_weak(text)
            .map_err(|error| ApiError::BadRequest(format!("{text:?} is not an RFC 3339 time: {error}")))
    };
    let to = range.to.as_deref().map(parse).transpose()?.unwrap_or_else(SystemTime::now);
    let from = match range.from.as_deref() {
        Some(text) => parse(text)?,
        None => to.checked_sub(Duration::from_secs(3600)).unwrap_or(SystemTime::UNIX_EPOCH),
    };
    let millis = |time: SystemTime| {
        time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
    };
    // Without `to` the range ends now, inclusive: a write stamped in this very millisecond is
    // part of the history (the storage query's end is exclusive).
    let to_ms = if range.to.is_some() { millis(to) } else { millis(to) + 1 };
    let from_ms = millis(from);
    if to_ms <= from_ms {
        return Err(ApiError::BadRequest("`from` must be before `to`".into()));
    }
    let points = range.points.unwrap_or(200).clamp(1, 2000);
    let storage = state.storage();
    let (twin, name) = (id.clone(), property.clone());
    let buckets = tokio::task::spawn_blocking(move || storage.history(&twin, &name, from_ms, to_ms, points))
        .await
        .map_err(|error| ApiError::Internal(format!("history query failed: {error}")))?
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let points: Vec<Value> = buckets
        .iter()
        .map(|bucket| {
            let time = SystemTime::UNIX_EPOCH + Duration::from_millis(bucket.ts_ms.max(0) as u64);
            json!({
                "t": humantime::format_rfc3339_millis(time).to_string(),
                "avg": bucket.avg, "min": bucket.min, "max": bucket.max, "last": bucket.last, "count": bucket.count,
            })
        })
        .collect();
    Ok(Json(json!({
        "twin": id,
        "property": property,
        "from": humantime::format_rfc3339_millis(from).to_string(),
        "to": humantime::format_rfc3339_millis(to).to_string(),
        "points": points,
    })))
}

fn header<'a>(headers: &'a HeaderMap, name: &axum::http::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The etag comes from the scene file, so it may not be a valid header value; the twin is
/// still served then, without the header.
fn etag_header(etag: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(etag) {
        Ok(value) => {
            headers.insert(ETAG, value);
        }
        Err(_) => tracing::warn!("etag {etag:?} is not a valid ETag header value"),
    }
    headers
}
