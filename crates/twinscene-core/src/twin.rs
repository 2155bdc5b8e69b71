//! Twins and relationships in the Azure Digital Twins JSON shape (`$dtId`, `$etag`,
//! `$metadata.$model`, per-property `lastUpdateTime`), and the collection that holds them.
//!
//! The JSON shape is kept on the wire and in files so that ADT exports load unchanged; inside,
//! a twin's properties are one JSON object so that JSON Patch applies to it directly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A digital twin: an instance of a DTDL model with property values.
#[derive(Clone, Debug, PartialEq)]
pub struct Twin {
    pub id: String,
    pub model: String,
    /// Changes on every accepted write; lets writers detect lost updates.
    pub etag: String,
    /// Property values, keyed by property name (components are nested objects).
    pub properties: Map<String, Value>,
    /// When each property was last written (RFC 3339), as ADT reports it.
    pub last_update_time: BTreeMap<String, String>,
}

/// Error for a twin document that is not in the ADT shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TwinFormatError {
    #[error("a twin must be a JSON object")]
    NotAnObject,
    #[error("twin has no \"$dtId\" string")]
    MissingId,
    #[error("twin {id:?} has no \"$metadata\".\"$model\" string")]
    MissingModel { id: String },
}

impl Twin {
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            etag: initial_etag(),
            properties: Map::new(),
            last_update_time: BTreeMap::new(),
        }
    }

    /// Reads a twin from ADT twin JSON.
    pub fn from_adt_json(value: &Value) -> Result<Self, TwinFormatError> {
        let object = value.as_object().ok_or(TwinFormatError::NotAnObject)?;
        let id = object.get("$dtId").and_then(Value::as_str).ok_or(TwinFormatError::MissingId)?.to_owned();
        let metadata = object.get("$metadata").and_then(Value::as_object);
        let model = metadata
            .and_then(|m| m.get("$model"))
            .and_then(Value::as_str)
            .ok_or_else(|| TwinFormatError::MissingModel { id: id.clone() })?
            .to_owned();
        let mut last_update_time = BTreeMap::new();
        for (name, entry) in metadata.into_iter().flatten() {
            if let Some(time) = entry.get("lastUpdateTime").and_then(Value::as_str) {
                last_update_time.insert(name.clone(), time.to_owned());
            }
        }
        let properties = object
            .iter()
            .filter(|(name, _)| !name.starts_with('$'))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let etag = object.get("$etag").and_then(Value::as_str).map_or_else(initial_etag, str::to_owned);
        Ok(Self { id, model, etag, properties, last_update_time })
    }

    /// Writes the twin as ADT twin JSON.
    pub fn to_adt_json(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("$model".into(), Value::String(self.model.clone()));
        for (name, time) in &self.last_update_time {
            metadata.insert(name.clone(), serde_json::json!({ "lastUpdateTime": time }));
        }
        let mut object = Map::new();
        object.insert("$dtId".into(), Value::String(self.id.clone()));
        object.insert("$etag".into(), Value::String(self.etag.clone()));
        object.insert("$metadata".into(), Value::Object(metadata));
        object.extend(self.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(object)
    }

    /// Reads a property by name; components and nested objects are reached with [`Value`]
    /// indexing on the result.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }

    /// Gives the twin a new etag after a write. ETags are opaque to clients; a counter is
    /// enough to make every write observable.
    pub(crate) fn bump_etag(&mut self) {
        if increment_etag_in_place(&mut self.etag) {
            return;
        }
        let version = self
            .etag
            .strip_prefix("W/\"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        // Written into the old buffer: no allocation on the live update path.
        self.etag.clear();
        let _ = write!(self.etag, "W/\"{}\"", version + 1);
    }
}

/// Adds one to a canonical `W/"<n>"` etag by editing its digits, without formatting; false
/// (etag unchanged) for any other shape, which [`Twin::bump_etag`] handles in full.
fn increment_etag_in_place(etag: &mut String) -> bool {
    let Some(digits) = etag.strip_prefix("W/\"").and_then(|rest| rest.strip_suffix('"')) else {
        return false;
    };
    // Canonical (what `parse::<u64>` then `{}` would give back) and far from overflow.
    let canonical = !digits.is_empty()
        && digits.len() < 20
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if !canonical {
        return false;
    }
    // The trailing nines become zeros and the digit before them goes up (a new leading 1 when
    // all are nines). Within the old buffer except when a digit is added.
    let nines = digits.bytes().rev().take_while(|&b| b == b'9').count();
    if nines == 0 {
        // The usual case: only the last digit changes.
        let last = digits.as_bytes()[digits.len() - 1];
        etag.truncate(etag.len() - 2);
        etag.push(char::from(last + 1));
        etag.push('"');
        return true;
    }
    let all_nines = nines == digits.len();
    etag.truncate(etag.len() - 1 - nines);
    match etag.pop() {
        Some(digit) if !all_nines => etag.push(char::from(digit as u8 + 1)),
        Some(quote) => {
            etag.push(quote);
            etag.push('1');
        }
        None => return false,
    }
    etag.extend(std::iter::repeat_n('0', nines));
    etag.push('"');
    true
}

fn initial_etag() -> String {
    "W/\"1\"".to_owned()
}

impl Serialize for Twin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_adt_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Twin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Twin::from_adt_json(&value).map_err(serde::de::Error::custom)
    }
}

