//! Live load test: N viewers on `/live`, M updates/s through CloudEvents ingest, against a server
//! in a child process on loopback; reports delivered updates/s, ingest→viewer latency, server CPU and memory.
//!
//! ```text
//! cargo run --release -p twinscene-server --example live_load -- --viewers 100 --rate 10000 --seconds 10
//! cargo run --release -p twinscene-server --example live_load -- --viewers 100 --sweep 2500,5000,10000,20000,40000
//! ```
//!
//! Each update's value is its send time (µs since 1970), so a probe viewer knows the latency of
//! every change it receives; the other viewers count changes without parsing. Runs are bounded
//! (at most 2000 viewers, 200k updates/s, 120 s each).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use twinscene_server::storage::{SqliteStorage, Storage};
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs};

#[derive(Parser, Clone)]
struct Args {
    /// Live viewers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=2000))]
    viewers: u32,
    /// Updates per second sent to the server.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Several rates, one run each, to find the knee (overrides --rate).
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<f64>,
    /// Seconds per run (the first second is warm-up, not measured).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Twins in the generated scene; updates go round-robin over them.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    twins: u32,
    /// Viewers that parse every delta and time every change; the others only count changes, so
    /// that the load generator, which shares the machine, takes less CPU from the server.
    #[arg(long, default_value_t = 10)]
    probes: u32,
    /// Events per CloudEvents batch request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    batch: u32,
    /// Keep the server's state in this SQLite file (default: in memory); removed before each run.
    #[arg(long)]
    db: Option<PathBuf>,
    /// With --db: "full" (sync every commit to disk) or "normal" (survives kill -9, not power loss).
    #[arg(long, default_value = "full")]
    sync: String,
    /// Internal: run as the server child process with this scene.
    #[arg(long, hide = true)]
    serve_child: Option<PathBuf>,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    if let Some(scene) = &args.serve_child {
        return serve_child(scene, args.db.as_deref(), &args.sync);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(run_all(args))
}

/// The server half: the library's server with limits raised for the load, until stdin closes.
fn serve_child(scene: &Path, db: Option<&Path>, sync: &str) -> Result<(), String> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let loaded = LoadedScene::load(scene).map_err(|error| error.to_string())?;
        let config = ServerConfig::from_toml_str(
            &format!(
                "[limits]\nmax_connections = 5000\ningest_requests_per_second = 1000000.0\nmax_body_bytes = 16777216\n\
                 [storage]\nsync = {sync:?}\n"
            ),
            "load.toml",
        )
        .map_err(|error| error.to_string())?;
        let storage: Arc<dyn Storage> = match db {
            Some(path) => Arc::new(SqliteStorage::open(path, config.storage.sync).map_err(|error| error.to_string())?),
            None => Arc::new(SqliteStorage::in_memory().map_err(|error| error.to_string())?),
        };
        let missing = scene.with_file_name("none");
        let dirs = StaticDirs { dist: missing.clone(), web: missing.clone(), assets: missing.clone(), scenes: missing };
        let state = AppState::with_storage(loaded, dirs, LiveTimings::default(), config, storage)
            .map_err(|error| error.to_string())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|error| error.to_string())?;
        let address = listener.local_addr().map_err(|error| error.to_string())?;
        println!("listening on http://{address}");
        let _ = std::io::stdout().flush();
        // The parent closes our stdin when it is done (or dies).
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
        };
        twinscene_server::serve(listener, state, stdin_closed).await.map_err(|error| error.to_string())
    })
}

struct ServerChild {
    child: Child,
    base: String,
}

impl ServerChild {
    fn start(scene: &Path, db: Option<&Path>, sync: &str) -> Result<Self, String> {
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.arg("--serve-child").arg(scene).args(["--sync", sync]);
        if let Some(db) = db {
            // Each run starts from the scene, not from the previous run's state.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            command.arg("--db").arg(db);
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start the server: {error}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|error| error.to_string())?;
        let base = line.trim().strip_prefix("listening on ").ok_or(format!("unexpected: {line}"))?.to_owned();
        Ok(Self { child, base })
    }

