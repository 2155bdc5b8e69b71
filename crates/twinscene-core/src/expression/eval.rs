//! Evaluation of a parsed expression against the twin graph. Values borrow from the twins they
//! were read from, so a property path or a comparison allocates nothing; failures are a unit
//! error that the caller turns into "no value".

use std::borrow::Cow;

use serde_json::Value;

use super::js::{
    number_to_string, parse_float_prefix, parse_int_prefix, parse_rfc3339_millis, string_to_number, to_fixed,
    to_precision,
};
use super::{
    Aliases, BinaryOp, Expression, Function, LogicalOp, MathFunction, Method, Node, NodeId, TemplatePart,
    UnaryOp,
};
use crate::graph::{TwinGraph, TwinIndex};
use crate::twin::Twin;

/// Where an expression is evaluated: the graph, which twin `PrimaryTwin` is, the element's
/// aliases, and the caller's clock (for `age`; core has none of its own).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub graph: &'a TwinGraph,
    pub primary: Option<TwinIndex>,
    pub aliases: Option<&'a Aliases>,
    /// Milliseconds since the Unix epoch.
    pub now_millis: Option<f64>,
}

impl<'a> Scope<'a> {
    pub fn new(graph: &'a TwinGraph) -> Self {
        Self { graph, primary: None, aliases: None, now_millis: None }
    }

