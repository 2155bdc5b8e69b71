//! The `/live` WebSocket: snapshot, deltas in seq order, heartbeats, and protocol errors.

mod common;

use std::time::Duration;

use common::{Viewer, demo_state, demo_state_with, patch, serve};
use serde_json::json;
use twinscene_server::{LiveTimings, StaticDirs, simulator};

const SET_31: &str = r#"[{"op":"replace","path":"/temperature","value":31}]"#;
const SET_12: &str = r#"[{"op":"replace","path":"/temperature","value":12}]"#;

fn temperature_in(snapshot: &serde_json::Value, id: &str) -> serde_json::Value {
    let twins = snapshot["twins"].as_array().expect("twins");
    let twin = twins.iter().find(|twin| twin["$dtId"] == id).expect("twin in snapshot");
    twin["temperature"].clone()
}

#[tokio::test]
async fn hello_gets_a_snapshot_then_each_patch_is_the_next_delta() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    let snapshot = viewer.hello().await;
    assert_eq!(snapshot["seq"], 0);
    assert_eq!(snapshot["protocol"], 1);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 20.7);
    assert!(snapshot["relationships"].is_array());

    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    let delta = viewer.next().await;
    assert_eq!(delta["type"], "delta");
    assert_eq!(delta["seq"], 1);
    let change = &delta["changes"][0];
    assert_eq!(change["twin"], "Room-A101");
    assert_eq!(change["patch"], json!([{"op": "replace", "path": "/temperature", "value": 31}]));
    assert!(change["ts"].as_str().unwrap().ends_with('Z'));

    assert_eq!(patch(&base, "Room-A101", SET_12).await.status(), 204);
    let delta = viewer.next().await;
    assert_eq!((delta["type"].as_str(), delta["seq"].as_u64()), (Some("delta"), Some(2)));
}

#[tokio::test]
async fn a_later_viewer_starts_from_the_current_state() {
    let base = serve(demo_state()).await;
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    let mut viewer = Viewer::connect(&base).await;
    let snapshot = viewer.hello().await;
    assert_eq!(snapshot["seq"], 1);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 31);

    assert_eq!(patch(&base, "Room-A101", SET_12).await.status(), 204);
    assert_eq!(viewer.next().await["seq"], 2);
}

#[tokio::test]
async fn refused_patches_send_no_delta() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.hello().await;
    assert_eq!(patch(&base, "Room-A101", r#"[{"op":"remove","path":"/nothing"}]"#).await.status(), 400);
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    assert_eq!(viewer.next().await["seq"], 1);
}

#[tokio::test]
async fn a_second_hello_gets_a_new_snapshot() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.hello().await;
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    assert_eq!(viewer.next().await["seq"], 1);
    let snapshot = viewer.hello().await;
    assert_eq!(snapshot["seq"], 1);
    assert_eq!(temperature_in(&snapshot, "Room-A101"), 31);
}

#[tokio::test]
async fn another_protocol_version_is_refused_and_closed() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send(r#"{"type":"hello","protocol":2}"#).await;
    let error = viewer.next().await;
    assert_eq!(
        error,
        json!({"type": "error", "message": "protocol version 2 is not supported; this server speaks 1"})
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
    assert_eq!(viewer.hello().await["seq"], 0);
}

#[tokio::test]
async fn idle_viewers_get_heartbeats_at_the_current_seq() {
    let timings = LiveTimings { heartbeat: Duration::from_millis(50), ..LiveTimings::default() };
    let base = serve(demo_state_with(StaticDirs::default(), timings)).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.hello().await;
    assert_eq!(viewer.next().await, json!({"type": "heartbeat", "seq": 0}));
    assert_eq!(patch(&base, "Room-A101", SET_31).await.status(), 204);
    // Heartbeats may come before the delta, but never one ahead of what this viewer was sent.
    loop {
        let message = viewer.next().await;
        match message["type"].as_str() {
            Some("heartbeat") => assert_eq!(message["seq"], 0),
            Some("delta") => break assert_eq!(message["seq"], 1),
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(viewer.next().await, json!({"type": "heartbeat", "seq": 1}));
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
    let delta = viewer.next().await;
    simulation.abort();
    assert_eq!(delta["seq"], 1);
    let operation = &delta["changes"][0]["patch"][0];
    assert_eq!(
        (operation["op"].as_str(), operation["path"].as_str()),
        (Some("replace"), Some("/temperature"))
    );
    let value = operation["value"].as_f64().unwrap();
    assert!((5.0..=40.0).contains(&value), "{value}");
}

#[tokio::test]
async fn viewers_joining_during_writes_see_every_delta_once_in_order() {
    const WRITES: u64 = 60;
    let base = serve(demo_state()).await;
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            for i in 0..WRITES {
                let body = format!(r#"[{{"op":"replace","path":"/temperature","value":{i}}}]"#);
                assert_eq!(patch(&base, "Room-A101", &body).await.status(), 204);
            }
        })
    };
    let mut viewers = Vec::new();
    for _ in 0..3 {
        let mut viewer = Viewer::connect(&base).await;
        let seq = viewer.hello().await["seq"].as_u64().unwrap();
        viewers.push((viewer, seq));
    }
    for (mut viewer, mut seq) in viewers {
        while seq < WRITES {
            let delta = viewer.next().await;
            assert_eq!(delta["type"], "delta", "{delta}");
            assert_eq!(delta["seq"], seq + 1, "{delta}");
            assert_eq!(delta["changes"][0]["patch"][0]["value"], seq, "{delta}");
            seq += 1;
        }
    }
    writer.await.unwrap();
}
