use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const SCENE: &str = r##"{
  "version": 1, "mesh": "m.glb",
  "twins": [
    {"$dtId": "r1", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 18},
    {"$dtId": "r2", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 30}
  ],
  "elements": [
    {"id": "a", "twin": "r1", "nodes": ["A"]},
    {"id": "b", "twin": "r2", "nodes": ["B"]},
    {"id": "c", "twin": "r2", "nodes": ["C1", "C2"]},
    {"id": "lost", "twin": "BoxA", "nodes": ["D"]}
  ],
  "behaviors": [{"id": "heat", "elements": "all", "visuals": [{"type": "color", "expression": "PrimaryTwin.temperature",
    "ranges": [{"min": null, "max": 20, "color": "#0000ff"}, {"min": 20, "max": 26, "color": "#00ff00"}, {"min": 26, "max": null, "color": "#ff0000"}]}]}]
}"##;

fn runtime() -> SceneRuntime {
    SceneRuntime::new(Scene::from_json_str(SCENE).unwrap()).unwrap()
}

fn color(runtime: &SceneRuntime, id: &str) -> Option<String> {
    runtime.style(runtime.element_index(id).unwrap()).color.map(|c| c.to_string())
}

fn style<'r>(runtime: &'r SceneRuntime, id: &str) -> &'r ElementStyle {
    runtime.style(runtime.element_index(id).unwrap())
}

fn patch(value: Value) -> json_patch::Patch {
    serde_json::from_value(value).unwrap()
}

fn replace(property: &str, value: Value) -> json_patch::Patch {
    patch(json!([{"op": "replace", "path": format!("/{property}"), "value": value}]))
}

fn changed_ids(runtime: &SceneRuntime, changes: &[StyleChange]) -> Vec<String> {
    changes.iter().map(|c| runtime.elements()[c.element].id.clone()).collect()
}

#[test]
fn initial_styles_follow_the_ranges() {
    let runtime = runtime();
    assert_eq!(color(&runtime, "a").as_deref(), Some("#0000ff"));
    assert_eq!(color(&runtime, "b").as_deref(), Some("#ff0000"));
    assert_eq!(color(&runtime, "c").as_deref(), Some("#ff0000"));
}

#[test]
fn element_whose_twin_is_missing_is_marked_and_uncolored() {
    let runtime = runtime();
    let lost = style(&runtime, "lost");
    assert_eq!((lost.color, lost.twin_found, lost.visible), (None, false, true));
}

#[test]
fn patch_changes_only_the_elements_of_that_twin() {
    let mut runtime = runtime();
    let changes = runtime.apply_patch("r2", &replace("temperature", json!(22.0)), "t").unwrap();
    assert_eq!(changed_ids(&runtime, &changes), ["b", "c"]);
    assert_eq!(color(&runtime, "b").as_deref(), Some("#00ff00"));
    // Same range again: no style change is reported.
    assert!(runtime.apply_patch("r2", &replace("temperature", json!(23.0)), "t").unwrap().is_empty());
    // A property no behavior reads changes nothing.
    let unrelated = patch(json!([{"op": "add", "path": "/humidity", "value": 50}]));
    assert!(runtime.apply_patch("r2", &unrelated, "t").unwrap().is_empty());
}

/// The caller's buffer collects the changes of several updates in order, as `apply_patch`
/// would return them one by one; a refused update appends nothing and leaves them in place.
#[test]
fn changes_accumulate_in_the_callers_buffer() {
    let mut separate = runtime();
    let mut expected = separate.apply_patch("r2", &replace("temperature", json!(22.0)), "t").unwrap();
    expected.extend(separate.apply_patch("r1", &replace("temperature", json!(30.0)), "t").unwrap());
    let mut buffered = runtime();
    let mut changes = Vec::new();
    buffered.apply_patch_into("r2", &replace("temperature", json!(22.0)), "t", &mut changes).unwrap();
    let after_first = changes.len();
    assert!(after_first > 0);
    let refused = buffered.apply_patch_into("nobody", &replace("temperature", json!(1.0)), "t", &mut changes);
    assert!(matches!(refused, Err(UpdateError::UnknownTwin(id)) if id == "nobody"));
    assert_eq!(changes.len(), after_first);
    buffered.apply_patch_into("r1", &replace("temperature", json!(30.0)), "t", &mut changes).unwrap();
    assert_eq!(changed_ids(&buffered, &changes), changed_ids(&separate, &expected));
    assert_eq!(changes, expected);
}

#[test]
fn removed_property_means_no_value() {
    let mut runtime = runtime();
    runtime.apply_patch("r1", &patch(json!([{"op": "remove", "path": "/temperature"}])), "t").unwrap();
    assert_eq!(color(&runtime, "a"), None);
}

