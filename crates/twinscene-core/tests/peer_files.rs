//! Peers' scene files loaded unchanged (tests/fixtures/peer, see ATTRIBUTION.md there): every
//! scene of every ADT 3D Scenes configuration and both TwinMaker scenes import, and evaluated
//! with the sample twins they give the looks the peer tool would. The expected looks below were
//! worked out by hand from the configurations and the twin values, not by running the code.

use proptest::prelude::*;
use serde_json::json;
use twinscene_core::import::{
    ImportOptions, Imported, MAX_SCENE_BYTES, SourceFormat, detect, import, scene_names,
};
use twinscene_core::runtime::SceneRuntime;
use twinscene_core::scene::Severity;

fn fixture(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peer").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const CONFIGS: [(&str, &str, &str); 3] = [
    (
        "adt-3dscenes/3DScenesConfiguration.json",
        "adt-3dscenes/MockTwinData.json",
        "adt-3dscenes/MockModelData.json",
    ),
    (
        "adt-3dscenes/TruckAndMachinesConfig.json",
        "adt-3dscenes/MockTwinData.json",
        "adt-3dscenes/MockModelData.json",
    ),
    (
        "adt-3dscenes/DemoEnvsConfig.json",
        "adt-3dscenes/DemoEnvsTwinData.json",
        "adt-3dscenes/DemoEnvsModelData.json",
    ),
];

fn import_scene(config: &str, scene: &str, twins: &str, models: Option<&str>) -> Imported {
    let text = fixture(config);
    let twins = fixture(twins);
    let models = models.map(fixture);
    import(
        &text,
        &ImportOptions { scene: Some(scene), twins: Some(&twins), models: models.as_deref(), mesh: None },
    )
    .unwrap_or_else(|e| panic!("{config} / {scene}: {e}"))
}

