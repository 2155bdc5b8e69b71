//! `twinscene validate` and `twinscene schema`, run as the real binary: exit codes, positions,
//! near misses, type checks against DTDL models, JSON output, peer formats, and the checked-in
//! JSON Schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// Runs `twinscene ARGS`: (exit code, stdout, stderr).
fn twinscene(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_twinscene")).args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code().unwrap(), text(output.stdout), text(output.stderr))
}

fn demo() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("scenes/demo.json")).unwrap()).unwrap()
}

/// Writes `scene` (its mesh made absolute, so that it resolves from anywhere) to a temp file.
fn write_scene(dir: &tempfile::TempDir, name: &str, mut scene: Value) -> String {
    let mesh = root().join("assets/duplex.glb");
    if scene["mesh"] == "../assets/duplex.glb" {
        scene["mesh"] = mesh.to_str().unwrap().into();
    }
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&scene).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `:line:column:` of the first `needle` in `text` (ASCII).
fn position(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap();
    format!(
        ":{}:{}:",
        text[..at].matches('\n').count() + 1,
        at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1
    )
}

#[test]
fn the_demo_scene_is_valid_against_its_mesh() {
    let scene = root().join("scenes/demo.json");
    let (code, stdout, _) = twinscene(&["validate", scene.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("valid (twinscene): 0 errors"), "{stdout}");
    assert!(stdout.contains("mesh node names checked against"), "{stdout}");
}

#[test]
fn a_misspelled_node_name_is_an_error_with_near_misses() {
    let dir = tempfile::tempdir().unwrap();
    let mut scene = demo();
    let node = scene["elements"][0]["nodes"][0].as_str().unwrap().to_owned();
    let typo = format!("{}X", &node[..node.len() - 1]);
    scene["elements"][0]["nodes"][0] = typo.clone().into();
    let path = write_scene(&dir, "typo.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path]);
    assert_eq!(code, 1, "{stdout}");
    let line = stdout.lines().find(|line| line.contains("/elements/0/nodes/0")).expect(&stdout);
    assert!(line.contains(": error: "), "{line}");
    assert!(line.contains(&format!("node {typo:?}")), "{line}");
    assert!(line.contains(&format!("did you mean {node:?}")), "{line}");
    // file:line:col: the position of the node name in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find(&format!("\"{typo}\"")).unwrap();
    let line_number = text[..at].matches('\n').count() + 1;
    assert!(line.starts_with(&format!("{path}:{line_number}:")), "{line}");
}

#[test]
fn truncated_json_is_reported_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.json");
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"elements\": [\n    {\"id\": \"a\", \"nodes\": [\"n\",")
        .unwrap();
    let path = path.to_str().unwrap();
    let (code, stdout, _) = twinscene(&["validate", path]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with(&format!("{path}:4:")), "{stdout}");
    // The pointer of the value being read where the text breaks off.
    assert!(
        stdout.contains("error: /elements/0/nodes: not valid JSON: EOF while parsing a value\n"),
        "{stdout}"
    );
}