/// A directed, named edge between two twins (ADT relationship JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Relationship {
    #[serde(rename = "$relationshipId")]
    pub id: String,
    #[serde(rename = "$sourceId")]
    pub source: String,
    #[serde(rename = "$targetId")]
    pub target: String,
    #[serde(rename = "$relationshipName")]
    pub name: String,
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adt_twin_json_round_trips() {
        let adt = json!({
            "$dtId": "Room-101",
            "$etag": "W/\"7\"",
            "$metadata": {"$model": "dtmi:twinscene:Room;1", "temperature": {"lastUpdateTime": "2026-01-01T00:00:00Z"}},
            "temperature": 21.5,
            "name": "Kitchen"
        });
        let twin = Twin::from_adt_json(&adt).unwrap();
        assert_eq!(twin.id, "Room-101");
        assert_eq!(twin.model, "dtmi:twinscene:Room;1");
        assert_eq!(twin.property("temperature"), Some(&json!(21.5)));
        assert_eq!(twin.last_update_time["temperature"], "2026-01-01T00:00:00Z");
        assert_eq!(twin.to_adt_json(), adt);
    }

    #[test]
    fn twin_without_id_or_model_is_rejected_with_reason() {
        assert_eq!(Twin::from_adt_json(&json!({"a": 1})), Err(TwinFormatError::MissingId));
        assert_eq!(
            Twin::from_adt_json(&json!({"$dtId": "x"})),
            Err(TwinFormatError::MissingModel { id: "x".into() })
        );
        assert_eq!(Twin::from_adt_json(&json!([1])), Err(TwinFormatError::NotAnObject));
    }

    #[test]
    fn etag_counts_up_in_place_and_resets_when_foreign() {
        let bumped = |etag: &str| {
            let mut twin = Twin::new("a", "m");
            twin.etag = etag.to_owned();
            twin.bump_etag();
            twin.etag
        };
        assert_eq!(bumped("W/\"1\""), "W/\"2\"");
        assert_eq!(bumped("W/\"0\""), "W/\"1\"");
        assert_eq!(bumped("W/\"129\""), "W/\"130\"");
        assert_eq!(bumped("W/\"999\""), "W/\"1000\"");
        assert_eq!(bumped("W/\"9999999999999999999\""), "W/\"10000000000000000000\"");
        assert_eq!(bumped("W/\"007\""), "W/\"8\"");
        assert_eq!(bumped("W/\"+7\""), "W/\"8\"");
        assert_eq!(bumped("W/\"abc\""), "W/\"1\"");
        assert_eq!(bumped("W/\"\""), "W/\"1\"");
        assert_eq!(bumped("\"5\""), "W/\"1\"");
        assert_eq!(bumped("W/\"١\""), "W/\"1\"");
    }

    #[test]
    fn etag_changes_on_every_bump() {
        let mut twin = Twin::new("a", "m");
        let first = twin.etag.clone();
        twin.bump_etag();
        assert_ne!(twin.etag, first);
        let second = twin.etag.clone();
        twin.bump_etag();
        assert_ne!(twin.etag, second);
    }
}
