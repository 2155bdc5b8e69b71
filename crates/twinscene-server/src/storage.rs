//! Durable state behind the `Storage` trait: twins, relationships, models, the live seq and a
//! bounded per-property history. `SqliteStorage` is the default; `Committer` groups writes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;
use twinscene_core::twin::{Relationship, Twin};

use crate::server_config::HistoryRetention;

#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(String);

impl StorageError {
    /// For `Storage` implementations outside this crate.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(error: serde_json::Error) -> Self {
        Self(format!("stored JSON does not parse: {error}"))
    }
}

/// What a previous run left.
#[derive(Debug, Default)]
pub struct StoredState {
    pub twins: Vec<Twin>,
    pub relationships: Vec<Relationship>,
    pub models: Vec<Value>,
    pub seq: u64,
}

/// One change to durable state.
#[derive(Clone, Debug)]
pub enum StoredWrite {
    Twin(Twin),
    DeleteTwin(String),
    Relationship(Relationship),
    DeleteRelationship {
        source: String,
        id: String,
    },
    Model {
        id: String,
        model: Value,
    },
    DeleteModel(String),
    /// A numeric property value at a time (milliseconds since 1970).
    History {
        twin: String,
        property: String,
        ts_ms: i64,
        value: f64,
    },
    Seq(u64),
}

/// A downsampled history range: one point per bucket.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HistoryBucket {
    /// Milliseconds since 1970 of the bucket's first sample.
    pub ts_ms: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    pub count: u64,
}

pub trait Storage: Send + Sync + 'static {
    /// The stored state, or `None` when nothing was ever stored.
    fn load(&self) -> Result<Option<StoredState>, StorageError>;
    /// Applies the writes in one transaction; they are durable when this returns `Ok`.
    fn commit(&self, writes: &[StoredWrite]) -> Result<(), StorageError>;
    /// Samples of one property in `[from_ms, to_ms)`, reduced to at most `buckets` points.
    fn history(
        &self,
        twin: &str,
        property: &str,
        from_ms: i64,
        to_ms: i64,
        buckets: u32,
    ) -> Result<Vec<HistoryBucket>, StorageError>;
    /// Deletes history beyond the retention settings.
    fn prune(&self, retention: &HistoryRetention, now_ms: i64) -> Result<(), StorageError>;
    /// Whether twins are stored at all (history-only storage ignores `StoredWrite::Twin`), so
    /// that a writer need not copy each patched twin for it.
    fn stores_twins(&self) -> bool {
        true
    }
}

/// When a commit counts as durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The log is synced to disk on every commit: an acknowledged write survives a crash of
    /// the process, the operating system or the machine.
    #[default]
    Full,
    /// The log reaches the operating system on every commit and the disk at checkpoints: an
    /// acknowledged write survives a crash of the process (`kill -9`), not of the machine.
    Normal,
}

