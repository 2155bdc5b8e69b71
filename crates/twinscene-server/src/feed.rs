//! The published change stream: accepted writes wait here until durable, go out in batches per
//! tick, and stay in a bounded ring that serves `since_seq` catch-up and slow viewers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use json_patch::{Patch, PatchOperation};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use twinscene_core::live::TwinChange;

use crate::server_config::LiveBatching;

/// One accepted write as the feed keeps it.
#[derive(Clone, Debug)]
pub struct FeedChange {
    pub seq: u64,
    /// The twin's model, so that model-scoped viewers can be served without the twin lock.
    pub model: String,
    pub change: TwinChange,
}

enum Pending {
    /// With when it was accepted (tokio's clock, which tests can pause).
    Change(FeedChange, tokio::time::Instant),
    /// Twins or relationships were created or deleted: viewers need a new snapshot.
    Structural(u64),
}

impl Pending {
    fn seq(&self) -> u64 {
        match self {
            Self::Change(change, _) => change.seq,
            Self::Structural(seq) => *seq,
        }
    }
}

/// A published group of writes: the state went from `base` to `seq` through `changes`.
#[derive(Debug)]
pub struct Batch {
    pub base: u64,
    pub seq: u64,
    pub changes: Vec<FeedChange>,
    /// Set for a create or delete; viewers get a snapshot instead.
    pub structural: bool,
    /// When the oldest write in the batch was accepted.
    pub accepted: Instant,
    /// The batch as a `delta` message (coalesced), serialized once for every viewer that may
    /// read it all.
    pub text: Utf8Bytes,
}

/// What a viewer at some seq gets from the ring.
pub enum Pull {
    /// Batches after that seq (the first may start before it).
    Batches(Vec<Arc<Batch>>),
    /// The ring no longer reaches back that far.
    TooOld,
}

pub struct Feed {
    inner: Mutex<FeedInner>,
    durable: AtomicU64,
    wake: Notify,
    published: watch::Sender<u64>,
    batching: LiveBatching,
    /// How often the live state went back to storage after a failed commit; a viewer whose
    /// state was sent before the latest of these gets a new snapshot.
    restores: AtomicU64,
}

struct FeedInner {
    pending: VecDeque<Pending>,
    ring: VecDeque<Arc<Batch>>,
    ring_changes: usize,
    /// Catch-up is possible from this seq on.
    oldest_base: u64,
    published_seq: u64,
}

impl Feed {
    /// A feed whose stream starts at `origin` (nothing published yet).
    pub fn new(origin: u64, batching: LiveBatching) -> Arc<Self> {
        let (published, _) = watch::channel(origin);
        let feed = Arc::new(Self {
            inner: Mutex::new(FeedInner {
                pending: VecDeque::new(),
                ring: VecDeque::new(),
                ring_changes: 0,
                oldest_base: origin,
                published_seq: origin,
            }),
            durable: AtomicU64::new(origin),
            wake: Notify::new(),
            published,
            batching,
            restores: AtomicU64::new(0),
        });
        tokio::spawn(run_publisher(feed.clone()));
        feed
    }

    fn inner(&self) -> MutexGuard<'_, FeedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an accepted change; it is published once durable. Called in seq order.
    pub fn push(&self, change: FeedChange) {
        self.inner().pending.push_back(Pending::Change(change, tokio::time::Instant::now()));
    }

    pub fn push_structural(&self, seq: u64) {
        self.inner().pending.push_back(Pending::Structural(seq));
    }

