//! Levels of detail of a chunked model (see `batched_geometry`): each chunk is drawn at one level
//! at a time, chosen by the camera's distance to the chunk.
//!
//! 1. Full geometry, nearer than `FAR_DETAIL_DIAGONALS` chunk diagonals.
//! 2. Every element as its box (12 triangles), beyond.
//! 3. Sparse boxes, farther still: in each cube of space one cell wide, only the largest
//!    element's box. Three such levels, with cells of the model's median element size, twice
//!    and four times that. A level starts where its cell shrinks to [`SPARSE_CELL_PIXELS`] on
//!    screen, so what is left out is a pixel or two across; the distances follow the viewport's
//!    height and the camera's field of view (a kiosk at 2160 pixels keeps every box seven times
//!    farther out than a 300-pixel test canvas).
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

use crate::batched_geometry::ElementStates;

/// A sparse level starts where one of its cells is this many pixels tall on screen.
pub const SPARSE_CELL_PIXELS: f32 = 2.0;
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
    /// field of view `fov` (radians); none is nearer than the boxes or the level before it.
    pub fn sparse_starts(&self, height: f32, fov: f32) -> Vec<f32> {
        let pixels_per_metre_at_unit_distance = height / (2.0 * (fov * 0.5).tan());
        let mut nearest = self.boxes_from;
        self.sparse_cells
            .iter()
            .map(|cell| {
                nearest = nearest.max(cell * pixels_per_metre_at_unit_distance / SPARSE_CELL_PIXELS);
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
    // Before the visibility ranges are checked, so a change shows in the same frame.
    app.add_systems(
        PostUpdate,
        fit_far_levels_to_viewport
            .run_if(resource_exists::<DetailDistances>)
            .before(VisibilitySystems::CheckVisibility),
    );
}

/// Moves the far levels' distances when the viewport, the field of view or whether anything is
/// hidden changes, and when far levels appear.
fn fit_far_levels_to_viewport(
    mut distances: ResMut<DetailDistances>,
    camera: Query<(&Camera, &Projection), With<Camera3d>>,
    states: Option<Res<ElementStates>>,
    mut levels: Query<(&FarDetail, &mut VisibilityRange)>,
    new_levels: Query<(), Added<FarDetail>>,
) {
    let Some((camera, projection)) = camera.iter().next() else { return };
    let Some(size) = camera.physical_viewport_size() else { return };
    let fov = match projection {
        Projection::Perspective(perspective) => perspective.fov,
        _ => std::f32::consts::FRAC_PI_4,
    };
    let any_hidden = states.is_some_and(|states| states.any_hidden());
    let starts = if any_hidden || !distances.sparse_levels_built {
        vec![f32::MAX; distances.sparse_cells.len()]
    } else {
        distances.sparse_starts(size.y.max(1) as f32, fov)
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
        let starts = distances.sparse_starts(300.0, fov);
        // 4 m is 2 px at 300 px / (2 · 2 px / 4 m) = 300 m; 12 m at 900 m.
        assert!((starts[0] - 300.0).abs() < 1e-3 && (starts[1] - 900.0).abs() < 1e-3, "{starts:?}");
        // A taller viewport moves them out in proportion.
        let tall = distances.sparse_starts(2160.0, fov);
        assert!((tall[0] / starts[0] - 7.2).abs() < 1e-3, "{tall:?}");
        // A tiny viewport would start them nearer than the boxes: they start with the boxes.
        let tiny = distances.sparse_starts(10.0, fov);
        assert_eq!(tiny, vec![100.0, 100.0]);
        // Each level is drawn from its start to the next level's.
        assert_eq!(distances.range_of(FarDetail::Boxes, &starts), (100.0, starts[0]));
        assert_eq!(distances.range_of(FarDetail::Sparse(0), &starts), (starts[0], starts[1]));
        assert_eq!(distances.range_of(FarDetail::Sparse(1), &starts), (starts[1], f32::MAX));
        // Not used (something is hidden): the boxes are drawn all the way out, sparse never.
        let unused = [f32::MAX, f32::MAX];
        assert_eq!(distances.range_of(FarDetail::Boxes, &unused), (100.0, f32::MAX));
        assert_eq!(distances.range_of(FarDetail::Sparse(0), &unused).0, f32::MAX);
    }
}
