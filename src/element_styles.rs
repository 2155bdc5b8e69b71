//! Paints elements by their style: one shared material per style color (never one material per
//! element), and back to the model's own material when a rule gives no color.

use std::collections::HashMap;

use bevy::prelude::*;
use twinscene_core::color::Color as StyleColor;

use crate::scene_loading::ElementMeshes;
use crate::twin_state::{ElementStyleChanged, TwinRuntime};

/// The material for each style color in use, shared by all elements of that color.
#[derive(Resource, Default)]
pub struct StyleMaterials {
    by_color: HashMap<StyleColor, Handle<StandardMaterial>>,
}

impl StyleMaterials {
    pub fn count(&self) -> usize {
        self.by_color.len()
    }

    fn get_or_create(
        &mut self,
        color: StyleColor,
        materials: &mut Assets<StandardMaterial>,
    ) -> Handle<StandardMaterial> {
        self.by_color
            .entry(color)
            .or_insert_with(|| {
                let base = Color::srgb_u8(color.r, color.g, color.b);
                materials.add(StandardMaterial {
                    base_color: base,
                    // A little self-light keeps the hue readable on faces turned from the sun.
                    emissive: base.to_linear() * 0.25,
                    perceptual_roughness: 0.85,
                    metallic: 0.0,
                    // Building exports often wind faces inconsistently.
                    double_sided: true,
                    cull_mode: None,
                    ..default()
                })
            })
            .clone()
    }
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<StyleMaterials>().add_systems(
        Update,
        (
            apply_all_styles.run_if(resource_added::<ElementMeshes>),
            apply_style_changes.run_if(resource_exists::<ElementMeshes>),
        )
            .chain(),
    );
}

fn apply_all_styles(
    runtime: Res<TwinRuntime>,
    element_meshes: Res<ElementMeshes>,
    mut painter: ElementPainter,
    mut changes: MessageReader<ElementStyleChanged>,
) {
    // Every element is painted from the runtime's current state; earlier messages are moot.
    changes.clear();
    for element in 0..runtime.elements().len() {
        painter.paint(element, &runtime, &element_meshes);
    }
}

fn apply_style_changes(
    runtime: Res<TwinRuntime>,
    element_meshes: Res<ElementMeshes>,
    mut painter: ElementPainter,
    mut changes: MessageReader<ElementStyleChanged>,
) {
    for ElementStyleChanged(change) in changes.read() {
        painter.paint(change.element, &runtime, &element_meshes);
    }
}

#[derive(bevy::ecs::system::SystemParam)]
struct ElementPainter<'w, 's> {
    materials: ResMut<'w, Assets<StandardMaterial>>,
    style_materials: ResMut<'w, StyleMaterials>,
    mesh_materials: Query<'w, 's, &'static mut MeshMaterial3d<StandardMaterial>>,
}

impl ElementPainter<'_, '_> {
    fn paint(&mut self, element: usize, runtime: &TwinRuntime, element_meshes: &ElementMeshes) {
        let color = runtime.style(element).color;
        let style_material = color.map(|c| self.style_materials.get_or_create(c, &mut self.materials));
        for mesh in element_meshes.meshes_of(element) {
            let Ok(mut material) = self.mesh_materials.get_mut(mesh.entity) else { continue };
            let wanted = style_material.as_ref().unwrap_or(&mesh.model_material);
            if material.0 != *wanted {
                material.0 = wanted.clone();
            }
        }
    }
}
