//! The native criterion workload (`benches/workload.rs`) behind a wasm-bindgen entry point, so
//! that Node can time the same patch+evaluate loop compiled to wasm32.

use wasm_bindgen::prelude::wasm_bindgen;

#[path = "../../benches/workload.rs"]
mod workload;

/// A runtime with its prepared updates.
#[wasm_bindgen]
pub struct Bench {
    runtime: twinscene_core::runtime::SceneRuntime,
    updates: Vec<(String, Vec<json_patch::PatchOperation>)>,
}

#[wasm_bindgen]
impl Bench {
    /// `twins` twins (rooms and floors), `updates` prepared single-property updates.
    #[wasm_bindgen(constructor)]
    pub fn new(twins: usize, floor_average: bool, updates: usize) -> Bench {
        Bench { runtime: workload::runtime(twins, floor_average), updates: workload::updates(twins, updates) }
    }

    /// Applies every prepared update once; returns the number of style changes.
    pub fn apply(&mut self) -> usize {
        workload::apply(&mut self.runtime, &self.updates)
    }

    pub fn update_count(&self) -> usize {
        self.updates.len()
    }
}
