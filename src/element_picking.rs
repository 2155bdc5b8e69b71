//! The picking backend: which element is under each pointer. Batched geometry is one entity
//! for many elements, so Bevy's mesh picking (one hit per entity) cannot tell them apart; this
//! backend casts against each batch's parts — bounding box first, then that part's triangles —
//! and reports the element slot with the hit. Hidden elements are skipped, so a click goes
//! through them as the eye does. Meshes left out of batching are cast with Bevy's `MeshRayCast`.

use bevy::ecs::system::SystemParam;
use bevy::picking::PickingSystems;
use bevy::picking::backend::ray::RayMap;
use bevy::picking::backend::{HitData, PointerHits};
use bevy::picking::mesh_picking::ray_cast::{MeshRayCast, MeshRayCastSettings, RayCastVisibility};
use bevy::prelude::*;

use crate::batched_geometry::{BatchGeometry, BatchPart, ElementStates};
use crate::cpu_timings::{CpuTimings, elapsed_ms};
use crate::detail_levels::FarDetail;

/// The element slot a batch hit landed on (see `batched_geometry::slot_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHit(pub u32);

pub(super) fn plugin(app: &mut App) {
    app.add_systems(PreUpdate, cast_pointer_rays.in_set(PickingSystems::Backend));
}

/// The closest hit of a ray on a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchHit {
    pub slot: u32,
    pub distance: f32,
    pub point: Vec3,
    pub normal: Vec3,
}

/// A bounding-volume tree over a batch's parts: boxes split at the median of the longest axis,
/// a few parts per leaf, so a ray visits O(log parts) boxes instead of all of them (a tiled
/// facility batch holds 10^5 parts and more).
#[derive(Default, Debug)]
pub struct PartTree {
    nodes: Vec<TreeNode>,
    /// Part indices, leaves' parts contiguous.
    order: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct TreeNode {
    min: Vec3,
    max: Vec3,
    /// Leaf: `order[first..first + count]`. Inner (count 0): children at `first` and `first + 1`.
    first: u32,
    count: u32,
}

const PARTS_PER_LEAF: usize = 4;

impl PartTree {
    pub fn build(parts: &[BatchPart]) -> Self {
        let mut tree = PartTree { nodes: Vec::new(), order: (0..parts.len() as u32).collect() };
        if parts.is_empty() {
            return tree;
        }
        tree.nodes.push(TreeNode { min: Vec3::ZERO, max: Vec3::ZERO, first: 0, count: 0 });
        // (node, range of `order`) still to split; no recursion, so no stack overflow in wasm.
        let mut pending = vec![(0usize, 0usize, parts.len())];
        while let Some((node, start, end)) = pending.pop() {
            let members = &mut tree.order[start..end];
            let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
            for &part in members.iter() {
                (min, max) = (min.min(parts[part as usize].min), max.max(parts[part as usize].max));
            }
            if members.len() <= PARTS_PER_LEAF {
                tree.nodes[node] = TreeNode { min, max, first: start as u32, count: members.len() as u32 };
                continue;
            }
            let extent = max - min;
            let axis = if extent.x >= extent.y && extent.x >= extent.z {
                0
            } else if extent.y >= extent.z {
                1
            } else {
                2
            };
            let center = |part: &u32| {
                let part = &parts[*part as usize];
                (part.min[axis] + part.max[axis]) * 0.5
            };
            let middle = members.len() / 2;
            members.select_nth_unstable_by(middle, |a, b| center(a).total_cmp(&center(b)));
            let left = tree.nodes.len();
            tree.nodes[node] = TreeNode { min, max, first: left as u32, count: 0 };
            tree.nodes.push(TreeNode { min: Vec3::ZERO, max: Vec3::ZERO, first: 0, count: 0 });
            tree.nodes.push(TreeNode { min: Vec3::ZERO, max: Vec3::ZERO, first: 0, count: 0 });
            pending.push((left, start, start + middle));
            pending.push((left + 1, start + middle, end));
        }
        tree
    }
}

impl BatchGeometry {
    /// The closest triangle the ray hits, skipping slots for which `skip` is true.
    pub fn cast(&self, ray: Ray3d, skip: impl Fn(u32) -> bool) -> Option<BatchHit> {
        let (origin, direction) = (ray.origin, *ray.direction);
        let inverse = direction.recip();
        let mut best: Option<BatchHit> = None;
        let nodes = &self.tree.nodes;
        let mut stack = if nodes.is_empty() { Vec::new() } else { vec![0usize] };
        while let Some(index) = stack.pop() {
            let node = nodes[index];
            let Some(entry) = ray_box(origin, inverse, node.min, node.max) else { continue };
            if best.is_some_and(|b| entry > b.distance) {
                continue;
            }
            if node.count == 0 {
                stack.extend([node.first as usize, node.first as usize + 1]);
                continue;
            }
            let leaf = &self.tree.order[node.first as usize..(node.first + node.count) as usize];
            for part in leaf.iter().map(|&p| &self.parts[p as usize]) {
                if skip(part.slot) {
                    continue;
                }
                let Some(entry) = ray_box(origin, inverse, part.min, part.max) else { continue };
                if best.is_some_and(|b| entry > b.distance) {
                    continue;
                }
                if let Some(hit) = self.cast_part(origin, direction, part, best.map(|b| b.distance)) {
                    best = Some(hit);
                }
            }
        }
        best
    }