    /// With `PrimaryTwin` bound to the twin with this id (unbound when there is none).
    pub fn with_primary_id(self, id: &str) -> Self {
        Self { primary: self.graph.twin_index(id), ..self }
    }
}

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalValue<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
    /// A JSON object or array read from a twin (scalars become the variants above).
    Json(&'a Value),
    Twin(TwinIndex, &'a Twin),
    List(Vec<EvalValue<'a>>),
}

impl<'a> EvalValue<'a> {
    fn from_json(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => n.as_f64().map_or(Self::Undefined, Self::Number),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Self::Json(value),
        }
    }

    /// JavaScript truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Self::Undefined | Self::Null => false,
            Self::Bool(b) => *b,
            Self::Number(n) => *n != 0.0 && !n.is_nan(),
            Self::Str(s) => !s.is_empty(),
            Self::Json(_) | Self::Twin(..) | Self::List(_) => true,
        }
    }

    /// JavaScript `Number(value)`.
    pub fn to_number(&self) -> f64 {
        match self {
            Self::Undefined => f64::NAN,
            Self::Null => 0.0,
            Self::Bool(b) => f64::from(u8::from(*b)),
            Self::Number(n) => *n,
            Self::Str(s) => string_to_number(s),
            Self::Json(Value::Array(items)) if items.is_empty() => 0.0,
            Self::List(items) if items.is_empty() => 0.0,
            _ => f64::NAN,
        }
    }

    fn is_nullish(&self) -> bool {
        matches!(self, Self::Undefined | Self::Null)
    }

    /// The value as text (JavaScript `String(value)`, except that objects print as JSON and
    /// twins as their id).
    pub fn to_display_string(&self) -> Cow<'_, str> {
        match self {
            Self::Undefined => Cow::Borrowed("undefined"),
            Self::Null => Cow::Borrowed("null"),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::Number(n) => Cow::Owned(number_to_string(*n)),
            Self::Str(s) => Cow::Borrowed(s),
            Self::Json(Value::Array(items)) => Cow::Owned(
                items
                    .iter()
                    .map(|item| EvalValue::from_json(item).to_display_string().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Self::Json(value) => Cow::Owned(value.to_string()),
            Self::Twin(_, twin) => Cow::Borrowed(&twin.id),
            Self::List(items) => Cow::Owned(
                items
                    .iter()
                    .map(|item| {
                        if item.is_nullish() { String::new() } else { item.to_display_string().into_owned() }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// The value as JSON; `None` for undefined and NaN. Twins become their id.
    pub fn to_json(&self) -> Option<Value> {
        Some(match self {
            Self::Undefined => return None,
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(serde_json::Number::from_f64(*n)?),
            Self::Str(s) => Value::String(s.to_string()),
            Self::Json(value) => (*value).clone(),
            Self::Twin(_, twin) => Value::String(twin.id.clone()),
            Self::List(items) => {
                Value::Array(items.iter().map(|item| item.to_json().unwrap_or(Value::Null)).collect())
            }
        })
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Undefined => "undefined",
            Self::Bool(_) => "boolean",
            Self::Number(_) => "number",
            Self::Str(_) => "string",
            Self::Null | Self::Json(_) | Self::Twin(..) | Self::List(_) => "object",
        }
    }
}

/// A runtime error; the expression has no value.
#[derive(Debug)]
struct Failure;

type Evaluated<'a> = Result<EvalValue<'a>, Failure>;

struct Evaluator<'e, 'a> {
    expression: &'a Expression,
    scope: &'e Scope<'a>,
    read: Option<&'e mut Vec<TwinIndex>>,
}

pub(super) fn evaluate<'a>(
    expression: &'a Expression,
    scope: &Scope<'a>,
    read: Option<&mut Vec<TwinIndex>>,
) -> Option<EvalValue<'a>> {
    let mut evaluator = Evaluator { expression, scope, read };
    match evaluator.eval(expression.root) {
        Ok(EvalValue::Undefined) | Err(Failure) => None,
        Ok(EvalValue::Number(n)) if n.is_nan() => None,
        Ok(value) => Some(value),
    }
}

/// Upper bound on list sizes built by `related` and `split`, so that a hostile graph or string
/// cannot make one evaluation unbounded.
const MAX_LIST: usize = 1 << 20;

impl<'a> Evaluator<'_, 'a> {
    fn node(&self, id: NodeId) -> Result<&'a Node, Failure> {
        let expression: &'a Expression = self.expression;
        expression.nodes.get(id as usize).ok_or(Failure)
    }

    fn note_read(&mut self, twin: TwinIndex) {
        if let Some(read) = self.read.as_deref_mut()
            && read.last() != Some(&twin)
        {
            read.push(twin);
        }
    }

    fn twin(&self, index: TwinIndex) -> Evaluated<'a> {
        let graph: &'a TwinGraph = self.scope.graph;
        graph.twin_at(index).map(|twin| EvalValue::Twin(index, twin)).ok_or(Failure)
    }

    fn eval(&mut self, id: NodeId) -> Evaluated<'a> {
        let node = self.node(id)?;
        Ok(match node {
            Node::Number(n) => EvalValue::Number(*n),
            Node::Str(s) => EvalValue::Str(Cow::Borrowed(s)),
            Node::Bool(b) => EvalValue::Bool(*b),
            Node::Null => EvalValue::Null,
            Node::Undefined => EvalValue::Undefined,
            Node::Primary => {
                let index = self.scope.primary.ok_or(Failure)?;
                self.twin(index)?
            }
            Node::Alias(name) => {
                let id = self.scope.aliases.and_then(|aliases| aliases.get(name.as_ref())).ok_or(Failure)?;
                let index = self.scope.graph.twin_index(id).ok_or(Failure)?;
                self.twin(index)?
            }
            Node::Member { object, name, optional } => {
                // The common `PrimaryTwin.name`, read without going through a twin value.
                if let Node::Primary = self.node(*object)? {
                    let index = self.scope.primary.ok_or(Failure)?;
                    let graph: &'a TwinGraph = self.scope.graph;
                    // A tracked number holds only for an existing twin: no need to look it up.
                    if let Some(number) =
                        graph.number_column(name).and_then(|column| graph.tracked_number(column, index))
                    {
                        self.note_read(index);
                        return Ok(EvalValue::Number(number));
                    }
                    let twin = graph.twin_at(index).ok_or(Failure)?;
                    self.note_read(index);
                    return Ok(twin_property(twin, name));
                }
                let value = self.eval(*object)?;
                self.member(value, name, *optional)?
            }
            Node::Index { object, index, optional } => {
                let (object, index, optional) = (*object, *index, *optional);
                let value = self.eval(object)?;
                if optional && value.is_nullish() {
                    return Ok(EvalValue::Undefined);
                }
                let key = self.eval(index)?;
                self.index(value, key)?
            }
            Node::Unary { op, operand } => {
                let (op, operand) = (*op, *operand);
                let value = self.eval(operand)?;
                match op {
                    UnaryOp::Not => EvalValue::Bool(!value.truthy()),
                    UnaryOp::Negate if value == EvalValue::Undefined => EvalValue::Undefined,
                    UnaryOp::Negate => EvalValue::Number(-value.to_number()),
                    UnaryOp::Plus => EvalValue::Number(value.to_number()),
                    UnaryOp::TypeOf => EvalValue::Str(Cow::Borrowed(value.type_name())),
                }
            }
            Node::Binary { op, left, right } => {
                let (op, left, right) = (*op, *left, *right);
                let left = self.eval(left)?;
                let right = self.eval(right)?;
                binary(op, left, right)
            }
            Node::Logical { op, left, right } => {
                let (op, left, right) = (*op, *left, *right);
                let value = self.eval(left)?;
                let take_left = match op {
                    LogicalOp::And => !value.truthy(),
                    LogicalOp::Or => value.truthy(),
                    LogicalOp::Nullish => !value.is_nullish(),
                };
                if take_left { value } else { self.eval(right)? }
            }
            Node::Conditional { test, consequent, alternate } => {
                let (test, consequent, alternate) = (*test, *consequent, *alternate);
                let branch = if self.eval(test)?.truthy() { consequent } else { alternate };
                self.eval(branch)?
            }
            Node::Template(parts) => {
                let mut text = String::new();
                for part in parts.iter() {
                    match part {
                        TemplatePart::Text(t) => text.push_str(t),
                        TemplatePart::Expression(inner) => {
                            let value = self.eval(*inner)?;
                            // A missing value would print "undefined"; no value is more honest.
                            if value == EvalValue::Undefined {
                                return Err(Failure);
                            }
                            text.push_str(&value.to_display_string());
                        }
                    }
                }
                EvalValue::Str(Cow::Owned(text))
            }
            Node::Array(items) => {
                EvalValue::List(items.iter().map(|&item| self.eval(item)).collect::<Result<_, _>>()?)
            }
            Node::Call { function, args } => self.call(*function, args)?,
            Node::Method { object, method, args, optional } => {
                let value = self.eval(*object)?;
                if *optional && value.is_nullish() {
                    return Ok(EvalValue::Undefined);
                }
                let args = args.iter().map(|&arg| self.eval(arg)).collect::<Result<Vec<_>, _>>()?;
                call_method(value, *method, &args)?
            }
        })
    }

    fn member(&mut self, value: EvalValue<'a>, name: &str, optional: bool) -> Evaluated<'a> {
        Ok(match value {
            // Reading a property of nothing is a TypeError in JavaScript.
            EvalValue::Undefined | EvalValue::Null if optional => EvalValue::Undefined,
            EvalValue::Undefined | EvalValue::Null => return Err(Failure),
            EvalValue::Twin(index, twin) => {
                self.note_read(index);
                twin_property(twin, name)
            }
            EvalValue::Json(Value::Object(map)) => {
                map.get(name).map_or(EvalValue::Undefined, EvalValue::from_json)
            }
            EvalValue::Json(Value::Array(items)) if name == "length" => EvalValue::Number(items.len() as f64),
            EvalValue::Str(text) if name == "length" => EvalValue::Number(text.chars().count() as f64),
            EvalValue::List(items) if name == "length" => EvalValue::Number(items.len() as f64),
            // A property of a list of twins is the list of their values (`related(...).temperature`).
            EvalValue::List(items) => EvalValue::List(
                items.into_iter().map(|item| self.member(item, name, true)).collect::<Result<_, _>>()?,
            ),
            _ => EvalValue::Undefined,
        })
    }

    fn index(&mut self, value: EvalValue<'a>, key: EvalValue<'a>) -> Evaluated<'a> {
        if let EvalValue::Number(n) = key {
            let position = (n >= 0.0 && n.fract() == 0.0).then_some(n as usize);
            match (&value, position) {
                (EvalValue::List(items), Some(i)) => {
                    return Ok(items.get(i).cloned().unwrap_or(EvalValue::Undefined));
                }
                (EvalValue::Json(Value::Array(items)), Some(i)) => {
                    return Ok(items.get(i).map_or(EvalValue::Undefined, EvalValue::from_json));
                }
                (EvalValue::Str(text), Some(i)) => {
                    return Ok(text
                        .chars()
                        .nth(i)
                        .map_or(EvalValue::Undefined, |c| EvalValue::Str(Cow::Owned(c.to_string()))));
                }
                _ => {}
            }
        }
        let name = key.to_display_string().into_owned();
        self.member(value, &name, false)
    }

    fn call(&mut self, function: Function, args: &[NodeId]) -> Evaluated<'a> {
        if function == Function::Age {
            return self.age(args);
        }
        if let Some(value) = self.aggregate_related(function, args)? {
            return Ok(value);
        }
        let values = args.iter().map(|&arg| self.eval(arg)).collect::<Result<Vec<_>, _>>()?;
        let number = |i: usize| values.get(i).map_or(f64::NAN, EvalValue::to_number);
        Ok(match function {
            Function::Math(math) => EvalValue::Number(math_function(math, &values)),
            Function::Number => EvalValue::Number(if values.is_empty() { 0.0 } else { number(0) }),
            Function::String => EvalValue::Str(Cow::Owned(
                values.first().map_or(String::new(), |v| v.to_display_string().into_owned()),
            )),
            Function::Boolean => EvalValue::Bool(values.first().is_some_and(EvalValue::truthy)),
            Function::ParseFloat => {
                EvalValue::Number(parse_float_prefix(&values.first().ok_or(Failure)?.to_display_string()))
            }
            Function::ParseInt => {
                let radix = values.get(1).map(EvalValue::to_number);
                EvalValue::Number(parse_int_prefix(
                    &values.first().ok_or(Failure)?.to_display_string(),
                    radix,
                ))
            }
            Function::IsNaN => EvalValue::Bool(number(0).is_nan()),
            Function::IsFinite => EvalValue::Bool(number(0).is_finite()),
            Function::Related => {
                let mut values = values;
                let name = match values.pop() {
                    Some(EvalValue::Str(name)) => name,
                    _ => return Err(Failure),
                };
                let base = values.pop().ok_or(Failure)?;
                let mut related = Vec::new();
                self.related(base, &name, &mut related)?;
                EvalValue::List(related)
            }
            Function::Count => match values.first() {
                Some(EvalValue::List(items)) => {
                    EvalValue::Number(items.iter().filter(|v| !v.is_nullish()).count() as f64)
                }
                Some(EvalValue::Json(Value::Array(items))) => {
                    EvalValue::Number(items.iter().filter(|v| !v.is_null()).count() as f64)
                }
                Some(value) => EvalValue::Number(if value.is_nullish() { 0.0 } else { 1.0 }),
                None => return Err(Failure),
            },
            Function::Sum | Function::Avg | Function::Min | Function::Max => {
                let mut numbers = Vec::new();
                for value in &values {
                    collect_numbers(value, &mut numbers);
                }
                aggregate(function, &numbers)
            }
            Function::Any | Function::All => {
                let all = function == Function::All;
                match values.first() {
                    Some(EvalValue::List(items)) => EvalValue::Bool(if all {
                        items.iter().all(EvalValue::truthy)
                    } else {
                        items.iter().any(EvalValue::truthy)
                    }),
                    Some(value) => EvalValue::Bool(value.truthy()),
                    None => return Err(Failure),
                }
            }
            Function::Age => return Err(Failure),
        })
    }

    /// `avg(related(x, 'name').prop)` and the other aggregates of that shape, computed while
    /// walking the relationships: no list is built, nothing is allocated. `None` when the
    /// call has another shape (or `x` is not one twin): the general path handles it, with the
    /// same result.
    fn aggregate_related(
        &mut self,
        function: Function,
        args: &[NodeId],
    ) -> Result<Option<EvalValue<'a>>, Failure> {
        let aggregates = matches!(
            function,
            Function::Sum
                | Function::Avg
                | Function::Min
                | Function::Max
                | Function::Count
                | Function::Any
                | Function::All
        );
        let [arg] = args else { return Ok(None) };
        if !aggregates {
            return Ok(None);
        }
        let Node::Member { object, name, .. } = self.node(*arg)? else { return Ok(None) };
        let Node::Call { function: Function::Related, args: related_args } = self.node(*object)? else {
            return Ok(None);
        };
        let [base, relationship] = related_args.as_ref() else { return Ok(None) };
        let Node::Str(relationship) = self.node(*relationship)? else { return Ok(None) };
        let EvalValue::Twin(index, _) = self.eval(*base)? else { return Ok(None) };
        self.note_read(index);
        let graph: &'a TwinGraph = self.scope.graph;
        let column = graph.number_column(name);
        // All items tracked numbers (the usual case): added up without reading a twin. Not
        // while recording reads, which lists every item.
        if self.read.is_none()
            && let Some(totals) = column.and_then(|column| graph.related_numbers(index, relationship, column))
        {
            let (count, nonzero) = (totals.count, totals.nonzero);
            return Ok(Some(match function {
                Function::Count => EvalValue::Number(count as f64),
                Function::Any => EvalValue::Bool(nonzero > 0),
                Function::All => EvalValue::Bool(nonzero == count),
                Function::Sum => EvalValue::Number(totals.sum),
                _ if count == 0 => EvalValue::Undefined,
                Function::Avg => EvalValue::Number(totals.sum / count as f64),
                Function::Min => EvalValue::Number(totals.min),
                _ => EvalValue::Number(totals.max),
            }));
        }
        let mut totals = Totals::default();
        let mut failed = false;
        let mut read = self.read.as_deref_mut();
        graph.for_each_related_index(index, relationship, |target| {
            if let Some(read) = read.as_deref_mut() {
                read.push(target);
            }
            // Tracked numbers first: most items are numbers, and then the twin is not read.
            if let Some(number) = column.and_then(|column| graph.tracked_number(column, target)) {
                totals.add_number(number);
                return;
            }
            let Some(twin) = graph.twin_at(target) else { return };
            failed |= match name.as_ref() {
                "$dtId" => totals.add(&EvalValue::Str(Cow::Borrowed(&twin.id))),
                "$etag" => totals.add(&EvalValue::Str(Cow::Borrowed(&twin.etag))),
                name => totals.add_json(twin.properties.get(name)),
            }
            .is_err();
        });
        if failed {
            return Ok(None);
        }
        Ok(Some(match function {
            Function::Count => EvalValue::Number(totals.present as f64),
            Function::Any => EvalValue::Bool(totals.truthy > 0),
            Function::All => EvalValue::Bool(totals.truthy == totals.items),
            Function::Sum => EvalValue::Number(totals.sum),
            _ if totals.numbers == 0 => EvalValue::Undefined,
            Function::Avg => EvalValue::Number(totals.sum / totals.numbers as f64),
            Function::Min => EvalValue::Number(totals.min),
            _ => EvalValue::Number(totals.max),
        }))
    }

    fn related(
        &mut self,
        base: EvalValue<'a>,
        name: &str,
        out: &mut Vec<EvalValue<'a>>,
    ) -> Result<(), Failure> {
        match base {
            EvalValue::Twin(index, _) => {
                self.note_read(index);
                let graph: &'a TwinGraph = self.scope.graph;
                for target in graph.related(index, name) {
                    if out.len() >= MAX_LIST {
                        return Err(Failure);
                    }
                    out.push(self.twin(target)?);
                }
                Ok(())
            }
            EvalValue::List(items) => items.into_iter().try_for_each(|item| self.related(item, name, out)),
            _ => Err(Failure),
        }
    }

    /// Seconds since the property was last written, by the caller's clock.
    fn age(&mut self, args: &[NodeId]) -> Evaluated<'a> {
        let now = self.scope.now_millis.ok_or(Failure)?;
        let Node::Member { object, name, .. } = self.node(*args.first().ok_or(Failure)?)? else {
            return Err(Failure);
        };
        let EvalValue::Twin(index, twin) = self.eval(*object)? else { return Err(Failure) };
        self.note_read(index);
        let written = twin
            .last_update_time
            .get(name.as_ref())
            .and_then(|time| parse_rfc3339_millis(time))
            .ok_or(Failure)?;
        Ok(EvalValue::Number((now - written) / 1000.0))
    }
}

