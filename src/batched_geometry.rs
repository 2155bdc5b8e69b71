//! Batched geometry: once the model is laid out, its meshes are merged per source material into
//! a few large meshes, so that draw calls follow the model's materials, not its elements. Every
//! merged vertex carries its element's slot (`ATTRIBUTE_SLOT`), and each element's look — style
//! color, opacity, hover, selection, ghosting, visibility — lives in two texels of a small state
//! texture that the batch shader (batched_geometry.wgsl) reads. Restyling an element writes its
//! texels; no mesh or material is rebuilt.
//!
//! The sources are a read model's placements (model_reading.rs) or, for a model Bevy's loader
//! spawned, its mesh entities, which stay (without their `Mesh3d`) as the elements' anchors.
//! Meshes that cannot be merged (not triangle lists, no positions) stay as they are and keep
//! per-element materials. Picking on batches is element_picking.rs, which uses the parts and
//! shared source shapes kept here (`BatchGeometry`).

use bevy::platform::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use bevy::asset::{RenderAssetUsages, embedded_asset};
use bevy::camera::primitives::Aabb;
use bevy::camera::visibility::{NoAutoAabb, VisibilityRange};
use bevy::math::Affine3A;
use bevy::mesh::{
    Indices, MeshVertexAttribute, MeshVertexBufferLayoutRef, PrimitiveTopology, VertexAttributeValues,
};
use bevy::pbr::{ExtendedMaterial, MaterialExtension, MaterialExtensionKey, MaterialExtensionPipeline};
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    AsBindGroup, Extent3d, Origin3d, RenderPipelineDescriptor, ShaderType, SpecializedMeshPipelineError,
    TexelCopyBufferLayout, TexelCopyTextureInfo, TextureAspect, TextureDimension, TextureFormat,
    VertexFormat,
};
use bevy::render::renderer::RenderQueue;
use bevy::render::texture::GpuImage;
use bevy::render::{Extract, ExtractSchedule, Render, RenderApp, RenderSystems};
use bevy::shader::ShaderRef;
use twinscene_core::color::{Color as StyleColor, Opacity};

use crate::camera::{AMBIENT_BRIGHTNESS, KEY_LIGHT_FROM, KEY_LIGHT_LUX};
use crate::detail_levels::{self, DetailDistances, FarDetail, SPARSE_CELL_SIZES};
use crate::element_picking::PartTree;
use crate::scene_loading::{ElementBounds, ElementMeshes, ModelRoot, ReadModel};

/// The material of a batch: the model's own material, extended by the element state lookup.
pub type BatchMaterial = ExtendedMaterial<StandardMaterial, ElementStateLookup>;

/// What a batch material adds to the model's material: the state texture, and the scene's
/// lights for its vertex shader (Bevy's light bindings are visible to fragment shaders only).
#[derive(Asset, AsBindGroup, Reflect, Debug, Clone, Default)]
pub struct ElementStateLookup {
    #[texture(100)]
    pub state: Handle<Image>,
    #[uniform(101)]
    pub lighting: BatchLighting,
}

/// The scene's lights as the batch shader uses them (`BatchLighting` in batched_geometry.wgsl);
/// RGB in w-padded vectors, intensities as Bevy's light bindings carry them (before exposure).
#[derive(ShaderType, Reflect, Debug, Clone, Copy, Default)]
pub struct BatchLighting {
    pub direction_to_light: Vec4,
    pub key_light: Vec4,
    pub ambient_light: Vec4,
}

impl BatchLighting {
    /// The viewer's own lights (camera.rs).
    fn of_scene() -> Self {
        BatchLighting {
            direction_to_light: KEY_LIGHT_FROM.normalize().extend(0.0),
            key_light: Vec4::splat(KEY_LIGHT_LUX),
            ambient_light: Vec4::splat(AMBIENT_BRIGHTNESS),
        }
    }
}

impl MaterialExtension for ElementStateLookup {
    fn vertex_shader() -> ShaderRef {
        "embedded://twinscene_viewer/batched_geometry.wgsl".into()
    }

    fn fragment_shader() -> ShaderRef {
        "embedded://twinscene_viewer/batched_geometry.wgsl".into()
    }

    // Hidden elements are collapsed by the batch's own vertex shader; a depth prepass or shadow
    // pass would use Bevy's and still draw them. The viewer uses neither.
    fn enable_prepass() -> bool {
        false
    }

    /// The batches' own vertex layout (see [`ATTRIBUTE_TINT`]), at the locations
    /// batched_geometry.wgsl reads.
    fn specialize(
        _pipeline: &MaterialExtensionPipeline,
        descriptor: &mut RenderPipelineDescriptor,
        layout: &MeshVertexBufferLayoutRef,
        _key: MaterialExtensionKey<Self>,
    ) -> Result<(), SpecializedMeshPipelineError> {
        let mut attributes = vec![Mesh::ATTRIBUTE_POSITION.at_shader_location(0)];
        if layout.0.contains(Mesh::ATTRIBUTE_NORMAL) {
            attributes.push(Mesh::ATTRIBUTE_NORMAL.at_shader_location(1));
        }
        if layout.0.contains(Mesh::ATTRIBUTE_UV_0) {
            attributes.push(Mesh::ATTRIBUTE_UV_0.at_shader_location(2));
        }
        attributes.push(ATTRIBUTE_SLOT.at_shader_location(3));
        attributes.push(ATTRIBUTE_TINT.at_shader_location(5));
        descriptor.vertex.buffers = vec![layout.0.get_layout(&attributes)?];
        Ok(())
    }

    fn enable_shadows() -> bool {
        false
    }
}

/// Per-slot flags in the state texture; keep in step with batched_geometry.wgsl.
pub struct StateFlags;

impl StateFlags {
    pub const HAS_COLOR: u8 = 1;
    pub const HIDDEN: u8 = 2;
    pub const HOVERED: u8 = 4;
    pub const SELECTED: u8 = 8;
    pub const GHOSTED: u8 = 16;
    /// The element's data is stale (`staleAfterSeconds`): drawn with its color faded to gray.
    pub const STALE: u8 = 32;
}

/// Slot 0 is every mesh that belongs to no element; element `i` is slot `i + 1`.
pub const UNBOUND_SLOT: u32 = 0;

pub fn slot_of(element: usize) -> u32 {
    u32::try_from(element + 1).unwrap_or(u32::MAX)
}

/// The element a slot stands for; `None` for the unbound slot.
pub fn element_of_slot(slot: u32) -> Option<usize> {
    slot.checked_sub(1).map(|element| element as usize)
}

/// Texels per row of the state texture: two per slot. 2048 is within every WebGL2 limit.
const TEXELS_PER_ROW: u32 = 2048;
const SLOTS_PER_ROW: u32 = TEXELS_PER_ROW / 2;

/// The look of one slot as the batch shader reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLook {
    pub color: Option<StyleColor>,
    pub opacity: Opacity,
    pub flags: u8,
}

impl SlotLook {
    fn texels(&self) -> [u8; 8] {
        let (r, g, b) = self.color.map_or((255, 255, 255), |c| (c.r, c.g, c.b));
        let flags = self.flags | if self.color.is_some() { StateFlags::HAS_COLOR } else { 0 };
        [r, g, b, self.opacity.0, flags, 0, 0, 0]
    }
}

/// The texels of `rows` rows of blank slots (no color, opaque, no flags): how the state
/// texture starts.
fn blank_texels(rows: u32) -> Vec<u8> {
    SlotLook { color: None, opacity: Opacity::OPAQUE, flags: 0 }
        .texels()
        .repeat((rows * SLOTS_PER_ROW) as usize)
}

/// Whether a slot's texels (as `SlotLook::texels` writes them) hide it.
fn texels_hidden(texels: &[u8]) -> bool {
    texels.get(4).is_some_and(|flags| flags & StateFlags::HIDDEN != 0)
}

