//! A storage that stops committing: writes are refused with 503, nothing unacknowledged is
//! reported as done, published or kept, and `/healthz` says the server is unhealthy.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    Viewer, client, demo_scene_path, error_body, get, get_json, patch, published_scene_seq, send, serve,
    within,
};
use serde_json::{Value, json};
use twinscene_core::live::ServerMessage;
use twinscene_server::auth::Grant;
use twinscene_server::feed::Pull;
use twinscene_server::storage::{BreakableStorage, SqliteStorage, Storage, SyncMode};
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs};

/// The demo scene's state over `storage`, with heartbeats every 200 ms.
fn state_over(storage: Arc<dyn Storage>) -> AppState {
    let scene = LoadedScene::load(&demo_scene_path()).unwrap();
    let timings = LiveTimings { heartbeat: Duration::from_millis(200), ..LiveTimings::default() };
    AppState::with_storage(scene, StaticDirs::default(), timings, ServerConfig::default(), storage).unwrap()
}

/// SQLite in a file: unlike in-memory SQLite it keeps the twin state, which a failed commit
/// rolls the server back to.
fn sqlite_file(path: &Path) -> SqliteStorage {
    SqliteStorage::open(path, SyncMode::Normal).unwrap()
}

/// A server over breakable SQLite in a new directory (kept alive by the returned guard): the
/// directory, the storage to break or hold, and the server's base URL.
async fn serve_breakable() -> (tempfile::TempDir, Arc<BreakableStorage>, String) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(BreakableStorage::new(sqlite_file(&dir.path().join("state.sqlite"))));
    let base = serve(state_over(storage.clone())).await;
    (dir, storage, base)
}

fn set(value: f64) -> String {
    json!([{"op": "replace", "path": "/temperature", "value": value}]).to_string()
}

fn room_temperature(message: &ServerMessage, id: &str) -> Value {
    let ServerMessage::Snapshot { twins, .. } = message else { panic!("not a snapshot: {message:?}") };
    let twin = twins.iter().find(|twin| twin.id == id).expect("twin in snapshot");
    twin.properties["temperature"].clone()
}

#[tokio::test]
async fn a_failed_commit_is_reported_and_stops_writes() {
    let storage = Arc::new(BreakableStorage::new(SqliteStorage::in_memory().unwrap()));
    let base = serve(state_over(storage.clone())).await;
    assert_eq!(patch(&base, "Room-A101", &set(25.0)).await.status(), 204);

    storage.set_broken(true);
    let (status, code, message) = error_body(patch(&base, "Room-A101", &set(26.0)).await).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"), "{message}");
    assert!(message.contains("disk full"), "{message}");
    assert_eq!(get(&format!("{base}/healthz")).await.status(), 503);
    let (status, _, message) = error_body(patch(&base, "Room-A102", &set(26.0)).await).await;
    assert_eq!(status, 503);
    assert!(message.contains("storage failed"), "{message}");
}

