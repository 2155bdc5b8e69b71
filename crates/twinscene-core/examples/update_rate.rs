//! The native counterpart of bench-wasm/run.mjs: the benchmark workload in the same tight loop
//! (3 s per configuration), so that native and wasm rates compare like for like. Like run.mjs it
//! prints updates per CPU second too (Linux): on a busy machine wall-clock rates undercount.
//! `cargo run --release -p twinscene-core --example update_rate [-- twin counts, default 10000,1000000]`

use std::time::Instant;

#[path = "../benches/workload.rs"]
mod workload;

/// Seconds this thread has run on a CPU, from the scheduler's accounting (nanoseconds); `None`
/// where /proc is not available.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 1_000_000]);
    for twins in sizes {
        for floor_average in [false, true] {
            let built = Instant::now();
            let mut runtime = workload::runtime(twins, floor_average);
            let setup = built.elapsed();
            let updates = workload::updates(twins, 10_000);
            workload::apply(&mut runtime, &updates);
            let cpu_start = cpu_seconds();
            let start = Instant::now();
            let mut applied = 0;
            while start.elapsed().as_secs_f64() < 3.0 {
                workload::apply(&mut runtime, &updates);
                applied += updates.len();
            }
            let rate = applied as f64 / start.elapsed().as_secs_f64();
            let name = if floor_average { "color_and_floor_average" } else { "color" };
            let per_cpu = match (cpu_start, cpu_seconds()) {
                (Some(start), Some(end)) => {
                    format!(", {:.3} M per CPU second", applied as f64 / (end - start) / 1e6)
                }
                _ => String::new(),
            };
            println!(
                "{name}/{twins}_twins: {:.3} M updates/s wall{per_cpu} (setup {} ms)",
                rate / 1e6,
                setup.as_millis()
            );
        }
    }
}