/// Whether a slot's texels need its batch drawn with blending: shown, and ghosted or not opaque.
fn texels_translucent(texels: &[u8]) -> bool {
    match (texels.get(3), texels.get(4)) {
        (Some(&opacity), Some(&flags)) => {
            flags & StateFlags::HIDDEN == 0
                && (flags & StateFlags::GHOSTED != 0 || opacity != Opacity::OPAQUE.0)
        }
        _ => false,
    }
}

/// The state texture and the batches that read it. Present once the model is batched.
#[derive(Resource)]
pub struct ElementStates {
    image: Handle<Image>,
    /// The texture's bytes; changed slots are written here, and the rows they are in are
    /// written into the texture in place once per frame (see `StateTextureRows`). Changing the
    /// `Image` asset instead would make Bevy create a new texture and rebind every batch
    /// material each frame.
    texels: Vec<u8>,
    /// Rows written since they were last handed to the render world.
    dirty_rows: Option<Range<u32>>,
    /// Each batch material with the model material's own alpha mode, restored when nothing in
    /// the scene needs blending any more.
    materials: Vec<(Handle<BatchMaterial>, AlphaMode)>,
    /// How many slots are drawn translucent (batches blend while any is) and how many are
    /// hidden. Which ones is read from their texels: a second copy per slot cost two more
    /// memory reads for every slot written (a third of writing 10^4 random slots of 10^6).
    translucent_slots: usize,
    blending: bool,
    hidden_slots: usize,
}

impl ElementStates {
    /// Writes the look of one slot; [`Self::flush`] hands the changes to the texture.
    pub fn write(&mut self, slot: u32, look: SlotLook) {
        let start = texel_offset(slot);
        let new = look.texels();
        let Some(texels) = self.texels.get_mut(start..start + 8) else { return };
        if *texels == new {
            return;
        }
        self.hidden_slots =
            self.hidden_slots + usize::from(texels_hidden(&new)) - usize::from(texels_hidden(texels));
        self.translucent_slots = self.translucent_slots + usize::from(texels_translucent(&new))
            - usize::from(texels_translucent(texels));
        texels.copy_from_slice(&new);
        let row = slot / SLOTS_PER_ROW;
        self.dirty_rows = Some(match self.dirty_rows.take() {
            Some(rows) => rows.start.min(row)..rows.end.max(row + 1),
            None => row..row + 1,
        });
    }

    /// Switches the batches to blending while anything is translucent, and back. (Written slots
    /// reach the texture at the end of the frame: `hand_over_written_rows`.)
    pub fn flush(&mut self, materials: &mut Assets<BatchMaterial>) {
        let blending = self.translucent_slots > 0;
        if blending == self.blending {
            return;
        }
        self.blending = blending;
        for (handle, own) in &self.materials {
            if let Some(mut material) = materials.get_mut(handle) {
                material.base.alpha_mode = if blending { AlphaMode::Blend } else { *own };
            }
        }
    }

    pub fn is_hidden(&self, slot: u32) -> bool {
        self.texels.get(texel_offset(slot)..).is_some_and(texels_hidden)
    }

    /// Whether any slot is hidden (the sparse far levels are not used then: `detail_levels`).
    pub fn any_hidden(&self) -> bool {
        self.hidden_slots > 0
    }

    /// How many batches (draw calls for the model's merged meshes) there are.
    pub fn batch_count(&self) -> usize {
        self.materials.len()
    }
}

/// The state texture rows written this frame, for the render world, where
/// `upload_state_texture_rows` writes them into the texture in place.
#[derive(Resource, Default, Clone)]
pub struct StateTextureRows {
    image: AssetId<Image>,
    /// Counts hand-overs, so the render world applies each once.
    generation: u64,
    first_row: u32,
    bytes: Vec<u8>,
}

const ROW_BYTES: usize = TEXELS_PER_ROW as usize * 4;

/// Runs once per frame after all painting (in `Last`), before the render world extracts.
fn hand_over_written_rows(states: Option<ResMut<ElementStates>>, mut rows: ResMut<StateTextureRows>) {
    let Some(mut states) = states else { return };
    let Some(dirty) = states.dirty_rows.take() else { return };
    let (start, end) = (dirty.start as usize * ROW_BYTES, dirty.end as usize * ROW_BYTES);
    let Some(bytes) = states.texels.get(start..end) else { return };
    rows.image = states.image.id();
    rows.generation += 1;
    rows.first_row = dirty.start;
    rows.bytes.clear();
    rows.bytes.extend_from_slice(bytes);
}

/// The render world's copy of the state texture's bytes and the rows not yet written to the
/// GPU texture (it may not exist yet in the first frames).
#[derive(Resource, Default)]
struct RenderStateTexture {
    image: Option<AssetId<Image>>,
    seen: u64,
    texels: Vec<u8>,
    pending: Option<Range<u32>>,
}

fn extract_written_rows(rows: Extract<Res<StateTextureRows>>, mut texture: ResMut<RenderStateTexture>) {
    if rows.generation == texture.seen || rows.bytes.is_empty() {
        return;
    }
    texture.seen = rows.generation;
    if texture.image != Some(rows.image) {
        // A new texture: its first hand-over holds every row.
        *texture = RenderStateTexture { image: Some(rows.image), seen: rows.generation, ..default() };
    }
    let start = rows.first_row as usize * ROW_BYTES;
    let end = start + rows.bytes.len();
    if texture.texels.len() < end {
        texture.texels.resize(end, 0);
    }
    texture.texels[start..end].copy_from_slice(&rows.bytes);
    let written = rows.first_row..rows.first_row + (rows.bytes.len() / ROW_BYTES) as u32;
    texture.pending = Some(match texture.pending.take() {
        Some(rows) => rows.start.min(written.start)..rows.end.max(written.end),
        None => written,
    });
}

fn upload_state_texture_rows(
    mut texture: ResMut<RenderStateTexture>,
    gpu_images: Res<RenderAssets<GpuImage>>,
    queue: Res<RenderQueue>,
) {
    let (Some(image), Some(rows)) = (texture.image, texture.pending.clone()) else { return };
    let Some(gpu_image) = gpu_images.get(image) else { return };
    let (start, end) = (rows.start as usize * ROW_BYTES, rows.end as usize * ROW_BYTES);
    let size = gpu_image.texture_descriptor.size;
    if rows.end > size.height || size.width != TEXELS_PER_ROW || end > texture.texels.len() {
        return;
    }
    queue.write_texture(
        TexelCopyTextureInfo {
            texture: &gpu_image.texture,
            mip_level: 0,
            origin: Origin3d { x: 0, y: rows.start, z: 0 },
            aspect: TextureAspect::All,
        },
        &texture.texels[start..end],
        TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(TEXELS_PER_ROW * 4), rows_per_image: None },
        Extent3d { width: TEXELS_PER_ROW, height: rows.end - rows.start, depth_or_array_layers: 1 },
    );
    texture.pending = None;
}

fn texel_offset(slot: u32) -> usize {
    let (row, column) = ((slot / SLOTS_PER_ROW) as usize, (slot % SLOTS_PER_ROW) as usize);
    (row * TEXELS_PER_ROW as usize + column * 2) * 4
}

/// Marks an original mesh entity whose triangles now live in a batch.
#[derive(Component)]
pub struct Batched;

/// What picking casts against in one batch: each source mesh's part (its slot, where it is and
/// its world bounds) over the distinct source meshes' triangles, which all batches share. A
/// facility repeats a few thousand meshes many times: a world-space copy of every batched
/// triangle was 108 MB of wasm memory for Office_A tiled 10×10, the shared shapes are 1 MB.
#[derive(Component, Default)]
pub struct BatchGeometry {
    pub shapes: Arc<PickShapes>,
    pub parts: Vec<BatchPart>,
    pub tree: PartTree,
}

/// The triangles of each distinct source mesh, in the mesh's own space.
#[derive(Default)]
pub struct PickShapes {
    pub shapes: Vec<PickShape>,
}

/// One source mesh's triangles: whole triangles only (any with an index outside the mesh are
/// dropped, as the batch drops them).
#[derive(Default)]
pub struct PickShape {
    pub positions: Vec<Vec3>,
    pub triangles: Vec<[u32; 3]>,
}

