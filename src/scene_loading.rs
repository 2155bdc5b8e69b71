//! Loading a scene: fetch the scene file, read it in whichever format it is (twinscene, ADT 3D
//! Scenes, TwinMaker; told apart by content, by core's `import`), fetch the twin and model files
//! it names, spawn its glTF model, then map the model's nodes (by name) to the scene's elements
//! and measure where each element is. Failures name the URL and what went wrong, and put the
//! viewer in the failed phase; what a peer file has that twinscene does not show is logged and
//! published, never dropped silently.

use std::collections::HashMap;

use bevy::camera::primitives::Aabb;
use bevy::prelude::*;
use bevy::world_serialization::WorldInstanceReady;
use crossbeam_channel::{Receiver, Sender};
use twinscene_core::import::{self, ImportNote, ImportOptions, Imported, SourceFormat};
#[cfg(target_arch = "wasm32")]
use twinscene_core::live::SCENE_SEQ_HEADER;
use twinscene_core::runtime::SceneRuntime;
use twinscene_core::scene::Scene;
use twinscene_core::scene_check::{self, Finding};

use crate::ViewerConfig;
use crate::app_phase::{AppPhase, LoadStage, loading};
use crate::live_link::LiveLink;
use crate::model_reading::{self, ModelScene};
use crate::twin_state::TwinRuntime;

/// The meshes of each element (by element index), with the model's own material of each mesh
/// so that "no color" can restore it. Present once the model is spawned and mapped.
#[derive(Resource, Debug, Default)]
pub struct ElementMeshes {
    /// By element index; empty (not a list per element) when the model was read, not spawned.
    meshes: Vec<Vec<ElementMesh>>,
    element_by_mesh: HashMap<Entity, usize>,
    /// Meshes of the model that belong to no element (furniture, context); they take part in
    /// ghosting but in no rule.
    pub unbound: Vec<ElementMesh>,
    /// Node names the scene names but the model lacks, with the element that named them.
    pub missing_nodes: Vec<(usize, String)>,
}

#[derive(Debug, Clone)]
pub struct ElementMesh {
    pub entity: Entity,
    pub model_material: Handle<StandardMaterial>,
}

impl ElementMeshes {
    /// The element's mesh entities; none for a model read without spawning it.
    pub fn meshes_of(&self, element: usize) -> &[ElementMesh] {
        self.meshes.get(element).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every element's meshes, by element index.
    pub fn all(&self) -> impl Iterator<Item = (usize, &[ElementMesh])> {
        self.meshes.iter().map(Vec::as_slice).enumerate()
    }

    /// The element a mesh entity belongs to.
    pub fn element_of(&self, mesh: Entity) -> Option<usize> {
        self.element_by_mesh.get(&mesh).copied()
    }
}

/// World-space bounds of each element (by element index) and of the whole model.
#[derive(Resource, Debug, Clone)]
pub struct ElementBounds {
    pub elements: Vec<Option<(Vec3, Vec3)>>,
    pub scene: (Vec3, Vec3),
}

/// In the browser, a GLB is fetched by the viewer itself (any origin the server allows, with
/// byte progress) and handed to Bevy from memory under this asset source; other models load
/// through Bevy's own reader from the page's site.
pub const MESH_SOURCE: &str = "twinscene-mesh";

/// The in-memory files behind [`MESH_SOURCE`].
#[derive(Resource, Clone, Default)]
pub struct MeshMemory(pub bevy::asset::io::memory::Dir);

/// Bytes of the mesh received and expected (0 when unknown), while it downloads.
pub static MESH_BYTES: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64) =
    (std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0));

/// Registers [`MESH_SOURCE`]; must run before the asset plugin is added.
pub fn register_mesh_source(app: &mut App) {
    use bevy::asset::AssetApp;
    use bevy::asset::io::AssetSourceBuilder;
    use bevy::asset::io::memory::MemoryAssetReader;
    let memory = MeshMemory::default();
    let root = memory.0.clone();
    app.register_asset_source(
        MESH_SOURCE,
        AssetSourceBuilder::new(move || Box::new(MemoryAssetReader { root: root.clone() })),
    );
    app.insert_resource(memory);
}

