//! The offline commands of `twinscene`: `validate` (check a scene file of any supported format),
//! `import` (convert a peer format into a twinscene scene) and `schema` (the scene file's JSON
//! Schema). docs/cli.md is their manual.

pub mod import;
pub mod positions;
pub mod validate;

/// The scene file's JSON Schema as checked in at `schema/scene.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&twinscene_core::schema::scene_schema())
        .expect("a JSON value always serializes");
    text.push('\n');
    text
}