/// Running aggregates over the items of a projection, as `collect_numbers` + `aggregate`,
/// `count`, `any` and `all` would compute them from a list.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    items: usize,
    present: usize,
    truthy: usize,
    numbers: usize,
    sum: f64,
    min: f64,
    max: f64,
}

/// A property of a twin (`$dtId` and `$etag` are its id and etag).
fn twin_property<'a>(twin: &'a Twin, name: &str) -> EvalValue<'a> {
    match name {
        "$dtId" => EvalValue::Str(Cow::Borrowed(&twin.id)),
        "$etag" => EvalValue::Str(Cow::Borrowed(&twin.etag)),
        _ => twin.properties.get(name).map_or(EvalValue::Undefined, EvalValue::from_json),
    }
}

impl Totals {
    /// [`Self::add`] of a property value as read from a twin (`None`: absent), without making
    /// an [`EvalValue`] of it.
    fn add_json(&mut self, value: Option<&Value>) -> Result<(), ()> {
        let (present, truthy, number) = match value {
            None | Some(Value::Null) => (false, false, None),
            Some(Value::Bool(b)) => (true, *b, Some(f64::from(u8::from(*b)))),
            // A number JSON cannot give as f64 reads as undefined.
            Some(Value::Number(n)) => match n.as_f64() {
                Some(n) => (true, n != 0.0 && !n.is_nan(), Some(n).filter(|n| !n.is_nan())),
                None => (false, false, None),
            },
            Some(Value::String(s)) => (true, !s.is_empty(), None),
            Some(Value::Array(_)) => return Err(()),
            Some(Value::Object(_)) => (true, true, None),
        };
        if self.numbers == 0 {
            self.min = f64::INFINITY;
            self.max = f64::NEG_INFINITY;
        }
        self.items += 1;
        self.present += usize::from(present);
        self.truthy += usize::from(truthy);
        if let Some(number) = number {
            self.numbers += 1;
            self.sum += number;
            self.min = self.min.min(number);
            self.max = self.max.max(number);
        }
        Ok(())
    }

