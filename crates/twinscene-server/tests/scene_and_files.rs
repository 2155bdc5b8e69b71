//! `/api/config`, `/api/scene`, the mesh route and the static directories.

mod common;

use std::fs;

use common::{
    Viewer, demo_state, demo_state_with, error_body, get, patch, published_scene_seq, send, serve,
    set_temperature,
};
use serde_json::{Value, json};
use twinscene_core::live::PROTOCOL_VERSION;
use twinscene_server::{AppState, LiveTimings, LoadedScene, StaticDirs};

#[tokio::test]
async fn config_says_where_the_scene_and_live_data_are() {
    let base = serve(demo_state()).await;
    let config: Value = get(&format!("{base}/api/config")).await.json().await.unwrap();
    assert_eq!(config, json!({"scene": "/api/scene", "mesh": "/api/scene/mesh/duplex.glb", "live": "/live"}));
}

#[tokio::test]
async fn scene_points_at_the_served_mesh_and_carries_current_twins() {
    let base = serve(demo_state()).await;
    assert_eq!(
        patch(&base, "Room-A101", r#"[{"op":"replace","path":"/temperature","value":33}]"#).await.status(),
        204
    );
    let scene: Value = get(&format!("{base}/api/scene")).await.json().await.unwrap();
    assert_eq!(scene["mesh"], "/api/scene/mesh/duplex.glb");
    let room = scene["twins"].as_array().unwrap().iter().find(|t| t["$dtId"] == "Room-A101").unwrap();
    assert_eq!(room["temperature"], 33);
    assert!(!scene["elements"].as_array().unwrap().is_empty());
    LoadedScene::from_json_str(&scene.to_string(), "served.json".as_ref())
        .expect("the served scene is a valid scene");
}

#[tokio::test]
async fn a_viewer_resumes_from_the_scenes_seq_instead_of_taking_a_snapshot() {
    let base = serve(demo_state()).await;
    set_temperature(&base, "Room-A101", 31.0).await;
    let seq = published_scene_seq(&base).await;
    let mut viewer = Viewer::connect(&base).await;
    viewer.send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION, "since_seq": seq}).to_string()).await;
    let answer = viewer.next().await;
    assert_eq!((answer["type"].as_str(), answer["seq"].as_u64()), (Some("heartbeat"), Some(seq)), "{answer}");
    set_temperature(&base, "Room-A101", 32.0).await;
    let delta = viewer.next_change().await;
    // A delta names its `base` only when it is not the seq before its own.
    let from = delta["base"].as_u64().or(delta["seq"].as_u64().map(|s| s - 1));
    assert_eq!((delta["type"].as_str(), from), (Some("delta"), Some(seq)), "{delta}");
    assert_eq!(delta["changes"][0]["twin"], "Room-A101");
}

#[tokio::test]
async fn the_mesh_is_served_by_its_file_name_only() {
    let base = serve(demo_state()).await;
    let response = get(&format!("{base}/api/scene/mesh/duplex.glb")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "model/gltf-binary");
    let expected = fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/duplex.glb")).unwrap();
    assert_eq!(response.bytes().await.unwrap().as_ref(), expected.as_slice());

    let (status, code, _) = error_body(get(&format!("{base}/api/scene/mesh/demo.json")).await).await;
    assert_eq!((status, code.as_str()), (404, "NotFound"));
    let response = get(&format!("{base}/api/scene/mesh/..%2Fscenes%2Fdemo.json")).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_missing_mesh_is_a_404_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let scene_path = dir.path().join("scene.json");
    let text = r#"{"version": 1, "mesh": "models/room.gltf", "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}]}"#;
    fs::write(&scene_path, text).unwrap();
    let state =
        AppState::new(LoadedScene::load(&scene_path).unwrap(), StaticDirs::default(), LiveTimings::default());
    let base = serve(state).await;
    let (status, code, message) = error_body(get(&format!("{base}/api/scene/mesh/room.gltf")).await).await;
    assert_eq!((status, code.as_str()), (404, "NotFound"));
    assert!(message.contains("models/room.gltf"), "{message}");

    // Once the file is there it is served, as glTF JSON.
    fs::create_dir(dir.path().join("models")).unwrap();
    fs::write(dir.path().join("models/room.gltf"), "{}").unwrap();
    let response = get(&format!("{base}/api/scene/mesh/room.gltf")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "model/gltf+json");
}