/// One element's expected look: (display name, twin found, mesh color, badges as (icon, color,
/// label)).
type Expected<'a> = (&'a str, bool, Option<&'a str>, &'a [(&'a str, &'a str, &'a str)]);

fn check(config: &str, scene: &str, twins: &str, expected: &[Expected<'_>]) {
    let imported = import_scene(config, scene, twins, None);
    let runtime = SceneRuntime::new(imported.scene).unwrap();
    assert_eq!(runtime.elements().len(), expected.len(), "{scene}: element count");
    for (name, found, color, badges) in expected {
        let index = runtime
            .elements()
            .iter()
            .position(|e| e.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{scene}: no element {name}"));
        let style = runtime.style(index);
        assert_eq!(style.twin_found, *found, "{scene} / {name}: twin found");
        assert_eq!(style.color.map(|c| c.to_string()).as_deref(), *color, "{scene} / {name}: color");
        let actual: Vec<(String, String, String)> = style
            .badges
            .iter()
            .map(|b| {
                (
                    b.icon.clone(),
                    b.color.map(|c| c.to_string()).unwrap_or_default(),
                    b.label.clone().unwrap_or_default(),
                )
            })
            .collect();
        let wanted: Vec<(String, String, String)> =
            badges.iter().map(|(i, c, l)| (i.to_string(), c.to_string(), l.to_string())).collect();
        assert_eq!(actual, wanted, "{scene} / {name}: badges");
    }
}

#[test]
fn every_scene_of_every_config_imports_with_twins_and_models_and_runs() {
    for (config, twins, models) in CONFIGS {
        let text = fixture(config);
        assert_eq!(detect(&text).unwrap(), SourceFormat::Adt3dScenes);
        let names = scene_names(&text).unwrap();
        assert!(!names.is_empty());
        for (id, name) in &names {
            for chosen in [id, name] {
                let imported = import_scene(config, chosen, twins, Some(models));
                assert_eq!(imported.scene.name.as_deref(), Some(name.as_str()));
                assert!(imported.scene.problems().is_empty());
                assert!(!imported.scene.models.is_empty());
                SceneRuntime::new(imported.scene).unwrap_or_else(|e| panic!("{config} / {name}: {e}"));
            }
        }
        // Without a choice: the first scene, with a note when there are others.
        let first = import(&text, &ImportOptions::default()).unwrap();
        assert_eq!(first.scene.name.as_deref(), Some(names[0].1.as_str()));
        assert_eq!(
            first.notes.iter().any(|n| n.pointer == "/configuration/scenes"),
            names.len() > 1,
            "{config}: {:?}",
            first.notes
        );
    }
    assert_eq!(
        scene_names(&fixture(CONFIGS[0].0)).unwrap(),
        [
            ("f7053e7537048e03be4d1e6f8f93aa8a".to_owned(), "Contoso Factory".to_owned()),
            ("D258513E-44D8-4041-9551-F5FEDE1BBCC9".to_owned(), "Luciana 1".to_owned()),
            ("f7053e7537048e03be4d1e6f8f900000".to_owned(), "Globe".to_owned()),
        ]
    );
    let error =
        import(&fixture(CONFIGS[0].0), &ImportOptions { scene: Some("Atlantis"), ..Default::default() })
            .unwrap_err();
    assert!(error.message.contains("\"Contoso Factory\""), "{error}");
}

/// 3DScenesConfiguration.json, scene "Contoso Factory", MockTwinData.json. Behaviors apply in the
/// configuration's order: OutFlow (0..100 blue, 100..200 green, 200.. yellow, 220.. Warning
/// badge), Temp (0..12 blue, 12..100 green, 100.. yellow; >150 hot badge; <15 cold badge), Salt
/// Flow (InFlow 0..20 blue, 20..100 green, 100..500 #d6940f; OutFlow >120 SpeedHigh badge).
#[test]
fn contoso_factory_looks_as_in_3d_scenes() {
    check(
        CONFIGS[0].0,
        "Contoso Factory",
        CONFIGS[0].1,
        &[
            // OutFlow 50 → blue, then Temperature 150 → yellow (later behavior wins); 150 > 150 is false.
            ("PasteurizationMachine_A02", true, Some("#fee440"), &[]),
            // OutFlow 150 → green, Temperature 250 → yellow and too hot.
            ("PasteurizationMachine_A03", true, Some("#fee440"), &[("Frigid", "#d6940f", "Temp too hot")]),
            ("Xenia's Boiler", true, Some("#fee440"), &[("Frigid", "#d6940f", "Temp too hot")]),
            // OutFlow 250 → yellow mesh and the Warning badge; Temperature 50 → green wins the mesh.
            (
                "PasteurizationMachine_A01",
                true,
                Some("#26c485"),
                &[("Warning", "#c32f27", "Outflow rate too high")],
            ),
            // No Temperature property: no value anywhere.
            ("Tesla", true, None, &[]),
            ("SaltMachine_C1", true, Some("#26c485"), &[]),
            (
                "Amy's Salt Machine",
                true,
                Some("#26c485"),
                &[("SpeedHigh", "#a209de", "OutFlow rate too high")],
            ),
            ("SaltMachine_C0", true, Some("#d6940f"), &[]),
        ],
    );
}

/// TruckAndMachinesConfig.json, MockTwinData.json: the tank reads its alias temperatureTag
/// (PasteurizationMachine_A01: OutFlow 250, Temperature 50); box1's twin BoxA is missing.
#[test]
fn truck_and_boxes_looks_as_in_3d_scenes() {
    check(
        CONFIGS[1].0,
        "TruckAndBoxes1",
        CONFIGS[1].1,
        &[
            // SaltMachine_C1 OutFlow 100 is in no tire range; it has no temperatureTag alias.
            ("leftWheels", true, None, &[]),
            // temperatureTag.OutFlow 250 ≥ 100 → blue; temperatureTag.Temperature 50 > 25 → hot badge.
            ("tank", true, Some("#0000ff"), &[("heart", "#00ff00", "SaltMachine_C1 is too hot!")]),
            ("box1", false, None, &[]),
        ],
    );
    let imported = import_scene(CONFIGS[1].0, "TruckAndBoxes1", CONFIGS[1].1, None);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.message.contains("\"leftWheels\" has no twin alias \"temperatureTag\"")),
        "{:?}",
        imported.notes
    );
}

/// DemoEnvsConfig.json, DemoEnvsTwinData.json: "Robotic Arms" (Arm1's twin is missing) and
/// "Space Station" (CO2, then humidity paints the mesh; power).
#[test]
fn demo_environments_look_as_in_3d_scenes() {
    check(
        CONFIGS[2].0,
        "Robotic Arms",
        CONFIGS[2].1,
        &[
            ("Arm1", false, None, &[]),
            ("Arm2", true, None, &[]),
            (
                "Arm3",
                true,
                Some("#f79824"),
                &[("Stopwatch", "#c32f27", "Box451 was missed, please track down this box and remediate.")],
            ),
            ("Arm4", true, None, &[]),
            (
                "Arm5",
                true,
                Some("#c32f27"),
                &[("Stopwatch", "#c32f27", "Box781 was missed, please track down this box and remediate.")],
            ),
            ("Arm6", true, Some("#f79824"), &[]),
        ],
    );
    let power_low = [("Ringer", "#f79824", "Low wattage warning")];
    let co2_high = [("Shield", "#ee92c2", "CO2 Level Dangerously High")];
    check(
        CONFIGS[2].0,
        "Space Station",
        CONFIGS[2].1,
        &[
            ("MainPanel1", true, Some("#fee440"), &[]),
            ("MainPanel2", true, Some("#c32f27"), &power_low),
            ("MainPanel3", true, Some("#26c485"), &[]),
            ("MainPanel4", true, Some("#26c485"), &[]),
            ("MainPanel5", true, Some("#26c485"), &[]),
            ("MainPanel6", true, Some("#26c485"), &[]),
            ("MainPanel7", true, Some("#f79824"), &power_low),
            ("MainPanel8", true, Some("#26c485"), &[]),
            ("RearPanel1", true, Some("#c32f27"), &power_low),
            ("RearPanel2", true, Some("#26c485"), &[]),
            ("ColumbusLab", true, Some("#33a1fd"), &[]),
            ("DestinyLab", true, Some("#33a1fd"), &co2_high),
            (
                "HarmonyModule",
                true,
                Some("#26c485"),
                &[("Frigid", "#c32f27", "Dangerously high temperature to humidity ratio")],
            ),
            ("KiboLab", true, Some("#26c485"), &[]),
            ("TranquilityModule", true, Some("#33a1fd"), &co2_high),
            ("ZaryaBlock", true, Some("#33a1fd"), &[]),
            ("ZvezdaModule", true, Some("#26c485"), &[]),
        ],
    );
}

#[test]
fn layers_come_from_the_configuration_and_switch_behaviors() {
    let imported = import_scene(CONFIGS[0].0, "Contoso Factory", CONFIGS[0].1, None);
    let layers: Vec<_> = imported.scene.layers.iter().map(|l| l.name.clone().unwrap()).collect();
    assert_eq!(layers, ["Flow", "Temperature"]);
    let mut runtime = SceneRuntime::new(imported.scene).unwrap();
    let a01 = runtime.elements().iter().position(|e| e.id == "41bca486feaf985f52130947d31675dc").unwrap();
    runtime.set_layer_visible("9624b620aa83c649888dadc7c8fdf541", false);
    // Temperature off: the OutFlow behavior (in no layer) still paints: 250 → yellow.
    assert_eq!(runtime.style(a01).color.unwrap().to_string(), "#fee440");
}

#[test]
fn dangling_references_are_notes() {
    let imported = import_scene(CONFIGS[0].0, "Luciana 1", CONFIGS[0].1, None);
    assert!(
        imported.notes.iter().any(|n| n.pointer == "/configuration/scenes/1/behaviorIDs/0"
            && n.message.contains("no behavior has id"))
    );
    let mut config: serde_json::Value = serde_json::from_str(&fixture(CONFIGS[0].0)).unwrap();
    *config.pointer_mut("/configuration/layers/0/behaviorIDs/0").unwrap() = json!("ghost");
    *config.pointer_mut("/configuration/behaviors/2/datasources/0/elementIDs/1").unwrap() = json!("nowhere");
    let imported = import(&config.to_string(), &ImportOptions::default()).unwrap();
    let messages: Vec<String> = imported.notes.iter().map(ToString::to_string).collect();
    assert!(
        messages.contains(&"/configuration/layers/0/behaviorIDs/0: no behavior has id \"ghost\"".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with(
            "/configuration/behaviors/2/datasources/0/elementIDs/1: no element has id \"nowhere\""
        )),
        "{messages:?}"
    );
}

#[test]
fn bad_input_gives_precise_errors() {
    let config = fixture(CONFIGS[0].0);
    let truncated = &config[..config.len() / 2];
    let error = import(truncated, &ImportOptions::default()).unwrap_err();
    assert!(error.line.is_some() && error.column.is_some(), "{error}");
    let wrong =
        config.replacen(r#""objectIDs": ["__Misc_primitive2"]"#, r#""objectIDs": "__Misc_primitive2""#, 1);
    let error = import(&wrong, &ImportOptions::default()).unwrap_err();
    assert_eq!(error.pointer, "/configuration/scenes/0/elements/5/objectIDs");
    let duplicate =
        config.replacen("d2e033bcff9ff392b9b233e8571fcf28", "a7094c812e6870004b6485112cc859b6", 1);
    let imported = import(&duplicate, &ImportOptions::default()).unwrap();
    assert!(imported.notes.iter().any(|n| n.pointer == "/configuration/scenes/0/elements/1/id"));
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_SCENE_BYTES));
    assert!(import(&huge, &ImportOptions::default()).unwrap_err().message.contains("limited"));
    let error = import(r#"{"name": "x"}"#, &ImportOptions::default()).unwrap_err();
    assert!(error.message.contains("twinmaker"), "{error}");
}

#[test]
fn water_tank_rules_paint_the_flow_meter_and_make_the_supply_tank_translucent() {
    let text = fixture("twinmaker/CookieFactoryWaterTank.scene.json");
    assert_eq!(detect(&text).unwrap(), SourceFormat::TwinMaker);
    let imported = import(&text, &ImportOptions::default()).unwrap();
    assert_eq!(imported.scene.mesh, "CookieFactoryWaterTank.glb");
    let runtime = SceneRuntime::new(imported.scene.clone()).unwrap();
    let element = |id: &str| runtime.element_index(id).unwrap_or_else(|| panic!("no element {id}"));
    let flow_meter = runtime.style(element("FlowMeter"));
    assert_eq!(runtime.elements()[element("FlowMeter")].nodes, ["FlowMeter"]);
    assert_eq!(flow_meter.color.unwrap().to_string(), "#d13212");
    let supply = runtime.style(element("SupplyTank"));
    assert!((supply.opacity_f32().unwrap() - 0.32).abs() < 0.003, "{:?}", supply.opacity);
    assert_eq!(supply.color, None);
    assert_eq!(runtime.elements()[element("Main Pipe")].nodes, ["water-pipe1_2"]);
    // Every element's node is in the model.
    let glb = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/peer/twinmaker/CookieFactoryWaterTank.glb"),
    )
    .unwrap();
    let names = twinscene_core::model_nodes::node_names(&glb).unwrap();
    for element in runtime.elements() {
        for node in &element.nodes {
            assert!(names.iter().any(|n| n == node), "{node} is not in the model");
        }
    }
    // Twins per bound entity, bound properties present but null.
    let room1 = imported.scene.twins.iter().find(|t| t.id == "room1").unwrap();
    assert_eq!(room1.model, "dtmi:twinmaker:entity;1");
    assert_eq!(room1.properties["temperatureSensor1"], json!({"temperature": null}));
    let mut notes: Vec<String> = imported.notes.iter().map(|n| n.pointer.clone()).collect();
    notes.sort();
    assert_eq!(
        notes,
        [
            "/nodes/0", // the whole model bound to WaterTank
            "/nodes/0/transform",
            "/nodes/1/components/0", // lights
            "/nodes/2/components/0",
            "/nodes/3/transform", // sub-model transforms
            "/nodes/4/transform",
            "/nodes/5/components/0", // motion indicator
            "/nodes/6/transform",
            "/properties/environmentPreset",
        ]
    );
}

#[test]
fn overlay_tag_icon_follows_twinmaker_first_match_order() {
    let text = fixture("twinmaker/overlay.scene.json");
    let imported = import(&text, &ImportOptions::default()).unwrap();
    // ${sel_entity} / ${sel_comp} come from properties.dataBindingConfig.template.
    let tag = imported.scene.elements.iter().find(|e| e.id == "Obstruction Alarm").unwrap();
    assert_eq!(tag.twin, "room1");
    let mut runtime = SceneRuntime::new(imported.scene).unwrap();
    let index = runtime.element_index("Obstruction Alarm").unwrap();
    assert!(runtime.style(index).badges.is_empty(), "no data yet: no icon");
    // temperature >= 20 → Error; >= 30 → Warning; < 30 → Info; the first match wins, so 25 and
    // 35 both give Error.
    for (temperature, icon, severity) in
        [(10, "Info", Severity::Info), (25, "Error", Severity::Error), (35, "Error", Severity::Error)]
    {
        let patch: json_patch::Patch = serde_json::from_value(
            json!([{"op": "replace", "path": "/temperatureSensor2/temperature", "value": temperature}]),
        )
        .unwrap();
        runtime.apply_patch("room1", &patch, "2026-01-01T00:00:00Z").unwrap();
        let badges = &runtime.style(index).badges;
        assert_eq!(badges.len(), 1, "{temperature}");
        assert_eq!((badges[0].icon.as_str(), badges[0].severity), (icon, Some(severity)), "{temperature}");
    }
    let popover = runtime.popover(index);
    assert_eq!(popover.len(), 1, "the tag's navigation link");
}

#[test]
fn unsupported_rule_statements_are_notes_naming_rule_and_statement() {
    let text = fixture("twinmaker/CookieFactoryWaterTank.scene.json").replace(
        r#""expression": "1 == 1",
          "target": "iottwinmaker.common.color:#d13212""#,
        r#""expression": "temperature|upper == 'X'",
          "target": "iottwinmaker.common.color:#d13212""#,
    );
    let imported = import(&text, &ImportOptions::default()).unwrap();
    let note =
        imported.notes.iter().find(|n| n.pointer == "/rules/AlwaysOn/statements/0/expression").unwrap();
    assert!(note.message.contains("rule \"AlwaysOn\", statement 0"), "{note}");
}

#[test]
fn twinmaker_node_cycles_and_bad_indexes_are_notes_not_hangs() {
    let text = r#"{"specVersion": "1.0", "rules": {}, "rootNodeIndexes": [0, 7],
      "nodes": [
        {"name": "a", "children": [1, 9], "components": [{"type": "ModelRef", "uri": "m.glb"}]},
        {"name": "b", "children": [2]},
        {"name": "c", "children": [1], "components": [{"type": "Tag", "ruleBasedMapId": "none",
          "valueDataBinding": {"dataBindingContext": {"entityId": "e"}}}]}]}"#;
    let imported = import(text, &ImportOptions::default()).unwrap();
    let pointers: Vec<&str> = imported.notes.iter().map(|n| n.pointer.as_str()).collect();
    assert!(pointers.contains(&"/nodes/0/children/1"), "{pointers:?}");
    assert!(pointers.contains(&"/rootNodeIndexes/1"), "{pointers:?}");
    assert!(pointers.contains(&"/nodes/2/components/0/ruleBasedMapId"), "{pointers:?}");
    assert_eq!(imported.scene.elements[0].nodes, ["c"]);
}