    /// [`Self::add_json`] of a number (never NaN: JSON has none).
    fn add_number(&mut self, number: f64) {
        if self.numbers == 0 {
            self.min = f64::INFINITY;
            self.max = f64::NEG_INFINITY;
        }
        self.items += 1;
        self.present += 1;
        self.truthy += usize::from(number != 0.0);
        self.numbers += 1;
        self.sum += number;
        self.min = self.min.min(number);
        self.max = self.max.max(number);
    }

    /// Arrays inside an item are left to the general path (`Err`).
    fn add(&mut self, value: &EvalValue<'_>) -> Result<(), ()> {
        if self.numbers == 0 {
            self.min = f64::INFINITY;
            self.max = f64::NEG_INFINITY;
        }
        self.items += 1;
        self.present += usize::from(!value.is_nullish());
        self.truthy += usize::from(value.truthy());
        let number = match value {
            EvalValue::Number(n) if !n.is_nan() => *n,
            EvalValue::Bool(b) => f64::from(u8::from(*b)),
            EvalValue::Json(Value::Array(_)) | EvalValue::List(_) => return Err(()),
            _ => return Ok(()),
        };
        self.numbers += 1;
        self.sum += number;
        self.min = self.min.min(number);
        self.max = self.max.max(number);
        Ok(())
    }
}

