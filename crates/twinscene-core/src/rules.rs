//! Visual rules: how a value becomes a look. Semantics follow ADT 3D Scenes so that its
//! configurations mean the same here: numeric ranges are half-open `[min, max)` with `null`,
//! `"-Infinity"` or `"Infinity"` for an open end; categorical values match booleans by equality
//! and strings and numbers by inclusion in the range's list; when ranges overlap, the last
//! matching range wins. docs/rules.md is the user-facing description.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::color::Color;
use crate::expression::EvalValue;

/// One value range of a color visual.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ColorRange {
    /// Inclusive lower bound; `null` or `"-Infinity"` for no lower bound.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::range_bound"))]
    #[serde(deserialize_with = "bound")]
    pub min: Option<f64>,
    /// Exclusive upper bound; `null` or `"Infinity"` for no upper bound.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::range_bound"))]
    #[serde(deserialize_with = "bound")]
    pub max: Option<f64>,
    pub color: Color,
}

impl ColorRange {
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value < max)
    }
}

/// A numeric range bound as scenes write it: a number, `null`, or the strings `"Infinity"` /
/// `"-Infinity"` (how 3D Scenes writes open ends). Infinite bounds become `None`.
fn bound<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    numeric_bound(value.as_ref()).map_err(serde::de::Error::custom)
}

/// Reads a bound; `Ok(None)` is an open end.
pub fn numeric_bound(value: Option<&Value>) -> Result<Option<f64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s == "Infinity" || s == "-Infinity" || s == "+Infinity" => Ok(None),
        Some(other) => {
            Err(format!("a range bound must be a number, null, \"Infinity\" or \"-Infinity\", not {other}"))
        }
    }
}

/// The color for `value` under `ranges`, or `None` when the value is missing, not a number, or in
/// no range.
pub fn color_for(ranges: &[ColorRange], value: Option<&Value>) -> Option<Color> {
    let number = value?.as_f64()?;
    ranges.iter().rev().find(|range| range.contains(number)).map(|range| range.color)
}

/// How a value-range visual compares its value with each range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum ValueKind {
    /// `values` is `[min, max]`, half-open.
    #[default]
    #[serde(alias = "NumericRange")]
    Numeric,
    /// `values` lists the values that match.
    #[serde(alias = "CategoricalValues")]
    Categorical,
}

/// The test of one range, compiled from its `values`.
#[derive(Clone, Debug, PartialEq)]
pub enum RangeTest {
    Numeric { min: Option<f64>, max: Option<f64> },
    Categorical(Vec<Value>),
}

impl RangeTest {
    /// Compiles `values` under `kind`; the error says what is wrong.
    pub fn new(kind: ValueKind, values: &[Value]) -> Result<Self, String> {
        match kind {
            ValueKind::Numeric => {
                let [min, max] = values else {
                    return Err(format!("a numeric range needs [min, max], got {} value(s)", values.len()));
                };
                let (min, max) = (numeric_bound(Some(min))?, numeric_bound(Some(max))?);
                // "Infinity" as a lower bound or "-Infinity" as an upper one would match nothing.
                if let (Some(min), Some(max)) = (min, max)
                    && min >= max
                {
                    return Err(format!("min {min} is not below max {max}: the range matches nothing"));
                }
                if values[0] == "Infinity" || values[1] == "-Infinity" {
                    return Err(
                        "the range is empty: its lower bound is Infinity or its upper bound -Infinity".into(),
                    );
                }
                Ok(Self::Numeric { min, max })
            }
            ValueKind::Categorical => {
                if values.is_empty() {
                    return Err("a categorical range needs at least one value".into());
                }
                Ok(Self::Categorical(values.to_vec()))
            }
        }
    }

    pub fn matches(&self, value: &EvalValue<'_>) -> bool {
        match self {
            Self::Numeric { min, max } => {
                let EvalValue::Number(number) = value else { return false };
                min.is_none_or(|min| *number >= min) && max.is_none_or(|max| *number < max)
            }
            Self::Categorical(values) => values.iter().any(|candidate| categorical_match(candidate, value)),
        }
    }
}

fn categorical_match(candidate: &Value, value: &EvalValue<'_>) -> bool {
    match (candidate, value) {
        (Value::Bool(a), EvalValue::Bool(b)) => a == b,
        (Value::String(a), EvalValue::Str(b)) => a == b.as_ref(),
        (Value::Number(a), EvalValue::Number(b)) => a.as_f64() == Some(*b),
        // 3D Scenes writes some numeric categories as strings ("3").
        (Value::String(a), EvalValue::Number(b)) => a.parse::<f64>().ok() == Some(*b),
        _ => false,
    }
}

