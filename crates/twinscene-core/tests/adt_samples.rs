//! The ADT 3D Scenes samples in tests/fixtures: every expression of the three scene
//! configurations parses and evaluates against the sample twins to the values checked by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twinscene_core::expression::{Expression, Scope};
use twinscene_core::graph::TwinGraph;
use twinscene_core::twin::Twin;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn twins(name: &str) -> TwinGraph {
    let twins =
        fixture(name).as_array().unwrap().iter().map(|t| Twin::from_adt_json(t).unwrap()).collect::<Vec<_>>();
    TwinGraph::new(twins, vec![])
}

/// Every (key, expression text) in a configuration, with its JSON pointer.
fn expressions(config: &Value) -> Vec<(String, String, String)> {
    fn walk(value: &Value, pointer: String, out: &mut Vec<(String, String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{pointer}/{key}");
                    if let Value::String(text) = child
                        && (key.ends_with("Expression") || (key == "expression" && !text.ends_with("IDs")))
                    {
                        out.push((here.clone(), key.clone(), text.clone()));
                    }
                    walk(child, here, out);
                }
            }
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, item)| walk(item, format!("{pointer}/{i}"), out))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, String::new(), &mut out);
    out
}

fn compile(key: &str, text: &str) -> Expression {
    let parsed = if key == "valueExpression" || key == "expression" {
        Expression::parse(text)
    } else {
        Expression::parse_text(text)
    };
    parsed.unwrap_or_else(|e| panic!("{key} {text:?}: {e}"))
}

/// Element display name → (primary twin, aliases).
fn elements(config: &Value) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    let mut out = BTreeMap::new();
    for scene in config["configuration"]["scenes"].as_array().unwrap() {
        for element in scene["elements"].as_array().unwrap() {
            let aliases = element["twinAliases"]
                .as_object()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
                .unwrap_or_default();
            let primary = element["primaryTwinID"].as_str().unwrap().to_owned();
            out.insert(element["displayName"].as_str().unwrap().to_owned(), (primary, aliases));
        }
    }
    out
}

const CONFIGS: [(&str, &str); 3] = [
    ("3DScenesConfiguration.json", "MockTwinData.json"),
    ("TruckAndMachinesConfig.json", "MockTwinData.json"),
    ("DemoEnvsConfig.json", "DemoEnvsTwinData.json"),
];

#[test]
fn every_expression_of_the_sample_configs_parses_and_evaluates_on_every_element() {
    let mut parsed = 0;
    for (config_name, twin_name) in CONFIGS {
        let config = fixture(config_name);
        let graph = twins(twin_name);
        let elements = elements(&config);
        for (pointer, key, text) in expressions(&config) {
            let expression = compile(&key, &text);
            parsed += 1;
            // Evaluating on every element must never panic, whatever the twin holds.
            for (primary, aliases) in elements.values() {
                let scope = Scope { aliases: Some(aliases), ..Scope::new(&graph).with_primary_id(primary) };
                let _ = expression.evaluate_json(&scope);
            }
            assert!(!pointer.is_empty());
        }
    }
    assert!(parsed >= 100, "expected the ~100 expressions of the samples, parsed {parsed}");
}

fn evaluate(config: &str, twins_file: &str, element: &str, source: &str, key: &str) -> Option<Value> {
    let config = fixture(config);
    let graph = twins(twins_file);
    let elements = elements(&config);
    let (primary, aliases) = &elements[element];
    let scope = Scope { aliases: Some(aliases), ..Scope::new(&graph).with_primary_id(primary) };
    compile(key, source).evaluate_json(&scope)
}

#[test]
fn truck_config_expressions_evaluate_to_hand_checked_values() {
    let truck = |element: &str, source: &str, key: &str| {
        evaluate("TruckAndMachinesConfig.json", "MockTwinData.json", element, source, key)
    };
    // "tank": PrimaryTwin = SaltMachine_C1 (OutFlow 100), temperatureTag = PasteurizationMachine_A01
    // (OutFlow 250, Temperature 50).
    assert_eq!(truck("tank", "PrimaryTwin.OutFlow", "valueExpression"), Some(json!(100.0)));
    assert_eq!(truck("tank", "PrimaryTwin.OutFlow < 25", "valueExpression"), Some(json!(false)));
    assert_eq!(truck("tank", "temperatureTag.OutFlow", "valueExpression"), Some(json!(250.0)));
    assert_eq!(truck("tank", "temperatureTag.Temperature > 25", "valueExpression"), Some(json!(true)));
    assert_eq!(
        truck("tank", "${PrimaryTwin.$dtId} is too hot!", "labelExpression"),
        Some(json!("SaltMachine_C1 is too hot!"))
    );
    assert_eq!(
        truck("tank", "https://mypowerbi.biz/${PrimaryTwin.$dtId}", "linkExpression"),
        Some(json!("https://mypowerbi.biz/SaltMachine_C1"))
    );
    // "leftWheels" has no temperatureTag alias; "box1" is bound to BoxA, missing from the twins.
    assert_eq!(truck("leftWheels", "temperatureTag.OutFlow", "valueExpression"), None);
    assert_eq!(truck("box1", "PrimaryTwin.OutFlow", "valueExpression"), None);
    assert_eq!(truck("box1", "PrimaryTwin.OutFlow < 25", "valueExpression"), None);
    assert_eq!(
        truck("leftWheels", "Tire pressure too low!", "labelExpression"),
        Some(json!("Tire pressure too low!"))
    );
}

