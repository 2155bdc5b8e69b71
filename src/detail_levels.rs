//! Levels of detail of a chunked model (see `batched_geometry`): each chunk is drawn at one level
//! at a time, chosen by the camera's distance to the chunk.
//!
//! 1. Full geometry, nearer than `FAR_DETAIL_DIAGONALS` chunk diagonals.
//! 2. Every element as its box (12 triangles), beyond.
//! 3. Sparse boxes, farther still: in each cube of space one cell wide, only the largest
//!    element's box. Three such levels, with cells of the model's median element size, twice
//!    and four times that. A level starts where its cell shrinks to a few pixels on screen
//!    ([`FINEST_CELL_PIXELS`], 2), so what is left out is a pixel or two across; the distances
//!    follow the viewport's height and the camera's field of view (a kiosk at 2160 pixels keeps
//!    every box seven times farther out than a 300-pixel test canvas).
//!
//! The frame rate governs how many pixels: while the viewer draws fewer than `min_fps` frames a
//! second ([`ViewerConfig::min_fps`], the page's `min-fps`, default [`DEFAULT_MIN_FPS`]), the
//! sparse levels start nearer, a step at a time, up to cells of [`COARSEST_CELL_PIXELS`]
//! (`FrameRateGovernor`); with frames to spare they move back out. A GPU draws a facility at full
//! far detail; software rendering (SwiftShader, a machine without a GPU) at 4 pixels a cell drew
//! 10^6 elements 2–3× as fast as at 2, and looked the same at a glance (docs/performance.md).
//!
//! Why: software WebGL (SwiftShader) pays for every vertex and triangle, and a facility of 10^5
//! elements seen whole was ~1.3 M box triangles (~260 ms a frame on the 2-core test machine),
//! most of them smaller than a pixel. A sparse box is still an element's own box with its own
//! slot, so it shows that element's exact state; what a sparse level drops is the smaller
//! elements next to it. That is wrong when the larger one is hidden and a smaller one is not
//! (a layer switched off, a visibility rule showing only alarms), so while any element is
//! hidden the sparse levels are not used and every box is drawn.

use bevy::camera::visibility::{VisibilityRange, VisibilitySystems};
use bevy::prelude::*;

use crate::ViewerConfig;
use crate::batched_geometry::ElementStates;

/// A sparse level starts where one of its cells is this many pixels tall on screen, while the
/// frame rate allows.
pub const FINEST_CELL_PIXELS: f32 = 2.0;
/// ... and at most this many when it does not.
pub const COARSEST_CELL_PIXELS: f32 = 4.0;
/// What one step of the governor moves the cell size by.
const CELL_PIXELS_STEP: f32 = 0.5;
/// Below this frame rate the sparse levels start nearer (pages set it with `min-fps`; 0 keeps
/// the finest detail whatever the frame rate). A software renderer's frame of a whole facility
/// takes 100–300 ms at the finest detail; ten frames a second keeps orbiting usable.
pub const DEFAULT_MIN_FPS: f32 = 10.0;
/// The frame rate is measured over at least this long and this many frames.
const WINDOW_SECONDS: f32 = 1.0;
const WINDOW_FRAMES: u32 = 3;
/// A frame longer than this is a pause (a hidden tab's frames stop; the first one back spans
/// the whole time hidden), not a measure of drawing: it restarts the window.
const PAUSE_SECONDS: f32 = 2.0;
/// A finer level is tried again only with this much more than `min_fps` to spare.
const RELAX_FACTOR: f32 = 1.5;
/// After a finer level tried was too slow, how long before trying it again: doubling from the
/// first to the last on every failed try, so a view whose finer level never holds does not
/// flicker between the two.
const RETRY_AFTER_SECONDS: (f32, f32) = (8.0, 256.0);
/// The cells of the sparse levels, in multiples of the model's median element size (the
/// diagonal of its box).
pub const SPARSE_CELL_SIZES: [f32; 3] = [1.0, 2.0, 4.0];

/// Marks a batch drawn for a chunk seen from afar, and which level it is. Picking skips it: it
/// always casts against the full batch's `BatchGeometry`.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug)]
pub enum FarDetail {
    /// Every element's box.
    Boxes,
    /// The largest box in each cell of `DetailDistances::sparse_cells[index]`.
    Sparse(usize),
}

