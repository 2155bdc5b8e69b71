//! Test harness: the server on 127.0.0.1 at a free port (in-process, or the real binary), an
//! HTTP client, a raw WebSocket viewer, and `Mirror`, a viewer that applies the live protocol
//! with core's `SequenceTracker` so that its twins can be compared with the server's.
#![allow(dead_code)] // Each test file uses a different part of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use twinscene_core::live::{PROTOCOL_VERSION, SequenceTracker, Sequencing, ServerMessage};
use twinscene_server::storage::SqliteStorage;
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs};

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

pub fn demo_state_configured(config: &str) -> AppState {
    let scene = LoadedScene::load(&demo_scene_path()).expect("demo scene loads");
    let config = ServerConfig::from_toml_str(config, "test.toml").expect("test config");
    let storage = Arc::new(SqliteStorage::in_memory().expect("in-memory SQLite"));
    AppState::with_storage(scene, StaticDirs::default(), LiveTimings::default(), config, storage)
        .expect("state")
}

/// Serves `state` on a free port and returns the base URL, e.g. `http://127.0.0.1:1234`.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        twinscene_server::serve(listener, state, std::future::pending()).await.expect("serve")
    });
    format!("http://{address}")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    within("HTTP response", request.send()).await.expect("request sent")
}

pub async fn patch(base: &str, twin: &str, body: &str) -> reqwest::Response {
    send(
        client()
            .patch(format!("{base}/digitaltwins/{twin}"))
            .header("content-type", "application/json-patch+json")
            .body(body.to_owned()),
    )
    .await
}

pub async fn set_temperature(base: &str, twin: &str, value: f64) {
    let body = json!([{"op": "replace", "path": "/temperature", "value": value}]).to_string();
    let response = patch(base, twin, &body).await;
    assert_eq!(response.status(), 204, "{:?}", response.text().await);
}

pub async fn get(url: &str) -> reqwest::Response {
    within("GET response", reqwest::get(url)).await.expect("GET sent")
}

pub async fn get_json(url: &str) -> Value {
    let response = get(url).await;
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("JSON")
}

pub async fn error_body(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"].as_str().expect("error.code").to_owned();
    let message = body["error"]["message"].as_str().expect("error.message").to_owned();
    (status, code, message)
}

