//! The benchmark workload, shared by the native criterion bench and the wasm bench crate:
//! floors that each contain 20 rooms, a color rule on every room and floor, and optionally a
//! computed rule giving each floor the average temperature of its rooms.

use json_patch::{PatchOperation, ReplaceOperation};
use serde_json::{Map, json};
use twinscene_core::runtime::SceneRuntime;
use twinscene_core::scene::Scene;
use twinscene_core::twin::{Relationship, Twin};

pub const ROOMS_PER_FLOOR: usize = 20;
pub const TIMESTAMP: &str = "2026-01-01T00:00:00Z";

/// A scene of about `twins` twins (rooms and their floors), one element per twin.
pub fn scene(twins: usize, floor_average: bool) -> Scene {
    let floors = twins.div_ceil(ROOMS_PER_FLOOR + 1).max(1);
    let rooms = twins.saturating_sub(floors).max(1);
    let mut all = Vec::with_capacity(floors + rooms);
    let mut relationships = Vec::with_capacity(rooms);
    let mut elements = Vec::with_capacity(floors + rooms);
    for f in 0..floors {
        all.push(Twin::new(format!("floor-{f}"), "dtmi:bench:Floor;1"));
        elements.push(
            json!({"id": format!("floor-{f}"), "twin": format!("floor-{f}"), "nodes": [format!("F{f}")]}),
        );
    }
    for r in 0..rooms {
        let mut room = Twin::new(format!("room-{r}"), "dtmi:bench:Room;1");
        room.properties.insert("temperature", json!(15 + r % 15));
        all.push(room);
        relationships.push(Relationship {
            id: format!("contains-{r}"),
            source: format!("floor-{}", r / ROOMS_PER_FLOOR % floors),
            target: format!("room-{r}"),
            name: "contains".into(),
            properties: Map::new(),
        });
        elements.push(
            json!({"id": format!("room-{r}"), "twin": format!("room-{r}"), "nodes": [format!("R{r}")]}),
        );
    }
    let computed = if floor_average {
        json!([{"id": "floor-average", "model": "dtmi:bench:Floor;1", "property": "avgTemperature",
                "expression": "avg(related(twin, 'contains').temperature)"}])
    } else {
        json!([])
    };
    let mut scene: Scene = serde_json::from_value(json!({
        "version": 1, "mesh": "bench.glb",
        "elements": elements,
        "computed": computed,
        "behaviors": [{"id": "temperature", "elements": "all", "visuals": [{"type": "color",
            "expression": "PrimaryTwin.temperature ?? PrimaryTwin.avgTemperature",
            "ranges": [{"min": null, "max": 18, "color": "#2563eb"}, {"min": 18, "max": 22, "color": "#16a34a"},
                       {"min": 22, "max": 26, "color": "#f59e0b"}, {"min": 26, "max": null, "color": "#dc2626"}]}]}]
    }))
    .expect("the workload scene is valid");
    scene.twins = all;
    scene.relationships = relationships;
    scene
}

/// `count` single-property updates of pseudo-random rooms, with values that cross color ranges.
pub fn updates(twins: usize, count: usize) -> Vec<(String, Vec<PatchOperation>)> {
    let floors = twins.div_ceil(ROOMS_PER_FLOOR + 1).max(1);
    let rooms = twins.saturating_sub(floors).max(1);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|k| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let room = (state >> 33) as usize % rooms;
            let value = 12.0 + (k * 7 % 20) as f64 + 0.5;
            let op = PatchOperation::Replace(ReplaceOperation {
                path: "/temperature".parse().expect("a valid pointer"),
                value: json!(value),
            });
            (format!("room-{room}"), vec![op])
        })
        .collect()
}

pub fn runtime(twins: usize, floor_average: bool) -> SceneRuntime {
    SceneRuntime::new(scene(twins, floor_average)).expect("the workload runtime builds")
}

/// Applies every update; returns how many style changes they caused. The changes go to one
/// buffer, emptied after each update as a live consumer would after painting them.
pub fn apply(runtime: &mut SceneRuntime, updates: &[(String, Vec<PatchOperation>)]) -> usize {
    let mut count = 0;
    let mut changes = Vec::new();
    for (twin, patch) in updates {
        if runtime.apply_patch_into(twin, patch, TIMESTAMP, &mut changes).is_ok() {
            count += changes.len();
        }
        changes.clear();
    }
    count
}
