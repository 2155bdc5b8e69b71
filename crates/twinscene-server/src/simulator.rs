//! `--simulate`: a task that random-walks the twins' temperatures and writes them through the
//! same path as `PATCH /digitaltwins/{id}`, so viewers see live changes without a data source.

use std::time::Duration;

use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, ReplaceOperation};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};

use crate::state::AppState;

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
            for (id, temperature) in changes {
                let patch = Patch(vec![PatchOperation::Replace(ReplaceOperation {
                    path: PointerBuf::from_tokens(["temperature"]),
                    value: json!(temperature),
                })]);
                if let Err(error) = state.apply_patch(&id, patch) {
                    // E.g. the twin's temperature was removed since it was read.
                    tracing::debug!("simulated write to {id:?} refused: {error}");
                }
            }
        }
    })
}

/// Picks one to three of the twins and the next temperature of each.
fn pick_changes(temperatures: &[(String, f64)], rng: &mut impl Rng) -> Vec<(String, f64)> {
    let count = rng.random_range(1..=3).min(temperatures.len());
    let chosen: Vec<_> = temperatures.choose_multiple(rng, count).cloned().collect();
    chosen.into_iter().map(|(id, temperature)| (id, step(temperature, rng))).collect()
}

fn step(temperature: f64, rng: &mut impl Rng) -> f64 {
    let change = if rng.random_bool(JUMP_PROBABILITY) {
        if rng.random_bool(0.5) { JUMP } else { -JUMP }
    } else {
        rng.random_range(-STEP..=STEP)
    };
    ((temperature + change).clamp(RANGE.0, RANGE.1) * 10.0).round() / 10.0
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
    fn picks_one_to_three_distinct_twins() {
        let mut rng = StdRng::seed_from_u64(1);
        let twins: Vec<_> = (0..5).map(|i| (format!("t{i}"), 20.0)).collect();
        for _ in 0..100 {
            let mut ids: Vec<_> = pick_changes(&twins, &mut rng).into_iter().map(|(id, _)| id).collect();
            let picked = ids.len();
            assert!((1..=3).contains(&picked));
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), picked);
        }
        assert!(pick_changes(&[], &mut rng).is_empty());
    }
}
