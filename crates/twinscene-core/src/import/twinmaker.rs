//! AWS IoT TwinMaker scenes (`specVersion` 1.0): the first `ModelRef` is the mesh, nodes with a
//! `SubModelRef` (a glTF node by name) or a `Tag` bound to an entity are elements, each bound
//! entity is a twin, and rule maps (`ruleBasedMapId`) become `conditions` visuals with their
//! Jexl statements translated. See docs/import.md for the mapping and the list of notes.
//!
//! Property paths: a binding `{entityId, componentName, propertyName}` reads the twin property
//! `componentName.propertyName`, a nested object (`PrimaryTwin.temperatureSensor1.temperature`),
//! the way ADT components are read; without a component it reads `propertyName`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::jexl;
use super::read::{array, field, object, opt_array, opt_string, string};
use super::{ImportError, Notes, empty_scene, pointer_key};
use crate::scene::{Behavior, ConditionCase, Element, ElementSelection, Scene, Severity, Visual, Widget};
use crate::twin::Twin;

/// The model of the twins made for TwinMaker entities.
pub const ENTITY_MODEL: &str = "dtmi:twinmaker:entity;1";

/// One value binding: which entity, and which property of it.
#[derive(Clone, Debug, PartialEq)]
struct Binding {
    entity: String,
    /// `[componentName, propertyName]`, `[propertyName]`, or empty for an entity binding.
    path: Vec<String>,
}

struct Context<'a> {
    template: BTreeMap<String, String>,
    rules: Option<&'a Map<String, Value>>,
    notes: Notes,
    /// Entity → the property paths bound on it.
    twins: BTreeMap<String, Vec<Vec<String>>>,
}

impl Context<'_> {
    /// A `dataBindingContext`, with `${name}` template references resolved.
    fn binding(&mut self, value: Option<&Value>, at: &str) -> Result<Option<Binding>, ImportError> {
        let Some(value) = value else { return Ok(None) };
        let binding = object(value, at)?;
        let Some(context) = binding.get("dataBindingContext") else { return Ok(None) };
        let at = format!("{at}/dataBindingContext");
        let context = object(context, &at)?;
        // Ok(None): absent; Err(()): a template reference with no value (noted).
        let mut part = |name: &str| -> Result<Result<Option<String>, ()>, ImportError> {
            let Some(text) = opt_string(context, name, &at)? else { return Ok(Ok(None)) };
            let Some(reference) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
                return Ok(Ok(Some(text.to_owned())));
            };
            match self.template.get(reference) {
                Some(resolved) => Ok(Ok(Some(resolved.clone()))),
                None => {
                    self.notes.add(
                        format!("{at}/{name}"),
                        format!("{text:?} names no value of properties.dataBindingConfig.template; the binding is skipped"),
                    );
                    Ok(Err(()))
                }
            }
        };
        let (Ok(entity), Ok(component), Ok(property)) =
            (part("entityId")?, part("componentName")?, part("propertyName")?)
        else {
            return Ok(None);
        };
        let Some(entity) = entity else {
            self.notes.add(at, "a binding without \"entityId\" is skipped");
            return Ok(None);
        };
        let path: Vec<String> = match (component, property) {
            (Some(component), Some(property)) => vec![component, property],
            (None, Some(property)) => vec![property],
            (Some(_), None) | (None, None) => vec![],
        };
        let paths = self.twins.entry(entity.clone()).or_default();
        if !path.is_empty() && !paths.contains(&path) {
            paths.push(path.clone());
        }
        Ok(Some(Binding { entity, path }))
    }
}

/// What a node contributes.
#[derive(Default)]
struct NodeParts {
    selector: Option<String>,
    entity: Option<Binding>,
    /// (rule id, binding, is a tag, pointer of the component)
    rules: Vec<(String, Option<Binding>, bool, String)>,
    tag: bool,
    tag_bound: Option<Binding>,
    link: Option<String>,
}

