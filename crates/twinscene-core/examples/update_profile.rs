//! The benchmark workload for instruction counting: builds one runtime, then applies the
//! prepared updates a number of times. Under `valgrind --tool=callgrind
//! --toggle-collect='*workload*apply*'` the count covers the updates alone, so instructions
//! per update do not depend on the machine's load. The first pass also creates the rooms'
//! update times; the difference between 5 passes and 1, over 40 000, is the steady state.
//! `cargo run --release -p twinscene-core --example update_profile -- [twins] [floor-average] [passes]`

use std::hint::black_box;
use std::time::Instant;

#[path = "../benches/workload.rs"]
mod workload;

fn main() {
    let mut args = std::env::args().skip(1);
    let twins: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let floor_average = args.next().is_some_and(|a| a == "true" || a == "floor-average");
    let passes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut runtime = workload::runtime(twins, floor_average);
    let updates = workload::updates(twins, 10_000);
    let mut changes = 0;
    let start = Instant::now();
    for _ in 0..passes {
        changes += workload::apply(&mut runtime, black_box(&updates));
    }
    let seconds = start.elapsed().as_secs_f64();
    let applied = passes * updates.len();
    println!("{applied} updates, {changes} style changes, {:.3} M updates/s", applied as f64 / seconds / 1e6);
}
