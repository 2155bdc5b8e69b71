//! twinscene's scene file: which mesh, which twins, which mesh nodes make up each element, and
//! the behaviors that turn twin state into looks. Parsing reports line and column; validation
//! reports the JSON pointer of each problem.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::color::Color;
use crate::expression::Expression;
use crate::graph::FxHasher;

type FastHashSet<'a> = HashSet<&'a str, std::hash::BuildHasherDefault<FxHasher>>;
use crate::rules::{ColorRange, RangeTest, ValueKind};
use crate::twin::{Relationship, Twin};

/// The scene file format version this build reads and writes.
pub const SCENE_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Scene {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL or path of the glTF/GLB model, relative to the scene file.
    pub mesh: String,
    /// Initial twin state (ADT twin JSON). A live server replaces it with its snapshot.
    #[serde(default)]
    pub twins: Vec<Twin>,
    #[serde(default)]
    pub relationships: Vec<Relationship>,
    pub elements: Vec<Element>,
    #[serde(default)]
    pub behaviors: Vec<Behavior>,
    /// Named groups of behaviors a viewer can switch on and off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    /// Twin properties defined by expressions over the graph (e.g. a floor's average).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub computed: Vec<ComputedProperty>,
    /// DTDL interfaces of the twins; when given, property writes are type-checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub viewpoints: Vec<Viewpoint>,
    /// With live data: an element whose primary twin was not written for longer than this is
    /// shown as stale (see `staleness`). Absent: never stale.
    #[serde(rename = "staleAfterSeconds", default, skip_serializing_if = "Option::is_none")]
    pub stale_after_seconds: Option<f64>,
    /// Path or URL (relative to the scene file) of more twins: an ADT twin array, an ADT query
    /// page `{"value": [...]}` or an ADT Explorer export (models, twins and relationships).
    /// The host reads it and hands the text to [`Scene::merge_twin_file`]; core does no I/O.
    #[serde(rename = "twinsFile", default, skip_serializing_if = "Option::is_none")]
    pub twins_file: Option<String>,
    /// Path or URL (relative to the scene file) of DTDL models (an array of interfaces), merged
    /// with [`Scene::merge_models_file`].
    #[serde(rename = "modelsFile", default, skip_serializing_if = "Option::is_none")]
    pub models_file: Option<String>,
    /// WebSocket URL of a live twin feed (`ws://`, `wss://`, or a path on the scene's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

/// A thing a user sees and picks: one or more mesh nodes bound to one twin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Element {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `$dtId` of the primary twin.
    pub twin: String,
    /// glTF node names that make up the element.
    pub nodes: Vec<String>,
    /// Other twins the element's expressions name, alias → `$dtId` (3D Scenes `twinAliases`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub elements: ElementSelection,
    pub visuals: Vec<Visual>,
    /// Ids of the layers the behavior belongs to; none means it is always on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A twin property computed from the graph: `property` of every twin of `model` (or of the
/// listed `twins`) is the value of `expression`, with `twin` bound to that twin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ComputedProperty {
    pub id: String,
    pub property: String,
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twins: Option<Vec<String>>,
}

/// One range of a value-ranges visual (3D Scenes `valueRanges`). A range with an icon is a
/// badge; without one, its color paints the element's meshes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ValueRange {
    /// `[min, max]` for numeric visuals, the matching values for categorical ones.
    pub values: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Badge text; `${...}` substitutions are expressions (see docs/expressions.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How serious the badge is; only for ranges with an icon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// How serious an alert badge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One case of a `conditions` visual: when `when` is truthy (and no earlier case is), the
/// case's look applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConditionCase {
    /// An expression; the case matches when its value is truthy.
    pub when: String,
    /// Without `icon`: paints the element's meshes. With `icon`: the badge's color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    /// 0 (invisible) to 1 (opaque): makes the element's meshes translucent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opacity: Option<f64>,
    /// Makes a badge with this icon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// The badge's severity; only with `icon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// With `icon`, the badge text; without, the element's label. `${...}` are expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Which elements a behavior applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ElementSelection {
    /// The string `"all"`.
    All(AllElements),
    /// Element ids.
    List(Vec<String>),
    /// `{"model": "dtmi:..."}`: elements whose primary twin is of this model or of one that
    /// extends it (when the scene has models).
    Model(ModelSelection),
    /// `{"query": "<expression>"}`: elements for which the expression, with `PrimaryTwin` bound
    /// to the element's twin, is truthy.
    Query(QuerySelection),
}

