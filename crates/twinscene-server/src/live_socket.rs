//! The `/live` WebSocket: after the viewer's hello, a snapshot (or catch-up from `since_seq`),
//! then batched deltas from the feed, coalesced for a viewer that cannot keep up; heartbeats when idle.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use tokio::time::{self, Instant, MissedTickBehavior};
use twinscene_core::live::{ClientMessage, PROTOCOL_VERSION, ServerMessage, TwinChange};

use crate::api_error::ApiError;
use crate::auth::Grant;
use crate::feed::{Pull, coalesce};
use crate::metrics::{self as m, refused};
use crate::state::{AppState, RateBucket};

/// Up to this many pending batches go out as they are; more are coalesced into one delta.
const SHARED_BATCHES: usize = 8;

/// A viewer that does not take a message within this time is disconnected.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How much one read from a viewer's socket takes. Tungstenite zero-fills this much of its
/// buffer before every read, even one that finds nothing, and a viewer's task reads whenever it
/// wakes for a batch: with the default 128 KiB, zeroing took 12 % of the server's CPU at 10k
/// updates/s to 100 viewers. Viewers send a few small messages; a larger one (up to the
/// message cap) is read in several pieces.
const READ_BUFFER_BYTES: usize = 4096;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Result<Response, ApiError> {
    let slot = ConnectionSlot::take(&state)?;
    // The hard cap protects memory; messages between the limit and the cap get a clear error.
    let cap = state.config().limits.max_message_bytes.saturating_mul(2);
    let ws = ws.read_buffer_size(READ_BUFFER_BYTES).max_message_size(cap).max_frame_size(cap);
    Ok(ws.on_upgrade(move |socket| async move {
        let _slot = slot;
        if let Err(error) = serve_viewer(socket, state).await {
            tracing::debug!("live socket ended: {error}");
        }
    }))
}

/// Counts a live connection for as long as it lives.
struct ConnectionSlot(AppState);

impl ConnectionSlot {
    fn take(state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config().limits.max_connections;
        let before = state.connections().fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            state.connections().fetch_sub(1, Ordering::AcqRel);
            refused("connections");
            return Err(ApiError::Unavailable(format!("too many live connections (at most {limit})")));
        }
        metrics::gauge!(m::CONNECTIONS).increment(1.0);
        Ok(Self(state.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections().fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(m::CONNECTIONS).decrement(1.0);
    }
}

/// How a viewer a few batches behind is caught up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Catchup {
    /// Streaming: the batches as published, when there are few.
    AsPublished,
    /// A returning viewer (`since_seq`): one merged delta.
    Merged,
}

/// A viewer after its hello: what it may read and where it is in the stream.
struct Session {
    grant: Arc<Grant>,
    /// The seq of the state the viewer has.
    sent: u64,
    /// The feed has been looked at up to here (past `sent` when the changes were all hidden
    /// from this viewer).
    pulled: u64,
    /// The feed's restore count when this viewer's state was sent (see `Feed::restored`).
    restores: u64,
    /// How the viewer asked for messages: binary frames (the same JSON) or text.
    frames: Frames,
}

/// The frames a viewer's messages go out in (`binary` in its hello). Errors are always text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frames {
    Text,
    Binary,
}

