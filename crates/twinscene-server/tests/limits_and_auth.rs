//! Limits (body size, JSON depth, rates, connections), `/healthz` and `/metrics`, and bearer
//! tokens scoped to scenes, twins and models.

mod common;

use common::{
    Mirror, Viewer, client, demo_state, demo_state_configured, error_body, get, patch, send, serve,
    server_twins,
};
use serde_json::{Value, json};
use twinscene_core::live::PROTOCOL_VERSION;

const TOKENS: &str = r#"
[[tokens]]
name = "kiosk-a"
secret = "secret-reader-a101"
twins = ["Room-A101"]
models = ["dtmi:twinscene:demo:Roof;1"]

[[tokens]]
name = "ingest"
secret = "secret-writer-all"
access = "write"
scenes = ["demo"]

[[tokens]]
name = "elsewhere"
secret = "secret-other-scene"
scenes = ["plant"]
"#;

const SET: &str = r#"[{"op":"replace","path":"/temperature","value":30}]"#;

async fn metric(base: &str, line_start: &str) -> f64 {
    let page = get(&format!("{base}/metrics")).await.text().await.unwrap();
    page.lines()
        .filter(|line| line.starts_with(line_start))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let base = serve(demo_state()).await;
    assert_eq!(get(&format!("{base}/healthz")).await.text().await.unwrap(), "ok\n");
    let before = metric(&base, "twinscene_updates_in_total{source=\"rest\"}").await;
    assert_eq!(patch(&base, "Room-A101", SET).await.status(), 204);
    let page = get(&format!("{base}/metrics")).await.text().await.unwrap();
    assert!(page.contains("twinscene_storage_commit_seconds_bucket"), "{page}");
    assert!(metric(&base, "twinscene_updates_in_total{source=\"rest\"}").await >= before + 1.0);
}

#[tokio::test]
async fn deep_json_and_large_bodies_are_refused_and_counted() {
    let base = serve(demo_state()).await;
    let before = metric(&base, "twinscene_refused_total{reason=\"json_depth\"}").await;
    let deep = format!(r#"[{{"op":"add","path":"/x","value":{}1{}}}]"#, "[".repeat(40), "]".repeat(40));
    let (status, code, message) = error_body(patch(&base, "Room-A101", &deep).await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(message.contains("levels deep"), "{message}");
    assert!(metric(&base, "twinscene_refused_total{reason=\"json_depth\"}").await >= before + 1.0);
    let big = format!(r#"[{{"op":"add","path":"/x","value":"{}"}}]"#, "x".repeat(2 << 20));
    assert_eq!(error_body(patch(&base, "Room-A101", &big).await).await.0, 413);
}

#[tokio::test]
async fn writes_past_the_client_rate_get_429() {
    let base = serve(demo_state_configured("[limits]\ningest_requests_per_second = 2")).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(patch(&base, "Room-A101", SET).await.status().as_u16());
    }
    assert_eq!(statuses[..4], [204, 204, 204, 204], "a burst of twice the rate passes");
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn connections_past_the_limit_are_refused() {
    let base = serve(demo_state_configured("[limits]\nmax_connections = 1")).await;
    let _first = Mirror::connect(&base, None).await;
    let url = format!("{}/live", base.replacen("http://", "ws://", 1));
    let refused = tokio_tungstenite::connect_async(url).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a 503, got {:?}", other.map(|(_, response)| response.status())),
    }
}

#[tokio::test]
async fn a_viewer_sending_too_fast_is_told_and_ignored() {
    let base = serve(demo_state_configured("[limits]\nviewer_messages_per_second = 1")).await;
    let mut viewer = Viewer::connect(&base).await;
    for _ in 0..3 {
        viewer.send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION}).to_string()).await;
    }
    let kinds: Vec<String> = [viewer.next().await, viewer.next().await, viewer.next().await]
        .iter()
        .map(|message| message["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["snapshot", "snapshot", "error"]);
}

#[tokio::test]
async fn tokens_scope_what_viewers_see_and_what_writers_may_change() {
    let base = serve(demo_state_configured(TOKENS)).await;
    // Without a token nothing is served; an unknown token is refused on hello.
    assert_eq!(error_body(get(&format!("{base}/digitaltwins/Room-A101")).await).await.0, 401);
    let mut stranger = Viewer::connect(&base).await;
    stranger
        .send(
            &json!({"type": "hello", "protocol": PROTOCOL_VERSION, "token": "not-a-known-secret"})
                .to_string(),
        )
        .await;
    assert_eq!(stranger.next().await["type"], "error");
    assert!(stranger.closed().await.is_some());
    let mut other_scene = Viewer::connect(&base).await;
    other_scene
        .send(
            &json!({"type": "hello", "protocol": PROTOCOL_VERSION, "token": "secret-other-scene"})
                .to_string(),
        )
        .await;
    let error = other_scene.next().await;
    assert!(error["message"].as_str().unwrap().contains("may not open scene"), "{error}");

    // The reader sees its twin and the twins of its model only, in snapshots and deltas.
    let mut reader = Mirror::connect(&base, Some("secret-reader-a101")).await;
    reader.step().await;
    let ids: Vec<&String> = reader.twins.keys().collect();
    assert_eq!(ids, ["Roof-184483", "Room-A101"]);
    let writer = |twin: &str, body: &str| {
        send(
            client()
                .patch(format!("{base}/digitaltwins/{twin}"))
                .bearer_auth("secret-writer-all")
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
    };
    assert_eq!(writer("Room-A102", SET).await.status(), 204);
    assert_eq!(writer("Room-A101", SET).await.status(), 204);
    let expected = server_twins(&base, Some("secret-reader-a101")).await;
    assert_eq!(expected.len(), 2);
    reader.converge(&expected).await;
    assert_eq!(reader.snapshots, 1);

    // Reading is not writing; writing outside the scope is forbidden.
    let read_only = send(
        client()
            .patch(format!("{base}/digitaltwins/Room-A101"))
            .bearer_auth("secret-reader-a101")
            .header("content-type", "application/json")
            .body(SET),
    )
    .await;
    assert_eq!(error_body(read_only).await.1, "Forbidden");
    let outside =
        send(client().get(format!("{base}/digitaltwins/Room-A102")).bearer_auth("secret-reader-a101")).await;
    assert_eq!(error_body(outside).await.0, 403);
    let scene: Value = send(client().get(format!("{base}/api/scene")).bearer_auth("secret-reader-a101"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(scene["twins"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_hello_for_another_scene_is_refused() {
    let base = serve(demo_state()).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "scene": "plant"}).to_string()).await;
    let error = viewer.next().await;
    assert!(error["message"].as_str().unwrap().contains("unknown scene \"plant\""), "{error}");
    let mut viewer = Viewer::connect(&base).await;
    viewer
        .send(
            &json!({"type": "hello", "protocol": PROTOCOL_VERSION, "scene": "scenes/demo.json"}).to_string(),
        )
        .await;
    assert_eq!(viewer.next().await["type"], "snapshot");
}
