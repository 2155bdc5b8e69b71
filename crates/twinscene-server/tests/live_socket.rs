//! The `/live` WebSocket: snapshot, batched deltas, `since_seq` catch-up, coalescing for slow
//! viewers, heartbeats, and protocol errors.

mod common;

use std::time::Duration;

use common::{
    Mirror, Viewer, demo_state, demo_state_configured, demo_state_with, patch, serve, server_twins,
    set_temperature,
};
use serde_json::json;
use twinscene_core::live::PROTOCOL_VERSION;
use twinscene_server::{LiveTimings, StaticDirs, simulator};

const SET_31: &str = r#"[{"op":"replace","path":"/temperature","value":31}]"#;
const SET_12: &str = r#"[{"op":"replace","path":"/temperature","value":12}]"#;

fn temperature_in(snapshot: &serde_json::Value, id: &str) -> serde_json::Value {
    let twins = snapshot["twins"].as_array().expect("twins");
    let twin = twins.iter().find(|twin| twin["$dtId"] == id).expect("twin in snapshot");
    twin["temperature"].clone()
}

fn seq(message: &serde_json::Value) -> u64 {
    message["seq"].as_u64().expect("seq")
}

#[tokio::test]
async fn hello_gets_a_snapshot_then_each_patch_is_the_next_delta() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    let snapshot = viewer.hello().await;
    let start = seq(&snapshot);
    assert_eq!(snapshot["protocol"], PROTOCOL_VERSION);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 20.7);
    assert!(snapshot["relationships"].is_array());

    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    let delta = viewer.next_change().await;
    assert_eq!(delta["type"], "delta");
    assert_eq!(seq(&delta), start + 1);
    assert!(delta.get("base").is_none(), "one step needs no base: {delta}");
    let change = &delta["changes"][0];
    assert_eq!(change["twin"], "Room-A101");
    assert_eq!(change["patch"], json!([{"op": "replace", "path": "/temperature", "value": 31}]));
    assert!(change["ts"].as_str().unwrap().ends_with('Z'));

    assert_eq!(patch(&base, "Room-A101", SET_12).await.status(), 204);
    let delta = viewer.next_change().await;
    assert_eq!((delta["type"].as_str(), seq(&delta)), (Some("delta"), start + 2));
}

#[tokio::test]
async fn a_viewer_that_asks_for_binary_frames_gets_the_same_json_in_them() {
    use tokio_tungstenite::tungstenite::Message;
    let binary_json = |frame: Option<Message>| match frame {
        Some(Message::Binary(bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON"),
        other => panic!("expected a binary frame, got {other:?}"),
    };
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "binary": true}).to_string()).await;
    let snapshot = binary_json(viewer.next_frame().await);
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 20.7);
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    let delta = loop {
        let message = binary_json(viewer.next_frame().await);
        if message["type"] != "heartbeat" {
            break message;
        }
    };
    assert_eq!((delta["type"].as_str(), seq(&delta)), (Some("delta"), seq(&snapshot) + 1));
    assert_eq!(delta["changes"][0]["twin"], "Room-A101");
    // Errors stay text, whatever the viewer asked for.
    viewer.send("{\"type\": \"nonsense\"}").await;
    let error = loop {
        match viewer.next_frame().await {
            Some(Message::Text(text)) => {
                break serde_json::from_str::<serde_json::Value>(&text).expect("JSON");
            }
            heartbeat @ Some(Message::Binary(_)) => assert_eq!(binary_json(heartbeat)["type"], "heartbeat"),
            other => panic!("expected the error, got {other:?}"),
        }
    };
    assert_eq!(error["type"], "error", "{error}");

    // A viewer that does not ask gets text (the other tests read only text).
    let mut texts = Viewer::connect(&base).await;
    assert_eq!(texts.hello().await["type"], "snapshot");
}

#[tokio::test]
async fn a_later_viewer_starts_from_the_current_state() {
    let base = serve(demo_state()).await;
    let mut first = Viewer::connect(&base).await;
    let start = seq(&first.hello().await);
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    let mut viewer = Viewer::connect(&base).await;
    let snapshot = viewer.hello().await;
    assert_eq!(seq(&snapshot), start + 1);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 31);

    assert_eq!(patch(&base, "Room-A101", SET_12).await.status(), 204);
    assert_eq!(seq(&viewer.next_change().await), start + 2);
}

