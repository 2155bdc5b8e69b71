//! Reads a GLB's first scene straight into world-space mesh placements, without Bevy's glTF
//! loader. The loader makes an entity per node and per primitive (two for each element of an
//! IFC building), a `GltfNode` asset per node and a scene world holding them all: for a
//! facility of 10^5 elements that was the largest part of the load time and memory, although
//! batched geometry (batched_geometry.rs) draws none of those entities. Here each distinct
//! primitive is read once into a [`Mesh`] that never reaches the GPU, and every node that
//! shows it becomes a [`Placement`]: which primitive, and where.
//!
//! Only what batching can draw is read; a model that needs more (textures, skins, morph
//! targets, compressed or external buffers, lines or points) gets `Ok(None)` and goes through
//! Bevy's loader as before. Node and primitive names are those Bevy gives its entities, found in
//! the same (breadth-first) order, so that scenes name the same things either way.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use bevy::asset::RenderAssetUsages;
use bevy::math::{Affine3A, Mat4};
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use gltf::buffer::Source;

/// A model read for batching: its distinct primitives and where each node places them.
pub struct ModelScene {
    pub primitives: Vec<ModelPrimitive>,
    /// Every primitive shown, in depth-first node order: a node's subtree is a contiguous range.
    pub placements: Vec<Placement>,
    /// Node and primitive names (as Bevy names their entities) → the placements they cover: a
    /// node covers its own primitives and its descendants'. The first of equal names counts,
    /// breadth-first, as Bevy's `iter_descendants` finds them.
    pub names: HashMap<String, Range<u32>>,
}

/// One glTF mesh primitive: its vertices in the mesh's own space, its material, and bounds.
pub struct ModelPrimitive {
    pub mesh: Mesh,
    pub material: StandardMaterial,
    /// The glTF file has no normals for it: it is drawn flat-shaded.
    pub faceted: bool,
    pub min: Vec3,
    pub max: Vec3,
}

/// A primitive as one node shows it.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub primitive: u32,
    pub world: Affine3A,
}

impl Placement {
    /// The world-space box around the placed primitive.
    pub fn world_box(&self, primitive: &ModelPrimitive) -> (Vec3, Vec3) {
        let (min, max) = (primitive.min, primitive.max);
        let center = self.world.transform_point3((min + max) * 0.5);
        // The box of a transformed box: each axis spans the absolute values of the matrix.
        let half = (max - min) * 0.5;
        let m = self.world.matrix3;
        let extent = m.x_axis.abs() * half.x + m.y_axis.abs() * half.y + m.z_axis.abs() * half.z;
        (center - Vec3::from(extent), center + Vec3::from(extent))
    }
}

