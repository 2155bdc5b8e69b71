//! Patch + evaluate throughput for 10^4 and 10^6 twins, with a color rule alone and with a
//! floor-average computed rule, and the memory a runtime takes per twin.
//! Run with `cargo bench -p twinscene-core`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};

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

fn main() {
    // Building the 10^6-twin runtimes for the report takes a while; skip it when profiling.
    if std::env::var_os("TWINSCENE_BENCH_NO_MEMORY").is_none() {
        report_memory();
    }
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion);
    criterion.final_summary();
}
