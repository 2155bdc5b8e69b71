//! Patch + evaluate throughput for 10^4 and 10^6 twins, with a color rule alone and with a
//! floor-average computed rule, the memory a runtime takes per twin, and a staleness tick at
//! 10^6 elements (a look at every element's twin against following the writes).
//! Run with `cargo bench -p twinscene-core`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use twinscene_core::staleness;

#[path = "workload.rs"]
mod workload;

/// Counts live heap bytes, to report memory per twin.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Counting is on only while memory is measured, so that it does not slow the throughput runs.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(bytes: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn report_memory() {
    COUNTING.store(true, Ordering::Relaxed);
    for twins in [10_000, 1_000_000] {
        for floor_average in [false, true] {
            let before = LIVE_BYTES.load(Ordering::Relaxed);
            let runtime = workload::runtime(twins, floor_average);
            let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
            let count = runtime.graph().twin_count();
            eprintln!(
                "memory: {count} twins (+{} relationships, {} elements, floor average: {floor_average}): {:.0} bytes per twin",
                runtime.graph().relationship_count(),
                runtime.elements().len(),
                bytes as f64 / count as f64
            );
            drop(black_box(runtime));
        }
    }
    COUNTING.store(false, Ordering::Relaxed);
}

const BATCH: usize = 10_000;

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("patch_and_evaluate");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));
    for twins in [10_000, 1_000_000] {
        for floor_average in [false, true] {
            let mut runtime = workload::runtime(twins, floor_average);
            let updates = workload::updates(twins, BATCH);
            let name = if floor_average { "color_and_floor_average" } else { "color" };
            group.bench_function(format!("{name}/{twins}_twins"), |b| {
                b.iter_batched_ref(
                    || (),
                    |_| black_box(workload::apply(&mut runtime, &updates)),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

/// A viewer's once-a-second staleness check at 10^6 elements whose twins were all written,
/// with 10^4 writes since the last tick: looking at every element's twin (as the viewer did)
/// against taking the recorded writes and the elements that came due.
fn staleness_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("staleness_tick");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let twins = 1_000_000;
    let mut runtime = workload::runtime(twins, false);
    // Every sensor has reported once: each twin carries a write time to read.
    let all: Vec<_> = runtime.graph().twins().map(|twin| twin.id.clone()).collect();
    let patch = workload::updates(twins, 1).remove(0).1;
    for twin in &all {
        let _ = runtime.apply_patch(twin, &patch, workload::TIMESTAMP);
    }
    let written_at =
        twinscene_core::expression::parse_rfc3339_millis(workload::TIMESTAMP).expect("a timestamp");
    let max_age = 60.0;
    let now = written_at + 1_000.0;
    let elements = runtime.elements().len();
    group.bench_function(format!("look_at_every_element/{elements}_elements"), |b| {
        b.iter(|| {
            (0..elements)
                .filter(|&element| {
                    runtime
                        .element_twin(element)
                        .is_some_and(|twin| staleness::twin_is_stale(twin, now, max_age))
                })
                .count()
        })
    });
    runtime.record_writes(true);
    let written = (0..elements)
        .map(|element| runtime.element_twin(element).and_then(staleness::last_update_millis))
        .collect();
    let mut stale = staleness::StaleElements::new(written, max_age, now);
    let updates = workload::updates(twins, BATCH);
    let mut taken = Vec::new();
    let mut flipped = Vec::new();
    group.bench_function(format!("follow_{BATCH}_writes/{elements}_elements"), |b| {
        // The writes themselves are the runtime's cost (`patch_and_evaluate`): only the tick is timed.
        b.iter_custom(|iterations| {
            let mut ticks = Duration::ZERO;
            for _ in 0..iterations {
                workload::apply(&mut runtime, &updates);
                let start = Instant::now();
                taken.clear();
                flipped.clear();
                runtime.take_written_elements(&mut taken);
                for &(element, time) in &taken {
                    stale.write(element, time, now, &mut flipped);
                }
                stale.advance(now, &mut flipped);
                black_box(flipped.len());
                ticks += start.elapsed();
            }
            ticks
        })
    });
    group.finish();
}

fn main() {
    // Building the 10^6-twin runtimes for the report takes a while; skip it when profiling.
    if std::env::var_os("TWINSCENE_BENCH_NO_MEMORY").is_none() {
        report_memory();
    }
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion);
    staleness_tick(&mut criterion);
    criterion.final_summary();
}
