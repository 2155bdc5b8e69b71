//! Simulated data: `serve --simulate` random-walks temperatures in-process, and `twinscene
//! simulate` drives a running server's numeric properties through its public CloudEvents ingest.

use std::time::Duration;

use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, ReplaceOperation};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};

use crate::auth::Grant;
use crate::state::{AppState, Source};

/// Temperatures stay in this range (°C), wide enough to cross every range of the demo scene.
const RANGE: (f64, f64) = (5.0, 40.0);
/// The usual step, and the occasional jump that moves a twin into another color range.
const STEP: f64 = 0.8;
const JUMP: f64 = 6.0;
const JUMP_PROBABILITY: f64 = 0.1;

/// Starts writing every `interval`, from one interval after now.
pub fn spawn(state: AppState, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = time::interval_at(time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let changes = pick_changes(&state.temperatures(), &mut rand::rng());
            for (id, path, temperature) in changes {
                let patch = Patch(vec![PatchOperation::Replace(ReplaceOperation {
                    path: PointerBuf::from_tokens(path),
                    value: json!(temperature),
                })]);
                let grant = Grant::open();
                if let Err(error) = state.patch_twin(&grant, &id, patch, None, Source::Simulator).await {
                    // E.g. the twin's temperature was removed since it was read.
                    tracing::debug!("simulated write to {id:?} refused: {error}");
                }
            }
        }
    })
}

/// Picks one to three of the temperatures (twin, property path, value) and the next value of each.
fn pick_changes(
    temperatures: &[(String, Vec<String>, f64)],
    rng: &mut impl Rng,
) -> Vec<(String, Vec<String>, f64)> {
    let count = rng.random_range(1..=3).min(temperatures.len());
    let chosen: Vec<_> = temperatures.choose_multiple(rng, count).cloned().collect();
    chosen.into_iter().map(|(id, path, temperature)| (id, path, step(temperature, rng))).collect()
}

fn step(temperature: f64, rng: &mut impl Rng) -> f64 {
    let change = if rng.random_bool(JUMP_PROBABILITY) {
        if rng.random_bool(0.5) { JUMP } else { -JUMP }
    } else {
        rng.random_range(-STEP..=STEP)
    };
    ((temperature + change).clamp(RANGE.0, RANGE.1) * 10.0).round() / 10.0
}

/// `twinscene simulate`: what to drive and how fast.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulateArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The scene file whose twins to drive; without it, the twins the server serves.
    #[arg(long)]
    pub scene: Option<std::path::PathBuf>,
    /// Property updates per second, over all twins.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// A bearer token with write access, when the server has tokens configured.
    #[arg(long, env = "TWINSCENE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The chance per update of an alarm: a jump far outside the usual range.
    #[arg(long, default_value_t = 0.01)]
    pub alarm_probability: f64,
}

/// One numeric property being walked.
struct Walker {
    twin: String,
    model: String,
    property: String,
    value: f64,
    /// Where the walk started: it drifts back towards it.
    home: f64,
}

impl Walker {
    fn step(&mut self, alarm_probability: f64, rng: &mut impl Rng) -> f64 {
        let scale = self.home.abs().max(1.0);
        self.value += if rng.random_bool(alarm_probability.clamp(0.0, 1.0)) {
            // An alarm: far out of range, then the walk drifts back.
            scale * if rng.random_bool(0.5) { 0.5 } else { -0.5 }
        } else {
            rng.random_range(-0.02..=0.02) * scale + (self.home - self.value) * 0.05
        };
        self.value = (self.value * 100.0).round() / 100.0;
        self.value
    }
}

