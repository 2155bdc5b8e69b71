//! DTDL v2/v3 models: interfaces with inheritance resolved, their contents and schemas, and the
//! type checks of twin property values against them.
//!
//! Documents are read as ADT stores them (an array of interfaces, or one interface). Keys may
//! also be written as expanded IRIs (`dtmi:dtdl:property:schema;2`), as some exports do.
//! Problems are reported with the model id and the JSON pointer inside the documents.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::twin::Twin;

/// A set of interfaces with `extends` resolved: each interface lists its inherited contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSet {
    interfaces: BTreeMap<String, Interface>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interface {
    pub id: String,
    /// 2 or 3, from `@context`.
    pub dtdl_version: u8,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// Direct bases, as written.
    pub extends: Vec<String>,
    /// Own and inherited contents by name.
    pub properties: BTreeMap<String, PropertyDef>,
    pub telemetry: BTreeMap<String, TelemetryDef>,
    pub relationships: BTreeMap<String, RelationshipDef>,
    pub components: BTreeMap<String, ComponentDef>,
    pub commands: BTreeMap<String, CommandDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PropertyDef {
    pub name: String,
    pub schema: Schema,
    pub writable: bool,
    /// Semantic types (`["Property", "Temperature"]` → `["Temperature"]`).
    pub semantic_types: Vec<String>,
    pub unit: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryDef {
    pub name: String,
    pub schema: Schema,
    pub semantic_types: Vec<String>,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RelationshipDef {
    pub name: String,
    /// Interface the target twin must have; `None`: any.
    pub target: Option<String>,
    pub min_multiplicity: Option<u64>,
    pub max_multiplicity: Option<u64>,
    pub writable: bool,
    pub properties: BTreeMap<String, PropertyDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ComponentDef {
    pub name: String,
    /// The component's interface id.
    pub schema: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CommandDef {
    pub name: String,
    pub request: Option<(String, Schema)>,
    pub response: Option<(String, Schema)>,
}

/// A DTDL schema, with references to named schemas resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Schema {
    Boolean,
    Date,
    DateTime,
    Duration,
    Time,
    Double,
    Float,
    Decimal,
    /// integer, long, byte, short and the unsigned kinds of DTDL v3.
    Integer,
    String,
    /// bytes (v3): base64 text.
    Bytes,
    /// Geospatial schemas (point, lineString, ...): GeoJSON objects.
    Geospatial,
    Enum {
        value_schema: Box<Schema>,
        values: Vec<(String, Value)>,
    },
    Object {
        fields: Vec<(String, Schema)>,
    },
    Map {
        key: String,
        value: Box<Schema>,
    },
    Array {
        element: Box<Schema>,
    },
}

/// A problem in a model document.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("model {model} at {pointer}: {message}")]
pub struct ModelError {
    /// The interface's `@id` (or "(unknown)").
    pub model: String,
    /// JSON pointer inside the interface.
    pub pointer: String,
    /// JSON pointer from the root of the documents given.
    pub document_pointer: String,
    pub message: String,
}

const PRIMITIVES: [(&str, Schema); 19] = [
    ("boolean", Schema::Boolean),
    ("date", Schema::Date),
    ("dateTime", Schema::DateTime),
    ("duration", Schema::Duration),
    ("time", Schema::Time),
    ("double", Schema::Double),
    ("float", Schema::Float),
    ("decimal", Schema::Decimal),
    ("integer", Schema::Integer),
    ("long", Schema::Integer),
    ("byte", Schema::Integer),
    ("short", Schema::Integer),
    ("unsignedByte", Schema::Integer),
    ("unsignedShort", Schema::Integer),
    ("unsignedInteger", Schema::Integer),
    ("unsignedLong", Schema::Integer),
    ("uuid", Schema::String),
    ("string", Schema::String),
    ("bytes", Schema::Bytes),
];

const GEOSPATIAL: [&str; 6] =
    ["point", "lineString", "polygon", "multiPoint", "multiLineString", "multiPolygon"];

impl ModelSet {
    /// Reads model documents (each an interface or an array of interfaces) and resolves them.
    pub fn from_documents(documents: &[Value]) -> Result<Self, Vec<ModelError>> {
        let mut raw = Vec::new();
        for (d, document) in documents.iter().enumerate() {
            match document {
                Value::Array(items) => {
                    raw.extend(items.iter().enumerate().map(|(i, item)| (format!("/{d}/{i}"), item)))
                }
                other => raw.push((format!("/{d}"), other)),
            }
        }
        Self::from_interfaces(&raw)
    }

    /// Reads a model file: a JSON array of interfaces or one interface.
    pub fn from_json_str(text: &str) -> Result<Self, Vec<ModelError>> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            vec![ModelError {
                model: "(unknown)".into(),
                pointer: String::new(),
                document_pointer: String::new(),
                message: format!("not JSON at line {}, column {}: {e}", e.line(), e.column()),
            }]
        })?;
        let raw: Vec<(String, &Value)> = match &value {
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, item)| (format!("/{i}"), item)).collect()
            }
            other => vec![(String::new(), other)],
        };
        Self::from_interfaces(&raw)
    }

    fn from_interfaces(raw: &[(String, &Value)]) -> Result<Self, Vec<ModelError>> {
        let mut errors = Vec::new();
        // Named schemas (interface-level `schemas` and inline schemas with an @id) by id.
        let mut named: BTreeMap<String, &Value> = BTreeMap::new();
        for (_, value) in raw {
            collect_named_schemas(value, &mut named);
        }
        let mut own = BTreeMap::new();
        for (document_pointer, value) in raw {
            let mut reader =
                Reader { named: &named, errors: &mut errors, model: String::new(), base: document_pointer };
            if let Some(interface) = reader.interface(value) {
                if own.contains_key(&interface.id) {
                    reader.error("/@id", format!("interface {} is defined twice", interface.id));
                } else {
                    own.insert(interface.id.clone(), (document_pointer.clone(), interface));
                }
            }
        }
        let mut resolved = BTreeMap::new();
        for id in own.keys() {
            let mut chain = Vec::new();
            resolve(id, &own, &mut resolved, &mut chain, &mut errors);
        }
        for (id, interface) in &resolved {
            for component in interface.components.values() {
                if !resolved.contains_key(&component.schema) && !own.contains_key(&component.schema) {
                    let base = own.get(id).map_or("", |(p, _)| p.as_str());
                    errors.push(ModelError {
                        model: id.clone(),
                        pointer: "/contents".into(),
                        document_pointer: format!("{base}/contents"),
                        message: format!(
                            "component {:?} uses unknown interface {}",
                            component.name, component.schema
                        ),
                    });
                }
            }
        }
        if errors.is_empty() { Ok(Self { interfaces: resolved }) } else { Err(errors) }
    }

    pub fn interface(&self, id: &str) -> Option<&Interface> {
        self.interfaces.get(id)
    }

    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.values()
    }

    pub fn len(&self) -> usize {
        self.interfaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty()
    }

    /// Whether `model` is `base` or extends it (directly or not).
    pub fn is_a(&self, model: &str, base: &str) -> bool {
        let mut pending = vec![model];
        let mut seen = BTreeSet::new();
        while let Some(id) = pending.pop() {
            if id == base {
                return true;
            }
            if seen.insert(id)
                && let Some(interface) = self.interfaces.get(id)
            {
                pending.extend(interface.extends.iter().map(String::as_str));
            }
        }
        false
    }

    /// Checks a whole twin against its model. A twin whose model is unknown passes.
    pub fn check_twin(&self, twin: &Twin) -> Result<(), String> {
        if !self.interfaces.contains_key(&twin.model) {
            return Ok(());
        }
        twin.properties
            .iter()
            .try_for_each(|(name, value)| self.check_property(&twin.model, name, Some(value)))
    }

    /// Checks one top-level property value (`None`: removed) against the model. A model that is
    /// not in the set accepts anything.
    pub fn check_property(&self, model: &str, name: &str, value: Option<&Value>) -> Result<(), String> {
        let Some(interface) = self.interfaces.get(model) else { return Ok(()) };
        if let Some(property) = interface.properties.get(name) {
            return match value {
                Some(value) => property.schema.check(value).map_err(|e| format!("{name}: {e}")),
                None => Ok(()),
            };
        }
        if let Some(component) = interface.components.get(name) {
            let Some(value) = value else { return Err(format!("component {name} cannot be removed")) };
            let Value::Object(fields) = value else {
                return Err(format!("component {name} must be an object"));
            };
            for (field, field_value) in fields {
                if field == "$metadata" {
                    continue;
                }
                self.check_property(&component.schema, field, Some(field_value))
                    .map_err(|e| format!("component {name}: {e}"))?;
            }
            return Ok(());
        }
        if interface.telemetry.contains_key(name) {
            return Err(format!("{name} is telemetry in {model}, not a property"));
        }
        Err(format!("{model} has no property {name:?}"))
    }
}

