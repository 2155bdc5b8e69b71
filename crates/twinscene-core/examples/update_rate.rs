//! The native counterpart of bench-wasm/run.mjs: the benchmark workload in the same tight loop
//! (3 s per configuration), so that native and wasm rates compare like for like.
//! `cargo run --release -p twinscene-core --example update_rate`

use std::time::Instant;

#[path = "../benches/workload.rs"]
mod workload;

fn main() {
    for twins in [10_000, 1_000_000] {
        for floor_average in [false, true] {
            let built = Instant::now();
            let mut runtime = workload::runtime(twins, floor_average);
            let setup = built.elapsed();
            let updates = workload::updates(twins, 10_000);
            workload::apply(&mut runtime, &updates);
            let start = Instant::now();
            let mut applied = 0;
            while start.elapsed().as_secs_f64() < 3.0 {
                workload::apply(&mut runtime, &updates);
                applied += updates.len();
            }
            let rate = applied as f64 / start.elapsed().as_secs_f64();
            let name = if floor_average { "color_and_floor_average" } else { "color" };
            println!("{name}/{twins}_twins: {:.3} M updates/s (setup {} ms)", rate / 1e6, setup.as_millis());
        }
    }
}
