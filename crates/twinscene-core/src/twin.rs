//! Twins and relationships in the Azure Digital Twins JSON shape (`$dtId`, `$etag`,
//! `$metadata.$model`, per-property `lastUpdateTime`), and the collection that holds them.
//!
//! The JSON shape is kept on the wire and in files so that ADT exports load unchanged; inside,
//! a twin's properties and their update times are small maps sorted by name ([`PropertyMap`]),
//! which JSON Patch reaches through a JSON object made for the rare patch that needs one.
//!
//! Property names, update times and etags are [`CompactString`]s: up to 24 bytes live inside
//! the value, so a live update compares and writes them without following a pointer to
//! another cache line (at 10^4 twins and more those reads were most of an update's cost).

pub use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// A digital twin: an instance of a DTDL model with property values.
#[derive(Clone, Debug, PartialEq)]
pub struct Twin {
    pub id: String,
    pub model: String,
    /// Changes on every accepted write; lets writers detect lost updates.
    pub etag: CompactString,
    /// Property values, keyed by property name (components are nested objects).
    pub properties: PropertyMap<Value>,
    /// When each property was last written (RFC 3339), as ADT reports it.
    pub last_update_time: PropertyMap<CompactString>,
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
            properties: PropertyMap::new(),
            last_update_time: PropertyMap::new(),
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
        let mut last_update_time = PropertyMap::new();
        for (name, entry) in metadata.into_iter().flatten() {
            if let Some(time) = entry.get("lastUpdateTime").and_then(Value::as_str) {
                last_update_time.insert(name.as_str(), CompactString::from(time));
            }
        }
        let properties = object
            .iter()
            .filter(|(name, _)| !name.starts_with('$'))
            .map(|(name, value)| (CompactString::from(name.as_str()), value.clone()))
            .collect();
        let etag = object.get("$etag").and_then(Value::as_str).map_or_else(initial_etag, CompactString::from);
        Ok(Self { id, model, etag, properties, last_update_time })
    }

    /// Writes the twin as ADT twin JSON.
    pub fn to_adt_json(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("$model".into(), Value::String(self.model.clone()));
        for (name, time) in &self.last_update_time {
            metadata.insert(name.to_owned(), serde_json::json!({ "lastUpdateTime": time.as_str() }));
        }
        let mut object = Map::new();
        object.insert("$dtId".into(), Value::String(self.id.clone()));
        object.insert("$etag".into(), Value::String(self.etag.to_string()));
        object.insert("$metadata".into(), Value::Object(metadata));
        object.extend(self.properties.iter().map(|(k, v)| (k.to_owned(), v.clone())));
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
        if !increment_etag_in_place(&mut self.etag) {
            self.etag = next_etag(&self.etag);
        }
    }
}

/// The etag after `etag`: `W/"<n+1>"` for `W/"<n>"`, and `W/"1"` for any other etag (an
/// imported or foreign one). Twins count up in place ([`Twin::bump_etag`]); relationships'
/// etags, kept in their JSON properties, take this.
pub fn next_etag(etag: &str) -> CompactString {
    let version = etag
        .strip_prefix("W/\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    compact_str::format_compact!("W/\"{}\"", version + 1)
}

