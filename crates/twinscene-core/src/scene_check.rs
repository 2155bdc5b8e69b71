//! Checks of a scene beyond its own consistency ([`Scene::problems`]): twins that elements name,
//! layers without behaviors, twins against their DTDL models, and the **types** of expressions.
//!
//! The type checker walks each expression's tree with the element's twins in mind: `PrimaryTwin.x`
//! and `alias.x` are looked up in the twin's DTDL interface (from a [`ModelSet`]) or, without a
//! model, in the values of the scene's twins of that model. It reports unknown properties and
//! relationships (with near misses) and operations that can never work on the types involved:
//! a string compared with a number, `===` between different types or with a value outside an
//! enum, numeric ranges over a boolean, a string method on a number. Findings that rest only on
//! twin values, not on a model, are warnings: a twin may still get the property.
//!
//! `twinscene validate` prints these findings; the viewer never needs them to run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::dtdl::{ModelSet, Schema};
use crate::expression::{
    BinaryOp, Expression, Function, LogicalOp, Method, Node, NodeId, TemplatePart, UnaryOp,
};
use crate::rules::ValueKind;
use crate::scene::{ElementSelection, ModelSelection, QuerySelection, Scene, Visual, Widget};
use crate::twin::Twin;

/// How bad a finding is: errors make a scene invalid, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

/// One thing found, located by JSON pointer into the scene.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub pointer: String,
    pub message: String,
}

/// `severity pointer: message`, as the viewer logs and publishes it.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity.as_str(), self.pointer, self.message)
    }
}

/// Up to three names close to `name` (edit distance), closest first.
pub fn near_misses<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 4);
    let lower = name.to_lowercase();
    let mut close: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .filter_map(|candidate| {
            let distance = strsim::levenshtein(&lower, &candidate.to_lowercase());
            (distance <= limit).then_some((distance, candidate))
        })
        .collect();
    close.sort();
    close.dedup();
    close.into_iter().take(3).map(|(_, candidate)| candidate).collect()
}

/// `" (did you mean "a" or "b"?)"`, or nothing.
pub fn did_you_mean(suggestions: &[&str]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean {one:?}?)"),
        [rest @ .., last] => {
            let rest: Vec<String> = rest.iter().map(|s| format!("{s:?}")).collect();
            format!(" (did you mean {} or {last:?}?)", rest.join(", "))
        }
    }
}

/// Checks `scene` with the twins it may be shown with (its own, then `extra_twins`, e.g. from a
/// twins file) and, when known, the DTDL models of those twins. Findings come in scene order.
pub fn check_scene(scene: &Scene, extra_twins: &[Twin], models: Option<&ModelSet>) -> Vec<Finding> {
    check_scene_with_twins(scene, extra_twins.iter(), models)
}

/// [`check_scene`] with the extra twins borrowed from wherever they live (the viewer's twin
/// graph once live data arrived), so that 10^5 twins need not be copied into a slice.
pub fn check_scene_with_twins<'a>(
    scene: &'a Scene,
    extra_twins: impl IntoIterator<Item = &'a Twin>,
    models: Option<&ModelSet>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let twins: HashMap<&str, &Twin> =
        extra_twins.into_iter().chain(&scene.twins).map(|twin| (twin.id.as_str(), twin)).collect();
    let catalog = Catalog::new(scene, twins.values().copied(), models);

    if let Some(models) = models {
        for (t, twin) in scene.twins.iter().enumerate() {
            if models.interface(&twin.model).is_none() {
                findings.push(warning(
                    format!("/twins/{t}/$metadata/$model"),
                    format!("model {} of twin {:?} is not among the models", twin.model, twin.id),
                ));
            } else if let Err(message) = models.check_twin(twin) {
                findings.push(error(format!("/twins/{t}"), format!("twin {:?}: {message}", twin.id)));
            }
        }
    }

    let twins_known = !twins.is_empty();
    if !twins_known && !scene.elements.is_empty() {
        findings.push(warning(
            "/twins".into(),
            "the scene lists no twins and none were given: twin references are not checked".into(),
        ));
    }
    for (e, element) in scene.elements.iter().enumerate() {
        if twins_known && !twins.contains_key(element.twin.as_str()) {
            findings.push(warning(
                format!("/elements/{e}/twin"),
                format!(
                    "twin {:?} not found: the viewer shows element {:?} as \"twin not found\"{}",
                    element.twin,
                    element.id,
                    did_you_mean(&near_misses(&element.twin, twins.keys().copied()))
                ),
            ));
        }
        for (alias, id) in &element.aliases {
            if twins_known && !twins.contains_key(id.as_str()) {
                findings.push(warning(
                    format!("/elements/{e}/aliases/{}", escape_pointer(alias)),
                    format!("alias {alias:?}: twin {id:?} not found: expressions using it give no value"),
                ));
            }
        }
    }

    for (l, layer) in scene.layers.iter().enumerate() {
        if !scene.behaviors.iter().any(|behavior| behavior.layers.contains(&layer.id)) {
            findings.push(warning(
                format!("/layers/{l}"),
                format!("layer {:?} has no behaviors: switching it changes nothing", layer.id),
            ));
        }
    }

    let model_of = |id: &str| twins.get(id).map(|twin| twin.model.clone());
    for (b, behavior) in scene.behaviors.iter().enumerate() {
        // One check per distinct set of models, not per element: large scenes repeat them.
        let mut contexts: BTreeMap<ContextKey, &str> = BTreeMap::new();
        for element in &scene.elements {
            let selected = match &behavior.elements {
                // A query is checked against every element it may select.
                ElementSelection::All(_) | ElementSelection::Query(_) => true,
                ElementSelection::List(ids) => ids.contains(&element.id),
                ElementSelection::Model(ModelSelection { model }) => {
                    twins.get(element.twin.as_str()).is_some_and(|twin| {
                        twin.model == *model || models.is_some_and(|models| models.is_a(&twin.model, model))
                    })
                }
            };
            if !selected {
                continue;
            }
            let aliases = element.aliases.iter().map(|(alias, id)| (alias.clone(), model_of(id))).collect();
            contexts.entry((model_of(&element.twin), aliases)).or_insert(&element.id);
        }
        let contexts: Vec<Context> = contexts
            .into_iter()
            .map(|((primary, aliases), element)| Context {
                primary: Some(primary),
                aliases: aliases.into_iter().collect(),
                element: Some(element.to_owned()),
            })
            .collect();
        if let ElementSelection::Query(QuerySelection { query }) = &behavior.elements {
            for context in &contexts {
                let pointer = format!("/behaviors/{b}/elements/query");
                check_expression(&catalog, context, query, Parse::Expression, &pointer, &mut findings);
            }
        }
        if let ElementSelection::Model(ModelSelection { model }) = &behavior.elements
            && let Some(models) = models
            && models.interface(model).is_none()
        {
            let suggestions = near_misses(model, models.interfaces().map(|interface| interface.id.as_str()));
            findings.push(warning(
                format!("/behaviors/{b}/elements/model"),
                format!("model {model} is not among the models{}", did_you_mean(&suggestions)),
            ));
        }
        for (v, visual) in behavior.visuals.iter().enumerate() {
            let at = format!("/behaviors/{b}/visuals/{v}");
            // An error for some elements only (say one element of another model in the list) is
            // a warning: the visual works on the others and gives no value on that one.
            let results: Vec<(bool, Vec<Finding>)> = contexts
                .iter()
                .map(|context| {
                    let mut found = Vec::new();
                    check_visual(&catalog, context, visual, &at, &mut found);
                    (catalog.knows(context), found)
                })
                .collect();
            let works_somewhere = |pointer: &str| {
                results.iter().any(|(known, found)| {
                    *known && !found.iter().any(|f| f.severity == Severity::Error && f.pointer == pointer)
                })
            };
            for (context, (_, found)) in contexts.iter().zip(&results) {
                for finding in found {
                    let mut finding = finding.clone();
                    if finding.severity == Severity::Error && works_somewhere(&finding.pointer) {
                        finding.severity = Severity::Warning;
                        finding.message = format!(
                            "{} (on element {:?}; it works on other elements of the behavior)",
                            finding.message,
                            context.element.as_deref().unwrap_or_default()
                        );
                    }
                    findings.push(finding);
                }
            }
        }
    }

    for (c, computed) in scene.computed.iter().enumerate() {
        let mut targets: BTreeSet<Option<String>> = BTreeSet::new();
        if let Some(model) = &computed.model {
            targets.insert(Some(model.clone()));
        }
        for id in computed.twins.iter().flatten() {
            targets.insert(model_of(id));
        }
        for target in targets {
            let context = Context { primary: Some(target), aliases: BTreeMap::new(), element: None };
            check_expression(
                &catalog,
                &context,
                &computed.expression,
                Parse::Expression,
                &format!("/computed/{c}/expression"),
                &mut findings,
            );
        }
    }

    let mut seen = BTreeSet::new();
    findings.retain(|finding| seen.insert((finding.pointer.clone(), finding.message.clone())));
    findings
}