    /// The closest triangle of one part nearer than `within`.
    fn cast_part(
        &self,
        origin: Vec3,
        direction: Vec3,
        part: &BatchPart,
        within: Option<f32>,
    ) -> Option<BatchHit> {
        let mut best: Option<BatchHit> = None;
        let shape = self.shapes.shapes.get(part.shape as usize)?;
        for triangle in &shape.triangles {
            // The shape's triangles are whole (indices checked when it was made).
            let [a, b, c] = triangle.map(|i| part.transform.transform_point3(shape.positions[i as usize]));
            let nearest = best.map(|b| b.distance).or(within).unwrap_or(f32::INFINITY);
            if let Some(distance) = ray_triangle(origin, direction, a, b, c)
                && distance < nearest
            {
                let normal = (b - a).cross(c - a).normalize_or_zero();
                let point = origin + direction * distance;
                best = Some(BatchHit { slot: part.slot, distance, point, normal });
            }
        }
        best
    }
}

/// Where a ray enters a box (0 if it starts inside), if it meets it at all.
fn ray_box(origin: Vec3, inverse_direction: Vec3, min: Vec3, max: Vec3) -> Option<f32> {
    let (t1, t2) = ((min - origin) * inverse_direction, (max - origin) * inverse_direction);
    let (near, far) = (t1.min(t2).max_element().max(0.0), t1.max(t2).min_element());
    // NaN (a ray in a box face's plane) compares false: counted as a miss.
    (far >= near).then_some(near)
}

/// Möller–Trumbore, both faces: the distance along the ray to the triangle.
fn ray_triangle(origin: Vec3, direction: Vec3, a: Vec3, b: Vec3, c: Vec3) -> Option<f32> {
    let (edge1, edge2) = (b - a, c - a);
    let p = direction.cross(edge2);
    let determinant = edge1.dot(p);
    if determinant.abs() < 1e-12 {
        return None;
    }
    let inverse = 1.0 / determinant;
    let to_origin = origin - a;
    let u = to_origin.dot(p) * inverse;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = to_origin.cross(edge1);
    let v = direction.dot(q) * inverse;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let distance = edge2.dot(q) * inverse;
    (distance > 0.0).then_some(distance)
}

/// One hit of [`ElementRayCast`]: a batch with the slot hit, or an unbatched mesh entity.
#[derive(Debug, Clone, Copy)]
pub struct ElementRayHit {
    pub entity: Entity,
    pub slot: Option<u32>,
    pub distance: f32,
    pub point: Vec3,
    pub normal: Vec3,
}

/// Casts rays against what is drawn: batches (skipping hidden slots) and unbatched meshes.
#[derive(SystemParam)]
pub struct ElementRayCast<'w, 's> {
    batches: Query<'w, 's, (Entity, &'static BatchGeometry, &'static InheritedVisibility)>,
    far_details: Query<'w, 's, (), With<FarDetail>>,
    states: Option<Res<'w, ElementStates>>,
    mesh_ray_cast: MeshRayCast<'w, 's>,
}

impl ElementRayCast<'_, '_> {
    /// The closest hit on each batch and on the nearest unbatched mesh, in no order.
    pub fn cast(&mut self, ray: Ray3d) -> Vec<ElementRayHit> {
        let mut hits = Vec::new();
        for (entity, geometry, visible) in &self.batches {
            if !visible.get() {
                continue;
            }
            let hidden = |slot: u32| self.states.as_ref().is_some_and(|states| states.is_hidden(slot));
            if let Some(BatchHit { slot, distance, point, normal }) = geometry.cast(ray, hidden) {
                hits.push(ElementRayHit { entity, slot: Some(slot), distance, point, normal });
            }
        }
        let (batches, far_details) = (&self.batches, &self.far_details);
        // A far-detail batch stands in for a full one, whose triangles were cast above.
        let not_batch = |entity: Entity| !batches.contains(entity) && !far_details.contains(entity);
        let settings = MeshRayCastSettings::default()
            .with_filter(&not_batch)
            .with_visibility(RayCastVisibility::Visible);
        for (entity, hit) in self.mesh_ray_cast.cast_ray(ray, &settings) {
            hits.push(ElementRayHit {
                entity: *entity,
                slot: None,
                distance: hit.distance,
                point: hit.point,
                normal: hit.normal,
            });
        }
        hits
    }