/// Where the far levels start. Set by `batched_geometry` when it batches a chunked model.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct DetailDistances {
    /// Distance from a chunk's center beyond which it is drawn as boxes.
    pub boxes_from: f32,
    /// The cell sizes of the sparse levels, in metres, nearest level first.
    pub sparse_cells: Vec<f32>,
    /// Whether the sparse levels' batches exist (they are built a frame after the others).
    pub sparse_levels_built: bool,
    /// The starts of the sparse levels as last applied to the batches (`f32::MAX`: not used).
    applied: Vec<f32>,
}

impl DetailDistances {
    pub fn new(boxes_from: f32, sparse_cells: Vec<f32>) -> Self {
        Self { boxes_from, sparse_cells, sparse_levels_built: false, applied: Vec::new() }
    }

    /// The starts of the sparse levels for a viewport `height` pixels tall with a vertical
    /// field of view `fov` (radians), each where its cell is `cell_pixels` tall; none is nearer
    /// than the boxes or the level before it.
    pub fn sparse_starts(&self, height: f32, fov: f32, cell_pixels: f32) -> Vec<f32> {
        let pixels_per_metre_at_unit_distance = height / (2.0 * (fov * 0.5).tan());
        let mut nearest = self.boxes_from;
        self.sparse_cells
            .iter()
            .map(|cell| {
                nearest = nearest.max(cell * pixels_per_metre_at_unit_distance / cell_pixels);
                nearest
            })
            .collect()
    }

    /// The distances over which a level is drawn, given the sparse levels' starts.
    fn range_of(&self, level: FarDetail, starts: &[f32]) -> (f32, f32) {
        let start_of = |index: usize| starts.get(index).copied().unwrap_or(f32::MAX);
        match level {
            FarDetail::Boxes => (self.boxes_from, start_of(0)),
            FarDetail::Sparse(index) => (start_of(index), start_of(index + 1).max(start_of(index))),
        }
    }
}

/// Chooses how many pixels tall a sparse level's cell may be from the frame rate: a step
/// coarser for every window of frames slower than `min_fps`, a step finer for one with
/// [`RELAX_FACTOR`] times that to spare, unless that finer level was just found too slow.
#[derive(Resource, Clone, Debug)]
pub struct FrameRateGovernor {
    min_fps: f32,
    cell_pixels: f32,
    window_seconds: f32,
    window_frames: u32,
    /// The next frame is not counted: it is the one that changed the levels.
    skip_frame: bool,
    /// The last change was to a finer level, not yet measured.
    trying_finer: bool,
    /// Seconds of counted frames before a finer level may be tried again.
    retry_in: f32,
    retry_after: f32,
}

impl FrameRateGovernor {
    /// `min_fps` ≤ 0 (or not a number) keeps the finest detail.
    pub fn new(min_fps: f32) -> Self {
        Self {
            min_fps: if min_fps > 0.0 { min_fps } else { 0.0 },
            cell_pixels: FINEST_CELL_PIXELS,
            window_seconds: 0.0,
            window_frames: 0,
            skip_frame: false,
            trying_finer: false,
            retry_in: 0.0,
            retry_after: RETRY_AFTER_SECONDS.0,
        }
    }

    /// How many pixels tall a sparse level's cell is where the level starts.
    pub fn cell_pixels(&self) -> f32 {
        self.cell_pixels
    }

    /// Counts a frame that took `seconds`; returns whether the cell size changed.
    pub fn frame(&mut self, seconds: f32) -> bool {
        if self.min_fps == 0.0 || !seconds.is_finite() || seconds < 0.0 {
            return false;
        }
        if std::mem::take(&mut self.skip_frame) {
            return false;
        }
        if seconds > PAUSE_SECONDS {
            self.restart_window();
            return false;
        }
        self.window_seconds += seconds;
        self.window_frames += 1;
        if self.window_seconds < WINDOW_SECONDS || self.window_frames < WINDOW_FRAMES {
            return false;
        }
        let fps = self.window_frames as f32 / self.window_seconds;
        self.retry_in = (self.retry_in - self.window_seconds).max(0.0);
        self.restart_window();
        let tried_finer = std::mem::take(&mut self.trying_finer);
        let step = if fps < self.min_fps {
            if tried_finer {
                self.retry_in = self.retry_after;
                self.retry_after = (self.retry_after * 2.0).min(RETRY_AFTER_SECONDS.1);
            }
            CELL_PIXELS_STEP
        } else if fps >= self.min_fps * RELAX_FACTOR && self.retry_in == 0.0 {
            self.trying_finer = true;
            -CELL_PIXELS_STEP
        } else {
            0.0
        };
        let next = (self.cell_pixels + step).clamp(FINEST_CELL_PIXELS, COARSEST_CELL_PIXELS);
        if next == self.cell_pixels {
            self.trying_finer = false;
            return false;
        }
        self.cell_pixels = next;
        self.skip_frame = true;
        true
    }

