//! Test harness: the server on 127.0.0.1 at a free port, in-process, plus an HTTP client and a
//! WebSocket viewer whose reads are bounded by a timeout so a missing message fails the test.
#![allow(dead_code)] // Each test file uses a different part of it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use twinscene_server::{AppState, LiveTimings, LoadedScene, StaticDirs, router};

/// How long any single expected event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn demo_scene_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenes/demo.json")
}

pub fn demo_state() -> AppState {
    demo_state_with(StaticDirs::default(), LiveTimings::default())
}

pub fn demo_state_with(dirs: StaticDirs, timings: LiveTimings) -> AppState {
    let scene = LoadedScene::load(&demo_scene_path()).expect("demo scene loads");
    AppState::new(scene, dirs, timings)
}

/// Serves `state` on a free port and returns the base URL, e.g. `http://127.0.0.1:1234`.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router(state)).await.expect("serve") });
    format!("http://{address}")
}

pub async fn patch(base: &str, twin: &str, body: &str) -> reqwest::Response {
    let request = reqwest::Client::new()
        .patch(format!("{base}/digitaltwins/{twin}"))
        .header("content-type", "application/json-patch+json")
        .body(body.to_owned())
        .send();
    within("PATCH response", request).await.expect("PATCH sent")
}

pub async fn get(url: &str) -> reqwest::Response {
    within("GET response", reqwest::get(url)).await.expect("GET sent")
}

pub async fn error_body(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"].as_str().expect("error.code").to_owned();
    let message = body["error"]["message"].as_str().expect("error.message").to_owned();
    (status, code, message)
}

/// A WebSocket client of `/live`.
pub struct Viewer {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Viewer {
    pub async fn connect(base: &str) -> Self {
        let url = format!("{}/live", base.replacen("http://", "ws://", 1));
        let (socket, _) = within("WebSocket connect", tokio_tungstenite::connect_async(url))
            .await
            .expect("WebSocket connects");
        Self { socket }
    }

    pub async fn send(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    pub async fn hello(&mut self) -> Value {
        self.send(r#"{"type":"hello","protocol":1}"#).await;
        let snapshot = self.next().await;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        snapshot
    }

    /// The next frame other than ping/pong, or None once the connection has ended.
    pub async fn next_frame(&mut self) -> Option<Message> {
        within("a WebSocket message", async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(message)) => return Some(message),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The next server message, parsed.
    pub async fn next(&mut self) -> Value {
        match self.next_frame().await {
            Some(Message::Text(text)) => serde_json::from_str(&text).expect("server sends JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Waits for the server to close the connection, returning the close reason if it gave one.
    pub async fn closed(&mut self) -> Option<String> {
        match self.next_frame().await {
            Some(Message::Close(frame)) => frame.map(|frame| frame.reason.to_string()),
            None => None,
            Some(other) => panic!("expected the connection to close, got {other:?}"),
        }
    }
}