#[test]
fn explorer_export_is_a_scene_without_elements() {
    let export = r#"{"digitalTwinsFileInfo": {"fileVersion": "1.0.0"},
      "digitalTwinsGraph": {"digitalTwins": [{"$dtId": "a", "$metadata": {"$model": "dtmi:x:A;1"}}], "relationships": []},
      "digitalTwinsModels": [{"@id": "dtmi:x:A;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2"}]}"#;
    let imported = import(export, &ImportOptions { mesh: Some("site.glb"), ..Default::default() }).unwrap();
    assert_eq!(imported.format, SourceFormat::AdtExplorer);
    assert!(imported.scene.elements.is_empty());
    assert_eq!((imported.scene.twins.len(), imported.scene.models.len()), (1, 1));
    assert_eq!(imported.scene.mesh, "site.glb");
}

fn peer_files() -> Vec<String> {
    [
        CONFIGS[0].0,
        CONFIGS[1].0,
        CONFIGS[2].0,
        "twinmaker/CookieFactoryWaterTank.scene.json",
        "twinmaker/overlay.scene.json",
    ]
    .iter()
    .map(|p| fixture(p))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Truncations and byte-level mutations of every peer file: import answers or errs, never
    /// panics, and what it answers runs.
    #[test]
    fn mutated_peer_files_never_panic(file in 0usize..5, cut in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)) {
        let files = peer_files();
        let mut bytes = files[file].clone().into_bytes();
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len.max(1));
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b" {}[]\",:0aeltrun-".get(byte as usize % 18).copied().unwrap_or(byte);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = detect(&text);
        let _ = scene_names(&text);
        if let Ok(imported) = import(&text, &ImportOptions::default()) {
            let _ = SceneRuntime::new(imported.scene);
        }
    }

    /// Structure-aware mutations: any value of a peer file replaced by another JSON value.
    #[test]
    fn peer_files_with_a_value_replaced_never_panic(file in 0usize..5, pick in any::<prop::sample::Index>(),
            replacement in prop_oneof![Just(json!(null)), Just(json!(1)), Just(json!("x")), Just(json!([])),
                Just(json!({})), Just(json!(true)), Just(json!(["Infinity", "-Infinity"])), Just(json!("${nope}"))]) {
        let files = peer_files();
        let mut value: serde_json::Value = serde_json::from_str(&files[file]).unwrap();
        let mut pointers = Vec::new();
        fn walk(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
            out.push(at.clone());
            match value {
                serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
                serde_json::Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(v, format!("{at}/{i}"), out)),
                _ => {}
            }
        }
        walk(&value, String::new(), &mut pointers);
        let pointer = pointers[pick.index(pointers.len())].clone();
        if let Some(slot) = value.pointer_mut(&pointer) {
            *slot = replacement;
        }
        if let Ok(imported) = import(&value.to_string(), &ImportOptions::default()) {
            let _ = SceneRuntime::new(imported.scene);
        }
    }
}
