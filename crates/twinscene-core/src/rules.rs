//! Visual rules: how a value becomes a look. Semantics follow ADT 3D Scenes so that its
//! configurations mean the same here: numeric ranges are half-open `[min, max)`, an open end is
//! `null`, and when ranges overlap the last matching range wins.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::color::Color;

/// One value range of a color visual.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorRange {
    /// Inclusive lower bound; `null` for no lower bound.
    pub min: Option<f64>,
    /// Exclusive upper bound; `null` for no upper bound.
    pub max: Option<f64>,
    pub color: Color,
}

impl ColorRange {
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value < max)
    }
}

/// The color for `value` under `ranges`, or `None` when the value is missing, not a number, or in
/// no range.
pub fn color_for(ranges: &[ColorRange], value: Option<&Value>) -> Option<Color> {
    let number = value?.as_f64()?;
    ranges.iter().rev().find(|range| range.contains(number)).map(|range| range.color)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

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
