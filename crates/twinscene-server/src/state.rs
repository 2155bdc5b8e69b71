//! The shared state: the twin graph, models and the live seq behind one lock, the durable store
//! every write reaches before it is acknowledged, and the feed that publishes accepted writes.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use serde_json::{Map, Value};
use twinscene_core::graph::TwinGraph;
use twinscene_core::live::{PROTOCOL_VERSION, ServerMessage, TwinChange};
use twinscene_core::scene::Scene;
use twinscene_core::twin::{CompactString, PropertyMap, Relationship, Twin, next_etag};

use crate::api_error::ApiError;
use crate::auth::{Grant, Tokens};
use crate::config::{LiveTimings, LoadedScene, MeshSource, StaticDirs};
use crate::feed::{Feed, FeedChange};
use crate::server_config::ServerConfig;
use crate::storage::{Committer, SqliteStorage, Storage, StorageError, StoredState, StoredWrite, now_ms};

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    /// The scene as served: the mesh points at the server, and `twins` is filled in per request.
    scene: Scene,
    /// The scene's id (its file stem): what `hello.scene` and token scopes name.
    scene_id: String,
    mesh: MeshSource,
    static_dirs: StaticDirs,
    timings: LiveTimings,
    config: ServerConfig,
    tokens: Tokens,
    live: Mutex<LiveState>,
    feed: Arc<Feed>,
    storage: Arc<dyn Storage>,
    committer: Committer,
    storage_failed: AtomicBool,
    connections: AtomicUsize,
    recent_events: Mutex<RecentEvents>,
    ingest_buckets: Mutex<BTreeMap<String, RateBucket>>,
}

/// The graph's relationships and the index of `source`'s relationship `id`, when the grant may
/// write `source`: the common start of every relationship update and delete.
fn writable_relationship(
    live: &LiveState,
    grant: &Grant,
    source: &str,
    id: &str,
) -> Result<(Vec<Relationship>, usize), ApiError> {
    let twin = live.graph.twin(source).ok_or_else(|| twin_not_found(source))?;
    if !grant.may_write(twin) {
        return Err(forbidden_twin(source, "write"));
    }
    let relationships = live.graph.relationships().to_vec();
    let at = relationships
        .iter()
        .position(|r| r.source == source && r.id == id)
        .ok_or_else(|| relationship_not_found(source, id))?;
    Ok((relationships, at))
}

struct LiveState {
    graph: TwinGraph,
    models: BTreeMap<String, Value>,
    /// The seq of the last accepted write.
    seq: u64,
    /// Set by every write queued for storage, cleared by a restore (after a failed commit): a
    /// restore that finds it clear has nothing to undo.
    unrestored_writes: bool,
}

impl LiveState {
    fn from_stored(stored: StoredState) -> Self {
        Self {
            graph: TwinGraph::new(stored.twins, stored.relationships),
            models: models_by_id(stored.models),
            seq: stored.seq,
            unrestored_writes: false,
        }
    }
}

/// What a successful twin write tells the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub etag: String,
    pub seq: u64,
}

/// Where a write came from, for metrics.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    Rest,
    CloudEvents,
    Mqtt,
    Simulator,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::CloudEvents => "cloudevents",
            Self::Mqtt => "mqtt",
            Self::Simulator => "simulator",
        }
    }
}

/// How a `PUT` of a twin ended.
pub enum PutOutcome {
    Created(Twin),
    Replaced(Twin),
}

impl AppState {
    /// An open server with in-memory storage and default limits (what tests mostly need).
    pub fn new(loaded: LoadedScene, static_dirs: StaticDirs, timings: LiveTimings) -> Self {
        let storage = SqliteStorage::in_memory().unwrap_or_else(|error| panic!("in-memory SQLite: {error}"));
        Self::with_storage(loaded, static_dirs, timings, ServerConfig::default(), Arc::new(storage))
            .unwrap_or_else(|error| panic!("in-memory SQLite: {error}"))
    }

