//! The main-thread CPU time the viewer spends on the work that grows with a facility: applying
//! live updates, writing element looks, casting the pointer's rays. Measured where the work
//! happens and published with the state (`timings`), so that a benchmark reads the viewer's own
//! figures instead of inferring them from frame times, which under software WebGL are the GPU
//! process's. Excludes the render that follows (texture uploads, draws).

use bevy::platform::time::Instant;
use bevy::prelude::*;
use serde::Serialize;

/// Running totals since the viewer started (a benchmark takes differences), and the last
/// frame's pointer ray casts.
#[derive(Resource, Serialize, Default, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuTimings {
    /// Twin changes that arrived over the live link (deltas' changes, snapshots' twins).
    pub live_changes: u64,
    /// Frames that applied any live message.
    pub live_frames: u64,
    /// Milliseconds spent parsing and applying live messages to the twin runtime.
    pub live_ms: f64,
    /// Element looks written (state texture slots, or materials of unbatched meshes).
    pub painted_elements: u64,
    /// Milliseconds spent writing them.
    pub paint_ms: f64,
    /// Rays cast for pointers in the last frame that cast any, and the milliseconds they took.
    pub pick_rays: u32,
    pub pick_ms: f64,
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<CpuTimings>();
}