pub(super) fn import(root: &Value) -> Result<(Scene, Notes), ImportError> {
    let source = object(root, "")?;
    let mut scene = empty_scene();
    let mut context =
        Context { template: BTreeMap::new(), rules: None, notes: Notes::default(), twins: BTreeMap::new() };
    match source.get("specVersion") {
        Some(Value::String(version)) if version == "1.0" => {}
        Some(other) => {
            context.notes.add("/specVersion", format!("spec version {other} was not tested; read as 1.0"))
        }
        None => {}
    }
    if let Some(properties) = source.get("properties") {
        let properties = object(properties, "/properties")?;
        for (name, value) in properties {
            let at = format!("/properties/{}", pointer_key(name));
            if name == "dataBindingConfig" {
                let config = object(value, &at)?;
                if let Some(template) = config.get("template") {
                    for (key, value) in object(template, &format!("{at}/template"))? {
                        let value = string(value, &format!("{at}/template/{}", pointer_key(key)))?;
                        context.template.insert(key.clone(), value.to_owned());
                    }
                }
            } else {
                context.notes.add(at, format!("the scene setting {name:?} is not carried over"));
            }
        }
    }
    if let Some(rules) = source.get("rules") {
        context.rules = Some(object(rules, "/rules")?);
    }
    if !opt_array(source, "cameras", "")?.is_empty() {
        context.notes.add("/cameras", "cameras are not carried over (the viewer frames the model)");
    }
    let nodes = array(field(source, "nodes", "")?, "/nodes")?;
    let mut names = Vec::with_capacity(nodes.len());
    let mut parents: Vec<Option<usize>> = vec![None; nodes.len()];
    for (n, node) in nodes.iter().enumerate() {
        let at = format!("/nodes/{n}");
        let node = object(node, &at)?;
        names.push(opt_string(node, "name", &at)?.map_or_else(|| format!("node {n}"), str::to_owned));
        for (c, child) in opt_array(node, "children", &at)?.iter().enumerate() {
            match child.as_u64().map(|c| c as usize).filter(|&c| c < nodes.len() && c != n) {
                Some(child) => parents[child] = Some(n),
                None => {
                    context.notes.add(format!("{at}/children/{c}"), format!("{child} is not a node index"))
                }
            }
        }
    }
    for (r, index) in opt_array(source, "rootNodeIndexes", "")?.iter().enumerate() {
        if index.as_u64().is_none_or(|i| i as usize >= nodes.len()) {
            context.notes.add(format!("/rootNodeIndexes/{r}"), format!("{index} is not a node index"));
        }
    }

    // Each node's parts.
    let mut parts: Vec<NodeParts> = Vec::with_capacity(nodes.len());
    let mut model_nodes = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let at = format!("/nodes/{n}");
        let node = object(node, &at)?;
        let mut part = NodeParts::default();
        let mut transform_noted = false;
        for (c, component) in opt_array(node, "components", &at)?.iter().enumerate() {
            let here = format!("{at}/components/{c}");
            let component = object(component, &here)?;
            let kind = opt_string(component, "type", &here)?.unwrap_or("(none)");
            match kind {
                "ModelRef" => {
                    let uri = string(field(component, "uri", &here)?, &format!("{here}/uri"))?;
                    if model_nodes.is_empty() {
                        scene.mesh = uri.to_owned();
                        if uri.starts_with("s3://") || uri.starts_with("http") {
                            context.notes.add(
                                format!("{here}/uri"),
                                "the model is fetched from this URI; when it cannot be reached, import with a local mesh",
                            );
                        }
                        if !identity(node.get("transform")) {
                            context.notes.add(
                                format!("{at}/transform"),
                                "the model's placement (transform) is not carried over: it is shown as the file places it",
                            );
                            transform_noted = true;
                        }
                    } else {
                        context.notes.add(
                            format!("{here}/uri"),
                            format!("only the first model is loaded; {uri:?} is not"),
                        );
                    }
                    model_nodes.push(n);
                }
                "SubModelRef" => {
                    part.selector = Some(
                        string(field(component, "selector", &here)?, &format!("{here}/selector"))?.to_owned(),
                    );
                }
                "EntityBinding" => {
                    part.entity = context
                        .binding(component.get("valueDataBinding"), &format!("{here}/valueDataBinding"))?;
                }
                "ModelShader" | "Tag" => {
                    let is_tag = kind == "Tag";
                    part.tag |= is_tag;
                    let binding = context
                        .binding(component.get("valueDataBinding"), &format!("{here}/valueDataBinding"))?;
                    if is_tag && binding.is_some() {
                        part.tag_bound = binding.clone();
                    }
                    match opt_string(component, "ruleBasedMapId", &here)? {
                        Some(rule) => part.rules.push((rule.to_owned(), binding, is_tag, here.clone())),
                        None if !is_tag => {
                            context.notes.add(here.clone(), "a model shader without a rule map shows nothing")
                        }
                        None => {}
                    }
                    if let Some(link) = component.get("navLink") {
                        part.link = nav_link(link, &format!("{here}/navLink"), &mut context.notes)?;
                    }
                    for name in component.keys() {
                        if !["type", "ruleBasedMapId", "valueDataBinding", "navLink"].contains(&name.as_str())
                        {
                            context.notes.add(
                                format!("{here}/{}", pointer_key(name)),
                                format!("{name:?} is not carried over"),
                            );
                        }
                    }
                }
                "Light" => {
                    context.notes.add(here, "lights are not carried over (the viewer lights the scene)")
                }
                "Camera" => {
                    context.notes.add(here, "cameras are not carried over (the viewer frames the model)")
                }
                "MotionIndicator" => context.notes.add(here, "motion indicators are not carried over"),
                "DataOverlay" => {
                    context.notes.add(here, "data overlays (annotations, panels) are not carried over")
                }
                other => context.notes.add(here, format!("a {other:?} component is not carried over")),
            }
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object)
            && !properties.is_empty()
        {
            context.notes.add(format!("{at}/properties"), "node properties are not carried over");
        }
        if part.selector.is_some() && !transform_noted && node.contains_key("transform") {
            context.notes.add(
                format!("{at}/transform"),
                "a sub-model's transform is not carried over: the glTF node keeps its own placement",
            );
        }
        parts.push(part);
    }
    if model_nodes.is_empty() {
        context.notes.add("/nodes", "no node has a ModelRef: the scene has no model");
    }

    // Elements.
    let mut used_ids: HashMap<String, usize> = HashMap::new();
    for (n, part) in parts.iter().enumerate() {
        let at = format!("/nodes/{n}");
        let name = &names[n];
        let is_model = model_nodes.contains(&n);
        let primary = part
            .entity
            .clone()
            .or_else(|| part.rules.iter().find_map(|(_, binding, _, _)| binding.clone()))
            .or_else(|| part.tag_bound.clone());
        if is_model {
            if let Some(binding) = &part.entity {
                context.notes.add(
                    at.clone(),
                    format!(
                        "the whole model is bound to entity {:?}: its twin is made, but elements are mesh nodes, \
                         so no element shows it",
                        binding.entity
                    ),
                );
            }
            if !part.rules.is_empty() {
                context
                    .notes
                    .add(at, "rules on the whole model are not carried over: elements are mesh nodes");
            }
            continue;
        }
        if part.selector.is_none() && !part.tag {
            continue;
        }
        let Some(primary) = primary else {
            let what = if part.tag { "tag" } else { "sub-model" };
            context.notes.add(at, format!("{what} {name:?} is bound to no entity: it is not an element"));
            continue;
        };
        let node = match &part.selector {
            Some(selector) => selector.clone(),
            None => {
                // A tag is a point in space; elements are mesh nodes. The nearest ancestor that is
                // a sub-model carries its badge, else a node named like the tag.
                let mut ancestor = parents[n];
                let mut found = None;
                // Bounded: `children` may form a cycle.
                for _ in 0..parts.len() {
                    let Some(a) = ancestor else { break };
                    if let Some(selector) = &parts[a].selector {
                        found = Some(selector.clone());
                        break;
                    }
                    ancestor = parents[a];
                }
                context.notes.add(
                    format!("{at}/transform"),
                    match &found {
                        Some(selector) => format!(
                            "tag {name:?} is a point in space; its badge is shown on the sub-model {selector:?}"
                        ),
                        None => format!(
                            "tag {name:?} is a point in space; its badge is shown on a mesh node named {name:?}, \
                             which the model may lack (the badge is still listed)"
                        ),
                    },
                );
                found.unwrap_or_else(|| name.clone())
            }
        };
        let id = unique(name, &mut used_ids);
        let mut element = Element {
            id: id.clone(),
            name: Some(name.clone()),
            twin: primary.entity.clone(),
            nodes: vec![node],
            aliases: BTreeMap::new(),
        };
        let mut visuals = Vec::new();
        for (rule, binding, is_tag, here) in &part.rules {
            let reads = binding.as_ref().map(|binding| {
                let root = if binding.entity == primary.entity {
                    "PrimaryTwin".to_owned()
                } else {
                    let alias = alias_name(&binding.entity);
                    element.aliases.insert(alias.clone(), binding.entity.clone());
                    alias
                };
                (binding.path.clone(), root)
            });
            if let Some(cases) = rule_cases(rule, reads.as_ref(), *is_tag, here, &mut context)? {
                visuals.push(Visual::Conditions { cases });
            }
        }
        if let Some(url) = &part.link {
            visuals.push(Visual::Popover {
                widgets: vec![Widget::Link { label: "Link".into(), url: url.clone() }],
            });
        }
        if !visuals.is_empty() {
            scene.behaviors.push(Behavior {
                id: format!("{id}:rules"),
                name: Some(format!("Rules of {name}")),
                elements: ElementSelection::List(vec![id.clone()]),
                visuals,
                layers: Vec::new(),
            });
        }
        scene.elements.push(element);
    }

    // A twin per bound entity, with the bound properties present (null) for a live feed to fill.
    for (entity, paths) in &context.twins {
        let mut twin = Twin::new(entity.clone(), ENTITY_MODEL);
        let mut properties = Map::new();
        for path in paths {
            let mut object = &mut properties;
            for (i, key) in path.iter().enumerate() {
                if i + 1 == path.len() {
                    object.entry(key.clone()).or_insert(Value::Null);
                } else {
                    let slot = object.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    object = slot.as_object_mut().expect("just made an object");
                }
            }
        }
        twin.properties = properties.into();
        scene.twins.push(twin);
    }
    Ok((scene, context.notes))
}

