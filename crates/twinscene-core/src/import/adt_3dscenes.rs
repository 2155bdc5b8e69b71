//! Azure Digital Twins 3D Scenes Studio configurations (schema v1.0.0): one scene of the
//! configuration becomes a [`Scene`]. Elements keep their ids, behaviors their ids and
//! expressions (the expression language reads 3D Scenes' JavaScript as written), layers their
//! ids. See docs/import.md for the mapping and the list of notes.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::read::{array, field, object, opt_array, opt_string, string};
use super::{ImportError, ImportOptions, Notes, empty_scene, pointer_key};
use crate::color::Color;
use crate::expression::Expression;
use crate::rules::{ColorRange, RangeTest, ValueKind, numeric_bound};
use crate::scene::{Behavior, Element, ElementSelection, Layer, Scene, ValueRange, Visual, Widget};

/// (id, displayName) of every scene of the configuration.
pub(super) fn scene_names(root: &Value) -> Result<Vec<(String, String)>, ImportError> {
    let (scenes, _) = scenes(root)?;
    scenes
        .iter()
        .enumerate()
        .map(|(s, scene)| {
            let at = format!("/configuration/scenes/{s}");
            let scene = object(scene, &at)?;
            let id = string(field(scene, "id", &at)?, &format!("{at}/id"))?.to_owned();
            let name = opt_string(scene, "displayName", &at)?.unwrap_or(&id).to_owned();
            Ok((id, name))
        })
        .collect()
}

fn scenes(root: &Value) -> Result<(&[Value], &Map<String, Value>), ImportError> {
    let root = object(root, "")?;
    let configuration = object(field(root, "configuration", "")?, "/configuration")?;
    let scenes = array(field(configuration, "scenes", "/configuration")?, "/configuration/scenes")?;
    Ok((scenes, configuration))
}

/// Fields of each object that carry nothing a viewer shows: dropped without a note (listed in
/// docs/import.md).
const SCENE_FIELDS: &[&str] = &["id", "displayName", "description", "assets", "elements", "behaviorIDs"];
const ELEMENT_FIELDS: &[&str] =
    &["type", "id", "displayName", "primaryTwinID", "objectIDs", "twinAliases", "extensionProperties"];
const BEHAVIOR_FIELDS: &[&str] = &["id", "displayName", "twinAliases", "datasources", "visuals"];

/// Notes each field of `object` that is not in `known`, and a non-empty `extensionProperties`.
fn unknown_fields(object: &Map<String, Value>, at: &str, known: &[&str], notes: &mut Notes) {
    for (name, value) in object {
        let here = format!("{at}/{}", pointer_key(name));
        if name == "extensionProperties" {
            if value.as_object().is_some_and(|o| !o.is_empty()) {
                notes.add(here, "extension properties are not carried over");
            }
        } else if !known.contains(&name.as_str()) {
            notes.add(here, format!("{name:?} is not carried over"));
        }
    }
}