impl PickShape {
    fn of(mesh: &Mesh) -> Self {
        let positions: Vec<Vec3> = match mesh.attribute(Mesh::ATTRIBUTE_POSITION) {
            Some(VertexAttributeValues::Float32x3(positions)) => {
                positions.iter().map(|p| Vec3::from(*p)).collect()
            }
            _ => Vec::new(),
        };
        let count = positions.len();
        let corners: Vec<u32> = match mesh.indices() {
            Some(indices) => indices.iter().map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect(),
            None => (0..u32::try_from(count).unwrap_or(0)).collect(),
        };
        let triangles = corners
            .chunks_exact(3)
            .filter(|t| t.iter().all(|&i| (i as usize) < count))
            .map(|t| [t[0], t[1], t[2]])
            .collect();
        Self { positions, triangles }
    }
}

/// One source mesh as a batch draws it.
pub struct BatchPart {
    pub slot: u32,
    /// Its triangles, in [`PickShapes`] (`NO_SHAPE` for a far-detail box, never picked).
    pub shape: u32,
    /// From the shape's space to the world.
    pub transform: Affine3A,
    pub min: Vec3,
    pub max: Vec3,
}

/// The shape of parts that have none to pick (far-detail boxes).
pub const NO_SHAPE: u32 = u32::MAX;

pub(super) fn plugin(app: &mut App) {
    embedded_asset!(app, "batched_geometry.wgsl");
    app.add_plugins(MaterialPlugin::<BatchMaterial>::default())
        .init_resource::<StateTextureRows>()
        .add_systems(Update, merge_into_batches.run_if(resource_added::<ElementBounds>))
        .add_systems(Update, build_sparse_levels.run_if(resource_exists::<PendingSparseLevels>))
        .add_systems(Last, hand_over_written_rows);
    if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
        render_app
            .init_resource::<RenderStateTexture>()
            .add_systems(ExtractSchedule, extract_written_rows)
            .add_systems(Render, upload_state_texture_rows.in_set(RenderSystems::PrepareResources));
    }
}

/// The element slot of a batched vertex (slot 0: no element), at location 3 of the batch shader.
pub const ATTRIBUTE_SLOT: MeshVertexAttribute =
    MeshVertexAttribute::new("BatchSlot", 0x7473_0001, VertexFormat::Uint32);
/// A batched vertex's base color: sRGB-encoded RGB and linear alpha, 8 bits each, at location
/// 5. Four bytes where Bevy's vertex colors take sixteen: with the slot (four bytes, not eight
/// in a UV channel) and no texture coordinates where there is no texture, a faceted vertex is
/// 20 bytes instead of 44; at 10^5 elements that was ~100 MB of wasm memory.
pub const ATTRIBUTE_TINT: MeshVertexAttribute =
    MeshVertexAttribute::new("BatchTint", 0x7473_0002, VertexFormat::Unorm8x4);

/// A linear RGBA color as [`ATTRIBUTE_TINT`] holds it.
fn pack_tint(linear: [f32; 4]) -> [u8; 4] {
    let [r, g, b, a] = linear;
    let srgb = Srgba::from(LinearRgba::new(r, g, b, 1.0)).to_u8_array();
    [srgb[0], srgb[1], srgb[2], (a.clamp(0.0, 1.0) * 255.0).round() as u8]
}

/// One batch being built: the merged vertex data of every mesh with one source material.
#[derive(Default)]
struct BatchBuilder {
    /// Flat-shaded meshes: vertices are welded and carry no normal; the batch shader takes
    /// each face's normal from screen-space derivatives. (The glTF loader gives a mesh without
    /// normals three vertices per triangle for flat normals; welding them back shares vertices
    /// between faces again, ~5× fewer for the shared IFC buildings.)
    faceted: bool,
    /// The batch material has a base color texture: vertices carry texture coordinates.
    textured: bool,
    positions: Vec<[f32; 3]>,
    normals: Vec<[f32; 3]>,
    uvs: Vec<[f32; 2]>,
    slots: Vec<u32>,
    /// The source material's base color (times the source's vertex colors), packed as
    /// [`ATTRIBUTE_TINT`]: batches share a material across source materials that differ only in
    /// color.
    colors: Vec<[u8; 4]>,
    indices: Vec<u32>,
    parts: Vec<BatchPart>,
}

impl BatchBuilder {
    #[cfg(test)]
    fn new(faceted: bool) -> Self {
        Self { faceted, ..Self::default() }
    }

    /// A builder with room for what it will hold, so that no vector grows by doubling (and no
    /// half-used block is left in wasm memory, which never shrinks): batches are most of the
    /// memory a large model takes.
    fn with_capacity(faceted: bool, textured: bool, size: BatchSize) -> Self {
        Self {
            faceted,
            textured,
            positions: Vec::with_capacity(size.vertices),
            normals: Vec::with_capacity(if faceted { 0 } else { size.vertices }),
            uvs: Vec::with_capacity(if textured { size.vertices } else { 0 }),
            slots: Vec::with_capacity(size.vertices),
            colors: Vec::with_capacity(size.vertices),
            indices: Vec::with_capacity(size.indices),
            parts: Vec::with_capacity(size.parts),
        }
    }

    /// Appends one mesh in world space, colored `tint` (linear RGBA, its material's base color);
    /// false (and nothing appended) if it cannot be merged.
    fn add(&mut self, mesh: &Mesh, affine: &Affine3A, slot: u32, tint: [f32; 4], shape: u32) -> bool {
        if mesh.primitive_topology() != PrimitiveTopology::TriangleList {
            return false;
        }
        let Some(VertexAttributeValues::Float32x3(positions)) = mesh.attribute(Mesh::ATTRIBUTE_POSITION)
        else {
            return false;
        };
        let Ok(base) = u32::try_from(self.positions.len()) else { return false };
        let source_count = positions.len();
        let source_indices: Vec<u32> = match mesh.indices() {
            Some(indices) => indices.iter().filter_map(|i| u32::try_from(i).ok()).collect(),
            None => (0..u32::try_from(source_count).unwrap_or(0)).collect(),
        };
        let uvs = match mesh.attribute(Mesh::ATTRIBUTE_UV_0) {
            Some(VertexAttributeValues::Float32x2(uvs)) if uvs.len() == source_count => Some(uvs),
            _ => None,
        };
        let colors = match mesh.attribute(Mesh::ATTRIBUTE_COLOR) {
            Some(VertexAttributeValues::Float32x4(colors)) if colors.len() == source_count => Some(colors),
            _ => None,
        };
        // Which source vertices the batch takes, and each triangle corner's vertex among them.
        // An indexed mesh shares its vertices already; only a flat-shaded one that the glTF
        // loader split into three vertices per triangle is welded.
        let (kept, corners) = if self.faceted && mesh.indices().is_none() {
            weld(positions, uvs.map(Vec::as_slice), colors.map(Vec::as_slice), &source_indices)
        } else {
            ((0..u32::try_from(source_count).unwrap_or(0)).collect(), source_indices.clone())
        };
        let count = kept.len();
        let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        for &vertex in &kept {
            let world = affine.transform_point3(Vec3::from(positions[vertex as usize]));
            (min, max) = (min.min(world), max.max(world));
            self.positions.push(world.into());
        }
        if !self.faceted {
            let normal_matrix = affine.matrix3.inverse().transpose();
            let local_normals = match mesh.attribute(Mesh::ATTRIBUTE_NORMAL) {
                Some(VertexAttributeValues::Float32x3(normals)) if normals.len() == source_count => {
                    normals.iter().map(|n| Vec3::from(*n)).collect()
                }
                _ => face_normals(positions, &source_indices),
            };
            self.normals.extend(local_normals.iter().map(|n| {
                (Vec3::from(normal_matrix * bevy::math::Vec3A::from(*n))).normalize_or_zero().to_array()
            }));
        }
        if self.textured {
            match uvs {
                Some(uvs) => self.uvs.extend(kept.iter().map(|&v| uvs[v as usize])),
                None => self.uvs.extend(std::iter::repeat_n([0.0, 0.0], count)),
            }
        }
        match colors {
            Some(colors) => self.colors.extend(kept.iter().map(|&v| {
                let c = colors[v as usize];
                pack_tint([c[0] * tint[0], c[1] * tint[1], c[2] * tint[2], c[3] * tint[3]])
            })),
            None => self.colors.extend(std::iter::repeat_n(pack_tint(tint), count)),
        }
        self.slots.extend(std::iter::repeat_n(slot, count));
        // A mirroring transform turns the triangles' winding around; they are wound back, or
        // back-face culling would hide their front faces.
        let mirrored = affine.matrix3.determinant() < 0.0;
        // Only whole triangles whose vertices exist; a malformed index never reaches the GPU.
        for triangle in corners.chunks_exact(3) {
            if triangle.iter().all(|&i| (i as usize) < count) {
                let [a, b, c] = [triangle[0], triangle[1], triangle[2]].map(|i| base + i);
                self.indices.extend(if mirrored { [a, c, b] } else { [a, b, c] });
            }
        }
        self.parts.push(BatchPart { slot, shape, transform: *affine, min, max });
        true
    }