/// The server's twins (properties and model), as a viewer should have them.
pub async fn server_twins(base: &str, token: Option<&str>) -> BTreeMap<String, Value> {
    let mut request = client().get(format!("{base}/api/scene"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let scene: Value = send(request).await.json().await.expect("scene JSON");
    scene["twins"].as_array().expect("twins").iter().map(comparable).collect()
}

/// A twin reduced to what viewer and server must agree on: id → model and properties.
pub fn comparable(twin: &Value) -> (String, Value) {
    let id = twin["$dtId"].as_str().expect("$dtId").to_owned();
    let mut properties = twin.as_object().expect("twin object").clone();
    properties.retain(|name, _| !name.starts_with('$'));
    (id, json!({"model": twin["$metadata"]["$model"], "properties": properties}))
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
        self.send(&json!({"type": "hello", "protocol": PROTOCOL_VERSION}).to_string()).await;
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

    /// The next message that is not a heartbeat.
    pub async fn next_change(&mut self) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] != "heartbeat" {
                return message;
            }
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

/// A viewer that keeps the twins it was sent, applying messages as the real viewer does:
/// `SequenceTracker` decides, a gap or a failed patch asks for a new snapshot.
pub struct Mirror {
    pub viewer: Viewer,
    pub tracker: SequenceTracker,
    pub twins: BTreeMap<String, Value>,
    pub token: Option<String>,
    pub snapshots: usize,
    pub deltas: usize,
    pub changes: usize,
}

impl Mirror {
    pub async fn connect(base: &str, token: Option<&str>) -> Self {
        let mut mirror = Self {
            viewer: Viewer::connect(base).await,
            tracker: SequenceTracker::default(),
            twins: BTreeMap::new(),
            token: token.map(str::to_owned),
            snapshots: 0,
            deltas: 0,
            changes: 0,
        };
        mirror.hello(None).await;
        mirror
    }

    pub async fn hello(&mut self, since_seq: Option<u64>) {
        let mut hello = json!({"type": "hello", "protocol": PROTOCOL_VERSION});
        if let Some(token) = &self.token {
            hello["token"] = json!(token);
        }
        if let Some(since) = since_seq {
            hello["since_seq"] = json!(since);
        }
        self.viewer.send(&hello.to_string()).await;
    }

    /// Drops the connection without a close frame and connects again; with `resume`, the hello
    /// asks to be caught up from the last applied seq (the tracker keeps its position).
    pub async fn reconnect(&mut self, base: &str, resume: bool) {
        self.viewer = Viewer::connect(base).await;
        let since = if resume { self.tracker.last_applied() } else { None };
        if since.is_none() {
            self.tracker.reset();
        }
        self.hello(since).await;
    }

    /// Reads and applies one message; returns it.
    pub async fn step(&mut self) -> ServerMessage {
        let value = self.viewer.next().await;
        let message: ServerMessage = serde_json::from_value(value.clone()).expect("a server message");
        match self.tracker.accept(&message) {
            Sequencing::Apply => match &message {
                ServerMessage::Snapshot { twins, .. } => {
                    self.snapshots += 1;
                    self.twins =
                        twins.iter().map(|twin| comparable(&serde_json::to_value(twin).unwrap())).collect();
                }
                ServerMessage::Delta { changes, .. } => {
                    self.deltas += 1;
                    self.changes += changes.len();
                    for change in changes {
                        let applied = self
                            .twins
                            .get_mut(&change.twin)
                            .map(|twin| json_patch::patch(&mut twin["properties"], &change.patch));
                        if !matches!(applied, Some(Ok(()))) {
                            self.tracker.reset();
                            self.hello(None).await;
                            break;
                        }
                    }
                }
                _ => {}
            },
            Sequencing::Resync => {
                self.tracker.reset();
                self.hello(None).await;
            }
            Sequencing::Stale => {
                if let ServerMessage::Error { message } = &message {
                    panic!("the server said: {message}");
                }
            }
        }
        message
    }

    /// Applies messages until this viewer has the state as of `seq` (or later).
    pub async fn sync_to(&mut self, seq: u64) {
        within(&format!("the viewer to reach seq {seq}"), async {
            while self.tracker.last_applied().is_none_or(|last| last < seq) {
                self.step().await;
            }
        })
        .await
    }

    /// Applies messages until the viewer's twins equal `expected`.
    pub async fn converge(&mut self, expected: &BTreeMap<String, Value>) {
        let converged = tokio::time::timeout(PATIENCE, async {
            while &self.twins != expected {
                self.step().await;
            }
        })
        .await;
        if converged.is_err() {
            for (id, twin) in expected {
                assert_eq!(self.twins.get(id), Some(twin), "twin {id} differs between viewer and server");
            }
            assert_eq!(&self.twins, expected, "the viewer has other twins than the server");
        }
    }
}

/// The real `twinscene` binary, serving until dropped (then killed).
pub struct Binary {
    pub child: Child,
    pub base: String,
    pub stderr_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `twinscene serve` with `args` (on a free port unless they name one) and waits
    /// for its "listening" line.
    pub fn serve(args: &[&str]) -> Self {
        let port: &[&str] = if args.contains(&"--port") { &[] } else { &["--port", "0"] };
        // Tests that do not name a database keep state in memory (the default is a file).
        let storage: &[&str] = if args.contains(&"--db") { &[] } else { &["--memory"] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_twinscene"))
            .arg("serve")
            .args(port)
            .args(storage)
            .arg("--scene")
            .arg(demo_scene_path())
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("twinscene starts");
        let stderr_lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let lines = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("twinscene listening on ") {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        let base = receiver.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("twinscene did not print its address; stderr: {:?}", stderr_lines.lock().unwrap())
        });
        Self { child, base, stderr_lines }
    }

    /// `kill -9`: nothing is flushed or closed.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mosquitto broker on a free loopback port, started for one test and killed when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> Self {
        // Debian installs it in /usr/sbin, which is not always on PATH.
        let path = std::env::var("PATH").unwrap_or_default();
        let binary = ["/usr/sbin", "/usr/bin", "/usr/local/sbin"]
            .into_iter()
            .map(PathBuf::from)
            .chain(std::env::split_paths(&path))
            .map(|dir| dir.join("mosquitto"))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "the MQTT tests need the mosquitto broker: install it with `apt-get install -y mosquitto`"
                )
            });
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("broker config");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "mosquitto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, _dir: dir }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes one QoS 1 message and waits for the broker's acknowledgement.
pub async fn mqtt_publish(port: u16, topic: &str, payload: &str) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let id = format!("test-publisher-{}", std::process::id());
    let (client, mut events) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 16);
    client.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).await.expect("queue publish");
    within("the broker to acknowledge a publish", async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => break,
                Ok(Event::Outgoing(Outgoing::Disconnect)) => panic!("publisher disconnected"),
                Ok(_) => {}
                Err(error) => panic!("publishing to the broker failed: {error}"),
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
}

/// Polls `check` until it holds; the timeout is the failure bound.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The live seq `/api/scene` says its twins are as of (`x-twinscene-seq`), once it says one:
/// a write is published to viewers shortly after its commit answers.
pub async fn published_scene_seq(base: &str) -> u64 {
    within("a scene with a live seq", async {
        loop {
            let response = get(&format!("{base}/api/scene")).await;
            if let Some(seq) = response.headers().get("x-twinscene-seq") {
                return seq.to_str().unwrap().parse().expect("the seq is a number");
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}
