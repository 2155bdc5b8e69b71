//! JSON Patch (RFC 6902) on a twin's properties, as ADT's `PATCH /digitaltwins/{id}` takes it:
//! all operations apply or none do.

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use crate::dtdl::ModelSet;
use crate::twin::{CompactString, Twin};

/// Why a patch was refused. The twin is unchanged whenever one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum PatchRejection {
    #[error("the patch is empty")]
    Empty,
    #[error("operation {operation} targets {path:?}: {reason}")]
    ForbiddenPath { operation: usize, path: String, reason: &'static str },
    #[error("{0}")]
    Failed(#[from] json_patch::PatchError),
    #[error("property {property:?} does not fit model {model:?}: {message}")]
    WrongType { model: String, property: String, message: String },
}

/// The top-level properties a patch wrote, in patch order without repeats.
pub type Touched = Vec<String>;

/// Parses a JSON Patch document, naming what is wrong with it.
pub fn parse_patch(text: &str) -> Result<Patch, serde_json::Error> {
    serde_json::from_str(text)
}

/// Reads a JSON Patch for a `#[serde(deserialize_with)]` field where patches come in bulk (live
/// deltas, CloudEvents batches). `Patch`'s own reading finds each operation's `op` by first
/// copying the operation into a generic buffer (serde's way with internally tagged enums),
/// which was most of the time spent reading a 10,000-change delta; this reads each operation
/// as one struct and makes it the operation its `op` names. Whatever it takes, `Patch` reads to
/// the same value (a test and the `live_message` fuzz target compare them); what it refuses
/// (a repeated field, say), the caller reads again the general way.
pub fn read_patch<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Patch, D::Error> {
    use json_patch::{
        AddOperation, CopyOperation, MoveOperation, RemoveOperation, ReplaceOperation, TestOperation,
    };
    use serde::Deserialize;
    use serde::de::Error;
    use std::borrow::Cow;

    #[derive(Deserialize)]
    struct Operation<'a> {
        #[serde(borrow)]
        op: Cow<'a, str>,
        #[serde(borrow)]
        path: Cow<'a, str>,
        #[serde(default, borrow)]
        from: Option<Cow<'a, str>>,
        // Present (even as null) or not: an `add` without a value is an error, with null is not.
        #[serde(default, deserialize_with = "present")]
        value: Option<Value>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
        Value::deserialize(deserializer).map(Some)
    }
    fn pointer<E: Error>(text: Cow<'_, str>) -> Result<json_patch::jsonptr::PointerBuf, E> {
        json_patch::jsonptr::PointerBuf::parse(text.into_owned()).map_err(E::custom)
    }
    fn required<T, E: Error>(field: Option<T>, name: &'static str) -> Result<T, E> {
        field.ok_or_else(|| E::missing_field(name))
    }

    let operations = Vec::<Operation>::deserialize(deserializer)?;
    let mut patch = Vec::with_capacity(operations.len());
    for Operation { op, path, from, value } in operations {
        let path = pointer(path)?;
        patch.push(match &*op {
            "add" => PatchOperation::Add(AddOperation { path, value: required(value, "value")? }),
            "remove" => PatchOperation::Remove(RemoveOperation { path }),
            "replace" => PatchOperation::Replace(ReplaceOperation { path, value: required(value, "value")? }),
            "move" => PatchOperation::Move(MoveOperation { from: pointer(required(from, "from")?)?, path }),
            "copy" => PatchOperation::Copy(CopyOperation { from: pointer(required(from, "from")?)?, path }),
            "test" => PatchOperation::Test(TestOperation { path, value: required(value, "value")? }),
            other => {
                return Err(D::Error::unknown_variant(
                    other,
                    &["add", "remove", "replace", "move", "copy", "test"],
                ));
            }
        });
    }
    Ok(Patch(patch))
}

/// Applies `patch` to the twin's properties atomically, then records `timestamp` (RFC 3339) as
/// the last update time of every top-level property it touched and gives the twin a new etag.
/// With `models`, each touched property must fit the twin's model (when the model is known).
/// Returns the names of the touched top-level properties.
pub fn apply_to_twin(
    twin: &mut Twin,
    patch: &[PatchOperation],
    timestamp: &str,
    models: Option<&ModelSet>,
) -> Result<Touched, PatchRejection> {
    match apply_single(twin, patch, timestamp, models) {
        Some(result) => result.map(|name| vec![name.to_owned()]),
        None => apply_general_to_twin(twin, patch, timestamp, models),
    }
}

