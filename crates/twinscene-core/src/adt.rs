//! Azure Digital Twins files: lists of twins and relationships as ADT returns them, and the ADT
//! Explorer export (`digitalTwinsFileInfo`, `digitalTwinsGraph`, `digitalTwinsModels`), read
//! with errors located by JSON pointer and written back in the same shape.

use serde_json::{Map, Value, json};

use crate::dtdl::{ModelError, ModelSet};
use crate::graph::TwinGraph;
use crate::twin::{Relationship, Twin};

/// What an ADT Explorer export holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdtExport {
    /// DTDL interfaces as written (see [`ModelSet::from_documents`]).
    pub models: Vec<Value>,
    pub twins: Vec<Twin>,
    pub relationships: Vec<Relationship>,
}

/// A file that is not in the ADT shape, located by JSON pointer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct ImportError {
    pub pointer: String,
    pub message: String,
}

fn error(pointer: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError { pointer: pointer.into(), message: message.into() }
}

/// Parses JSON text, locating a syntax error by line and column.
fn parse(text: &str) -> Result<Value, ImportError> {
    serde_json::from_str(text)
        .map_err(|e| error("", format!("not JSON at line {}, column {}: {e}", e.line(), e.column())))
}

/// The items of a list as ADT returns it: a JSON array, or a page `{"value": [...]}`.
fn items<'v>(value: &'v Value, pointer: &str) -> Result<(&'v [Value], String), ImportError> {
    match value {
        Value::Array(items) => Ok((items, pointer.to_owned())),
        Value::Object(page) => match page.get("value") {
            Some(Value::Array(items)) => Ok((items, format!("{pointer}/value"))),
            _ => Err(error(pointer, "expected an array or a page {\"value\": [...]}")),
        },
        _ => Err(error(pointer, "expected an array")),
    }
}

/// Reads ADT twin JSON: an array of twins (or a query page).
pub fn twins_from_json(text: &str) -> Result<Vec<Twin>, ImportError> {
    twins_from_value(&parse(text)?, "")
}

fn twins_from_value(value: &Value, pointer: &str) -> Result<Vec<Twin>, ImportError> {
    let (items, base) = items(value, pointer)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| Twin::from_adt_json(item).map_err(|e| error(format!("{base}/{i}"), e.to_string())))
        .collect()
}

/// Reads ADT relationship JSON: an array of relationships (or a list page).
pub fn relationships_from_json(text: &str) -> Result<Vec<Relationship>, ImportError> {
    relationships_from_value(&parse(text)?, "")
}

fn relationships_from_value(value: &Value, pointer: &str) -> Result<Vec<Relationship>, ImportError> {
    let (items, base) = items(value, pointer)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Relationship::deserialize_adt(item).map_err(|message| error(format!("{base}/{i}"), message))
        })
        .collect()
}

impl Relationship {
    /// Reads ADT relationship JSON, naming the missing or mistyped field.
    pub fn deserialize_adt(value: &Value) -> Result<Self, String> {
        let Value::Object(object) = value else { return Err("a relationship must be a JSON object".into()) };
        let field = |name: &str| match object.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(format!("relationship has no {name:?} string")),
        };
        let properties: Map<String, Value> = object
            .iter()
            .filter(|(name, _)| {
                !matches!(name.as_str(), "$relationshipId" | "$sourceId" | "$targetId" | "$relationshipName")
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Ok(Self {
            id: field("$relationshipId")?,
            source: field("$sourceId")?,
            target: field("$targetId")?,
            name: field("$relationshipName")?,
            properties,
        })
    }
}

impl AdtExport {
    /// Reads an ADT Explorer export file.
    pub fn from_json_str(text: &str) -> Result<Self, ImportError> {
        Self::from_value(&parse(text)?)
    }

    pub fn from_value(value: &Value) -> Result<Self, ImportError> {
        let Value::Object(root) = value else { return Err(error("", "an export must be a JSON object")) };
        if !root.contains_key("digitalTwinsGraph") && !root.contains_key("digitalTwinsModels") {
            return Err(error(
                "",
                "not an ADT Explorer export: no \"digitalTwinsGraph\" or \"digitalTwinsModels\"",
            ));
        }
        let mut export = Self::default();
        if let Some(graph) = root.get("digitalTwinsGraph") {
            let Value::Object(graph) = graph else {
                return Err(error("/digitalTwinsGraph", "expected an object"));
            };
            if let Some(twins) = graph.get("digitalTwins") {
                export.twins = twins_from_value(twins, "/digitalTwinsGraph/digitalTwins")?;
            }
            if let Some(relationships) = graph.get("relationships") {
                export.relationships =
                    relationships_from_value(relationships, "/digitalTwinsGraph/relationships")?;
            }
        }
        match root.get("digitalTwinsModels") {
            None => {}
            Some(Value::Array(models)) => export.models = models.clone(),
            Some(_) => return Err(error("/digitalTwinsModels", "expected an array of interfaces")),
        }
        Ok(export)
    }

