//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries and by plain tests that run
//! them over the seed corpus (so that they keep compiling and passing without libFuzzer).
//! Each body feeds outside input to one parser and checks that nothing panics and that a
//! refused update leaves the state unchanged.

use std::sync::Arc;

use serde_json::json;
use twinscene_core::adt::{AdtExport, relationships_from_json, twins_from_json};
use twinscene_core::dtdl::ModelSet;
use twinscene_core::expression::{Expression, Scope};
use twinscene_core::graph::TwinGraph;
use twinscene_core::import::{ImportOptions, SourceFormat, import, scene_names};
use twinscene_core::patch::parse_patch;
use twinscene_core::runtime::SceneRuntime;
use twinscene_core::scene::Scene;
use twinscene_core::twin::{Relationship, Twin};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A small graph with nested values, relationships and write times to evaluate against.
fn graph() -> TwinGraph {
    let mut floor = Twin::new("floor", "dtmi:fuzz:Floor;1");
    floor.properties =
        serde_json::from_value(json!({"name": "F1", "hvac": {"mode": "heat", "setpoints": [19, 21.5]}}))
            .unwrap_or_default();
    let mut room = Twin::new("room", "dtmi:fuzz:Room;1");
    room.properties =
        serde_json::from_value(json!({"temperature": 21.5, "alarm": true, "label": "Kitchen", "n": null}))
            .unwrap_or_default();
    room.last_update_time.insert("temperature", "2026-01-01T00:00:00Z".into());
    let contains = Relationship {
        id: "c".into(),
        source: "floor".into(),
        target: "room".into(),
        name: "contains".into(),
        properties: Default::default(),
    };
    TwinGraph::new([floor, room], vec![contains])
}

/// The expression parser and evaluator: parse as an expression and as text, evaluate what
/// parses on two twins, with and without a clock.
pub fn expression(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let graph = graph();
    let aliases = [("other".to_owned(), "room".to_owned())].into_iter().collect();
    for parsed in [Expression::parse(source), Expression::parse_text(source)] {
        let Ok(expression) = parsed else { continue };
        for primary in ["floor", "room", "missing"] {
            for now_millis in [None, Some(1_767_225_600_000.0)] {
                let scope = Scope {
                    aliases: Some(&aliases),
                    now_millis,
                    ..Scope::new(&graph).with_primary_id(primary)
                };
                let _ = expression.evaluate_json(&scope);
                let _ = expression.evaluate_text(&scope);
            }
        }
    }
}

/// The DTDL parser, and type checks against whatever models it accepts.
pub fn dtdl(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let Ok(models) = ModelSet::from_json_str(source) else { return };
    let samples =
        [json!(1), json!(2.5), json!("x"), json!(true), json!({"a": 1, "$metadata": {}}), json!([1])];
    for interface in models.interfaces() {
        for name in interface
            .properties
            .keys()
            .chain(interface.components.keys())
            .chain(["missing".to_owned()].iter())
        {
            for sample in &samples {
                let _ = models.check_property(&interface.id, name, Some(sample));
            }
        }
    }
}

/// Twin, relationship and ADT Explorer export import, and a graph built from what imports.
pub fn twin_import(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let twins = twins_from_json(source).unwrap_or_default();
    let relationships = relationships_from_json(source).unwrap_or_default();
    for twin in &twins {
        let written = twin.to_adt_json();
        assert_eq!(Twin::from_adt_json(&written).as_ref(), Ok(twin), "a twin must survive a round trip");
    }
    let _ = TwinGraph::new(twins, relationships);
    if let Ok(export) = AdtExport::from_json_str(source) {
        let reread = AdtExport::from_value(&export.to_json());
        assert_eq!(reread.as_ref().ok(), Some(&export), "an export must survive a round trip");
        if let Ok(graph) = export.graph() {
            let _ = graph.relationships();
        }
    }
}

const MODELS: &str = r#"[
  {"@id": "dtmi:fuzz:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3", "contents": [
    {"@type": "Property", "name": "temperature", "schema": "double"},
    {"@type": "Property", "name": "alarm", "schema": "boolean"},
    {"@type": "Property", "name": "label", "schema": "string"},
    {"@type": "Property", "name": "n", "schema": "integer"},
    {"@type": "Property", "name": "hvac", "schema": {"@type": "Object", "fields": [
      {"name": "mode", "schema": "string"}, {"name": "setpoints", "schema": {"@type": "Array", "elementSchema": "double"}}]}}]}
]"#;

const SCENE: &str = r##"{"version": 1, "mesh": "m.glb",
  "twins": [{"$dtId": "room", "$metadata": {"$model": "dtmi:fuzz:Room;1"}, "temperature": 20, "alarm": false}],
  "elements": [{"id": "room", "twin": "room", "nodes": ["R"]}],
  "behaviors": [{"id": "b", "elements": "all", "visuals": [
    {"type": "color", "expression": "PrimaryTwin.temperature", "ranges": [{"min": null, "max": 22, "color": "#00f"}, {"min": 22, "max": null, "color": "#f00"}]},
    {"type": "valueRanges", "kind": "categorical", "expression": "PrimaryTwin.alarm", "ranges": [{"values": [true], "icon": "Alarm", "label": "${PrimaryTwin.label}"}]}]}]}"##;