/// The top-level properties a patch wrote, borrowed from the patch for the common single write.
pub(crate) enum TouchedNames<'p> {
    One(&'p str),
    Many(Touched),
}

impl TouchedNames<'_> {
    /// Whether `f` holds for some touched name.
    pub(crate) fn any(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        match self {
            Self::One(name) => f(name),
            Self::Many(names) => names.iter().any(|name| f(name)),
        }
    }

    pub(crate) fn for_each(&self, mut f: impl FnMut(&str)) {
        match self {
            Self::One(name) => f(name),
            Self::Many(names) => names.iter().for_each(|name| f(name)),
        }
    }

    #[cfg(test)]
    fn to_vec(&self) -> Touched {
        match self {
            Self::One(name) => vec![(*name).to_owned()],
            Self::Many(names) => names.clone(),
        }
    }
}

/// [`apply_to_twin`] without copying the touched names out of the patch.
pub(crate) fn apply_to_twin_borrowed<'p>(
    twin: &mut Twin,
    patch: &'p [PatchOperation],
    timestamp: &str,
    models: Option<&ModelSet>,
) -> Result<TouchedNames<'p>, PatchRejection> {
    match apply_single(twin, patch, timestamp, models) {
        Some(result) => result.map(TouchedNames::One),
        None => apply_general_to_twin(twin, patch, timestamp, models).map(TouchedNames::Many),
    }
}

/// The common live update, one `replace` or `add` of a top-level property whose pointer needs
/// no unescaping (`/temperature`), written in place: no pointer parsing, no allocation once the
/// property has a time. `None` when the patch is not of that shape (or a `replace` targets a
/// missing property, which the general path refuses); the twin is then unchanged.
fn apply_single<'p>(
    twin: &mut Twin,
    patch: &'p [PatchOperation],
    timestamp: &str,
    models: Option<&ModelSet>,
) -> Option<Result<&'p str, PatchRejection>> {
    let [op] = patch else { return None };
    let (path, value, must_exist) = match op {
        PatchOperation::Replace(replace) => (&replace.path, &replace.value, true),
        PatchOperation::Add(add) => (&add.path, &add.value, false),
        _ => return None,
    };
    let name = path.as_str().strip_prefix('/')?;
    // A fold rather than `any`: no early exit, so it compiles to a few vector instructions.
    let escaped_or_nested = name.bytes().fold(false, |found, b| found | (b == b'/') | (b == b'~'));
    if name.starts_with('$') || escaped_or_nested {
        return None;
    }
    if let Some(models) = models
        && let Err(message) = models.check_property(&twin.model, name, Some(value))
    {
        return Some(Err(wrong_type(twin, name, message)));
    }
    match twin.properties.get_mut(name) {
        Some(slot) => slot.clone_from(value),
        None if must_exist => return None,
        None => {
            twin.properties.insert(name.to_owned(), value.clone());
        }
    }
    match twin.last_update_time.get_mut(name) {
        // Reuses the string's buffer: live updates write the same properties over and over.
        Some(time) => {
            if time != timestamp {
                time.clear();
                time.push_str(timestamp);
            }
        }
        None => {
            twin.last_update_time.insert(name, CompactString::from(timestamp));
        }
    }
    twin.bump_etag();
    Some(Ok(name))
}