/// The GLB's bytes being downloaded (web) or read (desktop), delivered by the fetch task.
#[derive(Resource)]
struct MeshDownload {
    url: String,
    receiver: Receiver<Result<Vec<u8>, String>>,
}

/// The root entity of the spawned model.
#[derive(Component)]
pub struct ModelRoot;

/// The scene read from its file and the files it names (or an error message).
#[derive(Resource)]
struct SceneFetch(Receiver<Result<SceneFiles, String>>);

struct SceneFiles {
    scene: Scene,
    format: SourceFormat,
    notes: Vec<ImportNote>,
    /// The mesh's URL, resolved against the scene's (an error for an unusable one).
    mesh_url: Result<String, String>,
    /// The GLB download, started as soon as the scene named it (read at once on the desktop).
    mesh_download: Option<MeshDownload>,
    /// The live seq the scene's twins are as of, when its server said (core's
    /// `SCENE_SEQ_HEADER`): the live link resumes from it instead of asking for a snapshot.
    live_seq: Option<u64>,
}

/// Where the shown scene came from: its file format, and what of the file is not shown.
#[derive(Resource, Debug, Clone)]
pub struct SceneSource {
    pub format: SourceFormat,
    pub notes: Vec<ImportNote>,
    /// What `twinscene validate` would say about the (imported) scene: expressions that do not
    /// parse or do not fit the twins' DTDL types, unknown names, and so on. The scene is shown
    /// anyway (a failing expression has no value); these tell its author why. `None` until the
    /// twins are known: a server's scene comes without them, and the live snapshot brings them.
    pub findings: Option<Vec<Finding>>,
}

/// What to load, from the viewer's configuration.
struct SceneRequest {
    url: String,
    mesh: Option<String>,
    scene: Option<String>,
}

/// The model being loaded, to watch for load failures.
#[derive(Resource)]
struct PendingModel {
    url: String,
    handle: Handle<bevy::world_serialization::WorldAsset>,
}

pub(super) fn plugin(app: &mut App) {
    // The scene is fetched and read from the moment the app is built: in the browser the app's
    // first update waits until the renderer is up (half a second under software WebGL), and
    // the download, the parse and the mesh download need not.
    if let Some(config) = app.world().get_resource::<ViewerConfig>() {
        let request = SceneRequest {
            url: config.scene_url.clone(),
            mesh: config.mesh_url.clone(),
            scene: config.scene_name.clone(),
        };
        let (sender, receiver) = crossbeam_channel::bounded(1);
        spawn_load(request, sender);
        app.insert_resource(SceneFetch(receiver));
    }
    app.add_systems(Startup, request_scene_file).add_systems(
        Update,
        (
            receive_scene_file.run_if(loading(LoadStage::Scene)),
            receive_mesh_bytes.run_if(resource_exists::<MeshDownload>),
            watch_model_load.run_if(loading(LoadStage::Mesh).and_then(resource_exists::<PendingModel>)),
            measure_elements.run_if(loading(LoadStage::Layout)),
            check_scene_once_twins_are_known,
        ),
    );
}

/// Checks the scene as `twinscene validate` would, once: as soon as there are twins to check
/// it against (the scene's own, or the live snapshot's), or at once without live data.
fn check_scene_once_twins_are_known(
    runtime: Option<Res<TwinRuntime>>,
    source: Option<ResMut<SceneSource>>,
    config: Res<ViewerConfig>,
) {
    let (Some(runtime), Some(mut source)) = (runtime, source) else { return };
    if source.findings.is_some() || (runtime.graph().twin_count() == 0 && config.live_url.is_some()) {
        return;
    }
    let findings = scene_check::check_scene_with_twins(
        runtime.scene(),
        runtime.graph().twins(),
        runtime.graph().models(),
    );
    for finding in &findings {
        warn!("scene {}: {finding}", config.scene_url);
    }
    source.findings = Some(findings);
}

