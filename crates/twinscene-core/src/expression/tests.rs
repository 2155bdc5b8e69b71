use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::graph::TwinGraph;
use crate::twin::{Relationship, Twin};

fn twin(id: &str, properties: Value) -> Twin {
    let mut twin = Twin::new(id, "dtmi:test:Thing;1");
    if let Value::Object(map) = properties {
        twin.properties = map.into();
    }
    twin
}

fn contains(id: &str, source: &str, target: &str) -> Relationship {
    Relationship {
        id: id.into(),
        source: source.into(),
        target: target.into(),
        name: "contains".into(),
        properties: Map::new(),
    }
}

fn building() -> TwinGraph {
    let mut room1 = twin("room1", json!({"temperature": 20, "alarm": true, "name": "Kitchen"}));
    room1.last_update_time.insert("temperature", "2026-01-01T00:00:00Z".into());
    TwinGraph::new(
        [
            twin("floor", json!({"level": 1, "hvac": {"mode": "heat", "setpoints": [19, 21]}})),
            room1,
            twin("room2", json!({"temperature": 24, "alarm": false})),
            twin("room3", json!({"alarm": true})),
        ],
        vec![
            contains("c1", "floor", "room1"),
            contains("c2", "floor", "room2"),
            contains("c3", "floor", "room3"),
        ],
    )
}

fn eval_on(graph: &TwinGraph, primary: &str, source: &str) -> Option<Value> {
    let expression = Expression::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let scope = Scope { now_millis: Some(1_767_225_660_000.0), ..Scope::new(graph).with_primary_id(primary) };
    expression.evaluate_json(&scope)
}

fn eval(source: &str) -> Option<Value> {
    eval_on(&building(), "room1", source)
}

#[test]
fn literals_and_arithmetic_follow_javascript() {
    for (source, expected) in [
        ("1 + 2 * 3", json!(7.0)),
        ("(1 + 2) * 3", json!(9.0)),
        ("2 ** 3 ** 2", json!(512.0)),
        ("7 % 4", json!(3.0)),
        ("-3 + +'4'", json!(1.0)),
        ("'a' + 1 + 2", json!("a12")),
        ("1 + 2 + 'a'", json!("3a")),
        ("0x10 + .5 + 1e2", json!(116.5)),
        ("null + 1", json!(1.0)),
        ("true + true", json!(2.0)),
        ("\"double\" + 'single'", json!("doublesingle")),
        ("'it\\'s\\n'", json!("it's\n")),
    ] {
        assert_eq!(eval(source), Some(expected), "{source}");
    }
    // Infinity has no JSON form, but it is a value.
    let graph = building();
    let infinity = Expression::parse("1 / 0").unwrap();
    assert_eq!(infinity.evaluate(&Scope::new(&graph)), Some(EvalValue::Number(f64::INFINITY)));
}

#[test]
fn comparisons_equality_logic_and_ternary() {
    for (source, expected) in [
        ("3 > 2 && 2 >= 2", json!(true)),
        ("'b' > 'a'", json!(true)),
        ("'10' < 9", json!(false)),
        ("1 == '1'", json!(true)),
        ("1 === '1'", json!(false)),
        ("null == undefined", json!(true)),
        ("null === undefined", json!(false)),
        ("true == 1", json!(true)),
        ("1 != 2", json!(true)),
        ("1 !== 1", json!(false)),
        ("0 || 'fallback'", json!("fallback")),
        ("'' && 'x'", json!("")),
        ("null ?? 5", json!(5.0)),
        ("0 ?? 5", json!(0.0)),
        ("!0", json!(true)),
        ("1 > 2 ? 'yes' : 2 > 1 ? 'second' : 'no'", json!("second")),
        ("typeof 'x'", json!("string")),
        ("NaN == NaN", json!(false)),
    ] {
        assert_eq!(eval(source), Some(expected), "{source}");
    }
}