/// Adds one to a canonical `W/"<n>"` etag by editing its digits, without formatting; false
/// (etag unchanged) for any other shape, which [`Twin::bump_etag`] handles in full. Byte by
/// byte in a stack buffer, then stored inline: it runs on every live write.
fn increment_etag_in_place(etag: &mut CompactString) -> bool {
    let bytes = etag.as_bytes();
    let len = bytes.len();
    // Room for `W/"` + 20 digits + `"`: u64::MAX has 20 digits.
    if !(5..=24).contains(&len) || &bytes[..3] != b"W/\"" || bytes[len - 1] != b'"' {
        return false;
    }
    let digits = &bytes[3..len - 1];
    // Canonical (what `parse::<u64>` then `{}` would give back) and far from overflow.
    let canonical = digits.len() < 20
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0');
    if !canonical {
        return false;
    }
    let mut buffer = [0u8; 25];
    buffer[..len].copy_from_slice(bytes);
    // The trailing nines become zeros and the digit before them goes up (a new leading 1 when
    // all are nines, which shifts the closing quote right by one).
    let mut at = len - 2;
    loop {
        if buffer[at] == b'9' {
            buffer[at] = b'0';
            if at == 3 {
                buffer.copy_within(3..len, 4);
                buffer[3] = b'1';
                return store_etag(etag, &buffer[..len + 1]);
            }
            at -= 1;
        } else {
            buffer[at] += 1;
            return store_etag(etag, &buffer[..len]);
        }
    }
}

fn store_etag(etag: &mut CompactString, bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            *etag = CompactString::new(text);
            true
        }
        Err(_) => false,
    }
}

