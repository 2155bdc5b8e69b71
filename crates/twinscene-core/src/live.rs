//! The live protocol between the server and viewers (JSON over WebSocket): the server sends a
//! `snapshot`, then `delta`s numbered by `seq`, and `heartbeat`s; a viewer says `hello`.
//! [`SequenceTracker`] is the viewer's rule for applying them exactly once, in order.

use json_patch::Patch;
use serde::{Deserialize, Serialize};

use crate::twin::{Relationship, Twin};

/// Bumped on any incompatible change of these messages. Version 2: a delta may carry several
/// writes and a `base`, and `hello` may ask for catch-up with `since_seq`.
pub const PROTOCOL_VERSION: u32 = 2;

/// The response header of the server's scene (`GET /api/scene`) that gives the live `seq` the
/// scene's twins are as of. It is sent only when every write in the scene has gone out to
/// viewers, so a viewer can greet the live link with `since_seq` set to it and be caught up
/// with deltas instead of taking a snapshot of every twin again.
pub const SCENE_SEQ_HEADER: &str = "x-twinscene-seq";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The whole state as of `seq`.
    Snapshot { protocol: u32, seq: u64, twins: Vec<Twin>, relationships: Vec<Relationship> },
    /// Changes that took the state from `base` to `seq`, in the order they were applied. `base`
    /// is left out when it is `seq - 1`; a delta that coalesces several writes names it.
    Delta {
        seq: u64,
        changes: Vec<TwinChange>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<u64>,
    },
    /// Nothing changed; the connection and the server are alive at `seq`.
    Heartbeat { seq: u64 },
    /// The server refused something the viewer sent.
    Error { message: String },
}

impl ServerMessage {
    /// Reads a message as the server writes it. A delta (the bulk of the stream) whose text
    /// starts with its tag, as the server's do, is read straight into its fields: serde reads an
    /// internally tagged enum by first copying the whole message into a generic tree to find the
    /// tag, which for a delta of 10^4 changes cost more than applying them (serde does the same
    /// for each patch operation's `op`: `patch::read_patch` does not). Anything else,
    /// including a delta written in another key order, goes the general way. Every message
    /// serde reads is read to the same value (a test and the `live_message` fuzz target compare
    /// them); the fast path also takes a delta that repeats its `type`, which serde refuses.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct DeltaFields {
            seq: u64,
            changes: Vec<ChangeFields>,
            #[serde(default)]
            base: Option<u64>,
        }
        #[derive(Deserialize)]
        struct ChangeFields {
            twin: String,
            #[serde(deserialize_with = "crate::patch::read_patch")]
            patch: Patch,
            ts: String,
        }
        let rest = text.trim_start().strip_prefix('{').map(str::trim_start);
        let tagged_delta = rest.and_then(|rest| rest.strip_prefix(r#""type""#)).is_some_and(|rest| {
            let value = rest.trim_start().strip_prefix(':').map(str::trim_start);
            value
                .and_then(|value| value.strip_prefix(r#""delta""#))
                .is_some_and(|after| after.trim_start().starts_with([',', '}']))
        });
        if tagged_delta && let Ok(DeltaFields { seq, changes, base }) = serde_json::from_str(text) {
            let changes =
                changes.into_iter().map(|ChangeFields { twin, patch, ts }| TwinChange { twin, patch, ts });
            return Ok(Self::Delta { seq, changes: changes.collect(), base });
        }
        serde_json::from_str(text)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        protocol: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scene: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The server's messages in binary frames (the same JSON as UTF-8 bytes). A browser
        /// hands a binary frame over as bytes, which reach wasm memory in one copy; a text
        /// frame is a JS string, converted character by character (10–13 ms of a 10,000-change
        /// delta at 10^6 elements).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binary: bool,
    },
}

/// One accepted write to one twin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinChange {
    pub twin: String,
    pub patch: Patch,
    /// When the server accepted the write (RFC 3339).
    pub ts: String,
}

/// What a viewer should do with an incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequencing {
    /// Apply it: it is the next state.
    Apply,
    /// Already applied (a duplicate or an old message): ignore it.
    Stale,
    /// One or more deltas were missed, or no snapshot was seen yet: ask for a snapshot.
    Resync,
}

/// Tracks the last applied `seq` so that every delta is applied once, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceTracker {
    last_applied: Option<u64>,
}

impl SequenceTracker {
    /// A tracker for state that is already as of `seq` (a scene served with
    /// [`SCENE_SEQ_HEADER`]): the next message it applies is a delta from `seq`.
    pub fn resuming_from(seq: u64) -> Self {
        Self { last_applied: Some(seq) }
    }

    pub fn last_applied(&self) -> Option<u64> {
        self.last_applied
    }