fn apply_general_to_twin(
    twin: &mut Twin,
    patch: &[PatchOperation],
    timestamp: &str,
    models: Option<&ModelSet>,
) -> Result<Touched, PatchRejection> {
    if patch.is_empty() {
        return Err(PatchRejection::Empty);
    }
    let mut touched = Touched::new();
    for (operation, op) in patch.iter().enumerate() {
        let from = match op {
            PatchOperation::Move(m) => Some(m.from.as_ptr()),
            PatchOperation::Copy(c) => Some(c.from.as_ptr()),
            _ => None,
        };
        for path in std::iter::once(op.path()).chain(from) {
            let forbidden =
                |reason| PatchRejection::ForbiddenPath { operation, path: path.to_string(), reason };
            let Some(first) = path.first() else {
                return Err(forbidden("the whole twin cannot be replaced; patch its properties"));
            };
            let name = first.decoded();
            if name.starts_with('$') {
                return Err(forbidden("$-prefixed fields are managed by the twin store"));
            }
            if !matches!(op, PatchOperation::Test(_)) && !touched.iter().any(|t| *t == name) {
                touched.push(name.into_owned());
            }
        }
    }
    if let Some(done) = write_single_property(twin, patch, models) {
        done?;
    } else {
        apply_general(twin, patch, &touched, models)?;
    }
    for name in &touched {
        if twin.properties.contains_key(name) {
            match twin.last_update_time.get_mut(name) {
                // Reuses the string's buffer: live updates write the same properties over and over.
                Some(time) => {
                    time.clear();
                    time.push_str(timestamp);
                }
                None => {
                    twin.last_update_time.insert(name.as_str(), CompactString::from(timestamp));
                }
            }
        } else {
            twin.last_update_time.remove(name);
        }
    }
    twin.bump_etag();
    Ok(touched)
}

/// The common live update, one `replace`/`add` of a top-level property, without cloning the
/// twin's properties. `None` when the patch is not of that shape.
fn write_single_property(
    twin: &mut Twin,
    patch: &[PatchOperation],
    models: Option<&ModelSet>,
) -> Option<Result<(), PatchRejection>> {
    let [op] = patch else { return None };
    let (path, value, must_exist) = match op {
        PatchOperation::Replace(replace) => (&replace.path, &replace.value, true),
        PatchOperation::Add(add) => (&add.path, &add.value, false),
        _ => return None,
    };
    let mut segments = path.tokens();
    let first = segments.next()?;
    let name = first.decoded();
    if segments.next().is_some() {
        return None;
    }
    if let Some(models) = models
        && let Err(message) = models.check_property(&twin.model, &name, Some(value))
    {
        return Some(Err(wrong_type(twin, &name, message)));
    }
    match twin.properties.get_mut(name.as_ref()) {
        Some(slot) => slot.clone_from(value),
        None if must_exist => return None,
        None => {
            twin.properties.insert(name.into_owned(), value.clone());
        }
    }
    Some(Ok(()))
}

fn apply_general(
    twin: &mut Twin,
    patch: &[PatchOperation],
    touched: &[String],
    models: Option<&ModelSet>,
) -> Result<(), PatchRejection> {
    // The touched top-level properties as they were: restoring them undoes the patch whatever
    // went wrong. json_patch's own undo is not enough: a `move` whose target is invalid loses the
    // moved value (found by fuzzing), and a type mismatch is only found afterwards.
    let saved: Vec<(&String, Option<Value>)> =
        touched.iter().map(|name| (name, twin.properties.get(name).cloned())).collect();
    let mut document = Value::Object(std::mem::take(&mut twin.properties).into());
    let result = json_patch::patch(&mut document, patch);
    twin.properties = match document {
        Value::Object(map) => map.into(),
        // Unreachable: the root cannot be targeted (checked above), so it stays an object.
        _ => Default::default(),
    };
    let outcome = match result {
        Err(error) => Err(PatchRejection::Failed(error)),
        Ok(()) => match models {
            None => Ok(()),
            Some(models) => touched
                .iter()
                .find_map(|name| {
                    let message =
                        models.check_property(&twin.model, name, twin.properties.get(name)).err()?;
                    Some(wrong_type(twin, name, message))
                })
                .map_or(Ok(()), Err),
        },
    };
    if outcome.is_err() {
        for (name, value) in saved {
            match value {
                Some(value) => twin.properties.insert(name.clone(), value),
                None => twin.properties.remove(name),
            };
        }
    }
    outcome
}