impl Schema {
    /// Whether `value` is a valid instance of this schema; the error says why not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let ok = match (self, value) {
            (Self::Boolean, Value::Bool(_)) => true,
            (Self::Double | Self::Float | Self::Decimal, Value::Number(_)) => true,
            (Self::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            // Timestamps are kept as text; 3D Scenes samples write dateTimes without an offset, so
            // the format is not enforced.
            (
                Self::String | Self::Date | Self::DateTime | Self::Time | Self::Duration | Self::Bytes,
                Value::String(_),
            ) => true,
            (Self::Geospatial, Value::Object(_)) => true,
            (Self::Enum { values, .. }, value) => {
                if values.iter().any(|(_, v)| v == value) {
                    return Ok(());
                }
                let allowed: Vec<String> = values.iter().map(|(_, v)| v.to_string()).collect();
                return Err(format!("{value} is not one of {}", allowed.join(", ")));
            }
            (Self::Object { fields }, Value::Object(map)) => {
                for (name, field_value) in map {
                    if name == "$metadata" {
                        continue;
                    }
                    let schema = fields.iter().find(|(field, _)| field == name).map(|(_, s)| s);
                    let schema = schema.ok_or_else(|| format!("the object has no field {name:?}"))?;
                    schema.check(field_value).map_err(|e| format!("{name}: {e}"))?;
                }
                true
            }
            (Self::Map { value: schema, .. }, Value::Object(map)) => {
                for (key, item) in map {
                    schema.check(item).map_err(|e| format!("{key}: {e}"))?;
                }
                true
            }
            (Self::Array { element }, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    element.check(item).map_err(|e| format!("[{i}]: {e}"))?;
                }
                true
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(format!("expected {}, got {value}", self.describe())) }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Boolean => "a boolean",
            Self::Double | Self::Float | Self::Decimal => "a number",
            Self::Integer => "an integer",
            Self::String | Self::Bytes => "a string",
            Self::Date => "a date string",
            Self::DateTime => "a dateTime string",
            Self::Duration => "a duration string",
            Self::Time => "a time string",
            Self::Geospatial => "a GeoJSON object",
            Self::Enum { .. } => "an enum value",
            Self::Object { .. } => "an object",
            Self::Map { .. } => "a map (object)",
            Self::Array { .. } => "an array",
        }
    }
}