/// Runs `twinscene simulate` until `--seconds` pass or Ctrl-C; each tick posts one CloudEvents
/// batch of Twin.Update events, so the server sees exactly what a real data source would send.
pub async fn run_remote(args: SimulateArgs) -> Result<(), String> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err("--rate must be a positive number".into());
    }
    let client = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_owned();
    let twins: Vec<twinscene_core::twin::Twin> = match &args.scene {
        Some(path) => crate::config::LoadedScene::load(path).map_err(|error| error.to_string())?.scene.twins,
        None => {
            let mut request = client.get(format!("{base}/api/scene"));
            if let Some(token) = &args.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|error| format!("cannot reach {base}: {error}"))?;
            if !response.status().is_success() {
                return Err(format!("{base}/api/scene answered {}", response.status()));
            }
            let scene: twinscene_core::scene::Scene =
                response.json().await.map_err(|error| format!("{base}/api/scene is not a scene: {error}"))?;
            scene.twins
        }
    };
    let mut walkers: Vec<Walker> = twins
        .iter()
        .flat_map(|twin| {
            twin.properties.iter().filter_map(|(name, value)| {
                let value = value.as_f64()?;
                Some(Walker {
                    twin: twin.id.clone(),
                    model: twin.model.clone(),
                    property: name.to_owned(),
                    value,
                    home: value,
                })
            })
        })
        .collect();
    if walkers.is_empty() {
        return Err("no twin has a numeric property to drive".into());
    }
    tracing::info!(properties = walkers.len(), rate = args.rate, "simulating");
    let tick =
        Duration::from_millis(100).max(Duration::from_secs_f64(1.0 / args.rate).min(Duration::from_secs(1)));
    let mut ticks = time::interval(tick);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = time::Instant::now();
    let run = format!("{:x}", std::process::id() as u64 ^ crate::storage::now_ms() as u64);
    let (mut owed, mut sent, mut refused, mut next_id) = (0.0, 0u64, 0u64, 0u64);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut rng = rand::rngs::StdRng::from_os_rng();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        if args.seconds.is_some_and(|seconds| started.elapsed().as_secs_f64() >= seconds) {
            break;
        }
        owed += args.rate * tick.as_secs_f64();
        let count = owed.floor() as usize;
        owed -= count as f64;
        if count == 0 {
            continue;
        }
        let events: Vec<serde_json::Value> = (0..count)
            .map(|_| {
                let at = rng.random_range(0..walkers.len());
                let walker = &mut walkers[at];
                let value = walker.step(args.alarm_probability, &mut rng);
                next_id += 1;
                json!({
                    "specversion": "1.0",
                    "id": format!("{run}-{next_id}"),
                    "source": "twinscene-simulate",
                    "type": crate::ingest::TWIN_UPDATE,
                    "subject": walker.twin,
                    "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                    "datacontenttype": "application/json",
                    "data": {
                        "modelId": walker.model,
                        "patch": [{"op": "replace", "path": format!("/{}", walker.property.replace('~', "~0").replace('/', "~1")), "value": value}],
                    },
                })
            })
            .collect();
        let mut request = client
            .post(format!("{base}/ingest/cloudevents"))
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::Value::Array(events).to_string());
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => sent += count as u64,
            Ok(response) => {
                refused += count as u64;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                tracing::warn!("the server refused a batch: {status} {body}");
            }
            Err(error) => {
                refused += count as u64;
                tracing::warn!("cannot reach {base}: {error}");
            }
        }
    }
    println!("simulate: {sent} updates sent, {refused} refused, in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn steps_stay_in_range_and_on_tenths() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut temperature = 20.0;
        for _ in 0..10_000 {
            let next = step(temperature, &mut rng);
            assert!((RANGE.0..=RANGE.1).contains(&next), "{next}");
            assert!((next - temperature).abs() <= JUMP + 0.05, "{temperature} -> {next}");
            assert!(((next * 10.0).round() - next * 10.0).abs() < 1e-9, "{next}");
            temperature = next;
        }
    }

    #[test]
    fn walks_drift_home_and_alarms_jump() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut walker =
            Walker { twin: "t".into(), model: "m".into(), property: "p".into(), value: 20.0, home: 20.0 };
        let values: Vec<f64> = (0..2000).map(|_| walker.step(0.01, &mut rng)).collect();
        assert!(values.iter().any(|value| (value - 20.0).abs() > 8.0), "some alarm");
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean - 20.0).abs() < 3.0, "{mean}");
    }

    #[test]
    fn picks_one_to_three_distinct_twins() {
        let mut rng = StdRng::seed_from_u64(1);
        let twins: Vec<_> = (0..5).map(|i| (format!("t{i}"), vec!["temperature".to_owned()], 20.0)).collect();
        for _ in 0..100 {
            let mut ids: Vec<_> = pick_changes(&twins, &mut rng).into_iter().map(|(id, _, _)| id).collect();
            let picked = ids.len();
            assert!((1..=3).contains(&picked));
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), picked);
        }
        assert!(pick_changes(&[], &mut rng).is_empty());
        // The property path travels with the value (components hold TwinMaker bindings).
        let nested = [("room1".to_owned(), vec!["sensor".to_owned(), "temperature".to_owned()], 20.0)];
        assert_eq!(pick_changes(&nested, &mut rng)[0].1, ["sensor", "temperature"]);
    }
}