/// The models an element's expressions see: its primary twin's, and each alias's.
type ContextKey = (Option<String>, Vec<(String, Option<String>)>);

fn error(pointer: String, message: String) -> Finding {
    Finding { severity: Severity::Error, pointer, message }
}

fn warning(pointer: String, message: String) -> Finding {
    Finding { severity: Severity::Warning, pointer, message }
}

/// A JSON pointer reference token (RFC 6901).
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// What property names and types twins of each model have.
struct Catalog<'a> {
    models: Option<&'a ModelSet>,
    /// Without a DTDL interface: properties seen on the scene's twins of that model.
    observed: HashMap<&'a str, BTreeMap<&'a str, Ty>>,
    /// Computed properties by model (`None`: of listed twins, any model).
    computed: Vec<(Option<String>, &'a str)>,
}

enum Lookup {
    Found(Ty),
    /// A component: its members are looked up in this interface.
    Component(String),
    Telemetry,
    Relationship,
    /// Not there; `definite` when a DTDL interface says so.
    Missing {
        candidates: Vec<String>,
        definite: bool,
    },
    /// Nothing is known of this model.
    Unchecked,
}

impl<'a> Catalog<'a> {
    fn new(scene: &'a Scene, twins: impl Iterator<Item = &'a Twin>, models: Option<&'a ModelSet>) -> Self {
        let mut observed: HashMap<&str, BTreeMap<&str, Ty>> = HashMap::new();
        for twin in twins {
            if models.is_some_and(|models| models.interface(&twin.model).is_some()) {
                continue;
            }
            let properties = observed.entry(twin.model.as_str()).or_default();
            for (name, value) in &twin.properties {
                let ty = Ty::of_json(value);
                properties
                    .entry(name)
                    .and_modify(|known| {
                        if *known != ty {
                            *known = Ty::Unknown;
                        }
                    })
                    .or_insert(ty);
            }
        }
        let mut computed = Vec::new();
        for property in &scene.computed {
            if property.twins.is_some() {
                computed.push((None, property.property.as_str()));
            }
            if let Some(model) = &property.model {
                computed.push((Some(model.clone()), property.property.as_str()));
            }
        }
        Self { models, observed, computed }
    }

    fn is_computed(&self, model: &str, name: &str) -> bool {
        self.computed.iter().any(|(target, property)| {
            *property == name
                && target.as_deref().is_none_or(|target| {
                    target == model || self.models.is_some_and(|models| models.is_a(model, target))
                })
        })
    }

