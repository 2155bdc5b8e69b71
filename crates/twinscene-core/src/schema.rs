//! The JSON Schema of the scene file, generated from the types of [`crate::scene`] (feature
//! `schema`). `schema/scene.schema.json` is its checked-in output: editors use it to complete and
//! check scene files; `twinscene validate` goes further (mesh nodes, twins, models, expressions).
//!
//! Types with their own serde code (colors, twins, range bounds) describe themselves here.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use crate::color::Color;
use crate::scene::Scene;
use crate::twin::Twin;

/// The schema's `$id`: names this version of the scene format.
pub const SCHEMA_ID: &str = "urn:twinscene:scene:1";

/// The JSON Schema (draft 2020-12) of a scene file, with `$id`, title and description.
pub fn scene_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Scene>();
    schema.insert("$id".into(), SCHEMA_ID.into());
    schema.insert("title".into(), "twinscene scene".into());
    schema.insert(
        "description".into(),
        "A twinscene scene file: a glTF/GLB model, its twins, the mesh nodes of each element and \
         the behaviors that paint elements by twin state (docs/scene-format.md). Unknown fields \
         are errors. Checks beyond this schema (mesh nodes, twins, DTDL models, expression types): \
         `twinscene validate`."
            .into(),
    );
    schema.to_value()
}

/// A numeric range bound: a number, `null` or an infinity written as a string (open end).
pub(crate) fn range_bound(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A number; null, \"Infinity\" or \"-Infinity\" for an open end.",
        "anyOf": [
            {"type": "number"},
            {"type": "null"},
            {"enum": ["Infinity", "-Infinity", "+Infinity"]}
        ]
    })
}

/// A value-range visual's kind, with the names 3D Scenes writes as aliases.
pub(crate) fn value_kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "numeric: `values` is [min, max], half-open; categorical: `values` lists the values that match.",
        "enum": ["numeric", "categorical", "NumericRange", "CategoricalValues"],
        "default": "numeric"
    })
}

impl JsonSchema for Color {
    fn schema_name() -> Cow<'static, str> {
        "Color".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An sRGB color, #rgb or #rrggbb.",
            "type": "string",
            "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
        })
    }
}

impl JsonSchema for Twin {
    fn schema_name() -> Cow<'static, str> {
        "Twin".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A digital twin in Azure Digital Twins JSON: `$dtId`, `$metadata.$model`, \
                            then its properties (components are nested objects).",
            "type": "object",
            "required": ["$dtId", "$metadata"],
            "properties": {
                "$dtId": {"type": "string"},
                "$etag": {"type": "string"},
                "$metadata": {
                    "type": "object",
                    "required": ["$model"],
                    "properties": {"$model": {"type": "string", "description": "The twin's DTDL interface id."}},
                    "additionalProperties": true
                }
            },
            "additionalProperties": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_colors_have_a_pattern() {
        let schema = scene_schema();
        assert_eq!(schema["$id"], SCHEMA_ID);
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["properties"]["$schema"].is_object());
        assert_eq!(schema["$defs"]["Color"]["type"], "string");
        let required = schema["$defs"]["ColorRange"]["required"].as_array().unwrap();
        assert!(required.contains(&"min".into()) && required.contains(&"max".into()));
    }
}