fn wrong_type(twin: &Twin, name: &str, message: String) -> PatchRejection {
    PatchRejection::WrongType { model: twin.model.clone(), property: name.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_fast(text: &str) -> Result<Patch, String> {
        read_patch(&mut serde_json::Deserializer::from_str(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn patches_read_in_bulk_read_as_patch_reads_them() {
        let every_operation = r#"[
            {"op":"add","path":"/a~1b","value":null},{"path":"/n","op":"replace","value":-1.5e3},
            {"op":"remove","path":"/c","value":1},{"op":"move","from":"/d","path":"/e"},
            {"op":"copy","from":"/f~0","path":"/g","extra":[1]},{"op":"test","path":"/h","value":{"x":[true]}},
            {"op":"replace","path":"/s\u0041","value":"\u00e9\n"}]"#;
        let general: Patch = serde_json::from_str(every_operation).unwrap();
        assert_eq!(read_fast(every_operation).unwrap(), general);
        assert_eq!(general.0.len(), 7);
        for refused in [
            r#"[{"op":"add","path":"/a"}]"#,
            r#"[{"op":"copy","path":"/a"}]"#,
            r#"[{"op":"jump","path":"/a"}]"#,
            r#"[{"op":"remove","path":"a"}]"#,
            r#"[{"op":"remove"}]"#,
            r#"[{"path":"/a"}]"#,
            r#"{"op":"remove","path":"/a"}"#,
        ] {
            assert!(read_fast(refused).is_err(), "{refused}");
            assert!(serde_json::from_str::<Patch>(refused).is_err(), "{refused}");
        }
    }

    fn room() -> Twin {
        let mut twin = Twin::new("room", "dtmi:twinscene:Room;1");
        twin.properties.insert("temperature", json!(20));
        twin.properties.insert("hvac", json!({"mode": "heat"}));
        twin
    }

    fn patch(value: Value) -> Patch {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn replace_updates_value_time_and_etag() {
        let mut twin = room();
        let etag = twin.etag.clone();
        let touched = apply_to_twin(
            &mut twin,
            &patch(json!([{"op": "replace", "path": "/temperature", "value": 25.5}])),
            "2026-01-01T00:00:01Z",
            None,
        )
        .unwrap();
        assert_eq!(touched, ["temperature"]);
        assert_eq!(twin.property("temperature"), Some(&json!(25.5)));
        assert_eq!(twin.last_update_time["temperature"], "2026-01-01T00:00:01Z");
        assert_ne!(twin.etag, etag);
    }

    #[test]
    fn single_writes_match_the_general_path() {
        let models = models();
        for ops in [
            json!([{"op": "replace", "path": "/temperature", "value": 25.5}]),
            json!([{"op": "replace", "path": "/temperature", "value": "hot"}]),
            json!([{"op": "replace", "path": "/humidity", "value": 40}]),
            json!([{"op": "add", "path": "/humidity", "value": 40}]),
            json!([{"op": "add", "path": "/temperature", "value": {"x": 1}}]),
            json!([{"op": "add", "path": "/", "value": 1}]),
            json!([{"op": "add", "path": "/a~1b", "value": 1}]),
            json!([{"op": "add", "path": "/a~0b", "value": 1}]),
            json!([{"op": "replace", "path": "/$dtId", "value": "x"}]),
            json!([{"op": "replace", "path": "", "value": {}}]),
            json!([{"op": "replace", "path": "/hvac/mode", "value": "cool"}]),
        ] {
            for models in [None, Some(&models)] {
                let patch = patch(ops.clone());
                let (mut fast, mut general) = (room(), room());
                fast.last_update_time.insert("temperature", "old".into());
                general.last_update_time.insert("temperature", "old".into());
                let fast_result =
                    apply_to_twin_borrowed(&mut fast, &patch, "t", models).map(|touched| touched.to_vec());
                let general_result = apply_general_to_twin(&mut general, &patch, "t", models);
                assert_eq!(fast, general, "{ops} with models: {}", models.is_some());
                match (fast_result, general_result) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{ops}"),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{ops}"),
                    (a, b) => panic!("{ops}: {a:?} but the general path gives {b:?}"),
                }
            }
        }
    }

    #[test]
    fn nested_paths_reach_component_fields() {
        let mut twin = room();
        apply_to_twin(
            &mut twin,
            &patch(json!([{"op": "replace", "path": "/hvac/mode", "value": "cool"}])),
            "t",
            None,
        )
        .unwrap();
        assert_eq!(twin.property("hvac"), Some(&json!({"mode": "cool"})));
    }

    #[test]
    fn failing_operation_leaves_twin_unchanged() {
        let mut twin = room();
        let before = twin.clone();
        let result = apply_to_twin(
            &mut twin,
            &patch(json!([
                {"op": "replace", "path": "/temperature", "value": 30},
                {"op": "replace", "path": "/missing/deep", "value": 1}
            ])),
            "t",
            None,
        );
        assert!(matches!(result, Err(PatchRejection::Failed(_))));
        assert_eq!(twin, before);
    }

    #[test]
    fn failed_move_keeps_the_moved_value() {
        // json_patch drops the value of a move whose target parent is missing; found by fuzzing.
        let mut twin = room();
        let before = twin.clone();
        let result = apply_to_twin(
            &mut twin,
            &patch(json!([{"op": "move", "from": "/hvac", "path": "//x"}])),
            "t",
            None,
        );
        assert!(matches!(result, Err(PatchRejection::Failed(_))));
        assert_eq!(twin, before);
    }

    #[test]
    fn metadata_and_root_paths_are_refused() {
        for bad in [
            json!([{"op": "replace", "path": "/$dtId", "value": "x"}]),
            json!([{"op": "replace", "path": "", "value": {}}]),
            json!([{"op": "move", "from": "/$metadata", "path": "/x"}]),
        ] {
            let mut twin = room();
            let before = twin.clone();
            let result = apply_to_twin(&mut twin, &patch(bad.clone()), "t", None);
            assert!(matches!(result, Err(PatchRejection::ForbiddenPath { .. })), "{bad}");
            assert_eq!(twin, before);
        }
        assert!(matches!(apply_to_twin(&mut room(), &[], "t", None), Err(PatchRejection::Empty)));
    }

    fn models() -> ModelSet {
        ModelSet::from_documents(&[json!([
            {"@id": "dtmi:twinscene:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3", "contents": [
                {"@type": "Property", "name": "temperature", "schema": "double"},
                {"@type": "Property", "name": "hvac", "schema": {"@type": "Object", "fields": [{"name": "mode", "schema": "string"}]}},
                {"@type": "Component", "name": "thermostat", "schema": "dtmi:twinscene:Thermostat;1"}]},
            {"@id": "dtmi:twinscene:Thermostat;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3", "contents": [
                {"@type": "Property", "name": "target", "schema": "double"}]}
        ])])
        .unwrap()
    }

    #[test]
    fn writes_are_type_checked_down_to_component_and_nested_paths() {
        let models = models();
        let mut twin = room();
        twin.properties.insert("thermostat", json!({"$metadata": {}, "target": 20}));
        let write = |twin: &mut Twin, ops: Value| apply_to_twin(twin, &patch(ops), "t", Some(&models));
        write(&mut twin, json!([{"op": "replace", "path": "/thermostat/target", "value": 22.5}])).unwrap();
        assert_eq!(twin.property("thermostat").unwrap()["target"], json!(22.5));
        write(&mut twin, json!([{"op": "replace", "path": "/hvac/mode", "value": "cool"}])).unwrap();
        let before = twin.clone();
        for bad in [
            json!([{"op": "replace", "path": "/temperature", "value": "hot"}]),
            json!([{"op": "replace", "path": "/thermostat/target", "value": "hot"}]),
            json!([{"op": "add", "path": "/hvac/speed", "value": 3}]),
            json!([{"op": "add", "path": "/humidity", "value": 3}]),
            json!([{"op": "replace", "path": "/temperature", "value": 1}, {"op": "replace", "path": "/hvac/mode", "value": 2}]),
            json!([{"op": "remove", "path": "/thermostat"}]),
        ] {
            let result = write(&mut twin, bad.clone());
            assert!(matches!(result, Err(PatchRejection::WrongType { .. })), "{bad}: {result:?}");
            assert_eq!(twin, before, "{bad} must leave the twin unchanged");
        }
    }

    #[test]
    fn malformed_patch_reports_position() {
        let error = parse_patch("[{\"op\": \"jump\"}]").unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