#[test]
fn snapshot_with_the_missing_twin_finds_it() {
    let mut runtime = runtime();
    let mut twins: Vec<Twin> = runtime.graph().twins().cloned().collect();
    let mut box_a = Twin::new("BoxA", "dtmi:t:Room;1");
    box_a.properties.insert("temperature", json!(21));
    twins.push(box_a);
    let changes = runtime.replace_twins(twins, vec![]);
    assert_eq!(changes.len(), 1);
    assert_eq!(color(&runtime, "lost").as_deref(), Some("#00ff00"));
}

/// A 3D Scenes-style scene: value ranges with badges, aliases, visibility, labels and layers.
const ALERTS: &str = r##"{
  "version": 1, "mesh": "m.glb",
  "twins": [
    {"$dtId": "tank", "$metadata": {"$model": "dtmi:t:Tank;1"}, "OutFlow": 250, "Online": true, "Step": "Filling"},
    {"$dtId": "sensor", "$metadata": {"$model": "dtmi:t:Sensor;1"}, "Temperature": 30}
  ],
  "elements": [{"id": "tank", "twin": "tank", "nodes": ["T"], "aliases": {"temperatureTag": "sensor"}}],
  "layers": [{"id": "alarms", "name": "Alarms"}],
  "behaviors": [
    {"id": "flow", "elements": ["tank"], "visuals": [{"type": "valueRanges", "expression": "PrimaryTwin.OutFlow", "ranges": [
      {"values": [0, 100], "color": "#33A1FD"},
      {"values": [200, "Infinity"], "color": "#FEE440"},
      {"values": [220, "Infinity"], "color": "#C32F27", "icon": "Warning", "label": "Outflow ${PrimaryTwin.OutFlow} too high"}
    ]}]},
    {"id": "hot", "elements": "all", "layers": ["alarms"], "visuals": [
      {"type": "valueRanges", "kind": "categorical", "expression": "temperatureTag.Temperature > 25",
       "ranges": [{"values": [true], "icon": "Frigid", "color": "#d6940f", "label": "${PrimaryTwin.$dtId} is too hot!"}]},
      {"type": "valueRanges", "kind": "categorical", "expression": "PrimaryTwin.Step",
       "ranges": [{"values": ["Gelling", "Filling"], "color": "#00ff00"}]},
      {"type": "visibility", "expression": "PrimaryTwin.Online"},
      {"type": "label", "text": "Flow: ${PrimaryTwin.OutFlow}"}
    ]}
  ]
}"##;

#[test]
fn value_ranges_give_colors_badges_labels_and_visibility() {
    let mut runtime = SceneRuntime::new(Scene::from_json_str(ALERTS).unwrap()).unwrap();
    let tank = style(&runtime, "tank").clone();
    // The categorical visual comes later in scene order, so its color wins over the flow color.
    assert_eq!(tank.color.map(|c| c.to_string()).as_deref(), Some("#00ff00"));
    let badges: Vec<(&str, Option<&str>)> =
        tank.badges.iter().map(|b| (b.icon.as_str(), b.label.as_deref())).collect();
    assert_eq!(badges, [("Warning", Some("Outflow 250 too high")), ("Frigid", Some("tank is too hot!"))]);
    assert!(tank.visible);
    assert_eq!(tank.label.as_deref(), Some("Flow: 250"));
    assert_eq!(tank.layers.as_ref(), ["alarms".to_owned()]);

    // The alias twin drives the element too.
    let changes = runtime.apply_patch("sensor", &replace("Temperature", json!(20)), "t").unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].style.badges.len(), 1);

    runtime.apply_patch("tank", &replace("Step", json!("Done")), "t").unwrap();
    runtime.apply_patch("tank", &replace("OutFlow", json!(210)), "t").unwrap();
    let tank = style(&runtime, "tank");
    assert_eq!(
        tank.color.map(|c| c.to_string()).as_deref(),
        Some("#fee440"),
        "[200, ∞) without icon colors the mesh"
    );
    assert!(tank.badges.is_empty());
    runtime.apply_patch("tank", &replace("Online", json!(false)), "t").unwrap();
    assert!(!style(&runtime, "tank").visible);
}