/// Reads `bytes` (a GLB). `Ok(None)`: the model needs Bevy's loader (see the module comment);
/// `Err`: the file is not a usable GLB (the message says why).
pub fn read_glb(bytes: &[u8]) -> Result<Option<ModelScene>, String> {
    // The GLB header is checked here: the gltf crate subtracts the header size from the
    // declared length before comparing it with the data.
    let declared = bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if !bytes.starts_with(b"glTF") || declared.is_none_or(|length| length < 12 || length > bytes.len()) {
        return Err("not a GLB file (no glTF header, or a length the file does not have)".to_owned());
    }
    let glb = gltf::binary::Glb::from_slice(bytes).map_err(|e| format!("not a usable GLB: {e}"))?;
    let root = gltf::json::deserialize::from_slice(&glb.json)
        .map_err(|e| format!("the glTF JSON is invalid: {e}"))?;
    let usable = check_accessors(&root)?;
    let document = gltf::Document::from_json(root).map_err(|e| format!("the glTF is invalid: {e}"))?;
    let bin = glb.bin.as_deref();
    if !usable
        || document.textures().len() > 0
        || document.skins().len() > 0
        || document.extensions_required().next().is_some()
        || document.buffers().any(|buffer| !matches!(buffer.source(), Source::Bin))
    {
        return Ok(None);
    }
    let materials: Vec<StandardMaterial> = document.materials().map(|m| material(&m)).collect();
    // glTF mesh → its primitives' indices in `primitives`.
    let mut primitives = Vec::new();
    let mut mesh_primitives: Vec<Range<u32>> = Vec::new();
    for mesh in document.meshes() {
        let first = primitives.len() as u32;
        for primitive in mesh.primitives() {
            if primitive.mode() != gltf::mesh::Mode::Triangles || primitive.morph_targets().len() > 0 {
                return Ok(None);
            }
            let reader = primitive.reader(|buffer| match buffer.source() {
                Source::Bin => bin,
                Source::Uri(_) => None,
            });
            // Without positions there is nothing to draw; Bevy's loader says what is wrong.
            let Some(positions) = reader.read_positions() else { return Ok(None) };
            let positions: Vec<[f32; 3]> = positions.collect();
            let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
            for p in &positions {
                (min, max) = (min.min(Vec3::from(*p)), max.max(Vec3::from(*p)));
            }
            if positions.is_empty() {
                (min, max) = (Vec3::ZERO, Vec3::ZERO);
            }
            let count = positions.len();
            let mut source = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::MAIN_WORLD);
            source.insert_attribute(Mesh::ATTRIBUTE_POSITION, positions);
            let normals: Option<Vec<[f32; 3]>> = reader.read_normals().map(Iterator::collect);
            let faceted = normals.is_none();
            if let Some(normals) = normals.filter(|n| n.len() == count) {
                source.insert_attribute(Mesh::ATTRIBUTE_NORMAL, normals);
            }
            if let Some(uvs) = reader.read_tex_coords(0) {
                let uvs: Vec<[f32; 2]> = uvs.into_f32().collect();
                if uvs.len() == count {
                    source.insert_attribute(Mesh::ATTRIBUTE_UV_0, uvs);
                }
            }
            if let Some(colors) = reader.read_colors(0) {
                let colors: Vec<[f32; 4]> = colors.into_rgba_f32().collect();
                if colors.len() == count {
                    source.insert_attribute(Mesh::ATTRIBUTE_COLOR, colors);
                }
            }
            if let Some(indices) = reader.read_indices() {
                source.insert_indices(Indices::U32(indices.into_u32().collect()));
            }
            // Without a material, Bevy's default (white).
            let material =
                primitive.material().index().and_then(|i| materials.get(i).cloned()).unwrap_or_default();
            primitives.push(ModelPrimitive { mesh: source, material, faceted, min, max });
        }
        mesh_primitives.push(first..primitives.len() as u32);
    }
    let Some(scene) = document.scenes().next() else {
        return Err("the glTF has no scene".to_owned());
    };
    let mut model = ModelScene { primitives, placements: Vec::new(), names: HashMap::new() };
    // Depth first: placements, and each node's range of them (its subtree's).
    let mut covered: Vec<Option<Range<u32>>> = vec![None; document.nodes().len()];
    let mut entered = vec![false; document.nodes().len()];
    // (node, its parent's world transform, whether its subtree is done)
    let mut stack: Vec<(gltf::Node, Affine3A, bool)> =
        scene.nodes().map(|node| (node, Affine3A::IDENTITY, false)).collect();
    stack.reverse();
    let mut starts = vec![0u32; document.nodes().len()];
    while let Some((node, parent, done)) = stack.pop() {
        let index = node.index();
        if done {
            covered[index] = Some(starts[index]..model.placements.len() as u32);
            continue;
        }
        // A node reached twice (a cycle, or a child shared by two parents, which glTF does not
        // allow): Bevy's loader reports the cycle or shows the shared child twice.
        if std::mem::replace(&mut entered[index], true) {
            return Ok(None);
        }
        starts[index] = model.placements.len() as u32;
        let world = parent * Affine3A::from_mat4(Mat4::from_cols_array_2d(&node.transform().matrix()));
        if let Some(mesh) = node.mesh()
            && let Some(range) = mesh_primitives.get(mesh.index())
        {
            model.placements.extend(range.clone().map(|primitive| Placement { primitive, world }));
        }
        stack.push((node.clone(), parent, true));
        let children: Vec<gltf::Node> = node.children().collect();
        stack.extend(children.into_iter().rev().map(|child| (child, world, false)));
    }
    // Breadth first, as Bevy's `iter_descendants` meets the entities: a node's children are
    // its primitives' entities, then its child nodes.
    enum Entry<'d> {
        Node(gltf::Node<'d>),
        Primitive(String, u32),
    }
    let mut queue: VecDeque<Entry> = scene.nodes().map(Entry::Node).collect();
    while let Some(entry) = queue.pop_front() {
        let node = match entry {
            Entry::Primitive(name, at) => {
                model.names.entry(name).or_insert(at..at + 1);
                continue;
            }
            Entry::Node(node) => node,
        };
        let Some(range) = covered[node.index()].clone() else { continue };
        let name = node.name().map_or_else(|| format!("GltfNode{}", node.index()), str::to_owned);
        model.names.entry(name).or_insert(range.clone());
        if let Some(mesh) = node.mesh() {
            for (offset, primitive) in mesh.primitives().enumerate() {
                let at = range.start + offset as u32;
                if at < range.end {
                    queue.push_back(Entry::Primitive(primitive_name(&mesh, &primitive.material()), at));
                }
            }
        }
        queue.extend(node.children().map(Entry::Node));
    }
    Ok(Some(model))
}