#[test]
fn twin_properties_members_and_indexes() {
    let graph = building();
    assert_eq!(eval_on(&graph, "floor", "PrimaryTwin.hvac.mode"), Some(json!("heat")));
    assert_eq!(eval_on(&graph, "floor", "twin.hvac['mode']"), Some(json!("heat")));
    assert_eq!(eval_on(&graph, "floor", "twin.hvac.setpoints[1]"), Some(json!(21.0)));
    assert_eq!(eval_on(&graph, "floor", "twin.hvac.setpoints.length"), Some(json!(2.0)));
    assert_eq!(eval_on(&graph, "floor", "twin['$dtId']"), Some(json!("floor")));
    assert_eq!(eval_on(&graph, "floor", "twin.$dtId"), Some(json!("floor")));
    assert_eq!(eval_on(&graph, "floor", "twin.missing"), None);
    assert_eq!(eval_on(&graph, "floor", "twin.missing.deeper"), None, "a TypeError in JavaScript");
    assert_eq!(eval_on(&graph, "floor", "twin.missing?.deeper ?? 'none'"), Some(json!("none")));
    assert_eq!(eval_on(&graph, "nobody", "twin.level"), None);
}

#[test]
fn missing_values_never_look_like_normal_ones() {
    assert_eq!(eval("PrimaryTwin.humidity > 50"), None);
    assert_eq!(eval("PrimaryTwin.humidity + 1"), None);
    assert_eq!(eval("`humidity ${PrimaryTwin.humidity}`"), None);
    assert_eq!(eval("PrimaryTwin.humidity === undefined"), Some(json!(true)));
    assert_eq!(eval("PrimaryTwin.humidity ?? 0"), Some(json!(0.0)));
    assert_eq!(eval("0 / 0"), None, "NaN is no value");
}

#[test]
fn template_literals_and_text() {
    assert_eq!(eval("`${PrimaryTwin.name} is ${PrimaryTwin.temperature}°C`"), Some(json!("Kitchen is 20°C")));
    assert_eq!(eval("`nested ${`inner ${1 + 1}`}`"), Some(json!("nested inner 2")));
    assert_eq!(eval("`a\\`b`"), Some(json!("a`b")));
    let graph = building();
    let scope = Scope::new(&graph).with_primary_id("room1");
    let text = Expression::parse_text("Temp is ${PrimaryTwin.temperature.toFixed(1)} now").unwrap();
    assert_eq!(text.evaluate_text(&scope).as_deref(), Some("Temp is 20.0 now"));
    let plain = Expression::parse_text("Temp too hot").unwrap();
    assert_eq!(plain.evaluate_text(&scope).as_deref(), Some("Temp too hot"));
}

#[test]
fn math_string_and_number_functions() {
    for (source, expected) in [
        ("Math.max(1, 5, 3)", json!(5.0)),
        ("Math.min()", Value::Null),
        ("Math.round(2.5) + Math.round(-2.5)", json!(1.0)),
        ("Math.abs(-2) + Math.floor(1.7) + Math.ceil(1.2)", json!(5.0)),
        ("Math.sqrt(16) + Math.pow(2, 10)", json!(1028.0)),
        ("Math.PI > 3.14", json!(true)),
        ("'Kitchen'.toUpperCase()", json!("KITCHEN")),
        ("' x '.trim().length", json!(1.0)),
        ("'Kitchen'.includes('itch')", json!(true)),
        ("'Kitchen'.slice(-3)", json!("hen")),
        ("'Kitchen'.substring(4, 1)", json!("itc")),
        ("'a,b,c'.split(',').length", json!(3.0)),
        ("'a,b,c'.split(',').join('-')", json!("a-b-c")),
        ("'7'.padStart(3, '0')", json!("007")),
        ("'aXbX'.replaceAll('X', '')", json!("ab")),
        ("(21.456).toFixed(1)", json!("21.5")),
        ("(1234.5).toPrecision(2)", json!("1.2e+3")),
        ("Number('42') + parseFloat('1.5px') + parseInt('ff', 16)", json!(298.5)),
        ("String(12) + Boolean('')", json!("12false")),
        ("isNaN('x') && isFinite(3)", json!(true)),
        ("[1, 2, 3].includes(2)", json!(true)),
    ] {
        if expected.is_null() {
            // Infinity: no JSON form.
            assert!(eval(source).is_none(), "{source}");
            continue;
        }
        assert_eq!(eval(source), Some(expected), "{source}");
    }
}

