//! `twinscene import`, run as the real binary: each peer sample converts to a scene that
//! `twinscene validate` accepts and that reads back as the same scene; notes go to stderr;
//! outputs are not overwritten by accident; the format named must be the file's.

use std::path::{Path, PathBuf};
use std::process::Command;

use twinscene_core::import::{ImportOptions, import};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peer").join(path)
}

fn twinscene(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_twinscene")).args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code().unwrap(), text(output.stdout), text(output.stderr))
}

#[test]
fn peer_files_round_trip_through_import_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("adt-3dscenes", "adt-3dscenes/3DScenesConfiguration.json", &["--scene", "Contoso Factory"]),
        ("adt-3dscenes", "adt-3dscenes/TruckAndMachinesConfig.json", &[]),
        ("twinmaker", "twinmaker/CookieFactoryWaterTank.scene.json", &[]),
        // Its model (PALLET_JACK.glb) is not among the fixtures: point at it by URL.
        ("twinmaker", "twinmaker/overlay.scene.json", &["--mesh", "https://example.com/PALLET_JACK.glb"]),
        ("adt-explorer", "adt-explorer/small-export.json", &[]),
    ];
    for (i, (format, file, extra)) in cases.iter().enumerate() {
        let input = fixture(file);
        let output = dir.path().join(format!("scene-{i}.json"));
        let mut args = vec!["import", format, input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, stderr) = twinscene(&args);
        assert_eq!(code, 0, "{file}: {stderr}");
        assert!(stderr.contains("wrote the scene from"), "{stderr}");

        // The written scene is valid (warnings allowed: unreachable meshes, missing twins).
        let (code, stdout, _) = twinscene(&["validate", output.to_str().unwrap()]);
        assert_eq!(code, 0, "{file}: {stdout}");
        assert!(stdout.contains("valid (twinscene)"), "{stdout}");

        // Read back as a twinscene scene, it is the scene the import made.
        let written = std::fs::read_to_string(&output).unwrap();
        let reread = import(&written, &ImportOptions::default()).unwrap();
        assert_eq!(reread.format.name(), "twinscene");
        assert!(reread.notes.is_empty());
        let original = std::fs::read_to_string(&input).unwrap();
        let option = |name: &str| extra.iter().position(|arg| *arg == name).map(|i| extra[i + 1]);
        let options =
            ImportOptions { scene: option("--scene"), mesh: option("--mesh"), ..Default::default() };
        let mut expected = import(&original, &options).unwrap().scene;
        assert!(reread.scene.schema.is_some(), "written scenes name their schema");
        expected.schema = reread.scene.schema.clone();
        // A relative mesh now points from the output's directory to the same file.
        expected.mesh = reread.scene.mesh.clone();
        assert_eq!(reread.scene, expected, "{file}");
    }
}

#[test]
fn notes_on_what_was_not_carried_over_go_to_stderr_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("tank.json");
    let input = fixture("twinmaker/CookieFactoryWaterTank.scene.json");
    let (code, stdout, stderr) =
        twinscene(&["import", "twinmaker", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let note = stderr.lines().find(|line| line.contains("not carried over")).expect(&stderr);
    assert!(note.starts_with(&format!("{}:", input.display())), "{note}");
    assert!(note.split(':').nth(1).unwrap().parse::<usize>().is_ok(), "a line number: {note}");
}

#[test]
fn an_existing_output_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.json");
    std::fs::write(&output, "keep me").unwrap();
    let input = fixture("adt-explorer/small-export.json");
    let args = ["import", "adt-explorer", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
    let (code, _, stderr) = twinscene(&args);
    assert_eq!(code, 2);
    assert!(stderr.contains("exists; pass --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "keep me");
    let (code, _, stderr) = twinscene(&[&args[..], &["--force"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(std::fs::read_to_string(&output).unwrap().contains("\"Room-1\""));
}

#[test]
fn the_named_format_must_match_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.json");
    let input = fixture("twinmaker/overlay.scene.json");
    let (code, _, stderr) =
        twinscene(&["import", "adt-3dscenes", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is a twinmaker file, not adt-3dscenes"), "{stderr}");
    assert!(!output.exists());
    let (code, _, stderr) = twinscene(&["import", "revit", input.to_str().unwrap(), "-o", "x.json"]);
    assert_eq!(code, 2, "clap refuses an unknown format: {stderr}");
    assert!(stderr.contains("unknown format \"revit\""), "{stderr}");
}

#[test]
fn twins_models_and_mesh_options_go_into_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("contoso.json");
    let config = fixture("adt-3dscenes/3DScenesConfiguration.json");
    let twins = fixture("adt-3dscenes/MockTwinData.json");
    let models = fixture("adt-3dscenes/MockModelData.json");
    let (code, _, stderr) = twinscene(&[
        "import",
        "adt-3dscenes",
        config.to_str().unwrap(),
        "--scene",
        "Contoso Factory",
        "--twins",
        twins.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "--mesh",
        "factory.glb",
        "-o",
        output.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let scene: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(scene["mesh"], "factory.glb");
    assert_eq!(scene["twins"].as_array().unwrap().len(), 16);
    assert!(!scene["models"].as_array().unwrap().is_empty());
    // Validation then checks expressions against the models; the mock data's quirks (a car in
    // the pasteurization machines' list, the missing twin "BoxA") are warnings.
    let (code, stdout, _) = twinscene(&["validate", output.to_str().unwrap()]);
    assert!(stdout.contains("type-checked against"), "{stdout}");
    assert!(stdout.contains("cannot read mesh"), "{stdout}");
    assert_eq!(code, 1, "the mesh of a twinscene scene must exist: {stdout}");
}