    /// Everything up to `seq` is durable: it may be published.
    pub fn mark_durable(&self, seq: u64) {
        self.durable.fetch_max(seq, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// A commit failed: every pending change beyond the durable seq will never be durable, so
    /// it is dropped instead of published. Changes up to the durable seq still go out, and a
    /// change queued later under a reused seq (the live state went back to the durable one) is
    /// published once durable. Returns how many changes were dropped.
    pub fn mark_failed(&self) -> usize {
        let durable = self.durable.load(Ordering::Acquire);
        let mut inner = self.inner();
        // Pending changes are in seq order: the undurable ones are the tail.
        let keep = inner.pending.iter().take_while(|pending| pending.seq() <= durable).count();
        let dropped = inner.pending.len() - keep;
        inner.pending.truncate(keep);
        drop(inner);
        self.wake.notify_one();
        dropped
    }

    /// The live state went back to what storage holds: snapshots sent before may hold writes
    /// that never became durable, and the seqs after the durable one are given out again. Every
    /// viewer is woken and resynced with a snapshot.
    pub fn restored(&self) {
        self.restores.fetch_add(1, Ordering::AcqRel);
        self.published.send_modify(|_| {});
    }

    /// The seq of the newest published batch (the origin before any).
    pub fn published_seq(&self) -> u64 {
        self.inner().published_seq
    }

    /// How many restores happened; read before taking a snapshot.
    pub fn restore_count(&self) -> u64 {
        self.restores.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever a batch is published; its value is the newest seq.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Batches with changes after `after`.
    pub fn pull(&self, after: u64) -> Pull {
        let inner = self.inner();
        if after < inner.oldest_base {
            return Pull::TooOld;
        }
        let start = inner.ring.partition_point(|batch| batch.seq <= after);
        Pull::Batches(inner.ring.range(start..).cloned().collect())
    }

    /// Whether a viewer that has the state as of `seq` can be caught up from the ring.
    pub fn can_resume(&self, seq: u64) -> bool {
        seq >= self.inner().oldest_base
    }

    /// When the oldest write waiting to be published was accepted.
    fn oldest_pending(&self) -> Option<tokio::time::Instant> {
        match self.inner().pending.front()? {
            Pending::Change(_, accepted) => Some(*accepted),
            Pending::Structural(_) => None,
        }
    }

    fn ready(&self) -> usize {
        let durable = self.durable.load(Ordering::Acquire);
        let inner = self.inner();
        inner.pending.iter().take_while(|pending| pending.seq() <= durable).count()
    }

    /// Moves durable pending writes into the ring as batches and tells the viewers.
    fn publish(&self) {
        let durable = self.durable.load(Ordering::Acquire);
        let mut inner = self.inner();
        let mut published_any = false;
        while inner.pending.front().is_some_and(|pending| pending.seq() <= durable) {
            let base = inner.published_seq;
            let batch = match inner.pending.pop_front() {
                Some(Pending::Structural(seq)) => Batch {
                    base,
                    seq,
                    changes: Vec::new(),
                    structural: true,
                    accepted: Instant::now(),
                    text: Utf8Bytes::default(),
                },
                Some(Pending::Change(first, accepted)) => {
                    let mut changes = vec![first];
                    while changes.len() < self.batching.max_changes
                        && let Some(Pending::Change(next, _)) = inner.pending.front()
                        && next.seq <= durable
                    {
                        changes.push(next.clone());
                        inner.pending.pop_front();
                    }
                    let seq = changes.last().map_or(base, |change| change.seq);
                    // Within a tick only the latest value of each property goes out.
                    let (merged, dropped) = coalesce(changes.iter().map(|change| &change.change));
                    metrics::counter!(crate::metrics::COALESCED).increment(dropped as u64);
                    let text = delta_text(base, seq, merged.iter());
                    Batch { base, seq, changes, structural: false, accepted: accepted.into_std(), text }
                }
                None => break,
            };
            inner.published_seq = batch.seq;
            inner.ring_changes += batch.changes.len().max(1);
            inner.ring.push_back(Arc::new(batch));
            while inner.ring_changes > self.batching.ring_changes && inner.ring.len() > 1 {
                if let Some(old) = inner.ring.pop_front() {
                    inner.ring_changes -= old.changes.len().max(1);
                }
            }
            inner.oldest_base = inner.ring.front().map_or(inner.published_seq, |batch| batch.base);
            published_any = true;
        }
        let newest = inner.published_seq;
        drop(inner);
        if published_any {
            self.published.send_replace(newest);
        }
    }
}

/// Waits for a first durable change, gives the batch until one tick after its oldest write was
/// accepted (or until it is full) to fill, then publishes. The tick counts from acceptance, not
/// from durability: the commit already took part of it, and a write should not wait for its
/// commit and then a whole tick more. Idle feeds cost nothing.
async fn run_publisher(feed: Arc<Feed>) {
    loop {
        feed.wake.notified().await;
        let accepted = feed.oldest_pending().unwrap_or_else(tokio::time::Instant::now);
        let deadline = accepted + feed.batching.tick;
        while feed.ready() < feed.batching.max_changes {
            if tokio::time::timeout_at(deadline, feed.wake.notified()).await.is_err() {
                break;
            }
        }
        feed.publish();
        // Writes that became durable meanwhile wait for the next wake, which their own
        // `mark_durable` already stored in the Notify.
    }
}

/// The JSON of `ServerMessage::Delta`, written from borrowed changes.
pub fn delta_text<'a>(base: u64, seq: u64, changes: impl Iterator<Item = &'a TwinChange>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct DeltaRef<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        seq: u64,
        changes: Vec<&'a TwinChange>,
        #[serde(skip_serializing_if = "Option::is_none")]
        base: Option<u64>,
    }
    let base = (base + 1 != seq).then_some(base);
    let message = DeltaRef { kind: "delta", seq, changes: changes.collect(), base };
    // Serializing plain JSON values and strings cannot fail.
    serde_json::to_string(&message).unwrap_or_default().into()
}

/// Merges changes for a viewer that missed several batches: one change per twin (in order of
/// first appearance), each with its operations in order minus those a later one overwrites.
/// Returns the merged changes and how many operations were left out.
pub fn coalesce<'a>(changes: impl Iterator<Item = &'a TwinChange>) -> (Vec<TwinChange>, usize) {
    let mut merged: Vec<TwinChange> = Vec::new();
    let mut index = std::collections::HashMap::<&str, usize>::new();
    for change in changes {
        match index.get(change.twin.as_str()) {
            Some(&at) => {
                let target = &mut merged[at];
                target.patch.0.extend(change.patch.0.iter().cloned());
                target.ts.clone_from(&change.ts);
            }
            None => {
                index.insert(&change.twin, merged.len());
                merged.push(change.clone());
            }
        }
    }
    let mut dropped = 0;
    for change in &mut merged {
        let (operations, left_out) = compact(std::mem::take(&mut change.patch.0));
        change.patch = Patch(operations);
        dropped += left_out;
    }
    (merged, dropped)
}