#[test]
fn graph_functions_aggregate_over_relationships() {
    let graph = building();
    let on_floor = |source: &str| eval_on(&graph, "floor", source);
    assert_eq!(on_floor("count(related(twin, 'contains'))"), Some(json!(3.0)));
    assert_eq!(on_floor("avg(related(twin, 'contains').temperature)"), Some(json!(22.0)));
    assert_eq!(on_floor("sum(related(twin, 'contains').alarm)"), Some(json!(2.0)));
    assert_eq!(on_floor("min(related(twin, 'contains').temperature)"), Some(json!(20.0)));
    assert_eq!(on_floor("max(related(twin, 'contains').temperature, 30)"), Some(json!(30.0)));
    assert_eq!(on_floor("any(related(twin, 'contains').alarm)"), Some(json!(true)));
    assert_eq!(on_floor("all(related(twin, 'contains').alarm)"), Some(json!(false)));
    assert_eq!(on_floor("count(related(twin, 'contains').temperature)"), Some(json!(2.0)));
    assert_eq!(on_floor("related(twin, 'contains')[0].$dtId"), Some(json!("room1")));
    assert_eq!(on_floor("count(related(related(twin, 'contains'), 'contains'))"), Some(json!(0.0)));
    assert_eq!(on_floor("avg(related(twin, 'feeds').temperature)"), None, "average of nothing");
    assert_eq!(on_floor("sum(related(twin, 'feeds').temperature)"), Some(json!(0.0)));
}

#[test]
fn aggregates_over_related_twins_agree_with_the_general_path() {
    // `f(related(x, r).p)` is computed while walking the relationships; wrapping the list in an
    // index expression takes the general path (build the list, then aggregate).
    let graph = building();
    for function in ["sum", "avg", "min", "max", "count", "any", "all"] {
        for property in ["temperature", "alarm", "name", "missing", "$dtId"] {
            let fused = format!("{function}(related(twin, 'contains').{property})");
            let general = format!("{function}([related(twin, 'contains').{property}][0])");
            assert_eq!(eval_on(&graph, "floor", &fused), eval_on(&graph, "floor", &general), "{fused}");
        }
    }
}

#[test]
fn age_uses_the_callers_clock() {
    let graph = building();
    // now = 2026-01-01T00:01:00Z, temperature written at 2026-01-01T00:00:00Z.
    assert_eq!(eval_on(&graph, "room1", "age(PrimaryTwin.temperature)"), Some(json!(60.0)));
    assert_eq!(eval_on(&graph, "room1", "age(PrimaryTwin.alarm)"), None, "never written");
    let expression = Expression::parse("age(twin.temperature) > 30").unwrap();
    let scope = Scope::new(&graph).with_primary_id("room1");
    assert_eq!(expression.evaluate(&scope), None, "no clock, no age");
    assert!(Expression::parse("age(5)").is_err());
}

#[test]
fn parse_errors_carry_positions() {
    for (source, position, fragment) in [
        ("PrimaryTwin.temperature >", 25, "expected a value"),
        ("PrimaryTwin.", 12, "expected a property name"),
        ("1 +* 2", 3, "expected a value"),
        ("a = 1", 2, "assignment"),
        ("'open", 0, "unterminated string"),
        ("`open ${1}", 0, "unterminated template"),
        ("Math.nope(1)", 5, "unknown function"),
        ("'x'.frobnicate()", 4, "unknown method"),
        ("related(twin)", 0, "takes 2"),
        ("count", 5, "call it as"),
        ("1 2", 2, "unexpected number"),
        ("(1", 2, "expected \")\""),
        ("a & b", 2, "bitwise"),
    ] {
        let error = Expression::parse(source).unwrap_err();
        assert_eq!(error.position, position, "{source}: {error}");
        assert!(error.message.contains(fragment), "{source}: {error}");
    }
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(Expression::parse(&deep).unwrap_err().message.contains("nests too deeply"));
    let deep_unary = format!("{}1", "-".repeat(500));
    assert!(Expression::parse(&deep_unary).is_err());
}

#[test]
fn dependencies_are_extracted_at_parse_time() {
    let expression =
        Expression::parse("avg(related(twin, 'contains').temperature) > alias.limit ? twin['mode'] : 0")
            .unwrap();
    let dependencies = expression.dependencies();
    assert!(dependencies.primary);
    assert_eq!(dependencies.aliases, ["alias"]);
    assert_eq!(dependencies.properties, ["temperature", "limit", "mode"]);
    assert_eq!(dependencies.relationships, ["contains"]);
    assert!(!dependencies.any_property && !dependencies.any_relationship && !dependencies.clock);
    assert!(dependencies.reads_property("limit") && !dependencies.reads_property("humidity"));
    let dynamic = Expression::parse("twin[twin.which]").unwrap();
    assert!(dynamic.dependencies().any_property);
    assert_eq!(Expression::parse("PrimaryTwin.a.b").unwrap().primary_property_path(), Some(vec!["a", "b"]));
    assert_eq!(Expression::parse("PrimaryTwin.a > 1").unwrap().primary_property_path(), None);
}

