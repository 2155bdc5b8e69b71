//! Value expressions of behaviors, parsed once when a scene loads.
//!
//! This is the first slice of the expression language: a property path on the element's primary
//! twin, written as 3D Scenes writes it (`PrimaryTwin.temperature`, `PrimaryTwin.hvac.mode`;
//! `twin.` is accepted as a synonym). Anything else is refused at load with the position of the
//! problem, never evaluated to a guess.

use serde_json::Value;

use crate::twin::Twin;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expression {
    source: String,
    /// Property names from the primary twin down.
    path: Vec<String>,
}

/// A parse error, with the 0-based character offset where it was found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} at character {position} of expression {source_text:?}")]
pub struct ExpressionError {
    pub source_text: String,
    pub position: usize,
    pub message: String,
}

const ROOT_NAMES: [&str; 2] = ["PrimaryTwin", "twin"];

impl Expression {
    pub fn parse(source: &str) -> Result<Self, ExpressionError> {
        let error = |position: usize, message: String| ExpressionError {
            source_text: source.to_owned(),
            position,
            message,
        };
        let mut segments = Vec::new();
        let mut offset = 0;
        for segment in source.split('.') {
            let trimmed = segment.trim();
            let position = offset + (segment.len() - segment.trim_start().len());
            let valid = trimmed.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
                && trimmed.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if !valid {
                let message = if trimmed.is_empty() {
                    "expected a name".to_owned()
                } else {
                    format!(
                        "{trimmed:?} is not a property name (only property paths such as PrimaryTwin.temperature are supported)"
                    )
                };
                return Err(error(position, message));
            }
            segments.push(trimmed.to_owned());
            offset += segment.chars().count() + 1;
        }
        let root = segments.remove(0);
        if !ROOT_NAMES.contains(&root.as_str()) {
            return Err(error(0, format!("unknown name {root:?}; expected PrimaryTwin")));
        }
        if segments.is_empty() {
            return Err(error(source.chars().count(), "expected .propertyName after the twin".into()));
        }
        Ok(Self { source: source.to_owned(), path: segments })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level property of the twin this expression reads.
    pub fn root_property(&self) -> &str {
        &self.path[0]
    }

    /// Evaluates against the primary twin. `None` is "no value": a missing property.
    pub fn evaluate<'t>(&self, twin: &'t Twin) -> Option<&'t Value> {
        let (first, rest) = self.path.split_first()?;
        rest.iter().try_fold(twin.property(first)?, |value, name| value.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_top_level_and_nested_properties() {
        let mut twin = Twin::new("r", "m");
        twin.properties.insert("temperature".into(), json!(21));
        twin.properties.insert("hvac".into(), json!({"mode": "heat"}));
        assert_eq!(Expression::parse("PrimaryTwin.temperature").unwrap().evaluate(&twin), Some(&json!(21)));
        assert_eq!(Expression::parse(" twin . hvac.mode ").unwrap().evaluate(&twin), Some(&json!("heat")));
        assert_eq!(Expression::parse("PrimaryTwin.humidity").unwrap().evaluate(&twin), None);
        assert_eq!(Expression::parse("PrimaryTwin.temperature.x").unwrap().evaluate(&twin), None);
    }

    #[test]
    fn reports_unsupported_syntax_with_position() {
        let error = Expression::parse("PrimaryTwin.temperature > 3").unwrap_err();
        assert_eq!(error.position, 12);
        let error = Expression::parse("Other.temperature").unwrap_err();
        assert_eq!(error.position, 0);
        let error = Expression::parse("PrimaryTwin.").unwrap_err();
        assert_eq!(error.position, 12);
        assert!(Expression::parse("PrimaryTwin").is_err());
    }
}