/// Drops operations whose effect a later operation overwrites with nothing in between touching
/// the same value: a `replace` followed by a `replace` of the same path, or anything setting a
/// top-level property followed by an `add` of it (which sets it whether or not it exists).
fn compact(operations: Vec<PatchOperation>) -> (Vec<PatchOperation>, usize) {
    struct Cover {
        path: String,
        by_top_level_add: bool,
    }
    let mut keep = vec![true; operations.len()];
    let mut covers: Vec<Cover> = Vec::new();
    for (at, operation) in operations.iter().enumerate().rev() {
        let path = operation.path().to_string();
        let cover = covers.iter().find(|cover| cover.path == path);
        let droppable = match (operation, cover) {
            (PatchOperation::Replace(_), Some(_)) => true,
            (PatchOperation::Add(_), Some(cover)) => cover.by_top_level_add,
            _ => false,
        };
        if droppable {
            keep[at] = false;
            continue;
        }
        let mut touched = vec![path.clone()];
        match operation {
            PatchOperation::Move(op) => touched.push(op.from.to_string()),
            PatchOperation::Copy(op) => touched.push(op.from.to_string()),
            _ => {}
        }
        covers.retain(|cover| !touched.iter().any(|path| overlaps(path, &cover.path)));
        let top_level = path.len() > 1 && !path[1..].contains('/');
        match operation {
            PatchOperation::Replace(_) => covers.push(Cover { path, by_top_level_add: false }),
            PatchOperation::Add(_) if top_level => covers.push(Cover { path, by_top_level_add: true }),
            _ => {}
        }
    }
    let dropped = keep.iter().filter(|kept| !**kept).count();
    let operations = operations.into_iter().zip(keep).filter_map(|(op, kept)| kept.then_some(op)).collect();
    (operations, dropped)
}

