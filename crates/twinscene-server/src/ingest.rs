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
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::auth::Grant;
use crate::json_input::{body_bytes, json_depth, parse_json, patch_value};
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
    let body = body_bytes(body, limits.max_body_bytes)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let updates = match read_plain_events(&body, &media_type, limits.max_json_depth) {
        Some(updates) => updates,
        None => read_events(&body, content_type, &media_type, limits.max_json_depth)?,
    };
    apply_updates(&state, &grant, updates).await
}

/// Reads the events the way every well-formed batch of plain Twin.Update events is written,
/// straight into their fields: going through a generic JSON tree first (and walking it again
/// for its depth) was a third of the server's time for a batch of 10,000. Anything else — an
/// attribute this does not know, an escaped or non-string field, a malformed event — returns
/// `None`, and `read_events` reads the body again the general way, with its exact errors.
fn read_plain_events(body: &[u8], media_type: &str, max_depth: usize) -> Option<Vec<TwinUpdate>> {
    // The nesting a patch value may have: it sits in the operation, the patch, `data`, the
    // event and, in a batch, the array.
    let (events, value_depth): (Vec<PlainEvent>, usize) = match media_type {
        "application/cloudevents-batch+json" => {
            (serde_json::from_slice(body).ok()?, max_depth.checked_sub(5)?)
        }
        "application/cloudevents+json" | "application/json" => {
            (vec![serde_json::from_slice(body).ok()?], max_depth.checked_sub(4)?)
        }
        _ => return None,
    };
    events.into_iter().map(|event| event.into_update(value_depth)).collect()
}

/// A CloudEvent with the attributes a Twin.Update event has, all of them plain strings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainEvent<'a> {
    specversion: &'a str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    subject: &'a str,
    #[serde(default, rename = "time")]
    _time: Option<&'a str>,
    #[serde(default, rename = "datacontenttype")]
    _data_content_type: Option<&'a str>,
    #[serde(default, rename = "dataschema")]
    _data_schema: Option<&'a str>,
    #[serde(default, rename = "traceparent")]
    _trace_parent: Option<&'a str>,
    data: PlainData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainData {
    #[serde(default, rename = "modelId")]
    model_id: Option<String>,
    #[serde(deserialize_with = "twinscene_core::patch::read_patch")]
    patch: Patch,
}

impl PlainEvent<'_> {
    /// The update, if the event is one `twin_update` would take as it is.
    fn into_update(self, value_depth: usize) -> Option<TwinUpdate> {
        let (id, source, twin) = checked_attributes(
            Some(self.specversion),
            Some(self.id),
            Some(self.source),
            Some(self.kind),
            Some(self.subject),
        )
        .ok()?;
        let shallow = self
            .data
            .patch
            .0
            .iter()
            .all(|operation| patch_value(operation).is_none_or(|value| json_depth(value) <= value_depth));
        shallow.then(|| TwinUpdate {
            id: id.to_owned(),
            source: source.to_owned(),
            twin: twin.to_owned(),
            model: self.data.model_id,
            patch: self.data.patch,
        })
    }
}

/// The general reading: any JSON, every problem reported with the event's index.
fn read_events(
    body: &[u8],
    content_type: &str,
    media_type: &str,
    max_depth: usize,
) -> Result<Vec<TwinUpdate>, ApiError> {
    let value = parse_json(body, max_depth)?;
    let events = match (media_type, value) {
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
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            twin_update(event).map_err(|message| malformed(format!("event {index}: {message}")))
        })
        .collect()
}

