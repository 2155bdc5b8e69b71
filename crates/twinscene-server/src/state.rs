//! The shared state: the twin graph and the delta sequence number behind one lock, and the
//! broadcast that carries each accepted change, serialized once, to every live socket.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::extract::ws::Utf8Bytes;
use json_patch::Patch;
use tokio::sync::broadcast;
use twinscene_core::graph::TwinGraph;
use twinscene_core::live::{PROTOCOL_VERSION, ServerMessage, TwinChange};
use twinscene_core::scene::Scene;
use twinscene_core::twin::Twin;

use crate::api_error::ApiError;
use crate::config::{LiveTimings, LoadedScene, MeshSource, StaticDirs};

/// How many deltas a slow socket may fall behind before it is sent a fresh snapshot instead.
const DELTA_BACKLOG: usize = 1024;

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    /// The scene as served: the mesh points at the server, and `twins` is filled in per request.
    scene: Scene,
    mesh: MeshSource,
    static_dirs: StaticDirs,
    timings: LiveTimings,
    live: Mutex<LiveState>,
    deltas: broadcast::Sender<Delta>,
}

struct LiveState {
    graph: TwinGraph,
    /// The seq of the last delta sent; 0 until the first write.
    seq: u64,
}

/// One accepted change as it goes out on the wire, already serialized.
#[derive(Clone, Debug)]
pub struct Delta {
    pub seq: u64,
    pub text: Utf8Bytes,
}

/// A live socket's place in the stream: the seq it has seen up to, and a receiver for the
/// deltas after it.
pub struct Subscription {
    pub seq: u64,
    pub deltas: broadcast::Receiver<Delta>,
}

/// What a successful write tells the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub etag: String,
    pub seq: u64,
}

impl AppState {
    pub fn new(loaded: LoadedScene, static_dirs: StaticDirs, timings: LiveTimings) -> Self {
        let LoadedScene { mut scene, mesh } = loaded;
        let graph = TwinGraph::new(std::mem::take(&mut scene.twins), scene.relationships.clone());
        if let MeshSource::File { name, .. } = &mesh {
            scene.mesh = format!("/api/scene/mesh/{}", encode_path_segment(name));
        }
        let (deltas, _) = broadcast::channel(DELTA_BACKLOG);
        Self(Arc::new(Shared {
            scene,
            mesh,
            static_dirs,
            timings,
            live: Mutex::new(LiveState { graph, seq: 0 }),
            deltas,
        }))
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

    /// The scene with the current twin state.
    pub fn current_scene(&self) -> Scene {
        let twins = self.live().graph.twins().cloned().collect();
        Scene { twins, ..self.0.scene.clone() }
    }

    pub fn twin(&self, id: &str) -> Option<Twin> {
        self.live().graph.twin(id).cloned()
    }

    /// Ids and temperatures of the twins that have a numeric `temperature`.
    pub fn temperatures(&self) -> Vec<(String, f64)> {
        let live = self.live();
        live.graph
            .twins()
            .filter_map(|twin| Some((twin.id.clone(), twin.property("temperature")?.as_f64()?)))
            .collect()
    }

    /// Applies a JSON Patch to one twin, all of it or nothing, and on success sends the change
    /// to every live socket as the next delta. Every write, from HTTP or the simulator, comes
    /// through here, so the order of `seq` is the order in which writes were applied.
    pub fn apply_patch(&self, id: &str, patch: Patch) -> Result<Accepted, ApiError> {
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut live = self.live();
        let seq = live.seq + 1;
        // Serialized before the graph changes, so that a write is never applied without its delta.
        let change = TwinChange { twin: id.to_owned(), patch: patch.clone(), ts: ts.clone() };
        let message = ServerMessage::Delta { seq, changes: vec![change] };
        let text = serde_json::to_string(&message)
            .map_err(|error| ApiError::Internal(format!("cannot encode delta: {error}")))?;
        let twin = live.graph.apply_patch(id, &patch, &ts)?;
        let etag = twin.etag.clone();
        live.seq = seq;
        // An error only means no socket is listening right now, which is fine.
        let _ = self.0.deltas.send(Delta { seq, text: text.into() });
        Ok(Accepted { etag, seq })
    }

    /// Takes a snapshot and starts receiving deltas at the same instant: both happen under the
    /// lock that writers hold while they apply, number and send, so no delta is lost or repeated.
    pub fn subscribe(&self) -> (ServerMessage, Subscription) {
        let live = self.live();
        let deltas = self.0.deltas.subscribe();
        let snapshot = ServerMessage::Snapshot {
            protocol: PROTOCOL_VERSION,
            seq: live.seq,
            twins: live.graph.twins().cloned().collect(),
            relationships: live.graph.relationships().to_vec(),
        };
        (snapshot, Subscription { seq: live.seq, deltas })
    }

    fn live(&self) -> MutexGuard<'_, LiveState> {
        // A panic while the lock was held cannot leave the graph half-patched (patches apply
        // atomically), so the state is still good to use.
        self.0.live.lock().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn file_names_become_safe_path_segments() {
        assert_eq!(encode_path_segment("duplex.glb"), "duplex.glb");
        assert_eq!(encode_path_segment("my room#1.glb"), "my%20room%231.glb");
    }
}
