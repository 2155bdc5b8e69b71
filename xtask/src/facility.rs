//! `cargo xtask gen-facility`: a large facility made from one of the shared IFC buildings
//! (GLB), tiled N×N, with a matching scene file and twin graph, for benchmarks.
//!
//! The GLB stays small: the source meshes and the BIN chunk are reused as they are; only nodes
//! are duplicated (a unique name and a translation per tile). `--lowpoly` replaces each
//! element by its bounding box instead: one shared unit-cube mesh, each node scaled and moved
//! into place (bounds from the POSITION accessors' min/max), so 10^6 elements fit in memory.
//!
//! Twin graph: site → building (one per tile) → floor (elements grouped by their base
//! elevation) → element. Each element is a twin with a `temperature`; the scene colors
//! elements by temperature and raises a warning badge from 28 °C.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Where the shared reference buildings are, relative to the repository root (overridable).
const SHARED_GLB_DIR: &str = "../shared/data/glb";
/// Temperatures at or above this raise the alert.
const ALERT_AT: f64 = 28.0;
const MODEL_PREFIX: &str = "dtmi:twinscene:facility";

pub struct Options {
    pub tiles: u32,
    pub lowpoly: bool,
    pub source: String,
    pub out: PathBuf,
}

/// What was written, for the caller's message and for the bench.
pub struct Generated {
    pub scene: PathBuf,
    pub glb: PathBuf,
    pub elements: usize,
    pub floors: usize,
}

fn source_path(source: &str) -> Result<PathBuf, String> {
    let file = match source {
        "office_a" => "Office_A_20110811.glb",
        "duplex" => "duplex.glb",
        "fzk" => "AC20-FZK-Haus.glb",
        path if path.ends_with(".glb") => return Ok(PathBuf::from(path)),
        other => return Err(format!("unknown --source {other:?}: office_a, duplex, fzk or a .glb path")),
    };
    let dir = std::env::var("TWINSCENE_SHARED_GLB").unwrap_or_else(|_| SHARED_GLB_DIR.to_owned());
    Ok(Path::new(&dir).join(file))
}

/// A GLB split into its JSON and BIN chunks.
struct Glb {
    json: Value,
    bin: Vec<u8>,
}

fn read_glb(path: &Path) -> Result<Glb, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let u32_at = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("{}: truncated GLB", path.display()))
    };
    if bytes.get(0..4) != Some(b"glTF") || u32_at(4)? != 2 {
        return Err(format!("{}: not a glTF 2.0 binary (GLB)", path.display()));
    }
    let json_len = u32_at(12)? as usize;
    if u32_at(16)? != 0x4E4F_534A {
        return Err(format!("{}: the first GLB chunk is not JSON", path.display()));
    }
    let json_bytes = bytes.get(20..20 + json_len).ok_or("truncated JSON chunk")?;
    let json: Value =
        serde_json::from_slice(json_bytes).map_err(|e| format!("{}: GLB JSON: {e}", path.display()))?;
    let bin_at = 20 + json_len;
    let bin = if bin_at + 8 <= bytes.len() && u32_at(bin_at + 4)? == 0x004E_4942 {
        let len = u32_at(bin_at)? as usize;
        bytes.get(bin_at + 8..bin_at + 8 + len).ok_or("truncated BIN chunk")?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Glb { json, bin })
}

fn write_glb(path: &Path, json: &[u8], bin: &[u8]) -> Result<(), String> {
    let pad = |n: usize| (4 - n % 4) % 4;
    let (json_pad, bin_pad) = (pad(json.len()), pad(bin.len()));
    let mut total = 12 + 8 + json.len() + json_pad;
    if !bin.is_empty() {
        total += 8 + bin.len() + bin_pad;
    }
    let total = u32::try_from(total).map_err(|_| "the GLB would exceed 4 GiB".to_owned())?;
    let file = File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut w = BufWriter::new(file);
    let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()));
    put(b"glTF")?;
    put(&2u32.to_le_bytes())?;
    put(&total.to_le_bytes())?;
    put(&((json.len() + json_pad) as u32).to_le_bytes())?;
    put(b"JSON")?;
    put(json)?;
    put(&b"   "[..json_pad])?;
    if !bin.is_empty() {
        put(&((bin.len() + bin_pad) as u32).to_le_bytes())?;
        put(b"BIN\0")?;
        put(bin)?;
        put(&[0u8; 3][..bin_pad])?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}

