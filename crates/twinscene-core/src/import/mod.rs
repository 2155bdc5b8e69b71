//! Peer scene formats read into twinscene's own [`Scene`]: Azure Digital Twins 3D Scenes Studio
//! configurations (v1.0), AWS IoT TwinMaker scenes, ADT Explorer exports, and twinscene scenes
//! themselves. The format is told by content ([`detect`]), never by file name. Whatever the
//! source says that twinscene does not carry over is reported as an [`ImportNote`], never
//! dropped silently. docs/import.md is the user-facing description.
//!
//! ```
//! use twinscene_core::import::{import, ImportOptions, SourceFormat};
//! let text = r#"{"specVersion": "1.0", "nodes": [{"name": "Tank", "components": [
//!     {"type": "ModelRef", "uri": "tank.glb"}]}], "rules": {}}"#;
//! let imported = import(text, &ImportOptions::default()).unwrap();
//! assert_eq!(imported.format, SourceFormat::TwinMaker);
//! assert_eq!(imported.scene.mesh, "tank.glb");
//! ```
//!
//! Core does no I/O: a host reads the files (the scene, `twinsFile`, `modelsFile`) and passes
//! their text in.

mod adt_3dscenes;
pub mod jexl;
mod twinmaker;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::adt::AdtExport;
use crate::scene::{SCENE_FORMAT_VERSION, Scene, SceneError};
use crate::twin::{Relationship, Twin};

/// The largest scene file [`import`] and [`detect`] read: 512 MiB. A facility of 10^6
/// elements with every twin, relationship and element written out is ~412 MB (`cargo xtask
/// gen-facility --tiles 31 --lowpoly`), and it loads in the browser (wasm memory ~3.2 GB of
/// wasm32's 4 GB); the limit keeps a wrong file from exhausting memory.
pub const MAX_SCENE_BYTES: usize = 512 * 1024 * 1024;

/// The formats [`import`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// twinscene's own scene file (docs/scene-format.md).
    Twinscene,
    /// Azure Digital Twins 3D Scenes Studio configuration, schema v1.0.
    Adt3dScenes,
    /// AWS IoT TwinMaker scene (`specVersion` 1.0).
    TwinMaker,
    /// ADT Explorer export: models, twins and relationships, no scene.
    AdtExplorer,
}

impl SourceFormat {
    pub const ALL: [SourceFormat; 4] = [
        SourceFormat::Twinscene,
        SourceFormat::Adt3dScenes,
        SourceFormat::TwinMaker,
        SourceFormat::AdtExplorer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Twinscene => "twinscene",
            SourceFormat::Adt3dScenes => "adt-3dscenes",
            SourceFormat::TwinMaker => "twinmaker",
            SourceFormat::AdtExplorer => "adt-explorer",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SourceFormat {
    type Err = ImportError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|format| format.name() == text).ok_or_else(|| {
            ImportError::new("", format!("unknown format {text:?}: expected one of {}", format_list()))
        })
    }
}

fn format_list() -> String {
    SourceFormat::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

/// A file that cannot be imported: where (a JSON pointer into the file, and line and column for
/// syntax errors) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// JSON pointer of the offending value; empty for the whole file.
    pub pointer: String,
    pub message: String,
    /// 1-based line of a syntax error.
    pub line: Option<usize>,
    /// 1-based column of a syntax error.
    pub column: Option<usize>,
}

impl ImportError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), message: message.into(), line: None, column: None }
    }

    fn syntax(error: &serde_json::Error) -> Self {
        Self {
            pointer: String::new(),
            message: format!("not valid JSON: {error}"),
            line: Some(error.line()),
            column: Some(error.column()),
        }
    }

    /// The same error, said to be in `file` (for errors in a twins or models file).
    fn in_file(mut self, file: &str) -> Self {
        self.message = format!("{file}: {}", self.message);
        self
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: {}", self.message),
            _ if self.pointer.is_empty() => f.write_str(&self.message),
            _ => write!(f, "{}: {}", self.pointer, self.message),
        }
    }
}

impl From<crate::adt::ImportError> for ImportError {
    fn from(error: crate::adt::ImportError) -> Self {
        Self::new(error.pointer, error.message)
    }
}

/// Something in the source that twinscene does not carry over, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportNote {
    /// JSON pointer into the source file.
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", if self.pointer.is_empty() { "/" } else { &self.pointer }, self.message)
    }
}

