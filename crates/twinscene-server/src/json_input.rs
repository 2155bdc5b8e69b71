//! JSON from outside (request bodies, MQTT payloads): size, UTF-8 and nesting depth checked
//! before anything reads it, each refusal with a clear message and counted in `/metrics`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use json_patch::Patch;
use serde_json::Value;
use twinscene_core::patch::parse_patch;

use crate::api_error::ApiError;

/// A request body as bytes, whatever its content type; too large → 413.
pub fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            crate::metrics::refused("body_too_large");
            ApiError::PayloadTooLarge { limit }
        }
        _ => ApiError::BadRequest(rejection.body_text()),
    })
}

/// Parses JSON text and refuses nesting deeper than `max_depth`.
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        crate::metrics::refused("malformed");
        ApiError::BadRequest(format!("the body is not UTF-8 text: {error}"))
    })?;
    // serde_json stops at 128 levels itself, so this parse cannot exhaust the stack.
    let value: Value = serde_json::from_str(text).map_err(|error| {
        crate::metrics::refused("malformed");
        ApiError::BadRequest(format!("the body is not JSON: {error}"))
    })?;
    check_depth(&value, max_depth)?;
    Ok(value)
}

/// A JSON Patch body; malformed JSON is reported with its line and column.
pub fn parse_patch_body(bytes: &[u8], max_depth: usize) -> Result<Patch, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        crate::metrics::refused("malformed");
        ApiError::BadRequest(format!("the body is not UTF-8 text: {error}"))
    })?;
    let patch = parse_patch(text).map_err(|error| {
        crate::metrics::refused("malformed");
        ApiError::BadRequest(format!("the body is not a JSON Patch: {error}"))
    })?;
    for operation in &patch.0 {
        if let Some(value) = patch_value(operation) {
            // The value sits two levels down in the body (array, operation object).
            check_depth(value, max_depth.saturating_sub(2))?;
        }
    }
    Ok(patch)
}

/// The value a patch operation writes or tests, if it has one.
pub fn patch_value(operation: &json_patch::PatchOperation) -> Option<&Value> {
    match operation {
        json_patch::PatchOperation::Add(op) => Some(&op.value),
        json_patch::PatchOperation::Replace(op) => Some(&op.value),
        json_patch::PatchOperation::Test(op) => Some(&op.value),
        _ => None,
    }
}

pub fn check_depth(value: &Value, max_depth: usize) -> Result<(), ApiError> {
    let depth = json_depth(value);
    if depth > max_depth {
        crate::metrics::refused("json_depth");
        return Err(ApiError::BadRequest(format!(
            "JSON nested {depth} levels deep; at most {max_depth} are accepted"
        )));
    }
    Ok(())
}

/// Nesting depth: 0 for a scalar, 1 for a flat array or object.
pub fn json_depth(value: &Value) -> usize {
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return 0;
    }
    // Iterative, so that no input can exhaust the stack.
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(level + 1);
                stack.extend(map.values().map(|item| (item, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_counted_and_limited() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": 2}]})), 3);
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let error = parse_json(deep.as_bytes(), 32).unwrap_err();
        assert!(error.to_string().contains("40 levels"), "{error}");
        assert!(parse_json(b"{\"a\": [1]}", 32).is_ok());
    }
}