/// Selects elements by their primary twin's model. Evaluated when the scene loads and whenever
/// twins are replaced, created or deleted (not on property patches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelSelection {
    pub model: String,
}

/// Selects elements by an expression on their twins. Evaluated when the scene loads and
/// whenever twins are replaced, created or deleted (not on property patches: membership is
/// fixed between those; use a `visibility` or `conditions` visual for looks that follow values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QuerySelection {
    pub query: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AllElements {
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Visual {
    /// Paints the element's meshes by the value of `expression`.
    Color { expression: String, ranges: Vec<ColorRange> },
    /// 3D Scenes' ExpressionRangeVisual: mesh colors and badges by the value of `expression`.
    ValueRanges {
        expression: String,
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::value_kind"))]
        kind: ValueKind,
        ranges: Vec<ValueRange>,
    },
    /// Hides the element while `expression` is falsy (a missing value keeps it shown).
    Visibility { expression: String },
    /// A text shown with the element; `${...}` substitutions are expressions.
    Label { text: String },
    /// Widgets shown when the element is selected (3D Scenes' Popover visual).
    Popover { widgets: Vec<Widget> },
    /// Ordered cases; the first whose `when` is truthy gives the look (TwinMaker rule maps).
    Conditions { cases: Vec<ConditionCase> },
}

/// A widget of a popover. Expressions are evaluated against the element's twins when the
/// element is selected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Widget {
    /// A value with a label and units.
    Value {
        label: String,
        expression: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        units: Option<String>,
    },
    /// A number on a scale from `min` to `max`, with colored bands.
    Gauge {
        label: String,
        expression: String,
        min: f64,
        max: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        units: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ranges: Vec<ColorRange>,
    },
    /// A link; `${...}` in `url` are expressions.
    Link { label: String, url: String },
    /// Recent values of one property of the primary twin.
    Trend {
        label: String,
        property: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        units: Option<String>,
    },
}

/// A named camera position: looking from `position` at `target` (world coordinates of the
/// model), or framing `elements` from the default direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Viewpoint {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[f32; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<[f32; 3]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<String>,
}

/// A scene file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("scene is not valid JSON or not a twinscene scene at line {line}, column {column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    #[error("scene is invalid:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SceneProblem>),
}

/// One problem found by validation, located by JSON pointer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct SceneProblem {
    pub pointer: String,
    pub message: String,
}

