//! `POST /ingest/cloudevents`: Azure Digital Twins `Twin.Update` events in CloudEvents JSON,
//! structured (one event) or batched (an array); each becomes a twin patch, duplicates are skipped.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use json_patch::Patch;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::auth::Grant;
use crate::json_input::{body_bytes, parse_json};
use crate::state::{AppState, Source, TwinWrite};

pub const TWIN_UPDATE: &str = "Microsoft.DigitalTwins.Twin.Update";

/// One event, checked before anything is applied.
#[derive(Debug)]
struct TwinUpdate {
    id: String,
    source: String,
    twin: String,
    model: Option<String>,
    patch: Patch,
}

/// Every event of the request is checked first, so that a malformed one refuses the whole
/// request and changes nothing; then each is applied on its own and reported in `results`.
pub async fn cloudevents(
    State(state): State<AppState>,
    grant: Arc<Grant>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let limits = &state.config().limits;
    let value = parse_json(&body_bytes(body, limits.max_body_bytes)?, limits.max_json_depth)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let events = match (media_type.as_str(), value) {
        ("application/cloudevents-batch+json", Value::Array(events)) => events,
        ("application/cloudevents-batch+json", _) => {
            return Err(malformed(
                "a batch (application/cloudevents-batch+json) must be a JSON array".into(),
            ));
        }
        ("application/cloudevents+json" | "application/json", Value::Object(event)) => {
            vec![Value::Object(event)]
        }
        ("application/cloudevents+json" | "application/json", _) => {
            return Err(malformed("a structured CloudEvent must be a JSON object".into()));
        }
        _ => {
            return Err(malformed(format!(
                "content type {content_type:?}: send application/cloudevents+json or application/cloudevents-batch+json"
            )));
        }
    };
    let updates = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            twin_update(event).map_err(|message| malformed(format!("event {index}: {message}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = vec![Value::Null; updates.len()];
    let (mut writes, mut positions) = (Vec::new(), Vec::new());
    let mut duplicates = 0;
    for (at, update) in updates.into_iter().enumerate() {
        if state.first_delivery(&update.source, &update.id) {
            results[at] = json!({ "id": update.id });
            positions.push((at, update.source, update.id));
            writes.push(TwinWrite {
                twin: update.twin,
                model: update.model,
                patch: update.patch,
                if_match: None,
            });
        } else {
            duplicates += 1;
            results[at] = json!({ "id": update.id, "status": "duplicate" });
        }
    }
    let outcomes = match state.patch_twins(&grant, writes, Source::CloudEvents).await {
        Ok(outcomes) => outcomes,
        Err(error) => {
            // Nothing was made durable: a retry of these events must not count as a duplicate.
            for (_, source, id) in &positions {
                state.forget_delivery(source, id);
            }
            return Err(error);
        }
    };
    let (mut applied, mut rejected) = (0, 0);
    for ((at, source, id), outcome) in positions.into_iter().zip(outcomes) {
        match outcome {
            Ok(accepted) => {
                applied += 1;
                results[at]["status"] = json!("applied");
                results[at]["seq"] = json!(accepted.seq);
            }
            Err(error) => {
                rejected += 1;
                state.forget_delivery(&source, &id);
                results[at]["status"] = json!("rejected");
                results[at]["error"] = error.body();
            }
        }
    }
    Ok(Json(
        json!({ "applied": applied, "duplicates": duplicates, "rejected": rejected, "results": results }),
    ))
}

fn malformed(message: String) -> ApiError {
    crate::metrics::refused("malformed");
    ApiError::BadRequest(message)
}

/// Reads a CloudEvents 1.0 event of type Twin.Update: the twin is the `subject`, the data is
/// `{"modelId", "patch": [JSON Patch]}`. Takes the event, so that its patch is moved into the
/// update instead of copied (a batch holds thousands).
fn twin_update(mut event: Value) -> Result<TwinUpdate, String> {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    if text("specversion") != Some("1.0") {
        return Err("\"specversion\" must be \"1.0\"".into());
    }
    let id = text("id").filter(|id| !id.is_empty()).ok_or("\"id\" must be a non-empty string")?;
    let source = text("source").filter(|s| !s.is_empty()).ok_or("\"source\" must be a non-empty string")?;
    match text("type") {
        Some(TWIN_UPDATE) => {}
        Some(other) => return Err(format!("type {other:?} is not supported; send {TWIN_UPDATE:?}")),
        None => return Err("\"type\" is missing".into()),
    }
    let twin = text("subject").filter(|s| !s.is_empty()).ok_or("\"subject\" must be the twin id")?;
    let data = match event.get("data") {
        Some(Value::Object(data)) => data,
        Some(Value::String(_)) => return Err("\"data\" must be JSON, not a string".into()),
        _ => return Err("\"data\" must be an object {\"modelId\", \"patch\"}".into()),
    };
    let model = match data.get("modelId") {
        None | Some(Value::Null) => None,
        Some(Value::String(model)) => Some(model.clone()),
        Some(_) => return Err("\"data.modelId\" must be a string".into()),
    };
    if !data.contains_key("patch") {
        return Err("\"data.patch\" is missing".into());
    }
    let (id, source, twin) = (id.to_owned(), source.to_owned(), twin.to_owned());
    let patch = event["data"]["patch"].take();
    let patch: Patch = serde_json::from_value(patch)
        .map_err(|error| format!("\"data.patch\" is not a JSON Patch: {error}"))?;
    Ok(TwinUpdate { id, source, twin, model, patch })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        json!({
            "specversion": "1.0", "id": "e1", "source": "adt", "type": TWIN_UPDATE, "subject": "Room-1",
            "data": {"modelId": "dtmi:x;1", "patch": [{"op": "replace", "path": "/t", "value": 1}]}
        })
    }

    #[test]
    fn twin_update_events_are_read() {
        let update = twin_update(event()).unwrap();
        assert_eq!((update.twin.as_str(), update.model.as_deref()), ("Room-1", Some("dtmi:x;1")));
        assert_eq!(update.patch.0.len(), 1);
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        for (field, value, expected) in [
            ("specversion", json!("0.3"), "specversion"),
            ("type", json!("Other"), "not supported"),
            ("subject", json!(""), "subject"),
            ("data", json!({"patch": [{"op": "jump"}]}), "not a JSON Patch"),
            ("data", json!("x"), "not a string"),
        ] {
            let mut event = event();
            event[field] = value;
            let error = twin_update(event).unwrap_err();
            assert!(error.contains(expected), "{field}: {error}");
        }
    }
}