    /// Appends a box from `min` to `max` (12 triangles facing out, no normals) for `slot`: an
    /// element as the far level of detail draws it. The builder must be faceted.
    fn add_box(&mut self, min: Vec3, max: Vec3, slot: u32, tint: [f32; 4]) {
        let Ok(base) = u32::try_from(self.positions.len()) else { return };
        // Corner i has x, y, z from bits 0, 1, 2 of i: 0 is `min`, 1 is `max`.
        for corner in 0..8u32 {
            let pick = |bit: u32, low: f32, high: f32| if corner & bit == 0 { low } else { high };
            self.positions.push([pick(1, min.x, max.x), pick(2, min.y, max.y), pick(4, min.z, max.z)]);
        }
        if self.textured {
            self.uvs.extend(std::iter::repeat_n([0.0, 0.0], 8));
        }
        self.slots.extend(std::iter::repeat_n(slot, 8));
        self.colors.extend(std::iter::repeat_n(pack_tint(tint), 8));
        // Each face counter-clockwise seen from outside (Bevy's front faces; back faces are culled).
        for [a, b, c, d] in
            [[1, 3, 7, 5], [0, 4, 6, 2], [2, 6, 7, 3], [0, 1, 5, 4], [4, 5, 7, 6], [0, 2, 3, 1]]
        {
            self.indices.extend([a, b, c, a, c, d].map(|i: u32| base + i));
        }
        self.parts.push(BatchPart { slot, shape: NO_SHAPE, transform: Affine3A::IDENTITY, min, max });
    }

    /// The merged mesh, its bounds and its parts.
    fn build(self) -> (Mesh, Aabb, Vec<BatchPart>) {
        let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        for part in &self.parts {
            (min, max) = (min.min(part.min), max.max(part.max));
        }
        // The GPU copy only: picking uses `BatchGeometry`, bounds are given.
        let mut mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD);
        mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, self.positions);
        if !self.faceted {
            mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, self.normals);
        }
        if self.textured {
            mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, self.uvs);
        }
        mesh.insert_attribute(ATTRIBUTE_SLOT, self.slots);
        mesh.insert_attribute(ATTRIBUTE_TINT, VertexAttributeValues::Unorm8x4(self.colors));
        mesh.insert_indices(Indices::U32(self.indices));
        (mesh, Aabb::from_min_max(min, max), self.parts)
    }
}

/// Whether a mesh is flat-shaded: no normals, or one normal per face on unshared vertices
/// (what the glTF loader makes of a mesh without normals).
fn is_faceted(mesh: &Mesh) -> bool {
    if mesh.indices().is_some() {
        return false;
    }
    match mesh.attribute(Mesh::ATTRIBUTE_NORMAL) {
        None => true,
        Some(VertexAttributeValues::Float32x3(normals)) => {
            normals.len() % 3 == 0
                && normals.chunks_exact(3).all(|face| face[0] == face[1] && face[1] == face[2])
        }
        Some(_) => false,
    }
}

/// Shares vertices that are equal in position, texture coordinate and color: the source
/// vertices kept (first of each kind) and each corner's index among them (`u32::MAX` for an
/// index outside the mesh, which the caller drops with its triangle).
fn weld(
    positions: &[[f32; 3]],
    uvs: Option<&[[f32; 2]]>,
    colors: Option<&[[f32; 4]]>,
    corners: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    type Key = ([u32; 3], [u32; 2], [u32; 4]);
    let mut index_of: HashMap<Key, u32> = HashMap::new();
    let mut kept = Vec::new();
    let welded = corners
        .iter()
        .map(|&corner| {
            let vertex = corner as usize;
            let Some(position) = positions.get(vertex) else { return u32::MAX };
            let uv = uvs.and_then(|uvs| uvs.get(vertex)).copied().unwrap_or_default();
            let color = colors.and_then(|colors| colors.get(vertex)).copied().unwrap_or([1.0; 4]);
            let key = (position.map(f32::to_bits), uv.map(f32::to_bits), color.map(f32::to_bits));
            *index_of.entry(key).or_insert_with(|| {
                kept.push(corner);
                u32::try_from(kept.len() - 1).unwrap_or(u32::MAX)
            })
        })
        .collect();
    (kept, welded)
}

/// Per-vertex normals from the faces around each vertex, for meshes that have none.
fn face_normals(positions: &[[f32; 3]], indices: &[u32]) -> Vec<Vec3> {
    let mut normals = vec![Vec3::ZERO; positions.len()];
    for triangle in indices.chunks_exact(3) {
        let [a, b, c] = [triangle[0], triangle[1], triangle[2]].map(|i| i as usize);
        let (Some(pa), Some(pb), Some(pc)) = (positions.get(a), positions.get(b), positions.get(c)) else {
            continue;
        };
        let face = (Vec3::from(*pb) - Vec3::from(*pa)).cross(Vec3::from(*pc) - Vec3::from(*pa));
        for i in [a, b, c] {
            normals[i] += face;
        }
    }
    normals.into_iter().map(|n| n.normalize_or(Vec3::Y)).collect()
}

/// A model with more mesh nodes than this per chunk is split into chunks (up to MAX_CHUNKS).
const MEMBERS_PER_CHUNK: usize = 2_000;
/// Chunks times the batch materials of a chunk are the draw calls; a large model's materials
/// share a batch material (see `SharedLook`), so this keeps them to a few dozen.
const MAX_CHUNKS: u32 = 16;
/// A chunk is drawn in full while the camera is nearer its center than this many times its
/// diagonal, and as boxes beyond.
const FAR_DETAIL_DIAGONALS: f32 = 1.5;

/// A grid over the model's ground plane (x, z) that splits a large model into chunks. Each
/// chunk's batches are culled when off screen and switch to their far level of detail on their
/// own: from afar, every element is a box (12 triangles; a third to a fifth of what the shared
/// buildings' elements have), and when the camera is close to a part of a facility, only that
/// part is drawn in full.
struct ChunkGrid {
    min: Vec2,
    cell: Vec2,
    columns: u32,
    rows: u32,
    /// The diagonal of a chunk, including the model's height.
    diagonal: f32,
}

impl ChunkGrid {
    /// A grid for `members` mesh nodes around `centers` (x, z), with cells about square.
    fn new(centers: &[Vec3], members: usize) -> Self {
        let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        for center in centers {
            (min, max) = (min.min(*center), max.max(*center));
        }
        if centers.is_empty() {
            (min, max) = (Vec3::ZERO, Vec3::ZERO);
        }
        let wanted = u32::try_from(members / MEMBERS_PER_CHUNK).unwrap_or(MAX_CHUNKS).clamp(1, MAX_CHUNKS);
        let extent = (max - min).xz().max(Vec2::splat(1e-3));
        let columns = ((wanted as f32 * extent.x / extent.y).sqrt().round() as u32).clamp(1, wanted);
        let rows = (wanted / columns).max(1);
        let cell = extent / Vec2::new(columns as f32, rows as f32);
        let diagonal = Vec3::new(cell.x, max.y - min.y, cell.y).length();
        Self { min: min.xz(), cell, columns, rows, diagonal }
    }