/// Checks the accessors of every mesh primitive before the gltf crate sees them: its
/// validation indexes the POSITION accessor unchecked, and its readers subtract one from the
/// count and assume the accessor's element type (debug assertions). `Ok(false)`: fine, but with
/// sparse accessors, which are left to Bevy's loader.
fn check_accessors(root: &gltf::json::Root) -> Result<bool, String> {
    use gltf::json::accessor::{ComponentType as C, Type as T};
    use gltf::json::mesh::Semantic;
    use gltf::json::validation::Checked::Valid;
    let mut dense = true;
    for (m, mesh) in root.meshes.iter().enumerate() {
        for (p, primitive) in mesh.primitives.iter().enumerate() {
            let attributes = primitive.attributes.iter().map(|(semantic, index)| {
                let expected: (&[T], &[C]) = match semantic {
                    Valid(Semantic::Positions | Semantic::Normals) => (&[T::Vec3], &[C::F32]),
                    Valid(Semantic::TexCoords(_)) => (&[T::Vec2], &[C::F32, C::U8, C::U16]),
                    Valid(Semantic::Colors(_)) => (&[T::Vec3, T::Vec4], &[C::F32, C::U8, C::U16]),
                    // Not read here; only the index must hold.
                    _ => (&[], &[]),
                };
                (index.value(), expected)
            });
            let indices = primitive.indices.iter().map(|index| {
                let expected: (&[T], &[C]) = (&[T::Scalar], &[C::U8, C::U16, C::U32]);
                (index.value(), expected)
            });
            for (index, (types, components)) in attributes.chain(indices) {
                let wrong = |what: &str| Err(format!("meshes[{m}].primitives[{p}]: accessor {index} {what}"));
                let Some(accessor) = root.accessors.get(index) else { return wrong("does not exist") };
                if types.is_empty() {
                    continue;
                }
                let (Valid(kind), Valid(component)) = (accessor.type_, accessor.component_type) else {
                    return wrong("has an unknown type");
                };
                if !types.contains(&kind) || !components.contains(&component.0) {
                    return wrong(&format!(
                        "is {kind:?} of {:?}, which this attribute cannot be",
                        component.0
                    ));
                }
                if accessor.count.0 == 0 {
                    return wrong("has no elements");
                }
                let size = kind.multiplicity() * component.0.size();
                if let Some(view) = accessor.buffer_view {
                    let Some(view) = root.buffer_views.get(view.value()) else {
                        return wrong("names a buffer view that does not exist");
                    };
                    if view.byte_stride.is_some_and(|stride| stride.0 < size) {
                        return wrong("has a stride shorter than its elements");
                    }
                }
                dense &= accessor.sparse.is_none();
            }
        }
    }
    Ok(dense)
}