#[tokio::test]
async fn a_write_whose_commit_failed_is_rolled_back_and_never_sent_to_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let storage = Arc::new(BreakableStorage::new(sqlite_file(&path)));
    let state = state_over(storage.clone());
    let base = serve(state.clone()).await;
    let mut viewer = Viewer::connect(&base).await;
    let start = viewer.hello().await["seq"].as_u64().unwrap();

    // A write before the failure: acknowledged, durable, sent.
    let response = patch(&base, "Room-A101", &set(25.0)).await;
    assert_eq!(response.status(), 204);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let delta = viewer.next_change().await;
    assert_eq!((delta["type"].as_str(), delta["seq"].as_u64()), (Some("delta"), Some(start + 1)));

    storage.set_broken(true);
    let (status, code, message) = error_body(patch(&base, "Room-A101", &set(99.0)).await).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"), "{message}");

    // Reads, snapshots and the seq are back at the last durable write.
    let room = get_json(&format!("{base}/digitaltwins/Room-A101")).await;
    assert_eq!(room["temperature"], 25.0);
    assert_eq!(room["$etag"], etag.as_str());
    let response = get(&format!("{base}/digitaltwins/Room-A101")).await;
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    let (snapshot, seq) = state.snapshot(&Grant::open());
    assert_eq!(seq, start + 1);
    assert_eq!(room_temperature(&snapshot, "Room-A101"), 25.0);
    assert_eq!(state.seq(), start + 1);

    // The viewer is resynced with the durable state (every viewer is: any of them may have
    // been sent the failed write in a snapshot), then only hears heartbeats (the publisher had
    // many ticks to send the failed write), and nothing after the durable write was published.
    let resync = within("a resync", viewer.next_change()).await;
    assert_eq!((resync["type"].as_str(), resync["seq"].as_u64()), (Some("snapshot"), Some(start + 1)));
    assert_eq!(room_temperature(&serde_json::from_value(resync).unwrap(), "Room-A101"), 25.0);
    for _ in 0..3 {
        let message = viewer.next().await;
        assert_eq!(message, json!({"type": "heartbeat", "seq": start + 1}), "sent after the failure");
    }
    match state.feed().pull(start + 1) {
        Pull::Batches(batches) => assert!(batches.is_empty(), "published after the failure: {batches:?}"),
        Pull::TooOld => panic!("the ring should reach back to {}", start + 1),
    }

    // A viewer that connects now gets the durable state.
    let mut late = Viewer::connect(&base).await;
    let snapshot = late.hello().await;
    assert_eq!(snapshot["seq"], start + 1);
    let twins = snapshot["twins"].as_array().unwrap();
    let room = twins.iter().find(|twin| twin["$dtId"] == "Room-A101").unwrap();
    assert_eq!(room["temperature"], 25.0);

    // The write before the failure is durable; the failed one is not.
    drop(state);
    let stored = sqlite_file(&path).load().unwrap().unwrap();
    let room = stored.twins.iter().find(|twin| twin.id == "Room-A101").unwrap();
    assert_eq!(room.properties["temperature"], 25.0);
    assert_eq!(room.etag, etag);
}

#[tokio::test]
async fn after_a_failed_commit_writes_are_refused_and_storage_is_not_touched() {
    let (_dir, storage, base) = serve_breakable().await;
    assert_eq!(patch(&base, "Room-A101", &set(25.0)).await.status(), 204);
    let pump = json!({"@id": "dtmi:example:Pump;1", "@type": "Interface"});
    assert_eq!(send(client().post(format!("{base}/models")).json(&json!([pump]))).await.status(), 201);

    storage.set_broken(true);
    assert_eq!(patch(&base, "Room-A101", &set(99.0)).await.status(), 503);
    let attempted = storage.commit_count();

    // Even with the disk back, nothing is written until a restart.
    storage.set_broken(false);
    let (status, _, message) = error_body(patch(&base, "Room-A102", &set(30.0)).await).await;
    assert_eq!(status, 503);
    assert!(message.contains("storage failed"), "{message}");
    let twin = json!({"$metadata": {"$model": "dtmi:twinscene:demo:Room;1"}, "temperature": 1.0});
    let put = send(client().put(format!("{base}/digitaltwins/Room-New")).json(&twin)).await;
    assert_eq!(put.status(), 503);
    let valve = json!([{"@id": "dtmi:example:Valve;1", "@type": "Interface"}]);
    assert_eq!(send(client().post(format!("{base}/models")).json(&valve)).await.status(), 503);
    let delete = send(client().delete(format!("{base}/models/dtmi:example:Pump;1"))).await;
    assert_eq!(delete.status(), 503);
    assert_eq!(get(&format!("{base}/healthz")).await.status(), 503);
    assert_eq!(storage.commit_count(), attempted, "storage was asked to commit again");

    // What was acknowledged before the failure is all still there; nothing refused is.
    assert_eq!(get_json(&format!("{base}/digitaltwins/Room-A101")).await["temperature"], 25.0);
    assert_eq!(get_json(&format!("{base}/models/dtmi:example:Pump;1")).await, pump);
    assert_eq!(get(&format!("{base}/digitaltwins/Room-New")).await.status(), 404);
    assert_eq!(get(&format!("{base}/models/dtmi:example:Valve;1")).await.status(), 404);
}