    fn lookup(&self, model: &str, name: &str) -> Lookup {
        if self.is_computed(model, name) {
            return Lookup::Found(Ty::Unknown);
        }
        if let Some(interface) = self.models.and_then(|models| models.interface(model)) {
            if let Some(property) = interface.properties.get(name) {
                return Lookup::Found(Ty::of_schema(&property.schema));
            }
            if let Some(component) = interface.components.get(name) {
                return Lookup::Component(component.schema.clone());
            }
            if interface.telemetry.contains_key(name) {
                return Lookup::Telemetry;
            }
            if interface.relationships.contains_key(name) {
                return Lookup::Relationship;
            }
            let candidates =
                interface.properties.keys().chain(interface.components.keys()).cloned().collect();
            return Lookup::Missing { candidates, definite: true };
        }
        match self.observed.get(model) {
            Some(properties) => match properties.get(name) {
                Some(ty) => Lookup::Found(ty.clone()),
                None => Lookup::Missing {
                    candidates: properties.keys().map(|name| (*name).to_owned()).collect(),
                    definite: false,
                },
            },
            None => Lookup::Unchecked,
        }
    }

    /// The relationship `name` of `model`: `Ok(target model)`, or the names it has instead.
    fn relationship(&self, model: &str, name: &str) -> Result<Option<String>, Vec<String>> {
        let Some(interface) = self.models.and_then(|models| models.interface(model)) else { return Ok(None) };
        match interface.relationships.get(name) {
            Some(relationship) => Ok(relationship.target.clone()),
            None => Err(interface.relationships.keys().cloned().collect()),
        }
    }

    /// Whether anything is known of the context's primary twin's model.
    fn knows(&self, context: &Context) -> bool {
        match &context.primary {
            Some(Some(model)) => self.has_interface(model) || self.observed.contains_key(model.as_str()),
            _ => false,
        }
    }

    fn has_interface(&self, model: &str) -> bool {
        self.models.is_some_and(|models| models.interface(model).is_some())
    }
}

/// The static type of a value.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Unknown,
    Number,
    Str,
    Bool,
    Nullish,
    /// A DTDL enum: the type of its values and the values.
    Enum(Box<Ty>, Vec<Value>),
    /// A twin of a model (`None`: unknown), or a component with that interface.
    Twin(Option<String>),
    /// A list of twins (`related`).
    Twins(Option<String>),
    List(Box<Ty>),
    Object(Vec<(String, Schema)>),
    Map(Box<Schema>),
}

impl Ty {
    fn of_schema(schema: &Schema) -> Self {
        match schema {
            Schema::Boolean => Self::Bool,
            Schema::Double | Schema::Float | Schema::Decimal | Schema::Integer => Self::Number,
            Schema::String
            | Schema::Date
            | Schema::DateTime
            | Schema::Duration
            | Schema::Time
            | Schema::Bytes => Self::Str,
            Schema::Geospatial => Self::Unknown,
            Schema::Enum { value_schema, values } => Self::Enum(
                Box::new(Self::of_schema(value_schema)),
                values.iter().map(|(_, value)| value.clone()).collect(),
            ),
            Schema::Object { fields } => Self::Object(fields.clone()),
            Schema::Map { value, .. } => Self::Map(value.clone()),
            Schema::Array { element } => Self::List(Box::new(Self::of_schema(element))),
        }
    }

    fn of_json(value: &Value) -> Self {
        match value {
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::Str,
            Value::Bool(_) => Self::Bool,
            _ => Self::Unknown,
        }
    }

    /// The primitive this behaves as: enums as their values.
    fn base(&self) -> &Ty {
        match self {
            Self::Enum(base, _) => base,
            other => other,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Unknown => "a value".into(),
            Self::Number => "a number".into(),
            Self::Str => "a string".into(),
            Self::Bool => "a boolean".into(),
            Self::Nullish => "null".into(),
            Self::Enum(base, _) => format!("an enum of {}s", base.describe().trim_start_matches("a ")),
            Self::Twin(Some(model)) => format!("a twin ({model})"),
            Self::Twin(None) => "a twin".into(),
            Self::Twins(_) => "a list of twins".into(),
            Self::List(_) => "a list".into(),
            Self::Object(_) | Self::Map(_) => "an object".into(),
        }
    }

    /// A twin, a list or an object: never a number or text.
    fn is_structured(&self) -> bool {
        matches!(self, Self::Twin(_) | Self::Twins(_) | Self::List(_) | Self::Object(_) | Self::Map(_))
    }

    fn is_primitive(&self) -> bool {
        matches!(self.base(), Self::Number | Self::Str | Self::Bool)
    }

    fn join(self, other: Ty) -> Ty {
        if self == other { self } else { Ty::Unknown }
    }
}

/// The twins an expression is checked against: the element's primary twin's model and its
/// aliases' (`None` inside: that twin is not found; outer `None`: no twin at all).
struct Context {
    primary: Option<Option<String>>,
    aliases: BTreeMap<String, Option<String>>,
    /// The element the aliases were taken from (for messages).
    element: Option<String>,
}

#[derive(Clone, Copy)]
enum Parse {
    Expression,
    Text,
}

