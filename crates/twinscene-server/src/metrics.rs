//! Prometheus metrics: one process-wide recorder (the `metrics` facade) rendered at `/metrics`,
//! and the names of everything counted, kept here so that they are listed in one place.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const UPDATES_IN: &str = "twinscene_updates_in_total";
pub const UPDATES_OUT: &str = "twinscene_updates_out_total";
pub const DELTAS_OUT: &str = "twinscene_deltas_out_total";
pub const SNAPSHOTS_OUT: &str = "twinscene_snapshots_out_total";
pub const COALESCED: &str = "twinscene_updates_coalesced_total";
pub const DROPS: &str = "twinscene_viewer_drops_total";
pub const REFUSED: &str = "twinscene_refused_total";
pub const CONNECTIONS: &str = "twinscene_live_connections";
pub const LATENCY: &str = "twinscene_update_latency_seconds";
pub const COMMIT: &str = "twinscene_storage_commit_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use; every server in the process (tests run several) shares it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            // Another recorder is installed (an embedding program's): render an empty page.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

fn describe() {
    metrics::describe_counter!(UPDATES_IN, "Twin writes accepted, by source");
    metrics::describe_counter!(UPDATES_OUT, "Twin changes sent to live viewers");
    metrics::describe_counter!(DELTAS_OUT, "Delta messages sent to live viewers");
    metrics::describe_counter!(SNAPSHOTS_OUT, "Snapshots sent to live viewers");
    metrics::describe_counter!(COALESCED, "Superseded changes a slow viewer was spared");
    metrics::describe_counter!(DROPS, "Viewers that fell out of the change ring and were resynced");
    metrics::describe_counter!(REFUSED, "Requests and messages refused, by reason");
    metrics::describe_gauge!(CONNECTIONS, "Live viewers connected");
    metrics::describe_histogram!(LATENCY, "From a write being accepted to its delta being sent");
    metrics::describe_histogram!(COMMIT, "Durable storage commit time per group of writes");
}

pub fn refused(reason: &'static str) {
    metrics::counter!(REFUSED, "reason" => reason).increment(1);
}

pub fn latency(elapsed: Duration) {
    metrics::histogram!(LATENCY).record(elapsed.as_secs_f64());
}