#[test]
fn demo_envs_expressions_evaluate_to_hand_checked_values() {
    let demo = |twin: &str, source: &str, key: &str| {
        let graph = twins("DemoEnvsTwinData.json");
        let scope = Scope::new(&graph).with_primary_id(twin);
        compile(key, source).evaluate_json(&scope)
    };
    let hot_and_humid = "PrimaryTwin.Temperature > 75 && PrimaryTwin.Humidity > 80";
    assert_eq!(demo("HarmonyModule", hot_and_humid, "valueExpression"), Some(json!(true)));
    assert_eq!(demo("KiboLab", hot_and_humid, "valueExpression"), Some(json!(false)));
    assert_eq!(demo("TranquilityModule", "PrimaryTwin.CO2Level > 40", "valueExpression"), Some(json!(true)));
    assert_eq!(
        demo("Tank2", "PrimaryTwin.SpecificFuelConsumption > 7100", "valueExpression"),
        Some(json!(true))
    );
    assert_eq!(demo("Exchanger2", "PrimaryTwin.CopperCorrosion < 85", "valueExpression"), Some(json!(true)));
    assert_eq!(demo("Exchanger1", "PrimaryTwin.ProcessStep", "valueExpression"), Some(json!("Gelling")));
    assert_eq!(demo("Arm2", "PrimaryTwin.PickupFailedAlert", "valueExpression"), Some(json!(false)));
    assert_eq!(
        demo(
            "A0b462d2-6849-4e41-abfe-cf480dd32e0c",
            "`${PrimaryTwin.PickupFailedBoxID} was missed, please track down this box and remediate.`",
            "labelExpression"
        ),
        Some(json!("Box1254 was missed, please track down this box and remediate."))
    );
    assert_eq!(
        demo("Arm2", "`CO2 Level Dangerously High`", "labelExpression"),
        Some(json!("CO2 Level Dangerously High"))
    );
    assert_eq!(
        demo("Arm2", "`https://contoso.armstreams.com/${PrimaryTwin.$dtId}`", "linkExpression"),
        Some(json!("https://contoso.armstreams.com/Arm2"))
    );
    // Arm1 is referenced by the configuration but missing from the twins.
    assert_eq!(demo("Arm1", "PrimaryTwin.FailedPickupsLastHr", "valueExpression"), None);
}

#[test]
fn scenes_configuration_expressions_evaluate_to_hand_checked_values() {
    let mock = |twin: &str, source: &str| {
        let graph = twins("MockTwinData.json");
        Expression::parse(source).unwrap().evaluate_json(&Scope::new(&graph).with_primary_id(twin))
    };
    assert_eq!(mock("PasteurizationMachine_A03", "PrimaryTwin.Temperature > 150"), Some(json!(true)));
    assert_eq!(mock("PasteurizationMachine_A02", "PrimaryTwin.Temperature > 150"), Some(json!(false)));
    assert_eq!(mock("SaltMachine_C0", "PrimaryTwin.Temperature < 15"), Some(json!(true)));
    assert_eq!(mock("PasteurizationMachine_A04", "PrimaryTwin.PercentFull"), None);
    assert_eq!(mock("Tesla", "PrimaryTwin.WheelInformation.tireSpecification.tireWidth"), Some(json!(19.0)));
    assert_eq!(mock("Tesla", "PrimaryTwin.chargeHistory['Seattle'].cost.toFixed(1)"), Some(json!("15.1")));
}

#[test]
fn every_sample_model_loads_with_inheritance_resolved() {
    use twinscene_core::dtdl::ModelSet;
    let mock = ModelSet::from_documents(&[fixture("MockModelData.json")]).unwrap();
    assert_eq!(mock.len(), 11);
    let tesla = mock.interface("dtmi:com:cocrowle:teslamodely;1").unwrap();
    assert!(tesla.properties.contains_key("name"), "inherited from NGSILDBaseModel");
    assert!(tesla.components.contains_key("address"), "inherited component");
    assert_eq!(
        tesla.properties["BatteryLevel"].schema,
        twinscene_core::dtdl::Schema::Double,
        "expanded-IRI schema key"
    );
    assert_eq!(tesla.properties["Mileage"].semantic_types, ["Distance"]);
    assert_eq!(tesla.relationships["chargedBy"].max_multiplicity, Some(1));
    let demo = ModelSet::from_documents(&[fixture("DemoEnvsModelData.json")]).unwrap();
    assert_eq!(demo.len(), 8);
}

#[test]
fn every_sample_twin_loads_and_fits_its_model() {
    use twinscene_core::dtdl::ModelSet;
    for (twins_file, models_file, count) in [
        ("MockTwinData.json", "MockModelData.json", 16),
        ("DemoEnvsTwinData.json", "DemoEnvsModelData.json", 46),
    ] {
        let text = serde_json::to_string(&fixture(twins_file)).unwrap();
        let twins = twinscene_core::adt::twins_from_json(&text).unwrap();
        assert_eq!(twins.len(), count);
        let models = ModelSet::from_documents(&[fixture(models_file)]).unwrap();
        for twin in &twins {
            models.check_twin(twin).unwrap_or_else(|e| panic!("{}: {e}", twin.id));
        }
    }
}