/// Floors average their rooms; the building counts its floors' alarms (transitively).
const BUILDING: &str = r##"{
  "version": 1, "mesh": "m.glb",
  "twins": [
    {"$dtId": "building", "$metadata": {"$model": "dtmi:t:Building;1"}},
    {"$dtId": "f1", "$metadata": {"$model": "dtmi:t:Floor;1"}},
    {"$dtId": "f2", "$metadata": {"$model": "dtmi:t:Floor;1"}},
    {"$dtId": "r11", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 20, "alarm": false},
    {"$dtId": "r12", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 24, "alarm": true},
    {"$dtId": "r21", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 30, "alarm": false}
  ],
  "relationships": [
    {"$relationshipId": "b1", "$sourceId": "building", "$targetId": "f1", "$relationshipName": "contains"},
    {"$relationshipId": "b2", "$sourceId": "building", "$targetId": "f2", "$relationshipName": "contains"},
    {"$relationshipId": "c11", "$sourceId": "f1", "$targetId": "r11", "$relationshipName": "contains"},
    {"$relationshipId": "c12", "$sourceId": "f1", "$targetId": "r12", "$relationshipName": "contains"},
    {"$relationshipId": "c21", "$sourceId": "f2", "$targetId": "r21", "$relationshipName": "contains"}
  ],
  "computed": [
    {"id": "building-alarms", "model": "dtmi:t:Building;1", "property": "alarmCount", "expression": "sum(related(twin, 'contains').alarmCount)"},
    {"id": "floor-avg", "model": "dtmi:t:Floor;1", "property": "avgTemperature", "expression": "avg(related(twin, 'contains').temperature)"},
    {"id": "floor-alarms", "model": "dtmi:t:Floor;1", "property": "alarmCount", "expression": "sum(related(twin, 'contains').alarm)"}
  ],
  "elements": [
    {"id": "building", "twin": "building", "nodes": ["B"]},
    {"id": "f1", "twin": "f1", "nodes": ["F1"]},
    {"id": "f2", "twin": "f2", "nodes": ["F2"]},
    {"id": "r11", "twin": "r11", "nodes": ["R11"]},
    {"id": "r12", "twin": "r12", "nodes": ["R12"]},
    {"id": "r21", "twin": "r21", "nodes": ["R21"]}
  ],
  "behaviors": [
    {"id": "temperature", "elements": "all", "visuals": [{"type": "color", "expression": "PrimaryTwin.temperature ?? PrimaryTwin.avgTemperature",
      "ranges": [{"min": null, "max": 22, "color": "#0000ff"}, {"min": 22, "max": 26, "color": "#00ff00"}, {"min": 26, "max": null, "color": "#ff0000"}]}]},
    {"id": "alarms", "elements": ["building"], "visuals": [{"type": "valueRanges", "expression": "PrimaryTwin.alarmCount",
      "ranges": [{"values": [1, "Infinity"], "icon": "Alarm", "label": "${PrimaryTwin.alarmCount} alarm(s)"}]}]}
  ]
}"##;

fn building() -> SceneRuntime {
    SceneRuntime::new(Scene::from_json_str(BUILDING).unwrap()).unwrap()
}

fn property(runtime: &SceneRuntime, twin: &str, name: &str) -> Option<Value> {
    runtime.graph().twin(twin).unwrap().property(name).cloned()
}

#[test]
fn computed_properties_aggregate_neighbours_transitively() {
    let mut runtime = building();
    assert_eq!(property(&runtime, "f1", "avgTemperature"), Some(json!(22.0)));
    assert_eq!(property(&runtime, "f2", "avgTemperature"), Some(json!(30.0)));
    assert_eq!(property(&runtime, "building", "alarmCount"), Some(json!(1.0)));
    assert_eq!(color(&runtime, "f1").as_deref(), Some("#00ff00"));
    let badge = &style(&runtime, "building").badges[0];
    assert_eq!((badge.icon.as_str(), badge.label.as_deref()), ("Alarm", Some("1 alarm(s)")));

    // A room's temperature moves its floor's average: room and floor restyle, nothing else.
    let changes = runtime.apply_patch("r11", &replace("temperature", json!(30)), "t").unwrap();
    assert_eq!(changed_ids(&runtime, &changes), ["r11", "f1"]);
    assert_eq!(property(&runtime, "f1", "avgTemperature"), Some(json!(27.0)));
    assert_eq!(color(&runtime, "f1").as_deref(), Some("#ff0000"));

    // An alarm propagates room → floor → building.
    let changes = runtime.apply_patch("r21", &replace("alarm", json!(true)), "t").unwrap();
    assert_eq!(property(&runtime, "f2", "alarmCount"), Some(json!(1.0)));
    assert_eq!(property(&runtime, "building", "alarmCount"), Some(json!(2.0)));
    assert_eq!(changed_ids(&runtime, &changes), ["building"]);
    assert_eq!(style(&runtime, "building").badges[0].label.as_deref(), Some("2 alarm(s)"));
}

#[test]
fn relationship_changes_rebind_computed_properties() {
    let mut runtime = building();
    runtime.remove_relationship("f1", "c11").unwrap();
    assert_eq!(property(&runtime, "f1", "avgTemperature"), Some(json!(24.0)));
    let moved = Relationship {
        id: "c11".into(),
        source: "f2".into(),
        target: "r11".into(),
        name: "contains".into(),
        properties: Default::default(),
    };
    runtime.add_relationship(moved).unwrap();
    assert_eq!(property(&runtime, "f2", "avgTemperature"), Some(json!(25.0)));
    // And later room updates reach the new floor.
    runtime.apply_patch("r11", &replace("temperature", json!(40)), "t").unwrap();
    assert_eq!(property(&runtime, "f2", "avgTemperature"), Some(json!(35.0)));
}