#[test]
fn evaluation_records_the_twins_it_reads() {
    let graph = building();
    let expression = Expression::parse("avg(related(twin, 'contains').temperature)").unwrap();
    let mut read = Vec::new();
    let scope = Scope::new(&graph).with_primary_id("floor");
    expression.evaluate_recording(&scope, &mut read).unwrap();
    let mut ids: Vec<_> = read.iter().map(|&i| graph.twin_at(i).unwrap().id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["floor", "room1", "room2", "room3"]);
}

proptest! {
    /// Parsing arbitrary text never panics, and evaluating whatever parses never panics.
    #[test]
    fn arbitrary_text_never_panics(source in "[ -~]{0,40}") {
        let graph = building();
        if let Ok(expression) = Expression::parse(&source) {
            let scope = Scope { now_millis: Some(0.0), ..Scope::new(&graph).with_primary_id("floor") };
            let _ = expression.evaluate(&scope);
        }
        let _ = Expression::parse_text(&source);
    }

    /// Expressions built from the grammar's pieces parse, and never panic when evaluated.
    #[test]
    fn generated_expressions_parse_and_evaluate(parts in proptest::collection::vec(
        prop_oneof![
            Just("twin.temperature"), Just("1"), Just("'a'"), Just("null"), Just("related(twin, 'contains').alarm"),
            Just("twin.hvac.setpoints"), Just("(2 ** 0.5)"), Just("`t${twin.level}`"), Just("Math.max(1, twin.level)"),
        ],
        1..6,
    ), operators in proptest::collection::vec(
        prop_oneof![Just(" + "), Just(" * "), Just(" > "), Just(" === "), Just(" && "), Just(" ?? "), Just(" % ")],
        5,
    )) {
        let mut source = parts[0].to_owned();
        for (part, operator) in parts[1..].iter().zip(&operators) {
            source.push_str(operator);
            source.push_str(part);
        }
        let expression = Expression::parse(&source).unwrap();
        let graph = building();
        let _ = expression.evaluate(&Scope::new(&graph).with_primary_id("floor"));
    }
}

#[test]
fn aggregates_over_tracked_numbers_equal_those_over_the_twins() {
    let numbers = |values: &[f64]| {
        let rooms: Vec<Twin> = values
            .iter()
            .enumerate()
            .map(|(i, value)| twin(&format!("r{i}"), json!({"t": value, "label": "x"})))
            .collect();
        let relationships =
            (0..values.len()).map(|i| contains(&format!("c{i}"), "floor", &format!("r{i}"))).collect();
        TwinGraph::new(std::iter::once(twin("floor", json!({}))).chain(rooms), relationships)
    };
    for values in [&[][..], &[0.0], &[2.5, -1.0, 0.0, 7.25], &[3.0, 3.0]] {
        let plain = numbers(values);
        let mut tracked = plain.clone();
        tracked.track_numbers(["t"]);
        for function in ["sum", "avg", "min", "max", "count", "any", "all"] {
            let source = format!("{function}(related(twin, 'contains').t)");
            let expected = eval_on(&plain, "floor", &source);
            assert_eq!(eval_on(&tracked, "floor", &source), expected, "{source} over {values:?}");
        }
        // A value that is not a number leaves the tracked path for the twins, whole.
        let mut mixed = tracked.clone();
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/t", "value": "warm"}])).unwrap();
        if !values.is_empty() {
            mixed.apply_patch("r0", &patch, "t").unwrap();
            let mut reference = plain.clone();
            reference.apply_patch("r0", &patch, "t").unwrap();
            for function in ["sum", "avg", "count", "all"] {
                let source = format!("{function}(related(twin, 'contains').t)");
                assert_eq!(
                    eval_on(&mixed, "floor", &source),
                    eval_on(&reference, "floor", &source),
                    "{source}"
                );
            }
        }
    }
}