/// SQLite in a file (WAL), or in memory for history alone: a
/// memory-only server never reloads its state, so it does not copy twins into SQLite.
pub struct SqliteStorage {
    /// Shared with the checkpoint thread, which holds it (weakly) to keep commits out while it
    /// restarts the log.
    connection: Arc<Mutex<Connection>>,
    keeps_state: bool,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS twins (id TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS relationships (
        source TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (source, id));
    CREATE TABLE IF NOT EXISTS models (id TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS history (
        twin TEXT NOT NULL, property TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS history_series ON history (twin, property, ts);
";

impl SqliteStorage {
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self, StorageError> {
        let storage = Self::open_without_checkpoints(path, sync)?;
        let checkpoints = checkpoint_connection(path)?;
        // Weak: the thread ends once the storage is dropped, and never keeps the writer open.
        let writer = Arc::downgrade(&storage.connection);
        std::thread::Builder::new()
            .name("twinscene-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpoints, &writer))
            .map_err(|error| StorageError(format!("cannot start the checkpoint thread: {error}")))?;
        Ok(storage)
    }

    /// The file without the checkpoint thread: its log grows until `checkpoint` is called.
    fn open_without_checkpoints(path: &Path, sync: SyncMode) -> Result<Self, StorageError> {
        let connection = Connection::open(path)
            .map_err(|error| StorageError(format!("cannot open {}: {error}", path.display())))?;
        // Every commit rewrites one page per history series and per twin it touches (B-tree
        // leaves keyed by twin), and the log holds each such page whole: 1 KiB pages instead of
        // the default 4 KiB log and sync about a quarter less per update (measured: 28 → 21 MiB/s
        // at 10k updates/s). Only takes effect on a new file, before WAL mode fixes the size.
        connection.pragma_update(None, "page_size", 1024)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        // A sync is fdatasync() (see .cargo/config.toml): the log's data, without the
        // modification time that would tie every commit to the filesystem journal.
        connection.pragma_update(None, "synchronous", synchronous)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // A group commit dirties pages all over the history index; with the default 2 MiB cache
        // a large group spills to the log mid-transaction and reads evicted pages back.
        connection.pragma_update(None, "cache_size", -65536)?;
        // Checkpoints (copying the log into the database file) would otherwise run inside
        // some commit and stall every write waiting on it; a thread runs them beside the writer.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        Self::with_connection(connection, true)
    }

    /// History only; `load` finds nothing.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::with_connection(Connection::open_in_memory()?, false)
    }

    fn with_connection(connection: Connection, keeps_state: bool) -> Result<Self, StorageError> {
        connection.execute_batch(SCHEMA)?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)), keeps_state })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolls back a transaction that a panic interrupted; the connection stays usable.
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for SqliteStorage {
    fn load(&self) -> Result<Option<StoredState>, StorageError> {
        if !self.keeps_state {
            return Ok(None);
        }
        let connection = self.connection();
        let seq: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'seq'", [], |row| row.get(0))
            .optional()?;
        let Some(seq) = seq else { return Ok(None) };
        let seq = seq.parse().map_err(|_| StorageError(format!("stored seq {seq:?} is not a number")))?;
        let read_all = |sql: &str| -> Result<Vec<Value>, StorageError> {
            let mut statement = connection.prepare(sql)?;
            let texts = statement.query_map([], |row| row.get::<_, String>(0))?;
            let mut values = Vec::new();
            for text in texts {
                values.push(serde_json::from_str(&text?)?);
            }
            Ok(values)
        };
        let twins = read_all("SELECT json FROM twins ORDER BY id")?
            .iter()
            .map(|value| Twin::from_adt_json(value).map_err(|error| StorageError(error.to_string())))
            .collect::<Result<_, _>>()?;
        let relationships = read_all("SELECT json FROM relationships ORDER BY source, id")?
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()?;
        let models = read_all("SELECT json FROM models ORDER BY id")?;
        Ok(Some(StoredState { twins, relationships, models, seq }))
    }

    fn stores_twins(&self) -> bool {
        self.keeps_state
    }

    fn commit(&self, writes: &[StoredWrite]) -> Result<(), StorageError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        // A group holds many writes of the same twin; only the last one of each id reaches the
        // table (the transaction is all or nothing, so the outcome is the same).
        let mut last_of_twin = HashMap::new();
        for (index, write) in writes.iter().enumerate() {
            if let StoredWrite::Twin(Twin { id, .. }) | StoredWrite::DeleteTwin(id) = write {
                last_of_twin.insert(id.as_str(), index);
            }
        }
        let is_last = |id: &str, index: usize| last_of_twin.get(id) == Some(&index);
        {
            // An upsert updates the row in place; INSERT OR REPLACE would delete it and append
            // it anew, dirtying twice the pages (and log) per twin.
            let mut put_twin = transaction.prepare_cached(
                "INSERT INTO twins VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
            )?;
            let mut history = transaction.prepare_cached("INSERT INTO history VALUES (?1, ?2, ?3, ?4)")?;
            // Only the last seq of a group matters.
            let mut seq = None;
            for (index, write) in writes.iter().enumerate() {
                if !self.keeps_state && !matches!(write, StoredWrite::History { .. }) {
                    continue;
                }
                match write {
                    StoredWrite::Twin(twin) if is_last(&twin.id, index) => {
                        put_twin.execute(params![twin.id, twin.to_adt_json().to_string()])?;
                    }
                    StoredWrite::Twin(_) => {}
                    StoredWrite::DeleteTwin(id) if is_last(id, index) => {
                        transaction.execute("DELETE FROM twins WHERE id = ?1", [id])?;
                    }
                    StoredWrite::DeleteTwin(_) => {}
                    StoredWrite::Relationship(relationship) => {
                        transaction.execute(
                            "INSERT OR REPLACE INTO relationships VALUES (?1, ?2, ?3)",
                            params![
                                relationship.source,
                                relationship.id,
                                serde_json::to_string(relationship)?
                            ],
                        )?;
                    }
                    StoredWrite::DeleteRelationship { source, id } => {
                        transaction.execute(
                            "DELETE FROM relationships WHERE source = ?1 AND id = ?2",
                            [source, id],
                        )?;
                    }
                    StoredWrite::Model { id, model } => {
                        transaction.execute(
                            "INSERT OR REPLACE INTO models VALUES (?1, ?2)",
                            params![id, model.to_string()],
                        )?;
                    }
                    StoredWrite::DeleteModel(id) => {
                        transaction.execute("DELETE FROM models WHERE id = ?1", [id])?;
                    }
                    StoredWrite::History { twin, property, ts_ms, value } => {
                        history.execute(params![twin, property, ts_ms, value])?;
                    }
                    StoredWrite::Seq(value) => seq = Some(*value),
                }
            }
            if let Some(seq) = seq {
                transaction.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?1)", [seq.to_string()])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    fn history(
        &self,
        twin: &str,
        property: &str,
        from_ms: i64,
        to_ms: i64,
        buckets: u32,
    ) -> Result<Vec<HistoryBucket>, StorageError> {
        let span = (to_ms - from_ms).max(1);
        let connection = self.connection();
        // Bucket number = position in the range scaled to the bucket count; SQLite's bare-column
        // rule makes `value` beside MAX(rowid) the bucket's last sample (rows are inserted in
        // write order; several writes may share a millisecond).
        let mut statement = connection.prepare_cached(
            "SELECT ((ts - ?3) * ?5) / ?6 AS bucket, MIN(ts), AVG(value), MIN(value), MAX(value),
                    COUNT(*), MAX(rowid), value
             FROM history WHERE twin = ?1 AND property = ?2 AND ts >= ?3 AND ts < ?4
             GROUP BY bucket ORDER BY bucket",
        )?;
        let rows = statement.query_map(
            params![twin, property, from_ms, to_ms, i64::from(buckets), span],
            |row| {
                Ok(HistoryBucket {
                    ts_ms: row.get(1)?,
                    avg: row.get(2)?,
                    min: row.get(3)?,
                    max: row.get(4)?,
                    count: row.get::<_, i64>(5)?.max(0) as u64,
                    last: row.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prune(&self, retention: &HistoryRetention, now_ms: i64) -> Result<(), StorageError> {
        let oldest = now_ms.saturating_sub(i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX));
        let connection = self.connection();
        connection.execute("DELETE FROM history WHERE ts < ?1", [oldest])?;
        let keep = i64::try_from(retention.max_points_per_property).unwrap_or(i64::MAX);
        connection.execute(
            "DELETE FROM history WHERE rowid IN (
                SELECT rowid FROM (
                    SELECT rowid, ROW_NUMBER() OVER (PARTITION BY twin, property ORDER BY ts DESC) AS n
                    FROM history) WHERE n > ?1)",
            [keep],
        )?;
        Ok(())
    }
}

/// How often the checkpoint thread copies the log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the log into the database file beside the writer, so that no commit pays for a whole
/// checkpoint, and keeps the log from growing.
///
/// A PASSIVE checkpoint copies what was committed when it started without blocking commits.
/// SQLite starts the log over only when a write begins while every frame is copied, which under
/// steady commits never happens (each one lands while the checkpoint runs), so on its own the
/// log grows without end, and a TRUNCATE once it is large copies seconds of frames while
/// commits wait (100–200 ms stalls at 10k updates/s). So each PASSIVE is followed by a RESTART
/// with the writer's connection locked: no commit is under way, none can start, and the
/// RESTART only has the few frames committed during the PASSIVE left to copy before the log
/// starts over. Commits wait on the mutex (woken the moment it is released) rather than in
/// SQLite's busy handler, which sleeps in steps of up to 100 ms.
fn run_checkpoints(connection: &Connection, writer: &std::sync::Weak<Mutex<Connection>>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(writer) = writer.upgrade() else { return };
        if let Err(error) = checkpoint(connection, &writer) {
            tracing::warn!("checkpoint failed: {error}");
        }
    }
}

/// The checkpoint thread's own connection to the database at `path`.
fn checkpoint_connection(path: &Path) -> Result<Connection, StorageError> {
    let connection = Connection::open(path)?;
    // The RESTART waits for readers (an online backup holds one for its whole copy) while
    // commits wait for it: it gives up at once instead, and the next round tries again.
    connection.busy_timeout(Duration::ZERO)?;
    Ok(connection)
}

/// One PASSIVE checkpoint, then a RESTART with the writer locked; the next commit starts the
/// log over. Returns the RESTART's (busy, log frames, frames copied).
fn checkpoint(connection: &Connection, writer: &Mutex<Connection>) -> rusqlite::Result<(i64, i64, i64)> {
    let run = |mode: &str| {
        connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
    };
    run("PASSIVE")?;
    let _no_commits = writer.lock().unwrap_or_else(PoisonError::into_inner);
    run("RESTART")
}

/// A group of writes and who waits for them to be durable.
struct Job {
    writes: Vec<StoredWrite>,
    done: Option<oneshot::Sender<Result<(), String>>>,
    after: Option<Box<dyn FnOnce(bool) + Send>>,
}

/// Group commit: one thread takes every job queued meanwhile, commits them in one transaction
/// and only then acknowledges them, so many writers share one disk sync. After a failed commit
/// the committer is poisoned: every later job fails at once, without touching storage, so that
/// no later commit can make a failed write's effects durable (a twin is stored whole, with
/// every patch it had in memory).
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

/// How long the committer waits between history prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// The most jobs one transaction takes, so that acknowledgements keep flowing under load.
const MAX_GROUP: usize = 4096;

impl Committer {
    pub fn start(storage: Arc<dyn Storage>, retention: HistoryRetention) -> Result<Self, StorageError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("twinscene-commit".into())
            .spawn(move || run_committer(storage.as_ref(), &retention, &queue))
            .map_err(|error| StorageError(format!("cannot start the storage thread: {error}")))?;
        Ok(Self { jobs })
    }

    /// Queues writes; the receiver resolves once they are durable. `after` runs on the storage
    /// thread right after the commit (with whether it succeeded), in queue order, before the
    /// receiver resolves.
    pub fn submit(
        &self,
        writes: Vec<StoredWrite>,
        after: Option<Box<dyn FnOnce(bool) + Send>>,
    ) -> oneshot::Receiver<Result<(), String>> {
        let (done, receiver) = oneshot::channel();
        // A send error means the storage thread is gone; the dropped sender tells the writer.
        let _ = self.jobs.send(Job { writes, done: Some(done), after });
        receiver
    }
}

fn run_committer(storage: &dyn Storage, retention: &HistoryRetention, queue: &mpsc::Receiver<Job>) {
    let mut last_prune = Instant::now();
    // The error of the first failed commit; from then on nothing is committed.
    let mut poisoned: Option<String> = None;
    loop {
        let first = match queue.recv_timeout(PRUNE_EVERY) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if poisoned.is_none() {
                    prune(storage, retention, &mut last_prune);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let result = match &poisoned {
            Some(error) => Err(format!(
                "an earlier commit failed ({error}); writes are refused until the server restarts"
            )),
            None => {
                let writes: Vec<StoredWrite> =
                    group.iter_mut().flat_map(|job| std::mem::take(&mut job.writes)).collect();
                let started = Instant::now();
                let result = storage.commit(&writes).map_err(|error| error.to_string());
                metrics::histogram!(crate::metrics::COMMIT).record(started.elapsed().as_secs_f64());
                if let Err(error) = &result {
                    tracing::error!("{error}; no further commit is attempted until the server restarts");
                    poisoned = Some(error.clone());
                }
                result
            }
        };
        for job in group {
            if let Some(after) = job.after {
                after(result.is_ok());
            }
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
        if poisoned.is_none() && last_prune.elapsed() >= PRUNE_EVERY {
            prune(storage, retention, &mut last_prune);
        }
    }
}

fn prune(storage: &dyn Storage, retention: &HistoryRetention, last_prune: &mut Instant) {
    *last_prune = Instant::now();
    if let Err(error) = storage.prune(retention, now_ms()) {
        tracing::warn!("history prune failed: {error}");
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// A storage for tests and fault drills: real SQLite until `broken` is set, then every commit
/// fails as a full disk would. Counts the commits it is asked for; while `held` is set,
/// commits wait (a slow disk), so that a test can act while a write is not yet durable.
pub struct BreakableStorage {
    pub inner: SqliteStorage,
    pub broken: std::sync::atomic::AtomicBool,
    pub commits: std::sync::atomic::AtomicUsize,
    pub held: std::sync::atomic::AtomicBool,
}

impl BreakableStorage {
    pub fn new(inner: SqliteStorage) -> Self {
        Self { inner, broken: Default::default(), commits: Default::default(), held: Default::default() }
    }

    /// Makes commits wait until called again with `false`.
    pub fn set_held(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn commit_count(&self) -> usize {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Storage for BreakableStorage {
    fn load(&self) -> Result<Option<StoredState>, StorageError> {
        self.inner.load()
    }
    fn stores_twins(&self) -> bool {
        self.inner.stores_twins()
    }
    fn commit(&self, writes: &[StoredWrite]) -> Result<(), StorageError> {
        while self.held.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::new("disk full"));
        }
        self.inner.commit(writes)
    }
    fn history(
        &self,
        twin: &str,
        property: &str,
        from_ms: i64,
        to_ms: i64,
        points: u32,
    ) -> Result<Vec<HistoryBucket>, StorageError> {
        self.inner.history(twin, property, from_ms, to_ms, points)
    }
    fn prune(&self, retention: &HistoryRetention, now_ms: i64) -> Result<(), StorageError> {
        self.inner.prune(retention, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(ts_ms: i64, value: f64) -> StoredWrite {
        StoredWrite::History { twin: "t".into(), property: "p".into(), ts_ms, value }
    }

    /// The bundled SQLite must sync its log with fdatasync(): with fsync() every commit also
    /// waited for the filesystem journal behind the checkpoint's writes (commit stalls of
    /// 100–500 ms at 10k updates/s, docs/server.md). The flag reaches SQLite's C build through
    /// the `[env]` of .cargo/config.toml, which sets it for this crate's build as well.
    #[test]
    fn sqlite_is_built_to_sync_with_fdatasync() {
        let flags = option_env!("LIBSQLITE3_FLAGS").unwrap_or_default();
        assert!(
            flags.split_whitespace().any(|flag| flag == "-DHAVE_FDATASYNC=1"),
            "LIBSQLITE3_FLAGS = {flags:?}"
        );
    }

    #[test]
    fn state_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let storage = SqliteStorage::open(&path, SyncMode::Full).unwrap();
        assert!(storage.load().unwrap().is_none());
        let mut twin = Twin::new("a", "dtmi:x;1");
        twin.properties.insert("temperature", json!(21.5));
        let relationship: Relationship = serde_json::from_value(json!({
            "$relationshipId": "r", "$sourceId": "a", "$targetId": "a", "$relationshipName": "self"
        }))
        .unwrap();
        storage
            .commit(&[
                StoredWrite::Twin(twin.clone()),
                StoredWrite::Twin(Twin::new("b", "m")),
                StoredWrite::DeleteTwin("b".into()),
                StoredWrite::Relationship(relationship.clone()),
                StoredWrite::Model { id: "dtmi:x;1".into(), model: json!({"@id": "dtmi:x;1"}) },
                StoredWrite::Seq(41),
                StoredWrite::Seq(42),
            ])
            .unwrap();
        drop(storage);
        let loaded = SqliteStorage::open(&path, SyncMode::Normal).unwrap().load().unwrap().unwrap();
        assert_eq!(loaded.twins, [twin]);
        assert_eq!(loaded.relationships, [relationship]);
        assert_eq!(loaded.models, [json!({"@id": "dtmi:x;1"})]);
        assert_eq!(loaded.seq, 42);
    }

    #[test]
    fn a_group_stores_the_last_write_of_each_twin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let storage = SqliteStorage::open(&path, SyncMode::Full).unwrap();
        let version = |id: &str, value: i64| {
            let mut twin = Twin::new(id, "m");
            twin.properties.insert("v", json!(value));
            StoredWrite::Twin(twin)
        };
        storage
            .commit(&[version("kept", 0), version("gone", 0), version("back", 0), StoredWrite::Seq(1)])
            .unwrap();
        storage
            .commit(&[
                version("kept", 1),
                version("gone", 1),
                version("kept", 2),
                StoredWrite::DeleteTwin("gone".into()),
                StoredWrite::DeleteTwin("back".into()),
                version("back", 3),
                version("new", 4),
                StoredWrite::Seq(2),
            ])
            .unwrap();
        drop(storage);
        let loaded = SqliteStorage::open(&path, SyncMode::Full).unwrap().load().unwrap().unwrap();
        let values: Vec<(String, Value)> =
            loaded.twins.iter().map(|twin| (twin.id.clone(), twin.properties["v"].clone())).collect();
        assert_eq!(
            values,
            [("back".to_owned(), json!(3)), ("kept".to_owned(), json!(2)), ("new".to_owned(), json!(4))]
        );
        assert_eq!(loaded.seq, 2);
    }

    #[test]
    fn after_a_failed_commit_every_job_fails_without_touching_storage() {
        let storage = Arc::new(BreakableStorage::new(SqliteStorage::in_memory().unwrap()));
        let committer = Committer::start(storage.clone(), HistoryRetention::default()).unwrap();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let job = || -> Option<Box<dyn FnOnce(bool) + Send>> {
            let outcomes = outcomes.clone();
            Some(Box::new(move |ok| outcomes.lock().unwrap().push(ok)))
        };
        assert_eq!(committer.submit(vec![StoredWrite::Seq(1)], job()).blocking_recv().unwrap(), Ok(()));
        storage.set_broken(true);
        let failed = committer.submit(vec![StoredWrite::Seq(2)], job()).blocking_recv().unwrap();
        assert_eq!(failed, Err("storage: disk full".to_owned()));
        assert_eq!(storage.commit_count(), 2);

        // Storage works again, but nothing more is committed until a restart.
        storage.set_broken(false);
        for seq in 3..6 {
            let error = committer.submit(vec![StoredWrite::Seq(seq)], job()).blocking_recv().unwrap();
            let error = error.expect_err("a poisoned committer fails every job");
            assert!(error.contains("an earlier commit failed (storage: disk full)"), "{error}");
        }
        assert_eq!(storage.commit_count(), 2);
        assert_eq!(*outcomes.lock().unwrap(), [true, false, false, false, false]);
    }

    /// Frames in the log of the database at `path`, by a PASSIVE checkpoint on a connection of
    /// its own (which copies them, but never starts the log over).
    fn log_frames(path: &Path) -> i64 {
        let connection = Connection::open(path).unwrap();
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1)).unwrap()
    }

    /// Checks the outcome only: without commits running beside it, a PASSIVE checkpoint alone
    /// would also let the next commit start the log over. The RESTART is for commits landing
    /// while the PASSIVE runs, which the load test (`examples/live_load.rs`) exercises.
    #[test]
    fn a_checkpoint_starts_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        // No checkpoint thread: on a slow machine it could start the log over mid-test.
        let storage = SqliteStorage::open_without_checkpoints(&path, SyncMode::Full).unwrap();
        let page_size: i64 =
            storage.connection().query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
        assert_eq!(page_size, 1024);
        for group in 0..50 {
            storage.commit(&(0..20).map(|i| point(group * 100 + i, i as f64)).collect::<Vec<_>>()).unwrap();
        }
        let before = log_frames(&path);
        assert!(before >= 50, "every commit appends to the log: {before} frames");
        let checkpoints = Connection::open(&path).unwrap();
        let (busy, _, _) = checkpoint(&checkpoints, &storage.connection).unwrap();
        assert_eq!(busy, 0);
        storage.commit(&[point(10_000, 1.0)]).unwrap();
        let after = log_frames(&path);
        assert!(
            after < 10,
            "the commit after a checkpoint starts the log over: {after} frames (was {before})"
        );
    }

    #[test]
    fn a_checkpoint_does_not_wait_for_a_reader_while_commits_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let storage = SqliteStorage::open_without_checkpoints(&path, SyncMode::Full).unwrap();
        storage.commit(&[point(1, 1.0)]).unwrap();
        let mut reader = Connection::open(&path).unwrap();
        // A read transaction that sees the log, as an online backup holds while it copies.
        let reading = reader.transaction().unwrap();
        let _: i64 = reading.query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0)).unwrap();
        storage.commit(&[point(2, 2.0)]).unwrap();
        let checkpoints = checkpoint_connection(&path).unwrap();
        let started = Instant::now();
        let (busy, _, _) = checkpoint(&checkpoints, &storage.connection).unwrap();
        assert_eq!(busy, 1, "the reader keeps the log from starting over");
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
        storage.commit(&[point(3, 3.0)]).unwrap();
        drop(reading);
    }

    #[test]
    fn a_crash_between_checkpoints_loses_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let storage = SqliteStorage::open_without_checkpoints(&path, SyncMode::Full).unwrap();
        let checkpoints = Connection::open(&path).unwrap();
        let mut twin = Twin::new("a", "m");
        for round in 0..4 {
            for step in 0..10 {
                let value = round * 10 + step;
                twin.properties.insert("v", json!(value));
                let writes = [
                    StoredWrite::Twin(twin.clone()),
                    point(value, value as f64),
                    StoredWrite::Seq(value as u64),
                ];
                storage.commit(&writes).unwrap();
            }
            // The log starts over after each round, so the later rounds overwrite its start.
            checkpoint(&checkpoints, &storage.connection).unwrap();
        }
        twin.properties.insert("v", json!(40));
        storage.commit(&[StoredWrite::Twin(twin.clone()), point(40, 40.0), StoredWrite::Seq(40)]).unwrap();

        // What `kill -9` leaves: the files as they are, the storage never closed.
        let crashed = dir.path().join("crashed.sqlite");
        std::fs::copy(&path, &crashed).unwrap();
        std::fs::copy(dir.path().join("state.sqlite-wal"), dir.path().join("crashed.sqlite-wal")).unwrap();
        let reopened = SqliteStorage::open(&crashed, SyncMode::Full).unwrap();
        let loaded = reopened.load().unwrap().unwrap();
        assert_eq!(loaded.seq, 40);
        assert_eq!(loaded.twins, [twin]);
        let history = reopened.history("t", "p", 0, 41, 41).unwrap();
        assert_eq!(
            history.iter().map(|bucket| bucket.last).collect::<Vec<_>>(),
            (0..=40).map(f64::from).collect::<Vec<_>>()
        );
        drop(storage);
    }

    #[test]
    fn history_is_downsampled_into_buckets() {
        let storage = SqliteStorage::in_memory().unwrap();
        let points: Vec<_> = (0..100).map(|i| point(1000 + i * 10, i as f64)).collect();
        storage.commit(&points).unwrap();
        let buckets = storage.history("t", "p", 1000, 2000, 4).unwrap();
        assert_eq!(buckets.len(), 4);
        assert_eq!(
            buckets[0],
            HistoryBucket { ts_ms: 1000, avg: 12.0, min: 0.0, max: 24.0, last: 24.0, count: 25 }
        );
        assert_eq!(buckets[3].last, 99.0);
        assert!(storage.history("t", "other", 0, 5000, 10).unwrap().is_empty());
    }

    #[test]
    fn pruning_keeps_the_newest_points_within_age() {
        let storage = SqliteStorage::in_memory().unwrap();
        storage.commit(&(0..20).map(|i| point(i * 1000, i as f64)).collect::<Vec<_>>()).unwrap();
        let retention = HistoryRetention { max_points_per_property: 5, max_age: Duration::from_secs(10) };
        storage.prune(&retention, 20_000).unwrap();
        let kept = storage.history("t", "p", 0, 100_000, 1000).unwrap();
        assert_eq!(kept.iter().map(|bucket| bucket.last).collect::<Vec<_>>(), [15.0, 16.0, 17.0, 18.0, 19.0]);
    }
}