fn check_visual(
    catalog: &Catalog,
    context: &Context,
    visual: &Visual,
    at: &str,
    findings: &mut Vec<Finding>,
) {
    let check = |source: &str, parse: Parse, pointer: String, findings: &mut Vec<Finding>| {
        check_expression(catalog, context, source, parse, &pointer, findings)
    };
    match visual {
        Visual::Color { expression, .. } => {
            let pointer = format!("{at}/expression");
            if let Some(ty) = check(expression, Parse::Expression, pointer.clone(), findings) {
                numeric_visual(&ty, expression, "color ranges", &pointer, findings);
            }
        }
        Visual::ValueRanges { expression, kind, ranges } => {
            let pointer = format!("{at}/expression");
            let ty = check(expression, Parse::Expression, pointer.clone(), findings);
            for (r, range) in ranges.iter().enumerate() {
                if let Some(label) = &range.label {
                    check(label, Parse::Text, format!("{at}/ranges/{r}/label"), findings);
                }
            }
            let Some(ty) = ty else { return };
            match kind {
                ValueKind::Numeric => numeric_visual(&ty, expression, "numeric ranges", &pointer, findings),
                ValueKind::Categorical => {
                    for (r, range) in ranges.iter().enumerate() {
                        for (i, value) in range.values.iter().enumerate() {
                            if let Some(message) = categorical_mismatch(&ty, value) {
                                findings.push(Finding {
                                    severity: Severity::Error,
                                    pointer: format!("{at}/ranges/{r}/values/{i}"),
                                    message: format!("{expression:?} is {}: {message}", ty.describe()),
                                });
                            }
                        }
                    }
                }
            }
        }
        Visual::Visibility { expression } => {
            check(expression, Parse::Expression, format!("{at}/expression"), findings);
        }
        Visual::Label { text } => {
            check(text, Parse::Text, format!("{at}/text"), findings);
        }
        Visual::Conditions { cases } => {
            for (c, case) in cases.iter().enumerate() {
                check(&case.when, Parse::Expression, format!("{at}/cases/{c}/when"), findings);
                if let Some(label) = &case.label {
                    check(label, Parse::Text, format!("{at}/cases/{c}/label"), findings);
                }
            }
        }
        Visual::Popover { widgets } => {
            for (w, widget) in widgets.iter().enumerate() {
                let at = format!("{at}/widgets/{w}");
                match widget {
                    Widget::Value { expression, .. } => {
                        check(expression, Parse::Expression, format!("{at}/expression"), findings);
                    }
                    Widget::Gauge { expression, .. } => {
                        let pointer = format!("{at}/expression");
                        if let Some(ty) = check(expression, Parse::Expression, pointer.clone(), findings) {
                            numeric_visual(&ty, expression, "a gauge", &pointer, findings);
                        }
                    }
                    Widget::Link { url, .. } => {
                        check(url, Parse::Text, format!("{at}/url"), findings);
                    }
                    Widget::Trend { property, .. } => {
                        let source = format!("PrimaryTwin[{}]", serde_json::Value::from(property.as_str()));
                        let pointer = format!("{at}/property");
                        if let Some(ty) = check(&source, Parse::Expression, pointer.clone(), findings) {
                            numeric_visual(&ty, property, "a trend", &pointer, findings);
                        }
                    }
                }
            }
        }
    }
}

/// Ranges, gauges and trends need numbers.
fn numeric_visual(ty: &Ty, expression: &str, what: &str, pointer: &str, findings: &mut Vec<Finding>) {
    let base = ty.base();
    if matches!(base, Ty::Str | Ty::Bool) || ty.is_structured() {
        findings.push(Finding {
            severity: Severity::Error,
            pointer: pointer.to_owned(),
            message: format!(
                "{what} over {} ({expression:?}) never match: they need a number{}",
                ty.describe(),
                if matches!(base, Ty::Bool) { "; use categorical values [true] / [false]" } else { "" }
            ),
        });
    }
}

/// Why a categorical value can never equal a value of type `ty` (see `rules::categorical_match`).
fn categorical_mismatch(ty: &Ty, value: &Value) -> Option<String> {
    let never = |what: &str| Some(format!("{value} ({what}) never matches"));
    match (ty.base(), value) {
        (Ty::Bool, Value::String(_) | Value::Number(_)) => never("not a boolean"),
        (Ty::Str, Value::Bool(_) | Value::Number(_)) => never("not a string"),
        (Ty::Number, Value::Bool(_)) => never("not a number"),
        (Ty::Number, Value::String(text)) if text.parse::<f64>().is_err() => never("not a number"),
        _ => match ty {
            Ty::Enum(_, values) if value.is_string() && !values.contains(value) => Some(format!(
                "{value} never matches: it is not one of the enum's values {}",
                list_values(values)
            )),
            _ => None,
        },
    }
}

fn list_values(values: &[Value]) -> String {
    values.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")
}

/// Parses and type-checks one expression or text; `None` when it does not parse (the scene's
/// own validation reports that) or nothing is known of its type.
fn check_expression(
    catalog: &Catalog,
    context: &Context,
    source: &str,
    parse: Parse,
    pointer: &str,
    findings: &mut Vec<Finding>,
) -> Option<Ty> {
    let expression = match parse {
        Parse::Expression => Expression::parse(source),
        Parse::Text => Expression::parse_text(source),
    }
    .ok()?;
    let (nodes, root) = expression.tree();
    let mut checker = Checker { catalog, context, nodes, found: Vec::new(), certain: true };
    let ty = checker.ty(root);
    let certain = checker.certain;
    for (severity, message) in checker.found {
        // Types seen only on twin values are not promises: the twin may change.
        let severity = if certain { severity } else { Severity::Warning };
        findings.push(Finding { severity, pointer: pointer.to_owned(), message });
    }
    Some(ty)
}

struct Checker<'c> {
    catalog: &'c Catalog<'c>,
    context: &'c Context,
    nodes: &'c [Node],
    found: Vec<(Severity, String)>,
    /// No type came from twin values alone.
    certain: bool,
}

