//! The wall clock in the viewer. Once a second it moves the twin runtime's clock (so `age(...)`
//! expressions advance without new data) and, while live data is on, marks the elements whose
//! primary twin was not written for longer than the scene's `staleAfterSeconds` (core's
//! `staleness`). The page shows stale elements and a global live/stale/offline indicator.

use std::time::Duration;

use bevy::prelude::*;
use twinscene_core::staleness;

use crate::live_link::{LiveLink, LiveStatus};
use crate::twin_state::{ElementStyleChanged, TwinRuntime, announce};

/// How often the clock ticks: staleness is configured in seconds, so finer is wasted work.
const TICK: Duration = Duration::from_secs(1);

/// Which elements show stale data. Changes only when an element's staleness flips.
#[derive(Resource, Default, Debug)]
pub struct Freshness {
    /// Per element (index into the scene's elements): its primary twin's data is stale.
    pub stale: Vec<bool>,
    pub stale_count: usize,
}

impl Freshness {
    pub fn is_stale(&self, element: usize) -> bool {
        self.stale.get(element).copied().unwrap_or(false)
    }
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<Freshness>().add_systems(Update, tick);
}

/// Milliseconds since the Unix epoch by the platform's wall clock.
pub fn wall_clock_millis() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
    }
}

fn tick(
    time: Res<Time<Real>>,
    mut since_last: Local<Duration>,
    runtime: Option<ResMut<TwinRuntime>>,
    link: Res<LiveLink>,
    mut freshness: ResMut<Freshness>,
    mut styles: MessageWriter<ElementStyleChanged>,
) {
    let Some(mut runtime) = runtime else { return };
    *since_last += time.delta();
    // Tick at once when new twin state arrived, so staleness clears with the update that ends it.
    if *since_last < TICK && !runtime.is_changed() {
        return;
    }
    *since_last = Duration::ZERO;
    let now = wall_clock_millis();
    // Moving the clock changes nothing visible unless an expression reads it; keep change
    // detection quiet then, or the page state would be rebuilt every second.
    let changes = runtime.bypass_change_detection().set_now(now);
    if !changes.is_empty() {
        runtime.set_changed();
        announce(changes, &mut styles);
    }
    let max_age = runtime.scene().stale_after_seconds.filter(|_| {
        // Staleness is about live data; with none (or before the first snapshot) there is
        // nothing that could have gone quiet.
        matches!(link.status, LiveStatus::Live | LiveStatus::Offline)
            && link.sequence.last_applied().is_some()
    });
    let stale: Vec<bool> = match max_age {
        // By each element's bound twin, not by looking its id up: at 10^6 elements that was a
        // million hash lookups every second.
        Some(max_age) => (0..runtime.elements().len())
            .map(|element| {
                runtime.element_twin(element).is_some_and(|twin| staleness::twin_is_stale(twin, now, max_age))
            })
            .collect(),
        None => Vec::new(),
    };
    if stale != freshness.stale {
        freshness.stale_count = stale.iter().filter(|&&s| s).count();
        freshness.stale = stale;
    }
}
