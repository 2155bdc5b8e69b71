//! The live link to a twinscene server: a connection task (platform-specific, in the
//! submodules) delivers raw messages; this plugin applies them to the twin runtime exactly once
//! and in order (core's `SequenceTracker`), asks for a snapshot on any gap, and keeps the
//! link's status for the page.

use bevy::prelude::*;
use crossbeam_channel::Receiver;
use futures_channel::mpsc::UnboundedSender;
use twinscene_core::live::{ClientMessage, PROTOCOL_VERSION, SequenceTracker, Sequencing, ServerMessage};

use crate::ViewerConfig;
use crate::cpu_timings::{CpuTimings, elapsed_ms};
use crate::twin_state::{ElementStyleChanged, TwinRuntime, announce};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(not(target_arch = "wasm32"))]
use native::spawn_connection;
#[cfg(target_arch = "wasm32")]
use web::spawn_connection;

/// What the connection task reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected; the viewer says `hello` next.
    Connected,
    /// A text frame from the server.
    Message(String),
    /// The connection failed or closed; the task retries after `retry_in_ms`.
    Disconnected { reason: String, retry_in_ms: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveStatus {
    /// No live endpoint configured: the scene's own twin state is shown.
    Off,
    /// Connecting, or connected and waiting for the snapshot.
    Connecting,
    /// Snapshot applied; deltas flow.
    Live,
    /// Not connected; retrying.
    Offline,
}

impl LiveLink {
    /// The scene came from `scene_url` as of live seq `seq`: when the live link goes to the
    /// same server, its first hello asks for the changes after `seq` instead of a snapshot of
    /// every twin again (at 10^5 twins, tens of MB and a rebuilt runtime). Another server's
    /// seqs mean nothing here.
    pub fn resume_from_scene(&mut self, seq: u64, scene_url: &str, live_url: &str) {
        if same_server(scene_url, live_url) {
            self.sequence = SequenceTracker::resuming_from(seq);
        }
    }

    fn send(&self, message: ClientMessage) {
        if let Some((_, commands)) = &self.connection {
            let _ = commands.unbounded_send(message);
        }
    }
}

impl LiveStatus {
    pub fn name(self) -> &'static str {
        match self {
            LiveStatus::Off => "off",
            LiveStatus::Connecting => "connecting",
            LiveStatus::Live => "live",
            LiveStatus::Offline => "offline",
        }
    }
}

/// The live link's state. `status` and `sequence` are for display and tests.
#[derive(Resource)]
pub struct LiveLink {
    pub status: LiveStatus,
    pub sequence: SequenceTracker,
    /// Why the link is offline, when it is.
    pub last_error: Option<String>,
    /// When offline: milliseconds from the disconnect until the next attempt.
    pub retry_in_ms: Option<u32>,
    connection: Option<(Receiver<LinkEvent>, UnboundedSender<ClientMessage>)>,
    token: Option<String>,
}

/// Whether a server message shows that the server accepted the session (state, catch-up or
/// "in sync"), read without parsing the rest of it. The connection tasks use it to tell a
/// healthy session from one the server refuses, so that refusals back off instead of retrying
/// every second.
pub fn is_welcome(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    serde_json::from_str::<Kind>(text)
        .is_ok_and(|message| matches!(message.kind.as_ref(), "snapshot" | "delta" | "heartbeat"))
}

/// Whether two absolute URLs (`http://host:port/…`, `ws://host:port/…`) name the same host
/// and port, whatever their schemes (a page's scene over https goes with its wss live link).
fn same_server(a: &str, b: &str) -> bool {
    fn host_and_port(url: &str) -> Option<(&str, Option<&str>, bool)> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let secure = matches!(scheme.to_ascii_lowercase().as_str(), "https" | "wss");
        match authority.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())) {
            Some((host, port)) => Some((host, Some(port), secure)),
            None => Some((authority, None, secure)),
        }
    }
    let default_port = |secure: bool| if secure { "443" } else { "80" };
    match (host_and_port(a), host_and_port(b)) {
        (Some((host_a, port_a, secure_a)), Some((host_b, port_b, secure_b))) => {
            host_a.eq_ignore_ascii_case(host_b)
                && port_a.unwrap_or(default_port(secure_a)) == port_b.unwrap_or(default_port(secure_b))
        }
        _ => false,
    }
}

/// The greeting: asks for the changes after `since_seq`, or for a snapshot without one.
pub fn hello_since(token: Option<String>, since_seq: Option<u64>) -> ClientMessage {
    // Binary frames in the browser (see `ClientMessage::Hello`); the desktop's socket reads text
    // as cheaply.
    let binary = cfg!(target_arch = "wasm32");
    ClientMessage::Hello { protocol: PROTOCOL_VERSION, scene: None, since_seq, token, binary }
}

pub(super) fn plugin(app: &mut App) {
    app.insert_resource(LiveLink {
        status: LiveStatus::Off,
        sequence: SequenceTracker::default(),
        last_error: None,
        retry_in_ms: None,
        connection: None,
        token: None,
    })
    .add_systems(
        Update,
        (
            connect.run_if(resource_added::<TwinRuntime>),
            apply_live_messages.run_if(resource_exists::<TwinRuntime>),
        )
            .chain(),
    );
}