#[test]
fn computed_cycles_are_refused_at_load_with_the_path() {
    let text = BUILDING.replace(
        r#""expression": "avg(related(twin, 'contains').temperature)""#,
        r#""expression": "avg(related(twin, 'contains').temperature) + twin.avgTemperature""#,
    );
    let Err(SceneError::Invalid(problems)) = SceneRuntime::new(Scene::from_json_str(&text).unwrap()) else {
        panic!("a self-referencing computed property must be refused")
    };
    assert_eq!(problems[0].pointer, "/computed");
    assert!(
        problems[0].message.contains("cycle") && problems[0].message.contains("avgTemperature"),
        "{}",
        problems[0]
    );

    // Two floors that each read the other.
    let mutual = r##"{"version": 1, "mesh": "m.glb",
      "twins": [{"$dtId": "a", "$metadata": {"$model": "m"}}, {"$dtId": "b", "$metadata": {"$model": "m"}}],
      "relationships": [
        {"$relationshipId": "1", "$sourceId": "a", "$targetId": "b", "$relationshipName": "next"},
        {"$relationshipId": "2", "$sourceId": "b", "$targetId": "a", "$relationshipName": "next"}],
      "computed": [{"id": "x", "model": "m", "property": "x", "expression": "sum(related(twin, 'next').x) + 1"}],
      "elements": [{"id": "a", "twin": "a", "nodes": ["A"]}]}"##;
    let Err(SceneError::Invalid(problems)) = SceneRuntime::new(Scene::from_json_str(mutual).unwrap()) else {
        panic!("a cycle through relationships must be refused")
    };
    assert!(problems[0].message.contains("a.x") && problems[0].message.contains("b.x"), "{}", problems[0]);
}

#[test]
fn age_follows_the_clock_the_caller_sets() {
    let text = r##"{"version": 1, "mesh": "m.glb",
      "twins": [{"$dtId": "s", "$metadata": {"$model": "m", "temperature": {"lastUpdateTime": "2026-01-01T00:00:00Z"}}, "temperature": 20}],
      "elements": [{"id": "s", "twin": "s", "nodes": ["S"]}],
      "behaviors": [{"id": "stale", "elements": "all", "visuals": [{"type": "valueRanges", "expression": "age(PrimaryTwin.temperature) > 60",
        "kind": "categorical", "ranges": [{"values": [true], "icon": "Clock", "label": "stale"}]}]}]}"##;
    let mut runtime = SceneRuntime::new(Scene::from_json_str(text).unwrap()).unwrap();
    assert!(runtime.style(0).badges.is_empty(), "no clock yet: no value");
    assert!(runtime.set_now(1_767_225_630_000.0).is_empty(), "30 s old");
    let changes = runtime.set_now(1_767_225_700_000.0);
    assert_eq!(changes[0].style.badges[0].icon, "Clock");
    // A fresh write makes it young again.
    let changes =
        runtime.apply_patch("s", &replace("temperature", json!(21)), "2026-01-01T00:01:30Z").unwrap();
    assert!(changes[0].style.badges.is_empty());
}

#[test]
fn writes_are_type_checked_when_the_scene_has_models() {
    let text = SCENE.replace(
        r#""version": 1,"#,
        r#""version": 1, "models": [{"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
            "contents": [{"@type": "Property", "name": "temperature", "schema": "double"}]}],"#,
    );
    let mut runtime = SceneRuntime::new(Scene::from_json_str(&text).unwrap()).unwrap();
    let before = runtime.graph().twin("r1").unwrap().clone();
    let error = runtime.apply_patch("r1", &replace("temperature", json!("hot")), "t").unwrap_err();
    assert!(error.to_string().contains("expected a number"), "{error}");
    assert_eq!(runtime.graph().twin("r1").unwrap(), &before, "twin unchanged, etag too");
    let nested = patch(
        json!([{"op": "add", "path": "/temperature", "value": 19}, {"op": "add", "path": "/colour", "value": 1}]),
    );
    assert!(runtime.apply_patch("r1", &nested, "t").is_err());
    assert_eq!(runtime.graph().twin("r1").unwrap(), &before);
}

/// Any sequence of patches leaves the same styles and computed values as evaluating the final
/// twin state from scratch.
fn check_incremental_equals_full(
    scene: &str,
    updates: &[(usize, usize, f64)],
    twins: &[&str],
    properties: &[&str],
) {
    let mut incremental = SceneRuntime::new(Scene::from_json_str(scene).unwrap()).unwrap();
    for &(twin, property, value) in updates {
        let name = properties[property % properties.len()];
        let value = if name == "alarm" { json!(value > 20.0) } else { json!(value) };
        let op = patch(json!([{"op": "add", "path": format!("/{name}"), "value": value}]));
        incremental.apply_patch(twins[twin % twins.len()], &op, "t").unwrap();
    }
    let final_twins: Vec<Twin> = incremental.graph().twins().cloned().collect();
    let full = SceneRuntime::new(Scene {
        twins: final_twins.clone(),
        relationships: incremental.graph().relationships(),
        ..incremental.scene().clone()
    })
    .unwrap();
    assert_eq!(incremental.styles(), full.styles());
    let mut snapshot = SceneRuntime::new(Scene::from_json_str(scene).unwrap()).unwrap();
    snapshot.replace_twins(final_twins, incremental.graph().relationships());
    assert_eq!(snapshot.styles(), full.styles());
    assert_eq!(incremental.graph(), full.graph(), "computed values agree too");
}

