//! Logging in the browser. Bevy's log plugin installs `tracing-wasm` with its defaults, which
//! turn every span entry and every log line into a Performance mark and measure; the page's
//! performance timeline keeps those without limit, so a kiosk's JS heap grew by ~7 KB a minute
//! (about 14 entries a second, mostly the spans of each pointer ray cast). The viewer installs
//! the same console logger with timings off and spans disabled instead. Log lines still reach
//! the console with their level, and the `RUST_LOG`-style filter is Bevy's default.

use bevy::log::tracing_subscriber::layer::{Context, Layer};
use bevy::log::tracing_subscriber::prelude::*;
use bevy::log::tracing_subscriber::util::SubscriberInitExt;
use bevy::log::tracing_subscriber::{EnvFilter, registry};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};

/// Disables spans for every layer: the viewer never reads them in the browser.
struct NoSpans;

impl<S: Subscriber> Layer<S> for NoSpans {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() { Interest::never() } else { Interest::always() }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _context: Context<'_, S>) -> bool {
        !metadata.is_span()
    }
}

/// Installs the console logger; Bevy's `LogPlugin` must be disabled in the app.
pub fn install() {
    let filter = EnvFilter::builder().parse_lossy(format!("info,{}", bevy::log::DEFAULT_FILTER));
    let console = tracing_wasm::WASMLayer::new(
        tracing_wasm::WASMLayerConfigBuilder::new().set_report_logs_in_timings(false).build(),
    );
    // A second viewer on the page finds the logger installed already; that is fine.
    let _ = registry().with(NoSpans).with(filter).with(console).try_init();
}