fn initial_etag() -> CompactString {
    CompactString::const_new("W/\"1\"")
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

/// A twin's top-level property values (or their update times) by property name, iterated in
/// name order as a `serde_json` map is.
///
/// A vector sorted by name rather than a B-tree: twins have a handful of properties, and a B-tree
/// leaf is sized for eleven entries (over 600 bytes for a single property value), so a twin took
/// kilobytes and a property read went through three or four cache lines. Here one property costs
/// its name and value, and a read scans a few adjacent entries. Maps of more than
/// [`PropertyMap::SCAN`] entries are searched by bisection.
#[derive(Clone, PartialEq, Eq)]
pub struct PropertyMap<V> {
    entries: SmallVec<[(CompactString, V); 1]>,
}

impl<V> Default for PropertyMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PropertyMap<V> {
    /// Up to this many entries a lookup scans (lengths first, which rejects most names without
    /// reading their bytes); beyond, it bisects.
    const SCAN: usize = 8;

    pub const fn new() -> Self {
        Self { entries: SmallVec::new_const() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        if self.entries.len() <= Self::SCAN {
            self.entries.iter().position(|(key, _)| key.len() == name.len() && key == name)
        } else {
            self.entries.binary_search_by(|(key, _)| key.as_str().cmp(name)).ok()
        }
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`; returns the value it replaces.
    pub fn insert(&mut self, name: impl AsRef<str> + Into<CompactString>, value: V) -> Option<V> {
        match self.entries.binary_search_by(|(key, _)| key.as_str().cmp(name.as_ref())) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                // Exact growth while small: most twins have a few properties, and the default
                // first allocation (four entries) would triple the size of a one-property twin.
                if self.entries.len() == self.entries.capacity() && self.entries.len() < Self::SCAN {
                    self.entries.reserve_exact(1);
                }
                self.entries.insert(i, (name.into(), value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.position(name).map(|i| self.entries.remove(i).1)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> PropertyIter<'_, V> {
        PropertyIter(self.entries.iter())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, value)| value)
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&str, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(key, value)| (key.as_str(), value))
    }

    /// Keeps the entries for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.entries.retain(|(key, value)| keep(key, value));
    }
}

/// Iterator over a [`PropertyMap`]'s entries, in name order.
#[derive(Clone, Debug)]
pub struct PropertyIter<'a, V>(std::slice::Iter<'a, (CompactString, V)>);

impl<'a, V> Iterator for PropertyIter<'a, V> {
    type Item = (&'a str, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (key.as_str(), value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for PropertyIter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(key, value)| (key.as_str(), value))
    }
}

impl<V> ExactSizeIterator for PropertyIter<'_, V> {}

impl<'a, V> IntoIterator for &'a PropertyMap<V> {
    type Item = (&'a str, &'a V);
    type IntoIter = PropertyIter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> IntoIterator for PropertyMap<V> {
    type Item = (CompactString, V);
    type IntoIter = smallvec::IntoIter<[(CompactString, V); 1]>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<CompactString>, V> FromIterator<(K, V)> for PropertyMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(CompactString, V)> =
            iter.into_iter().map(|(key, value)| (key.into(), value)).collect();
        // Stable, so that of repeated names the last one is kept, as inserting them would.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut map = Self { entries: SmallVec::with_capacity(entries.len()) };
        for (key, value) in entries {
            match map.entries.last_mut() {
                Some(last) if last.0 == key => last.1 = value,
                _ => map.entries.push((key, value)),
            }
        }
        map
    }
}

impl<K: AsRef<str> + Into<CompactString>, V> Extend<(K, V)> for PropertyMap<V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<V> std::ops::Index<&str> for PropertyMap<V> {
    type Output = V;

    /// Panics when there is no such property, as `serde_json::Map` does.
    fn index(&self, name: &str) -> &V {
        self.get(name).unwrap_or_else(|| panic!("no property {name:?}"))
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for PropertyMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for PropertyMap<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for PropertyMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<CompactString, V>::deserialize(deserializer)?;
        Ok(Self { entries: map.into_iter().collect() })
    }
}

impl From<Map<String, Value>> for PropertyMap<Value> {
    fn from(map: Map<String, Value>) -> Self {
        // Through `FromIterator`, which sorts: name order is serde_json's default, not a promise
        // (its `preserve_order` feature keeps insertion order).
        map.into_iter().collect()
    }
}

impl From<PropertyMap<Value>> for Map<String, Value> {
    fn from(map: PropertyMap<Value>) -> Self {
        map.entries.into_iter().map(|(key, value)| (key.into_string(), value)).collect()
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

    proptest::proptest! {
        /// Short maps are scanned and long ones bisected: both must behave as a B-tree map.
        #[test]
        fn property_map_behaves_as_an_ordered_map(
            ops in proptest::collection::vec((0u8..3, 0u8..24, 0i32..100), 0..80)
        ) {
            let mut map = PropertyMap::new();
            let mut model = std::collections::BTreeMap::new();
            for (op, key, value) in ops {
                let key = format!("p{key}");
                match op {
                    0 => proptest::prop_assert_eq!(map.insert(key.clone(), value), model.insert(key, value)),
                    1 => proptest::prop_assert_eq!(map.remove(&key), model.remove(&key)),
                    _ => proptest::prop_assert_eq!(map.get(&key), model.get(&key)),
                }
                proptest::prop_assert!(map.iter().eq(model.iter().map(|(k, v)| (k.as_str(), v))));
            }
            let collected: PropertyMap<i32> = model.clone().into_iter().rev().collect();
            proptest::prop_assert!(collected.iter().eq(model.iter().map(|(k, v)| (k.as_str(), v))));
        }
    }

    #[test]
    fn property_maps_convert_to_json_objects_in_name_order_and_last_repeat_wins() {
        let map: PropertyMap<Value> =
            [("b".to_owned(), json!(1)), ("a".to_owned(), json!(2)), ("b".to_owned(), json!(3))]
                .into_iter()
                .collect();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(Value::Object(map.clone().into()), json!({"a": 2, "b": 3}));
        assert_eq!(PropertyMap::from(json!({"b": 3, "a": 2}).as_object().unwrap().clone()), map);
        assert_eq!(serde_json::to_value(&map).unwrap(), json!({"a": 2, "b": 3}));
        assert_eq!(serde_json::from_value::<PropertyMap<Value>>(json!({"b": 3, "a": 2})).unwrap(), map);
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
            twin.etag = etag.into();
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
    fn next_etag_counts_up_canonical_etags_and_restarts_foreign_ones() {
        assert_eq!(next_etag("W/\"9\""), "W/\"10\"");
        assert_eq!(next_etag("W/\"007\""), "W/\"8\"");
        assert_eq!(next_etag("\"abc\""), "W/\"1\"");
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