/// Whether a transform is absent or the identity.
fn identity(transform: Option<&Value>) -> bool {
    let Some(transform) = transform else { return true };
    let all = |name: &str, value: f64| {
        transform
            .get(name)
            .and_then(Value::as_array)
            .is_none_or(|v| v.iter().all(|x| x.as_f64() == Some(value)))
    };
    all("position", 0.0) && all("rotation", 0.0) && all("scale", 1.0)
}

fn unique(name: &str, used: &mut HashMap<String, usize>) -> String {
    let count = used.entry(name.to_owned()).or_insert(0);
    *count += 1;
    if *count == 1 {
        return name.to_owned();
    }
    let mut n = *count;
    loop {
        let candidate = format!("{name}-{n}");
        if !used.contains_key(&candidate) {
            used.insert(candidate.clone(), 1);
            return candidate;
        }
        n += 1;
    }
}

/// An alias name (an expression identifier) for another entity.
fn alias_name(entity: &str) -> String {
    let cleaned: String =
        entity.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("entity_{cleaned}")
}

fn nav_link(value: &Value, at: &str, notes: &mut Notes) -> Result<Option<String>, ImportError> {
    let link = object(value, at)?;
    let Some(destination) = opt_string(link, "destination", at)? else { return Ok(None) };
    let mut url = destination.to_owned();
    if let Some(params) = link.get("params") {
        let params = object(params, &format!("{at}/params"))?;
        for (i, (key, value)) in params.iter().enumerate() {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            url.push(if i == 0 && !destination.contains('?') { '?' } else { '&' });
            url.push_str(&format!("{key}={value}"));
        }
    }
    if crate::expression::Expression::parse_text(&url).is_err() {
        notes.add(at, "the link cannot be read as link text; skipped");
        return Ok(None);
    }
    Ok(Some(url))
}