type Mat4 = [f64; 16];

const IDENTITY: Mat4 = [1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.];

fn floats<const N: usize>(value: Option<&Value>) -> Option<[f64; N]> {
    let array = value?.as_array()?;
    let mut out = [0.0; N];
    if array.len() != N {
        return None;
    }
    for (slot, v) in out.iter_mut().zip(array) {
        *slot = v.as_f64()?;
    }
    Some(out)
}

/// The node's local transform (column-major), from `matrix` or translation/rotation/scale.
fn local_matrix(node: &Value) -> Mat4 {
    if let Some(m) = floats::<16>(node.get("matrix")) {
        return m;
    }
    let t = floats::<3>(node.get("translation")).unwrap_or([0.0; 3]);
    let [x, y, z, w] = floats::<4>(node.get("rotation")).unwrap_or([0.0, 0.0, 0.0, 1.0]);
    let s = floats::<3>(node.get("scale")).unwrap_or([1.0; 3]);
    let r = [
        [1. - 2. * (y * y + z * z), 2. * (x * y + z * w), 2. * (x * z - y * w)],
        [2. * (x * y - z * w), 1. - 2. * (x * x + z * z), 2. * (y * z + x * w)],
        [2. * (x * z + y * w), 2. * (y * z - x * w), 1. - 2. * (x * x + y * y)],
    ];
    let mut m = IDENTITY;
    for col in 0..3 {
        for row in 0..3 {
            m[col * 4 + row] = r[col][row] * s[col];
        }
    }
    m[12..15].copy_from_slice(&t);
    m
}

fn transform_point(m: &Mat4, p: [f64; 3]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (row, slot) in out.iter_mut().enumerate() {
        *slot = m[row] * p[0] + m[4 + row] * p[1] + m[8 + row] * p[2] + m[12 + row];
    }
    out
}

/// An axis-aligned box in world coordinates (glTF: Y up).
#[derive(Clone, Copy)]
struct Aabb {
    min: [f64; 3],
    max: [f64; 3],
}

impl Aabb {
    const EMPTY: Aabb = Aabb { min: [f64::INFINITY; 3], max: [f64::NEG_INFINITY; 3] };

    fn add(&mut self, p: [f64; 3]) {
        for (i, v) in p.into_iter().enumerate() {
            self.min[i] = self.min[i].min(v);
            self.max[i] = self.max[i].max(v);
        }
    }

    fn is_empty(&self) -> bool {
        self.min[0] > self.max[0]
    }
}

/// One mesh node of the source: an element of every tile.
struct SourceElement {
    node: usize,
    name: String,
    label: String,
    matrix: Mat4,
    bounds: Aabb,
}