pub(super) fn import(root: &Value, options: &ImportOptions) -> Result<(Scene, Notes), ImportError> {
    let mut notes = Notes::default();
    let (scenes, configuration) = scenes(root)?;
    if scenes.is_empty() {
        return Err(ImportError::new("/configuration/scenes", "the configuration has no scenes"));
    }
    let names = scene_names(root)?;
    let s = match options.scene {
        Some(wanted) => {
            names.iter().position(|(id, name)| id == wanted || name == wanted).ok_or_else(|| {
                ImportError::new(
                    "/configuration/scenes",
                    format!(
                        "no scene has id or name {wanted:?}; the scenes are: {}",
                        names
                            .iter()
                            .map(|(id, name)| format!("{name:?} ({id})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?
        }
        None => {
            if scenes.len() > 1 {
                notes.add(
                    "/configuration/scenes",
                    format!(
                        "the configuration has {} scenes; imported the first, {:?} (choose another by id or name)",
                        scenes.len(),
                        names[0].1
                    ),
                );
            }
            0
        }
    };
    let at = format!("/configuration/scenes/{s}");
    let source = object(&scenes[s], &at)?;
    let mut scene = empty_scene();
    scene.name = Some(names[s].1.clone());
    unknown_fields(source, &at, SCENE_FIELDS, &mut notes);

    // The model.
    let assets = opt_array(source, "assets", &at)?;
    for (a, asset) in assets.iter().enumerate() {
        let here = format!("{at}/assets/{a}");
        let asset = object(asset, &here)?;
        let url = string(field(asset, "url", &here)?, &format!("{here}/url"))?;
        unknown_fields(asset, &here, &["type", "url"], &mut notes);
        if a == 0 {
            scene.mesh = url.to_owned();
            if url == "Globe" {
                notes.add(format!("{here}/url"), "\"Globe\" is 3D Scenes' globe view, not a model");
            } else if url.starts_with("http") {
                notes.add(
                    format!("{here}/url"),
                    "the model is fetched from this URL; when it cannot be reached, import with a local mesh",
                );
            }
        } else {
            notes.add(here, format!("only the first asset is the scene's model; {url:?} is not loaded"));
        }
    }
    if assets.is_empty() {
        notes.add(format!("{at}/assets"), "the scene has no asset: no model");
    }

    // Elements, and every element id of the configuration (behaviors list elements of all scenes).
    let mut all_element_ids = HashSet::new();
    for other_scene in scenes {
        for element in other_scene.get("elements").and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = element.get("id").and_then(Value::as_str) {
                all_element_ids.insert(id.to_owned());
            }
        }
    }
    let mut element_ids = HashSet::new();
    for (e, element) in opt_array(source, "elements", &at)?.iter().enumerate() {
        let here = format!("{at}/elements/{e}");
        let element = object(element, &here)?;
        let kind = opt_string(element, "type", &here)?;
        if kind != Some("TwinToObjectMapping") {
            notes.add(here, format!("an element of type {:?} is not carried over", kind.unwrap_or("(none)")));
            continue;
        }
        unknown_fields(element, &here, ELEMENT_FIELDS, &mut notes);
        let id = string(field(element, "id", &here)?, &format!("{here}/id"))?;
        let twin = string(field(element, "primaryTwinID", &here)?, &format!("{here}/primaryTwinID"))?;
        let nodes = array(field(element, "objectIDs", &here)?, &format!("{here}/objectIDs"))?
            .iter()
            .enumerate()
            .map(|(n, node)| string(node, &format!("{here}/objectIDs/{n}")).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let mut aliases = BTreeMap::new();
        if let Some(map) = element.get("twinAliases") {
            for (alias, target) in object(map, &format!("{here}/twinAliases"))? {
                let target = string(target, &format!("{here}/twinAliases/{}", pointer_key(alias)))?;
                aliases.insert(alias.clone(), target.to_owned());
            }
        }
        if !element_ids.insert(id.to_owned()) {
            notes.add(
                format!("{here}/id"),
                format!("element id {id:?} is used twice; the later element is skipped"),
            );
            continue;
        }
        if nodes.is_empty() {
            notes.add(format!("{here}/objectIDs"), format!("element {id:?} names no mesh object; skipped"));
            element_ids.remove(id);
            continue;
        }
        scene.elements.push(Element {
            id: id.to_owned(),
            name: opt_string(element, "displayName", &here)?.map(str::to_owned),
            twin: twin.to_owned(),
            nodes,
            aliases,
        });
    }

    // Behaviors of this scene, in the configuration's order (as 3D Scenes applies them).
    let behaviors = opt_array(configuration, "behaviors", "/configuration")?;
    let mut behavior_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (b, behavior) in behaviors.iter().enumerate() {
        let here = format!("/configuration/behaviors/{b}");
        let id = string(field(object(behavior, &here)?, "id", &here)?, &format!("{here}/id"))?;
        if behavior_index.contains_key(id) {
            notes.add(
                format!("{here}/id"),
                format!("behavior id {id:?} is used twice; the later behavior is skipped"),
            );
        } else {
            behavior_index.insert(id, b);
        }
    }
    let mut included: Vec<usize> = Vec::new();
    for (i, id) in opt_array(source, "behaviorIDs", &at)?.iter().enumerate() {
        let here = format!("{at}/behaviorIDs/{i}");
        let id = string(id, &here)?;
        match behavior_index.get(id) {
            None => notes.add(here, format!("no behavior has id {id:?}")),
            Some(b) if included.contains(b) => notes.add(here, format!("behavior {id:?} is listed twice")),
            Some(&b) => included.push(b),
        }
    }
    included.sort_unstable();
    for b in &included {
        let here = format!("/configuration/behaviors/{b}");
        let behavior =
            behavior_from(&behaviors[*b], &here, &scene, &element_ids, &all_element_ids, &mut notes)?;
        scene.behaviors.push(behavior);
    }

    // Layers: those that group a behavior of this scene.
    for (l, layer) in opt_array(configuration, "layers", "/configuration")?.iter().enumerate() {
        let here = format!("/configuration/layers/{l}");
        let layer = object(layer, &here)?;
        unknown_fields(layer, &here, &["id", "displayName", "behaviorIDs"], &mut notes);
        let id = string(field(layer, "id", &here)?, &format!("{here}/id"))?;
        if scene.layers.iter().any(|known| known.id == id) {
            notes.add(
                format!("{here}/id"),
                format!("layer id {id:?} is used twice; the later layer is skipped"),
            );
            continue;
        }
        let mut used = false;
        for (i, behavior) in opt_array(layer, "behaviorIDs", &here)?.iter().enumerate() {
            let behavior = string(behavior, &format!("{here}/behaviorIDs/{i}"))?;
            if !behavior_index.contains_key(behavior) {
                notes.add(format!("{here}/behaviorIDs/{i}"), format!("no behavior has id {behavior:?}"));
                continue;
            }
            if let Some(target) = scene.behaviors.iter_mut().find(|b| b.id == behavior) {
                if !target.layers.iter().any(|known| known == id) {
                    target.layers.push(id.to_owned());
                }
                used = true;
            }
        }
        if used {
            scene.layers.push(Layer {
                id: id.to_owned(),
                name: opt_string(layer, "displayName", &here)?.map(str::to_owned),
            });
        }
    }
    Ok((scene, notes))
}

fn behavior_from(
    value: &Value,
    at: &str,
    scene: &Scene,
    element_ids: &HashSet<String>,
    all_element_ids: &HashSet<String>,
    notes: &mut Notes,
) -> Result<Behavior, ImportError> {
    let source = object(value, at)?;
    unknown_fields(source, at, BEHAVIOR_FIELDS, notes);
    let id = string(field(source, "id", at)?, &format!("{at}/id"))?.to_owned();
    let mut selected: Vec<String> = Vec::new();
    for (d, datasource) in opt_array(source, "datasources", at)?.iter().enumerate() {
        let here = format!("{at}/datasources/{d}");
        let datasource = object(datasource, &here)?;
        let kind = opt_string(datasource, "type", &here)?.unwrap_or("(none)");
        if kind != "ElementTwinToObjectMappingDataSource" {
            notes.add(here, format!("a data source of type {kind:?} is not carried over"));
            continue;
        }
        unknown_fields(datasource, &here, &["type", "elementIDs"], notes);
        for (e, element) in opt_array(datasource, "elementIDs", &here)?.iter().enumerate() {
            let pointer = format!("{here}/elementIDs/{e}");
            let element = string(element, &pointer)?;
            if element_ids.contains(element) {
                if !selected.iter().any(|known| known == element) {
                    selected.push(element.to_owned());
                }
            } else if !all_element_ids.contains(element) {
                notes.add(pointer, format!("no element has id {element:?}"));
            }
            // Elements of other scenes of the configuration do not apply here.
        }
    }
    let mut visuals = Vec::new();
    for (v, visual) in opt_array(source, "visuals", at)?.iter().enumerate() {
        let here = format!("{at}/visuals/{v}");
        if let Some(visual) = visual_from(visual, &here, notes)? {
            visuals.push(visual);
        }
    }
    // Aliases the visuals read that a selected element lacks: those visuals give no value there.
    let mut aliases: Vec<String> = Vec::new();
    for visual in &visuals {
        for (expression, text) in visual_expressions(visual) {
            let parsed =
                if text { Expression::parse_text(expression) } else { Expression::parse(expression) };
            if let Ok(parsed) = parsed {
                for alias in &parsed.dependencies().aliases {
                    if !aliases.contains(alias) {
                        aliases.push(alias.clone());
                    }
                }
            }
        }
    }
    for element in scene.elements.iter().filter(|e| selected.contains(&e.id)) {
        for alias in &aliases {
            if !element.aliases.contains_key(alias) {
                notes.add(
                    format!("{at}/visuals"),
                    format!(
                        "element {:?} has no twin alias {alias:?} that behavior {id:?} reads: those visuals give no value on it",
                        element.name.as_deref().unwrap_or(&element.id)
                    ),
                );
            }
        }
    }
    Ok(Behavior {
        id,
        name: opt_string(source, "displayName", at)?.map(str::to_owned),
        elements: ElementSelection::List(selected),
        visuals,
        layers: Vec::new(),
    })
}

/// Expressions of a visual (for alias checks), each with whether it is display text.
fn visual_expressions(visual: &Visual) -> Vec<(&str, bool)> {
    match visual {
        Visual::ValueRanges { expression, ranges, .. } => std::iter::once((expression.as_str(), false))
            .chain(ranges.iter().filter_map(|r| r.label.as_deref().map(|label| (label, true))))
            .collect(),
        Visual::Popover { widgets } => widgets
            .iter()
            .filter_map(|w| match w {
                Widget::Value { expression, .. } | Widget::Gauge { expression, .. } => {
                    Some((expression.as_str(), false))
                }
                Widget::Link { url, .. } => Some((url.as_str(), true)),
                Widget::Trend { .. } => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn check_objects(visual: &Map<String, Value>, at: &str, notes: &mut Notes) {
    let expression = visual.get("objectIDs").and_then(|o| o.get("expression")).and_then(Value::as_str);
    if let Some(expression) = expression
        && expression != "objectIDs"
        && expression != "meshIDs"
    {
        notes.add(
            format!("{at}/objectIDs/expression"),
            format!("objects {expression:?}: the visual applies to the element's own objects"),
        );
    }
}

fn visual_from(value: &Value, at: &str, notes: &mut Notes) -> Result<Option<Visual>, ImportError> {
    let visual = object(value, at)?;
    let kind = opt_string(visual, "type", at)?.unwrap_or("(none)");
    match kind {
        "ExpressionRangeVisual" => {
            unknown_fields(
                visual,
                at,
                &[
                    "type",
                    "id",
                    "displayName",
                    "valueExpression",
                    "expressionType",
                    "valueRanges",
                    "valueRangeType",
                    "objectIDs",
                ],
                notes,
            );
            check_objects(visual, at, notes);
            let expression = string(field(visual, "valueExpression", at)?, &format!("{at}/valueExpression"))?;
            if let Err(error) = Expression::parse(expression) {
                notes.add(format!("{at}/valueExpression"), format!("{error}; the visual is skipped"));
                return Ok(None);
            }
            let kind = match opt_string(visual, "expressionType", at)? {
                None | Some("NumericRange") => ValueKind::Numeric,
                Some("CategoricalValues") => ValueKind::Categorical,
                Some(other) => {
                    notes.add(
                        format!("{at}/expressionType"),
                        format!("expression type {other:?} is unknown; the visual is skipped"),
                    );
                    return Ok(None);
                }
            };
            let mut ranges = Vec::new();
            for (r, range) in opt_array(visual, "valueRanges", at)?.iter().enumerate() {
                let here = format!("{at}/valueRanges/{r}");
                let range = object(range, &here)?;
                unknown_fields(range, &here, &["id", "values", "visual"], notes);
                let values = array(field(range, "values", &here)?, &format!("{here}/values"))?.to_vec();
                if let Err(message) = RangeTest::new(kind, &values) {
                    notes.add(format!("{here}/values"), format!("{message}; the range is skipped"));
                    continue;
                }
                let look = match range.get("visual") {
                    Some(look) => object(look, &format!("{here}/visual"))?,
                    None => &Map::new(),
                };
                let look_at = format!("{here}/visual");
                unknown_fields(look, &look_at, &["color", "iconName", "labelExpression"], notes);
                let color = color(look, &look_at, notes)?;
                let icon = opt_string(look, "iconName", &look_at)?.map(str::to_owned);
                let mut label = opt_string(look, "labelExpression", &look_at)?.map(str::to_owned);
                if let Some(text) = &label
                    && let Err(error) = Expression::parse_text(text)
                {
                    notes.add(format!("{look_at}/labelExpression"), format!("{error}; the label is dropped"));
                    label = None;
                }
                if color.is_none() && icon.is_none() {
                    notes.add(here, "a range with no color and no icon shows nothing; skipped");
                    continue;
                }
                ranges.push(ValueRange { values, color, icon, label, severity: None });
            }
            Ok(Some(Visual::ValueRanges { expression: expression.to_owned(), kind, ranges }))
        }
        "Popover" => {
            unknown_fields(visual, at, &["type", "title", "widgets", "widgetGroups", "objectIDs"], notes);
            check_objects(visual, at, notes);
            if let Some(title) = opt_string(visual, "title", at)?
                && !title.is_empty()
            {
                notes.add(format!("{at}/title"), format!("the popover title {title:?} is not shown"));
            }
            if !opt_array(visual, "widgetGroups", at)?.is_empty() {
                notes.add(
                    format!("{at}/widgetGroups"),
                    "widget groups are not carried over: the widgets are listed in order",
                );
            }
            let mut widgets = Vec::new();
            for (w, widget) in opt_array(visual, "widgets", at)?.iter().enumerate() {
                widgets.extend(widgets_from(widget, &format!("{at}/widgets/{w}"), notes)?);
            }
            Ok(Some(Visual::Popover { widgets }))
        }
        other => {
            notes.add(at, format!("a visual of type {other:?} is not carried over"));
            Ok(None)
        }
    }
}

fn color(look: &Map<String, Value>, at: &str, notes: &mut Notes) -> Result<Option<Color>, ImportError> {
    let Some(text) = opt_string(look, "color", at)? else { return Ok(None) };
    match text.parse() {
        Ok(color) => Ok(Some(color)),
        Err(error) => {
            notes.add(format!("{at}/color"), format!("{error}; the color is dropped"));
            Ok(None)
        }
    }
}

fn parses(expression: &str, pointer: String, text: bool, notes: &mut Notes) -> bool {
    let parsed = if text { Expression::parse_text(expression) } else { Expression::parse(expression) };
    match parsed {
        Ok(_) => true,
        Err(error) => {
            notes.add(pointer, format!("{error}; the widget is skipped"));
            false
        }
    }
}

fn widgets_from(value: &Value, at: &str, notes: &mut Notes) -> Result<Vec<Widget>, ImportError> {
    let widget = object(value, at)?;
    let kind = opt_string(widget, "type", at)?.unwrap_or("(none)");
    let config_at = format!("{at}/widgetConfiguration");
    let empty = Map::new();
    let config = match widget.get("widgetConfiguration") {
        Some(config) => object(config, &config_at)?,
        None => &empty,
    };
    let text = |name: &str| opt_string(config, name, &config_at);
    let known_widget = ["type", "id", "groupID", "valueExpression", "widgetConfiguration"];
    Ok(match kind {
        "Gauge" => {
            unknown_fields(widget, at, &known_widget, notes);
            unknown_fields(config, &config_at, &["units", "label", "valueRanges"], notes);
            let expression = string(field(widget, "valueExpression", at)?, &format!("{at}/valueExpression"))?;
            if !parses(expression, format!("{at}/valueExpression"), false, notes) {
                return Ok(vec![]);
            }
            let mut ranges = Vec::new();
            for (r, range) in opt_array(config, "valueRanges", &config_at)?.iter().enumerate() {
                let here = format!("{config_at}/valueRanges/{r}");
                let range = object(range, &here)?;
                let values = opt_array(range, "values", &here)?;
                let look = range.get("visual").and_then(Value::as_object).unwrap_or(&empty);
                let color = color(look, &format!("{here}/visual"), notes)?;
                let bounds = match values {
                    [min, max] => {
                        numeric_bound(Some(min)).and_then(|min| Ok((min, numeric_bound(Some(max))?)))
                    }
                    _ => Err(format!("a gauge range needs [min, max], got {} value(s)", values.len())),
                };
                match (bounds, color) {
                    (Ok((min, max)), Some(color)) if min.zip(max).is_none_or(|(min, max)| min < max) => {
                        ranges.push(ColorRange { min, max, color })
                    }
                    (Err(message), _) => {
                        notes.add(format!("{here}/values"), format!("{message}; the band is skipped"))
                    }
                    (Ok(_), None) => notes.add(here, "a gauge band without a color is skipped"),
                    (Ok(_), Some(_)) => notes.add(format!("{here}/values"), "the band is empty; skipped"),
                }
            }
            // As 3D Scenes: the lowest lower bound to the highest upper bound; an open end is
            // -100 or 100.
            let min = ranges.iter().map(|r| r.min.unwrap_or(f64::NEG_INFINITY)).fold(f64::INFINITY, f64::min);
            let max = ranges.iter().map(|r| r.max.unwrap_or(f64::INFINITY)).fold(f64::NEG_INFINITY, f64::max);
            let (mut min, mut max) =
                (if min.is_finite() { min } else { -100.0 }, if max.is_finite() { max } else { 100.0 });
            if min >= max {
                notes.add(config_at.clone(), "the gauge's bands give no scale; it is shown from 0 to 100");
                (min, max) = (0.0, 100.0);
            }
            vec![Widget::Gauge {
                label: text("label")?.unwrap_or("").to_owned(),
                expression: expression.to_owned(),
                min,
                max,
                units: text("units")?.map(str::to_owned),
                ranges,
            }]
        }
        "Link" => {
            unknown_fields(widget, at, &known_widget, notes);
            unknown_fields(config, &config_at, &["label", "linkExpression"], notes);
            let url =
                string(field(config, "linkExpression", &config_at)?, &format!("{config_at}/linkExpression"))?;
            if !parses(url, format!("{config_at}/linkExpression"), true, notes) {
                return Ok(vec![]);
            }
            vec![Widget::Link { label: text("label")?.unwrap_or("").to_owned(), url: url.to_owned() }]
        }
        "Value" => {
            unknown_fields(widget, at, &known_widget, notes);
            unknown_fields(config, &config_at, &["displayName", "valueExpression", "type"], notes);
            let expression = string(
                field(config, "valueExpression", &config_at)?,
                &format!("{config_at}/valueExpression"),
            )?;
            if !parses(expression, format!("{config_at}/valueExpression"), false, notes) {
                return Ok(vec![]);
            }
            vec![Widget::Value {
                label: text("displayName")?.unwrap_or("").to_owned(),
                expression: expression.to_owned(),
                units: None,
            }]
        }
        "Data history" => {
            unknown_fields(widget, at, &known_widget, notes);
            unknown_fields(
                config,
                &config_at,
                &["connection", "displayName", "timeSeries", "chartOptions"],
                notes,
            );
            notes.add(
                config_at.clone(),
                "data history reads Azure Data Explorer; here each series is a trend of the twin's recent \
                 values (the server's history), without the connection and chart options",
            );
            let mut trends = Vec::new();
            for (t, series) in opt_array(config, "timeSeries", &config_at)?.iter().enumerate() {
                let here = format!("{config_at}/timeSeries/{t}");
                let series = object(series, &here)?;
                let expression = string(field(series, "expression", &here)?, &format!("{here}/expression"))?;
                let path = Expression::parse(expression).ok().and_then(|e| {
                    e.primary_property_path().filter(|p| p.len() == 1).map(|p| p[0].to_owned())
                });
                let Some(property) = path else {
                    notes.add(
                        format!("{here}/expression"),
                        format!(
                            "a trend follows one property of the primary twin, not {expression:?}; skipped"
                        ),
                    );
                    continue;
                };
                trends.push(Widget::Trend {
                    label: opt_string(series, "label", &here)?
                        .or(text("displayName")?)
                        .unwrap_or(&property)
                        .to_owned(),
                    property,
                    units: opt_string(series, "unit", &here)?.map(str::to_owned),
                });
            }
            trends
        }
        other => {
            notes.add(at, format!("a {other:?} widget is not carried over"));
            vec![]
        }
    })
}