/// A key as written or in its expanded IRI form (`dtmi:dtdl:property:schema;2`).
fn get<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).or_else(|| {
        ["2", "3", "4"].iter().find_map(|version| object.get(&format!("dtmi:dtdl:property:{key};{version}")))
    })
}

fn types(object: &Map<String, Value>) -> Vec<&str> {
    match object.get("@type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        // Localized: {"en": "...", ...}; English first, else any.
        Value::Object(map) => {
            map.get("en").or_else(|| map.values().next()).and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    }
}

fn collect_named_schemas<'v>(value: &'v Value, named: &mut BTreeMap<String, &'v Value>) {
    match value {
        Value::Object(map) => {
            let is_schema = types(map).iter().any(|t| matches!(*t, "Object" | "Enum" | "Map" | "Array"));
            if is_schema && let Some(Value::String(id)) = map.get("@id") {
                named.insert(id.clone(), value);
            }
            map.values().for_each(|child| collect_named_schemas(child, named));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_named_schemas(child, named)),
        _ => {}
    }
}

fn valid_dtmi(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("dtmi:") else { return false };
    let (path, version) = rest.split_once(';').unwrap_or((rest, "1"));
    let segment_ok = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    !path.is_empty()
        && path.split(':').all(segment_ok)
        && version.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 512
}

/// Limits nesting of inline schemas so that a hostile document cannot exhaust the stack.
const MAX_SCHEMA_DEPTH: usize = 32;

struct Reader<'a> {
    named: &'a BTreeMap<String, &'a Value>,
    errors: &'a mut Vec<ModelError>,
    model: String,
    base: &'a str,
}