/// The source's mesh nodes and their world bounds (from the accessors' min/max).
fn source_elements(json: &Value) -> Result<Vec<SourceElement>, String> {
    let empty = Vec::new();
    let nodes = json.get("nodes").and_then(Value::as_array).unwrap_or(&empty);
    let meshes = json.get("meshes").and_then(Value::as_array).unwrap_or(&empty);
    let accessors = json.get("accessors").and_then(Value::as_array).unwrap_or(&empty);
    let mut out = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        if node.get("children").is_some_and(|c| c.as_array().is_some_and(|c| !c.is_empty())) {
            return Err(format!(
                "node {index} has children: only flat node lists (as IfcConvert writes) are tiled"
            ));
        }
        let Some(mesh) = node.get("mesh").and_then(Value::as_u64) else { continue };
        let name = node.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let matrix = local_matrix(node);
        let mut bounds = Aabb::EMPTY;
        let primitives = meshes
            .get(mesh as usize)
            .and_then(|m| m.get("primitives"))
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for primitive in primitives {
            let Some(position) = primitive.pointer("/attributes/POSITION").and_then(Value::as_u64) else {
                continue;
            };
            let accessor = accessors.get(position as usize);
            let (Some(min), Some(max)) = (
                floats::<3>(accessor.and_then(|a| a.get("min"))),
                floats::<3>(accessor.and_then(|a| a.get("max"))),
            ) else {
                return Err(format!("accessor {position} (POSITION of node {index}) has no min/max"));
            };
            for corner in 0..8 {
                let pick = |axis: usize| if corner & (1 << axis) == 0 { min[axis] } else { max[axis] };
                bounds.add(transform_point(&matrix, [pick(0), pick(1), pick(2)]));
            }
        }
        if bounds.is_empty() {
            continue;
        }
        let label = meshes
            .get(mesh as usize)
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(|n| n.trim_end_matches("-world-coords").to_owned())
            .unwrap_or_else(|| index.to_string());
        out.push(SourceElement { node: index, name: name.to_owned(), label, matrix, bounds });
    }
    if out.is_empty() {
        return Err("the source GLB has no named mesh nodes".into());
    }
    Ok(out)
}

/// Floor levels of the building: elevations where many elements start, merged when closer
/// than 2 m; each element belongs to the highest level at or below its base (+0.5 m).
fn floor_levels(elements: &[SourceElement]) -> (Vec<f64>, Vec<usize>) {
    let bases: Vec<f64> = elements.iter().map(|e| e.bounds.min[1]).collect();
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for base in &bases {
        *counts.entry((base * 10.0).round() as i64).or_default() += 1;
    }
    let threshold = (elements.len() / 30).max(3);
    let mut levels: Vec<f64> = Vec::new();
    for (&decimeters, &count) in &counts {
        let elevation = decimeters as f64 / 10.0;
        if count >= threshold && levels.last().is_none_or(|last| elevation - last >= 2.0) {
            levels.push(elevation);
        }
    }
    if levels.is_empty() {
        levels.push(bases.iter().copied().fold(f64::INFINITY, f64::min));
    }
    let floor_of =
        bases.iter().map(|base| levels.iter().rposition(|level| *level <= base + 0.5).unwrap_or(0)).collect();
    (levels, floor_of)
}

/// SplitMix64: a deterministic temperature per element.
fn unit_random(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Serialize)]
struct NodeOut {
    name: String,
    mesh: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    matrix: Option<[f32; 16]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    translation: Option<[f32; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<[f32; 3]>,
}

#[derive(Serialize)]
struct GltfOut<'a> {
    scene: u32,
    scenes: [Value; 1],
    nodes: &'a [NodeOut],
    #[serde(flatten)]
    rest: Map<String, Value>,
}

fn node_name(source: &str, x: u32, z: u32) -> String {
    format!("{source}_{x}_{z}")
}

fn building_id(x: u32, z: u32) -> String {
    format!("B{x}-{z}")
}