async fn serve_viewer(mut socket: WebSocket, state: AppState) -> Result<(), axum::Error> {
    let timings = state.timings();
    let limits = state.config().limits.clone();
    let hello_deadline = Instant::now() + timings.hello_timeout;
    let mut heartbeat = time::interval_at(Instant::now() + timings.heartbeat, timings.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut published = state.feed().subscribe();
    let mut allowance = RateBucket::new(limits.viewer_messages_per_second);
    // None until the viewer says hello: nothing is streamed before it.
    let mut session: Option<Session> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(incoming) = incoming else { return Ok(()) };
                let text = match incoming {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Binary(_)) => {
                        send_error(&mut socket, "binary messages are not supported; send JSON text").await?;
                        continue;
                    }
                    Ok(Message::Close(_)) => return Ok(()),
                    // axum answers pings itself.
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Err(error) => {
                        refused("message_too_large_or_broken");
                        return Err(error);
                    }
                };
                if !allowance.take(limits.viewer_messages_per_second) {
                    refused("viewer_rate");
                    let message = format!(
                        "too many messages: at most {} per second; this one was ignored",
                        limits.viewer_messages_per_second
                    );
                    send_error(&mut socket, &message).await?;
                    continue;
                }
                if text.len() > limits.max_message_bytes {
                    refused("message_too_large");
                    let message = format!("message of {} bytes ignored: at most {} are accepted", text.len(), limits.max_message_bytes);
                    send_error(&mut socket, &message).await?;
                    continue;
                }
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Hello { protocol, .. }) if protocol != PROTOCOL_VERSION => {
                        let message = format!(
                            "protocol version {protocol} is not supported; this server speaks {PROTOCOL_VERSION}"
                        );
                        send_error(&mut socket, &message).await?;
                        return close(socket, "unsupported protocol version").await;
                    }
                    Ok(ClientMessage::Hello { scene, since_seq, token, binary, .. }) => {
                        let frames = if binary { Frames::Binary } else { Frames::Text };
                        let grant = match admit(&state, scene.as_deref(), token.as_deref()) {
                            Ok(grant) => grant,
                            Err(message) => {
                                send_error(&mut socket, &message).await?;
                                return close(socket, "hello refused").await;
                            }
                        };
                        // Read before the resume check: a restore after it resyncs the viewer.
                        let restores = state.feed().restore_count();
                        match since_seq.filter(|since| state.can_resume(*since)) {
                            Some(since) => {
                                let current =
                                    session.insert(Session { grant, sent: since, pulled: since, restores, frames });
                                if !forward(&mut socket, &state, current, Catchup::Merged).await? {
                                    // Nothing was missed: say so, at the viewer's seq.
                                    send(&mut socket, &ServerMessage::Heartbeat { seq: since }, frames).await?;
                                }
                            }
                            None => session = Some(send_snapshot(&mut socket, &state, grant, frames).await?),
                        }
                        heartbeat.reset();
                    }
                    Err(error) => {
                        refused("malformed");
                        send_error(&mut socket, &format!("not a twinscene client message: {error}")).await?;
                    }
                }
            }
            changed = published.changed(), if session.is_some() => {
                if changed.is_err() {
                    return close(socket, "server shutting down").await;
                }
                if let Some(current) = session.as_mut()
                    && forward(&mut socket, &state, current, Catchup::AsPublished).await?
                {
                    heartbeat.reset();
                }
            }
            _ = heartbeat.tick(), if session.is_some() => {
                let (seq, frames) = session.as_ref().map_or((0, Frames::Text), |current| (current.sent, current.frames));
                send(&mut socket, &ServerMessage::Heartbeat { seq }, frames).await?;
            }
            _ = time::sleep_until(hello_deadline), if session.is_none() => {
                return close(socket, "no hello received in time").await;
            }
        }
    }
}

/// Checks a hello's scene and token; the error is what the viewer is told.
fn admit(state: &AppState, scene: Option<&str>, token: Option<&str>) -> Result<Arc<Grant>, String> {
    if let Some(scene) = scene {
        let named = Path::new(scene).file_stem().and_then(|stem| stem.to_str());
        if named != Some(state.scene_id()) {
            return Err(format!("unknown scene {scene:?}; this server serves {:?}", state.scene_id()));
        }
    }
    let grant = state.tokens().grant(token).map_err(|error| {
        refused("unauthorized");
        error.to_string()
    })?;
    if !grant.may_open_scene(state.scene_id()) {
        refused("forbidden");
        return Err(format!("this token may not open scene {:?}", state.scene_id()));
    }
    Ok(grant)
}