    /// CPU seconds (user + system) used so far.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&self.child.id().to_string())
    }

    /// Bytes the server caused to be written to storage so far (`/proc/PID/io`).
    fn disk_write_bytes(&self) -> f64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap_or_default();
        io.lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Storage commits so far and the seconds they took, from `/metrics`.
    async fn commits(&self, client: &reqwest::Client) -> (f64, f64) {
        let page = match client.get(format!("{}/metrics", self.base)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            page.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        (value("twinscene_storage_commit_seconds_count"), value("twinscene_storage_commit_seconds_sum"))
    }

    /// Peak resident memory in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

/// CPU seconds (user + system) a process used so far: a pid, or "self".
fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ") ".
    let fields: Vec<&str> = stat.rsplit_once(") ").map_or("", |(_, rest)| rest).split(' ').collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Outcome {
    rate: f64,
    sent_per_s: f64,
    delivered_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_percent: f64,
    rss_mib: f64,
    resyncs: u64,
    /// The server's own view (accepted → sent), from its histogram: the bucket holding p99.
    server_p99_ms: f64,
    generator_cpu_percent: f64,
    /// Storage commits (each one log sync with `--sync full`) per second, and their mean duration.
    commits_per_s: f64,
    commit_mean_ms: f64,
    /// The commit-time bucket that holds the 99th percentile (whole run, warm-up included).
    commit_p99_ms: f64,
    /// What the server wrote to disk, MiB/s, and per update accepted.
    disk_mib_per_s: f64,
    disk_kib_per_update: f64,
}

async fn run_all(args: Args) -> Result<(), String> {
    if !(1.0..=200_000.0).contains(&args.rate) || !(2.0..=120.0).contains(&args.seconds) {
        return Err("--rate must be in 1..=200000 and --seconds in 2..=120".into());
    }
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let scene = dir.path().join("load.json");
    write_scene(&scene, args.twins)?;
    let rates = if args.sweep.is_empty() { vec![args.rate] } else { args.sweep.clone() };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "live load: {} viewers, {} twins, batches of {}, {} s per run, {cores} cores shared by server and load generator",
        args.viewers, args.twins, args.batch, args.seconds
    );
    println!();
    println!(
        "| updates/s sent | delivered/s (all viewers) | per viewer/s | p50 ms | p99 ms | max ms | server p99 ≤ ms | server CPU % | server RSS MiB | load generator CPU % | resyncs | commits/s | commit mean ms | commit p99 ≤ ms | disk MiB/s | disk KiB/update |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for rate in rates {
        if !(1.0..=200_000.0).contains(&rate) {
            return Err(format!("rate {rate} is outside 1..=200000"));
        }
        let outcome = run_once(&args, &scene, rate).await?;
        println!(
            "| {:.0} (target {:.0}) | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.2} | {:.0} | {:.1} | {:.2} |",
            outcome.sent_per_s,
            outcome.rate,
            outcome.delivered_per_s,
            outcome.delivered_per_s / f64::from(args.viewers),
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.max_ms,
            outcome.server_p99_ms,
            outcome.cpu_percent,
            outcome.rss_mib,
            outcome.generator_cpu_percent,
            outcome.resyncs,
            outcome.commits_per_s,
            outcome.commit_mean_ms,
            outcome.commit_p99_ms,
            outcome.disk_mib_per_s,
            outcome.disk_kib_per_update,
        );
    }
    Ok(())
}

fn write_scene(path: &Path, twins: u32) -> Result<(), String> {
    let twins: Vec<Value> = (0..twins)
        .map(|i| json!({"$dtId": format!("Sensor-{i}"), "$metadata": {"$model": "dtmi:load:Sensor;1"}, "value": 0.0}))
        .collect();
    let scene = json!({
        "version": 1, "mesh": "none.glb", "twins": twins,
        "elements": [{"id": "e", "twin": "Sensor-0", "nodes": ["n"]}]
    });
    std::fs::write(path, scene.to_string()).map_err(|error| error.to_string())
}

fn now_micros() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |elapsed| elapsed.as_micros() as f64)
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    patch: Vec<Operation>,
}

#[derive(Deserialize)]
struct Operation {
    #[serde(default)]
    value: Option<f64>,
}