/// The name Bevy gives a primitive's entity.
fn primitive_name(mesh: &gltf::Mesh, material: &gltf::Material) -> String {
    let mesh_name = mesh.name().unwrap_or("Mesh");
    match material.name() {
        Some(material_name) => format!("{mesh_name}.{material_name}"),
        None => mesh_name.to_owned(),
    }
}

/// What batching uses of a glTF material, as Bevy's loader reads it.
fn material(material: &gltf::Material) -> StandardMaterial {
    let pbr = material.pbr_metallic_roughness();
    let [r, g, b, a] = pbr.base_color_factor();
    let [er, eg, eb] = material.emissive_factor();
    let emissive = LinearRgba::rgb(er, eg, eb) * material.emissive_strength().unwrap_or(1.0);
    StandardMaterial {
        base_color: Color::linear_rgba(r, g, b, a),
        emissive,
        perceptual_roughness: pbr.roughness_factor(),
        metallic: pbr.metallic_factor(),
        double_sided: material.double_sided(),
        cull_mode: if material.double_sided() {
            None
        } else {
            Some(bevy::render::render_resource::Face::Back)
        },
        unlit: material.unlit(),
        alpha_mode: match material.alpha_mode() {
            gltf::material::AlphaMode::Opaque => AlphaMode::Opaque,
            gltf::material::AlphaMode::Mask => AlphaMode::Mask(material.alpha_cutoff().unwrap_or(0.5)),
            gltf::material::AlphaMode::Blend => AlphaMode::Blend,
        },
        ..default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A GLB of one triangle mesh (positions only) with this JSON (buffers, views and
    /// accessors 0 (positions) and 1 (indices) are added).
    fn glb(mut json: serde_json::Value) -> Vec<u8> {
        let mut bin: Vec<u8> = Vec::new();
        for v in [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] {
            bin.extend(v.to_le_bytes());
        }
        for i in [0u32, 1, 2] {
            bin.extend(i.to_le_bytes());
        }
        json["asset"] = json!({"version": "2.0"});
        json["buffers"] = json!([{"byteLength": bin.len()}]);
        json["bufferViews"] = json!([
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},
            {"buffer": 0, "byteOffset": 36, "byteLength": 12}
        ]);
        json["accessors"] = json!([
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
             "min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 0.0]},
            {"bufferView": 1, "componentType": 5125, "count": 3, "type": "SCALAR"}
        ]);
        let mut text = serde_json::to_vec(&json).unwrap();
        while !text.len().is_multiple_of(4) {
            text.push(b' ');
        }
        let mut bytes = b"glTF".to_vec();
        bytes.extend(2u32.to_le_bytes());
        bytes.extend(((12 + 8 + text.len() + 8 + bin.len()) as u32).to_le_bytes());
        bytes.extend((text.len() as u32).to_le_bytes());
        bytes.extend(0x4E4F_534Au32.to_le_bytes());
        bytes.extend(text);
        bytes.extend((bin.len() as u32).to_le_bytes());
        bytes.extend(0x004E_4942u32.to_le_bytes());
        bytes.extend(bin);
        bytes
    }

    fn triangle_mesh(name: &str, material: Option<usize>) -> serde_json::Value {
        let mut primitive = json!({"attributes": {"POSITION": 0}, "indices": 1});
        if let Some(material) = material {
            primitive["material"] = json!(material);
        }
        json!({"name": name, "primitives": [primitive]})
    }

    #[test]
    fn nodes_place_their_primitives_in_world_space_and_cover_their_subtrees() {
        let bytes = glb(json!({
            "scene": 0,
            "scenes": [{"nodes": [0, 3]}],
            "nodes": [
                {"name": "floor", "translation": [10.0, 0.0, 0.0], "children": [1, 2]},
                {"name": "room", "mesh": 0, "scale": [2.0, 2.0, 2.0]},
                {"mesh": 0},
                {"name": "mirror", "mesh": 0, "scale": [-1.0, 1.0, 1.0]}
            ],
            "meshes": [triangle_mesh("tri", Some(0))],
            "materials": [{"name": "red", "pbrMetallicRoughness": {"baseColorFactor": [1.0, 0.0, 0.0, 1.0]}}]
        }));
        let model = read_glb(&bytes).unwrap().expect("a model batching can draw");
        assert_eq!(model.primitives.len(), 1, "a mesh used three times is read once");
        assert!(model.primitives[0].faceted, "no normals: flat-shaded");
        assert_eq!(model.primitives[0].material.base_color, Color::linear_rgba(1.0, 0.0, 0.0, 1.0));
        assert_eq!(model.placements.len(), 3);
        // Depth first: floor's subtree (room, the unnamed node), then mirror.
        assert_eq!(model.names["floor"], 0..2);
        assert_eq!(model.names["room"], 0..1);
        assert_eq!(model.names["GltfNode2"], 1..2, "unnamed nodes are named as Bevy names them");
        assert_eq!(model.names["mirror"], 2..3);
        // The first primitive entity named "tri.red" breadth first is mirror's: it is a child
        // of a root node, room's a grandchild.
        assert_eq!(model.names["tri.red"], 2..3);
        let room = model.placements[0].world_box(&model.primitives[0]);
        assert_eq!(room, (Vec3::new(10.0, 0.0, 0.0), Vec3::new(12.0, 2.0, 0.0)));
        let mirror = model.placements[2].world_box(&model.primitives[0]);
        assert_eq!(mirror, (Vec3::new(-1.0, 0.0, 0.0), Vec3::new(0.0, 1.0, 0.0)));
    }

    #[test]
    fn models_batching_cannot_draw_are_left_to_bevys_loader() {
        let textured = glb(json!({
            "scenes": [{"nodes": [0]}],
            "nodes": [{"mesh": 0}],
            "meshes": [triangle_mesh("m", None)],
            "images": [{"uri": "wood.png"}],
            "textures": [{"source": 0}]
        }));
        assert!(read_glb(&textured).unwrap().is_none());
        let lines = glb(json!({
            "scenes": [{"nodes": [0]}],
            "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "mode": 1}]}]
        }));
        assert!(read_glb(&lines).unwrap().is_none());
        let shared_child = glb(json!({
            "scenes": [{"nodes": [0, 1]}],
            "nodes": [{"children": [2]}, {"children": [2]}, {"mesh": 0}],
            "meshes": [triangle_mesh("m", None)]
        }));
        assert!(read_glb(&shared_child).unwrap().is_none());
    }

    #[test]
    fn broken_files_are_errors_that_say_why() {
        let error = read_glb(b"not a model at all").err().unwrap();
        assert!(error.contains("not a GLB"), "{error}");
        let good = glb(
            json!({"scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}], "meshes": [triangle_mesh("m", None)]}),
        );
        let error = read_glb(&good[..good.len() / 2]).err().unwrap();
        assert!(error.contains("GLB"), "{error}");
        let no_scene = glb(json!({"nodes": [{"mesh": 0}], "meshes": [triangle_mesh("m", None)]}));
        assert!(read_glb(&no_scene).err().unwrap().contains("no scene"));
        let bad_index = glb(json!({"scenes": [{"nodes": [0]}], "nodes": [{"mesh": 7}]}));
        assert!(read_glb(&bad_index).err().unwrap().contains("invalid"));
    }

    /// Every single-byte corruption of a real model's first 4 KB (header and JSON) and a
    /// sample of its binary data is an error or a model, never a panic.
    #[test]
    fn corrupted_models_never_panic() {
        let original = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenes/water-tank/CookieFactoryWaterTank.glb"
        ))
        .expect("the water tank model");
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let mut bytes = original.clone();
            let at = if round < 2000 { round * 2 % 4096 } else { (next() as usize) % bytes.len() };
            bytes[at] = next() as u8;
            if round % 7 == 0 {
                bytes.truncate((next() as usize) % original.len());
            }
            let _ = read_glb(&bytes);
        }
    }
}