#[test]
fn wrong_types_and_unknown_fields_carry_pointer_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut scene = demo();
    scene["version"] = "1".into();
    let path = write_scene(&dir, "type.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path]);
    assert_eq!(code, 1, "{stdout}");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = position(&text, "\"1\"");
    assert!(
        stdout.starts_with(&format!("{path}{at} error: /version: invalid type: string \"1\"")),
        "{stdout}"
    );

    let mut scene = demo();
    scene["behaviors"][0]["visuals"][0]["colour"] = "#fff".into();
    let path = write_scene(&dir, "field.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path]);
    assert_eq!(code, 1, "{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(first.contains("error: /behaviors/0/visuals/0/colour: unknown field `colour`"), "{first}");
    let at = position(&std::fs::read_to_string(&path).unwrap(), "\"colour\"");
    assert!(first.contains(&at), "{first} at {at}");
}

#[test]
fn an_unknown_twin_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut scene = demo();
    scene["elements"][1]["twin"] = "Room-Z999".into();
    let path = write_scene(&dir, "twin.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path]);
    assert_eq!(code, 0, "{stdout}");
    let line = stdout.lines().find(|line| line.contains("/elements/1/twin")).expect(&stdout);
    assert!(line.contains("warning: /elements/1/twin: twin \"Room-Z999\" not found"), "{line}");
}

#[test]
fn property_types_are_checked_against_dtdl_models() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.json");
    let room = json!([{"@id": "dtmi:test:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
        "contents": [{"@type": "Property", "name": "temperature", "schema": "double"},
                     {"@type": "Property", "name": "status", "schema": "string"}]}]);
    std::fs::write(&models, room.to_string()).unwrap();
    let scene = json!({"version": 1, "mesh": "../assets/duplex.glb",
        "twins": [{"$dtId": "R1", "$metadata": {"$model": "dtmi:test:Room;1"}, "temperature": 20, "status": "ok"}],
        "elements": [{"id": "r1", "twin": "R1", "nodes": [demo()["elements"][0]["nodes"][0]]}],
        "behaviors": [{"id": "b", "elements": "all", "visuals": [
            {"type": "visibility", "expression": "PrimaryTwin.status > 20"},
            {"type": "color", "expression": "PrimaryTwin.temprature", "ranges": [{"min": 0, "max": 1, "color": "#fff"}]}]}]});
    let path = write_scene(&dir, "typed.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path, "--models", models.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("error: /behaviors/0/visuals/0/expression: compares PrimaryTwin.status (a string) and 20 (a number)"),
        "{stdout}"
    );
    assert!(stdout.contains("has no property \"temprature\" (did you mean \"temperature\"?)"), "{stdout}");
    // The same models given as a directory.
    let (code, stdout, _) = twinscene(&["validate", &path, "--models", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    // Without models, types come from twin values: warnings only.
    let (code, stdout, _) = twinscene(&["validate", &path]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("warning: /behaviors/0/visuals/0/expression: compares"), "{stdout}");
}

#[test]
fn json_output_parses_and_lists_problems() {
    let dir = tempfile::tempdir().unwrap();
    let mut scene = demo();
    scene["elements"][1]["twin"] = "Room-Z999".into();
    scene["elements"][0]["nodes"][0] = "nope".into();
    let path = write_scene(&dir, "both.json", scene);
    let (code, stdout, _) = twinscene(&["validate", &path, "--format", "json"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["format"], "twinscene");
    let error = &report["errors"][0];
    assert_eq!(error["pointer"], "/elements/0/nodes/0");
    assert_eq!(error["severity"], "error");
    assert!(error["line"].as_u64().unwrap() > 1 && error["column"].as_u64().unwrap() > 1);
    assert_eq!(report["warnings"][0]["pointer"], "/elements/1/twin");
}

#[test]
fn a_missing_file_exits_2() {
    let (code, stdout, stderr) = twinscene(&["validate", "no/such/scene.json"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty() && stderr.contains("cannot read no/such/scene.json"), "{stderr}");
    let (code, stdout, _) = twinscene(&["validate", "no/such/scene.json", "--format", "json"]);
    assert_eq!(code, 2);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["valid"], false);
    // JSON, but no scene format.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.json");
    std::fs::write(&path, r#"{"hello": "world"}"#).unwrap();
    let (code, _, stderr) = twinscene(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a scene file twinscene reads"), "{stderr}");
}

#[test]
fn peer_formats_are_validated_with_their_import_notes() {
    let tank = fixture("peer/twinmaker/CookieFactoryWaterTank.scene.json");
    let (code, stdout, _) = twinscene(&["validate", tank.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("valid (twinmaker)"), "{stdout}");
    assert!(stdout.contains("mesh node names checked against"), "{stdout}");
    // Import notes point into the original file, with line and column.
    let note = stdout.lines().find(|line| line.contains("not carried over")).expect(&stdout);
    assert!(note.contains(".scene.json:") && note.contains(": warning: /"), "{note}");

    let config = fixture("peer/adt-3dscenes/3DScenesConfiguration.json");
    let twins = fixture("peer/adt-3dscenes/MockTwinData.json");
    let (code, stdout, _) = twinscene(&[
        "validate",
        config.to_str().unwrap(),
        "--scene",
        "Contoso Factory",
        "--twins",
        twins.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("[converted scene \"Contoso Factory\"]"), "{stdout}");
    assert!(stdout.contains("is a URL: node names are not checked"), "{stdout}");
    // Every scene of the configuration by default.
    let (code, stdout, _) = twinscene(&["validate", config.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let scenes: std::collections::BTreeSet<&str> =
        report["warnings"].as_array().unwrap().iter().filter_map(|w| w["scene"].as_str()).collect();
    assert!(scenes.len() >= 2, "{scenes:?}");
}

#[test]
fn the_checked_in_schema_is_up_to_date() {
    let checked_in = std::fs::read_to_string(root().join("schema/scene.schema.json")).unwrap();
    let (code, generated, _) = twinscene(&["schema"]);
    assert_eq!(code, 0);
    assert!(
        checked_in == generated,
        "schema/scene.schema.json is out of date; regenerate it with \
         `cargo run -p twinscene-server -- schema -o schema/scene.schema.json`"
    );
}

#[test]
fn the_schema_accepts_the_demo_and_refuses_unknown_fields() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schema/scene.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let scene = demo();
    let errors: Vec<String> =
        validator.iter_errors(&scene).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
    for (pointer, field) in
        [("", "colour"), ("/elements/0", "twinn"), ("/behaviors/0/visuals/0", "exprssion")]
    {
        let mut wrong = scene.clone();
        wrong.pointer_mut(pointer).unwrap().as_object_mut().unwrap().insert(field.into(), 1.into());
        assert!(!validator.is_valid(&wrong), "{pointer}/{field} should be refused");
    }
    let mut wrong = scene.clone();
    wrong["behaviors"][0]["visuals"][0]["ranges"][0]["color"] = "red".into();
    assert!(!validator.is_valid(&wrong), "colors are #rgb or #rrggbb");
    // Peer-format conversions are valid twinscene scenes for the schema too.
    let tank = fixture("peer/twinmaker/CookieFactoryWaterTank.scene.json");
    let text = std::fs::read_to_string(tank).unwrap();
    let imported = twinscene_core::import::import(&text, &Default::default()).unwrap();
    let value = serde_json::to_value(&imported.scene).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
}