/// JSON Patch on a twin: through the typed graph (a refused patch leaves the twin exactly as it
/// was; an accepted one changes its etag) and through the runtime (styles stay consistent with
/// a full recomputation).
pub fn json_patch(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let Ok(patch) = parse_patch(source) else { return };
    let mut graph = graph();
    if let Ok(models) = ModelSet::from_json_str(MODELS) {
        graph.set_models(Arc::new(models));
    }
    let before = graph.twin("room").cloned();
    match graph.apply_patch("room", &patch, "2026-01-01T00:00:00Z") {
        Ok(twin) => {
            assert_ne!(Some(&twin.etag), before.as_ref().map(|t| &t.etag), "every write changes the etag")
        }
        Err(_) => assert_eq!(graph.twin("room"), before.as_ref(), "a refused patch changes nothing"),
    }
    let Ok(scene) = Scene::from_json_str(SCENE) else { return };
    let Ok(mut runtime) = SceneRuntime::new(scene.clone()) else { return };
    if runtime.apply_patch("room", &patch, "t").is_ok() {
        let twins: Vec<Twin> = runtime.graph().twins().cloned().collect();
        if let Ok(full) = SceneRuntime::new(Scene { twins, ..scene }) {
            assert_eq!(runtime.styles(), full.styles(), "incremental styles equal a full recomputation");
        }
    }
}

/// One peer scene file through [`import`]: whatever it answers, the scene it gives is valid and
/// loads into a runtime; notes and errors have pointers into the file.
fn import_any(source: &str, expected: SourceFormat) {
    let twins = r#"[{"$dtId": "room1", "$metadata": {"$model": "dtmi:fuzz:Room;1"}, "temperature": 25}]"#;
    for options in [
        ImportOptions::default(),
        ImportOptions { twins: Some(twins), mesh: Some("m.glb"), ..Default::default() },
    ] {
        match import(source, &options) {
            Ok(imported) => {
                assert!(imported.scene.problems().is_empty(), "an imported scene is valid");
                assert!(imported.notes.iter().all(|n| n.pointer.is_empty() || n.pointer.starts_with('/')));
                if imported.format == expected {
                    let _ = SceneRuntime::new(imported.scene);
                }
            }
            Err(error) => assert!(error.pointer.is_empty() || error.pointer.starts_with('/')),
        }
    }
    if let Ok(names) = scene_names(source) {
        for (id, _) in names.iter().take(4) {
            let _ = import(source, &ImportOptions { scene: Some(id), ..Default::default() });
        }
    }
}

/// ADT 3D Scenes configurations through the importer.
pub fn import_adt_3dscenes(data: &[u8]) {
    let Some(source) = text(data) else { return };
    import_any(source, SourceFormat::Adt3dScenes);
}

/// TwinMaker scenes through the importer (and the Jexl translator on each statement).
pub fn import_twinmaker(data: &[u8]) {
    let Some(source) = text(data) else { return };
    import_any(source, SourceFormat::TwinMaker);
    let _ = twinscene_core::import::jexl::translate(source, &|name| Some(format!("PrimaryTwin.{name}")));
}

/// Format detection: answers or errs, and agrees with import on the format.
pub fn detect(data: &[u8]) {
    let Some(source) = text(data) else { return };
    if let (Ok(format), Ok(imported)) =
        (twinscene_core::import::detect(source), import(source, &ImportOptions::default()))
    {
        assert_eq!(format, imported.format, "detect and import agree");
    }
}

/// The live protocol's reader: the delta fast path reads every message serde reads, to the
/// same value.
pub fn live_message(data: &[u8]) {
    let Some(source) = text(data) else { return };
    if let Ok(general) = serde_json::from_str::<twinscene_core::live::ServerMessage>(source) {
        let fast = twinscene_core::live::ServerMessage::from_json(source);
        assert_eq!(fast.ok(), Some(general), "the fast path reads what serde reads");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Runs a target over its seed corpus (what cargo fuzz starts from).
    fn run_corpus(target: &str, body: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            body(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn expression_seeds() {
        run_corpus("expression", super::expression);
    }

    #[test]
    fn dtdl_seeds() {
        run_corpus("dtdl", super::dtdl);
    }

    #[test]
    fn twin_import_seeds() {
        run_corpus("twin_import", super::twin_import);
    }

    #[test]
    fn import_adt_3dscenes_seeds() {
        run_corpus("import_adt_3dscenes", super::import_adt_3dscenes);
    }

    #[test]
    fn import_twinmaker_seeds() {
        run_corpus("import_twinmaker", super::import_twinmaker);
    }

    #[test]
    fn detect_seeds() {
        run_corpus("detect", super::detect);
    }

    #[test]
    fn live_message_seeds() {
        run_corpus("live_message", super::live_message);
    }

    #[test]
    fn json_patch_seeds() {
        run_corpus("json_patch", super::json_patch);
    }
}