#[tokio::test]
async fn refused_patches_send_no_delta() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    let start = seq(&viewer.hello().await);
    assert_eq!(patch(&base, "Room-A101", r#"[{"op":"remove","path":"/nothing"}]"#).await.status(), 400);
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    assert_eq!(seq(&viewer.next_change().await), start + 1);
}

#[tokio::test]
async fn a_second_hello_gets_a_new_snapshot() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    let start = seq(&viewer.hello().await);
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    assert_eq!(seq(&viewer.next_change().await), start + 1);
    let snapshot = viewer.hello().await;
    assert_eq!(seq(&snapshot), start + 1);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 31);
}

#[tokio::test]
async fn another_protocol_version_is_refused_and_closed() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send(r#"{"type":"hello","protocol":1}"#).await;
    let error = viewer.next().await;
    assert_eq!(
        error,
        json!({"type": "error", "message": "protocol version 1 is not supported; this server speaks 2"})
    );
    viewer.closed().await;
}

#[tokio::test]
async fn malformed_messages_get_an_error_and_the_connection_stays_open() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send("{not json").await;
    let error = viewer.next().await;
    assert_eq!(error["type"], "error");
    assert!(error["message"].as_str().unwrap().contains("line 1"), "{error}");
    viewer.send(r#"{"type":"bye"}"#).await;
    assert_eq!(viewer.next().await["type"], "error");
    assert_eq!(viewer.hello().await["type"], "snapshot");
}

#[tokio::test]
async fn idle_viewers_get_heartbeats_at_the_current_seq() {
    let timings = LiveTimings { heartbeat: Duration::from_millis(50), ..LiveTimings::default() };
    let base = serve(demo_state_with(StaticDirs::default(), timings)).await;
    let mut viewer = Viewer::connect(&base).await;
    let start = seq(&viewer.hello().await);
    assert_eq!(viewer.next().await, json!({"type": "heartbeat", "seq": start}));
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    // Heartbeats may come before the delta, but never one ahead of what this viewer was sent.
    loop {
        let message = viewer.next().await;
        match message["type"].as_str() {
            Some("heartbeat") => assert_eq!(seq(&message), start),
            Some("delta") => break assert_eq!(seq(&message), start + 1),
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(viewer.next().await, json!({"type": "heartbeat", "seq": start + 1}));
}

#[tokio::test]
async fn a_viewer_that_never_says_hello_is_closed() {
    let timings = LiveTimings { hello_timeout: Duration::from_millis(100), ..LiveTimings::default() };
    let base = serve(demo_state_with(StaticDirs::default(), timings)).await;
    let mut viewer = Viewer::connect(&base).await;
    assert_eq!(viewer.closed().await.as_deref(), Some("no hello received in time"));
}

#[tokio::test]
async fn the_simulator_writes_temperatures_as_deltas() {
    let state = demo_state();
    let base = serve(state.clone()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.hello().await;
    let simulation = simulator::spawn(state, Duration::from_millis(20));
    let delta = viewer.next_change().await;
    simulation.abort();
    assert_eq!(delta["type"], "delta");
    let operation = &delta["changes"][0]["patch"][0];
    assert_eq!(
        (operation["op"].as_str(), operation["path"].as_str()),
        (Some("replace"), Some("/temperature"))
    );
    let value = operation["value"].as_f64().unwrap();
    assert!((5.0..=40.0).contains(&value), "{value}");
}

#[tokio::test]
async fn viewers_joining_during_writes_end_with_the_servers_state_and_no_gap() {
    const WRITES: u64 = 60;
    let base = serve(demo_state()).await;
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            for i in 0..WRITES {
                set_temperature(&base, "Room-A101", i as f64).await;
            }
        })
    };
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(Mirror::connect(&base, None).await);
    }
    writer.await.unwrap();
    let expected = server_twins(&base, None).await;
    for mut viewer in viewers {
        viewer.converge(&expected).await;
        assert_eq!(viewer.snapshots, 1, "every delta applied without a resync");
    }
}

#[tokio::test]
async fn writes_within_one_tick_go_out_as_one_batch_of_latest_values() {
    let state = demo_state_configured("[live]\ntick = \"2s\"\nmax_changes = 5");
    let base = serve(state).await;
    let mut viewer = Viewer::connect(&base).await;
    let start = seq(&viewer.hello().await);
    for value in 0..5 {
        set_temperature(&base, "Room-A101", f64::from(value)).await;
    }
    // Five changes fill a batch, so it goes out before the tick ends.
    let delta = viewer.next_change().await;
    assert_eq!(seq(&delta), start + 5, "{delta}");
    assert_eq!(delta["base"], start, "{delta}");
    assert_eq!(
        delta["changes"][0]["patch"],
        json!([{"op": "replace", "path": "/temperature", "value": 4.0}]),
        "one change per twin, with its latest value: {delta}"
    );
}