impl Scene {
    /// Parses and validates a scene.
    pub fn from_json_str(text: &str) -> Result<Self, SceneError> {
        let scene: Scene = serde_json::from_str(text).map_err(|e| SceneError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let problems = scene.problems();
        if problems.is_empty() { Ok(scene) } else { Err(SceneError::Invalid(problems)) }
    }

    /// Everything wrong with the scene that can be told without the mesh. Elements bound to a
    /// twin the scene does not contain are not problems: the twin may arrive live, and until
    /// then the element shows as "twin not found".
    pub fn problems(&self) -> Vec<SceneProblem> {
        let mut problems = Vec::new();
        let mut problem = |pointer: String, message: String| problems.push(SceneProblem { pointer, message });
        if self.version != SCENE_FORMAT_VERSION {
            problem(
                "/version".into(),
                format!(
                    "version {} is not supported; this build reads version {SCENE_FORMAT_VERSION}",
                    self.version
                ),
            );
        }
        // FxHash and presized: this runs over every twin and element of 10^6-element scenes.
        let mut twin_ids = FastHashSet::with_capacity_and_hasher(self.twins.len(), Default::default());
        for (i, twin) in self.twins.iter().enumerate() {
            if !twin_ids.insert(twin.id.as_str()) {
                problem(format!("/twins/{i}/$dtId"), format!("twin id {:?} is used twice", twin.id));
            }
        }
        let mut element_ids = FastHashSet::with_capacity_and_hasher(self.elements.len(), Default::default());
        for (i, element) in self.elements.iter().enumerate() {
            if !element_ids.insert(element.id.as_str()) {
                problem(format!("/elements/{i}/id"), format!("element id {:?} is used twice", element.id));
            }
            if element.nodes.is_empty() {
                problem(format!("/elements/{i}/nodes"), "an element needs at least one mesh node".into());
            }
        }
        let mut behavior_ids = HashSet::new();
        for (b, behavior) in self.behaviors.iter().enumerate() {
            if !behavior_ids.insert(behavior.id.as_str()) {
                problem(format!("/behaviors/{b}/id"), format!("behavior id {:?} is used twice", behavior.id));
            }
            match &behavior.elements {
                ElementSelection::All(_) => {}
                ElementSelection::List(ids) => {
                    for (e, id) in ids.iter().enumerate() {
                        if !element_ids.contains(id.as_str()) {
                            problem(
                                format!("/behaviors/{b}/elements/{e}"),
                                format!("no element has id {id:?}"),
                            );
                        }
                    }
                }
                ElementSelection::Model(ModelSelection { model }) => {
                    if model.trim().is_empty() {
                        problem(format!("/behaviors/{b}/elements/model"), "the model id is empty".into());
                    }
                }
                ElementSelection::Query(QuerySelection { query }) => {
                    if let Err(error) = Expression::parse(query) {
                        problem(format!("/behaviors/{b}/elements/query"), error.to_string());
                    }
                }
            }
            for (l, layer) in behavior.layers.iter().enumerate() {
                if !self.layers.iter().any(|known| &known.id == layer) {
                    problem(format!("/behaviors/{b}/layers/{l}"), format!("no layer has id {layer:?}"));
                }
            }
            for (v, visual) in behavior.visuals.iter().enumerate() {
                let at = format!("/behaviors/{b}/visuals/{v}");
                visual_problems(visual, &at, &mut problem);
            }
        }
        if let Some(seconds) = self.stale_after_seconds
            && !(seconds.is_finite() && seconds > 0.0)
        {
            problem("/staleAfterSeconds".into(), format!("{seconds} is not a positive number of seconds"));
        }
        for (pointer, file) in [("/twinsFile", &self.twins_file), ("/modelsFile", &self.models_file)] {
            if file.as_ref().is_some_and(|file| file.trim().is_empty()) {
                problem(pointer.into(), "the file name is empty".into());
            }
        }
        if let Some(live) = &self.live
            && !(live.starts_with("ws://") || live.starts_with("wss://") || live.starts_with('/'))
        {
            problem(
                "/live".into(),
                format!("{live:?} is not a WebSocket URL: expected ws://, wss:// or a path starting with /"),
            );
        }
        let mut layer_ids = HashSet::new();
        for (l, layer) in self.layers.iter().enumerate() {
            if !layer_ids.insert(layer.id.as_str()) {
                problem(format!("/layers/{l}/id"), format!("layer id {:?} is used twice", layer.id));
            }
        }
        let mut viewpoint_ids = HashSet::new();
        for (v, viewpoint) in self.viewpoints.iter().enumerate() {
            if !viewpoint_ids.insert(viewpoint.id.as_str()) {
                problem(
                    format!("/viewpoints/{v}/id"),
                    format!("viewpoint id {:?} is used twice", viewpoint.id),
                );
            }
            for (e, id) in viewpoint.elements.iter().enumerate() {
                if !element_ids.contains(id.as_str()) {
                    problem(format!("/viewpoints/{v}/elements/{e}"), format!("no element has id {id:?}"));
                }
            }
            let placed = viewpoint.position.is_some() && viewpoint.target.is_some();
            if placed != viewpoint.elements.is_empty()
                || viewpoint.position.is_some() != viewpoint.target.is_some()
            {
                problem(
                    format!("/viewpoints/{v}"),
                    "a viewpoint needs either \"position\" and \"target\", or \"elements\" to frame".into(),
                );
            }
        }
        for (c, computed) in self.computed.iter().enumerate() {
            if let Err(error) = Expression::parse(&computed.expression) {
                problem(format!("/computed/{c}/expression"), error.to_string());
            }
            if computed.model.is_none() && computed.twins.is_none() {
                problem(format!("/computed/{c}"), "a computed property needs \"model\" or \"twins\"".into());
            }
            if computed.property.starts_with('$') || computed.property.is_empty() {
                problem(
                    format!("/computed/{c}/property"),
                    format!("{:?} cannot be a property name", computed.property),
                );
            }
        }
        if !self.models.is_empty()
            && let Err(errors) = crate::dtdl::ModelSet::from_documents(&self.models)
        {
            for error in errors {
                problem(format!("/models{}", error.document_pointer), error.to_string());
            }
        }
        problems
    }

    /// Whether a behavior applies to the element with this id, as far as the scene alone
    /// tells: selections by model or query depend on the twins and give `false` here (ask
    /// [`crate::runtime::SceneRuntime::behavior_applies`]).
    pub fn behavior_selects(behavior: &Behavior, element_id: &str) -> bool {
        match &behavior.elements {
            ElementSelection::All(_) => true,
            ElementSelection::List(ids) => ids.iter().any(|id| id == element_id),
            ElementSelection::Model(_) | ElementSelection::Query(_) => false,
        }
    }
}

fn visual_problems(visual: &Visual, at: &str, problem: &mut impl FnMut(String, String)) {
    match visual {
        Visual::Color { expression, ranges } => {
            if let Err(error) = Expression::parse(expression) {
                problem(format!("{at}/expression"), error.to_string());
            }
            for (r, range) in ranges.iter().enumerate() {
                if let (Some(min), Some(max)) = (range.min, range.max)
                    && min >= max
                {
                    problem(
                        format!("{at}/ranges/{r}"),
                        format!("min {min} is not below max {max}: the range matches nothing"),
                    );
                }
            }
        }
        Visual::ValueRanges { expression, kind, ranges } => {
            if let Err(error) = Expression::parse(expression) {
                problem(format!("{at}/expression"), error.to_string());
            }
            for (r, range) in ranges.iter().enumerate() {
                if let Err(message) = RangeTest::new(*kind, &range.values) {
                    problem(format!("{at}/ranges/{r}/values"), message);
                }
                if let Some(label) = &range.label
                    && let Err(error) = Expression::parse_text(label)
                {
                    problem(format!("{at}/ranges/{r}/label"), error.to_string());
                }
                if range.color.is_none() && range.icon.is_none() {
                    problem(format!("{at}/ranges/{r}"), "a range needs a color, an icon or both".into());
                }
                if range.severity.is_some() && range.icon.is_none() {
                    problem(format!("{at}/ranges/{r}/severity"), "a severity needs an icon (a badge)".into());
                }
            }
        }
        Visual::Visibility { expression } => {
            if let Err(error) = Expression::parse(expression) {
                problem(format!("{at}/expression"), error.to_string());
            }
        }
        Visual::Label { text } => {
            if let Err(error) = Expression::parse_text(text) {
                problem(format!("{at}/text"), error.to_string());
            }
        }
        Visual::Conditions { cases } => {
            if cases.is_empty() {
                problem(format!("{at}/cases"), "a conditions visual needs at least one case".into());
            }
            for (c, case) in cases.iter().enumerate() {
                let at = format!("{at}/cases/{c}");
                if let Err(error) = Expression::parse(&case.when) {
                    problem(format!("{at}/when"), error.to_string());
                }
                if let Some(label) = &case.label
                    && let Err(error) = Expression::parse_text(label)
                {
                    problem(format!("{at}/label"), error.to_string());
                }
                if let Some(opacity) = case.opacity
                    && !(0.0..=1.0).contains(&opacity)
                {
                    problem(format!("{at}/opacity"), format!("opacity {opacity} is not between 0 and 1"));
                }
                if case.severity.is_some() && case.icon.is_none() {
                    problem(format!("{at}/severity"), "a severity needs an icon (a badge)".into());
                }
                if case.color.is_none()
                    && case.opacity.is_none()
                    && case.icon.is_none()
                    && case.label.is_none()
                {
                    problem(at, "a case needs a color, an opacity, an icon or a label".into());
                }
            }
        }
        Visual::Popover { widgets } => {
            for (w, widget) in widgets.iter().enumerate() {
                let at = format!("{at}/widgets/{w}");
                let parsed = match widget {
                    Widget::Value { expression, .. } | Widget::Gauge { expression, .. } => {
                        Expression::parse(expression).map_err(|e| (format!("{at}/expression"), e.to_string()))
                    }
                    Widget::Link { url, .. } => {
                        Expression::parse_text(url).map_err(|e| (format!("{at}/url"), e.to_string()))
                    }
                    Widget::Trend { .. } => continue,
                };
                if let Err((pointer, message)) = parsed {
                    problem(pointer, message);
                }
                if let Widget::Gauge { min, max, .. } = widget
                    && min >= max
                {
                    problem(at, format!("gauge min {min} is not below max {max}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        r##"{"version": 1, "mesh": "m.glb", "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}]}"##;

    #[test]
    fn popover_widgets_and_viewpoints_are_checked_by_pointer() {
        let text = r##"{"version": 1, "mesh": "m.glb",
            "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}],
            "behaviors": [{"id": "b", "elements": "all", "visuals": [{"type": "popover", "widgets": [
              {"type": "value", "label": "T", "expression": "PrimaryTwin.t +"},
              {"type": "gauge", "label": "G", "expression": "PrimaryTwin.t", "min": 5, "max": 5},
              {"type": "link", "label": "L", "url": "https://x/${PrimaryTwin.$dtId}"},
              {"type": "trend", "label": "Tr", "property": "t"}]}]}],
            "viewpoints": [{"id": "v", "elements": ["nope"]}, {"id": "v", "position": [0, 1, 2]},
              {"id": "ok", "position": [0, 1, 2], "target": [0, 0, 0]}]}"##;
        let SceneError::Invalid(problems) = Scene::from_json_str(text).unwrap_err() else {
            panic!("expected invalid")
        };
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/behaviors/0/visuals/0/widgets/0/expression",
                "/behaviors/0/visuals/0/widgets/1",
                "/viewpoints/0/elements/0",
                "/viewpoints/1/id",
                "/viewpoints/1",
            ]
        );
    }

    #[test]
    fn minimal_scene_parses() {
        let scene = Scene::from_json_str(MINIMAL).unwrap();
        assert_eq!(scene.elements[0].nodes, ["n"]);
        assert!(scene.behaviors.is_empty());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let error = Scene::from_json_str("{\n  \"version\": 1,\n  \"mesh\": }").unwrap_err();
        match error {
            SceneError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 11)),
            other => panic!("expected a syntax error, got {other}"),
        }
    }

    #[test]
    fn unknown_fields_are_errors_not_silently_dropped() {
        let text = MINIMAL.replace("\"mesh\"", "\"colour\": 1, \"mesh\"");
        let error = Scene::from_json_str(&text).unwrap_err().to_string();
        assert!(error.contains("unknown field `colour`"), "{error}");
    }

    #[test]
    fn validation_names_each_problem_by_pointer() {
        let text = r##"{"version": 1, "mesh": "m.glb",
            "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}, {"id": "e", "twin": "t", "nodes": []}],
            "behaviors": [{"id": "b", "elements": ["e", "ghost"], "visuals": [
              {"type": "color", "expression": "PrimaryTwin.x >", "ranges": [{"min": 5, "max": 1, "color": "#fff"}]}]}]}"##;
        let SceneError::Invalid(problems) = Scene::from_json_str(text).unwrap_err() else {
            panic!("expected invalid")
        };
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/elements/1/id",
                "/elements/1/nodes",
                "/behaviors/0/elements/1",
                "/behaviors/0/visuals/0/expression",
                "/behaviors/0/visuals/0/ranges/0"
            ]
        );
    }
}
