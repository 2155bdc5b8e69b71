//! Reads the node names of a glTF model (a `.glb` container or `.gltf` JSON) without loading
//! its geometry, so that scenes can be checked against their mesh outside the viewer.

use serde::Deserialize;

/// Why the node names could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a GLB file: {0}")]
    NotGlb(&'static str),
    #[error("the glTF JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct GltfDocument {
    #[serde(default)]
    nodes: Vec<GltfNode>,
}

#[derive(Deserialize)]
struct GltfNode {
    name: Option<String>,
}

const GLB_MAGIC: &[u8; 4] = b"glTF";
const JSON_CHUNK: u32 = 0x4E4F_534A;

/// The names of the model's nodes, in node order; unnamed nodes are skipped.
pub fn node_names(bytes: &[u8]) -> Result<Vec<String>, ModelError> {
    let json = if bytes.starts_with(GLB_MAGIC) { glb_json_chunk(bytes)? } else { bytes };
    let document: GltfDocument = serde_json::from_slice(json)?;
    Ok(document.nodes.into_iter().filter_map(|node| node.name).collect())
}

/// The JSON chunk of a GLB container (glTF 2.0 §4.4): a 12-byte header, then chunks of
/// `length, type, data`; the first chunk must be JSON.
fn glb_json_chunk(bytes: &[u8]) -> Result<&[u8], ModelError> {
    let word = |at: usize| -> Option<u32> {
        bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if word(4) != Some(2) {
        return Err(ModelError::NotGlb("only glTF 2.0 GLB files are supported"));
    }
    let length = word(12).ok_or(ModelError::NotGlb("the file ends inside the header"))? as usize;
    if word(16) != Some(JSON_CHUNK) {
        return Err(ModelError::NotGlb("the first chunk is not JSON"));
    }
    bytes.get(20..20usize.saturating_add(length)).ok_or(ModelError::NotGlb("the JSON chunk is cut short"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glb(json: &str) -> Vec<u8> {
        let mut bytes = b"glTF".to_vec();
        bytes.extend(2u32.to_le_bytes());
        bytes.extend(((20 + json.len()) as u32).to_le_bytes());
        bytes.extend((json.len() as u32).to_le_bytes());
        bytes.extend(JSON_CHUNK.to_le_bytes());
        bytes.extend(json.as_bytes());
        bytes
    }

    #[test]
    fn reads_names_from_glb_and_gltf() {
        let json = r#"{"nodes": [{"name": "Wall"}, {"mesh": 0}, {"name": "Roof"}]}"#;
        assert_eq!(node_names(&glb(json)).unwrap(), ["Wall", "Roof"]);
        assert_eq!(node_names(json.as_bytes()).unwrap(), ["Wall", "Roof"]);
    }

    #[test]
    fn broken_files_give_errors_not_panics() {
        let good = glb(r#"{"nodes": []}"#);
        for cut in 0..good.len() {
            let _ = node_names(&good[..cut]);
        }
        assert!(matches!(node_names(&good[..30]), Err(ModelError::NotGlb(_))));
        assert!(matches!(node_names(b"glTF\x01\0\0\0"), Err(ModelError::NotGlb(_))));
        assert!(matches!(node_names(b"not json"), Err(ModelError::Json(_))));
    }
}