/// The index of the last range that matches `value` among those `eligible`.
pub fn last_match<'r, T>(
    ranges: &'r [T],
    test: impl Fn(&T) -> &RangeTest,
    eligible: impl Fn(&T) -> bool,
    value: &EvalValue<'_>,
) -> Option<&'r T> {
    ranges.iter().rev().filter(|range| eligible(range)).find(|range| test(range).matches(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::borrow::Cow;

    fn range(min: Option<f64>, max: Option<f64>, color: &str) -> ColorRange {
        ColorRange { min, max, color: color.parse().unwrap() }
    }

    #[test]
    fn ranges_are_half_open() {
        let ranges = [range(None, Some(20.0), "#0000ff"), range(Some(20.0), None, "#ff0000")];
        assert_eq!(color_for(&ranges, Some(&json!(19.999))).unwrap().to_string(), "#0000ff");
        assert_eq!(color_for(&ranges, Some(&json!(20))).unwrap().to_string(), "#ff0000");
    }

    #[test]
    fn last_matching_range_wins_on_overlap() {
        let ranges = [range(Some(0.0), Some(100.0), "#00ff00"), range(Some(50.0), Some(60.0), "#ff0000")];
        assert_eq!(color_for(&ranges, Some(&json!(55))).unwrap().to_string(), "#ff0000");
        assert_eq!(color_for(&ranges, Some(&json!(65))).unwrap().to_string(), "#00ff00");
    }

    #[test]
    fn no_value_gives_no_color() {
        let ranges = [range(None, None, "#00ff00")];
        assert_eq!(color_for(&ranges, None), None);
        assert_eq!(color_for(&ranges, Some(&json!("warm"))), None);
        assert_eq!(color_for(&[range(Some(0.0), Some(1.0), "#000")], Some(&json!(5))), None);
    }

    #[test]
    fn infinity_strings_are_open_ends() {
        let parsed: ColorRange =
            serde_json::from_value(json!({"min": "-Infinity", "max": "Infinity", "color": "#fff"})).unwrap();
        assert_eq!((parsed.min, parsed.max), (None, None));
        assert!(
            serde_json::from_value::<ColorRange>(json!({"min": "cold", "max": 1, "color": "#fff"})).is_err()
        );
        let test = RangeTest::new(ValueKind::Numeric, &[json!(200), json!("Infinity")]).unwrap();
        assert!(test.matches(&EvalValue::Number(1e300)));
        assert!(!test.matches(&EvalValue::Number(199.0)));
        assert!(RangeTest::new(ValueKind::Numeric, &[json!("Infinity"), json!("Infinity")]).is_err());
        assert!(RangeTest::new(ValueKind::Numeric, &[json!(1)]).is_err());
    }

    #[test]
    fn categorical_values_match_by_equality_and_inclusion() {
        let alarm = RangeTest::new(ValueKind::Categorical, &[json!(true)]).unwrap();
        assert!(alarm.matches(&EvalValue::Bool(true)));
        assert!(!alarm.matches(&EvalValue::Bool(false)));
        assert!(!alarm.matches(&EvalValue::Number(1.0)), "no truthiness: booleans match by equality");
        let steps = RangeTest::new(ValueKind::Categorical, &[json!("Gelling"), json!("Filling"), json!("3")])
            .unwrap();
        assert!(steps.matches(&EvalValue::Str(Cow::Borrowed("Filling"))));
        assert!(!steps.matches(&EvalValue::Str(Cow::Borrowed("Fill"))));
        assert!(steps.matches(&EvalValue::Number(3.0)));
        assert!(
            !RangeTest::new(ValueKind::Numeric, &[json!(0), json!(10)])
                .unwrap()
                .matches(&EvalValue::Str(Cow::Borrowed("5")))
        );
    }

    proptest! {
        #[test]
        fn adjacent_ranges_cover_their_span_exactly_once(bounds in proptest::collection::vec(-1e6f64..1e6, 2..8), value in -1e6f64..1e6) {
            let mut bounds = bounds;
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let ranges: Vec<_> = bounds.windows(2).map(|w| range(Some(w[0]), Some(w[1]), "#123456")).collect();
            let hits = ranges.iter().filter(|r| r.contains(value)).count();
            let inside = bounds.len() >= 2 && value >= bounds[0] && value < bounds[bounds.len() - 1];
            prop_assert_eq!(hits, usize::from(inside));
        }
    }
}
