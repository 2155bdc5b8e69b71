//! A scene in motion: the twin graph plus the compiled behaviors, answering every update with
//! the style changes it causes. Only elements bound to a changed twin are re-evaluated.

use std::collections::HashMap;

use json_patch::PatchOperation;

use crate::color::Color;
use crate::expression::Expression;
use crate::graph::{TwinGraph, UpdateError};
use crate::rules::{ColorRange, color_for};
use crate::scene::{Element, Scene, SceneError, Visual};
use crate::twin::{Relationship, Twin};

/// How an element looks, as decided by the scene's behaviors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElementStyle {
    /// Mesh color from color visuals; `None` keeps the model's own materials ("no value").
    pub color: Option<Color>,
    /// False while the element's twin is not in the graph ("twin not found").
    pub twin_found: bool,
}

/// A new style for one element (by index into [`Scene::elements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StyleChange {
    pub element: usize,
    pub style: ElementStyle,
}

struct ColorRule {
    expression: Expression,
    ranges: Vec<ColorRange>,
    /// Whether the rule applies, per element index.
    selects: Vec<bool>,
}

pub struct SceneRuntime {
    scene: Scene,
    graph: TwinGraph,
    /// Color rules in scene order; when several give a color, the last one wins.
    color_rules: Vec<ColorRule>,
    elements_by_twin: HashMap<String, Vec<usize>>,
    element_by_id: HashMap<String, usize>,
    styles: Vec<ElementStyle>,
}

impl SceneRuntime {
    /// Compiles the scene's behaviors and evaluates every element against the scene's twins.
    pub fn new(scene: Scene) -> Result<Self, SceneError> {
        let problems = scene.problems();
        if !problems.is_empty() {
            return Err(SceneError::Invalid(problems));
        }
        let mut color_rules = Vec::new();
        for behavior in &scene.behaviors {
            let selects: Vec<bool> =
                scene.elements.iter().map(|element| Scene::behavior_selects(behavior, &element.id)).collect();
            for visual in &behavior.visuals {
                let Visual::Color { expression, ranges } = visual;
                // Cannot fail: `problems()` parsed every expression above.
                let Ok(expression) = Expression::parse(expression) else { continue };
                color_rules.push(ColorRule { expression, ranges: ranges.clone(), selects: selects.clone() });
            }
        }
        let mut elements_by_twin: HashMap<String, Vec<usize>> = HashMap::new();
        let mut element_by_id = HashMap::new();
        for (index, element) in scene.elements.iter().enumerate() {
            elements_by_twin.entry(element.twin.clone()).or_default().push(index);
            element_by_id.insert(element.id.clone(), index);
        }
        let graph = TwinGraph::new(scene.twins.iter().cloned(), scene.relationships.clone());
        let mut runtime = Self {
            styles: vec![ElementStyle::default(); scene.elements.len()],
            scene,
            graph,
            color_rules,
            elements_by_twin,
            element_by_id,
        };
        runtime.evaluate_all();
        Ok(runtime)
    }

    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    pub fn graph(&self) -> &TwinGraph {
        &self.graph
    }

    pub fn elements(&self) -> &[Element] {
        &self.scene.elements
    }

    pub fn element_index(&self, id: &str) -> Option<usize> {
        self.element_by_id.get(id).copied()
    }

    pub fn style(&self, element: usize) -> &ElementStyle {
        &self.styles[element]
    }

    pub fn styles(&self) -> &[ElementStyle] {
        &self.styles
    }

    /// Replaces all twin state (a live snapshot) and returns the styles that changed.
    pub fn replace_twins(&mut self, twins: Vec<Twin>, relationships: Vec<Relationship>) -> Vec<StyleChange> {
        self.graph = TwinGraph::new(twins, relationships);
        self.evaluate_all()
    }

    /// Applies a JSON Patch to one twin and returns the styles that changed.
    pub fn apply_patch(
        &mut self,
        twin: &str,
        patch: &[PatchOperation],
        timestamp: &str,
    ) -> Result<Vec<StyleChange>, UpdateError> {
        self.graph.apply_patch(twin, patch, timestamp)?;
        let mut changes = Vec::new();
        let bound = self.elements_by_twin.get(twin).cloned().unwrap_or_default();
        for element in bound {
            self.reevaluate(element, &mut changes);
        }
        Ok(changes)
    }

    fn evaluate_all(&mut self) -> Vec<StyleChange> {
        let mut changes = Vec::new();
        for element in 0..self.styles.len() {
            self.reevaluate(element, &mut changes);
        }
        changes
    }

    fn reevaluate(&mut self, element: usize, changes: &mut Vec<StyleChange>) {
        let style = self.evaluate(element);
        if self.styles[element] != style {
            self.styles[element] = style.clone();
            changes.push(StyleChange { element, style });
        }
    }