impl Checker<'_> {
    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    fn report(&mut self, severity: Severity, message: String) {
        self.found.push((severity, message));
    }

    /// A short rendering of a node for messages: `PrimaryTwin.a.b`, `'text'`, `5`.
    fn show(&self, id: NodeId) -> String {
        match self.node(id) {
            Node::Primary => "PrimaryTwin".into(),
            Node::Alias(name) => name.to_string(),
            Node::Member { object, name, optional } => {
                format!("{}{}{name}", self.show(*object), if *optional { "?." } else { "." })
            }
            Node::Index { object, index, .. } => format!("{}[{}]", self.show(*object), self.show(*index)),
            Node::Str(text) => format!("{:?}", text.as_ref()),
            Node::Number(n) => format!("{n}"),
            Node::Bool(b) => format!("{b}"),
            Node::Null => "null".into(),
            Node::Call { function: Function::Related, args } if args.len() == 2 => {
                format!("related({}, {})", self.show(args[0]), self.show(args[1]))
            }
            _ => "(expression)".into(),
        }
    }

    fn ty(&mut self, id: NodeId) -> Ty {
        match self.node(id).clone() {
            Node::Number(_) => Ty::Number,
            Node::Str(_) | Node::Template(_) => {
                if let Node::Template(parts) = self.node(id).clone() {
                    for part in parts.iter() {
                        if let TemplatePart::Expression(inner) = part {
                            self.ty(*inner);
                        }
                    }
                }
                Ty::Str
            }
            Node::Bool(_) => Ty::Bool,
            Node::Null | Node::Undefined => Ty::Nullish,
            Node::Primary => match &self.context.primary {
                Some(model) => Ty::Twin(model.clone()),
                None => Ty::Unknown,
            },
            Node::Alias(name) => match self.context.aliases.get(name.as_ref()) {
                Some(model) => Ty::Twin(model.clone()),
                None => {
                    if let Some(element) = &self.context.element {
                        self.report(
                            Severity::Warning,
                            format!("element {element:?} has no alias {name:?}: the expression gives no value there"),
                        );
                    }
                    Ty::Unknown
                }
            },
            Node::Member { object, name, .. } => {
                let object_ty = self.ty(object);
                self.member(object, object_ty, &name)
            }
            Node::Index { object, index, .. } => {
                let object_ty = self.ty(object);
                let index_ty = self.ty(index);
                match (self.node(index).clone(), object_ty) {
                    (Node::Str(name), object_ty @ (Ty::Twin(_) | Ty::Twins(_) | Ty::Object(_))) => {
                        self.member(object, object_ty, &name)
                    }
                    (_, Ty::List(element)) if index_ty == Ty::Number => *element,
                    (_, Ty::Map(value)) => Ty::of_schema(&value),
                    _ => Ty::Unknown,
                }
            }
            Node::Unary { op, operand } => {
                let operand_ty = self.ty(operand);
                match op {
                    UnaryOp::Not => Ty::Bool,
                    UnaryOp::TypeOf => Ty::Str,
                    UnaryOp::Negate | UnaryOp::Plus => {
                        self.arithmetic_operand(operand, &operand_ty);
                        Ty::Number
                    }
                }
            }
            Node::Binary { op, left, right } => self.binary(op, left, right),
            Node::Logical { op, left, right } => {
                let (left_ty, right_ty) = (self.ty(left), self.ty(right));
                match op {
                    LogicalOp::Nullish if left_ty == Ty::Nullish => right_ty,
                    _ => left_ty.join(right_ty),
                }
            }
            Node::Conditional { test, consequent, alternate } => {
                self.ty(test);
                let consequent = self.ty(consequent);
                let alternate = self.ty(alternate);
                consequent.join(alternate)
            }
            Node::Array(items) => {
                let mut element: Option<Ty> = None;
                for item in items.iter() {
                    let ty = self.ty(*item);
                    element = Some(match element {
                        None => ty,
                        Some(known) => known.join(ty),
                    });
                }
                Ty::List(Box::new(element.unwrap_or(Ty::Unknown)))
            }
            Node::Call { function, args } => self.call(function, &args),
            Node::Method { object, method, args, .. } => {
                let object_ty = self.ty(object);
                for arg in args.iter() {
                    self.ty(*arg);
                }
                self.method(object, &object_ty, method)
            }
        }
    }

    fn member(&mut self, object: NodeId, object_ty: Ty, name: &str) -> Ty {
        let shown = format!("{}.{name}", self.show(object));
        match object_ty {
            Ty::Twin(Some(model)) => self.twin_member(&model, name, &shown, false),
            Ty::Twins(model) => {
                if name == "length" {
                    return Ty::Number;
                }
                match model {
                    Some(model) => Ty::List(Box::new(self.twin_member(&model, name, &shown, true))),
                    None => Ty::List(Box::new(Ty::Unknown)),
                }
            }
            Ty::Twin(None) | Ty::Unknown | Ty::Nullish => Ty::Unknown,
            Ty::Object(fields) => match fields.iter().find(|(field, _)| field == name) {
                Some((_, schema)) => Ty::of_schema(schema),
                None => {
                    let suggestions = near_misses(name, fields.iter().map(|(field, _)| field.as_str()));
                    self.report(
                        Severity::Error,
                        format!(
                            "{shown}: {} is an object without field {name:?}{}",
                            self.show(object),
                            did_you_mean(&suggestions)
                        ),
                    );
                    Ty::Unknown
                }
            },
            Ty::Map(value) => Ty::of_schema(&value),
            Ty::List(_) if name == "length" => Ty::Number,
            Ty::List(_) => Ty::Unknown,
            ty if matches!(ty.base(), Ty::Str) && name == "length" => Ty::Number,
            ty => {
                self.report(
                    Severity::Error,
                    format!(
                        "{shown}: {} is {}, which has no property {name:?}",
                        self.show(object),
                        ty.describe()
                    ),
                );
                Ty::Unknown
            }
        }
    }

    /// `name` of a twin of `model`; `related` twins may be of a derived model, so a property
    /// missing from the relationship's target interface is only a warning.
    fn twin_member(&mut self, model: &str, name: &str, shown: &str, via_relationship: bool) -> Ty {
        if name == "$dtId" || name == "$etag" {
            return Ty::Str;
        }
        if name.starts_with('$') {
            return Ty::Unknown;
        }
        match self.catalog.lookup(model, name) {
            Lookup::Found(ty) => {
                if !self.catalog.has_interface(model) && ty != Ty::Unknown {
                    self.certain = false;
                }
                ty
            }
            Lookup::Component(interface) => Ty::Twin(Some(interface)),
            Lookup::Telemetry => {
                self.report(
                    Severity::Warning,
                    format!("{shown}: {name:?} is telemetry in {model}: twins hold no telemetry values"),
                );
                Ty::Unknown
            }
            Lookup::Relationship => {
                self.report(
                    Severity::Error,
                    format!("{shown}: {name:?} is a relationship of {model}; follow it with related(twin, {name:?})"),
                );
                Ty::Unknown
            }
            Lookup::Missing { candidates, definite } => {
                let suggestions = near_misses(name, candidates.iter().map(String::as_str));
                let message = if definite {
                    format!("{shown}: model {model} has no property {name:?}{}", did_you_mean(&suggestions))
                } else {
                    format!(
                        "{shown}: no twin of model {model} has property {name:?}{} (no DTDL model given: checked against twin values)",
                        did_you_mean(&suggestions)
                    )
                };
                let severity =
                    if definite && !via_relationship { Severity::Error } else { Severity::Warning };
                self.report(severity, message);
                Ty::Unknown
            }
            Lookup::Unchecked => Ty::Unknown,
        }
    }

    fn arithmetic_operand(&mut self, node: NodeId, ty: &Ty) {
        if ty.is_structured() {
            self.report(
                Severity::Error,
                format!("{} is {}: arithmetic on it gives no value", self.show(node), ty.describe()),
            );
        } else if matches!(ty.base(), Ty::Str) && !matches!(self.node(node), Node::Str(_)) {
            self.report(
                Severity::Warning,
                format!(
                    "{} is a string: arithmetic on it gives no value unless it holds digits",
                    self.show(node)
                ),
            );
        }
    }

    fn binary(&mut self, op: BinaryOp, left: NodeId, right: NodeId) -> Ty {
        let (left_ty, right_ty) = (self.ty(left), self.ty(right));
        let (l, r) = (left_ty.base().clone(), right_ty.base().clone());
        let pair = format!(
            "{} ({}) and {} ({})",
            self.show(left),
            left_ty.describe(),
            self.show(right),
            right_ty.describe()
        );
        let pair = || pair.clone();
        match op {
            BinaryOp::Add => {
                if matches!(l, Ty::Str) || matches!(r, Ty::Str) {
                    Ty::Str
                } else if l == Ty::Unknown || r == Ty::Unknown {
                    Ty::Unknown
                } else {
                    for (node, ty) in [(left, &left_ty), (right, &right_ty)] {
                        self.arithmetic_operand(node, ty);
                    }
                    Ty::Number
                }
            }
            BinaryOp::Subtract
            | BinaryOp::Multiply
            | BinaryOp::Divide
            | BinaryOp::Remainder
            | BinaryOp::Power => {
                for (node, ty) in [(left, &left_ty), (right, &right_ty)] {
                    self.arithmetic_operand(node, ty);
                }
                Ty::Number
            }
            BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual => {
                if matches!((&l, &r), (Ty::Str, Ty::Number) | (Ty::Number, Ty::Str)) {
                    let message = format!("compares {}: a string and a number are never ordered", pair());
                    self.report(Severity::Error, message);
                } else if left_ty.is_structured() || right_ty.is_structured() {
                    self.report(Severity::Error, format!("compares {}: never true", pair()));
                } else if matches!((&l, &r), (Ty::Bool, Ty::Number) | (Ty::Number, Ty::Bool)) {
                    self.report(
                        Severity::Warning,
                        format!("compares {}: the boolean counts as 0 or 1", pair()),
                    );
                }
                Ty::Bool
            }
            BinaryOp::StrictEqual
            | BinaryOp::StrictNotEqual
            | BinaryOp::LooseEqual
            | BinaryOp::LooseNotEqual => {
                let strict = matches!(op, BinaryOp::StrictEqual | BinaryOp::StrictNotEqual);
                let outcome = if matches!(op, BinaryOp::StrictEqual | BinaryOp::LooseEqual) {
                    "never true"
                } else {
                    "always true"
                };
                if left_ty.is_primitive() && right_ty.is_primitive() && l != r {
                    if strict {
                        self.report(
                            Severity::Error,
                            format!("compares {} with {}: {outcome}", pair(), op_text(op)),
                        );
                    } else if matches!((&l, &r), (Ty::Str, Ty::Bool) | (Ty::Bool, Ty::Str)) {
                        let message = format!(
                            "compares {} with {}: a boolean equals only the strings \"1\" and \"0\"",
                            pair(),
                            op_text(op)
                        );
                        self.report(Severity::Warning, message);
                    }
                } else {
                    for (side, literal) in [(&left_ty, right), (&right_ty, left)] {
                        let Ty::Enum(_, values) = side else { continue };
                        let value = match self.node(literal) {
                            Node::Str(text) => Value::from(text.as_ref()),
                            Node::Number(n) => Value::from(*n),
                            _ => continue,
                        };
                        let listed = values.iter().any(|candidate| {
                            candidate == &value
                                || candidate.as_f64().is_some_and(|c| Some(c) == value.as_f64())
                        });
                        if !listed {
                            let message = format!(
                                "compares {} with {}: {outcome}, {value} is not one of the enum's values {}",
                                pair(),
                                op_text(op),
                                list_values(values)
                            );
                            self.report(Severity::Error, message);
                        }
                    }
                }
                Ty::Bool
            }
        }
    }

    fn call(&mut self, function: Function, args: &[NodeId]) -> Ty {
        let arg_types: Vec<Ty> = args.iter().map(|&arg| self.ty(arg)).collect();
        match function {
            Function::Math(_) => {
                for (&arg, ty) in args.iter().zip(&arg_types) {
                    self.arithmetic_operand(arg, ty);
                }
                Ty::Number
            }
            Function::Number
            | Function::ParseFloat
            | Function::ParseInt
            | Function::Count
            | Function::Age => Ty::Number,
            Function::String => Ty::Str,
            Function::Boolean | Function::IsNaN | Function::IsFinite | Function::Any | Function::All => {
                Ty::Bool
            }
            Function::Sum | Function::Avg | Function::Min | Function::Max => {
                for (&arg, ty) in args.iter().zip(&arg_types) {
                    let element = match ty {
                        Ty::List(element) => element.base().clone(),
                        other => other.base().clone(),
                    };
                    if element == Ty::Str {
                        let message = format!("{} holds strings: aggregates skip text", self.show(arg));
                        self.report(Severity::Warning, message);
                    }
                }
                Ty::Number
            }
            Function::Related => {
                let model = match &arg_types[0] {
                    Ty::Twin(model) | Ty::Twins(model) => model.clone(),
                    Ty::Unknown | Ty::Nullish => None,
                    other => {
                        let message = format!(
                            "related({}, ...): {} is {}, not a twin",
                            self.show(args[0]),
                            self.show(args[0]),
                            other.describe()
                        );
                        self.report(Severity::Error, message);
                        None
                    }
                };
                let (Some(model), Node::Str(name)) = (model, self.node(args[1]).clone()) else {
                    return Ty::Twins(None);
                };
                match self.catalog.relationship(&model, &name) {
                    Ok(target) => Ty::Twins(target),
                    Err(names) => {
                        let suggestions = near_misses(&name, names.iter().map(String::as_str));
                        let message = format!(
                            "related({}, {name:?}): model {model} has no relationship {name:?}{}",
                            self.show(args[0]),
                            did_you_mean(&suggestions)
                        );
                        self.report(Severity::Error, message);
                        Ty::Twins(None)
                    }
                }
            }
        }
    }

    fn method(&mut self, object: NodeId, object_ty: &Ty, method: Method) -> Ty {
        use Method as M;
        let base = object_ty.base().clone();
        let string_only = !matches!(
            method,
            M::ToString | M::ToFixed | M::ToPrecision | M::Includes | M::IndexOf | M::At | M::Join
        );
        let number_only = matches!(method, M::ToFixed | M::ToPrecision);
        let wrong = (number_only && matches!(base, Ty::Str | Ty::Bool)
            || object_ty.is_structured() && !matches!(object_ty, Ty::List(_) | Ty::Twins(_)))
            || (string_only && matches!(base, Ty::Number | Ty::Bool))
            || (matches!(method, M::Join) && matches!(base, Ty::Number | Ty::Str | Ty::Bool));
        if wrong {
            let message = format!(
                "{}.{}(): {} is {}, which has no such method",
                self.show(object),
                method_name(method),
                self.show(object),
                object_ty.describe()
            );
            self.report(Severity::Error, message);
        }
        match method {
            M::Includes | M::StartsWith | M::EndsWith => Ty::Bool,
            M::IndexOf | M::LastIndexOf => Ty::Number,
            M::Split => Ty::List(Box::new(Ty::Str)),
            M::At => match object_ty {
                Ty::List(element) => (**element).clone(),
                _ if base == Ty::Str => Ty::Str,
                _ => Ty::Unknown,
            },
            _ => Ty::Str,
        }
    }
}

