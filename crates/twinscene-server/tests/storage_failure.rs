//! A storage that stops committing: writes are refused with 503, nothing unacknowledged is
//! reported as done, and `/healthz` says the server is unhealthy.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{demo_scene_path, error_body, get, patch, serve};
use twinscene_server::server_config::HistoryRetention;
use twinscene_server::storage::{
    HistoryBucket, SqliteStorage, Storage, StorageError, StoredState, StoredWrite,
};
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs};

/// SQLite in memory, until `broken` is set: then every commit fails (a full disk, say).
struct Breakable {
    inner: SqliteStorage,
    broken: Arc<AtomicBool>,
}

impl Storage for Breakable {
    fn load(&self) -> Result<Option<StoredState>, StorageError> {
        self.inner.load()
    }
    fn commit(&self, writes: &[StoredWrite]) -> Result<(), StorageError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StorageError::new("disk full"));
        }
        self.inner.commit(writes)
    }
    fn history(
        &self,
        t: &str,
        p: &str,
        from: i64,
        to: i64,
        n: u32,
    ) -> Result<Vec<HistoryBucket>, StorageError> {
        self.inner.history(t, p, from, to, n)
    }
    fn prune(&self, retention: &HistoryRetention, now_ms: i64) -> Result<(), StorageError> {
        self.inner.prune(retention, now_ms)
    }
}

#[tokio::test]
async fn a_failed_commit_is_reported_and_stops_writes() {
    let broken = Arc::new(AtomicBool::new(false));
    let storage = Breakable { inner: SqliteStorage::in_memory().unwrap(), broken: broken.clone() };
    let scene = LoadedScene::load(&demo_scene_path()).unwrap();
    let state = AppState::with_storage(
        scene,
        StaticDirs::default(),
        LiveTimings::default(),
        ServerConfig::default(),
        Arc::new(storage),
    )
    .unwrap();
    let base = serve(state).await;
    let body = r#"[{"op":"replace","path":"/temperature","value":25}]"#;
    assert_eq!(patch(&base, "Room-A101", body).await.status(), 204);

    broken.store(true, Ordering::SeqCst);
    let (status, code, message) = error_body(patch(&base, "Room-A101", body).await).await;
    assert_eq!((status, code.as_str()), (503, "ServiceUnavailable"), "{message}");
    assert!(message.contains("disk full"), "{message}");
    assert_eq!(get(&format!("{base}/healthz")).await.status(), 503);
    let (status, _, message) = error_body(patch(&base, "Room-A102", body).await).await;
    assert_eq!(status, 503);
    assert!(message.contains("storage failed"), "{message}");
}