    /// The first thing the ray meets.
    pub fn nearest(&mut self, ray: Ray3d) -> Option<ElementRayHit> {
        self.cast(ray).into_iter().min_by(|a, b| a.distance.total_cmp(&b.distance))
    }
}

fn cast_pointer_rays(
    ray_map: Res<RayMap>,
    cameras: Query<&Camera>,
    mut ray_cast: ElementRayCast,
    mut hits: MessageWriter<PointerHits>,
    mut timings: ResMut<CpuTimings>,
) {
    let (start, mut rays) = (bevy::platform::time::Instant::now(), 0);
    for (&ray_id, &ray) in ray_map.iter() {
        rays += 1;
        let Ok(camera) = cameras.get(ray_id.camera) else { continue };
        let picks: Vec<(Entity, HitData)> = ray_cast
            .cast(ray)
            .into_iter()
            .map(|hit| {
                let (depth, point, normal) = (hit.distance, Some(hit.point), Some(hit.normal));
                let data = match hit.slot {
                    Some(slot) => HitData::new_with_extra(ray_id.camera, depth, point, normal, SlotHit(slot)),
                    None => HitData::new(ray_id.camera, depth, point, normal),
                };
                (hit.entity, data)
            })
            .collect();
        if !picks.is_empty() {
            hits.write(PointerHits::new(ray_id.pointer, picks, camera.order as f32));
        }
    }
    if rays > 0 {
        (timings.pick_rays, timings.pick_ms) = (rays, elapsed_ms(start));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bevy::math::Affine3A;

    use super::*;
    use crate::batched_geometry::{PickShape, PickShapes};

    /// One shape: a unit square facing +z.
    fn unit_square() -> Arc<PickShapes> {
        let positions =
            [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]].map(Vec3::from_array);
        Arc::new(PickShapes {
            shapes: vec![PickShape { positions: positions.to_vec(), triangles: vec![[0, 1, 2], [0, 2, 3]] }],
        })
    }

    /// The unit square placed at `offset` for `slot`.
    fn square_part(slot: u32, offset: Vec3) -> BatchPart {
        BatchPart {
            slot,
            shape: 0,
            transform: Affine3A::from_translation(offset),
            min: offset,
            max: offset + Vec3::new(1.0, 1.0, 0.0),
        }
    }

    /// Two unit squares facing +z, one behind the other: slot 1 at z = 0, slot 2 at z = -1.
    fn two_squares() -> BatchGeometry {
        let parts = vec![square_part(1, Vec3::ZERO), square_part(2, Vec3::new(0.0, 0.0, -1.0))];
        let tree = PartTree::build(&parts);
        BatchGeometry { shapes: unit_square(), parts, tree }
    }

    fn ray(x: f32, y: f32) -> Ray3d {
        Ray3d::new(Vec3::new(x, y, 5.0), Dir3::NEG_Z)
    }

    #[test]
    fn the_nearest_part_is_hit_and_hidden_parts_are_skipped() {
        let geometry = two_squares();
        let hit = geometry.cast(ray(0.25, 0.75), |_| false).expect("hit");
        assert_eq!(hit.slot, 1);
        assert!((hit.distance - 5.0).abs() < 1e-5, "{hit:?}");
        let through = geometry.cast(ray(0.25, 0.75), |slot| slot == 1).expect("hit behind");
        assert_eq!(through.slot, 2);
        assert!((through.distance - 6.0).abs() < 1e-5);
        assert_eq!(geometry.cast(ray(1.5, 0.5), |_| false), None);
    }

    /// A row of `n` unit squares along x, each its own slot.
    fn row_of_squares(n: u32) -> BatchGeometry {
        let parts: Vec<BatchPart> =
            (0..n).map(|i| square_part(i + 1, Vec3::new(i as f32 * 2.0, 0.0, 0.0))).collect();
        let tree = PartTree::build(&parts);
        BatchGeometry { shapes: unit_square(), parts, tree }
    }

    #[test]
    fn the_tree_finds_every_part_of_a_large_batch() {
        let geometry = row_of_squares(1000);
        for i in [0u32, 1, 499, 998, 999] {
            let ray = Ray3d::new(Vec3::new(i as f32 * 2.0 + 0.5, 0.5, 5.0), Dir3::NEG_Z);
            assert_eq!(geometry.cast(ray, |_| false).map(|h| h.slot), Some(i + 1), "square {i}");
        }
        // Between squares there is nothing.
        let gap = Ray3d::new(Vec3::new(1.5, 0.5, 5.0), Dir3::NEG_Z);
        assert_eq!(geometry.cast(gap, |_| false), None);
        // Every part index appears once in the tree.
        let mut order = geometry.tree.order.clone();
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_ray_from_behind_hits_the_back_face_too() {
        let geometry = two_squares();
        let from_behind = Ray3d::new(Vec3::new(0.5, 0.5, -5.0), Dir3::Z);
        assert_eq!(geometry.cast(from_behind, |_| false).map(|h| h.slot), Some(2));
    }
}