    /// Forgets the frames counted so far (while nothing is drawn that the levels would change).
    pub fn restart_window(&mut self) {
        self.window_seconds = 0.0;
        self.window_frames = 0;
    }
}

impl FromWorld for FrameRateGovernor {
    fn from_world(world: &mut World) -> Self {
        Self::new(world.get_resource::<ViewerConfig>().map_or(DEFAULT_MIN_FPS, |config| config.min_fps))
    }
}

/// The largest box (by diagonal) of each cube of `cell` metres its center falls in: the indices
/// into `boxes` a sparse level keeps, in their order.
pub fn sparse_boxes(boxes: &[(Vec3, Vec3)], cell: f32) -> Vec<usize> {
    use bevy::platform::collections::HashMap;
    let size = |index: usize| boxes[index].1.distance_squared(boxes[index].0);
    let mut largest: HashMap<IVec3, usize> = HashMap::new();
    for (index, (min, max)) in boxes.iter().enumerate() {
        let key = (((*min + *max) * 0.5) / cell).floor().as_ivec3();
        largest
            .entry(key)
            .and_modify(|kept| {
                if size(index) > size(*kept) {
                    *kept = index;
                }
            })
            .or_insert(index);
    }
    let mut kept: Vec<usize> = largest.into_values().collect();
    kept.sort_unstable();
    kept
}

/// The median diagonal of the boxes (0 for none).
pub fn median_diagonal(boxes: impl Iterator<Item = (Vec3, Vec3)>) -> f32 {
    let mut diagonals: Vec<f32> = boxes.map(|(min, max)| min.distance(max)).collect();
    if diagonals.is_empty() {
        return 0.0;
    }
    let middle = diagonals.len() / 2;
    *diagonals.select_nth_unstable_by(middle, f32::total_cmp).1
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<FrameRateGovernor>();
    // Before the visibility ranges are checked, so a change shows in the same frame.
    app.add_systems(
        PostUpdate,
        (govern_far_detail, fit_far_levels_to_viewport.run_if(resource_exists::<DetailDistances>))
            .chain()
            .before(VisibilitySystems::CheckVisibility),
    );
}

/// Whether the sparse levels are drawn: once built, and while no element is hidden (a hidden
/// largest box would take smaller visible ones with it).
fn sparse_levels_in_use(distances: &DetailDistances, states: Option<&ElementStates>) -> bool {
    distances.sparse_levels_built && !states.is_some_and(ElementStates::any_hidden)
}

/// Feeds the governor the frames drawn while the sparse levels are in use: not the frames of
/// loading, nor those of a model without them or with an element hidden (coarser cells would
/// change nothing then).
fn govern_far_detail(
    time: Res<Time<Real>>,
    distances: Option<Res<DetailDistances>>,
    states: Option<Res<ElementStates>>,
    mut governor: ResMut<FrameRateGovernor>,
) {
    if distances.is_some_and(|distances| sparse_levels_in_use(&distances, states.as_deref())) {
        governor.frame(time.delta_secs());
    } else {
        governor.restart_window();
    }
}