#[tokio::test]
async fn a_failed_model_write_is_rolled_back_and_marks_storage_failed() {
    let (_dir, storage, base) = serve_breakable().await;
    let before = get_json(&format!("{base}/models")).await;

    storage.set_broken(true);
    let model = json!([{"@id": "dtmi:example:Pump;1", "@type": "Interface"}]);
    assert_eq!(send(client().post(format!("{base}/models")).json(&model)).await.status(), 503);
    assert_eq!(get(&format!("{base}/models/dtmi:example:Pump;1")).await.status(), 404);
    assert_eq!(get_json(&format!("{base}/models")).await, before);
    assert_eq!(get(&format!("{base}/healthz")).await.status(), 503);
}

/// A viewer that connects while a write waits for its commit is sent that write in its
/// snapshot; when the commit fails, the viewer is sent the durable state again.
#[tokio::test]
async fn a_snapshot_holding_a_failed_write_is_replaced() {
    let (_dir, storage, base) = serve_breakable().await;
    assert_eq!(patch(&base, "Room-A101", &set(25.0)).await.status(), 204);

    storage.set_broken(true);
    storage.set_held(true);
    let failing = tokio::spawn({
        let base = base.clone();
        async move { patch(&base, "Room-A101", &set(99.0)).await.status() }
    });
    // The write is applied in memory before its commit is attempted.
    let mut early = Viewer::connect(&base).await;
    let snapshot = within("the undurable write in a snapshot", async {
        loop {
            let snapshot = early.hello().await;
            let twins = snapshot["twins"].as_array().unwrap();
            if twins.iter().any(|twin| twin["$dtId"] == "Room-A101" && twin["temperature"] == 99.0) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let undurable_seq = snapshot["seq"].as_u64().unwrap();

    storage.set_held(false);
    assert_eq!(failing.await.unwrap(), 503);
    let resync = within("a resync", early.next_change()).await;
    assert_eq!(resync["type"], "snapshot", "{resync}");
    assert_eq!(resync["seq"].as_u64(), Some(undurable_seq - 1));
    let twins = resync["twins"].as_array().unwrap();
    let room = twins.iter().find(|twin| twin["$dtId"] == "Room-A101").unwrap();
    assert_eq!(room["temperature"], 25.0);
}

#[tokio::test]
async fn a_scene_holding_an_uncommitted_write_names_no_live_seq() {
    let (_dir, storage, base) = serve_breakable().await;
    assert_eq!(patch(&base, "Room-A101", &set(25.0)).await.status(), 204);
    let before = published_scene_seq(&base).await;

    storage.set_held(true);
    let held = tokio::spawn({
        let base = base.clone();
        async move { patch(&base, "Room-A101", &set(26.0)).await.status() }
    });
    // The write is in the live state (and so in the scene) before its commit answers.
    let headers = within("the uncommitted write in the scene", async {
        loop {
            let response = get(&format!("{base}/api/scene")).await;
            let headers = response.headers().clone();
            let scene: Value = response.json().await.unwrap();
            let room = scene["twins"].as_array().unwrap().iter().find(|t| t["$dtId"] == "Room-A101").cloned();
            if room.is_some_and(|room| room["temperature"] == 26.0) {
                return headers;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(headers.get("x-twinscene-seq").is_none(), "a seq for an uncommitted write: {headers:?}");

    storage.set_held(false);
    assert_eq!(held.await.unwrap(), 204);
    assert!(published_scene_seq(&base).await > before);
}
