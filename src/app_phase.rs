//! The phase the viewer is in: loading (with its current stage), ready, or failed with a
//! message for the user. A plain resource with run conditions keeps Bevy's state machinery
//! (an extra feature and rebuild) out of the build.

use bevy::prelude::*;

#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub enum AppPhase {
    #[default]
    Booting,
    Loading(LoadStage),
    Ready,
    /// Loading failed; the message says what and where, for the user.
    Failed(String),
}

/// What is being waited for while loading, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadStage {
    Scene,
    Mesh,
    Layout,
}

impl LoadStage {
    pub fn name(self) -> &'static str {
        match self {
            LoadStage::Scene => "scene",
            LoadStage::Mesh => "mesh",
            LoadStage::Layout => "layout",
        }
    }
}

impl AppPhase {
    pub fn fail(&mut self, message: impl Into<String>) {
        let message = message.into();
        error!("{message}");
        *self = AppPhase::Failed(message);
    }
}

/// Run condition: the viewer is in `stage` of loading.
pub fn loading(stage: LoadStage) -> impl Fn(Res<AppPhase>) -> bool + Clone {
    move |phase: Res<AppPhase>| *phase == AppPhase::Loading(stage)
}

/// Run condition: the scene is shown.
pub fn ready(phase: Res<AppPhase>) -> bool {
    *phase == AppPhase::Ready
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<AppPhase>();
}