/// Opens the link once the scene is known, so that the snapshot has a runtime to land in. The
/// desktop viewer started without `--live` follows the scene's own `live` endpoint (a full
/// `ws://` URL); in the browser the page decides (the element's `live` attribute).
fn connect(config: Res<ViewerConfig>, runtime: Res<TwinRuntime>, mut link: ResMut<LiveLink>) {
    let scene_live = runtime.scene().live.clone().filter(|url| {
        !cfg!(target_arch = "wasm32") && (url.starts_with("ws://") || url.starts_with("wss://"))
    });
    let Some(url) = config.live_url.clone().or(scene_live) else { return };
    let (events_in, events_out) = crossbeam_channel::unbounded();
    let (commands_in, commands_out) = futures_channel::mpsc::unbounded();
    spawn_connection(url, events_in, commands_out);
    link.connection = Some((events_out, commands_in));
    link.token = config.token.clone();
    link.status = LiveStatus::Connecting;
}

fn apply_live_messages(
    mut link: ResMut<LiveLink>,
    mut runtime: ResMut<TwinRuntime>,
    mut style_changes: MessageWriter<ElementStyleChanged>,
    mut timings: ResMut<CpuTimings>,
) {
    let Some((events, _)) = &link.connection else { return };
    let events: Vec<LinkEvent> = events.try_iter().collect();
    let start = bevy::platform::time::Instant::now();
    let mut changes = 0;
    for event in events {
        match event {
            LinkEvent::Connected => {
                // Ask to catch up from what was applied before the drop: the server answers
                // with the missed deltas, "in sync", or a snapshot when it cannot.
                let since_seq = link.sequence.last_applied();
                link.send(hello_since(link.token.clone(), since_seq));
                link.status = LiveStatus::Connecting;
                link.retry_in_ms = None;
            }
            LinkEvent::Disconnected { reason, retry_in_ms } => {
                warn!("live link to the server lost: {reason}; retrying in {retry_in_ms} ms");
                link.status = LiveStatus::Offline;
                link.last_error = Some(reason);
                link.retry_in_ms = Some(retry_in_ms);
            }
            LinkEvent::Message(text) => match ServerMessage::from_json(&text) {
                Ok(message) => {
                    changes += match &message {
                        ServerMessage::Delta { changes, .. } => changes.len(),
                        ServerMessage::Snapshot { twins, .. } => twins.len(),
                        _ => 0,
                    };
                    apply_server_message(message, &mut link, &mut runtime, &mut style_changes);
                }
                Err(error) => warn!("ignoring a live message that is not understood: {error}"),
            },
        }
    }
    if changes > 0 {
        timings.live_changes += changes as u64;
        timings.live_frames += 1;
        timings.live_ms += elapsed_ms(start);
    }
}

fn apply_server_message(
    message: ServerMessage,
    link: &mut LiveLink,
    runtime: &mut TwinRuntime,
    style_changes: &mut MessageWriter<ElementStyleChanged>,
) {
    let in_sync =
        matches!(message, ServerMessage::Heartbeat { seq } if Some(seq) == link.sequence.last_applied());
    match link.sequence.accept(&message) {
        Sequencing::Stale if in_sync && link.status == LiveStatus::Connecting => {
            // The answer to a catch-up hello when nothing was missed.
            link.status = LiveStatus::Live;
            link.last_error = None;
        }
        Sequencing::Stale => {
            if let ServerMessage::Error { message } = message {
                warn!("the live server says: {message}");
                link.last_error = Some(message);
            }
        }
        Sequencing::Resync => request_snapshot(link, "a live update was missed"),
        Sequencing::Apply => match message {
            ServerMessage::Snapshot { twins, relationships, .. } => {
                announce(runtime.replace_twins(twins, relationships), style_changes);
                link.status = LiveStatus::Live;
                link.last_error = None;
            }
            ServerMessage::Delta { changes, .. } => {
                link.status = LiveStatus::Live;
                link.last_error = None;
                // One buffer for the whole delta: one allocation, one batch of messages.
                let mut changed = Vec::new();
                for change in changes {
                    if let Err(error) =
                        runtime.apply_patch_into(&change.twin, &change.patch, &change.ts, &mut changed)
                    {
                        announce(changed, style_changes);
                        // The server accepted this patch, so our copy has diverged: start over.
                        return request_snapshot(link, &error.to_string());
                    }
                }
                announce(changed, style_changes);
            }
            ServerMessage::Heartbeat { .. } | ServerMessage::Error { .. } => {}
        },
    }
}

fn request_snapshot(link: &mut LiveLink, reason: &str) {
    warn!("resynchronizing with the live server: {reason}");
    link.sequence.reset();
    link.status = LiveStatus::Connecting;
    if let Some((_, commands)) = &link.connection {
        let _ = commands.unbounded_send(hello_since(link.token.clone(), None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_and_a_live_link_are_from_the_same_server_by_host_and_port() {
        let scene = "http://plant.example:8716/api/scene";
        assert!(same_server(scene, "ws://plant.example:8716/live"));
        assert!(same_server("https://Plant.example/api/scene", "wss://plant.example:443/live"));
        assert!(!same_server(scene, "ws://plant.example:8717/live"));
        assert!(!same_server(scene, "ws://other.example:8716/live"));
        assert!(!same_server("http://plant.example/api/scene", "wss://plant.example/live"));
        assert!(!same_server("/api/scene", "ws://plant.example:8716/live"));
    }
}