    /// Decides about `message` and, when it is to be applied, records its `seq` as applied.
    pub fn accept(&mut self, message: &ServerMessage) -> Sequencing {
        match (message, self.last_applied) {
            (ServerMessage::Snapshot { seq, .. }, _) => {
                self.last_applied = Some(*seq);
                Sequencing::Apply
            }
            (ServerMessage::Delta { .. }, None) => Sequencing::Resync,
            (ServerMessage::Delta { seq, .. }, Some(last)) if *seq <= last => Sequencing::Stale,
            (ServerMessage::Delta { seq, base, .. }, Some(last))
                if base.unwrap_or(seq.saturating_sub(1)) == last =>
            {
                self.last_applied = Some(*seq);
                Sequencing::Apply
            }
            // A gap, or a delta that starts before the last applied seq and ends after it.
            (ServerMessage::Delta { .. }, Some(_)) => Sequencing::Resync,
            (ServerMessage::Heartbeat { seq }, Some(last)) if *seq > last => Sequencing::Resync,
            (ServerMessage::Heartbeat { .. } | ServerMessage::Error { .. }, _) => Sequencing::Stale,
        }
    }

    /// Forgets the position, e.g. after the connection dropped, so that only a snapshot is
    /// accepted next.
    pub fn reset(&mut self) {
        self.last_applied = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: u64) -> ServerMessage {
        ServerMessage::Delta { seq, changes: vec![], base: None }
    }

    fn delta_from(base: u64, seq: u64) -> ServerMessage {
        ServerMessage::Delta { seq, changes: vec![], base: Some(base) }
    }

    fn snapshot(seq: u64) -> ServerMessage {
        ServerMessage::Snapshot { protocol: PROTOCOL_VERSION, seq, twins: vec![], relationships: vec![] }
    }