/// Sends what the viewer has not seen yet: the published batches, or one merged delta (see
/// `Catchup`), or, when the ring no longer reaches back far enough or twins were created or
/// deleted, a snapshot. Returns whether anything was sent.
async fn forward(
    socket: &mut WebSocket,
    state: &AppState,
    session: &mut Session,
    catchup: Catchup,
) -> Result<bool, axum::Error> {
    if state.feed().restore_count() != session.restores {
        *session = send_snapshot(socket, state, session.grant.clone(), session.frames).await?;
        return Ok(true);
    }
    let batches = match state.feed().pull(session.pulled) {
        Pull::TooOld => {
            metrics::counter!(m::DROPS).increment(1);
            *session = send_snapshot(socket, state, session.grant.clone(), session.frames).await?;
            return Ok(true);
        }
        Pull::Batches(batches) => batches,
    };
    let (Some(first), Some(last)) = (batches.first(), batches.last()) else { return Ok(false) };
    if batches.iter().any(|batch| batch.structural) {
        *session = send_snapshot(socket, state, session.grant.clone(), session.frames).await?;
        return Ok(true);
    }
    let accepted = first.accepted;
    let newest = last.seq;
    // A viewer a few batches behind gets them as they were serialized for everyone, which
    // costs the server nothing per viewer; one further behind gets them merged into one delta,
    // which spares its bandwidth and the work of applying superseded values.
    let shared = catchup == Catchup::AsPublished
        && batches.len() <= SHARED_BATCHES
        && session.grant.reads_every_twin()
        && first.base == session.sent
        && session.sent == session.pulled;
    if shared {
        for batch in &batches {
            send_text(socket, batch.text.clone(), session.frames).await?;
            delivered(batch.changes.len(), batch.accepted);
        }
        session.sent = newest;
        session.pulled = newest;
        return Ok(true);
    }
    let after = session.pulled;
    session.pulled = newest;
    let grant = &session.grant;
    let readable: Vec<&TwinChange> = batches
        .iter()
        .flat_map(|batch| &batch.changes)
        .filter(|change| change.seq > after && grant.may_read_parts(&change.change.twin, &change.model))
        .map(|change| &change.change)
        .collect();
    if readable.is_empty() {
        return Ok(false);
    }
    let (changes, dropped) = coalesce(readable.into_iter());
    metrics::counter!(m::COALESCED).increment(dropped as u64);
    let count = changes.len();
    let base = (session.sent + 1 != newest).then_some(session.sent);
    send(socket, &ServerMessage::Delta { seq: newest, changes, base }, session.frames).await?;
    delivered(count, accepted);
    session.sent = newest;
    Ok(true)
}

fn delivered(changes: usize, accepted: std::time::Instant) {
    metrics::counter!(m::DELTAS_OUT).increment(1);
    metrics::counter!(m::UPDATES_OUT).increment(changes as u64);
    m::latency(accepted.elapsed());
}

async fn send_snapshot(
    socket: &mut WebSocket,
    state: &AppState,
    grant: Arc<Grant>,
    frames: Frames,
) -> Result<Session, axum::Error> {
    // Read first: a restore after this point resyncs the viewer again, at worst needlessly.
    let restores = state.feed().restore_count();
    let (snapshot, seq) = state.snapshot(&grant);
    send(socket, &snapshot, frames).await?;
    metrics::counter!(m::SNAPSHOTS_OUT).increment(1);
    Ok(Session { grant, sent: seq, pulled: seq, restores, frames })
}

async fn send(socket: &mut WebSocket, message: &ServerMessage, frames: Frames) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).map_err(axum::Error::new)?;
    send_text(socket, text.into(), frames).await
}

/// Sends one message (JSON) in the frames the viewer asked for; the bytes are shared, not
/// copied, either way.
async fn send_text(socket: &mut WebSocket, text: Utf8Bytes, frames: Frames) -> Result<(), axum::Error> {
    let message = match frames {
        Frames::Text => Message::Text(text),
        Frames::Binary => Message::Binary(text.into()),
    };
    match time::timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(result) => result,
        Err(_) => {
            metrics::counter!(m::DROPS).increment(1);
            Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the viewer took no message for 30 s",
            )))
        }
    }
}

async fn send_error(socket: &mut WebSocket, message: &str) -> Result<(), axum::Error> {
    send(socket, &ServerMessage::Error { message: message.to_owned() }, Frames::Text).await
}

async fn close(mut socket: WebSocket, reason: &str) -> Result<(), axum::Error> {
    let frame = CloseFrame { code: close_code::POLICY, reason: reason.into() };
    socket.send(Message::Close(Some(frame))).await
}