pub fn generate(options: &Options) -> Result<Generated, String> {
    if options.tiles == 0 {
        return Err("--tiles must be at least 1".into());
    }
    let source_path = source_path(&options.source)?;
    let source = read_glb(&source_path)?;
    let elements = source_elements(&source.json)?;
    let (levels, floor_of) = floor_levels(&elements);

    let mut footprint = Aabb::EMPTY;
    for e in &elements {
        footprint.add(e.bounds.min);
        footprint.add(e.bounds.max);
    }
    // Tiles sit side by side on the ground plane (X, Z) with a gap of a fifth of the building.
    let step = [(footprint.max[0] - footprint.min[0]) * 1.2, (footprint.max[2] - footprint.min[2]) * 1.2];
    let n = options.tiles;
    let offset = |x: u32, z: u32| [f64::from(x) * step[0], 0.0, f64::from(z) * step[1]];

    let stem = source_path.file_stem().and_then(|s| s.to_str()).unwrap_or("facility");
    let label = if options.source.ends_with(".glb") { stem } else { options.source.as_str() };
    let dir = options.out.join(format!("{label}-{n}x{n}{}", if options.lowpoly { "-lowpoly" } else { "" }));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let glb_path = dir.join("facility.glb");
    let scene_path = dir.join("scene.json");

    // The GLB.
    let total = elements.len() * (n as usize) * (n as usize);
    let mut nodes = Vec::with_capacity(total);
    for x in 0..n {
        for z in 0..n {
            let [tx, _, tz] = offset(x, z);
            for e in &elements {
                let name = node_name(&e.name, x, z);
                if options.lowpoly {
                    let b = &e.bounds;
                    let center = |i: usize| ((b.min[i] + b.max[i]) / 2.0) as f32;
                    let size = |i: usize| ((b.max[i] - b.min[i]).max(1e-3)) as f32;
                    nodes.push(NodeOut {
                        name,
                        mesh: 0,
                        matrix: None,
                        translation: Some([center(0) + tx as f32, center(1), center(2) + tz as f32]),
                        scale: Some([size(0), size(1), size(2)]),
                    });
                } else {
                    let mut m = e.matrix;
                    m[12] += tx;
                    m[14] += tz;
                    let mesh = source.json["nodes"][e.node]["mesh"].as_u64().unwrap_or_default();
                    nodes.push(NodeOut {
                        name,
                        mesh,
                        matrix: Some(m.map(|v| v as f32)),
                        translation: None,
                        scale: None,
                    });
                }
            }
        }
    }
    let scenes = [json!({"nodes": (0..nodes.len()).collect::<Vec<_>>()})];
    let (rest, bin) = if options.lowpoly { unit_cube() } else { reused_meshes(&source)? };
    let gltf = GltfOut { scene: 0, scenes, nodes: &nodes, rest };
    let json_bytes = serde_json::to_vec(&gltf).map_err(|e| format!("GLB JSON: {e}"))?;
    drop(nodes);
    write_glb(&glb_path, &json_bytes, &bin)?;
    drop(json_bytes);

    write_scene(&scene_path, options, label, &elements, &levels, &floor_of)?;
    Ok(Generated { scene: scene_path, glb: glb_path, elements: total, floors: levels.len() })
}

/// Everything of the source's JSON but its nodes and scenes; the BIN chunk unchanged.
fn reused_meshes(source: &Glb) -> Result<(Map<String, Value>, Vec<u8>), String> {
    let mut rest = source.json.as_object().cloned().ok_or("the GLB JSON is not an object")?;
    for key in ["nodes", "scenes", "scene"] {
        rest.remove(key);
    }
    Ok((rest, source.bin.clone()))
}