proptest! {
    #[test]
    fn incremental_equals_full_recomputation(updates in proptest::collection::vec((0usize..2, 0usize..1, -10.0f64..50.0), 1..40)) {
        check_incremental_equals_full(SCENE, &updates, &["r1", "r2"], &["temperature"]);
    }

    #[test]
    fn incremental_equals_full_with_computed_badges_and_aliases(
        updates in proptest::collection::vec((0usize..6, 0usize..2, -10.0f64..50.0), 1..30),
    ) {
        check_incremental_equals_full(BUILDING, &updates, &["r11", "r12", "r21", "f1", "f2", "building"], &["temperature", "alarm"]);
        check_incremental_equals_full(ALERTS, &updates, &["tank", "sensor"], &["OutFlow", "Temperature"]);
    }
}

#[test]
fn switching_a_layer_off_removes_its_behaviors_looks_and_on_restores_them() {
    let mut runtime = SceneRuntime::new(Scene::from_json_str(ALERTS).unwrap()).unwrap();
    let shown = style(&runtime, "tank").clone();
    assert_eq!(shown.badges.len(), 2);

    let changes = runtime.set_layer_visible("alarms", false);
    assert_eq!(changes.len(), 1);
    assert!(!runtime.layer_visible("alarms"));
    let hidden = style(&runtime, "tank");
    // Only the "flow" behavior (in no layer) still applies: its color and its badge.
    assert_eq!(hidden.color.map(|c| c.to_string()).as_deref(), Some("#fee440"));
    let icons: Vec<&str> = hidden.badges.iter().map(|b| b.icon.as_str()).collect();
    assert_eq!(icons, ["Warning"]);
    assert_eq!(hidden.label, None);
    assert!(runtime.set_layer_visible("alarms", false).is_empty(), "switching off twice changes nothing");

    runtime.set_layer_visible("alarms", true);
    assert_eq!(style(&runtime, "tank"), &shown);
}

#[test]
fn popover_widgets_evaluate_for_the_element_and_follow_its_layer() {
    let text = r##"{
      "version": 1, "mesh": "m.glb",
      "twins": [{"$dtId": "r1", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 21.5}],
      "elements": [{"id": "a", "twin": "r1", "nodes": ["A"]}, {"id": "lost", "twin": "nope", "nodes": ["B"]}],
      "layers": [{"id": "details"}],
      "behaviors": [{"id": "info", "elements": "all", "layers": ["details"], "visuals": [{"type": "popover", "widgets": [
        {"type": "value", "label": "Temperature", "expression": "PrimaryTwin.temperature", "units": "°C"},
        {"type": "gauge", "label": "Heat", "expression": "PrimaryTwin.temperature * 2", "min": 0, "max": 100},
        {"type": "value", "label": "Missing", "expression": "PrimaryTwin.humidity"},
        {"type": "link", "label": "Manual", "url": "https://example.com/rooms/${PrimaryTwin.$dtId}"},
        {"type": "trend", "label": "Trend", "property": "temperature"}]}]}]
    }"##;
    let mut runtime = SceneRuntime::new(Scene::from_json_str(text).unwrap()).unwrap();
    let widgets = runtime.popover(runtime.element_index("a").unwrap());
    assert_eq!(
        widgets,
        [
            WidgetValue::Value {
                label: "Temperature".into(),
                value: Some(json!(21.5)),
                units: Some("°C".into())
            },
            WidgetValue::Gauge {
                label: "Heat".into(),
                value: Some(43.0),
                min: 0.0,
                max: 100.0,
                units: None,
                ranges: vec![]
            },
            WidgetValue::Value { label: "Missing".into(), value: None, units: None },
            WidgetValue::Link { label: "Manual".into(), url: Some("https://example.com/rooms/r1".into()) },
            WidgetValue::Trend {
                label: "Trend".into(),
                twin: "r1".into(),
                property: "temperature".into(),
                units: None
            },
        ]
    );
    assert!(runtime.popover(runtime.element_index("lost").unwrap()).is_empty(), "no twin, no popover");
    runtime.set_layer_visible("details", false);
    assert!(runtime.popover(runtime.element_index("a").unwrap()).is_empty(), "hidden with its layer");
}

