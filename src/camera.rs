//! The camera and lights: an orbit camera (drag to orbit, right-drag to pan, wheel or pinch to
//! zoom, arrow keys to orbit, +/- to zoom) that frames the whole model once its layout is known
//! and flies to elements on request. Flights are animated by the orbit camera's smoothing.

use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy_panorbit_camera::{PanOrbitCamera, PanOrbitCameraPlugin};

use crate::app_phase::ready;
use crate::scene_loading::ElementBounds;
use crate::twin_state::TwinRuntime;

/// Initial view direction: from the south-east, looking slightly down, as building views are.
const VIEW_YAW: f32 = 0.7;
const VIEW_PITCH: f32 = 0.45;
/// Scales the framing distance: below 1 fills more of the view.
const FRAMING_MARGIN: f32 = 0.8;
/// An element flown to fills about this share of the view's height.
const FOCUS_MARGIN: f32 = 1.6;
/// Radians per second of keyboard orbit, and zoom factor per second of keyboard zoom.
const KEY_ORBIT_SPEED: f32 = 1.2;
const KEY_ZOOM_SPEED: f32 = 1.8;

/// Where the page or the user wants the camera.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraRequest {
    /// Frame the whole model from the default direction.
    FrameAll,
    /// Fly to the element with this index, keeping the current direction.
    FlyTo(usize),
    /// Fly to the scene's viewpoint with this index.
    Viewpoint(usize),
}

// The scene's lights: a white key light shining from KEY_LIGHT_FROM toward the origin and white
// ambient light. Batched geometry lights itself from the same values (batched_geometry.rs). With
// the default exposure, a style-colored face (which adds a quarter of its color as self-light)
// turned to the key light shows its color at about 1.0 and one turned away at 0.55, so no tone
// mapping is needed: the color on screen is the legend's color, not a tone-mapped shift of it.
// Model materials show at 0.3 to 0.75 of their color.
pub(crate) const KEY_LIGHT_FROM: Vec3 = Vec3::new(3.0, 10.0, 5.0);
pub(crate) const KEY_LIGHT_LUX: f32 = 2_100.0;
pub(crate) const AMBIENT_BRIGHTNESS: f32 = 450.0;

pub(super) fn plugin(app: &mut App) {
    app.add_plugins(PanOrbitCameraPlugin)
        .add_message::<CameraRequest>()
        .insert_resource(ClearColor(Color::srgb_u8(0x1b, 0x1f, 0x24)))
        .insert_resource(GlobalAmbientLight {
            color: Color::WHITE,
            brightness: AMBIENT_BRIGHTNESS,
            ..default()
        })
        .add_systems(Startup, spawn_camera_and_light)
        .add_systems(Update, frame_on_load.run_if(resource_added::<ElementBounds>))
        .add_systems(Update, (keyboard_orbit, fly).chain().run_if(ready));
}

fn spawn_camera_and_light(mut commands: Commands) {
    commands.spawn((
        PanOrbitCamera::default(),
        // MSAA multiplies the cost of every pixel on software WebGL; edges stay acceptable.
        Msaa::Off,
        Tonemapping::None,
        Transform::from_xyz(20.0, 15.0, 20.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.spawn((
        DirectionalLight { illuminance: KEY_LIGHT_LUX, shadow_maps_enabled: false, ..default() },
        Transform::from_translation(KEY_LIGHT_FROM).looking_at(Vec3::ZERO, Vec3::Y),
    ));
}

fn frame_on_load(mut requests: MessageWriter<CameraRequest>) {
    requests.write(CameraRequest::FrameAll);
}

fn keyboard_orbit(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time<Real>>,
    mut camera: Single<&mut PanOrbitCamera>,
) {
    let step = time.delta_secs();
    let axis = |negative: KeyCode, positive: KeyCode| {
        f32::from(u8::from(keys.pressed(positive))) - f32::from(u8::from(keys.pressed(negative)))
    };
    let yaw = axis(KeyCode::ArrowRight, KeyCode::ArrowLeft);
    let pitch = axis(KeyCode::ArrowDown, KeyCode::ArrowUp);
    let zoom = axis(KeyCode::Equal, KeyCode::Minus) + axis(KeyCode::NumpadAdd, KeyCode::NumpadSubtract);
    if yaw != 0.0 || pitch != 0.0 || zoom != 0.0 {
        camera.target_yaw += yaw * KEY_ORBIT_SPEED * step;
        camera.target_pitch = (camera.target_pitch + pitch * KEY_ORBIT_SPEED * step).clamp(-1.5, 1.5);
        camera.target_radius *= KEY_ZOOM_SPEED.powf(zoom * step);
    }
}

fn fly(
    mut requests: MessageReader<CameraRequest>,
    bounds: Res<ElementBounds>,
    runtime: Res<TwinRuntime>,
    mut camera: Single<(&mut PanOrbitCamera, &Projection)>,
    mut framed_once: Local<bool>,
) {
    let fov = match camera.1 {
        Projection::Perspective(perspective) => perspective.fov,
        _ => std::f32::consts::FRAC_PI_4,
    };
    // Distance at which a box's half diagonal spans the vertical field of view (times margin).
    let distance_for = |min: Vec3, max: Vec3, margin: f32| {
        ((max - min).length() * 0.5).max(0.1) / (fov * 0.5).tan() * margin
    };
    for request in requests.read() {
        let orbit = &mut camera.0;
        match *request {
            CameraRequest::FrameAll => {
                let (min, max) = bounds.scene;
                orbit.target_focus = (min + max) * 0.5;
                orbit.target_radius = distance_for(min, max, FRAMING_MARGIN);
                orbit.target_yaw = VIEW_YAW;
                orbit.target_pitch = VIEW_PITCH;
                if !*framed_once {
                    // The first framing jumps, so the scene is still when it is announced ready;
                    // later ones fly.
                    *framed_once = true;
                    orbit.focus = orbit.target_focus;
                    orbit.radius = Some(orbit.target_radius);
                    orbit.yaw = Some(VIEW_YAW);
                    orbit.pitch = Some(VIEW_PITCH);
                    orbit.force_update = true;
                }
            }
            CameraRequest::FlyTo(element) => {
                let Some((min, max)) = bounds.elements.get(element).copied().flatten() else { continue };
                orbit.target_focus = (min + max) * 0.5;
                orbit.target_radius = distance_for(min, max, FOCUS_MARGIN);
            }
            CameraRequest::Viewpoint(index) => {
                let Some(viewpoint) = runtime.scene().viewpoints.get(index) else { continue };
                if let (Some(position), Some(target)) = (viewpoint.position, viewpoint.target) {
                    // The orbit camera sits at focus + radius * (cos p sin y, sin p, cos p cos y).
                    let (position, target) = (Vec3::from(position), Vec3::from(target));
                    let offset = position - target;
                    let radius = offset.length().max(0.1);
                    orbit.target_focus = target;
                    orbit.target_radius = radius;
                    orbit.target_yaw = offset.x.atan2(offset.z);
                    orbit.target_pitch = (offset.y / radius).clamp(-1.0, 1.0).asin();
                } else {
                    let framed = viewpoint
                        .elements
                        .iter()
                        .filter_map(|id| runtime.element_index(id))
                        .filter_map(|element| bounds.elements.get(element).copied().flatten())
                        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
                    let Some((min, max)) = framed else { continue };
                    orbit.target_focus = (min + max) * 0.5;
                    orbit.target_radius = distance_for(min, max, FOCUS_MARGIN);
                }
            }
        }
    }
}