    fn evaluate(&self, element: usize) -> ElementStyle {
        let Some(twin) = self.graph.twin(&self.scene.elements[element].twin) else {
            return ElementStyle { color: None, twin_found: false };
        };
        let color = self
            .color_rules
            .iter()
            .rev()
            .filter(|rule| rule.selects[element])
            .find_map(|rule| color_for(&rule.ranges, rule.expression.evaluate(twin)));
        ElementStyle { color, twin_found: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SCENE: &str = r##"{
      "version": 1, "mesh": "m.glb",
      "twins": [
        {"$dtId": "r1", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 18},
        {"$dtId": "r2", "$metadata": {"$model": "dtmi:t:Room;1"}, "temperature": 30}
      ],
      "elements": [
        {"id": "a", "twin": "r1", "nodes": ["A"]},
        {"id": "b", "twin": "r2", "nodes": ["B"]},
        {"id": "c", "twin": "r2", "nodes": ["C1", "C2"]},
        {"id": "lost", "twin": "BoxA", "nodes": ["D"]}
      ],
      "behaviors": [{"id": "heat", "elements": "all", "visuals": [{"type": "color", "expression": "PrimaryTwin.temperature",
        "ranges": [{"min": null, "max": 20, "color": "#0000ff"}, {"min": 20, "max": 26, "color": "#00ff00"}, {"min": 26, "max": null, "color": "#ff0000"}]}]}]
    }"##;

    fn runtime() -> SceneRuntime {
        SceneRuntime::new(Scene::from_json_str(SCENE).unwrap()).unwrap()
    }

    fn color(runtime: &SceneRuntime, id: &str) -> Option<String> {
        runtime.style(runtime.element_index(id).unwrap()).color.map(|c| c.to_string())
    }

    fn replace_temperature(value: f64) -> json_patch::Patch {
        serde_json::from_value(json!([{"op": "replace", "path": "/temperature", "value": value}])).unwrap()
    }

    #[test]
    fn initial_styles_follow_the_ranges() {
        let runtime = runtime();
        assert_eq!(color(&runtime, "a").as_deref(), Some("#0000ff"));
        assert_eq!(color(&runtime, "b").as_deref(), Some("#ff0000"));
        assert_eq!(color(&runtime, "c").as_deref(), Some("#ff0000"));
    }

    #[test]
    fn element_whose_twin_is_missing_is_marked_and_uncolored() {
        let runtime = runtime();
        let lost = runtime.style(runtime.element_index("lost").unwrap());
        assert_eq!(lost, &ElementStyle { color: None, twin_found: false });
    }

    #[test]
    fn patch_changes_only_the_elements_of_that_twin() {
        let mut runtime = runtime();
        let changes = runtime.apply_patch("r2", &replace_temperature(22.0), "t").unwrap();
        let changed: Vec<_> = changes.iter().map(|c| runtime.elements()[c.element].id.as_str()).collect();
        assert_eq!(changed, ["b", "c"]);
        assert_eq!(color(&runtime, "b").as_deref(), Some("#00ff00"));
        // Same range again: no style change is reported.
        assert!(runtime.apply_patch("r2", &replace_temperature(23.0), "t").unwrap().is_empty());
    }

    #[test]
    fn removed_property_means_no_value() {
        let mut runtime = runtime();
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "remove", "path": "/temperature"}])).unwrap();
        runtime.apply_patch("r1", &patch, "t").unwrap();
        assert_eq!(color(&runtime, "a"), None);
    }

    #[test]
    fn snapshot_with_the_missing_twin_finds_it() {
        let mut runtime = runtime();
        let mut twins: Vec<Twin> = runtime.graph().twins().cloned().collect();
        let mut box_a = Twin::new("BoxA", "dtmi:t:Room;1");
        box_a.properties.insert("temperature".into(), json!(21));
        twins.push(box_a);
        let changes = runtime.replace_twins(twins, vec![]);
        assert_eq!(changes.len(), 1);
        assert_eq!(color(&runtime, "lost").as_deref(), Some("#00ff00"));
    }

    proptest! {
        /// Incremental updates must leave the same styles as evaluating from scratch.
        #[test]
        fn incremental_equals_full_recomputation(updates in proptest::collection::vec((0usize..2, -10.0f64..50.0), 1..40)) {
            let mut incremental = runtime();
            for (twin, value) in &updates {
                incremental.apply_patch(["r1", "r2"][*twin], &replace_temperature(*value), "t").unwrap();
            }
            let mut scratch = runtime();
            scratch.replace_twins(incremental.graph().twins().cloned().collect(), vec![]);
            let full = SceneRuntime::new(Scene { twins: incremental.graph().twins().cloned().collect(), ..incremental.scene().clone() }).unwrap();
            prop_assert_eq!(incremental.styles(), full.styles());
            prop_assert_eq!(scratch.styles(), full.styles());
        }
    }
}