impl Reader<'_> {
    fn error(&mut self, pointer: &str, message: String) {
        self.errors.push(ModelError {
            model: if self.model.is_empty() { "(unknown)".into() } else { self.model.clone() },
            pointer: pointer.to_owned(),
            document_pointer: format!("{}{pointer}", self.base),
            message,
        });
    }

    fn interface(&mut self, value: &Value) -> Option<Interface> {
        let Value::Object(object) = value else {
            self.error("", "an interface must be a JSON object".into());
            return None;
        };
        let id = match object.get("@id") {
            Some(Value::String(id)) if valid_dtmi(id) => id.clone(),
            Some(Value::String(id)) => {
                self.error("/@id", format!("{id:?} is not a DTMI (dtmi:<path>;<version>)"));
                return None;
            }
            _ => {
                self.error("/@id", "an interface needs an \"@id\"".into());
                return None;
            }
        };
        self.model = id.clone();
        if !types(object).contains(&"Interface") {
            self.error("/@type", "\"@type\" must be \"Interface\"".into());
            return None;
        }
        let contexts: Vec<&str> = match object.get("@context") {
            Some(Value::String(c)) => vec![c.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let dtdl_version = if contexts.iter().any(|c| c.starts_with("dtmi:dtdl:context;3")) {
            3
        } else if contexts.iter().any(|c| c.starts_with("dtmi:dtdl:context;2")) {
            2
        } else {
            self.error("/@context", "\"@context\" must name dtmi:dtdl:context;2 or ;3".into());
            return None;
        };
        let extends = match object.get("extends") {
            None => Vec::new(),
            Some(Value::String(base)) => vec![base.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(base) => Some(base.clone()),
                    _ => {
                        self.error(
                            &format!("/extends/{i}"),
                            "inline base interfaces are not supported; use its id".into(),
                        );
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.error("/extends", "\"extends\" must be an interface id or a list of them".into());
                Vec::new()
            }
        };
        let mut interface = Interface {
            id,
            dtdl_version,
            display_name: text(object.get("displayName")),
            description: text(object.get("description")),
            extends,
            ..Interface::default()
        };
        let contents = match object.get("contents") {
            None => &Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error("/contents", "\"contents\" must be an array".into());
                return None;
            }
        };
        let mut names = BTreeSet::new();
        for (i, content) in contents.iter().enumerate() {
            let pointer = format!("/contents/{i}");
            let Value::Object(content) = content else {
                self.error(&pointer, "a content must be an object".into());
                continue;
            };
            let Some(name) = content.get("name").and_then(Value::as_str) else {
                self.error(&format!("{pointer}/name"), "a content needs a \"name\"".into());
                continue;
            };
            if !valid_name(name) {
                self.error(&format!("{pointer}/name"), format!("{name:?} is not a valid DTDL name"));
                continue;
            }
            if !names.insert(name.to_owned()) {
                self.error(&format!("{pointer}/name"), format!("{name:?} is defined twice"));
                continue;
            }
            self.content(&mut interface, content, name, &pointer);
        }
        Some(interface)
    }

    fn content(
        &mut self,
        interface: &mut Interface,
        content: &Map<String, Value>,
        name: &str,
        pointer: &str,
    ) {
        let all_types = types(content);
        let kinds = ["Property", "Telemetry", "Relationship", "Component", "Command"];
        let Some(kind) = all_types.iter().copied().find(|t| kinds.contains(t)) else {
            self.error(
                &format!("{pointer}/@type"),
                format!("{:?} is not a content type ({})", all_types, kinds.join(", ")),
            );
            return;
        };
        let semantic_types: Vec<String> =
            all_types.iter().filter(|t| **t != kind).map(|t| (*t).to_owned()).collect();
        let unit = get(content, "unit").and_then(Value::as_str).map(str::to_owned);
        let writable = get(content, "writable").and_then(Value::as_bool).unwrap_or(false);
        match kind {
            "Property" | "Telemetry" => {
                let Some(schema) = self.required_schema(content, pointer) else { return };
                if kind == "Property" {
                    let display_name = text(content.get("displayName"));
                    let property = PropertyDef {
                        name: name.to_owned(),
                        schema,
                        writable,
                        semantic_types,
                        unit,
                        display_name,
                    };
                    interface.properties.insert(name.to_owned(), property);
                } else {
                    let telemetry = TelemetryDef { name: name.to_owned(), schema, semantic_types, unit };
                    interface.telemetry.insert(name.to_owned(), telemetry);
                }
            }
            "Relationship" => {
                let multiplicity = |key: &str| get(content, key).and_then(Value::as_u64);
                let (min_multiplicity, max_multiplicity) =
                    (multiplicity("minMultiplicity"), multiplicity("maxMultiplicity"));
                if let (Some(min), Some(max)) = (min_multiplicity, max_multiplicity)
                    && min > max
                {
                    self.error(
                        &format!("{pointer}/minMultiplicity"),
                        format!("minMultiplicity {min} exceeds maxMultiplicity {max}"),
                    );
                }
                let mut properties = BTreeMap::new();
                if let Some(Value::Array(items)) = get(content, "properties") {
                    for (p, item) in items.iter().enumerate() {
                        let at = format!("{pointer}/properties/{p}");
                        let Some(item) = item.as_object() else { continue };
                        let Some(property_name) = item.get("name").and_then(Value::as_str) else {
                            self.error(
                                &format!("{at}/name"),
                                "a relationship property needs a \"name\"".into(),
                            );
                            continue;
                        };
                        let Some(schema) = self.required_schema(item, &at) else { continue };
                        let property = PropertyDef {
                            name: property_name.to_owned(),
                            schema,
                            writable: get(item, "writable").and_then(Value::as_bool).unwrap_or(false),
                            semantic_types: Vec::new(),
                            unit: None,
                            display_name: text(item.get("displayName")),
                        };
                        properties.insert(property_name.to_owned(), property);
                    }
                }
                let target = get(content, "target").and_then(Value::as_str).map(str::to_owned);
                let relationship = RelationshipDef {
                    name: name.to_owned(),
                    target,
                    min_multiplicity,
                    max_multiplicity,
                    writable,
                    properties,
                };
                interface.relationships.insert(name.to_owned(), relationship);
            }
            "Component" => match get(content, "schema") {
                Some(Value::String(schema)) => {
                    let component = ComponentDef { name: name.to_owned(), schema: schema.clone() };
                    interface.components.insert(name.to_owned(), component);
                }
                _ => self.error(
                    &format!("{pointer}/schema"),
                    "a component's schema must be an interface id".into(),
                ),
            },
            _ => {
                let mut part = |key: &str| -> Option<(String, Schema)> {
                    let Value::Object(payload) = get(content, key)? else { return None };
                    let payload_name = payload.get("name").and_then(Value::as_str).unwrap_or(key).to_owned();
                    let schema = self.required_schema(payload, &format!("{pointer}/{key}"))?;
                    Some((payload_name, schema))
                };
                let command = CommandDef {
                    name: name.to_owned(),
                    request: part("request"),
                    response: part("response"),
                };
                interface.commands.insert(name.to_owned(), command);
            }
        }
    }

    fn required_schema(&mut self, object: &Map<String, Value>, pointer: &str) -> Option<Schema> {
        match get(object, "schema") {
            Some(schema) => self.schema(schema, &format!("{pointer}/schema"), 0),
            None => {
                self.error(pointer, "a \"schema\" is required".into());
                None
            }
        }
    }

    fn schema(&mut self, value: &Value, pointer: &str, depth: usize) -> Option<Schema> {
        if depth > MAX_SCHEMA_DEPTH {
            self.error(pointer, "schemas nest too deeply".into());
            return None;
        }
        let object = match value {
            Value::String(name) => {
                if let Some((_, primitive)) = PRIMITIVES.iter().find(|(n, _)| n == name) {
                    return Some(primitive.clone());
                }
                if GEOSPATIAL.contains(&name.as_str()) {
                    return Some(Schema::Geospatial);
                }
                let Some(Value::Object(object)) = self.named.get(name).copied() else {
                    self.error(pointer, format!("unknown schema {name:?}"));
                    return None;
                };
                object
            }
            Value::Object(object) => object,
            _ => {
                self.error(pointer, "a schema must be a name or an object".into());
                return None;
            }
        };
        let kind = types(object).into_iter().find(|t| matches!(*t, "Object" | "Enum" | "Map" | "Array"));
        match kind {
            Some("Enum") => {
                let value_schema = match get(object, "valueSchema").and_then(Value::as_str) {
                    Some("integer") => Schema::Integer,
                    Some("string") => Schema::String,
                    _ => {
                        self.error(
                            &format!("{pointer}/valueSchema"),
                            "an enum's valueSchema must be integer or string".into(),
                        );
                        return None;
                    }
                };
                let mut values = Vec::new();
                for (i, item) in
                    get(object, "enumValues").and_then(Value::as_array).into_iter().flatten().enumerate()
                {
                    let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let Some(enum_value) =
                        item.get("enumValue").or_else(|| item.get("dtmi:dtdl:property:enumValue;2"))
                    else {
                        self.error(
                            &format!("{pointer}/enumValues/{i}"),
                            "an enum value needs \"enumValue\"".into(),
                        );
                        continue;
                    };
                    if value_schema.check(enum_value).is_err() {
                        self.error(
                            &format!("{pointer}/enumValues/{i}/enumValue"),
                            format!("{enum_value} does not fit the enum's valueSchema"),
                        );
                    }
                    values.push((name, enum_value.clone()));
                }
                Some(Schema::Enum { value_schema: Box::new(value_schema), values })
            }
            Some("Object") => {
                let mut fields: Vec<(String, Schema)> = Vec::new();
                for (i, field) in
                    get(object, "fields").and_then(Value::as_array).into_iter().flatten().enumerate()
                {
                    let at = format!("{pointer}/fields/{i}");
                    let Some(field) = field.as_object() else { continue };
                    let Some(name) = field.get("name").and_then(Value::as_str) else {
                        self.error(&format!("{at}/name"), "a field needs a \"name\"".into());
                        continue;
                    };
                    let Some(schema) =
                        get(field, "schema").and_then(|s| self.schema(s, &format!("{at}/schema"), depth + 1))
                    else {
                        continue;
                    };
                    match fields.iter().find(|(existing, _)| existing == name) {
                        // The 3D Scenes samples repeat a field with the same schema; that means one field.
                        Some((_, existing)) if *existing == schema => {}
                        Some(_) => self.error(
                            &format!("{at}/name"),
                            format!("field {name:?} is defined twice with different schemas"),
                        ),
                        None => fields.push((name.to_owned(), schema)),
                    }
                }
                Some(Schema::Object { fields })
            }
            Some("Map") => {
                let key = get(object, "mapKey")
                    .and_then(|k| k.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("key")
                    .to_owned();
                let value_schema = get(object, "mapValue")
                    .and_then(Value::as_object)
                    .and_then(|v| get(v, "schema"))
                    .and_then(|s| self.schema(s, &format!("{pointer}/mapValue/schema"), depth + 1));
                let Some(value_schema) = value_schema else {
                    self.error(&format!("{pointer}/mapValue"), "a map needs a mapValue with a schema".into());
                    return None;
                };
                Some(Schema::Map { key, value: Box::new(value_schema) })
            }
            Some(_) => {
                let element = get(object, "elementSchema")
                    .and_then(|s| self.schema(s, &format!("{pointer}/elementSchema"), depth + 1));
                let Some(element) = element else {
                    self.error(&format!("{pointer}/elementSchema"), "an array needs an elementSchema".into());
                    return None;
                };
                Some(Schema::Array { element: Box::new(element) })
            }
            None => {
                self.error(
                    &format!("{pointer}/@type"),
                    "a schema object must be an Object, Enum, Map or Array".into(),
                );
                None
            }
        }
    }
}

/// Copies inherited contents into `id` (bases first), detecting cycles and unknown bases.
fn resolve(
    id: &str,
    own: &BTreeMap<String, (String, Interface)>,
    resolved: &mut BTreeMap<String, Interface>,
    chain: &mut Vec<String>,
    errors: &mut Vec<ModelError>,
) -> bool {
    if resolved.contains_key(id) {
        return true;
    }
    let Some((base_pointer, interface)) = own.get(id) else { return false };
    if chain.iter().any(|c| c == id) {
        errors.push(ModelError {
            model: id.to_owned(),
            pointer: "/extends".into(),
            document_pointer: format!("{base_pointer}/extends"),
            message: format!("inheritance cycle: {} -> {id}", chain.join(" -> ")),
        });
        return false;
    }
    chain.push(id.to_owned());
    let mut merged = interface.clone();
    for base in &interface.extends {
        if !resolve(base, own, resolved, chain, errors) {
            if !own.contains_key(base) {
                errors.push(ModelError {
                    model: id.to_owned(),
                    pointer: "/extends".into(),
                    document_pointer: format!("{base_pointer}/extends"),
                    message: format!("extends unknown interface {base}"),
                });
            }
            continue;
        }
        let Some(parent) = resolved.get(base) else { continue };
        let clash = |name: &String| {
            let own_names = [
                merged.properties.contains_key(name),
                merged.telemetry.contains_key(name),
                merged.relationships.contains_key(name),
                merged.components.contains_key(name),
                merged.commands.contains_key(name),
            ];
            own_names.iter().any(|&b| b)
        };
        let inherited: Vec<&String> = parent
            .properties
            .keys()
            .chain(parent.telemetry.keys())
            .chain(parent.relationships.keys())
            .chain(parent.components.keys())
            .chain(parent.commands.keys())
            .collect();
        let clashes: Vec<&String> = inherited.into_iter().filter(|name| clash(name)).collect();
        // The same content inherited twice through a diamond is one content, not a clash.
        for name in clashes {
            let same = parent.properties.get(name) == merged.properties.get(name)
                && parent.telemetry.get(name) == merged.telemetry.get(name)
                && parent.relationships.get(name) == merged.relationships.get(name)
                && parent.components.get(name) == merged.components.get(name)
                && parent.commands.get(name) == merged.commands.get(name);
            if !same {
                errors.push(ModelError {
                    model: id.to_owned(),
                    pointer: "/contents".into(),
                    document_pointer: format!("{base_pointer}/contents"),
                    message: format!("{name:?} is defined here and inherited from {base}"),
                });
            }
        }
        for (name, p) in &parent.properties {
            merged.properties.entry(name.clone()).or_insert_with(|| p.clone());
        }
        for (name, t) in &parent.telemetry {
            merged.telemetry.entry(name.clone()).or_insert_with(|| t.clone());
        }
        for (name, r) in &parent.relationships {
            merged.relationships.entry(name.clone()).or_insert_with(|| r.clone());
        }
        for (name, c) in &parent.components {
            merged.components.entry(name.clone()).or_insert_with(|| c.clone());
        }
        for (name, c) in &parent.commands {
            merged.commands.entry(name.clone()).or_insert_with(|| c.clone());
        }
    }
    chain.pop();
    resolved.insert(id.to_owned(), merged);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn models(value: Value) -> Result<ModelSet, Vec<ModelError>> {
        ModelSet::from_documents(&[value])
    }

    fn space_and_room() -> ModelSet {
        models(json!([
            {"@id": "dtmi:test:Space;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
             "contents": [
                {"@type": "Property", "name": "name", "schema": "string", "writable": true},
                {"@type": "Relationship", "name": "contains", "target": "dtmi:test:Space;1", "maxMultiplicity": 500,
                 "properties": [{"name": "since", "schema": "dateTime"}]}
             ]},
            {"@id": "dtmi:test:Room;1", "@type": "Interface", "@context": ["dtmi:dtdl:context;2"],
             "extends": "dtmi:test:Space;1",
             "schemas": [{"@id": "dtmi:test:Mode;1", "@type": "Enum", "valueSchema": "string",
                          "enumValues": [{"name": "heat", "enumValue": "heat"}, {"name": "cool", "enumValue": "cool"}]}],
             "contents": [
                {"@type": ["Property", "Temperature"], "name": "temperature", "schema": "double", "unit": "degreeCelsius"},
                {"@type": "Property", "name": "occupants", "schema": "integer"},
                {"@type": "Property", "name": "mode", "schema": "dtmi:test:Mode;1"},
                {"@type": "Property", "name": "limits", "schema": {"@type": "Map", "mapKey": {"name": "k", "schema": "string"},
                    "mapValue": {"name": "v", "schema": "double"}}},
                {"@type": "Property", "name": "setpoint", "schema": {"@type": "Object", "fields": [
                    {"name": "low", "schema": "double"}, {"name": "high", "schema": "double"}]}},
                {"@type": "Telemetry", "name": "motion", "schema": "boolean"},
                {"@type": "Component", "name": "thermostat", "schema": "dtmi:test:Thermostat;1"},
                {"@type": "Command", "name": "reboot", "request": {"name": "delay", "schema": "duration"}}
             ]},
            {"@id": "dtmi:test:Thermostat;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
             "contents": [{"@type": "Property", "name": "target", "schema": "double", "writable": true}]}
        ]))
        .unwrap()
    }

    #[test]
    fn interfaces_resolve_inheritance_and_list_all_contents() {
        let set = space_and_room();
        let room = set.interface("dtmi:test:Room;1").unwrap();
        assert_eq!(room.dtdl_version, 2);
        assert!(room.properties.contains_key("name"), "inherited from Space");
        assert!(room.properties["name"].writable);
        assert_eq!(room.properties["temperature"].semantic_types, ["Temperature"]);
        assert_eq!(room.properties["temperature"].unit.as_deref(), Some("degreeCelsius"));
        let contains = &room.relationships["contains"];
        assert_eq!(
            (contains.target.as_deref(), contains.max_multiplicity),
            (Some("dtmi:test:Space;1"), Some(500))
        );
        assert_eq!(contains.properties["since"].schema, Schema::DateTime);
        assert_eq!(room.telemetry["motion"].schema, Schema::Boolean);
        assert_eq!(room.components["thermostat"].schema, "dtmi:test:Thermostat;1");
        assert_eq!(room.commands["reboot"].request, Some(("delay".into(), Schema::Duration)));
        assert!(set.is_a("dtmi:test:Room;1", "dtmi:test:Space;1"));
        assert!(!set.is_a("dtmi:test:Space;1", "dtmi:test:Room;1"));
    }

    #[test]
    fn property_values_are_checked_against_their_schema() {
        let set = space_and_room();
        let check = |name: &str, value: Value| set.check_property("dtmi:test:Room;1", name, Some(&value));
        assert!(check("temperature", json!(21.5)).is_ok());
        assert!(check("temperature", json!("warm")).unwrap_err().contains("expected a number"));
        assert!(check("occupants", json!(3)).is_ok());
        assert!(check("occupants", json!(2.5)).is_err());
        assert!(check("mode", json!("heat")).is_ok());
        assert!(check("mode", json!("dry")).unwrap_err().contains("not one of"));
        assert!(check("limits", json!({"a": 1, "b": 2.5})).is_ok());
        assert!(check("limits", json!({"a": "x"})).is_err());
        assert!(check("setpoint", json!({"low": 18})).is_ok());
        assert!(check("setpoint", json!({"middle": 18})).unwrap_err().contains("no field"));
        assert!(check("thermostat", json!({"$metadata": {}, "target": 20})).is_ok());
        assert!(check("thermostat", json!({"target": "hot"})).is_err());
        assert!(check("motion", json!(true)).unwrap_err().contains("telemetry"));
        assert!(check("nonsense", json!(1)).unwrap_err().contains("no property"));
        assert!(set.check_property("dtmi:other:Unknown;1", "anything", Some(&json!(1))).is_ok());
    }

    #[test]
    fn errors_name_the_model_and_the_json_pointer() {
        let errors = models(json!([
            {"@id": "dtmi:test:A;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2",
             "contents": [{"@type": "Property", "name": "x", "schema": "nope"},
                          {"@type": "Property", "name": "x", "schema": "double"},
                          {"@type": "Gadget", "name": "y"}]},
            {"@id": "not a dtmi", "@type": "Interface", "@context": "dtmi:dtdl:context;2"},
            {"@id": "dtmi:test:B;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2", "extends": "dtmi:test:C;1"},
            {"@id": "dtmi:test:C;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2", "extends": "dtmi:test:B;1"},
            {"@id": "dtmi:test:D;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2", "extends": "dtmi:test:Missing;1"}
        ]))
        .unwrap_err();
        let summary: Vec<String> =
            errors.iter().map(|e| format!("{} {}", e.model, e.document_pointer)).collect();
        assert!(summary.contains(&"dtmi:test:A;1 /0/0/contents/0/schema".to_owned()), "{summary:?}");
        assert!(summary.contains(&"dtmi:test:A;1 /0/0/contents/1/name".to_owned()), "{summary:?}");
        assert!(summary.contains(&"dtmi:test:A;1 /0/0/contents/2/@type".to_owned()), "{summary:?}");
        assert!(summary.contains(&"(unknown) /0/1/@id".to_owned()), "{summary:?}");
        assert!(errors.iter().any(|e| e.message.contains("inheritance cycle")), "{errors:?}");
        assert!(errors.iter().any(|e| e.model == "dtmi:test:D;1" && e.message.contains("unknown interface")));
        assert!(errors[0].to_string().starts_with("model dtmi:test:A;1 at /contents/0/schema"));
    }
}