/// The fetch itself started when the app was built (see [`plugin`]).
fn request_scene_file(fetch: Option<Res<SceneFetch>>, mut phase: ResMut<AppPhase>) {
    if fetch.is_some() {
        *phase = AppPhase::Loading(LoadStage::Scene);
    }
}

/// Reads the scene file in any format, then the twin and model files it names (relative to it).
async fn load_scene_files(request: SceneRequest) -> Result<SceneFiles, String> {
    let (text, live_seq) = read_text_and_seq(&request.url).await?;
    let options = ImportOptions {
        scene: request.scene.as_deref(),
        mesh: request.mesh.as_deref(),
        ..Default::default()
    };
    let Imported { format, mut scene, notes } = import::import(&text, &options).map_err(|e| e.to_string())?;
    if let Some(file) = scene.twins_file.clone() {
        let url = resolve(&request.url, &file)?;
        let text = read_text(&url).await.map_err(|e| format!("twins file {url}: {e}"))?;
        scene.merge_twin_file(&text).map_err(|e| format!("twins file {url}: {e}"))?;
    }
    if let Some(file) = scene.models_file.clone() {
        let url = resolve(&request.url, &file)?;
        let text = read_text(&url).await.map_err(|e| format!("models file {url}: {e}"))?;
        scene.merge_models_file(&text).map_err(|e| format!("models file {url}: {e}"))?;
    }
    // Resolved here so that a GLB starts downloading now; an unusable URL is reported when the
    // scene is received.
    let mesh_url = resolve_mesh_url(&request.url, &scene.mesh);
    let mesh_download = match &mesh_url {
        Ok(url) if is_glb(url) => {
            let (sender, receiver) = crossbeam_channel::bounded(1);
            fetch_bytes(url.clone(), sender);
            Some(MeshDownload { url: url.clone(), receiver })
        }
        _ => None,
    };
    Ok(SceneFiles { scene, format, notes, mesh_url, mesh_download, live_seq })
}

