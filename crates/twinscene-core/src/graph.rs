//! The twin store: every twin and relationship of a scene, updated only through JSON Patch so
//! that the server and every viewer apply the same changes the same way.

use std::collections::BTreeMap;

use json_patch::PatchOperation;

use crate::patch::{PatchRejection, apply_to_twin};
use crate::twin::{Relationship, Twin};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwinGraph {
    twins: BTreeMap<String, Twin>,
    relationships: Vec<Relationship>,
}

/// Why an update was not applied. The graph is unchanged whenever one is returned.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no twin has id {0:?}")]
    UnknownTwin(String),
    #[error("patch for twin {twin:?} refused: {rejection}")]
    Rejected { twin: String, rejection: PatchRejection },
}

impl TwinGraph {
    pub fn new(twins: impl IntoIterator<Item = Twin>, relationships: Vec<Relationship>) -> Self {
        let twins = twins.into_iter().map(|twin| (twin.id.clone(), twin)).collect();
        Self { twins, relationships }
    }

    pub fn twin(&self, id: &str) -> Option<&Twin> {
        self.twins.get(id)
    }

    /// Twins in id order.
    pub fn twins(&self) -> impl ExactSizeIterator<Item = &Twin> {
        self.twins.values()
    }

    pub fn relationships(&self) -> &[Relationship] {
        &self.relationships
    }

    /// Applies a JSON Patch to one twin, all operations or none; `timestamp` (RFC 3339) becomes
    /// the last update time of the touched properties.
    pub fn apply_patch(
        &mut self,
        id: &str,
        patch: &[PatchOperation],
        timestamp: &str,
    ) -> Result<&Twin, UpdateError> {
        let twin = self.twins.get_mut(id).ok_or_else(|| UpdateError::UnknownTwin(id.to_owned()))?;
        apply_to_twin(twin, patch, timestamp)
            .map_err(|rejection| UpdateError::Rejected { twin: id.to_owned(), rejection })?;
        Ok(twin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patching_an_unknown_twin_is_an_error() {
        let mut graph = TwinGraph::new([Twin::new("a", "m")], vec![]);
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/x", "value": 1}])).unwrap();
        assert!(
            matches!(graph.apply_patch("b", &patch, "t"), Err(UpdateError::UnknownTwin(id)) if id == "b")
        );
        assert_eq!(graph.apply_patch("a", &patch, "t").unwrap().property("x"), Some(&json!(1)));
    }
}