    /// The export file, as ADT Explorer writes it.
    pub fn to_json(&self) -> Value {
        json!({
            "digitalTwinsFileInfo": {"fileVersion": "1.0.0"},
            "digitalTwinsGraph": {
                "digitalTwins": self.twins.iter().map(Twin::to_adt_json).collect::<Vec<_>>(),
                "relationships": self.relationships,
            },
            "digitalTwinsModels": self.models,
        })
    }

    /// The models, resolved.
    pub fn model_set(&self) -> Result<ModelSet, Vec<ModelError>> {
        ModelSet::from_documents(&self.models)
    }

    /// A graph of the export's twins and relationships, with property writes type-checked
    /// against its models.
    pub fn graph(&self) -> Result<TwinGraph, Vec<ModelError>> {
        let mut graph = TwinGraph::new(self.twins.iter().cloned(), self.relationships.clone());
        if !self.models.is_empty() {
            graph.set_models(std::sync::Arc::new(self.model_set()?));
        }
        Ok(graph)
    }

    /// An export of a graph's twins and relationships, with `models`.
    pub fn of_graph(graph: &TwinGraph, models: Vec<Value>) -> Self {
        Self { models, twins: graph.twins().cloned().collect(), relationships: graph.relationships() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{
      "digitalTwinsFileInfo": {"fileVersion": "1.0.0"},
      "digitalTwinsGraph": {
        "digitalTwins": [
          {"$dtId": "floor", "$etag": "W/\"1\"", "$metadata": {"$model": "dtmi:t:Floor;1"}},
          {"$dtId": "room", "$etag": "W/\"1\"", "$metadata": {"$model": "dtmi:t:Room;1", "temperature": {"lastUpdateTime": "2026-01-01T00:00:00Z"}}, "temperature": 21}
        ],
        "relationships": [
          {"$relationshipId": "r1", "$etag": "W/\"x\"", "$sourceId": "floor", "$targetId": "room", "$relationshipName": "contains", "since": "2020"}
        ]
      },
      "digitalTwinsModels": [
        {"@id": "dtmi:t:Floor;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
         "contents": [{"@type": "Relationship", "name": "contains", "target": "dtmi:t:Room;1",
                       "properties": [{"name": "since", "schema": "string"}]}]},
        {"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
         "contents": [{"@type": "Property", "name": "temperature", "schema": "double"}]}
      ]
    }"#;

    #[test]
    fn explorer_export_round_trips() {
        let export = AdtExport::from_json_str(EXPORT).unwrap();
        assert_eq!(export.twins.len(), 2);
        assert_eq!(export.relationships[0].properties["since"], "2020");
        let graph = export.graph().unwrap();
        assert_eq!(graph.related(graph.twin_index("floor").unwrap(), "contains").count(), 1);
        let written = AdtExport::of_graph(&graph, export.models.clone()).to_json();
        assert_eq!(written, serde_json::from_str::<Value>(EXPORT).unwrap());
        assert_eq!(AdtExport::from_value(&written).unwrap(), export);
    }

    #[test]
    fn the_export_graph_type_checks_writes() {
        let mut graph = AdtExport::from_json_str(EXPORT).unwrap().graph().unwrap();
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "replace", "path": "/temperature", "value": "warm"}]))
                .unwrap();
        assert!(graph.apply_patch("room", &patch, "t").is_err());
    }

    #[test]
    fn import_errors_carry_pointers() {
        let bad_twin = EXPORT.replace(r#""$dtId": "room","#, "");
        assert_eq!(
            AdtExport::from_json_str(&bad_twin).unwrap_err().pointer,
            "/digitalTwinsGraph/digitalTwins/1"
        );
        let bad_relationship = EXPORT.replace(r#""$targetId": "room","#, "");
        let error = AdtExport::from_json_str(&bad_relationship).unwrap_err();
        assert_eq!(error.pointer, "/digitalTwinsGraph/relationships/0");
        assert!(error.message.contains("$targetId"));
        assert!(AdtExport::from_json_str("{}").unwrap_err().message.contains("not an ADT Explorer export"));
        assert!(AdtExport::from_json_str("[").unwrap_err().message.contains("line 1"));
        assert_eq!(
            twins_from_json(r#"{"value": [{"$dtId": "a", "$metadata": {"$model": "m"}}]}"#).unwrap().len(),
            1
        );
        assert_eq!(twins_from_json(r#"[1]"#).unwrap_err().pointer, "/0");
    }
}
