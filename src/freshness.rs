//! The wall clock in the viewer. Once a second it moves the twin runtime's clock (so `age(...)`
//! expressions advance without new data) and, while live data is on, marks the elements whose
//! primary twin was not written for longer than the scene's `staleAfterSeconds` (core's
//! `staleness`). The page shows stale elements and a global live/stale/offline indicator.

use std::time::Duration;

use bevy::prelude::*;
use twinscene_core::staleness::{self, StaleElements};

use crate::live_link::{LiveLink, LiveStatus};
use crate::twin_state::{ElementStyleChanged, TwinRuntime, announce};

/// How often the clock ticks: staleness is configured in seconds, so finer is wasted work.
const TICK: Duration = Duration::from_secs(1);

/// Which elements show stale data. Changes only when an element's staleness flips.
#[derive(Resource, Default, Debug)]
pub struct Freshness {
    /// While staleness applies (the scene sets `staleAfterSeconds` and live data came): the
    /// stale elements, kept from the writes (core's `StaleElements`).
    elements: Option<StaleElements>,
    /// The runtime's binding epoch `elements` was built at: a new one (a snapshot) rebuilds it.
    epoch: u64,
    /// The elements whose staleness flipped in the tick that last changed this (publishing
    /// rewrites their entries, and only theirs).
    pub flipped: Vec<usize>,
}

impl Freshness {
    pub fn is_stale(&self, element: usize) -> bool {
        self.elements.as_ref().is_some_and(|elements| elements.is_stale(element))
    }

    pub fn stale_count(&self) -> usize {
        self.elements.as_ref().map_or(0, StaleElements::stale_count)
    }

    /// The stale elements, in scene order.
    pub fn stale_elements(&self) -> impl Iterator<Item = usize> + '_ {
        self.elements.iter().flat_map(StaleElements::stale_elements)
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
    mut written: Local<Vec<(usize, Option<f64>)>>,
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
    // Mutated quietly: only a flip is a change (publishing then rewrites the flipped entries).
    let quiet = freshness.bypass_change_detection();
    let mut flipped = std::mem::take(&mut quiet.flipped);
    flipped.clear();
    let runtime = runtime.bypass_change_detection();
    match max_age {
        None => {
            runtime.record_writes(false);
            if let Some(elements) = quiet.elements.take() {
                flipped.extend(elements.stale_elements());
            }
        }
        Some(max_age) => {
            let current = quiet.elements.as_mut().filter(|elements| {
                quiet.epoch == runtime.binding_epoch()
                    && elements.max_age_seconds() == max_age
                    && elements.len() == runtime.elements().len()
            });
            match current {
                Some(elements) => {
                    // What was written since the last tick, then what aged past the limit.
                    written.clear();
                    runtime.take_written_elements(&mut written);
                    for &(element, time) in written.iter() {
                        elements.write(element, time, now, &mut flipped);
                    }
                    elements.advance(now, &mut flipped);
                }
                None => {
                    // From every element's twin (a snapshot, a new scene, live data starting),
                    // by the twin each is bound to, not by id; from then on by the writes.
                    runtime.record_writes(true);
                    // Writes recorded since the runtime last bound are in the twins read here.
                    written.clear();
                    runtime.take_written_elements(&mut written);
                    let mut times = staleness::UpdateTimes::default();
                    let newest = (0..runtime.elements().len())
                        .map(|element| runtime.element_twin(element).and_then(|twin| times.newest(twin)))
                        .collect();
                    let elements = StaleElements::new(newest, max_age, now);
                    let before = quiet.elements.take();
                    // Both lists are in scene order: the flips are where they differ.
                    let was: std::collections::BTreeSet<usize> =
                        before.iter().flat_map(StaleElements::stale_elements).collect();
                    let is: std::collections::BTreeSet<usize> = elements.stale_elements().collect();
                    flipped.extend(was.symmetric_difference(&is));
                    quiet.elements = Some(elements);
                    quiet.epoch = runtime.binding_epoch();
                }
            }
        }
    }
    let any = !flipped.is_empty();
    quiet.flipped = flipped;
    if any {
        freshness.set_changed();
    }
}