    #[test]
    fn deltas_apply_once_in_order_after_a_snapshot() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(tracker.accept(&delta(1)), Sequencing::Resync);
        assert_eq!(tracker.accept(&snapshot(4)), Sequencing::Apply);
        assert_eq!(tracker.accept(&delta(4)), Sequencing::Stale);
        assert_eq!(tracker.accept(&delta(5)), Sequencing::Apply);
        assert_eq!(tracker.accept(&delta(5)), Sequencing::Stale);
        assert_eq!(tracker.accept(&delta(7)), Sequencing::Resync);
        assert_eq!(tracker.last_applied(), Some(5));
        assert_eq!(tracker.accept(&ServerMessage::Heartbeat { seq: 5 }), Sequencing::Stale);
        assert_eq!(tracker.accept(&ServerMessage::Heartbeat { seq: 6 }), Sequencing::Resync);
    }

    #[test]
    fn messages_read_the_same_by_the_delta_fast_path_and_by_serde() {
        let delta = ServerMessage::Delta {
            seq: 12,
            base: Some(9),
            changes: vec![TwinChange {
                twin: "Room-1".into(),
                patch: serde_json::from_str(r#"[{"op":"replace","path":"/t","value":{"a":[1,2]}}]"#).unwrap(),
                ts: "2026-12-07T10:00:00.000Z".into(),
            }],
        };
        let written = serde_json::to_string(&delta).unwrap();
        assert!(written.starts_with(r#"{"type":"delta""#), "{written}");
        let texts = [
            written.clone(),
            written.replace(r#","base":9"#, ""),
            // Another key order, spaces, the tag last: the general path.
            r#" { "seq": 3, "changes": [], "type" : "delta" } "#.into(),
            r#"{ "type" : "delta" , "seq": 3, "changes": []}"#.into(),
            r#"{"type":"heartbeat","seq":4}"#.into(),
            r#"{"type":"error","message":"no"}"#.into(),
            serde_json::to_string(&snapshot(5)).unwrap(),
            // Every operation, read by `patch::read_patch`: values of every kind (null too),
            // escaped paths and strings, fields an operation does not use, fields in any order.
            r#"{"type":"delta","seq":6,"changes":[{"twin":"R\"1","ts":"t","patch":[
                {"op":"add","path":"/a~1b","value":null},{"path":"/n","op":"replace","value":-1.5e3},
                {"op":"remove","path":"/c","value":1},{"op":"move","from":"/d","path":"/e"},
                {"op":"copy","from":"/f~0","path":"/g","extra":[1]},{"op":"test","path":"/h","value":{"x":[true]}},
                {"op":"replace","path":"/s","value":"\u00e9\n"}]}]}"#.into(),
            // Refused both ways: an operation without what it needs, an unknown one, a bad path.
            r#"{"type":"delta","seq":7,"changes":[{"twin":"R","ts":"t","patch":[{"op":"add","path":"/a"}]}]}"#.into(),
            r#"{"type":"delta","seq":7,"changes":[{"twin":"R","ts":"t","patch":[{"op":"move","path":"/a"}]}]}"#.into(),
            r#"{"type":"delta","seq":7,"changes":[{"twin":"R","ts":"t","patch":[{"op":"jump","path":"/a"}]}]}"#.into(),
            r#"{"type":"delta","seq":7,"changes":[{"twin":"R","ts":"t","patch":[{"op":"remove","path":"a"}]}]}"#.into(),
            r#"{"type":"delta","seq":7,"changes":[{"twin":"R","ts":"t","patch":[{"op":"remove"}]}]}"#.into(),
            // A repeated field: whatever serde makes of it, both ways agree.
            r#"{"type":"delta","seq":8,"changes":[{"twin":"R","ts":"t","patch":[{"op":"remove","op":"add","path":"/a","value":1}]}]}"#.into(),
            // Refused both ways: a field of the wrong type, a tag that only starts like delta.
            r#"{"type":"delta","seq":"x","changes":[]}"#.into(),
            r#"{"type":"deltas","seq":1,"changes":[]}"#.into(),
            r#"{"type":"delta","seq":1}"#.into(),
            "not json".into(),
        ];
        for text in &texts {
            let general = serde_json::from_str::<ServerMessage>(text).map_err(|e| e.to_string());
            let fast = ServerMessage::from_json(text).map_err(|e| e.to_string());
            assert_eq!(fast.is_ok(), general.is_ok(), "{text}: {fast:?} / {general:?}");
            assert_eq!(fast.ok(), general.ok(), "{text}");
        }
        assert_eq!(ServerMessage::from_json(&written).unwrap(), delta);
    }

    #[test]
    fn a_tracker_resuming_from_a_scene_applies_the_next_delta_only() {
        let mut tracker = SequenceTracker::resuming_from(9);
        assert_eq!(tracker.accept(&delta(9)), Sequencing::Stale);
        assert_eq!(tracker.accept(&ServerMessage::Heartbeat { seq: 9 }), Sequencing::Stale);
        assert_eq!(tracker.accept(&delta(11)), Sequencing::Resync);
        assert_eq!(tracker.accept(&delta(10)), Sequencing::Apply);
        assert_eq!(tracker.last_applied(), Some(10));
    }

    #[test]
    fn coalesced_deltas_apply_from_their_base() {
        let mut tracker = SequenceTracker::default();
        assert_eq!(tracker.accept(&snapshot(10)), Sequencing::Apply);
        assert_eq!(tracker.accept(&delta_from(10, 14)), Sequencing::Apply);
        assert_eq!(tracker.accept(&delta_from(12, 14)), Sequencing::Stale);
        assert_eq!(tracker.accept(&delta_from(12, 16)), Sequencing::Resync);
        assert_eq!(tracker.accept(&delta_from(15, 16)), Sequencing::Resync);
        assert_eq!(tracker.accept(&delta(15)), Sequencing::Apply);
        assert_eq!(tracker.last_applied(), Some(15));
    }

    #[test]
    fn messages_use_documented_json_shape() {
        let text = r#"{"type":"delta","seq":3,"changes":[{"twin":"r1","patch":[{"op":"replace","path":"/temperature","value":22}],"ts":"2026-01-01T00:00:00Z"}]}"#;
        let message: ServerMessage = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&message).unwrap(), text);
        let text = r#"{"type":"delta","seq":9,"changes":[],"base":3}"#;
        let message: ServerMessage = serde_json::from_str(text).unwrap();
        assert_eq!(message, ServerMessage::Delta { seq: 9, changes: vec![], base: Some(3) });
        assert_eq!(serde_json::to_string(&message).unwrap(), text);
        let hello: ClientMessage = serde_json::from_str(r#"{"type":"hello","protocol":1}"#).unwrap();
        assert_eq!(
            hello,
            ClientMessage::Hello { protocol: 1, scene: None, since_seq: None, token: None, binary: false }
        );
    }
}

/// Delays between reconnection attempts: doubling from one second up to half a minute, each
/// spread by jitter so that many viewers dropped at once do not return at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReconnectBackoff {
    failures: u32,
}

impl ReconnectBackoff {
    const FIRST_MS: f64 = 1_000.0;
    const MAX_MS: f64 = 30_000.0;

    /// The delay before the next attempt, in milliseconds. `jitter` is a random number in
    /// [0, 1); the delay is spread over 50–100 % of the nominal value.
    pub fn next_delay_ms(&mut self, jitter: f64) -> u32 {
        let nominal = (Self::FIRST_MS * 2f64.powi(self.failures.min(16) as i32)).min(Self::MAX_MS);
        self.failures = self.failures.saturating_add(1);
        (nominal * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u32
    }

    /// A connection succeeded: start again from the shortest delay next time.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::ReconnectBackoff;

    #[test]
    fn delays_double_up_to_a_cap_and_reset() {
        let mut backoff = ReconnectBackoff::default();
        let delays: Vec<u32> = (0..8).map(|_| backoff.next_delay_ms(1.0)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
        backoff.reset();
        assert_eq!(backoff.next_delay_ms(0.0), 500);
    }
}
