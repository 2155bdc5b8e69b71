//! The twin runtime of the loaded scene (core's `SceneRuntime`) as a Bevy resource, and the
//! message that tells the rest of the viewer which elements' styles changed. The viewer changes
//! twin state only through the runtime's snapshot and patch API.

use bevy::prelude::*;
use twinscene_core::runtime::{SceneRuntime, StyleChange};

/// The twin graph and compiled behaviors of the scene being shown. Present once the scene file
/// has been parsed.
#[derive(Resource, Deref, DerefMut)]
pub struct TwinRuntime(pub SceneRuntime);

/// An element's style changed in the runtime; the new style is in the message and the runtime.
#[derive(Message, Clone, Debug)]
pub struct ElementStyleChanged(pub StyleChange);

/// Sends the changes the runtime reported after an update.
pub fn announce(changes: Vec<StyleChange>, writer: &mut MessageWriter<ElementStyleChanged>) {
    writer.write_batch(changes.into_iter().map(ElementStyleChanged));
}

pub(super) fn plugin(app: &mut App) {
    app.add_message::<ElementStyleChanged>();
}