    /// Starts from what `storage` holds, or seeds it from the scene's twins, relationships and
    /// models when it is empty. Must be called within a tokio runtime (the feed's publisher is
    /// a task).
    pub fn with_storage(
        loaded: LoadedScene,
        static_dirs: StaticDirs,
        timings: LiveTimings,
        config: ServerConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, StorageError> {
        crate::metrics::handle();
        let LoadedScene { mut scene, mesh, id: scene_id } = loaded;
        let scene_twins = std::mem::take(&mut scene.twins);
        let scene_models: Vec<(String, Value)> = scene
            .models
            .iter()
            .filter_map(|model| {
                let id = model_id(model);
                if id.is_none() {
                    tracing::warn!("a model of the scene has no \"@id\" string; it is not served");
                }
                Some((id?, model.clone()))
            })
            .collect();
        let model_write = |(id, model): (String, Value)| StoredWrite::Model { id, model };
        let (mut live, mut writes) = match storage.load()? {
            Some(stored) => {
                let mut live = LiveState::from_stored(stored);
                // The twins are state: after the first start only storage has them. Models are
                // definitions the scene file carries: one the scene has and storage lacks (a
                // database from before scene models were stored, a model added to the scene or
                // given with `--models` since) is added, and stored with the seq below; one
                // storage has is kept as stored. A scene model deleted through the API therefore
                // comes back at the next start for as long as the scene has it.
                let added: Vec<(String, Value)> =
                    scene_models.into_iter().filter(|(id, _)| !live.models.contains_key(id)).collect();
                live.models.extend(added.iter().cloned());
                (live, added.into_iter().map(model_write).collect())
            }
            None => {
                let mut seed: Vec<StoredWrite> = scene_twins.iter().cloned().map(StoredWrite::Twin).collect();
                seed.extend(scene.relationships.iter().cloned().map(StoredWrite::Relationship));
                seed.extend(scene_models.iter().cloned().map(model_write));
                seed.push(StoredWrite::Seq(0));
                storage.commit(&seed)?;
                let stored = StoredState {
                    twins: scene_twins,
                    relationships: scene.relationships.clone(),
                    models: scene_models.into_iter().map(|(_, model)| model).collect(),
                    seq: 0,
                };
                (LiveState::from_stored(stored), Vec::new())
            }
        };
        // Each run numbers its writes from its start time in microseconds (or on from the
        // stored seq if that is higher), so that a viewer's `since_seq` from another run can
        // never be mistaken for a position in this one.
        let origin = now_micros().max(live.seq + 1);
        writes.push(StoredWrite::Seq(origin));
        storage.commit(&writes)?;
        live.seq = origin;
        if let MeshSource::File { name, .. } = &mesh {
            scene.mesh = format!("/api/scene/mesh/{}", encode_path_segment(name));
        }
        let committer = Committer::start(storage.clone(), config.history.clone())?;
        let feed = Feed::new(origin, config.live);
        let tokens = Tokens::new(&config.tokens);
        Ok(Self(Arc::new(Shared {
            scene,
            scene_id,
            mesh,
            static_dirs,
            timings,
            tokens,
            live: Mutex::new(live),
            feed,
            storage,
            committer,
            storage_failed: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            recent_events: Mutex::new(RecentEvents::default()),
            ingest_buckets: Mutex::new(BTreeMap::new()),
            config,
        })))
    }

    /// The mesh's URL as the served scene names it (`/api/scene/mesh/<file>` for a file).
    pub fn mesh_url(&self) -> &str {
        &self.0.scene.mesh
    }

    pub fn mesh(&self) -> &MeshSource {
        &self.0.mesh
    }

    pub fn static_dirs(&self) -> &StaticDirs {
        &self.0.static_dirs
    }

    pub fn timings(&self) -> LiveTimings {
        self.0.timings
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    pub fn scene_id(&self) -> &str {
        &self.0.scene_id
    }

    pub fn feed(&self) -> &Feed {
        &self.0.feed
    }

    pub fn storage(&self) -> Arc<dyn Storage> {
        self.0.storage.clone()
    }

    /// False once a commit failed: the server then refuses writes and `/healthz` says so.
    pub fn storage_healthy(&self) -> bool {
        !self.0.storage_failed.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> &AtomicUsize {
        &self.0.connections
    }

    /// The seq of the last accepted write.
    pub fn seq(&self) -> u64 {
        self.live().seq
    }

    /// The scene with the current state of the twins `grant` may read, and the seq it is as of
    /// when every write in it has been published: a viewer that greets `/live` with that seq is
    /// caught up with deltas. `None` while a write in it waits for its commit (it may yet be
    /// dropped; only a snapshot, which a restore replaces, may carry it).
    pub fn current_scene(&self, grant: &Grant) -> (Scene, Option<u64>) {
        let live = self.live();
        let twins = live.graph.twins().filter(|twin| grant.may_read(twin)).cloned().collect();
        let relationships = readable_relationships(&live.graph, grant);
        // Writers hold the live lock, so no write lands between these two reads.
        let seq = (self.0.feed.published_seq() == live.seq).then_some(live.seq);
        (Scene { twins, relationships, ..self.0.scene.clone() }, seq)
    }

    pub fn twin(&self, grant: &Grant, id: &str) -> Result<Twin, ApiError> {
        let live = self.live();
        let twin = live.graph.twin(id).ok_or_else(|| twin_not_found(id))?;
        if !grant.may_read(twin) {
            return Err(forbidden_twin(id, "read"));
        }
        Ok(twin.clone())
    }

    /// Twins `grant` may read, optionally of one model and/or related to a twin.
    pub fn query_twins(&self, grant: &Grant, query: &TwinQuery) -> Vec<Twin> {
        let live = self.live();
        let relationships = live.graph.relationships().to_vec();
        let related: Option<HashSet<&str>> = match (&query.related_from, &query.related_to) {
            (None, None) => None,
            (from, to) => Some(
                relationships
                    .iter()
                    .filter(|r| query.relationship.as_ref().is_none_or(|name| &r.name == name))
                    .filter_map(|r| match (from, to) {
                        (Some(from), _) if &r.source == from => Some(r.target.as_str()),
                        (_, Some(to)) if &r.target == to => Some(r.source.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        live.graph
            .twins()
            .filter(|twin| grant.may_read(twin))
            .filter(|twin| query.model.as_ref().is_none_or(|model| &twin.model == model))
            .filter(|twin| related.as_ref().is_none_or(|ids| ids.contains(twin.id.as_str())))
            .cloned()
            .collect()
    }

    /// Ids and temperatures of the twins that have a numeric `temperature`.
    /// Every numeric `temperature` of every twin, at the top level or inside a component
    /// (TwinMaker scenes bind `component.property`): twin id, JSON Pointer tokens, value.
    pub fn temperatures(&self) -> Vec<(String, Vec<String>, f64)> {
        let live = self.live();
        let mut found = Vec::new();
        for twin in live.graph.twins() {
            for (name, value) in &twin.properties {
                match value {
                    Value::Number(n) if name == "temperature" => {
                        found.extend(n.as_f64().map(|t| (twin.id.clone(), vec![name.to_owned()], t)));
                    }
                    Value::Object(component) => {
                        if let Some(t) = component.get("temperature").and_then(Value::as_f64) {
                            found.push((twin.id.clone(), vec![name.to_owned(), "temperature".into()], t));
                        }
                    }
                    _ => {}
                }
            }
        }
        found
    }

    /// Applies a JSON Patch to one twin, all of it or nothing, numbers it, makes it durable and
    /// queues it for viewers. Every property write (REST, CloudEvents, MQTT, simulator) comes
    /// through here or `patch_twins`, so the order of `seq` is the order of application.
    pub async fn patch_twin(
        &self,
        grant: &Grant,
        id: &str,
        patch: Patch,
        if_match: Option<&str>,
        source: Source,
    ) -> Result<Accepted, ApiError> {
        let write =
            TwinWrite { twin: id.to_owned(), model: None, patch, if_match: if_match.map(str::to_owned) };
        let mut results = self.patch_twins(grant, vec![write], source).await?;
        results.pop().unwrap_or_else(|| Err(ApiError::Internal("no result for a write".into())))
    }

    /// Applies several independent patches in one go: each is checked and applied on its own
    /// (one refused patch does not stop the others), and all accepted ones share one durable
    /// commit. The outer error means none could be made durable.
    pub async fn patch_twins(
        &self,
        grant: &Grant,
        writes: Vec<TwinWrite>,
        source: Source,
    ) -> Result<Vec<Result<Accepted, ApiError>>, ApiError> {
        self.check_storage()?;
        let (durable, results) = {
            let mut live = self.live();
            let mut stored = Vec::new();
            let stores_twins = self.0.storage.stores_twins();
            let (ts, ts_ms) = now_timestamps();
            let results: Vec<Result<Accepted, ApiError>> = writes
                .into_iter()
                .map(|write| {
                    let (accepted, twin, change) = apply_one(&mut live, grant, write, &ts)?;
                    stored.extend(history_points(twin, &change.patch, ts_ms));
                    let model = twin.model.clone();
                    if stores_twins {
                        stored.push(StoredWrite::Twin(twin.clone()));
                    }
                    self.0.feed.push(FeedChange { seq: accepted.seq, model, change });
                    Ok(accepted)
                })
                .collect();
            // Every accepted write goes through storage, even with nothing to store (a
            // history-only storage and a patch of text): the feed publishes it once durable.
            let durable = results.iter().any(Result::is_ok).then(|| {
                let seq = live.seq;
                stored.push(StoredWrite::Seq(seq));
                self.submit(&mut live, stored, Some(seq))
            });
            (durable, results)
        };
        if let Some(durable) = durable {
            durable.await?;
        }
        let accepted = results.iter().filter(|result| result.is_ok()).count();
        metrics::counter!(crate::metrics::UPDATES_IN, "source" => source.label()).increment(accepted as u64);
        Ok(results)
    }

    /// ADT `PUT /digitaltwins/{id}`: creates the twin, or replaces its properties (as one
    /// patch, so viewers get a delta) or its model (viewers get a snapshot).
    pub async fn put_twin(
        &self,
        grant: &Grant,
        id: &str,
        mut twin: Twin,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<PutOutcome, ApiError> {
        self.check_storage()?;
        twin.id = id.to_owned();
        if !grant.may_write(&twin) {
            return Err(forbidden_twin(id, "write"));
        }
        let (ts, _) = now_timestamps();
        let existing = self.live().graph.twin(id).cloned();
        match existing {
            Some(existing) => {
                if !grant.may_write(&existing) {
                    return Err(forbidden_twin(id, "write"));
                }
                if if_none_match == Some("*") {
                    return Err(ApiError::PreconditionFailed(format!("twin {id:?} already exists")));
                }
                check_if_match(if_match, &existing.etag)?;
                if existing.model == twin.model {
                    let patch = replacement_patch(&existing.properties, &twin.properties);
                    if patch.0.is_empty() {
                        return Ok(PutOutcome::Replaced(existing));
                    }
                    let etag = existing.etag.clone();
                    self.patch_twin(grant, id, patch, Some(&etag), Source::Rest).await?;
                    return self.twin(grant, id).map(PutOutcome::Replaced);
                }
                twin.etag = next_etag(&existing.etag);
                twin.last_update_time =
                    twin.properties.keys().map(|name| (name, CompactString::from(ts.as_str()))).collect();
                let stored = twin.clone();
                self.structural(|live| {
                    // The twin was read before the lock; it must not have changed since.
                    let current = live.graph.twin(id).ok_or_else(|| twin_not_found(id))?;
                    if current.etag != existing.etag {
                        return Err(ApiError::PreconditionFailed(format!(
                            "twin {id:?} changed while it was being replaced; retry"
                        )));
                    }
                    let twins = live
                        .graph
                        .twins()
                        .map(|t| if t.id == stored.id { stored.clone() } else { t.clone() });
                    live.graph =
                        TwinGraph::new(twins.collect::<Vec<_>>(), live.graph.relationships().to_vec());
                    Ok(vec![StoredWrite::Twin(stored.clone())])
                })
                .await?;
                Ok(PutOutcome::Replaced(twin))
            }
            None => {
                if if_match.is_some() {
                    return Err(ApiError::PreconditionFailed(format!("twin {id:?} does not exist")));
                }
                twin.etag = "W/\"1\"".into();
                twin.last_update_time =
                    twin.properties.keys().map(|name| (name, CompactString::from(ts.as_str()))).collect();
                let created = twin.clone();
                self.structural(|live| {
                    if live.graph.twin(&created.id).is_some() {
                        return Err(ApiError::PreconditionFailed(format!(
                            "twin {:?} was just created",
                            created.id
                        )));
                    }
                    let mut twins: Vec<Twin> = live.graph.twins().cloned().collect();
                    twins.push(created.clone());
                    live.graph = TwinGraph::new(twins, live.graph.relationships().to_vec());
                    Ok(vec![StoredWrite::Twin(created.clone())])
                })
                .await?;
                Ok(PutOutcome::Created(twin))
            }
        }
    }

    /// ADT `DELETE /digitaltwins/{id}`: refused while relationships still name the twin.
    pub async fn delete_twin(&self, grant: &Grant, id: &str, if_match: Option<&str>) -> Result<(), ApiError> {
        self.check_storage()?;
        self.structural(|live| {
            let twin = live.graph.twin(id).ok_or_else(|| twin_not_found(id))?;
            if !grant.may_write(twin) {
                return Err(forbidden_twin(id, "write"));
            }
            check_if_match(if_match, &twin.etag)?;
            let relationships = live.graph.relationships().to_vec();
            if relationships.iter().any(|r| r.source == id || r.target == id) {
                return Err(ApiError::Conflict(format!(
                    "twin {id:?} still has relationships; delete them first"
                )));
            }
            let twins: Vec<Twin> = live.graph.twins().filter(|twin| twin.id != id).cloned().collect();
            live.graph = TwinGraph::new(twins, relationships);
            Ok(vec![StoredWrite::DeleteTwin(id.to_owned())])
        })
        .await
    }

    pub fn relationship(&self, grant: &Grant, source: &str, id: &str) -> Result<Relationship, ApiError> {
        let live = self.live();
        let twin = live.graph.twin(source).ok_or_else(|| twin_not_found(source))?;
        if !grant.may_read(twin) {
            return Err(forbidden_twin(source, "read"));
        }
        let relationships = live.graph.relationships().to_vec();
        relationships
            .into_iter()
            .find(|r| r.source == source && r.id == id)
            .ok_or_else(|| relationship_not_found(source, id))
    }

    /// Outgoing (or, with `incoming`, incoming) relationships of a twin, optionally by name.
    pub fn relationships_of(
        &self,
        grant: &Grant,
        twin: &str,
        name: Option<&str>,
        incoming: bool,
    ) -> Result<Vec<Relationship>, ApiError> {
        let live = self.live();
        let found = live.graph.twin(twin).ok_or_else(|| twin_not_found(twin))?;
        if !grant.may_read(found) {
            return Err(forbidden_twin(twin, "read"));
        }
        Ok(readable_relationships(&live.graph, grant)
            .into_iter()
            .filter(|r| if incoming { r.target == twin } else { r.source == twin })
            .filter(|r| name.is_none_or(|name| r.name == name))
            .collect())
    }

    /// ADT `PUT /digitaltwins/{source}/relationships/{id}`.
    pub async fn put_relationship(
        &self,
        grant: &Grant,
        mut relationship: Relationship,
        if_match: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<Relationship, ApiError> {
        self.check_storage()?;
        let mut stored = None;
        self.structural(|live| {
            let source =
                live.graph.twin(&relationship.source).ok_or_else(|| twin_not_found(&relationship.source))?;
            if !grant.may_write(source) {
                return Err(forbidden_twin(&relationship.source, "write"));
            }
            let target = live.graph.twin(&relationship.target).ok_or_else(|| {
                ApiError::BadRequest(format!("the target twin {:?} does not exist", relationship.target))
            })?;
            if !grant.may_read(target) {
                return Err(forbidden_twin(&relationship.target, "read"));
            }
            let mut relationships = live.graph.relationships().to_vec();
            let existing =
                relationships.iter().position(|r| r.source == relationship.source && r.id == relationship.id);
            let etag = match existing {
                Some(at) => {
                    if if_none_match == Some("*") {
                        return Err(ApiError::PreconditionFailed(format!(
                            "relationship {:?} already exists",
                            relationship.id
                        )));
                    }
                    let current = relationship_etag(&relationships[at]);
                    check_if_match(if_match, &current)?;
                    relationships.remove(at);
                    next_etag(&current).into_string()
                }
                None => {
                    if if_match.is_some() {
                        return Err(relationship_precondition(&relationship));
                    }
                    "W/\"1\"".to_owned()
                }
            };
            relationship.properties.insert("$etag".into(), Value::String(etag));
            relationships.push(relationship.clone());
            let twins: Vec<Twin> = live.graph.twins().cloned().collect();
            live.graph = TwinGraph::new(twins, relationships);
            stored = Some(relationship.clone());
            Ok(vec![StoredWrite::Relationship(relationship.clone())])
        })
        .await?;
        stored.ok_or_else(|| ApiError::Internal("the relationship was not stored".into()))
    }

    /// ADT `PATCH /digitaltwins/{source}/relationships/{id}`: a JSON Patch of its properties.
    pub async fn patch_relationship(
        &self,
        grant: &Grant,
        source: &str,
        id: &str,
        patch: Patch,
        if_match: Option<&str>,
    ) -> Result<String, ApiError> {
        self.check_storage()?;
        let mut new_etag = String::new();
        self.structural(|live| {
            let (mut relationships, at) = writable_relationship(live, grant, source, id)?;
            let current = relationship_etag(&relationships[at]);
            check_if_match(if_match, &current)?;
            let properties = patch_relationship_properties(&relationships[at].properties, &patch)?;
            new_etag = next_etag(&current).into_string();
            let relationship = &mut relationships[at];
            relationship.properties = properties;
            relationship.properties.insert("$etag".into(), Value::String(new_etag.clone()));
            let write = StoredWrite::Relationship(relationship.clone());
            let twins: Vec<Twin> = live.graph.twins().cloned().collect();
            live.graph = TwinGraph::new(twins, relationships);
            Ok(vec![write])
        })
        .await?;
        Ok(new_etag)
    }

    pub async fn delete_relationship(
        &self,
        grant: &Grant,
        source: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ApiError> {
        self.check_storage()?;
        self.structural(|live| {
            let (mut relationships, at) = writable_relationship(live, grant, source, id)?;
            check_if_match(if_match, &relationship_etag(&relationships[at]))?;
            relationships.remove(at);
            let twins: Vec<Twin> = live.graph.twins().cloned().collect();
            live.graph = TwinGraph::new(twins, relationships);
            Ok(vec![StoredWrite::DeleteRelationship { source: source.to_owned(), id: id.to_owned() }])
        })
        .await
    }

    pub fn models(&self) -> Vec<Value> {
        self.live().models.values().cloned().collect()
    }

    pub fn model(&self, id: &str) -> Option<Value> {
        self.live().models.get(id).cloned()
    }

    /// ADT `POST /models`: all of them or none; an id that exists already is a conflict.
    pub async fn add_models(&self, grant: &Grant, models: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        self.check_storage()?;
        if !grant.may_write_anything() {
            return Err(ApiError::Forbidden("this token may not write".into()));
        }
        let durable = {
            let mut live = self.live();
            let mut writes = Vec::new();
            let mut seen = HashSet::new();
            for (index, model) in models.iter().enumerate() {
                let id = model_id(model)
                    .ok_or_else(|| ApiError::BadRequest(format!("model {index} has no \"@id\" string")))?;
                if live.models.contains_key(&id) || !seen.insert(id.clone()) {
                    return Err(ApiError::ModelExists(format!("model {id:?} already exists")));
                }
                writes.push(StoredWrite::Model { id, model: model.clone() });
            }
            for write in &writes {
                if let StoredWrite::Model { id, model } = write {
                    live.models.insert(id.clone(), model.clone());
                }
            }
            self.submit(&mut live, writes, None)
        };
        durable.await?;
        Ok(models)
    }

    pub async fn delete_model(&self, grant: &Grant, id: &str) -> Result<(), ApiError> {
        self.check_storage()?;
        if !grant.may_write_anything() {
            return Err(ApiError::Forbidden("this token may not write".into()));
        }
        let durable = {
            let mut live = self.live();
            if live.models.remove(id).is_none() {
                return Err(ApiError::ModelNotFound(format!("no model has id {id:?}")));
            }
            self.submit(&mut live, vec![StoredWrite::DeleteModel(id.to_owned())], None)
        };
        durable.await
    }

    /// A snapshot for `grant` and its seq. Taken under the writers' lock, so it is exactly the
    /// state as of that seq; the feed then serves every change after it.
    pub fn snapshot(&self, grant: &Grant) -> (ServerMessage, u64) {
        let live = self.live();
        let snapshot = ServerMessage::Snapshot {
            protocol: PROTOCOL_VERSION,
            seq: live.seq,
            twins: live.graph.twins().filter(|twin| grant.may_read(twin)).cloned().collect(),
            relationships: readable_relationships(&live.graph, grant),
        };
        (snapshot, live.seq)
    }

    /// Whether a viewer that has the state as of `since` can be caught up with deltas alone.
    pub fn can_resume(&self, since: u64) -> bool {
        let live = self.live();
        since <= live.seq && self.0.feed.can_resume(since)
    }

    /// Remembers a CloudEvent's (source, id); false when it was seen recently (a duplicate).
    pub fn first_delivery(&self, source: &str, id: &str) -> bool {
        let mut recent = self.0.recent_events.lock().unwrap_or_else(PoisonError::into_inner);
        recent.insert(format!("{source}\u{0}{id}"))
    }

    /// Forgets a CloudEvent whose write was refused or failed, so that a retry is applied.
    pub fn forget_delivery(&self, source: &str, id: &str) {
        let mut recent = self.0.recent_events.lock().unwrap_or_else(PoisonError::into_inner);
        recent.seen.remove(&format!("{source}\u{0}{id}"));
    }

    /// Takes one request from a client's ingest allowance; false when it is used up.
    pub fn take_ingest_allowance(&self, client: &str) -> bool {
        let rate = self.0.config.limits.ingest_requests_per_second;
        let mut buckets = self.0.ingest_buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 10_000 && !buckets.contains_key(client) {
            // Bounded: forget idle clients rather than grow without end.
            buckets.retain(|_, bucket| bucket.last.elapsed().as_secs() < 60);
        }
        buckets.entry(client.to_owned()).or_insert_with(|| RateBucket::new(rate)).take(rate)
    }

    /// Runs a create or delete under the lock; it gets the next seq and every viewer a fresh
    /// snapshot. `change` either mutates the graph and returns what to store, or refuses.
    async fn structural(
        &self,
        change: impl FnOnce(&mut LiveState) -> Result<Vec<StoredWrite>, ApiError>,
    ) -> Result<(), ApiError> {
        let durable = {
            let mut live = self.live();
            let mut writes = change(&mut live)?;
            live.seq += 1;
            let seq = live.seq;
            writes.push(StoredWrite::Seq(seq));
            self.0.feed.push_structural(seq);
            self.submit(&mut live, writes, Some(seq))
        };
        durable.await
    }

    /// Queues writes already applied to `live` for the storage thread; takes the live lock's
    /// guard so that the queue is in seq order. Once they are durable, the feed may publish
    /// changes up to `seq`; if their commit fails, the live state goes back to the durable one
    /// (`Shared::commit_failed`). Resolves once they are durable.
    fn submit(
        &self,
        live: &mut LiveState,
        writes: Vec<StoredWrite>,
        seq: Option<u64>,
    ) -> impl Future<Output = Result<(), ApiError>> + use<> {
        live.unrestored_writes = true;
        let shared: Weak<Shared> = Arc::downgrade(&self.0);
        let after = Box::new(move |ok: bool| {
            let Some(shared) = shared.upgrade() else { return };
            match (ok, seq) {
                (true, Some(seq)) => shared.feed.mark_durable(seq),
                (true, None) => {}
                (false, _) => shared.commit_failed(),
            }
        });
        wait_durable(self.0.committer.submit(writes, Some(after)))
    }

    fn check_storage(&self) -> Result<(), ApiError> {
        if self.storage_healthy() {
            Ok(())
        } else {
            Err(ApiError::Unavailable("storage failed; writes are refused until the server restarts".into()))
        }
    }

    fn live(&self) -> MutexGuard<'_, LiveState> {
        self.0.live()
    }
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, LiveState> {
        // A panic while the lock was held cannot leave the graph half-patched (patches apply
        // atomically), so the state is still good to use.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A commit failed (on the storage thread, once for each job of the failed group and of
    /// every later one: the committer fails them all). Writes are refused from now on, the
    /// failed changes are never published, and the live state goes back to exactly what
    /// storage holds, so that reads and snapshots show durable data only.
    ///
    /// A writer that passed `check_storage` before the flag was set may still apply a write
    /// after a restore; its job fails too and restores again, so restores are idempotent and
    /// only reload when a write came in since the last one.
    ///
    /// Viewers that were sent a snapshot while a failed write was in memory get a new one.
    ///
    /// When the state cannot be reloaded (the load fails, or the storage keeps no twin state:
    /// a memory-only server), the error is logged and writes stay refused, but reads and new
    /// snapshots may show the in-memory state, failed writes included, until the restart.
    /// Viewers are still never sent the failed changes as deltas.
    fn commit_failed(&self) {
        self.storage_failed.store(true, Ordering::SeqCst);
        let mut live = self.live();
        if live.unrestored_writes {
            live.unrestored_writes = false;
            match self.storage.load() {
                Ok(Some(stored)) => {
                    tracing::warn!(
                        "a commit failed: the live state goes back to the last durable state, seq {}",
                        stored.seq
                    );
                    *live = LiveState::from_stored(stored);
                    // Snapshots sent meanwhile may hold the failed writes.
                    self.feed.restored();
                }
                Ok(None) => tracing::error!(
                    "a commit failed and the storage keeps no twin state to go back to: reads may \
                     show writes that were not made durable until the server restarts"
                ),
                Err(error) => tracing::error!(
                    "a commit failed and the durable state cannot be reloaded ({error}): reads may \
                     show writes that were not made durable until the server restarts"
                ),
            }
        }
        // Under the live lock: no writer can queue a change between the restore and this.
        let dropped = self.feed.mark_failed();
        if dropped > 0 {
            tracing::warn!("{dropped} changes whose commit failed are not sent to viewers");
        }
    }
}

async fn wait_durable(receiver: tokio::sync::oneshot::Receiver<Result<(), String>>) -> Result<(), ApiError> {
    match receiver.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ApiError::Unavailable(format!("the write could not be made durable: {error}"))),
        Err(_) => Err(ApiError::Unavailable("the storage thread stopped".into())),
    }
}

/// One patch of a batch.
pub struct TwinWrite {
    pub twin: String,
    /// When set, the twin must be of this model (CloudEvents name it).
    pub model: Option<String>,
    pub patch: Patch,
    pub if_match: Option<String>,
}

/// Checks and applies one patch under the lock and gives it the next seq.
fn apply_one<'a>(
    live: &'a mut LiveState,
    grant: &Grant,
    write: TwinWrite,
    ts: &str,
) -> Result<(Accepted, &'a Twin, TwinChange), ApiError> {
    let TwinWrite { twin: id, model, patch, if_match } = write;
    let twin = live.graph.twin(&id).ok_or_else(|| twin_not_found(&id))?;
    if !grant.may_write(twin) {
        return Err(forbidden_twin(&id, "write"));
    }
    if let Some(model) = &model
        && model != &twin.model
    {
        return Err(ApiError::BadRequest(format!(
            "model {model:?} was named, but twin {id:?} is a {:?}",
            twin.model
        )));
    }
    check_if_match(if_match.as_deref(), &twin.etag)?;
    let twin = live.graph.apply_patch(&id, &patch, ts)?;
    live.seq += 1;
    let accepted = Accepted { etag: twin.etag.to_string(), seq: live.seq };
    Ok((accepted, twin, TwinChange { twin: id, patch, ts: ts.to_owned() }))
}

/// Filters for `GET /query/twins`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinQuery {
    pub model: Option<String>,
    /// Twins that this twin has a relationship to.
    pub related_from: Option<String>,
    /// Twins that have a relationship to this twin.
    pub related_to: Option<String>,
    /// Only relationships with this name.
    pub relationship: Option<String>,
}

fn readable_relationships(graph: &TwinGraph, grant: &Grant) -> Vec<Relationship> {
    let relationships = graph.relationships().to_vec();
    if grant.reads_every_twin() {
        return relationships;
    }
    let readable = |id: &str| graph.twin(id).is_some_and(|twin| grant.may_read(twin));
    relationships.into_iter().filter(|r| readable(&r.source) && readable(&r.target)).collect()
}

fn twin_not_found(id: &str) -> ApiError {
    ApiError::TwinNotFound(format!("no twin has id {id:?}"))
}

fn forbidden_twin(id: &str, what: &str) -> ApiError {
    ApiError::Forbidden(format!("this token may not {what} twin {id:?}"))
}

fn relationship_not_found(source: &str, id: &str) -> ApiError {
    ApiError::RelationshipNotFound(format!("twin {source:?} has no relationship {id:?}"))
}

fn relationship_precondition(relationship: &Relationship) -> ApiError {
    ApiError::PreconditionFailed(format!("relationship {:?} does not exist", relationship.id))
}

/// `If-Match`: `*` or the current etag (a list of etags is accepted as HTTP allows).
fn check_if_match(if_match: Option<&str>, etag: &str) -> Result<(), ApiError> {
    match if_match {
        None => Ok(()),
        Some(header) if header.split(',').map(str::trim).any(|tag| tag == "*" || tag == etag) => Ok(()),
        Some(header) => Err(ApiError::PreconditionFailed(format!(
            "If-Match {header} does not match the current etag {etag}"
        ))),
    }
}

fn relationship_etag(relationship: &Relationship) -> String {
    relationship.properties.get("$etag").and_then(Value::as_str).unwrap_or("W/\"1\"").to_owned()
}

fn model_id(model: &Value) -> Option<String> {
    model.get("@id").and_then(Value::as_str).map(str::to_owned)
}

fn models_by_id(models: Vec<Value>) -> BTreeMap<String, Value> {
    models.into_iter().filter_map(|model| Some((model_id(&model)?, model))).collect()
}

/// The patch that turns `old` properties into `new`: `add` sets a top-level property whether
/// or not it exists, `remove` drops one that is gone.
fn replacement_patch(old: &PropertyMap<Value>, new: &PropertyMap<Value>) -> Patch {
    let pointer = |name: &str| json_patch::jsonptr::PointerBuf::from_tokens([name]);
    let mut operations = Vec::new();
    for name in old.keys().filter(|name| !new.contains_key(name)) {
        operations.push(PatchOperation::Remove(RemoveOperation { path: pointer(name) }));
    }
    for (name, value) in new.iter().filter(|(name, value)| old.get(name) != Some(value)) {
        operations.push(PatchOperation::Add(AddOperation { path: pointer(name), value: value.clone() }));
    }
    Patch(operations)
}

/// Applies a JSON Patch to a relationship's own properties; `$` fields are not reachable.
fn patch_relationship_properties(
    properties: &Map<String, Value>,
    patch: &Patch,
) -> Result<Map<String, Value>, ApiError> {
    if patch.0.is_empty() {
        return Err(ApiError::PatchRejected("the patch is empty".into()));
    }
    for (index, operation) in patch.0.iter().enumerate() {
        let path = operation.path().to_string();
        if path.is_empty() || path.starts_with("/$") {
            return Err(ApiError::PatchRejected(format!(
                "operation {index} targets {path:?}: only the relationship's own properties can be patched"
            )));
        }
    }
    let mut document: Map<String, Value> = properties
        .iter()
        .filter(|(name, _)| !name.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut value = Value::Object(std::mem::take(&mut document));
    json_patch::patch(&mut value, patch).map_err(|error| ApiError::PatchRejected(error.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::PatchRejected("the patch did not leave an object".into())),
    }
}

/// History samples for the numeric (and boolean, as 0/1) top-level properties a patch wrote.
fn history_points(twin: &Twin, patch: &Patch, ts_ms: i64) -> Vec<StoredWrite> {
    let mut names: Vec<String> = Vec::new();
    for operation in &patch.0 {
        if matches!(operation, PatchOperation::Test(_)) {
            continue;
        }
        if let Some(first) = operation.path().first() {
            let name = first.decoded().into_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let value = match twin.property(&name)? {
                Value::Number(number) => number.as_f64()?,
                Value::Bool(flag) => f64::from(u8::from(*flag)),
                _ => return None,
            };
            Some(StoredWrite::History { twin: twin.id.clone(), property: name, ts_ms, value })
        })
        .collect()
}

fn now_timestamps() -> (String, i64) {
    let now = SystemTime::now();
    (humantime::format_rfc3339_millis(now).to_string(), now_ms())
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Recently seen CloudEvent ids, bounded (oldest forgotten first).
#[derive(Default)]
struct RecentEvents {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentEvents {
    const CAPACITY: usize = 65_536;

    fn insert(&mut self, key: String) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= Self::CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.seen.insert(key);
        true
    }
}

/// A token bucket: `rate` per second, bursts of up to twice that.
pub struct RateBucket {
    tokens: f64,
    last: Instant,
}

impl RateBucket {
    pub fn new(rate: f64) -> Self {
        Self { tokens: rate * 2.0, last: Instant::now() }
    }

    pub fn take(&mut self, rate: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Percent-encodes a file name for use as one URL path segment.
fn encode_path_segment(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BreakableStorage, SyncMode};
    use serde_json::json;

    fn set_temperature(value: f64) -> Patch {
        serde_json::from_value(json!([{"op": "replace", "path": "/temperature", "value": value}])).unwrap()
    }

    fn temperature(state: &AppState, id: &str) -> Value {
        state.twin(&Grant::open(), id).unwrap().properties["temperature"].clone()
    }

    #[tokio::test]
    async fn writes_that_raced_past_a_failure_are_rolled_back_too() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStorage::open(&dir.path().join("state.sqlite"), SyncMode::Normal).unwrap();
        let storage = Arc::new(BreakableStorage::new(inner));
        let scene_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenes/demo.json");
        let loaded = LoadedScene::load(&scene_path).unwrap();
        let state = AppState::with_storage(
            loaded,
            StaticDirs::default(),
            LiveTimings::default(),
            ServerConfig::default(),
            storage.clone(),
        )
        .unwrap();
        let grant = Grant::open();
        let a102 = temperature(&state, "Room-A102");
        let durable =
            state.patch_twin(&grant, "Room-A101", set_temperature(25.0), None, Source::Rest).await.unwrap();

        storage.set_broken(true);
        let failed = state.patch_twin(&grant, "Room-A101", set_temperature(99.0), None, Source::Rest).await;
        assert!(matches!(failed, Err(ApiError::Unavailable(_))));
        assert!(!state.storage_healthy());
        assert_eq!((temperature(&state, "Room-A101"), state.seq()), (json!(25.0), durable.seq));

        // Writers that checked the flag before it was set apply their writes after the restore;
        // the storage works again, but their commits fail all the same and are undone.
        storage.set_broken(false);
        for _ in 0..2 {
            state.0.storage_failed.store(false, Ordering::SeqCst);
            let raced =
                state.patch_twin(&grant, "Room-A102", set_temperature(50.0), None, Source::Rest).await;
            assert!(
                matches!(&raced, Err(ApiError::Unavailable(message)) if message.contains("earlier commit failed"))
            );
            state.0.storage_failed.store(false, Ordering::SeqCst);
            let created =
                state.put_twin(&grant, "Room-New", Twin::new("Room-New", "dtmi:x;1"), None, None).await;
            assert!(matches!(created, Err(ApiError::Unavailable(_))));
            assert!(!state.storage_healthy());
            assert_eq!(temperature(&state, "Room-A102"), a102);
            assert!(state.twin(&grant, "Room-New").is_err());
            assert_eq!(state.seq(), durable.seq);
        }
        let stored = storage.load().unwrap().unwrap();
        assert_eq!(stored.seq, durable.seq);
        assert!(stored.twins.iter().all(|twin| twin.id != "Room-New"));
        assert_eq!(temperature(&state, "Room-A101"), 25.0);
    }

    #[test]
    fn file_names_become_safe_path_segments() {
        assert_eq!(encode_path_segment("duplex.glb"), "duplex.glb");
        assert_eq!(encode_path_segment("my room#1.glb"), "my%20room%231.glb");
    }

    #[test]
    fn a_replacement_is_one_patch() {
        let old = json!({"a": 1, "b": 2, "c": 3});
        let new = json!({"a": 1, "b": 5, "d": 4});
        let properties = |value: &Value| PropertyMap::from(value.as_object().unwrap().clone());
        let patch = replacement_patch(&properties(&old), &properties(&new));
        let mut document = old.clone();
        json_patch::patch(&mut document, &patch).unwrap();
        assert_eq!(document, new);
        assert_eq!(patch.0.len(), 3);
    }

    #[test]
    fn if_match_takes_star_lists_and_exact_tags() {
        assert!(check_if_match(None, "W/\"2\"").is_ok());
        assert!(check_if_match(Some("*"), "W/\"2\"").is_ok());
        assert!(check_if_match(Some("W/\"1\", W/\"2\""), "W/\"2\"").is_ok());
        assert!(matches!(check_if_match(Some("W/\"1\""), "W/\"2\""), Err(ApiError::PreconditionFailed(_))));
    }

    #[test]
    fn recent_events_forget_the_oldest() {
        let mut recent = RecentEvents::default();
        assert!(recent.insert("a".into()));
        assert!(!recent.insert("a".into()));
        for i in 0..RecentEvents::CAPACITY {
            recent.insert(i.to_string());
        }
        assert!(recent.insert("a".into()));
    }
}