async fn run_once(args: &Args, scene: &Path, rate: f64) -> Result<Outcome, String> {
    let server = ServerChild::start(scene, args.db.as_deref(), &args.sync)?;
    let ws_url = format!("{}/live", server.base.replacen("http://", "ws://", 1));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let resyncs = Arc::new(AtomicU64::new(0));
    let mut viewers = Vec::new();
    for index in 0..args.viewers {
        let probe = index < args.probes;
        let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .map_err(|error| format!("viewer connect: {error}"))?;
        socket
            .send(Message::text(
                json!({"type": "hello", "protocol": twinscene_core::live::PROTOCOL_VERSION}).to_string(),
            ))
            .await
            .map_err(|error| error.to_string())?;
        let (measuring, stop, resyncs) = (measuring.clone(), stop.clone(), resyncs.clone());
        viewers.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut delivered = 0u64;
            let mut snapshots = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_millis(200), socket.next()).await
                else {
                    continue;
                };
                let Message::Text(text) = message else { continue };
                if !probe && text.starts_with(r#"{"type":"delta""#) {
                    if measuring.load(Ordering::Relaxed) {
                        delivered += text.matches(r#""op":"#).count() as u64;
                    }
                    continue;
                }
                let Ok(incoming) = serde_json::from_str::<Incoming>(&text) else { continue };
                match incoming.kind.as_str() {
                    "snapshot" => {
                        snapshots += 1;
                        if snapshots > 1 {
                            resyncs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    "delta" if measuring.load(Ordering::Relaxed) => {
                        let now = now_micros();
                        for change in &incoming.changes {
                            for operation in &change.patch {
                                if let Some(sent) = operation.value {
                                    delivered += 1;
                                    latencies_us.push((now - sent).clamp(0.0, u32::MAX as f64) as u32);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            (delivered, latencies_us)
        }));
    }

    // Ingest: one batch every batch/rate seconds, each event's value its send time.
    let client = reqwest::Client::new();
    let url = format!("{}/ingest/cloudevents", server.base);
    let interval = Duration::from_secs_f64(f64::from(args.batch) / rate);
    let started = Instant::now();
    let warmup = Duration::from_secs(1);
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let mut next_twin = 0u32;
    let mut next_id = 0u64;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut cpu_start = None;
    let mut storage_start = (0.0, 0.0, 0.0);
    let mut in_flight = Vec::new();
    while Instant::now() < deadline {
        ticks.tick().await;
        if cpu_start.is_none() && started.elapsed() >= warmup {
            measuring.store(true, Ordering::Relaxed);
            cpu_start = Some((
                Instant::now(),
                server.cpu_seconds(),
                cpu_seconds_of("self"),
                sent.load(Ordering::Relaxed),
            ));
            let (commits, seconds) = server.commits(&client).await;
            storage_start = (commits, seconds, server.disk_write_bytes());
        }
        let now = now_micros();
        let events: Vec<Value> = (0..args.batch)
            .map(|_| {
                let twin = next_twin;
                next_twin = (next_twin + 1) % args.twins;
                next_id += 1;
                json!({
                    "specversion": "1.0", "id": next_id.to_string(), "source": "live_load",
                    "type": "Microsoft.DigitalTwins.Twin.Update", "subject": format!("Sensor-{twin}"),
                    "data": {"patch": [{"op": "replace", "path": "/value", "value": now}]}
                })
            })
            .collect();
        let request = client
            .post(&url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(Value::Array(events).to_string());
        let (sent, count) = (sent.clone(), u64::from(args.batch));
        in_flight.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
        // Bounded: past this many requests in flight the server is saturated; skip this tick.
        if in_flight.len() < 64 {
            in_flight.push(tokio::spawn(async move {
                if let Ok(response) = request.send().await
                    && response.status().is_success()
                {
                    sent.fetch_add(count, Ordering::Relaxed);
                }
            }));
        }
    }
    let (measure_start, cpu_before, own_cpu_before, sent_before) =
        cpu_start.ok_or("the run was shorter than its warm-up")?;
    let measured = measure_start.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let own_cpu = cpu_seconds_of("self") - own_cpu_before;
    let sent_total = sent.load(Ordering::Relaxed) - sent_before;
    let (commits, commit_seconds) = server.commits(&client).await;
    let (commits, commit_seconds) = (commits - storage_start.0, commit_seconds - storage_start.1);
    let disk_bytes = server.disk_write_bytes() - storage_start.2;
    // Let the last updates arrive, then stop the viewers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut delivered = 0u64;
    let mut latencies: Vec<u32> = Vec::new();
    for viewer in viewers {
        let (count, mut samples) = viewer.await.map_err(|error| error.to_string())?;
        delivered += count;
        latencies.append(&mut samples);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[index]) / 1000.0
    };
    let metrics = client.get(format!("{}/metrics", server.base)).send().await.map_err(|e| e.to_string())?;
    let page = metrics.text().await.map_err(|e| e.to_string())?;
    let server_p99_ms = histogram_p99(&page, "twinscene_update_latency_seconds") * 1000.0;
    let commit_p99_ms = histogram_p99(&page, "twinscene_storage_commit_seconds") * 1000.0;
    Ok(Outcome {
        server_p99_ms,
        generator_cpu_percent: own_cpu / measured * 100.0,
        rate,
        sent_per_s: sent_total as f64 / measured,
        delivered_per_s: delivered as f64 / (measured + 0.3),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        max_ms: percentile(1.0),
        cpu_percent: cpu / measured * 100.0,
        rss_mib: server.peak_rss_mib(),
        resyncs: resyncs.load(Ordering::Relaxed),
        commits_per_s: commits / measured,
        commit_mean_ms: if commits > 0.0 { commit_seconds / commits * 1000.0 } else { 0.0 },
        commit_p99_ms,
        disk_mib_per_s: disk_bytes / measured / (1024.0 * 1024.0),
        disk_kib_per_update: if sent_total > 0 { disk_bytes / sent_total as f64 / 1024.0 } else { 0.0 },
    })
}

/// The upper bound of the bucket of histogram `name` that holds the 99th percentile.
fn histogram_p99(page: &str, name: &str) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = page
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |(_, count)| *count);
    buckets.iter().find(|(_, count)| *count >= total * 0.99).map_or(f64::NAN, |(bound, _)| *bound)
}
