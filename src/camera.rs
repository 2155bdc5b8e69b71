//! The camera and lights: an orbit camera (drag to orbit, right-drag to pan, wheel to zoom)
//! that frames the whole model once its layout is known.

use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy_panorbit_camera::{PanOrbitCamera, PanOrbitCameraPlugin};

use crate::scene_loading::ElementBounds;

/// Initial view direction: from the south-east, looking slightly down, as building views are.
const VIEW_YAW: f32 = 0.7;
const VIEW_PITCH: f32 = 0.45;
/// Scales the framing distance: below 1 fills more of the view.
const FRAMING_MARGIN: f32 = 0.8;

pub(super) fn plugin(app: &mut App) {
    app.add_plugins(PanOrbitCameraPlugin)
        .insert_resource(ClearColor(Color::srgb_u8(0x1b, 0x1f, 0x24)))
        .insert_resource(GlobalAmbientLight { color: Color::WHITE, brightness: 400.0, ..default() })
        .add_systems(Startup, spawn_camera_and_light)
        .add_systems(Update, frame_model.run_if(resource_added::<ElementBounds>));
}

fn spawn_camera_and_light(mut commands: Commands) {
    commands.spawn((
        PanOrbitCamera::default(),
        // MSAA multiplies the cost of every pixel on software WebGL; edges stay acceptable.
        Msaa::Off,
        Tonemapping::AcesFitted,
        Transform::from_xyz(20.0, 15.0, 20.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.spawn((
        DirectionalLight { illuminance: 6_000.0, shadow_maps_enabled: false, ..default() },
        Transform::from_xyz(3.0, 10.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
}

fn frame_model(bounds: Res<ElementBounds>, mut camera: Single<(&mut PanOrbitCamera, &Projection)>) {
    let (min, max) = bounds.scene;
    let center = (min + max) * 0.5;
    let fov = match camera.1 {
        Projection::Perspective(perspective) => perspective.fov,
        _ => std::f32::consts::FRAC_PI_4,
    };
    // Distance at which the bounding box's half diagonal spans most of the vertical field of
    // view; the sphere fit (`/ sin`) leaves buildings, which are wide and flat, small on screen.
    let radius = ((max - min).length() * 0.5).max(0.1) / (fov * 0.5).tan() * FRAMING_MARGIN;
    let orbit = &mut camera.0;
    orbit.focus = center;
    orbit.target_focus = center;
    orbit.radius = Some(radius);
    orbit.target_radius = radius;
    orbit.yaw = Some(VIEW_YAW);
    orbit.target_yaw = VIEW_YAW;
    orbit.pitch = Some(VIEW_PITCH);
    orbit.target_pitch = VIEW_PITCH;
    orbit.force_update = true;
}