/// Moves the far levels' distances when the viewport, the field of view, the governor's cell size
/// or whether anything is hidden changes, and when far levels appear.
fn fit_far_levels_to_viewport(
    mut distances: ResMut<DetailDistances>,
    camera: Query<(&Camera, &Projection), With<Camera3d>>,
    states: Option<Res<ElementStates>>,
    governor: Res<FrameRateGovernor>,
    mut levels: Query<(&FarDetail, &mut VisibilityRange)>,
    new_levels: Query<(), Added<FarDetail>>,
) {
    let Some((camera, projection)) = camera.iter().next() else { return };
    let Some(size) = camera.physical_viewport_size() else { return };
    let fov = match projection {
        Projection::Perspective(perspective) => perspective.fov,
        _ => std::f32::consts::FRAC_PI_4,
    };
    let starts = if sparse_levels_in_use(&distances, states.as_deref()) {
        distances.sparse_starts(size.y.max(1) as f32, fov, governor.cell_pixels())
    } else {
        vec![f32::MAX; distances.sparse_cells.len()]
    };
    if starts == distances.applied && new_levels.is_empty() {
        return;
    }
    for (level, mut range) in &mut levels {
        let (start, end) = distances.range_of(*level, &starts);
        let wanted = VisibilityRange { start_margin: start..start, end_margin: end..end, use_aabb: true };
        if *range != wanted {
            *range = wanted;
        }
    }
    distances.applied = starts;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(center: Vec3, size: f32) -> (Vec3, Vec3) {
        (center - Vec3::splat(size / 2.0), center + Vec3::splat(size / 2.0))
    }

    #[test]
    fn a_sparse_level_keeps_the_largest_box_of_each_cell_in_order() {
        let boxes = [
            cube(Vec3::new(0.5, 0.5, 0.5), 0.2),
            cube(Vec3::new(0.6, 0.4, 0.5), 0.8),  // same cell, larger
            cube(Vec3::new(5.5, 0.5, 0.5), 0.1),  // alone in its cell
            cube(Vec3::new(0.2, 0.2, 0.2), 0.5),  // same cell as the first two, smaller than the second
            cube(Vec3::new(-0.5, 0.5, 0.5), 0.1), // the cell on the negative side
        ];
        assert_eq!(sparse_boxes(&boxes, 1.0), vec![1, 2, 4]);
        assert_eq!(sparse_boxes(&boxes, 100.0), vec![1, 4]);
        assert_eq!(sparse_boxes(&boxes, 0.01).len(), boxes.len());
        assert!(sparse_boxes(&[], 1.0).is_empty());
    }

    #[test]
    fn the_median_diagonal_is_the_middle_one() {
        let boxes = [cube(Vec3::ZERO, 1.0), cube(Vec3::ZERO, 3.0), cube(Vec3::ZERO, 2.0)];
        assert!((median_diagonal(boxes.into_iter()) - 2.0 * 3f32.sqrt()).abs() < 1e-5);
        assert_eq!(median_diagonal(std::iter::empty()), 0.0);
    }

    #[test]
    fn sparse_levels_start_where_a_cell_is_two_pixels_and_never_before_the_boxes() {
        let distances = DetailDistances::new(100.0, vec![4.0, 12.0]);
        let fov = std::f32::consts::FRAC_PI_2; // tan(fov / 2) = 1: a metre at distance d is height / 2d pixels
        let starts = distances.sparse_starts(300.0, fov, FINEST_CELL_PIXELS);
        // 4 m is 2 px at 300 px / (2 · 2 px / 4 m) = 300 m; 12 m at 900 m.
        assert!((starts[0] - 300.0).abs() < 1e-3 && (starts[1] - 900.0).abs() < 1e-3, "{starts:?}");
        // A taller viewport moves them out in proportion.
        let tall = distances.sparse_starts(2160.0, fov, FINEST_CELL_PIXELS);
        assert!((tall[0] / starts[0] - 7.2).abs() < 1e-3, "{tall:?}");
        // A tiny viewport would start them nearer than the boxes: they start with the boxes.
        let tiny = distances.sparse_starts(10.0, fov, FINEST_CELL_PIXELS);
        assert_eq!(tiny, vec![100.0, 100.0]);
        // Each level is drawn from its start to the next level's.
        assert_eq!(distances.range_of(FarDetail::Boxes, &starts), (100.0, starts[0]));
        assert_eq!(distances.range_of(FarDetail::Sparse(0), &starts), (starts[0], starts[1]));
        assert_eq!(distances.range_of(FarDetail::Sparse(1), &starts), (starts[1], f32::MAX));
        // Cells twice as many pixels tall start at half the distance.
        let coarse = distances.sparse_starts(300.0, fov, 2.0 * FINEST_CELL_PIXELS);
        assert!((coarse[0] - 150.0).abs() < 1e-3 && (coarse[1] - 450.0).abs() < 1e-3, "{coarse:?}");
        // Not used (something is hidden): the boxes are drawn all the way out, sparse never.
        let unused = [f32::MAX, f32::MAX];
        assert_eq!(distances.range_of(FarDetail::Boxes, &unused), (100.0, f32::MAX));
        assert_eq!(distances.range_of(FarDetail::Sparse(0), &unused).0, f32::MAX);
    }

    /// Runs `governor` for `seconds` of frames, each as long as `frame_seconds(cell_pixels)`
    /// says, and returns the cell size after each change with the time it happened.
    fn run(
        governor: &mut FrameRateGovernor,
        seconds: f32,
        frame_seconds: impl Fn(f32) -> f32,
    ) -> Vec<(f32, f32)> {
        let mut clock = 0.0;
        let mut changes = Vec::new();
        while clock < seconds {
            let frame = frame_seconds(governor.cell_pixels());
            clock += frame;
            if governor.frame(frame) {
                changes.push((clock, governor.cell_pixels()));
            }
        }
        changes
    }

    #[test]
    fn a_slow_frame_rate_coarsens_the_cells_a_step_a_second_up_to_the_coarsest() {
        let mut governor = FrameRateGovernor::new(10.0);
        let changes = run(&mut governor, 30.0, |_| 0.25);
        let sizes: Vec<f32> = changes.iter().map(|&(_, size)| size).collect();
        assert_eq!(sizes, vec![2.5, 3.0, 3.5, 4.0]);
        // One window (a second, at least three frames) each, the changing frame not counted.
        assert!(changes.windows(2).all(|w| (w[1].0 - w[0].0 - 1.25).abs() < 1e-3), "{changes:?}");
        // A frame rate at or above the minimum, but without the margin, changes nothing.
        let mut holding = FrameRateGovernor::new(10.0);
        run(&mut holding, 10.0, |_| 0.25);
        assert!(run(&mut holding, 60.0, |_| 1.0 / 12.0).is_empty());
        assert_eq!(holding.cell_pixels(), COARSEST_CELL_PIXELS);
    }

    #[test]
    fn frames_to_spare_bring_the_finest_cells_back() {
        let mut governor = FrameRateGovernor::new(10.0);
        run(&mut governor, 10.0, |_| 0.5);
        assert_eq!(governor.cell_pixels(), COARSEST_CELL_PIXELS);
        let changes = run(&mut governor, 10.0, |_| 0.02);
        assert_eq!(changes.iter().map(|&(_, size)| size).collect::<Vec<_>>(), vec![3.5, 3.0, 2.5, 2.0]);
        assert!(run(&mut governor, 10.0, |_| 0.02).is_empty(), "never finer than the finest");
    }

    #[test]
    fn a_finer_level_found_too_slow_is_tried_again_ever_more_rarely() {
        let mut governor = FrameRateGovernor::new(10.0);
        // 5 fps at the finest cells, 20 at any coarser: the finest never holds.
        let changes = run(&mut governor, 600.0, |cells| if cells == FINEST_CELL_PIXELS { 0.2 } else { 0.05 });
        let tries: Vec<f32> =
            changes.iter().filter(|&&(_, size)| size == FINEST_CELL_PIXELS).map(|&(at, _)| at).collect();
        assert!(changes.iter().all(|&(_, size)| size <= 2.5), "never coarser than needed: {changes:?}");
        assert!(tries.len() >= 3 && tries.len() <= 8, "{} tries in 10 minutes: {tries:?}", tries.len());
        let gaps: Vec<f32> = tries.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] > g[0] * 1.5), "the waits grow: {gaps:?}");
        assert!(gaps[0] >= RETRY_AFTER_SECONDS.0, "{gaps:?}");
    }

    #[test]
    fn no_minimum_frame_rate_keeps_the_finest_cells() {
        for min_fps in [0.0, -3.0, f32::NAN] {
            let mut governor = FrameRateGovernor::new(min_fps);
            assert!(run(&mut governor, 30.0, |_| 2.0).is_empty());
            assert_eq!(governor.cell_pixels(), FINEST_CELL_PIXELS);
        }
        // Frames that cannot be times are not counted, nor pauses (a hidden tab's first frame
        // back), which also drop the frames counted before them.
        let mut governor = FrameRateGovernor::new(10.0);
        for _ in 0..10 {
            assert!(!governor.frame(f32::NAN) && !governor.frame(-1.0) && !governor.frame(60.0));
        }
        assert!(
            !governor.frame(0.5) && !governor.frame(0.5) && !governor.frame(30.0) && !governor.frame(0.5)
        );
        assert_eq!(governor.cell_pixels(), FINEST_CELL_PIXELS);
    }
}