fn op_text(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::StrictEqual => "===",
        BinaryOp::StrictNotEqual => "!==",
        BinaryOp::LooseEqual => "==",
        BinaryOp::LooseNotEqual => "!=",
        _ => "an operator",
    }
}

fn method_name(method: Method) -> &'static str {
    use Method as M;
    match method {
        M::ToUpperCase => "toUpperCase",
        M::ToLowerCase => "toLowerCase",
        M::Trim => "trim",
        M::TrimStart => "trimStart",
        M::TrimEnd => "trimEnd",
        M::Includes => "includes",
        M::StartsWith => "startsWith",
        M::EndsWith => "endsWith",
        M::IndexOf => "indexOf",
        M::LastIndexOf => "lastIndexOf",
        M::Slice => "slice",
        M::Substring => "substring",
        M::CharAt => "charAt",
        M::PadStart => "padStart",
        M::PadEnd => "padEnd",
        M::Replace => "replace",
        M::ReplaceAll => "replaceAll",
        M::Split => "split",
        M::Concat => "concat",
        M::Repeat => "repeat",
        M::At => "at",
        M::Join => "join",
        M::ToString => "toString",
        M::ToFixed => "toFixed",
        M::ToPrecision => "toPrecision",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = r#"[{"@id": "dtmi:t:Room;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
        "contents": [
          {"@type": "Property", "name": "temperature", "schema": "double"},
          {"@type": "Property", "name": "label", "schema": "string"},
          {"@type": "Property", "name": "occupied", "schema": "boolean"},
          {"@type": "Property", "name": "mode", "schema": {"@type": "Enum", "valueSchema": "string",
             "enumValues": [{"name": "heat", "enumValue": "heat"}, {"name": "cool", "enumValue": "cool"}]}},
          {"@type": "Telemetry", "name": "humidity", "schema": "double"},
          {"@type": "Relationship", "name": "contains", "target": "dtmi:t:Room;1"}
        ]}]"#;

    fn scene_with(visuals: &str) -> Scene {
        let text = format!(
            r##"{{"version": 1, "mesh": "m.glb",
              "twins": [{{"$dtId": "r1", "$metadata": {{"$model": "dtmi:t:Room;1"}}, "temperature": 20, "label": "A", "occupied": true, "mode": "heat"}}],
              "elements": [{{"id": "e1", "twin": "r1", "nodes": ["n"]}}, {{"id": "e2", "twin": "ghost", "nodes": ["n"]}}],
              "behaviors": [{{"id": "b", "elements": "all", "visuals": [{visuals}]}}]}}"##
        );
        Scene::from_json_str(&text).unwrap()
    }

    fn findings(visuals: &str, with_models: bool) -> Vec<Finding> {
        let models = ModelSet::from_json_str(MODELS).unwrap();
        check_scene(&scene_with(visuals), &[], with_models.then_some(&models))
    }

    fn messages(visuals: &str) -> Vec<String> {
        findings(visuals, true)
            .into_iter()
            .filter(|f| f.pointer.starts_with("/behaviors"))
            .map(|f| format!("{} {}", f.severity.as_str(), f.message))
            .collect()
    }

    #[test]
    fn missing_twins_are_warnings_with_near_misses() {
        let found = findings(r#"{"type": "visibility", "expression": "true"}"#, true);
        let twin = found.iter().find(|f| f.pointer == "/elements/1/twin").unwrap();
        assert_eq!(twin.severity, Severity::Warning);
        assert!(twin.message.contains("twin \"ghost\" not found"), "{}", twin.message);
    }

    #[test]
    fn unknown_properties_are_errors_against_a_model_and_warnings_against_values() {
        let visual = r##"{"type": "color", "expression": "PrimaryTwin.temprature", "ranges": [{"min": 0, "max": 1, "color": "#fff"}]}"##;
        let with_model = messages(visual);
        assert_eq!(
            with_model,
            [
                "error PrimaryTwin.temprature: model dtmi:t:Room;1 has no property \"temprature\" (did you mean \"temperature\"?)"
            ]
        );
        let without: Vec<_> =
            findings(visual, false).into_iter().filter(|f| f.pointer.starts_with("/behaviors")).collect();
        assert_eq!(without.len(), 1);
        assert_eq!(without[0].severity, Severity::Warning);
        assert!(
            without[0].message.contains("no twin of model dtmi:t:Room;1 has property"),
            "{}",
            without[0].message
        );
    }

    #[test]
    fn type_mismatches_are_found() {
        let cases = [
            (
                r#"{"type": "visibility", "expression": "PrimaryTwin.label > 5"}"#,
                "a string and a number are never ordered",
            ),
            (r#"{"type": "visibility", "expression": "PrimaryTwin.temperature === 'hot'"}"#, "never true"),
            (
                r#"{"type": "visibility", "expression": "PrimaryTwin.mode == 'warm'"}"#,
                "not one of the enum's values \"heat\", \"cool\"",
            ),
            (
                r##"{"type": "color", "expression": "PrimaryTwin.occupied", "ranges": [{"min": 0, "max": 1, "color": "#fff"}]}"##,
                "color ranges over a boolean",
            ),
            (
                r##"{"type": "valueRanges", "expression": "PrimaryTwin.occupied", "ranges": [{"values": [0, 1], "color": "#fff"}]}"##,
                "numeric ranges over a boolean",
            ),
            (
                r##"{"type": "valueRanges", "kind": "categorical", "expression": "PrimaryTwin.label", "ranges": [{"values": [true], "color": "#fff"}]}"##,
                "true (not a string) never matches",
            ),
            (r#"{"type": "label", "text": "${PrimaryTwin.label.toFixed(1)}"}"#, "has no such method"),
            (
                r#"{"type": "visibility", "expression": "PrimaryTwin.temperature.value > 1"}"#,
                "which has no property \"value\"",
            ),
            (
                r#"{"type": "visibility", "expression": "count(related(PrimaryTwin, 'contain')) > 1"}"#,
                "has no relationship \"contain\" (did you mean \"contains\"?)",
            ),
            (r#"{"type": "visibility", "expression": "PrimaryTwin.humidity > 1"}"#, "is telemetry"),
            (
                r#"{"type": "popover", "widgets": [{"type": "trend", "label": "T", "property": "label"}]}"#,
                "a trend over a string",
            ),
        ];
        for (visual, expected) in cases {
            let found = messages(visual);
            assert!(
                found.iter().any(|m| m.contains(expected)),
                "{visual}: expected {expected:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn well_typed_expressions_pass() {
        for visual in [
            r##"{"type": "color", "expression": "PrimaryTwin.temperature * 2 + 1", "ranges": [{"min": 0, "max": 1, "color": "#fff"}]}"##,
            r#"{"type": "visibility", "expression": "PrimaryTwin.mode === 'cool' && PrimaryTwin.occupied"}"#,
            r#"{"type": "label", "text": "`${PrimaryTwin.$dtId}: ${PrimaryTwin.temperature.toFixed(1)} ${PrimaryTwin.label.toUpperCase()}`"}"#,
            r##"{"type": "valueRanges", "kind": "categorical", "expression": "PrimaryTwin.occupied", "ranges": [{"values": [true], "color": "#fff"}]}"##,
            r#"{"type": "visibility", "expression": "avg(related(PrimaryTwin, 'contains').temperature) > 20"}"#,
            r#"{"type": "visibility", "expression": "(PrimaryTwin.temperature ?? 0) > 20 ? true : false"}"#,
            r#"{"type": "popover", "widgets": [{"type": "gauge", "label": "G", "expression": "PrimaryTwin.temperature", "min": 0, "max": 40}]}"#,
        ] {
            assert_eq!(messages(visual), Vec::<String>::new(), "{visual}");
        }
    }

    #[test]
    fn an_error_on_some_elements_only_is_a_warning() {
        let mut documents: Vec<Value> = serde_json::from_str(MODELS).unwrap();
        documents.push(serde_json::json!({"@id": "dtmi:t:Car;1", "@type": "Interface",
            "@context": "dtmi:dtdl:context;2", "contents": []}));
        let models = ModelSet::from_documents(&documents).unwrap();
        let mut scene = scene_with(r#"{"type": "visibility", "expression": "PrimaryTwin.temperature > 1"}"#);
        scene.twins.push(Twin::new("car", "dtmi:t:Car;1"));
        scene.elements[1].twin = "car".into();
        let found = check_scene(&scene, &[], Some(&models));
        let visual: Vec<_> = found.iter().filter(|f| f.pointer.starts_with("/behaviors")).collect();
        assert_eq!(visual.len(), 1, "{found:?}");
        assert_eq!(visual[0].severity, Severity::Warning);
        assert!(visual[0].message.contains("on element \"e2\""), "{}", visual[0].message);
    }

    #[test]
    fn unused_layers_and_near_misses() {
        let mut scene = scene_with(r#"{"type": "visibility", "expression": "true"}"#);
        scene.layers.push(serde_json::from_value(serde_json::json!({"id": "alarms"})).unwrap());
        let found = check_scene(&scene, &[], None);
        assert!(found.iter().any(|f| f.pointer == "/layers/0" && f.message.contains("no behaviors")));
        assert_eq!(
            near_misses("0BTBFw6f90Nfh9rP1dlXrX", ["0BTBFw6f90Nfh9rP1dlXrr", "zzz"]),
            ["0BTBFw6f90Nfh9rP1dlXrr"]
        );
        assert_eq!(did_you_mean(&["a", "b", "c"]), " (did you mean \"a\", \"b\" or \"c\"?)");
    }
}