#[tokio::test]
async fn static_directories_are_served_and_may_be_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (dist, web) = (dir.path().join("dist"), dir.path().join("web"));
    fs::create_dir(&dist).unwrap();
    fs::create_dir(&web).unwrap();
    fs::write(dist.join("twinscene_viewer_bg.wasm"), b"\0asm").unwrap();
    fs::write(dist.join("twinscene_viewer_bg.wasm.gz"), b"gzipped bytes").unwrap();
    fs::write(web.join("index.html"), "<!doctype html>").unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let dirs = StaticDirs {
        dist,
        web,
        assets: format!("{root}/../../assets").into(),
        scenes: format!("{root}/../../scenes").into(),
    };
    let base = serve(demo_state_with(dirs, LiveTimings::default())).await;

    let wasm = get(&format!("{base}/pkg/twinscene_viewer_bg.wasm")).await;
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert!(wasm.headers().get("content-encoding").is_none());
    assert_eq!(wasm.bytes().await.unwrap().as_ref(), b"\0asm");
    // A client that accepts gzip gets the precompressed file, still typed as wasm.
    let request = common::client()
        .get(format!("{base}/pkg/twinscene_viewer_bg.wasm"))
        .header("accept-encoding", "gzip");
    let gzipped = send(request).await;
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-type"], "application/wasm");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    // The page counts decoded bytes: it is told how many to expect.
    assert_eq!(gzipped.headers()["x-decoded-length"], "4");
    assert_eq!(gzipped.bytes().await.unwrap().as_ref(), b"gzipped bytes");
    let index = get(&format!("{base}/")).await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.text().await.unwrap(), "<!doctype html>");
    assert_eq!(get(&format!("{base}/scenes/demo.json")).await.status(), 200);
    assert_eq!(get(&format!("{base}/assets/duplex.glb")).await.status(), 200);
    assert_eq!(get(&format!("{base}/pkg/missing.js")).await.status(), 404);

    let missing = dir.path().join("nothing");
    let dirs =
        StaticDirs { dist: missing.clone(), web: missing.clone(), assets: missing.clone(), scenes: missing };
    let base = serve(demo_state_with(dirs, LiveTimings::default())).await;
    assert_eq!(get(&format!("{base}/pkg/twinscene_viewer.js")).await.status(), 404);
    assert_eq!(get(&format!("{base}/api/config")).await.status(), 200);
}

/// A page on another site may load the viewer and the twin API from here (CORS); the config
/// can name the sites that may, and then others get no permission.
#[tokio::test]
async fn other_origins_may_embed_unless_the_config_names_the_allowed_ones() {
    let scene_from = |base: &str, origin: &'static str| {
        common::client().get(format!("{base}/api/scene")).header("origin", origin).send()
    };
    let open = serve(demo_state()).await;
    let response = scene_from(&open, "http://intranet.example").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let restricted = serve(common::demo_state_configured(
        "[embedding]\nallowed_origins = [\"http://intranet.example\"]\n",
    ))
    .await;
    let allowed = scene_from(&restricted, "http://intranet.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "http://intranet.example");
    let other = scene_from(&restricted, "http://elsewhere.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A preflight for a write names the headers a page may send.
    let preflight = common::client()
        .request(reqwest::Method::OPTIONS, format!("{restricted}/digitaltwins/Room-A101"))
        .header("origin", "http://intranet.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
}