/// Applies checked updates, each on its own, and reports each in `results`.
async fn apply_updates(
    state: &AppState,
    grant: &Grant,
    updates: Vec<TwinUpdate>,
) -> Result<Json<Value>, ApiError> {
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
    let outcomes = match state.patch_twins(grant, writes, Source::CloudEvents).await {
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

/// The attributes every Twin.Update event must have, checked (both readings of an event go
/// through here): its id, source and twin (the subject), or what is wrong with them.
fn checked_attributes<'a>(
    specversion: Option<&str>,
    id: Option<&'a str>,
    source: Option<&'a str>,
    kind: Option<&str>,
    subject: Option<&'a str>,
) -> Result<(&'a str, &'a str, &'a str), String> {
    if specversion != Some("1.0") {
        return Err("\"specversion\" must be \"1.0\"".into());
    }
    let id = id.filter(|id| !id.is_empty()).ok_or("\"id\" must be a non-empty string")?;
    let source = source.filter(|s| !s.is_empty()).ok_or("\"source\" must be a non-empty string")?;
    match kind {
        Some(TWIN_UPDATE) => {}
        Some(other) => return Err(format!("type {other:?} is not supported; send {TWIN_UPDATE:?}")),
        None => return Err("\"type\" is missing".into()),
    }
    let twin = subject.filter(|s| !s.is_empty()).ok_or("\"subject\" must be the twin id")?;
    Ok((id, source, twin))
}

/// Reads a CloudEvents 1.0 event of type Twin.Update: the twin is the `subject`, the data is
/// `{"modelId", "patch": [JSON Patch]}`. Takes the event, so that its patch is moved into the
/// update instead of copied (a batch holds thousands).
fn twin_update(mut event: Value) -> Result<TwinUpdate, String> {
    let text = |name: &str| event.get(name).and_then(Value::as_str);
    let (id, source, twin) =
        checked_attributes(text("specversion"), text("id"), text("source"), text("type"), text("subject"))?;
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

    const BATCH: &str = "application/cloudevents-batch+json";

    fn read_both(
        events: &Value,
        max_depth: usize,
    ) -> (Option<Vec<TwinUpdate>>, Result<Vec<TwinUpdate>, String>) {
        let body = serde_json::to_vec(events).unwrap();
        let general = read_events(&body, BATCH, BATCH, max_depth).map_err(|error| error.to_string());
        (read_plain_events(&body, BATCH, max_depth), general)
    }

    #[test]
    fn plain_events_are_read_as_the_general_reading_reads_them() {
        let mut with_time = event();
        with_time["time"] = json!("2026-12-07T10:00:00Z");
        with_time["datacontenttype"] = json!("application/json");
        with_time["data"]["patch"] =
            json!([{"op": "add", "path": "/a", "value": {"b": [1, 2]}}, {"op": "remove", "path": "/c"}]);
        let mut no_model = event();
        no_model["data"]["modelId"] = Value::Null;
        let (plain, general) = read_both(&json!([event(), with_time, no_model]), 32);
        let (plain, general) = (plain.expect("plain events take the direct reading"), general.unwrap());
        assert_eq!(format!("{plain:?}"), format!("{general:?}"));
        assert_eq!(plain.len(), 3);
        // The structured (single event) form too.
        let body = serde_json::to_vec(&event()).unwrap();
        let single = read_plain_events(&body, "application/cloudevents+json", 32).unwrap();
        assert_eq!(single[0].twin, "Room-1");
    }

    #[test]
    fn anything_else_is_left_to_the_general_reading() {
        let variant = |field: &str, value: Value| {
            let mut event = event();
            event[field] = value;
            event
        };
        let mut deep = event();
        deep["data"]["patch"][0]["value"] = json!([[[[[[[[1]]]]]]]]);
        for (what, events) in [
            ("an extension attribute", json!([variant("partitionkey", json!("p"))])),
            ("an escaped string", json!([variant("subject", json!("Room\"1"))])),
            ("data as a string", json!([variant("data", json!("x"))])),
            ("another event type", json!([variant("type", json!("Other"))])),
            ("another version", json!([variant("specversion", json!("0.3"))])),
            ("an empty id", json!([variant("id", json!(""))])),
            ("a value nested too deep", json!([deep.clone()])),
            ("a single event as a batch", event()),
        ] {
            let (plain, _) = read_both(&events, 12);
            assert!(plain.is_none(), "{what}");
        }
        // Exactly at the limit it is read; one level more is refused, with the general message.
        let (plain, general) = read_both(&json!([deep.clone()]), 13);
        assert!(plain.is_some() && general.is_ok());
        let (_, general) = read_both(&json!([deep]), 12);
        assert!(general.unwrap_err().contains("13 levels"));
        // The escaped subject is still read, the general way.
        let (_, general) = read_both(&json!([variant("subject", json!("Room\"1"))]), 32);
        assert_eq!(general.unwrap()[0].twin, "Room\"1");
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