/// Whether two JSON pointers name the same value or one lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
    };
    a == b || inside(a, b) || inside(b, a) || a.is_empty() || b.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn change(twin: &str, patch: Value, ts: &str) -> TwinChange {
        TwinChange { twin: twin.into(), patch: serde_json::from_value(patch).unwrap(), ts: ts.into() }
    }

    fn apply(state: &mut Value, changes: &[TwinChange]) {
        for change in changes {
            json_patch::patch(&mut state[&change.twin], &change.patch).unwrap();
        }
    }

    #[test]
    fn coalescing_keeps_the_latest_values_and_the_outcome() {
        let changes = [
            change("a", json!([{"op": "replace", "path": "/t", "value": 1}]), "1"),
            change("b", json!([{"op": "add", "path": "/list/-", "value": 1}]), "2"),
            change("a", json!([{"op": "replace", "path": "/t", "value": 2}]), "3"),
            change(
                "a",
                json!([{"op": "add", "path": "/new", "value": 1}, {"op": "replace", "path": "/new", "value": 2}]),
                "4",
            ),
            change("b", json!([{"op": "add", "path": "/list/-", "value": 2}]), "5"),
            change(
                "a",
                json!([{"op": "replace", "path": "/h/mode", "value": "x"}, {"op": "replace", "path": "/h", "value": {"mode": "y"}}]),
                "6",
            ),
        ];
        let (merged, dropped) = coalesce(changes.iter());
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].ts, "6");
        assert_eq!(
            serde_json::to_value(&merged[0].patch).unwrap(),
            json!([
                {"op": "replace", "path": "/t", "value": 2},
                {"op": "add", "path": "/new", "value": 1},
                {"op": "replace", "path": "/new", "value": 2},
                {"op": "replace", "path": "/h/mode", "value": "x"},
                {"op": "replace", "path": "/h", "value": {"mode": "y"}}
            ])
        );
        assert_eq!(merged[1].patch.0.len(), 2, "array appends are never merged");
        assert_eq!(dropped, 1);

        let start = json!({"a": {"t": 0, "h": {"mode": "z"}}, "b": {"list": []}});
        let (mut one_by_one, mut merged_state) = (start.clone(), start);
        apply(&mut one_by_one, &changes);
        apply(&mut merged_state, &merged);
        assert_eq!(one_by_one, merged_state);
    }

    #[test]
    fn a_top_level_add_overwrites_earlier_sets_but_a_replace_does_not_overwrite_an_add() {
        let (ops, dropped) = compact(
            serde_json::from_value::<Patch>(json!([
                {"op": "add", "path": "/x", "value": 1},
                {"op": "replace", "path": "/x", "value": 2},
                {"op": "add", "path": "/x", "value": 3},
                {"op": "test", "path": "/y", "value": 1},
                {"op": "replace", "path": "/y", "value": 2},
            ]))
            .unwrap()
            .0,
        );
        assert_eq!(dropped, 2);
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn delta_text_is_a_delta_message() {
        let changes = [change("a", json!([{"op": "replace", "path": "/t", "value": 1}]), "ts")];
        let text = delta_text(4, 5, changes.iter());
        let parsed: twinscene_core::live::ServerMessage = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(
            parsed,
            twinscene_core::live::ServerMessage::Delta { seq: 5, changes: changes.to_vec(), base: None }
        );
        assert!(delta_text(2, 5, changes.iter()).as_str().ends_with(r#""base":2}"#));
    }

    fn feed_change(seq: u64, value: i64) -> FeedChange {
        FeedChange {
            seq,
            model: "m".into(),
            change: change("a", json!([{"op": "replace", "path": "/t", "value": value}]), "ts"),
        }
    }

    fn published_seqs(feed: &Feed, after: u64) -> Vec<u64> {
        match feed.pull(after) {
            Pull::Batches(batches) => {
                batches.iter().flat_map(|batch| batch.changes.iter().map(|change| change.seq)).collect()
            }
            Pull::TooOld => panic!("the ring should reach back to {after}"),
        }
    }

    #[tokio::test]
    async fn changes_of_a_failed_commit_are_dropped_and_the_stream_moves_on() {
        let feed = Feed::new(10, LiveBatching::default());
        let mut published = feed.subscribe();
        for seq in 11..=14 {
            feed.push(feed_change(seq, seq as i64));
        }
        feed.push_structural(15);
        feed.mark_durable(12);
        // 13 to 15 were in the commit that failed.
        assert_eq!(feed.mark_failed(), 3);
        tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|seq| *seq >= 12))
            .await
            .expect("the durable changes are published")
            .unwrap();
        assert_eq!(published_seqs(&feed, 10), [11, 12]);

        // The live state went back to seq 12; the next write is 13 again, and goes out.
        feed.push(feed_change(13, 99));
        feed.mark_durable(13);
        tokio::time::timeout(std::time::Duration::from_secs(10), published.wait_for(|seq| *seq >= 13))
            .await
            .expect("a later durable change is published")
            .unwrap();
        assert_eq!(published_seqs(&feed, 12), [13]);
        let Pull::Batches(batches) = feed.pull(12) else { panic!("the ring should reach back to 12") };
        assert!(batches[0].text.as_str().contains("99"), "{}", batches[0].text.as_str());
        assert!(!batches.iter().any(|batch| batch.structural), "the failed structural change is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_goes_out_one_tick_after_its_first_write_was_accepted_however_long_its_commit_took() {
        let batching = LiveBatching { tick: std::time::Duration::from_millis(16), ..LiveBatching::default() };
        let feed = Feed::new(10, batching);
        let mut published = feed.subscribe();
        let accepted = tokio::time::Instant::now();
        feed.push(feed_change(11, 1));
        // Its commit takes 12 of the tick's 16 ms.
        tokio::time::advance(std::time::Duration::from_millis(12)).await;
        feed.mark_durable(11);
        published.changed().await.unwrap();
        assert_eq!(accepted.elapsed(), std::time::Duration::from_millis(16), "not 12 + 16 ms");

        // A write whose commit took longer than a tick goes out as soon as it is durable.
        let accepted = tokio::time::Instant::now();
        feed.push(feed_change(12, 2));
        tokio::time::advance(std::time::Duration::from_millis(20)).await;
        feed.mark_durable(12);
        published.changed().await.unwrap();
        assert_eq!(accepted.elapsed(), std::time::Duration::from_millis(20));
        assert_eq!(published_seqs(&feed, 10), [11, 12]);
    }

    #[test]
    fn pointer_overlap() {
        assert!(overlaps("/a", "/a/b") && overlaps("/a/b", "/a") && overlaps("/a", "/a"));
        assert!(!overlaps("/a", "/ab") && !overlaps("/a/b", "/a/c"));
    }
}
