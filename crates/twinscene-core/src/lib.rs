//! twinscene's twin runtime: the scene model, twins and their state, JSON Patch updates, visual
//! rules and the live protocol. No Bevy and no web dependency: it compiles to native (tests,
//! server) and to wasm32 (the viewer), and can be embedded on its own.
//!
//! The flow through this crate: a [`scene::Scene`] is parsed from JSON, a
//! [`runtime::SceneRuntime`] is built from it, then live [`live::TwinChange`]s are applied to
//! the runtime, which answers with the [`runtime::StyleChange`]s of the elements whose look
//! changed.
//!
//! ```
//! use twinscene_core::{scene::Scene, runtime::SceneRuntime};
//! let scene = Scene::from_json_str(r##"{
//!   "version": 1, "mesh": "room.glb",
//!   "twins": [{"$dtId": "room-1", "$metadata": {"$model": "dtmi:example:Room;1"}, "temperature": 25}],
//!   "elements": [{"id": "room-1", "twin": "room-1", "nodes": ["Room"]}],
//!   "behaviors": [{"id": "heat", "elements": "all", "visuals": [{"type": "color",
//!     "expression": "PrimaryTwin.temperature",
//!     "ranges": [{"min": null, "max": 22, "color": "#0000ff"}, {"min": 22, "max": null, "color": "#ff0000"}]}]}]
//! }"##).unwrap();
//! let runtime = SceneRuntime::new(scene).unwrap();
//! assert_eq!(runtime.style(0).color.unwrap().to_string(), "#ff0000");
//! ```

pub mod adt;
pub mod color;
pub mod computed;
pub mod dtdl;
pub mod expression;
pub mod graph;
pub mod import;
pub mod live;
pub mod model_nodes;
pub mod patch;
pub mod rules;
pub mod runtime;
pub mod scene;
pub mod scene_check;
#[cfg(feature = "schema")]
pub mod schema;
pub mod staleness;
pub mod twin;
pub mod units;