    fn count(&self) -> u32 {
        self.columns * self.rows
    }

    fn chunk_of(&self, point: Vec3) -> u32 {
        let cell = ((point.xz() - self.min) / self.cell).floor();
        let column = (cell.x.max(0.0) as u32).min(self.columns - 1);
        let row = (cell.y.max(0.0) as u32).min(self.rows - 1);
        row * self.columns + column
    }
}

/// What source materials must have in common to share a batch material: everything the batch
/// shader reads from the model's material except the base color, which the batch carries in its
/// vertex colors instead.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct SharedLook {
    texture: Option<AssetId<Image>>,
    alpha: (u8, u32),
    emissive: [u32; 5],
    uv_transform: [u32; 6],
    unlit: bool,
}

impl SharedLook {
    fn of(material: &StandardMaterial) -> Self {
        let alpha = match material.alpha_mode {
            AlphaMode::Opaque => (0, 0),
            AlphaMode::Mask(cutoff) => (1, cutoff.to_bits()),
            AlphaMode::Blend => (2, 0),
            AlphaMode::Premultiplied => (3, 0),
            AlphaMode::AlphaToCoverage => (4, 0),
            AlphaMode::Add => (5, 0),
            AlphaMode::Multiply => (6, 0),
        };
        let e = material.emissive;
        let uv = material.uv_transform.to_cols_array();
        Self {
            texture: material.base_color_texture.as_ref().map(Handle::id),
            alpha,
            emissive: [e.red, e.green, e.blue, e.alpha, material.emissive_exposure_weight].map(f32::to_bits),
            uv_transform: uv.map(f32::to_bits),
            unlit: material.unlit,
        }
    }
}

/// The batches of one shared look in one chunk: the full geometry and, for a chunked model,
/// its elements as boxes for the far level of detail.
struct ChunkBatch {
    material: StandardMaterial,
    full: BatchBuilder,
    /// What the far levels draw (`detail_levels`), for a chunked model.
    boxes: Option<Vec<FarBox>>,
}

/// An element's part as the far levels draw it: its world box, slot and tint.
#[derive(Clone, Copy)]
struct FarBox {
    min: Vec3,
    max: Vec3,
    slot: u32,
    tint: [f32; 4],
}

/// A batch of boxes (no pick shapes: picking always uses the full geometry).
fn box_mesh<'a>(boxes: impl ExactSizeIterator<Item = &'a FarBox>, textured: bool) -> Mesh {
    let parts = boxes.len();
    // A box is 8 vertices and 36 indices.
    let size = BatchSize { vertices: 8 * parts, indices: 36 * parts, parts };
    let mut builder = BatchBuilder::with_capacity(true, textured, size);
    for far in boxes {
        builder.add_box(far.min, far.max, far.slot, far.tint);
    }
    builder.build().0
}

/// One source mesh to merge: its vertices, where it is, its material and its element's slot.
struct MergeSource<'a> {
    slot: u32,
    mesh: &'a Mesh,
    /// Which distinct mesh it is: its triangles are kept once for picking.
    shape: SourceShape,
    transform: Affine3A,
    material: &'a StandardMaterial,
    faceted: bool,
    /// Its world center (by its bounds), which places it in a chunk.
    center: Vec3,
    /// The entity that drew it until now (a spawned model), which stops drawing it.
    entity: Option<Entity>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum SourceShape {
    /// A primitive of a read model (`ModelScene::primitives`).
    Primitive(u32),
    /// A mesh asset of a spawned model.
    Asset(AssetId<Mesh>),
}

impl MergeSource<'_> {
    /// Vertices and indices it adds to a batch (no vertex estimate for a mesh that is welded:
    /// it keeps a fraction of its vertices).
    fn size(&self) -> BatchSize {
        let positions = self.mesh.count_vertices();
        let welded = self.faceted && self.mesh.indices().is_none();
        BatchSize {
            vertices: if welded { 0 } else { positions },
            indices: self.mesh.indices().map_or(positions, Indices::len),
            parts: 1,
        }
    }
}

/// What a batch will hold, counted before it is built.
#[derive(Clone, Copy, Default)]
struct BatchSize {
    vertices: usize,
    indices: usize,
    parts: usize,
}

type BatchKey = (SharedLook, bool, u32);

/// The batches being built, keyed by what their meshes share, in order of first appearance so
/// that a model always batches the same way.
struct Merge {
    grid: ChunkGrid,
    order: Vec<BatchKey>,
    builders: HashMap<BatchKey, ChunkBatch>,
    sizes: HashMap<BatchKey, BatchSize>,
    shapes: PickShapes,
    shape_ids: HashMap<SourceShape, u32>,
    slots: u32,
    batched: Vec<Entity>,
}

impl Merge {
    /// Sized for these sources (which `add` then takes one by one).
    fn new(sources: &[MergeSource]) -> Self {
        let centers: Vec<Vec3> = sources.iter().map(|source| source.center).collect();
        let mut merge = Self {
            grid: ChunkGrid::new(&centers, centers.len()),
            order: Vec::new(),
            builders: HashMap::new(),
            sizes: HashMap::new(),
            shapes: PickShapes::default(),
            shape_ids: HashMap::new(),
            slots: 1,
            batched: Vec::new(),
        };
        for source in sources {
            let size = source.size();
            let total = merge.sizes.entry(merge.key_of(source)).or_default();
            total.vertices += size.vertices;
            total.indices += size.indices;
            total.parts += 1;
        }
        merge
    }

    fn key_of(&self, source: &MergeSource) -> BatchKey {
        (SharedLook::of(source.material), source.faceted, self.grid.chunk_of(source.center))
    }

    fn add(&mut self, source: MergeSource) {
        self.slots = self.slots.max(source.slot + 1);
        let chunked = self.grid.count() > 1;
        let tint = source.material.base_color.to_linear().to_f32_array();
        let key = self.key_of(&source);
        let size = self.sizes.get(&key).copied().unwrap_or_default();
        let order = &mut self.order;
        let batch = self.builders.entry(key).or_insert_with(|| {
            order.push(key);
            let textured = source.material.base_color_texture.is_some();
            ChunkBatch {
                material: StandardMaterial { base_color: Color::WHITE, ..source.material.clone() },
                full: BatchBuilder::with_capacity(source.faceted, textured, size),
                boxes: chunked.then(|| Vec::with_capacity(size.parts)),
            }
        });
        let shapes = &mut self.shapes.shapes;
        let shape = *self.shape_ids.entry(source.shape).or_insert_with(|| {
            shapes.push(PickShape::of(source.mesh));
            u32::try_from(shapes.len() - 1).unwrap_or(NO_SHAPE)
        });
        if batch.full.add(source.mesh, &source.transform, source.slot, tint, shape) {
            self.batched.extend(source.entity);
            if let (Some(boxes), Some(part)) = (batch.boxes.as_mut(), batch.full.parts.last()) {
                boxes.push(FarBox { min: part.min, max: part.max, slot: source.slot, tint });
            }
        }
    }
}

/// The sources of a spawned model: its mesh entities, each once (a node two elements both name
/// is drawn for the first, as `element_of` maps it: two copies at the same depth would fight
/// over the pixels). Meshes whose model material is missing batch as the default material.
fn spawned_sources<'a>(
    element_meshes: &'a ElementMeshes,
    sources: &'a Query<(&Mesh3d, &GlobalTransform, Option<&Aabb>)>,
    meshes: &'a Assets<Mesh>,
    standard_materials: &'a Assets<StandardMaterial>,
    default_material: &'a StandardMaterial,
) -> Vec<MergeSource<'a>> {
    let members = element_meshes.unbound.iter().map(|mesh| (UNBOUND_SLOT, mesh)).chain(
        element_meshes.all().flat_map(|(element, list)| list.iter().map(move |m| (slot_of(element), m))),
    );
    let mut seen = HashSet::new();
    members
        .filter(|(_, member)| seen.insert(member.entity))
        .filter_map(|(slot, member)| {
            let (mesh3d, transform, aabb) = sources.get(member.entity).ok()?;
            let mesh = meshes.get(&mesh3d.0)?;
            let center = aabb
                .map_or(transform.translation(), |aabb| transform.transform_point(Vec3::from(aabb.center)));
            Some(MergeSource {
                slot,
                mesh,
                shape: SourceShape::Asset(mesh3d.0.id()),
                transform: transform.affine(),
                material: standard_materials.get(&member.model_material).unwrap_or(default_material),
                faceted: is_faceted(mesh),
                center,
                entity: Some(member.entity),
            })
        })
        .collect()
}