/// The cases of a rule map, statements in order (TwinMaker takes the first that matches).
/// `reads`: the bound property path and the name of the twin it is read from.
fn rule_cases(
    rule: &str,
    reads: Option<&(Vec<String>, String)>,
    tag: bool,
    at: &str,
    context: &mut Context<'_>,
) -> Result<Option<Vec<ConditionCase>>, ImportError> {
    let Some(definition) = context.rules.and_then(|rules| rules.get(rule)) else {
        context.notes.add(format!("{at}/ruleBasedMapId"), format!("no rule map has id {rule:?}"));
        return Ok(None);
    };
    let rule_at = format!("/rules/{}", pointer_key(rule));
    let statements = opt_array(object(definition, &rule_at)?, "statements", &rule_at)?;
    let mut cases = Vec::new();
    for (s, statement) in statements.iter().enumerate() {
        let here = format!("{rule_at}/statements/{s}");
        let statement = object(statement, &here)?;
        let expression = string(field(statement, "expression", &here)?, &format!("{here}/expression"))?;
        let target = string(field(statement, "target", &here)?, &format!("{here}/target"))?;
        let property_path = |name: &str| {
            let (path, root) = reads?;
            (path.last().map(String::as_str) == Some(name)).then(|| {
                std::iter::once(root.as_str())
                    .chain(path.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(".")
            })
        };
        let (when, used) = match jexl::translate(expression, &property_path) {
            Ok(translated) => translated,
            Err(reason) => {
                context.notes.add(
                    format!("{here}/expression"),
                    format!("rule {rule:?}, statement {s}: {expression:?} cannot be translated ({reason}); the statement is skipped"),
                );
                continue;
            }
        };
        // A property present but null has no data yet: no statement that reads it matches.
        let when = match used.is_empty() {
            true => when,
            false => {
                let guards: Vec<String> = used
                    .iter()
                    .filter_map(|name| property_path(name))
                    .map(|path| format!("{path} != null"))
                    .collect();
                format!("{} && ({when})", guards.join(" && "))
            }
        };
        let mut case =
            ConditionCase { when, color: None, opacity: None, icon: None, severity: None, label: None };
        let (kind, value) = target.split_once(':').unwrap_or((target, ""));
        match kind {
            "iottwinmaker.common.color" => match value.parse() {
                Ok(color) => {
                    case.color = Some(color);
                    if tag {
                        case.icon = Some("Tag".into());
                    }
                }
                Err(error) => {
                    context.notes.add(
                        format!("{here}/target"),
                        format!("rule {rule:?}, statement {s}: {error}; skipped"),
                    );
                    continue;
                }
            },
            "iottwinmaker.common.opacity" => match value.parse::<f64>() {
                Ok(opacity) if (0.0..=1.0).contains(&opacity) && !tag => case.opacity = Some(opacity),
                _ => {
                    context.notes.add(
                        format!("{here}/target"),
                        format!("rule {rule:?}, statement {s}: opacity {value:?} is not carried over"),
                    );
                    continue;
                }
            },
            "iottwinmaker.common.icon" if !value.is_empty() => {
                case.icon = Some(value.to_owned());
                case.severity = match value {
                    "Error" => Some(Severity::Error),
                    "Warning" => Some(Severity::Warning),
                    "Info" => Some(Severity::Info),
                    _ => None,
                };
            }
            _ => {
                context.notes.add(
                    format!("{here}/target"),
                    format!("rule {rule:?}, statement {s}: target {target:?} is not carried over"),
                );
                continue;
            }
        }
        cases.push(case);
    }
    Ok(if cases.is_empty() { None } else { Some(cases) })
}