const SELECTING: &str = r##"{
  "version": 1, "mesh": "m.glb",
  "models": [
    {"@id": "dtmi:t:Space;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
     "contents": [{"@type": "Property", "name": "temperature", "schema": "double"},
                  {"@type": "Property", "name": "kind", "schema": "string"}]},
    {"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3", "extends": "dtmi:t:Space;1"},
    {"@id": "dtmi:t:Pump;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
     "contents": [{"@type": "Property", "name": "kind", "schema": "string"}]}
  ],
  "twins": [
    {"$dtId": "room", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 30, "kind": "office"},
    {"$dtId": "space", "$metadata": {"$model": "dtmi:t:Space;1"}, "temperature": 10, "kind": "hall"},
    {"$dtId": "pump", "$metadata": {"$model": "dtmi:t:Pump;1"}, "kind": "pump"}
  ],
  "layers": [{"id": "spaces"}, {"id": "pumps"}],
  "elements": [
    {"id": "room", "twin": "room", "nodes": ["R"]},
    {"id": "space", "twin": "space", "nodes": ["S"]},
    {"id": "pump", "twin": "pump", "nodes": ["P"]},
    {"id": "later", "twin": "pump-2", "nodes": ["P2"]}
  ],
  "behaviors": [
    {"id": "spaces", "layers": ["spaces"], "elements": {"model": "dtmi:t:Space;1"}, "visuals": [
      {"type": "color", "expression": "PrimaryTwin.temperature",
       "ranges": [{"min": null, "max": 20, "color": "#0000ff"}, {"min": 20, "max": null, "color": "#ff0000"}]}]},
    {"id": "pumps", "layers": ["pumps"], "elements": {"query": "PrimaryTwin.kind == 'pump'"}, "visuals": [
      {"type": "label", "text": "pump ${PrimaryTwin.$dtId}"}]}
  ]
}"##;

#[test]
fn selections_by_model_and_query_follow_the_twins_at_load_and_on_creation_not_on_patches() {
    let mut runtime = SceneRuntime::new(Scene::from_json_str(SELECTING).unwrap()).unwrap();
    // By model, including models that extend it.
    assert_eq!(color(&runtime, "room").as_deref(), Some("#ff0000"));
    assert_eq!(color(&runtime, "space").as_deref(), Some("#0000ff"));
    assert_eq!(color(&runtime, "pump"), None);
    assert_eq!(&*style(&runtime, "room").layers, ["spaces".to_owned()]);
    // By query.
    assert_eq!(style(&runtime, "pump").label.as_deref(), Some("pump pump"));
    assert_eq!(&*style(&runtime, "pump").layers, ["pumps".to_owned()]);
    assert_eq!(style(&runtime, "room").label, None);
    assert!(!runtime.behavior_applies(1, runtime.element_index("room").unwrap()));
    // A patch changes looks, not membership.
    runtime.apply_patch("room", &replace("kind", json!("pump")), "t").unwrap();
    assert_eq!(style(&runtime, "room").label, None);
    // A twin created later is selected, and its element's layers change with it.
    let mut pump = Twin::new("pump-2", "dtmi:t:Pump;1");
    pump.properties.insert("kind", json!("pump"));
    let changes = runtime.add_twin(pump).unwrap();
    assert!(changed_ids(&runtime, &changes).contains(&"later".to_owned()));
    assert_eq!(style(&runtime, "later").label.as_deref(), Some("pump pump-2"));
    assert_eq!(&*style(&runtime, "later").layers, ["pumps".to_owned()]);
    // Creation re-selects everything: the patched room now matches the query too.
    assert_eq!(style(&runtime, "room").label.as_deref(), Some("pump room"));
    // A snapshot re-selects as well.
    let twins: Vec<Twin> = runtime.graph().twins().filter(|t| t.id != "pump").cloned().collect();
    runtime.replace_twins(twins, vec![]);
    assert_eq!(style(&runtime, "pump").label, None);
    assert!(!style(&runtime, "pump").twin_found);
    runtime.remove_twin("pump-2").unwrap();
    assert!(style(&runtime, "later").layers.is_empty());
}

const CONDITIONS: &str = r##"{
  "version": 1, "mesh": "m.glb",
  "twins": [{"$dtId": "tank", "$metadata": {"$model": "dtmi:t:Tank;1"}, "level": 95, "alarm": "ACTIVE"}],
  "elements": [{"id": "tank", "twin": "tank", "nodes": ["T"]}],
  "behaviors": [{"id": "b", "elements": "all", "visuals": [
    {"type": "conditions", "cases": [
      {"when": "PrimaryTwin.level >= 90", "color": "#ff0000", "opacity": 0.5},
      {"when": "PrimaryTwin.level >= 50", "color": "#ffff00"},
      {"when": "true", "color": "#00ff00", "label": "level ${PrimaryTwin.level}"}]},
    {"type": "conditions", "cases": [
      {"when": "PrimaryTwin.alarm == 'ACTIVE'", "icon": "Error", "severity": "error", "color": "#d13212", "label": "alarm on ${PrimaryTwin.$dtId}"},
      {"when": "PrimaryTwin.alarm == 'ACKNOWLEDGED'", "icon": "Warning", "severity": "warning"}]},
    {"type": "valueRanges", "expression": "PrimaryTwin.level", "ranges": [
      {"values": [80, "Infinity"], "icon": "High", "severity": "warning"}]}
  ]}]
}"##;