#[tokio::test]
async fn since_seq_catches_a_returning_viewer_up_with_deltas() {
    let base = serve(demo_state()).await;
    let mut first = Mirror::connect(&base, None).await;
    let snapshot = first.step().await;
    let at = first.tracker.last_applied().expect("snapshot applied");
    assert!(matches!(snapshot, twinscene_core::live::ServerMessage::Snapshot { .. }));
    drop(first.viewer);
    // Stays connected to see when every write has been published.
    let mut watcher = Mirror::connect(&base, None).await;
    watcher.step().await;

    for value in [25.0, 26.0, 27.0] {
        set_temperature(&base, "Room-A101", value).await;
    }
    set_temperature(&base, "Room-B201", 30.0).await;
    watcher.sync_to(at + 4).await;
    let mut returning = Viewer::connect(&base).await;
    returning
        .send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "since_seq": at}).to_string())
        .await;
    let delta = returning.next_change().await;
    assert_eq!(delta["type"], "delta", "caught up without a snapshot: {delta}");
    assert_eq!(delta["base"], at);
    assert_eq!(seq(&delta), at + 4);
    // Coalesced: the latest value per twin property, nothing superseded.
    let changes = delta["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{delta}");
    assert_eq!(changes[0]["patch"], json!([{"op": "replace", "path": "/temperature", "value": 27.0}]));

    // A viewer already up to date gets a heartbeat at its seq; a seq from elsewhere a snapshot.
    let mut current = Viewer::connect(&base).await;
    current
        .send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "since_seq": at + 4}).to_string())
        .await;
    assert_eq!(current.next().await, json!({"type": "heartbeat", "seq": at + 4}));
    for foreign in [0, at + 100] {
        let mut stranger = Viewer::connect(&base).await;
        stranger
            .send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "since_seq": foreign}).to_string())
            .await;
        assert_eq!(stranger.next().await["type"], "snapshot");
    }
}

#[tokio::test]
async fn a_viewer_beyond_the_ring_gets_a_snapshot() {
    let base = serve(demo_state_configured("[live]\nring_changes = 2\nmax_changes = 1")).await;
    let mut viewer = Viewer::connect(&base).await;
    let at = seq(&viewer.hello().await);
    drop(viewer);
    let mut watcher = Mirror::connect(&base, None).await;
    watcher.step().await;
    for value in 0..5 {
        set_temperature(&base, "Room-A101", f64::from(value)).await;
    }
    watcher.sync_to(at + 5).await;
    let mut returning = Viewer::connect(&base).await;
    returning
        .send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "since_seq": at}).to_string())
        .await;
    let snapshot = returning.next().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 4.0);
}

#[tokio::test]
async fn a_viewer_that_stops_reading_gets_coalesced_latest_values_not_a_queue() {
    const WRITES: usize = 400;
    let base = serve(demo_state_configured("[live]\nmax_changes = 1")).await;
    let mut slow = Mirror::connect(&base, None).await;
    slow.step().await;
    // Large values fill the socket buffers quickly while this viewer reads nothing.
    let filler = "x".repeat(64 * 1024);
    for i in 0..WRITES {
        let body = json!([{"op": "add", "path": "/note", "value": format!("{i}{filler}")}]).to_string();
        assert_eq!(patch(&base, "Room-A101", &body).await.status(), 204);
    }
    let expected = server_twins(&base, None).await;
    slow.converge(&expected).await;
    assert_eq!(slow.snapshots, 1, "no resync was needed");
    assert!(slow.changes < WRITES, "{} changes for {WRITES} writes: nothing was coalesced", slow.changes);
}

#[tokio::test]
async fn a_viewer_message_larger_than_one_socket_read_is_read_whole() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    // 48 KiB of JSON whitespace: within the 64 KiB message limit, a dozen reads of the socket.
    let padding = " ".repeat(48 * 1024);
    viewer
        .send(&format!(r#"{{"type": "hello", "protocol": {PROTOCOL_VERSION},{padding}"scene": null}}"#))
        .await;
    let snapshot = viewer.next().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
}
