//! The expression language of behaviors and computed properties: a JavaScript subset (as ADT 3D
//! Scenes writes it) plus graph functions, parsed once into a node arena and evaluated on demand.
//!
//! Parsing ([`Expression::parse`], [`Expression::parse_text`]) reports errors with a character
//! position. Evaluation ([`Expression::evaluate`]) never panics: any runtime error, a missing
//! value or `NaN` is "no value" (`None`). Each expression lists what it reads
//! ([`Dependencies`]) so that the runtime re-evaluates it only when one of those changes.
//! docs/expressions.md is the user-facing description.

mod eval;
mod js;
mod parse;

use std::collections::BTreeMap;

pub use eval::{EvalValue, Scope};
pub use js::parse_rfc3339_millis;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expression {
    source: String,
    nodes: Vec<Node>,
    root: NodeId,
    dependencies: Dependencies,
}

/// A parse error, with the 0-based character offset where it was found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} at character {position} of expression {source_text:?}")]
pub struct ExpressionError {
    pub source_text: String,
    pub position: usize,
    pub message: String,
}

/// What an expression reads, found at parse time. Property and relationship names are a
/// superset: every name that appears is listed, whatever object it is read from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dependencies {
    /// Reads the primary twin (`PrimaryTwin` or `twin`).
    pub primary: bool,
    /// Twin aliases it names.
    pub aliases: Vec<String>,
    /// Property names it may read from a twin.
    pub properties: Vec<String>,
    /// Some property name is computed at run time (`twin[name]`): any property may matter.
    pub any_property: bool,
    /// Relationship names it follows with `related`.
    pub relationships: Vec<String>,
    /// Some relationship name is computed at run time: any relationship may matter.
    pub any_relationship: bool,
    /// Reads properties of the named twins themselves (`twin.x`), not only of twins reached
    /// through `related` from them.
    pub reads_root_properties: bool,
    /// How many `related` calls it makes: a bound on how many relationship hops it follows.
    pub related_calls: u32,
    /// Uses the caller's clock (`age`).
    pub clock: bool,
}

impl Dependencies {
    /// Whether a change to the top-level property `name` of a twin it reads may change the
    /// result.
    pub fn reads_property(&self, name: &str) -> bool {
        self.any_property || self.properties.iter().any(|p| p == name)
    }

    /// Whether the result depends on relationships (and so on twins other than the named ones).
    pub fn follows_relationships(&self) -> bool {
        self.any_relationship || !self.relationships.is_empty()
    }
}

pub(crate) type NodeId = u32;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Number(f64),
    Str(Box<str>),
    Bool(bool),
    Null,
    Undefined,
    Primary,
    Alias(Box<str>),
    Member { object: NodeId, name: Box<str>, optional: bool },
    Index { object: NodeId, index: NodeId, optional: bool },
    Unary { op: UnaryOp, operand: NodeId },
    Binary { op: BinaryOp, left: NodeId, right: NodeId },
    Logical { op: LogicalOp, left: NodeId, right: NodeId },
    Conditional { test: NodeId, consequent: NodeId, alternate: NodeId },
    Template(Box<[TemplatePart]>),
    Array(Box<[NodeId]>),
    Call { function: Function, args: Box<[NodeId]> },
    Method { object: NodeId, method: Method, args: Box<[NodeId]>, optional: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TemplatePart {
    Text(Box<str>),
    Expression(NodeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Negate,
    Plus,
    TypeOf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    Power,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    LooseEqual,
    LooseNotEqual,
    StrictEqual,
    StrictNotEqual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
    Nullish,
}

/// Functions callable by name (globals, `Math.*`, graph functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Function {
    Math(MathFunction),
    Number,
    String,
    Boolean,
    ParseFloat,
    ParseInt,
    IsNaN,
    IsFinite,
    Related,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Any,
    All,
    Age,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MathFunction {
    Abs,
    Ceil,
    Floor,
    Round,
    Trunc,
    Sign,
    Sqrt,
    Cbrt,
    Exp,
    Log,
    Log10,
    Log2,
    Pow,
    Min,
    Max,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Atan2,
    Hypot,
}

/// String, Number and array methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    ToUpperCase,
    ToLowerCase,
    Trim,
    TrimStart,
    TrimEnd,
    Includes,
    StartsWith,
    EndsWith,
    IndexOf,
    LastIndexOf,
    Slice,
    Substring,
    CharAt,
    PadStart,
    PadEnd,
    Replace,
    ReplaceAll,
    Split,
    Concat,
    Repeat,
    At,
    Join,
    ToString,
    ToFixed,
    ToPrecision,
}

impl Expression {
    /// Parses a JavaScript-style expression (`PrimaryTwin.temperature > 20`).
    pub fn parse(source: &str) -> Result<Self, ExpressionError> {
        parse::parse(source, false)
    }

    /// Parses display text as 3D Scenes treats labels: text wrapped in backticks is a template
    /// literal; any other text is taken literally except for `${...}` substitutions.
    pub fn parse_text(source: &str) -> Result<Self, ExpressionError> {
        let trimmed = source.trim();
        let is_template = trimmed.len() >= 2 && trimmed.starts_with('`') && trimmed.ends_with('`');
        if is_template { parse::parse(source, false) } else { parse::parse(source, true) }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn dependencies(&self) -> &Dependencies {
        &self.dependencies
    }

    /// The node arena and its root, for static checks (`crate::scene_check`).
    pub(crate) fn tree(&self) -> (&[Node], NodeId) {
        (&self.nodes, self.root)
    }

    /// Evaluates in `scope`. `None` is "no value": a runtime error, an undefined result or NaN.
    pub fn evaluate<'a>(&'a self, scope: &Scope<'a>) -> Option<EvalValue<'a>> {
        eval::evaluate(self, scope, None)
    }

    /// Like [`Self::evaluate`], also noting every twin whose properties or relationships were
    /// read (for dependency tracking of graph expressions).
    pub fn evaluate_recording<'a>(
        &'a self,
        scope: &Scope<'a>,
        read: &mut Vec<crate::graph::TwinIndex>,
    ) -> Option<EvalValue<'a>> {
        eval::evaluate(self, scope, Some(read))
    }

    /// Evaluates to JSON (`None`: no value); twins become their id.
    pub fn evaluate_json(&self, scope: &Scope<'_>) -> Option<serde_json::Value> {
        self.evaluate(scope).and_then(|value| value.to_json())
    }

    /// Evaluates to display text (`None`: no value).
    pub fn evaluate_text(&self, scope: &Scope<'_>) -> Option<String> {
        self.evaluate(scope).map(|value| value.to_display_string().into_owned())
    }

    /// For a plain property path on the primary twin (`PrimaryTwin.a.b`), the path.
    pub fn primary_property_path(&self) -> Option<Vec<&str>> {
        let mut path = Vec::new();
        let mut node = self.root;
        loop {
            match self.nodes.get(node as usize)? {
                Node::Member { object, name, optional: false } => {
                    path.push(name.as_ref());
                    node = *object;
                }
                Node::Primary if !path.is_empty() => break,
                _ => return None,
            }
        }
        path.reverse();
        Some(path)
    }
}

/// Alias name → twin id, as 3D Scenes' `twinAliases`.
pub type Aliases = BTreeMap<String, String>;

#[cfg(test)]
mod tests;