fn collect_numbers(value: &EvalValue<'_>, numbers: &mut Vec<f64>) {
    match value {
        EvalValue::List(items) => items.iter().for_each(|item| collect_numbers(item, numbers)),
        EvalValue::Json(Value::Array(items)) => {
            items.iter().for_each(|item| collect_numbers(&EvalValue::from_json(item), numbers))
        }
        EvalValue::Number(n) if !n.is_nan() => numbers.push(*n),
        EvalValue::Bool(b) => numbers.push(f64::from(u8::from(*b))),
        // Missing values and text are skipped: an average over the rooms that report one.
        _ => {}
    }
}

fn aggregate(function: Function, numbers: &[f64]) -> EvalValue<'static> {
    if numbers.is_empty() {
        return if function == Function::Sum { EvalValue::Number(0.0) } else { EvalValue::Undefined };
    }
    let sum: f64 = numbers.iter().sum();
    EvalValue::Number(match function {
        Function::Sum => sum,
        Function::Avg => sum / numbers.len() as f64,
        Function::Min => numbers.iter().copied().fold(f64::INFINITY, f64::min),
        _ => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn math_function(function: MathFunction, values: &[EvalValue<'_>]) -> f64 {
    use MathFunction as M;
    let x = values.first().map_or(f64::NAN, EvalValue::to_number);
    let y = values.get(1).map_or(f64::NAN, EvalValue::to_number);
    let all = || values.iter().map(EvalValue::to_number);
    match function {
        M::Abs => x.abs(),
        M::Ceil => x.ceil(),
        M::Floor => x.floor(),
        // JavaScript rounds halves toward +Infinity.
        M::Round => (x + 0.5).floor(),
        M::Trunc => x.trunc(),
        M::Sign => {
            if x.is_nan() || x == 0.0 {
                x
            } else {
                x.signum()
            }
        }
        M::Sqrt => x.sqrt(),
        M::Cbrt => x.cbrt(),
        M::Exp => x.exp(),
        M::Log => x.ln(),
        M::Log10 => x.log10(),
        M::Log2 => x.log2(),
        M::Pow => power(x, y),
        M::Min => {
            all().fold(f64::INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) })
        }
        M::Max => {
            all().fold(f64::NEG_INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
        }
        M::Sin => x.sin(),
        M::Cos => x.cos(),
        M::Tan => x.tan(),
        M::Asin => x.asin(),
        M::Acos => x.acos(),
        M::Atan => x.atan(),
        M::Atan2 => x.atan2(y),
        M::Hypot => all().map(|v| v * v).sum::<f64>().sqrt(),
    }
}

/// `x ** y` as JavaScript defines it (`1 ** NaN` is NaN, unlike `powf`).
fn power(x: f64, y: f64) -> f64 {
    if y.is_nan() || (x.abs() == 1.0 && y.is_infinite()) { f64::NAN } else { x.powf(y) }
}

fn binary<'a>(op: BinaryOp, left: EvalValue<'a>, right: EvalValue<'a>) -> EvalValue<'a> {
    use BinaryOp as B;
    let undefined = left == EvalValue::Undefined || right == EvalValue::Undefined;
    match op {
        B::StrictEqual => EvalValue::Bool(strict_equal(&left, &right)),
        B::StrictNotEqual => EvalValue::Bool(!strict_equal(&left, &right)),
        B::LooseEqual => EvalValue::Bool(loose_equal(&left, &right)),
        B::LooseNotEqual => EvalValue::Bool(!loose_equal(&left, &right)),
        // A missing operand makes arithmetic and comparisons "no value" rather than NaN/false,
        // so that a missing reading never looks like a normal one (see docs/expressions.md).
        _ if undefined => EvalValue::Undefined,
        B::Add => {
            let textual =
                |v: &EvalValue<'_>| !matches!(v, EvalValue::Null | EvalValue::Bool(_) | EvalValue::Number(_));
            if textual(&left) || textual(&right) {
                let mut text = left.to_display_string().into_owned();
                text.push_str(&right.to_display_string());
                EvalValue::Str(Cow::Owned(text))
            } else {
                EvalValue::Number(left.to_number() + right.to_number())
            }
        }
        B::Subtract => EvalValue::Number(left.to_number() - right.to_number()),
        B::Multiply => EvalValue::Number(left.to_number() * right.to_number()),
        B::Divide => EvalValue::Number(left.to_number() / right.to_number()),
        B::Remainder => EvalValue::Number(left.to_number() % right.to_number()),
        B::Power => EvalValue::Number(power(left.to_number(), right.to_number())),
        B::Less | B::LessEqual | B::Greater | B::GreaterEqual => {
            let ordering = match (&left, &right) {
                (EvalValue::Str(a), EvalValue::Str(b)) => Some(a.cmp(b)),
                _ => left.to_number().partial_cmp(&right.to_number()),
            };
            let Some(ordering) = ordering else { return EvalValue::Bool(false) };
            EvalValue::Bool(match op {
                B::Less => ordering.is_lt(),
                B::LessEqual => ordering.is_le(),
                B::Greater => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
    }
}

fn strict_equal(left: &EvalValue<'_>, right: &EvalValue<'_>) -> bool {
    match (left, right) {
        (EvalValue::Undefined, EvalValue::Undefined) | (EvalValue::Null, EvalValue::Null) => true,
        (EvalValue::Bool(a), EvalValue::Bool(b)) => a == b,
        (EvalValue::Number(a), EvalValue::Number(b)) => a == b,
        (EvalValue::Str(a), EvalValue::Str(b)) => a == b,
        (EvalValue::Twin(a, _), EvalValue::Twin(b, _)) => a == b,
        (EvalValue::Json(a), EvalValue::Json(b)) => std::ptr::eq(*a, *b),
        _ => false,
    }
}

fn loose_equal(left: &EvalValue<'_>, right: &EvalValue<'_>) -> bool {
    match (left, right) {
        (a, b) if a.is_nullish() || b.is_nullish() => a.is_nullish() && b.is_nullish(),
        (EvalValue::Number(_), EvalValue::Str(_))
        | (EvalValue::Str(_), EvalValue::Number(_))
        | (EvalValue::Bool(_), _)
        | (_, EvalValue::Bool(_)) => left.to_number() == right.to_number(),
        _ => strict_equal(left, right),
    }
}

fn call_method<'a>(value: EvalValue<'a>, method: Method, args: &[EvalValue<'a>]) -> Evaluated<'a> {
    use Method as M;
    let text_arg = |i: usize| args.get(i).map(|a| a.to_display_string().into_owned());
    let number_arg = |i: usize| args.get(i).map(EvalValue::to_number);
    let owned = |text: String| Ok(EvalValue::Str(Cow::Owned(text)));
    if let EvalValue::List(items) = &value {
        return list_method(items, method, args);
    }
    if let EvalValue::Number(n) = value {
        match method {
            M::ToFixed => {
                let digits = number_arg(0).unwrap_or(0.0);
                if !(0.0..=100.0).contains(&digits) {
                    return Err(Failure);
                }
                return owned(to_fixed(n, digits as usize));
            }
            M::ToPrecision => {
                let Some(precision) = number_arg(0) else { return owned(number_to_string(n)) };
                if !(1.0..=100.0).contains(&precision) {
                    return Err(Failure);
                }
                return owned(to_precision(n, precision as usize));
            }
            M::ToString => {
                if args.first().is_some_and(|radix| radix.to_number() != 10.0) {
                    return Err(Failure);
                }
                return owned(number_to_string(n));
            }
            _ => return Err(Failure),
        }
    }
    let EvalValue::Str(text) = &value else {
        return match method {
            M::ToString if !value.is_nullish() => owned(value.to_display_string().into_owned()),
            _ => Err(Failure),
        };
    };
    let chars = || text.chars();
    let length = text.chars().count() as f64;
    // JavaScript's relative index: negative counts from the end, clamped to [0, length].
    let position = |arg: Option<f64>, default: f64| {
        let n = arg.filter(|n| !n.is_nan()).unwrap_or(default).trunc();
        (if n < 0.0 { (length + n).max(0.0) } else { n.min(length) }) as usize
    };
    let char_slice =
        |start: usize, end: usize| chars().skip(start).take(end.saturating_sub(start)).collect::<String>();
    let find = |needle: &str, last: bool| {
        let found = if last { text.rfind(needle) } else { text.find(needle) };
        found.map_or(-1.0, |byte| text[..byte].chars().count() as f64)
    };
    match method {
        M::ToUpperCase => owned(text.to_uppercase()),
        M::ToLowerCase => owned(text.to_lowercase()),
        M::Trim => owned(text.trim().to_owned()),
        M::TrimStart => owned(text.trim_start().to_owned()),
        M::TrimEnd => owned(text.trim_end().to_owned()),
        M::Includes => Ok(EvalValue::Bool(text.contains(text_arg(0).ok_or(Failure)?.as_str()))),
        M::StartsWith => Ok(EvalValue::Bool(text.starts_with(text_arg(0).ok_or(Failure)?.as_str()))),
        M::EndsWith => Ok(EvalValue::Bool(text.ends_with(text_arg(0).ok_or(Failure)?.as_str()))),
        M::IndexOf => Ok(EvalValue::Number(find(&text_arg(0).ok_or(Failure)?, false))),
        M::LastIndexOf => Ok(EvalValue::Number(find(&text_arg(0).ok_or(Failure)?, true))),
        M::Slice => owned(char_slice(position(number_arg(0), 0.0), position(number_arg(1), length))),
        M::Substring => {
            let clamp = |arg: Option<f64>, default: f64| {
                arg.filter(|n| !n.is_nan()).unwrap_or(default).clamp(0.0, length) as usize
            };
            let (a, b) = (clamp(number_arg(0), 0.0), clamp(number_arg(1), length));
            owned(char_slice(a.min(b), a.max(b)))
        }
        M::CharAt => {
            let index = number_arg(0).unwrap_or(0.0);
            owned(if index >= 0.0 {
                chars().nth(index as usize).map(String::from).unwrap_or_default()
            } else {
                String::new()
            })
        }
        M::At => {
            let index = number_arg(0).unwrap_or(0.0).trunc();
            let index = if index < 0.0 { length + index } else { index };
            if index < 0.0 {
                return Ok(EvalValue::Undefined);
            }
            Ok(chars()
                .nth(index as usize)
                .map_or(EvalValue::Undefined, |c| EvalValue::Str(Cow::Owned(c.into()))))
        }
        M::PadStart | M::PadEnd => {
            let target = number_arg(0).unwrap_or(0.0).min(10_000.0);
            let fill = text_arg(1).unwrap_or_else(|| " ".into());
            let missing = (target - length).max(0.0) as usize;
            if fill.is_empty() || missing == 0 {
                return owned(text.to_string());
            }
            let padding: String = fill.chars().cycle().take(missing).collect();
            owned(if method == M::PadStart { padding + text } else { text.to_string() + &padding })
        }
        M::Replace => owned(text.replacen(&text_arg(0).ok_or(Failure)?, &text_arg(1).unwrap_or_default(), 1)),
        M::ReplaceAll => {
            let pattern = text_arg(0).ok_or(Failure)?;
            if pattern.is_empty() {
                return Err(Failure);
            }
            owned(text.replace(&pattern, &text_arg(1).unwrap_or_default()))
        }
        M::Split => {
            let separator = text_arg(0);
            let parts: Vec<EvalValue<'a>> = match separator.as_deref() {
                None => vec![EvalValue::Str(Cow::Owned(text.to_string()))],
                Some("") => chars().take(MAX_LIST).map(|c| EvalValue::Str(Cow::Owned(c.into()))).collect(),
                Some(separator) => text
                    .split(separator)
                    .take(MAX_LIST)
                    .map(|p| EvalValue::Str(Cow::Owned(p.to_owned())))
                    .collect(),
            };
            Ok(EvalValue::List(parts))
        }
        M::Concat => {
            let mut joined = text.to_string();
            args.iter().for_each(|arg| joined.push_str(&arg.to_display_string()));
            owned(joined)
        }
        M::Repeat => {
            let count = number_arg(0).unwrap_or(0.0);
            if !(0.0..=10_000.0).contains(&count) || text.len() * count as usize > 1 << 20 {
                return Err(Failure);
            }
            owned(text.repeat(count as usize))
        }
        M::ToString => owned(text.to_string()),
        M::Join | M::ToFixed | M::ToPrecision => Err(Failure),
    }
}

fn list_method<'a>(items: &[EvalValue<'a>], method: Method, args: &[EvalValue<'a>]) -> Evaluated<'a> {
    use Method as M;
    let text = |value: &EvalValue<'_>| {
        if value.is_nullish() { String::new() } else { value.to_display_string().into_owned() }
    };
    match method {
        M::Join | M::ToString => {
            let separator = match (method, args.first()) {
                (M::Join, Some(separator)) => separator.to_display_string().into_owned(),
                _ => ",".into(),
            };
            Ok(EvalValue::Str(Cow::Owned(items.iter().map(text).collect::<Vec<_>>().join(&separator))))
        }
        M::Includes => Ok(EvalValue::Bool(
            args.first().is_some_and(|needle| items.iter().any(|i| strict_equal(i, needle))),
        )),
        M::IndexOf => Ok(EvalValue::Number(
            args.first()
                .and_then(|needle| items.iter().position(|i| strict_equal(i, needle)))
                .map_or(-1.0, |p| p as f64),
        )),
        M::At => {
            let index = args.first().map_or(0.0, EvalValue::to_number).trunc();
            let index = if index < 0.0 { items.len() as f64 + index } else { index };
            Ok(if index < 0.0 {
                EvalValue::Undefined
            } else {
                items.get(index as usize).cloned().unwrap_or(EvalValue::Undefined)
            })
        }
        _ => Err(Failure),
    }
}

#[cfg(test)]
mod totals_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adding_json_equals_adding_its_value() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-2.5),
            json!(7),
            json!(""),
            json!("x"),
            json!({"a": 1}),
            json!({}),
        ];
        let mut by_value = Totals::default();
        let mut by_json = Totals::default();
        for value in &values {
            assert!(by_value.add(&EvalValue::from_json(value)).is_ok());
            assert!(by_json.add_json(Some(value)).is_ok());
            assert_eq!(by_value, by_json, "after {value}");
        }
        assert!(by_value.add(&EvalValue::Undefined).is_ok());
        assert!(by_json.add_json(None).is_ok());
        assert_eq!(by_value, by_json, "after an absent value");
        assert!(Totals::default().add_json(Some(&json!([1]))).is_err());
    }
}