#[cfg(target_arch = "wasm32")]
fn spawn_load(request: SceneRequest, sender: Sender<Result<SceneFiles, String>>) {
    wasm_bindgen_futures::spawn_local(async move {
        let _ = sender.send(load_scene_files(request).await);
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn spawn_load(request: SceneRequest, sender: Sender<Result<SceneFiles, String>>) {
    // Local files: reading them in place is as fast as handing them to a task.
    let _ = sender.send(bevy::tasks::block_on(load_scene_files(request)));
}

fn receive_scene_file(
    mut commands: Commands,
    fetch: Res<SceneFetch>,
    config: Res<ViewerConfig>,
    live_link: Option<ResMut<LiveLink>>,
    asset_server: Res<AssetServer>,
    mut phase: ResMut<AppPhase>,
) {
    let Ok(result) = fetch.0.try_recv() else { return };
    commands.remove_resource::<SceneFetch>();
    let scene_url = &config.scene_url;
    let loaded = result.and_then(|files| {
        let mut runtime = SceneRuntime::new(files.scene).map_err(|e| e.to_string())?;
        // Live writes come from the server, which has accepted them: the viewer must apply
        // them, not re-judge them against the scene's models (kept for units and selections).
        runtime.trust_writes();
        let source = SceneSource { format: files.format, notes: files.notes, findings: None };
        Ok((runtime, source, files.mesh_url, files.mesh_download, files.live_seq))
    });
    let (runtime, source, mesh_url, mesh_download, live_seq) = match loaded {
        Ok(loaded) => loaded,
        Err(message) => return phase.fail(format!("cannot load scene {scene_url}: {message}")),
    };
    for note in &source.notes {
        warn!("scene {scene_url} ({}): not shown: {note}", source.format);
    }
    commands.insert_resource(source);
    let mesh_url = match mesh_url {
        Ok(url) => url,
        Err(message) => return phase.fail(format!("cannot load mesh of scene {scene_url}: {message}")),
    };
    info!("scene {scene_url}: {} elements, mesh {mesh_url}", runtime.elements().len());
    if let (Some(seq), Some(mut link), Some(live_url)) = (live_seq, live_link, config.live_url.as_deref()) {
        link.resume_from_scene(seq, scene_url, live_url);
    }
    commands.insert_resource(TwinRuntime(runtime));
    commands.insert_resource(AppPhase::Loading(LoadStage::Mesh));
    // A GLB is already downloading (started by the scene's task).
    if let Some(download) = mesh_download {
        commands.insert_resource(download);
        return;
    }
    spawn_model(&mut commands, &asset_server, mesh_url.clone(), mesh_url);
}

fn is_glb(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.to_ascii_lowercase().ends_with(".glb")
}

/// Starts loading the model from `asset_path` (`url` names it in messages).
fn spawn_model(commands: &mut Commands, asset_server: &AssetServer, asset_path: String, url: String) {
    let handle = asset_server.load(GltfAssetLabel::Scene(0).from_asset(asset_path));
    // Hidden until batched_geometry has merged its meshes: drawn before, every mesh would need
    // Bevy's PBR pipelines compiled and run for a few frames that, under software WebGL, cost
    // seconds before the first batched frame.
    commands
        .spawn((ModelRoot, WorldAssetRoot(handle.clone()), Visibility::Hidden))
        .observe(map_model_to_elements);
    commands.insert_resource(PendingModel { url, handle });
}

fn receive_mesh_bytes(
    mut commands: Commands,
    download: Res<MeshDownload>,
    memory: Res<MeshMemory>,
    asset_server: Res<AssetServer>,
    runtime: Res<TwinRuntime>,
    mut phase: ResMut<AppPhase>,
) {
    let Ok(result) = download.receiver.try_recv() else { return };
    commands.remove_resource::<MeshDownload>();
    let url = &download.url;
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(message) => return phase.fail(format!("cannot load mesh {url}: {message}")),
    };
    match model_reading::read_glb(&bytes) {
        Ok(Some(model)) => match lay_out_read_model(model, &runtime) {
            Some((meshes, bounds, model)) => {
                info!(
                    "mesh {url}: {} placed primitives, read without spawning",
                    model.model.placements.len()
                );
                commands.insert_resource(meshes);
                commands.insert_resource(bounds);
                commands.insert_resource(model);
                commands.insert_resource(AppPhase::Ready);
            }
            None => phase.fail(format!("cannot load mesh {url}: the model has no meshes to show")),
        },
        Ok(None) => {
            // One file name per scene load: the model is read from memory once.
            memory.0.insert_asset(std::path::Path::new("model.glb"), bytes);
            let path = format!("{MESH_SOURCE}://model.glb");
            spawn_model(&mut commands, &asset_server, path, url.clone());
        }
        Err(message) => phase.fail(format!("cannot load mesh {url}: {message}")),
    }
}

/// A model read without spawning it ([`model_reading`]), with the element (if any) that each
/// placement belongs to. Batched geometry merges it, then drops it.
#[derive(Resource)]
pub struct ReadModel {
    pub model: ModelScene,
    /// By placement: the first element that names it (or its node), as `element_of` maps a
    /// spawned mesh.
    pub element_of_placement: Vec<Option<u32>>,
}

/// Maps the scene's elements to a read model's placements by node name, as
/// [`map_model_to_elements`] does for a spawned one, and measures them. `None` when the model
/// places no primitive.
fn lay_out_read_model(
    model: ModelScene,
    runtime: &TwinRuntime,
) -> Option<(ElementMeshes, ElementBounds, ReadModel)> {
    let boxes: Vec<(Vec3, Vec3)> = model
        .placements
        .iter()
        .map(|placement| placement.world_box(&model.primitives[placement.primitive as usize]))
        .collect();
    let scene = boxes.iter().copied().reduce(union)?;
    let mut element_of_placement = vec![None; model.placements.len()];
    let mut element_meshes = ElementMeshes::default();
    let mut elements = Vec::with_capacity(runtime.elements().len());
    for (index, element) in runtime.elements().iter().enumerate() {
        let mut bounds = None;
        for node_name in &element.nodes {
            let Some(range) = model.names.get(node_name) else {
                element_meshes.missing_nodes.push((index, node_name.clone()));
                continue;
            };
            for placement in range.start as usize..range.end as usize {
                element_of_placement[placement].get_or_insert(index as u32);
                bounds = Some(bounds.map_or(boxes[placement], |b| union(b, boxes[placement])));
            }
        }
        elements.push(bounds);
    }
    // No mesh entities, so no per-element lists at all: every placement is drawn by a batch,
    // and painting an element (10^4 a live update at 10^6 elements) must not read an empty
    // list of it from memory that was never in the cache (24 MB of them at 10^6).
    warn_about_missing_nodes(&element_meshes, runtime);
    Some((element_meshes, ElementBounds { elements, scene }, ReadModel { model, element_of_placement }))
}

fn warn_about_missing_nodes(element_meshes: &ElementMeshes, runtime: &TwinRuntime) {
    for (element, node) in &element_meshes.missing_nodes {
        warn!(
            "element {:?} names mesh node {node:?}, which the model does not have",
            runtime.elements()[*element].id
        );
    }
}

fn watch_model_load(asset_server: Res<AssetServer>, pending: Res<PendingModel>, mut phase: ResMut<AppPhase>) {
    if let Some(bevy::asset::LoadState::Failed(error)) = asset_server.get_load_state(pending.handle.id()) {
        phase.fail(format!("cannot load mesh {}: {error}", pending.url));
    }
}

/// Maps the scene's elements to the spawned model's mesh entities, by glTF node name.
fn map_model_to_elements(
    ready: On<WorldInstanceReady>,
    mut commands: Commands,
    runtime: Res<TwinRuntime>,
    children: Query<&Children>,
    names: Query<&Name>,
    materials: Query<&MeshMaterial3d<StandardMaterial>>,
) {
    let mut node_by_name = HashMap::new();
    for entity in children.iter_descendants(ready.entity) {
        if let Ok(name) = names.get(entity) {
            node_by_name.entry(name.as_str().to_owned()).or_insert(entity);
        }
    }
    let mut element_meshes = ElementMeshes::default();
    for (index, element) in runtime.elements().iter().enumerate() {
        let mut meshes = Vec::new();
        for node_name in &element.nodes {
            let Some(&node) = node_by_name.get(node_name) else {
                element_meshes.missing_nodes.push((index, node_name.clone()));
                continue;
            };
            // Primitives are children of their node; nested nodes belong to the element too.
            for entity in std::iter::once(node).chain(children.iter_descendants(node)) {
                if let Ok(material) = materials.get(entity) {
                    meshes.push(ElementMesh { entity, model_material: material.0.clone() });
                    element_meshes.element_by_mesh.entry(entity).or_insert(index);
                }
            }
        }
        element_meshes.meshes.push(meshes);
    }
    for entity in children.iter_descendants(ready.entity) {
        if let Ok(material) = materials.get(entity)
            && !element_meshes.element_by_mesh.contains_key(&entity)
        {
            element_meshes.unbound.push(ElementMesh { entity, model_material: material.0.clone() });
        }
    }
    warn_about_missing_nodes(&element_meshes, &runtime);
    commands.insert_resource(element_meshes);
    commands.remove_resource::<PendingModel>();
    // Through commands, so the phase moves on together with `ElementMeshes`: the observer may
    // run in the middle of a schedule (a model read from memory is ready at once), and the
    // layout stage must never see the phase without the meshes. Transforms propagate after
    // this; bounds are measured from the next frame on.
    commands.insert_resource(AppPhase::Loading(LoadStage::Layout));
}

fn measure_elements(
    mut commands: Commands,
    element_meshes: Res<ElementMeshes>,
    boxes: Query<(&Aabb, &GlobalTransform)>,
    root: Single<Entity, With<ModelRoot>>,
    children: Query<&Children>,
    mut phase: ResMut<AppPhase>,
) {
    let world_box = |entity: Entity| -> Option<(Vec3, Vec3)> {
        let (aabb, transform) = boxes.get(entity).ok()?;
        Some(transformed_box(aabb, transform))
    };
    let elements: Vec<_> = element_meshes
        .meshes
        .iter()
        .map(|meshes| meshes.iter().filter_map(|m| world_box(m.entity)).reduce(union))
        .collect();
    let scene = children.iter_descendants(*root).filter_map(world_box).reduce(union);
    let Some(scene) = scene else {
        return phase.fail("the model has no meshes to show");
    };
    commands.insert_resource(ElementBounds { elements, scene });
    // With the bounds, never before them: systems that run once ready read `ElementBounds`.
    commands.insert_resource(AppPhase::Ready);
}

fn union(a: (Vec3, Vec3), b: (Vec3, Vec3)) -> (Vec3, Vec3) {
    (a.0.min(b.0), a.1.max(b.1))
}

fn transformed_box(aabb: &Aabb, transform: &GlobalTransform) -> (Vec3, Vec3) {
    let (center, half) = (Vec3::from(aabb.center), Vec3::from(aabb.half_extents));
    let mut bounds = (Vec3::INFINITY, Vec3::NEG_INFINITY);
    for corner in 0..8 {
        let sign = Vec3::new(
            if corner & 1 == 0 { -1.0 } else { 1.0 },
            if corner & 2 == 0 { -1.0 } else { 1.0 },
            if corner & 4 == 0 { -1.0 } else { 1.0 },
        );
        let point = transform.transform_point(center + half * sign);
        bounds = union(bounds, (point, point));
    }
    bounds
}

/// Resolves the scene's mesh reference against the scene's own location, giving an absolute
/// path that the asset server reads from the site (web) or the filesystem (desktop).
#[cfg(target_arch = "wasm32")]
fn resolve_mesh_url(scene_url: &str, mesh: &str) -> Result<String, String> {
    let url = web_url::join(scene_url, mesh).map_err(|e| format!("mesh URL {mesh:?}: {e}"))?;
    // A GLB is fetched by the viewer (any origin that allows it); Bevy's own reader, which
    // loads a .gltf and the files it names, reads from the page's site only.
    if is_glb(&url) {
        return Ok(url);
    }
    let page_origin = web_url::page_origin();
    match url.strip_prefix(&page_origin) {
        Some(path) if path.starts_with('/') => Ok(path.to_owned()),
        _ => Err(format!(
            "mesh {url} is not on this site ({page_origin}): a .gltf must be served from the same origin (a .glb may come from any origin that allows it)"
        )),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn resolve_mesh_url(scene_path: &str, mesh: &str) -> Result<String, String> {
    resolve(scene_path, mesh)
}

/// A file the scene names, relative to the scene's own URL (web) or path (desktop).
#[cfg(target_arch = "wasm32")]
fn resolve(scene_url: &str, file: &str) -> Result<String, String> {
    web_url::join(scene_url, file).map_err(|e| format!("URL {file:?}: {e}"))
}

#[cfg(not(target_arch = "wasm32"))]
fn resolve(scene_path: &str, file: &str) -> Result<String, String> {
    let base = std::path::Path::new(scene_path).parent().unwrap_or(std::path::Path::new("."));
    let path = base.join(file);
    let absolute = std::path::absolute(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(absolute.to_string_lossy().into_owned())
}

#[cfg(target_arch = "wasm32")]
mod web_url {
    use wasm_bindgen::JsValue;

    /// `new URL(relative, base).href`, through the JS global so no extra web-sys bindings are
    /// needed.
    pub fn join(base: &str, relative: &str) -> Result<String, String> {
        let global = js_sys::global();
        let constructor = js_sys::Reflect::get(&global, &JsValue::from_str("URL"))
            .map_err(|_| "no URL constructor".to_owned())?;
        let args = js_sys::Array::of2(&JsValue::from_str(relative), &JsValue::from_str(base));
        let url = js_sys::Reflect::construct(&constructor.into(), &args)
            .map_err(|e| format!("{}", js_sys::Error::from(e).message()))?;
        js_sys::Reflect::get(&url, &JsValue::from_str("href"))
            .ok()
            .and_then(|href| href.as_string())
            .ok_or_else(|| "URL has no href".to_owned())
    }

    pub fn page_origin() -> String {
        let global = js_sys::global();
        js_sys::Reflect::get(&global, &JsValue::from_str("location"))
            .and_then(|location| js_sys::Reflect::get(&location, &JsValue::from_str("origin")))
            .ok()
            .and_then(|origin| origin.as_string())
            .unwrap_or_default()
    }
}

/// Fetches a file over HTTP (web); the error names the failure. Files larger than core's
/// `MAX_SCENE_BYTES` are refused before they are read. The scene file is usually on its way
/// already: the page starts fetching it while the bundle downloads ([`take_prefetched`]).
#[cfg(target_arch = "wasm32")]
async fn read_text(url: &str) -> Result<String, String> {
    read_text_and_seq(url).await.map(|(text, _)| text)
}

/// [`read_text`], and the live seq the server says the file is as of (core's
/// `SCENE_SEQ_HEADER`, sent with a twinscene server's scene).
#[cfg(target_arch = "wasm32")]
async fn read_text_and_seq(url: &str) -> Result<(String, Option<u64>), String> {
    let response = get(url).await?;
    if !response.ok() {
        return Err(format!("HTTP {} {}", response.status(), response.status_text()));
    }
    let length = response.headers().get("content-length").and_then(|l| l.parse::<usize>().ok());
    if let Some(length) = length.filter(|&l| l > import::MAX_SCENE_BYTES) {
        return Err(format!(
            "{length} bytes is more than the {} bytes a scene file may have",
            import::MAX_SCENE_BYTES
        ));
    }
    let seq = response.headers().get(SCENE_SEQ_HEADER).and_then(|seq| seq.parse().ok());
    Ok((response.text().await.map_err(|e| e.to_string())?, seq))
}

/// The response to a GET of `url`: the page's, if it started that download already
/// ([`take_prefetched`]), or a new request's.
#[cfg(target_arch = "wasm32")]
async fn get(url: &str) -> Result<gloo_net::http::Response, String> {
    use wasm_bindgen::JsCast;
    match take_prefetched(url) {
        Some(pending) => {
            let response = wasm_bindgen_futures::JsFuture::from(pending)
                .await
                .map_err(|e| js_sys::Error::from(e).message().as_string().unwrap_or_default())?;
            let response: web_sys::Response =
                response.dyn_into().map_err(|_| "the page's prefetch gave no response".to_owned())?;
            Ok(gloo_net::http::Response::from(response))
        }
        None => gloo_net::http::Request::get(url).send().await.map_err(|e| e.to_string()),
    }
}

/// The response promise of a fetch of `url` that web/twinscene.js started before the viewer
/// ran (`globalThis.__twinscenePrefetched`, a `Map` by URL), taken out of the map so that it is
/// read once: the scene, and the server's GLB. The viewer asks for its scene only once its
/// renderer is up, over a second after the page knew the URL (at 10^5 elements the scene is
/// 41 MB), and for the GLB once it has read the scene.
#[cfg(target_arch = "wasm32")]
fn take_prefetched(url: &str) -> Option<js_sys::Promise> {
    use wasm_bindgen::{JsCast, JsValue};
    let map: js_sys::Map =
        js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("__twinscenePrefetched"))
            .ok()?
            .dyn_into()
            .ok()?;
    let key = JsValue::from_str(url);
    let pending = map.get(&key).dyn_into::<js_sys::Promise>().ok()?;
    map.delete(&key);
    Some(pending)
}

/// Fetches the mesh (web), counting bytes into [`MESH_BYTES`] for the progress bar.
#[cfg(target_arch = "wasm32")]
fn fetch_bytes(url: String, sender: Sender<Result<Vec<u8>, String>>) {
    use std::sync::atomic::Ordering;
    use wasm_bindgen::{JsCast, JsValue};
    wasm_bindgen_futures::spawn_local(async move {
        let result = async {
            // The page may have started it already: the server's config names its mesh.
            let response = get(&url).await?;
            if !response.ok() {
                return Err(format!("HTTP {} {}", response.status(), response.status_text()));
            }
            let total = response.headers().get("content-length").and_then(|l| l.parse::<u64>().ok());
            MESH_BYTES.1.store(total.unwrap_or(0), Ordering::Relaxed);
            MESH_BYTES.0.store(0, Ordering::Relaxed);
            let Some(body) = response.body() else { return Ok(Vec::new()) };
            // Through Reflect: the stream reader's web-sys bindings are not in the pinned
            // feature list, and adding them rebuilds the whole engine.
            let call = |target: &JsValue, method: &str| -> Result<JsValue, String> {
                let function: js_sys::Function = js_sys::Reflect::get(target, &method.into())
                    .ok()
                    .and_then(|f| f.dyn_into().ok())
                    .ok_or_else(|| format!("the response body has no {method}()"))?;
                function.call0(target).map_err(|e| format!("{}", js_sys::Error::from(e).message()))
            };
            let reader = call(&body.into(), "getReader")?;
            let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
            loop {
                let read: js_sys::Promise =
                    call(&reader, "read")?.dyn_into().map_err(|_| "read() gave no promise".to_owned())?;
                let chunk = wasm_bindgen_futures::JsFuture::from(read)
                    .await
                    .map_err(|e| format!("{}", js_sys::Error::from(e).message()))?;
                let done = js_sys::Reflect::get(&chunk, &"done".into())
                    .ok()
                    .and_then(|d| d.as_bool())
                    .unwrap_or(true);
                if done {
                    break;
                }
                let value =
                    js_sys::Reflect::get(&chunk, &"value".into()).map_err(|_| "no chunk".to_owned())?;
                let array = js_sys::Uint8Array::new(&value);
                let start = bytes.len();
                bytes.resize(start + array.length() as usize, 0);
                array.copy_to(&mut bytes[start..]);
                MESH_BYTES.0.store(bytes.len() as u64, Ordering::Relaxed);
            }
            Ok(bytes)
        }
        .await;
        let _ = sender.send(result);
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn fetch_bytes(path: String, sender: Sender<Result<Vec<u8>, String>>) {
    let _ = sender.send(std::fs::read(&path).map_err(|e| e.to_string()));
}

/// A file on disk is as of no live seq.
#[cfg(not(target_arch = "wasm32"))]
async fn read_text_and_seq(path: &str) -> Result<(String, Option<u64>), String> {
    Ok((read_text(path).await?, None))
}

/// Reads a file from disk (desktop); the error names the failure.
#[cfg(not(target_arch = "wasm32"))]
async fn read_text(path: &str) -> Result<String, String> {
    let length = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if length > import::MAX_SCENE_BYTES as u64 {
        return Err(format!(
            "{length} bytes is more than the {} bytes a scene file may have",
            import::MAX_SCENE_BYTES
        ));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}