/// Choices for [`import`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions<'a> {
    /// 3D Scenes: the scene to import, by id or display name; default: the first scene.
    pub scene: Option<&'a str>,
    /// The text of a twins file (see [`Scene::merge_twin_file`]), merged into the scene.
    pub twins: Option<&'a str>,
    /// The text of a DTDL models file (see [`Scene::merge_models_file`]).
    pub models: Option<&'a str>,
    /// Replaces the mesh URL (for a peer's model that cannot be fetched from here).
    pub mesh: Option<&'a str>,
}

/// The result of [`import`].
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub format: SourceFormat,
    pub scene: Scene,
    /// What was not carried over; empty for twinscene scenes.
    pub notes: Vec<ImportNote>,
}

/// Collects notes while importing.
#[derive(Default)]
pub(crate) struct Notes(pub(crate) Vec<ImportNote>);

impl Notes {
    pub(crate) fn add(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.0.push(ImportNote { pointer: pointer.into(), message: message.into() });
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub(crate) fn pointer_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_size(text: &str) -> Result<(), ImportError> {
    if text.len() > MAX_SCENE_BYTES {
        return Err(ImportError::new(
            "",
            format!(
                "the file is {} bytes; scene files are limited to {MAX_SCENE_BYTES} bytes (512 MiB)",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn parse(text: &str) -> Result<Value, ImportError> {
    check_size(text)?;
    serde_json::from_str(text).map_err(|e| ImportError::syntax(&e))
}

fn detect_value(value: &Value) -> Result<SourceFormat, ImportError> {
    let unknown = || {
        ImportError::new(
            "",
            "not a scene file twinscene reads; the formats are: twinscene (\"version\" and \"elements\"), \
                 adt-3dscenes (\"configuration\".\"scenes\" or a 3DScenesConfiguration \"$schema\"), \
                 twinmaker (\"specVersion\", \"nodes\" and \"rules\"), adt-explorer (\"digitalTwinsGraph\")",
        )
    };
    let Value::Object(root) = value else { return Err(unknown()) };
    if root.contains_key("digitalTwinsGraph") || root.contains_key("digitalTwinsModels") {
        return Ok(SourceFormat::AdtExplorer);
    }
    let scenes_schema = root
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|schema| schema.contains("3DScenesConfiguration"));
    if scenes_schema || root.get("configuration").and_then(|c| c.get("scenes")).is_some() {
        return Ok(SourceFormat::Adt3dScenes);
    }
    if root.contains_key("specVersion") && root.contains_key("nodes") {
        return Ok(SourceFormat::TwinMaker);
    }
    if root.get("version").is_some_and(Value::is_number) && root.contains_key("elements") {
        return Ok(SourceFormat::Twinscene);
    }
    Err(unknown())
}

/// The format of a scene file, by its content.
pub fn detect(text: &str) -> Result<SourceFormat, ImportError> {
    detect_value(&parse(text)?)
}

/// The scenes in a file, as (id, display name): every scene of a 3D Scenes configuration;
/// empty for the other formats, which hold one scene (or none).
pub fn scene_names(text: &str) -> Result<Vec<(String, String)>, ImportError> {
    let value = parse(text)?;
    match detect_value(&value)? {
        SourceFormat::Adt3dScenes => adt_3dscenes::scene_names(&value),
        _ => Ok(Vec::new()),
    }
}

/// The top-level keys that tell a twinscene file, read without building the document: a
/// generated 10^5-element scene is ~40 MB of JSON and ten times that as a `Value` tree, and the
/// wasm viewer's memory never shrinks back after such a peak.
#[derive(serde::Deserialize)]
struct TwinsceneProbe {
    version: Option<serde_json::Number>,
    elements: Option<serde::de::IgnoredAny>,
    #[serde(rename = "$schema")]
    schema: Option<String>,
    configuration: Option<serde::de::IgnoredAny>,
    #[serde(rename = "specVersion")]
    spec_version: Option<serde::de::IgnoredAny>,
    #[serde(rename = "digitalTwinsGraph")]
    digital_twins_graph: Option<serde::de::IgnoredAny>,
    #[serde(rename = "digitalTwinsModels")]
    digital_twins_models: Option<serde::de::IgnoredAny>,
}

/// Whether the text is plainly a twinscene file: `version` and `elements`, and none of the keys
/// the other formats are told by. Anything else goes through [`detect_value`].
fn plainly_twinscene(text: &str) -> bool {
    serde_json::from_str::<TwinsceneProbe>(text).is_ok_and(|probe| {
        probe.version.is_some()
            && probe.elements.is_some()
            && probe.schema.is_none_or(|schema| !schema.contains("3DScenesConfiguration"))
            && probe.configuration.is_none()
            && probe.spec_version.is_none()
            && probe.digital_twins_graph.is_none()
            && probe.digital_twins_models.is_none()
    })
}

/// Reads a scene file of any [`SourceFormat`] into a [`Scene`], with the options' twins,
/// models and mesh merged in. The scene is valid ([`Scene::problems`] is empty).
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    check_size(text)?;
    let (format, (mut scene, notes)) = if plainly_twinscene(text) {
        (SourceFormat::Twinscene, (twinscene(text)?, Notes::default()))
    } else {
        let value = parse(text)?;
        let format = detect_value(&value)?;
        let imported = match format {
            SourceFormat::Twinscene => {
                drop(value);
                (twinscene(text)?, Notes::default())
            }
            SourceFormat::Adt3dScenes => adt_3dscenes::import(&value, options)?,
            SourceFormat::TwinMaker => twinmaker::import(&value)?,
            SourceFormat::AdtExplorer => {
                let export = AdtExport::from_value(&value)?;
                let mut scene = empty_scene();
                scene.models = flatten_models(export.models);
                scene.twins = export.twins;
                scene.relationships = export.relationships;
                (scene, Notes::default())
            }
        };
        (format, imported)
    };
    if let Some(twins) = options.twins {
        scene.merge_twin_file(twins).map_err(|e| e.in_file("twins file"))?;
    }
    if let Some(models) = options.models {
        scene.merge_models_file(models).map_err(|e| e.in_file("models file"))?;
    }
    if let Some(mesh) = options.mesh {
        scene.mesh = mesh.to_owned();
    }
    let problems = scene.problems();
    if let Some(first) = problems.first() {
        let all = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(ImportError::new(first.pointer.clone(), format!("the imported scene is invalid: {all}")));
    }
    Ok(Imported { format, scene, notes: notes.0 })
}

fn twinscene(text: &str) -> Result<Scene, ImportError> {
    Scene::from_json_str(text).map_err(|error| match error {
        SceneError::Syntax { line, column, message } => {
            ImportError { pointer: String::new(), message, line: Some(line), column: Some(column) }
        }
        SceneError::Invalid(problems) => ImportError::new(
            problems.first().map(|p| p.pointer.clone()).unwrap_or_default(),
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        ),
    })
}

/// A scene with nothing in it yet (read from JSON so that fields added later keep defaults).
pub(crate) fn empty_scene() -> Scene {
    serde_json::from_value(serde_json::json!({"version": SCENE_FORMAT_VERSION, "mesh": "", "elements": []}))
        .expect("the empty scene is valid")
}

/// Interfaces one per item (a document may be an array of interfaces).
fn flatten_models(documents: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(documents.len());
    for document in documents {
        match document {
            Value::Array(items) => out.extend(flatten_models(items)),
            other => out.push(other),
        }
    }
    out
}

impl Scene {
    /// Merges a twins file: an ADT twin array, an ADT query page (`{"value": [...]}`) or an ADT
    /// Explorer export (models, twins and relationships). A twin with an id the scene has
    /// replaces it; a relationship replaces the one with the same source and id; models are
    /// added unless the scene has one with the same `@id`.
    pub fn merge_twin_file(&mut self, text: &str) -> Result<(), ImportError> {
        let value = parse(text)?;
        let (twins, relationships, models) = match &value {
            Value::Object(root)
                if root.contains_key("digitalTwinsGraph") || root.contains_key("digitalTwinsModels") =>
            {
                let export = AdtExport::from_value(&value)?;
                (export.twins, export.relationships, export.models)
            }
            _ => (crate::adt::twins_from_json(text)?, Vec::new(), Vec::new()),
        };
        self.merge_twins(twins, relationships);
        self.merge_models(flatten_models(models));
        Ok(())
    }

    /// Merges a DTDL models file: an array of interfaces, one interface, or an ADT model list
    /// page (`{"value": [{"model": {...}}]}`). Models with an `@id` the scene has are skipped.
    pub fn merge_models_file(&mut self, text: &str) -> Result<(), ImportError> {
        let value = parse(text)?;
        let (items, base): (Vec<&Value>, &str) = match &value {
            Value::Array(items) => (items.iter().collect(), ""),
            Value::Object(page) if page.get("value").is_some_and(Value::is_array) => {
                (page["value"].as_array().into_iter().flatten().collect(), "/value")
            }
            Value::Object(_) => (vec![&value], ""),
            _ => return Err(ImportError::new("", "expected a DTDL interface or an array of them")),
        };
        let mut models = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let item = item.get("model").filter(|m| m.is_object()).unwrap_or(item);
            let pointer =
                if base.is_empty() && !value.is_array() { String::new() } else { format!("{base}/{i}") };
            if item.get("@id").and_then(Value::as_str).is_none() {
                return Err(ImportError::new(pointer, "a DTDL interface needs an \"@id\" string"));
            }
            models.push(item.clone());
        }
        self.merge_models(models);
        Ok(())
    }

    fn merge_twins(&mut self, twins: Vec<Twin>, relationships: Vec<Relationship>) {
        let mut index: std::collections::HashMap<String, usize> =
            self.twins.iter().enumerate().map(|(i, twin)| (twin.id.clone(), i)).collect();
        for twin in twins {
            match index.get(&twin.id) {
                Some(&i) => self.twins[i] = twin,
                None => {
                    index.insert(twin.id.clone(), self.twins.len());
                    self.twins.push(twin);
                }
            }
        }
        for relationship in relationships {
            match self
                .relationships
                .iter_mut()
                .find(|r| r.source == relationship.source && r.id == relationship.id)
            {
                Some(existing) => *existing = relationship,
                None => self.relationships.push(relationship),
            }
        }
    }

    fn merge_models(&mut self, models: Vec<Value>) {
        for model in models {
            let id = model.get("@id").and_then(Value::as_str);
            if id.is_some() && self.models.iter().any(|known| known.get("@id").and_then(Value::as_str) == id)
            {
                continue;
            }
            self.models.push(model);
        }
    }
}

/// Typed access to JSON while importing, with errors located by pointer.
pub(crate) mod read {
    use serde_json::{Map, Value};

    use super::ImportError;

    pub(crate) fn object<'v>(value: &'v Value, pointer: &str) -> Result<&'v Map<String, Value>, ImportError> {
        value
            .as_object()
            .ok_or_else(|| ImportError::new(pointer, format!("expected an object, found {}", kind(value))))
    }

    pub(crate) fn array<'v>(value: &'v Value, pointer: &str) -> Result<&'v [Value], ImportError> {
        value
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| ImportError::new(pointer, format!("expected an array, found {}", kind(value))))
    }

    pub(crate) fn string<'v>(value: &'v Value, pointer: &str) -> Result<&'v str, ImportError> {
        value
            .as_str()
            .ok_or_else(|| ImportError::new(pointer, format!("expected a string, found {}", kind(value))))
    }

    /// A required field.
    pub(crate) fn field<'v>(
        object: &'v Map<String, Value>,
        name: &str,
        pointer: &str,
    ) -> Result<&'v Value, ImportError> {
        object.get(name).ok_or_else(|| ImportError::new(pointer, format!("missing required field {name:?}")))
    }

    /// An optional field that must be a string when present.
    pub(crate) fn opt_string<'v>(
        object: &'v Map<String, Value>,
        name: &str,
        pointer: &str,
    ) -> Result<Option<&'v str>, ImportError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => string(value, &format!("{pointer}/{}", super::pointer_key(name))).map(Some),
        }
    }

    /// An optional field that must be an array when present (absent: empty).
    pub(crate) fn opt_array<'v>(
        object: &'v Map<String, Value>,
        name: &str,
        pointer: &str,
    ) -> Result<&'v [Value], ImportError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(&[]),
            Some(value) => array(value, &format!("{pointer}/{}", super::pointer_key(name))),
        }
    }

    pub(crate) fn kind(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content_and_unknown_content_lists_the_formats() {
        assert_eq!(
            detect(r#"{"version": 1, "mesh": "m", "elements": []}"#).unwrap(),
            SourceFormat::Twinscene
        );
        assert_eq!(detect(r#"{"configuration": {"scenes": []}}"#).unwrap(), SourceFormat::Adt3dScenes);
        assert_eq!(
            detect(r#"{"$schema": "https://x/3DScenesConfiguration.schema.json"}"#).unwrap(),
            SourceFormat::Adt3dScenes
        );
        assert_eq!(
            detect(r#"{"specVersion": "1.0", "nodes": [], "rules": {}}"#).unwrap(),
            SourceFormat::TwinMaker
        );
        assert_eq!(detect(r#"{"digitalTwinsGraph": {}}"#).unwrap(), SourceFormat::AdtExplorer);
        let error = detect(r#"{"hello": 1}"#).unwrap_err();
        for name in ["twinscene", "adt-3dscenes", "twinmaker", "adt-explorer"] {
            assert!(error.message.contains(name), "{error}");
        }
        let error = detect("{\n  \"version\": 1,\n  \"elements\": [").unwrap_err();
        assert_eq!((error.line, error.column), (Some(3), Some(15)));
        assert!(error.to_string().starts_with("line 3, column 15: "), "{error}");
    }

    #[test]
    fn the_quick_twinscene_check_leaves_mixed_documents_to_full_detection() {
        let schema =
            r#"{"$schema": "../schema/scene.schema.json", "version": 1, "mesh": "m.glb", "elements": []}"#;
        assert!(plainly_twinscene(schema));
        assert_eq!(import(schema, &ImportOptions::default()).unwrap().format, SourceFormat::Twinscene);
        // A 3D Scenes configuration that happens to have `version` and `elements` stays one.
        for mixed in [
            r#"{"version": 1, "elements": [], "configuration": {"scenes": []}}"#,
            r#"{"version": 1, "elements": [], "$schema": "https://x/3DScenesConfiguration.schema.json"}"#,
            r#"{"version": "1", "elements": []}"#,
        ] {
            assert!(!plainly_twinscene(mixed), "{mixed}");
        }
        let mixed = import(
            r#"{"version": 1, "elements": [], "configuration": {"scenes": []}}"#,
            &ImportOptions::default(),
        );
        assert!(
            !matches!(mixed, Ok(ref imported) if imported.format == SourceFormat::Twinscene),
            "{mixed:?}"
        );
        let broken =
            import("{\n  \"version\": 1,\n  \"elements\": [", &ImportOptions::default()).unwrap_err();
        assert_eq!((broken.line, broken.column), (Some(3), Some(15)), "syntax errors keep their position");
    }

    #[test]
    fn format_names_round_trip() {
        for format in SourceFormat::ALL {
            assert_eq!(format.to_string().parse::<SourceFormat>().unwrap(), format);
        }
        assert!("gltf".parse::<SourceFormat>().unwrap_err().message.contains("adt-explorer"));
    }

    #[test]
    fn files_over_the_limit_are_refused_before_parsing() {
        let huge = " ".repeat(MAX_SCENE_BYTES + 1);
        let error = import(&huge, &ImportOptions::default()).unwrap_err();
        assert!(error.message.contains("limited to"), "{error}");
    }

    #[test]
    fn twinscene_scenes_import_unchanged_with_options_applied() {
        let text =
            r#"{"version": 1, "mesh": "m.glb", "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}]}"#;
        let imported = import(
            text,
            &ImportOptions {
                mesh: Some("local.glb"),
                twins: Some(r#"[{"$dtId": "t", "$metadata": {"$model": "dtmi:x:T;1"}, "a": 1}]"#),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(imported.format, SourceFormat::Twinscene);
        assert!(imported.notes.is_empty());
        assert_eq!(imported.scene.mesh, "local.glb");
        assert_eq!(imported.scene.twins[0].id, "t");
        let invalid = import(&text.replace("[\"n\"]", "[]"), &ImportOptions::default()).unwrap_err();
        assert_eq!(invalid.pointer, "/elements/0/nodes");
    }

    #[test]
    fn twin_files_merge_by_id_in_all_three_shapes() {
        let mut scene = empty_scene();
        scene.merge_twin_file(r#"[{"$dtId": "a", "$metadata": {"$model": "dtmi:x:T;1"}, "v": 1}]"#).unwrap();
        scene
            .merge_twin_file(r#"{"value": [{"$dtId": "a", "$metadata": {"$model": "dtmi:x:T;1"}, "v": 2}]}"#)
            .unwrap();
        assert_eq!(scene.twins.len(), 1);
        assert_eq!(scene.twins[0].properties["v"], 2);
        scene
            .merge_twin_file(
                r#"{"digitalTwinsGraph": {"digitalTwins": [{"$dtId": "b", "$metadata": {"$model": "dtmi:x:T;1"}}],
                "relationships": [{"$relationshipId": "r", "$sourceId": "a", "$targetId": "b", "$relationshipName": "has"}]},
                "digitalTwinsModels": [{"@id": "dtmi:x:T;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2"}]}"#,
            )
            .unwrap();
        assert_eq!((scene.twins.len(), scene.relationships.len(), scene.models.len()), (2, 1, 1));
        scene
            .merge_models_file(
                r#"[{"@id": "dtmi:x:T;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2"}]"#,
            )
            .unwrap();
        assert_eq!(scene.models.len(), 1, "a model with a known @id is not added twice");
        assert_eq!(scene.merge_models_file(r#"[{"@type": "Interface"}]"#).unwrap_err().pointer, "/0");
        assert_eq!(scene.merge_twin_file(r#"[{"$dtId": "x"}]"#).unwrap_err().pointer, "/0");
        assert!(scene.merge_twin_file("[").unwrap_err().line.is_some());
    }
}