#[test]
fn conditions_take_the_first_truthy_case_and_give_color_opacity_badges_and_labels() {
    let mut runtime = SceneRuntime::new(Scene::from_json_str(CONDITIONS).unwrap()).unwrap();
    let tank = style(&runtime, "tank").clone();
    assert_eq!(tank.color.map(|c| c.to_string()).as_deref(), Some("#ff0000"), "first match, not last");
    assert_eq!(tank.opacity, Some(Opacity::from_f64(0.5)));
    assert!((tank.opacity_f32().unwrap() - 0.5).abs() < 0.003);
    assert_eq!(
        tank.badges,
        [
            Badge {
                icon: "Error".into(),
                color: Some("#d13212".parse().unwrap()),
                label: Some("alarm on tank".into()),
                severity: Some(Severity::Error)
            },
            Badge { icon: "High".into(), color: None, label: None, severity: Some(Severity::Warning) },
        ]
    );
    runtime.apply_patch("tank", &replace("level", json!(60)), "t").unwrap();
    let tank = style(&runtime, "tank");
    assert_eq!(tank.color.map(|c| c.to_string()).as_deref(), Some("#ffff00"));
    assert_eq!(tank.opacity, None, "no case with an opacity matches: the model's own");
    runtime.apply_patch("tank", &replace("level", json!(3)), "t").unwrap();
    runtime.apply_patch("tank", &replace("alarm", json!("ACKNOWLEDGED")), "t").unwrap();
    let tank = style(&runtime, "tank");
    assert_eq!(tank.label.as_deref(), Some("level 3"), "a label without an icon labels the element");
    assert_eq!(tank.badges.len(), 1);
    assert_eq!((tank.badges[0].icon.as_str(), tank.badges[0].severity), ("Warning", Some(Severity::Warning)));
    runtime.apply_patch("tank", &replace("alarm", json!("NORMAL")), "t").unwrap();
    assert!(style(&runtime, "tank").badges.is_empty(), "no case matches: no badge");
}

#[test]
fn new_fields_are_checked_by_pointer() {
    let text = r##"{"version": 1, "mesh": "m.glb", "twinsFile": "", "live": "http://x/live",
      "layers": [{"id": "l"}, {"id": "l"}],
      "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}],
      "behaviors": [
        {"id": "b", "elements": {"query": "PrimaryTwin.x >"}, "visuals": [
          {"type": "conditions", "cases": [
            {"when": "PrimaryTwin.x ==", "opacity": 1.5, "severity": "error"},
            {"when": "true"},
            {"when": "true", "label": "${"}]},
          {"type": "valueRanges", "expression": "PrimaryTwin.x", "ranges": [{"values": [0, 1], "color": "#fff", "severity": "info"}]}]},
        {"id": "b", "elements": {"model": " "}, "visuals": [{"type": "conditions", "cases": []}]}]}"##;
    let SceneError::Invalid(problems) = Scene::from_json_str(text).unwrap_err() else {
        panic!("expected invalid")
    };
    let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/behaviors/0/elements/query",
            "/behaviors/0/visuals/0/cases/0/when",
            "/behaviors/0/visuals/0/cases/0/opacity",
            "/behaviors/0/visuals/0/cases/0/severity",
            "/behaviors/0/visuals/0/cases/1",
            "/behaviors/0/visuals/0/cases/2/label",
            "/behaviors/0/visuals/1/ranges/0/severity",
            "/behaviors/1/id",
            "/behaviors/1/elements/model",
            "/behaviors/1/visuals/0/cases",
            "/twinsFile",
            "/live",
            "/layers/1/id",
        ]
    );
    let unknown = Scene::from_json_str(
        r#"{"version": 1, "mesh": "m", "elements": [], "behaviors": [{"id": "b", "elements": {"modle": "x"}, "visuals": []}]}"#,
    );
    assert!(unknown.is_err(), "a misspelt selection is an error, not \"all\"");
}