/// The sources of a model read without spawning it: every placement, in node order.
fn read_sources(read: &ReadModel) -> Vec<MergeSource<'_>> {
    read.model
        .placements
        .iter()
        .zip(&read.element_of_placement)
        .map(|(placement, element)| {
            let primitive = &read.model.primitives[placement.primitive as usize];
            let (min, max) = placement.world_box(primitive);
            MergeSource {
                slot: element.map_or(UNBOUND_SLOT, |element| slot_of(element as usize)),
                mesh: &primitive.mesh,
                shape: SourceShape::Primitive(placement.primitive),
                transform: placement.world,
                material: &primitive.material,
                faceted: primitive.faceted,
                center: (min + max) * 0.5,
                entity: None,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn merge_into_batches(
    mut commands: Commands,
    element_meshes: Res<ElementMeshes>,
    read_model: Option<Res<ReadModel>>,
    sources: Query<(&Mesh3d, &GlobalTransform, Option<&Aabb>)>,
    mut meshes: ResMut<Assets<Mesh>>,
    standard_materials: Res<Assets<StandardMaterial>>,
    mut batch_materials: ResMut<Assets<BatchMaterial>>,
    mut images: ResMut<Assets<Image>>,
    model_root: Option<Single<Entity, With<ModelRoot>>>,
) {
    // The model was hidden while it loaded (scene_loading.rs); what is not batched shows now.
    if let Some(root) = model_root {
        commands.entity(*root).insert(Visibility::Inherited);
    }
    let default_material = StandardMaterial::default();
    let merge = {
        let list = match &read_model {
            Some(read) => read_sources(read),
            None => {
                spawned_sources(&element_meshes, &sources, &meshes, &standard_materials, &default_material)
            }
        };
        let mut merge = Merge::new(&list);
        for source in list {
            merge.add(source);
        }
        merge
    };
    // The read model's sources are in the batches now.
    if read_model.is_some() {
        commands.remove_resource::<ReadModel>();
    }
    let Merge { grid, order, mut builders, shapes, slots, batched, .. } = merge;
    let shapes = Arc::new(shapes);
    let chunked = grid.count() > 1;
    let rows = slots.div_ceil(SLOTS_PER_ROW).max(1);
    let size = Extent3d { width: TEXELS_PER_ROW, height: rows, depth_or_array_layers: 1 };
    let texels = blank_texels(rows);
    let image = images.add(Image::new(
        size,
        TextureDimension::D2,
        texels.clone(),
        TextureFormat::Rgba8Unorm,
        RenderAssetUsages::MAIN_WORLD | RenderAssetUsages::RENDER_WORLD,
    ));
    let mut materials = Vec::new();
    let far = FAR_DETAIL_DIAGONALS * grid.diagonal;
    // The sparse far levels' cells follow the size of the model's elements.
    let median = detail_levels::median_diagonal(
        builders.values().flat_map(|batch| batch.boxes.iter().flatten()).map(|far| (far.min, far.max)),
    );
    let sparse_cells: Vec<f32> =
        if median > 0.0 { SPARSE_CELL_SIZES.iter().map(|k| k * median).collect() } else { Vec::new() };
    let mut sparse_sources = Vec::new();
    for key in order {
        let Some(ChunkBatch { material: mut base, full, boxes }) = builders.remove(&key) else { continue };
        if full.parts.is_empty() {
            continue;
        }
        // Back faces are culled, as the model's own material and Babylon.js's default do: under
        // software WebGL every rasterized triangle costs, and drawing both faces halved the
        // frame rate of a 58k-triangle office. A model wound inconsistently would show holes;
        // the demo models and the shared IFC buildings look the same either way.
        base.double_sided = false;
        base.cull_mode = Some(bevy::render::render_resource::Face::Back);
        // Tangents are not merged, so a normal map would have nothing to work with.
        base.normal_map_texture = None;
        let own_alpha = base.alpha_mode;
        let material = batch_materials.add(BatchMaterial {
            base,
            extension: ElementStateLookup { state: image.clone(), lighting: BatchLighting::of_scene() },
        });
        materials.push((material.clone(), own_alpha));
        let textured = full.textured;
        let (mesh, aabb, parts) = full.build();
        let geometry = BatchGeometry { shapes: shapes.clone(), tree: PartTree::build(&parts), parts };
        let mut batch = commands.spawn((
            Name::new(format!("batch {}", materials.len())),
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(material.clone()),
            Transform::IDENTITY,
            aabb,
            NoAutoAabb,
            geometry,
        ));
        if let Some(boxes) = boxes {
            // Both levels are measured from the same center (the chunk's bounds), so exactly
            // one of them is drawn at any distance.
            batch.insert(VisibilityRange { start_margin: 0.0..0.0, end_margin: far..far, use_aabb: true });
            // Picking always uses the full geometry (`BatchGeometry`), so the boxes keep none.
            // The far levels' ranges are set by `detail_levels` (at first: not drawn).
            let name = format!("batch {}", materials.len());
            let mesh = box_mesh(boxes.iter(), textured);
            commands.spawn(far_level(&name, FarDetail::Boxes, meshes.add(mesh), material.clone(), aabb));
            if !sparse_cells.is_empty() {
                sparse_sources.push(SparseSource { name, material, aabb, boxes, textured });
            }
        }
    }
    for entity in batched {
        commands.entity(entity).remove::<Mesh3d>().insert(Batched);
    }
    if chunked {
        info!(
            "batched the model into {} meshes ({} slots) in {} chunks, drawn as boxes beyond {far:.0} m \
             and farther as the largest box of each cell of {sparse_cells:.1?} m",
            materials.len(),
            slots,
            grid.count()
        );
        if !sparse_sources.is_empty() {
            commands.insert_resource(PendingSparseLevels {
                cells: sparse_cells.clone(),
                batches: sparse_sources,
            });
        }
        commands.insert_resource(DetailDistances::new(far, sparse_cells));
    } else {
        info!("batched the model into {} meshes ({} slots)", materials.len(), slots);
    }
    commands.insert_resource(ElementStates {
        image,
        texels,
        // The first hand-over carries every row, so the render world's copy starts complete.
        dirty_rows: Some(0..rows),
        materials,
        translucent_slots: 0,
        blending: false,
        hidden_slots: 0,
    });
}

/// A far level of one batch, not drawn until `detail_levels` gives it its distances.
fn far_level(
    batch: &str,
    level: FarDetail,
    mesh: Handle<Mesh>,
    material: Handle<BatchMaterial>,
    aabb: Aabb,
) -> impl Bundle {
    let never = f32::MAX..f32::MAX;
    (
        Name::new(format!("{batch} {level:?}")),
        Mesh3d(mesh),
        MeshMaterial3d(material),
        Transform::IDENTITY,
        aabb,
        NoAutoAabb,
        VisibilityRange { start_margin: never.clone(), end_margin: never, use_aabb: true },
        level,
    )
}

/// One batch's boxes, for its sparse far levels.
struct SparseSource {
    name: String,
    material: Handle<BatchMaterial>,
    aabb: Aabb,
    boxes: Vec<FarBox>,
    textured: bool,
}

/// The sparse far levels still to build. They are built a frame after the batches: wasm memory
/// never shrinks, and building them with the batches put their vertex data and its copies on
/// the way to the GPU on top of the batches' own (Office_A tiled 10×10: +70 MB of wasm memory
/// for ~15 MB of vertices); a frame later they mostly reuse what the batches' transient copies
/// freed (+5 MB).
#[derive(Resource)]
struct PendingSparseLevels {
    cells: Vec<f32>,
    batches: Vec<SparseSource>,
}

fn build_sparse_levels(
    mut commands: Commands,
    pending: Res<PendingSparseLevels>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut distances: ResMut<DetailDistances>,
) {
    let mut kept_boxes = vec![0; pending.cells.len()];
    for source in &pending.batches {
        let extents: Vec<(Vec3, Vec3)> = source.boxes.iter().map(|far| (far.min, far.max)).collect();
        for (index, cell) in pending.cells.iter().enumerate() {
            let kept = detail_levels::sparse_boxes(&extents, *cell);
            kept_boxes[index] += kept.len();
            // `sparse_boxes` gives indices into the boxes it was given.
            let kept = kept.iter().map(|&at| &source.boxes[at]);
            let mesh = meshes.add(box_mesh(kept, source.textured));
            commands.spawn(far_level(
                &source.name,
                FarDetail::Sparse(index),
                mesh,
                source.material.clone(),
                source.aabb,
            ));
        }
    }
    info!("sparse far levels: {kept_boxes:?} boxes in cells of {:.1?} m", pending.cells);
    distances.sparse_levels_built = true;
    commands.remove_resource::<PendingSparseLevels>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::ecs::system::RunSystemOnce;

    const WHITE: [f32; 4] = [1.0; 4];

    fn triangle_mesh() -> Mesh {
        let mut mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::default());
        mesh.insert_attribute(
            Mesh::ATTRIBUTE_POSITION,
            vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        );
        mesh.insert_indices(Indices::U16(vec![0, 1, 2]));
        mesh
    }

    #[test]
    fn merged_meshes_are_in_world_space_with_their_slots() {
        let mut builder = BatchBuilder::default();
        assert!(builder.add(
            &triangle_mesh(),
            &Affine3A::from_translation(Vec3::new(10.0, 0.0, 0.0)),
            3,
            WHITE,
            0
        ));
        assert!(builder.add(&triangle_mesh(), &Affine3A::IDENTITY, 7, WHITE, 0));
        assert_eq!(builder.positions[0], [10.0, 0.0, 0.0]);
        assert_eq!(builder.indices, vec![0, 1, 2, 3, 4, 5]);
        let (_, aabb, parts) = builder.build();
        assert_eq!(
            parts.iter().map(|p| (p.slot, p.transform.translation.x)).collect::<Vec<_>>(),
            vec![(3, 10.0), (7, 0.0)]
        );
        assert_eq!(Vec3::from(aabb.min()), Vec3::ZERO);
        assert_eq!(Vec3::from(aabb.max()), Vec3::new(11.0, 1.0, 0.0));
    }

    #[test]
    fn pick_shapes_keep_whole_triangles_in_the_meshes_own_space() {
        let mut mesh = triangle_mesh();
        mesh.insert_indices(Indices::U32(vec![0, 1, 2, 0, 1, 9]));
        let shape = PickShape::of(&mesh);
        assert_eq!(shape.triangles, vec![[0, 1, 2]]);
        assert_eq!(shape.positions[1], Vec3::X);
        let unindexed = flat_square();
        assert_eq!(PickShape::of(&unindexed).triangles, vec![[0, 1, 2], [3, 4, 5]]);
    }

    #[test]
    fn tints_are_packed_as_srgb_with_linear_alpha() {
        // Linear 0.5 is sRGB 188; alpha stays linear.
        assert_eq!(pack_tint([0.5, 0.0, 1.0, 0.5]), [188, 0, 255, 128]);
        assert_eq!(
            pack_tint([2.0, -1.0, 0.2159, 1.5]),
            [255, 0, 128, 255],
            "out of range values are clamped"
        );
    }

    #[test]
    fn mirrored_meshes_keep_their_front_faces() {
        let mut builder = BatchBuilder::default();
        let mirror = Affine3A::from_scale(Vec3::new(-1.0, 1.0, 1.0));
        assert!(builder.add(&triangle_mesh(), &mirror, 1, WHITE, 0));
        assert!(builder.add(&triangle_mesh(), &Affine3A::IDENTITY, 2, WHITE, 0));
        let normal = |t: &[u32]| {
            let [a, b, c] = [t[0], t[1], t[2]].map(|i| Vec3::from(builder.positions[i as usize]));
            (b - a).cross(c - a)
        };
        // Both face +z, as the source triangle does, although the first was mirrored in x.
        assert!(normal(&builder.indices[0..3]).z > 0.0);
        assert!(normal(&builder.indices[3..6]).z > 0.0);
    }

    /// A unit square as the glTF loader gives a mesh without normals: two triangles on six
    /// unshared vertices, one normal per face.
    fn flat_square() -> Mesh {
        let corners = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
        ];
        let mut mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::default());
        mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, corners.to_vec());
        mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0, 0.0, 1.0]; 6]);
        mesh
    }

    #[test]
    fn flat_shaded_meshes_are_welded_and_lose_their_normals() {
        let square = flat_square();
        assert!(is_faceted(&square));
        assert!(!is_faceted(&triangle_mesh()), "indexed meshes keep their normals");
        let mut smooth = flat_square();
        smooth.insert_attribute(
            Mesh::ATTRIBUTE_NORMAL,
            vec![
                [0.0, 0.0, 1.0],
                [0.0, 0.1, 1.0],
                [0.0, 0.0, 1.0],
                [0.0, 0.0, 1.0],
                [0.0, 0.0, 1.0],
                [0.0, 0.0, 1.0],
            ],
        );
        assert!(!is_faceted(&smooth), "normals that differ within a face are kept");

        let mut builder = BatchBuilder::new(true);
        assert!(builder.add(&square, &Affine3A::from_translation(Vec3::new(0.0, 0.0, 2.0)), 5, WHITE, 0));
        assert!(builder.add(&square, &Affine3A::IDENTITY, 6, WHITE, 0));
        // Four shared corners per square, the two triangles still whole.
        assert_eq!(builder.positions.len(), 8);
        assert_eq!(builder.indices, vec![0, 1, 2, 0, 2, 3, 4, 5, 6, 4, 6, 7]);
        assert_eq!(builder.positions[0], [0.0, 0.0, 2.0]);
        assert!(builder.normals.is_empty());
        let (mesh, _, parts) = builder.build();
        assert!(mesh.attribute(Mesh::ATTRIBUTE_NORMAL).is_none());
        assert_eq!(parts.iter().map(|p| p.slot).collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn out_of_range_indices_are_dropped_and_other_topologies_refused() {
        let mut mesh = triangle_mesh();
        mesh.insert_indices(Indices::U32(vec![0, 1, 2, 0, 1, 9]));
        let mut builder = BatchBuilder::default();
        assert!(builder.add(&mesh, &Affine3A::IDENTITY, 1, WHITE, 0));
        assert_eq!(builder.indices.len(), 3);
        let lines = Mesh::new(PrimitiveTopology::LineList, RenderAssetUsages::default());
        assert!(!builder.add(&lines, &Affine3A::IDENTITY, 1, WHITE, 0));
    }

    #[test]
    fn far_boxes_face_outward_and_carry_slot_and_tint() {
        let mut boxes = BatchBuilder::new(true);
        let (min, max) = (Vec3::new(1.0, 2.0, 3.0), Vec3::new(2.0, 4.0, 7.0));
        boxes.add_box(min, max, 9, [0.5, 0.25, 1.0, 1.0]);
        assert_eq!(boxes.positions.len(), 8);
        assert_eq!(boxes.indices.len(), 36);
        let center = (min + max) / 2.0;
        let mut normals = Vec::new();
        for triangle in boxes.indices.chunks_exact(3) {
            let [a, b, c] = [0, 1, 2].map(|k| Vec3::from(boxes.positions[triangle[k] as usize]));
            let normal = (b - a).cross(c - a).normalize();
            // Counter-clockwise from outside: the normal points away from the center.
            assert!(normal.dot((a + b + c) / 3.0 - center) > 0.0, "triangle {triangle:?} faces in");
            normals.push(normal.to_array().map(|x| x.round() as i32));
        }
        normals.sort_unstable();
        normals.dedup();
        assert_eq!(normals.len(), 6, "two triangles on each of six faces");
        assert!(boxes.slots.iter().all(|s| *s == 9));
        assert!(boxes.colors.iter().all(|c| *c == pack_tint([0.5, 0.25, 1.0, 1.0])));
        assert_eq!((boxes.parts[0].min, boxes.parts[0].max), (min, max));
    }

    #[test]
    fn large_models_split_into_square_chunks_and_small_ones_do_not() {
        let row: Vec<Vec3> = (0..100).map(|i| Vec3::new(i as f32, 0.0, (i % 10) as f32 * 10.0)).collect();
        assert_eq!(ChunkGrid::new(&row, 1_999).count(), 1);
        let grid = ChunkGrid::new(&row, 16_000);
        assert_eq!((grid.columns, grid.rows), (3, 2), "8 wanted over a 99 × 90 plan");
        assert_eq!(grid.chunk_of(Vec3::ZERO), 0);
        assert_eq!(grid.chunk_of(Vec3::new(99.0, 0.0, 90.0)), grid.count() - 1);
        // Points outside the centers' bounds (a part of a big element) still get a chunk.
        assert_eq!(grid.chunk_of(Vec3::new(-50.0, 0.0, 500.0)), grid.columns * (grid.rows - 1));
        assert_eq!(ChunkGrid::new(&row, usize::MAX).count(), MAX_CHUNKS - MAX_CHUNKS % 4);
        assert_eq!(ChunkGrid::new(&[], 100_000).count(), MAX_CHUNKS, "no centers: one point");
    }

    #[test]
    fn materials_that_differ_only_in_color_share_a_batch_material() {
        let red = StandardMaterial { base_color: Color::srgb(1.0, 0.0, 0.0), ..default() };
        let blue = StandardMaterial {
            base_color: Color::srgb(0.0, 0.0, 1.0),
            perceptual_roughness: 0.2,
            ..default()
        };
        assert_eq!(SharedLook::of(&red), SharedLook::of(&blue));
        let glass = StandardMaterial { alpha_mode: AlphaMode::Blend, ..red.clone() };
        assert_ne!(SharedLook::of(&red), SharedLook::of(&glass));
        let glowing = StandardMaterial { emissive: LinearRgba::rgb(1.0, 1.0, 0.0), ..red.clone() };
        assert_ne!(SharedLook::of(&red), SharedLook::of(&glowing));
        let masked =
            |cutoff| SharedLook::of(&StandardMaterial { alpha_mode: AlphaMode::Mask(cutoff), ..default() });
        assert_ne!(masked(0.5), masked(0.4));

        let mut builder = BatchBuilder::default();
        assert!(builder.add(&triangle_mesh(), &Affine3A::IDENTITY, 1, [1.0, 0.0, 0.0, 1.0], 0));
        assert!(builder.add(&triangle_mesh(), &Affine3A::IDENTITY, 2, [0.0, 0.0, 1.0, 0.5], 0));
        assert_eq!(builder.colors[..3], [[255, 0, 0, 255]; 3]);
        assert_eq!(builder.colors[3..], [[0, 0, 255, 128]; 3]);
    }

    #[test]
    fn written_rows_are_handed_over_once_each() {
        let mut world = World::new();
        let mut states = states(SLOTS_PER_ROW * 4);
        let look =
            SlotLook { color: Some(StyleColor { r: 9, g: 8, b: 7 }), opacity: Opacity::OPAQUE, flags: 0 };
        states.write(SLOTS_PER_ROW + 2, look);
        states.write(SLOTS_PER_ROW * 2, look);
        world.insert_resource(states);
        world.init_resource::<StateTextureRows>();
        world.run_system_once(hand_over_written_rows).unwrap();
        let rows = world.resource::<StateTextureRows>().clone();
        assert_eq!((rows.generation, rows.first_row, rows.bytes.len()), (1, 1, 2 * ROW_BYTES));
        assert_eq!(&rows.bytes[16..20], &[9, 8, 7, 255]);
        world.run_system_once(hand_over_written_rows).unwrap();
        assert_eq!(world.resource::<StateTextureRows>().generation, 1, "nothing new, nothing handed over");
    }

    fn states(slots: u32) -> ElementStates {
        ElementStates {
            image: Handle::default(),
            texels: blank_texels(slots.div_ceil(SLOTS_PER_ROW)),
            dirty_rows: None,
            materials: Vec::new(),
            translucent_slots: 0,
            blending: false,
            hidden_slots: 0,
        }
    }

    #[test]
    fn writes_track_hidden_and_translucent_slots_and_only_changes_dirty_rows() {
        let mut states = states(SLOTS_PER_ROW * 4);
        let plain = SlotLook { color: None, opacity: Opacity::OPAQUE, flags: 0 };
        let ghost = SlotLook { flags: StateFlags::GHOSTED, ..plain };
        states.write(2, ghost);
        states.write(3, ghost);
        assert_eq!(states.translucent_slots, 2);
        assert_eq!(states.dirty_rows, Some(0..1));
        assert_eq!(&states.texels[16..24], &ghost.texels());
        states.dirty_rows = None;
        states.write(2, ghost);
        assert_eq!(states.dirty_rows, None, "the same look again is no change");
        states.write(SLOTS_PER_ROW * 3 + 1, plain);
        assert_eq!(states.dirty_rows, None, "a blank slot written blank is no change");
        let colored = SlotLook { color: Some(StyleColor { r: 1, g: 2, b: 3 }), ..plain };
        states.write(SLOTS_PER_ROW * 3 + 1, colored);
        assert_eq!(states.dirty_rows, Some(3..4), "rows are the written slots' rows");
        states.write(2, plain);
        states.write(3, SlotLook { flags: StateFlags::HIDDEN, ..plain });
        assert_eq!(states.translucent_slots, 0);
        assert!(states.is_hidden(3) && !states.is_hidden(2));
        assert!(states.any_hidden());
        states.write(3, plain);
        states.write(3, plain);
        assert!(!states.any_hidden(), "shown again, counted once");
        // A slot beyond the texture is ignored, never a panic.
        states.write(u32::MAX, ghost);
    }

    #[test]
    fn slots_map_to_their_own_texels() {
        assert_eq!(texel_offset(0), 0);
        assert_eq!(texel_offset(1), 8);
        assert_eq!(texel_offset(SLOTS_PER_ROW), (TEXELS_PER_ROW * 4) as usize);
        // The texture's bytes: whole rows of blank slots, neither hidden nor translucent.
        let blank = blank_texels(2);
        assert_eq!(blank.len(), 2 * ROW_BYTES);
        assert!(blank.chunks_exact(8).all(|slot| !texels_hidden(slot) && !texels_translucent(slot)));
        let look =
            SlotLook { color: Some(StyleColor { r: 1, g: 2, b: 3 }), opacity: Opacity::OPAQUE, flags: 0 };
        assert_eq!(look.texels(), [1, 2, 3, 255, StateFlags::HAS_COLOR, 0, 0, 0]);
        let ghost = SlotLook { color: None, opacity: Opacity::OPAQUE, flags: StateFlags::GHOSTED };
        assert!(texels_translucent(&ghost.texels()) && !texels_hidden(&ghost.texels()));
        let hidden_ghost = SlotLook { flags: StateFlags::HIDDEN | StateFlags::GHOSTED, ..ghost }.texels();
        assert!(!texels_translucent(&hidden_ghost) && texels_hidden(&hidden_ghost));
        let faded = SlotLook { opacity: Opacity(128), flags: 0, ..ghost }.texels();
        assert!(texels_translucent(&faded));
        assert!(!texels_translucent(&SlotLook { flags: 0, ..ghost }.texels()));
    }
}