/// One unit cube (8 corners, 12 triangles) and one grey material, for `--lowpoly`.
fn unit_cube() -> (Map<String, Value>, Vec<u8>) {
    const INDICES: [u16; 36] = [
        0, 2, 1, 1, 2, 3, // -z
        4, 5, 6, 5, 7, 6, // +z
        0, 1, 4, 1, 5, 4, // -y
        2, 6, 3, 3, 6, 7, // +y
        0, 4, 2, 2, 4, 6, // -x
        1, 3, 5, 3, 7, 5, // +x
    ];
    let mut bin = Vec::with_capacity(72 + 96);
    for index in INDICES {
        bin.extend_from_slice(&index.to_le_bytes());
    }
    for corner in 0..8u32 {
        for axis in 0..3 {
            let v: f32 = if corner & (1 << axis) == 0 { -0.5 } else { 0.5 };
            bin.extend_from_slice(&v.to_le_bytes());
        }
    }
    let rest = json!({
        "asset": {"version": "2.0", "generator": "twinscene xtask gen-facility --lowpoly"},
        "meshes": [{"name": "unit-box", "primitives": [{"attributes": {"POSITION": 1}, "indices": 0, "material": 0, "mode": 4}]}],
        "materials": [{"name": "element", "doubleSided": true,
                       "pbrMetallicRoughness": {"baseColorFactor": [0.75, 0.75, 0.75, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.9}}],
        "accessors": [
            {"bufferView": 0, "componentType": 5123, "count": 36, "type": "SCALAR", "min": [0], "max": [7]},
            {"bufferView": 1, "componentType": 5126, "count": 8, "type": "VEC3", "min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5]}
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 72, "target": 34963},
            {"buffer": 0, "byteOffset": 72, "byteLength": 96, "target": 34962}
        ],
        "buffers": [{"byteLength": 168}]
    });
    (rest.as_object().cloned().unwrap_or_default(), bin)
}

fn models() -> Value {
    let model = |name: &str| format!("{MODEL_PREFIX}:{name};1");
    let interface = |name: &str, contents: Value| {
        json!({"@id": model(name), "@type": "Interface", "@context": "dtmi:dtdl:context;3",
               "displayName": name, "contents": contents})
    };
    json!([
        interface(
            "Site",
            json!([
                {"@type": "Property", "name": "name", "schema": "string"},
                {"@type": "Relationship", "name": "contains", "target": model("Building")}
            ])
        ),
        interface(
            "Building",
            json!([
                {"@type": "Property", "name": "name", "schema": "string"},
                {"@type": "Property", "name": "tileX", "schema": "integer"},
                {"@type": "Property", "name": "tileZ", "schema": "integer"},
                {"@type": "Relationship", "name": "contains", "target": model("Floor")}
            ])
        ),
        interface(
            "Floor",
            json!([
                {"@type": "Property", "name": "name", "schema": "string"},
                {"@type": "Property", "name": "level", "schema": "integer"},
                {"@type": "Property", "name": "elevation", "schema": "double"},
                {"@type": "Relationship", "name": "contains", "target": model("Element")}
            ])
        ),
        interface(
            "Element",
            json!([
                {"@type": "Property", "name": "name", "schema": "string"},
                {"@type": "Property", "name": "ifcGuid", "schema": "string"},
                {"@type": ["Property", "Temperature"], "name": "temperature", "schema": "double", "unit": "degreeCelsius"}
            ])
        )
    ])
}

fn behaviors() -> Value {
    json!([
        {"id": "temperature", "name": "Temperature", "elements": "all", "layers": ["temperature"], "visuals": [
            {"type": "color", "expression": "PrimaryTwin.temperature", "ranges": [
                {"min": null, "max": 18, "color": "#2563eb"},
                {"min": 18, "max": 22, "color": "#16a34a"},
                {"min": 22, "max": 26, "color": "#f59e0b"},
                {"min": 26, "max": null, "color": "#dc2626"}]}]},
        {"id": "overheating", "name": "Overheating", "elements": "all", "layers": ["alarms"], "visuals": [
            {"type": "valueRanges", "expression": "PrimaryTwin.temperature", "ranges": [
                {"values": [ALERT_AT, "Infinity"], "icon": "Warning", "severity": "warning", "color": "#dc2626",
                 "label": "${PrimaryTwin.name}: ${PrimaryTwin.temperature} °C"}]}]}
    ])
}

/// Writes the scene file item by item (10^6 elements do not need a tree in memory).
fn write_scene(
    path: &Path,
    options: &Options,
    label: &str,
    elements: &[SourceElement],
    levels: &[f64],
    floor_of: &[usize],
) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let js = |e: serde_json::Error| format!("{}: {e}", path.display());
    let n = options.tiles;
    let model = |name: &str| format!("{MODEL_PREFIX}:{name};1");
    let name = format!(
        "Facility: {label} × {} ({}{})",
        n * n,
        elements.len(),
        if options.lowpoly { ", boxes" } else { "" }
    );

    write!(w, "{{\"version\":1,\"name\":").map_err(io)?;
    serde_json::to_writer(&mut w, &name).map_err(js)?;
    write!(w, ",\"mesh\":\"facility.glb\",\"layers\":").map_err(io)?;
    serde_json::to_writer(
        &mut w,
        &json!([{"id": "temperature", "name": "Temperature"}, {"id": "alarms", "name": "Alarms"}]),
    )
    .map_err(js)?;
    write!(w, ",\n\"models\":").map_err(io)?;
    serde_json::to_writer(&mut w, &models()).map_err(js)?;
    write!(w, ",\n\"behaviors\":").map_err(io)?;
    serde_json::to_writer(&mut w, &behaviors()).map_err(js)?;

    // Twins: site, buildings, floors, elements.
    let mut first = true;
    let mut item = |w: &mut BufWriter<File>, value: &Value| -> Result<(), String> {
        w.write_all(if first { b"\n" } else { b",\n" }).map_err(io)?;
        first = false;
        serde_json::to_writer(w, value).map_err(js)
    };
    write!(w, ",\n\"twins\":[").map_err(io)?;
    item(&mut w, &json!({"$dtId": "Site", "$metadata": {"$model": model("Site")}, "name": name}))?;
    let mut seq = 0u64;
    for x in 0..n {
        for z in 0..n {
            let building = building_id(x, z);
            item(
                &mut w,
                &json!({"$dtId": building, "$metadata": {"$model": model("Building")},
                        "name": format!("Building {x}-{z}"), "tileX": x, "tileZ": z}),
            )?;
            for (level, elevation) in levels.iter().enumerate() {
                item(
                    &mut w,
                    &json!({"$dtId": format!("{building}-F{level}"), "$metadata": {"$model": model("Floor")},
                            "name": format!("Building {x}-{z}, floor {level}"), "level": level,
                            "elevation": (elevation * 100.0).round() / 100.0}),
                )?;
            }
            for (index, e) in elements.iter().enumerate() {
                seq += 1;
                let temperature = 17.0 + (unit_random(seq) * 105.0).round() / 10.0; // 17.0 ..= 27.5
                item(
                    &mut w,
                    &json!({"$dtId": format!("{building}-E{index}"), "$metadata": {"$model": model("Element")},
                            "name": format!("{} {x}-{z}", e.label), "ifcGuid": e.name, "temperature": temperature}),
                )?;
            }
        }
    }
    write!(w, "],\n\"relationships\":[").map_err(io)?;
    let mut first = true;
    let mut relationship = |w: &mut BufWriter<File>, source: &str, target: &str| -> Result<(), String> {
        w.write_all(if first { b"\n" } else { b",\n" }).map_err(io)?;
        first = false;
        serde_json::to_writer(
            w,
            &json!({"$relationshipId": format!("{source}-contains-{target}"), "$sourceId": source,
                    "$targetId": target, "$relationshipName": "contains"}),
        )
        .map_err(js)
    };
    for x in 0..n {
        for z in 0..n {
            let building = building_id(x, z);
            relationship(&mut w, "Site", &building)?;
            for level in 0..levels.len() {
                relationship(&mut w, &building, &format!("{building}-F{level}"))?;
            }
            for (index, floor) in floor_of.iter().enumerate() {
                relationship(&mut w, &format!("{building}-F{floor}"), &format!("{building}-E{index}"))?;
            }
        }
    }
    write!(w, "],\n\"elements\":[").map_err(io)?;
    let mut first = true;
    for x in 0..n {
        for z in 0..n {
            let building = building_id(x, z);
            for (index, e) in elements.iter().enumerate() {
                w.write_all(if first { b"\n" } else { b",\n" }).map_err(io)?;
                first = false;
                serde_json::to_writer(
                    &mut w,
                    &json!({"id": format!("b{x}-{z}-e{index}"), "name": format!("{} {x}-{z}", e.label),
                            "twin": format!("{building}-E{index}"), "nodes": [node_name(&e.name, x, z)]}),
                )
                .map_err(js)?;
            }
        }
    }
    writeln!(w, "]}}").map_err(io)?;
    w.flush().map_err(io)
}