#[test]
fn trusted_writes_skip_model_checks_but_keep_the_models() {
    let scene = Scene::from_json_str(
        r##"{"version": 1, "mesh": "m.glb",
        "models": [{"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
          "contents": [{"@type": "Property", "name": "temperature", "schema": "double", "unit": "degreeCelsius"}]}],
        "twins": [{"$dtId": "r", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 20}],
        "elements": [{"id": "e", "twin": "r", "nodes": ["n"]}]}"##,
    )
    .unwrap();
    let undeclared: json_patch::Patch =
        serde_json::from_str(r#"[{"op": "add", "path": "/occupied", "value": true}]"#).unwrap();
    let mut checked = SceneRuntime::new(scene.clone()).unwrap();
    assert!(checked.apply_patch("r", &undeclared.0, "2026-01-01T00:00:00Z").is_err(), "checked by default");

    let mut viewer = SceneRuntime::new(scene).unwrap();
    viewer.trust_writes();
    viewer.apply_patch("r", &undeclared.0, "2026-01-01T00:00:00Z").unwrap();
    assert_eq!(viewer.graph().twin("r").unwrap().properties["occupied"], true);
    // A snapshot keeps the trust; the models are still there for units and selections.
    let twins = viewer.graph().twins().cloned().collect();
    viewer.replace_twins(twins, Vec::new());
    viewer.apply_patch("r", &undeclared.0, "2026-01-01T00:00:01Z").unwrap();
    assert!(viewer.graph().models().is_some());
}

#[test]
fn an_elements_twin_is_its_primary_twin_by_id() {
    for mut runtime in [runtime(), building()] {
        let by_id = |runtime: &SceneRuntime| -> Vec<Option<String>> {
            let twin =
                |element: &crate::scene::Element| runtime.graph().twin(&element.twin).map(|t| t.id.clone());
            runtime.elements().iter().map(twin).collect()
        };
        let by_index = |runtime: &SceneRuntime| -> Vec<Option<String>> {
            (0..runtime.elements().len()).map(|e| runtime.element_twin(e).map(|t| t.id.clone())).collect()
        };
        assert_eq!(by_index(&runtime), by_id(&runtime));
        assert!(by_index(&runtime).iter().any(Option::is_some));
        // Still after the twins were replaced, one of them gone.
        let mut twins: Vec<_> = runtime.graph().twins().cloned().collect();
        twins.remove(0);
        runtime.replace_twins(twins, runtime.graph().relationships().to_vec());
        assert_eq!(by_index(&runtime), by_id(&runtime));
    }
    assert!(runtime().element_twin(usize::MAX).is_none());
}

#[test]
fn the_element_of_a_twin_is_the_first_bound_to_it() {
    for runtime in [runtime(), building()] {
        for twin in runtime.graph().twins() {
            let expected = runtime.elements().iter().position(|element| element.twin == twin.id);
            assert_eq!(runtime.element_of_twin(&twin.id), expected, "element of {}", twin.id);
        }
    }
    let runtime = runtime();
    assert_eq!(runtime.element_of_twin("r2"), runtime.element_index("b"), "b comes before c");
    assert_eq!(runtime.element_of_twin("BoxA"), None, "no such twin");
}

/// Recorded writes name each element bound to a written twin once, with the twin's newest
/// write time; nothing is recorded while off, and a rebinding drops what was recorded.
#[test]
fn recorded_writes_name_the_elements_bound_to_the_written_twins() {
    let mut runtime = runtime();
    let mut taken = Vec::new();
    runtime.apply_patch("r1", &replace("temperature", json!(19.0)), "2026-01-01T00:00:00Z").unwrap();
    runtime.take_written_elements(&mut taken);
    assert!(taken.is_empty(), "not recording");
    runtime.record_writes(true);
    let early = "2026-01-01T00:00:01Z";
    let late = "2026-01-01T00:00:02Z";
    runtime.apply_patch("r2", &replace("temperature", json!(22.0)), early).unwrap();
    // An unrelated property counts as a write too: staleness is about the twin's data.
    runtime
        .apply_patch("r2", &patch(json!([{"op": "add", "path": "/humidity", "value": 50}])), late)
        .unwrap();
    runtime.take_written_elements(&mut taken);
    let late_millis = crate::expression::parse_rfc3339_millis(late);
    let ids: Vec<(String, Option<f64>)> =
        taken.iter().map(|&(e, time)| (runtime.elements()[e].id.clone(), time)).collect();
    assert_eq!(ids, [("b".to_owned(), late_millis), ("c".to_owned(), late_millis)]);
    taken.clear();
    runtime.take_written_elements(&mut taken);
    assert!(taken.is_empty(), "taken once");
    let epoch = runtime.binding_epoch();
    runtime.apply_patch("r1", &replace("temperature", json!(19.0)), late).unwrap();
    let twins: Vec<_> = runtime.graph().twins().cloned().collect();
    runtime.replace_twins(twins, runtime.graph().relationships().to_vec());
    assert_ne!(runtime.binding_epoch(), epoch);
    runtime.take_written_elements(&mut taken);
    assert!(taken.is_empty(), "a rebinding drops the writes recorded before it");
    runtime.record_writes(false);
    runtime.apply_patch("r1", &replace("temperature", json!(20.0)), late).unwrap();
    runtime.take_written_elements(&mut taken);
    assert!(taken.is_empty());
}
