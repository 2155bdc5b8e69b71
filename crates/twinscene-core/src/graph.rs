//! The twin store: twins as nodes and relationships as edges of a petgraph `StableDiGraph`, with
//! id indexes, create/read/update/delete, and typed JSON Patch writes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

use crate::dtdl::ModelSet;
use crate::patch::{PatchRejection, TouchedNames, apply_to_twin, apply_to_twin_borrowed};
use crate::twin::{CompactString, Relationship, Twin};

/// A twin's place in the graph. Stable while the twin exists (removing other twins keeps it).
pub type TwinIndex = NodeIndex<u32>;

/// FxHash, the hasher of rustc: several times faster than the default SipHash on short ids, on
/// the path of every live update. It does not resist deliberate collisions; twin ids come from
/// the scene and from writers the server authenticates.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FastHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A relationship with its name interned, so that following relationships compares numbers.
#[derive(Clone, Debug)]
struct Edge {
    name: u32,
    relationship: Relationship,
}

/// Twins and relationships. Relationships whose source or target twin is not (yet) in the graph
/// are kept aside, not dropped, so that a snapshot round-trips unchanged.
#[derive(Clone, Debug, Default)]
pub struct TwinGraph {
    graph: StableDiGraph<Twin, Edge>,
    /// By id; short ids (up to 24 bytes) sit in the table itself, so that a lookup compares
    /// them without a pointer chase.
    twin_by_id: FastHashMap<CompactString, TwinIndex>,
    relationship_names: FastHashMap<String, u32>,
    /// ADT relationship ids are unique per source twin.
    relationship_by_id: FastHashMap<(String, String), EdgeIndex>,
    dangling: Vec<Relationship>,
    /// When set, property writes are type-checked against the twin's model.
    models: Option<Arc<ModelSet>>,
    /// Writes come from an authority that checked them already (a viewer applying a server's
    /// deltas): models stay known, but writes are not checked again.
    writes_trusted: bool,
    numbers: NumberColumns,
    /// Per source twin index, its outgoing relationships as (name id, target), in no particular
    /// order: what aggregates walk. petgraph's edge lists thread through edge records that hold
    /// whole relationships, a cache line or two per edge; these are 8 bytes each, adjacent.
    outgoing: Vec<Vec<(u32, TwinIndex)>>,
}

/// What [`TwinGraph::related_numbers`] adds up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NumberTotals {
    pub count: usize,
    pub nonzero: usize,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// The numeric values of the properties that expressions read ([`TwinGraph::track_numbers`]),
/// one dense column per property name indexed by twin index. An aggregate over related twins
/// (`avg(related(twin, 'contains').temperature)`) then reads a few adjacent cache lines instead
/// of each twin and its property map, which are scattered over the heap. A copy of what the
/// twins' maps hold, kept in step by every write in this module; `NaN` means "not a number here
/// (absent, text, an object, no such twin): read the twin".
#[derive(Clone, Debug, Default)]
struct NumberColumns {
    /// Few names: a scan of them beats hashing.
    names: Vec<Box<str>>,
    columns: Vec<Vec<f64>>,
}

impl NumberColumns {
    fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|known| known.len() == name.len() && **known == *name)
    }

    fn number(value: Option<&serde_json::Value>) -> f64 {
        value.and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN)
    }

    fn store(column: &mut Vec<f64>, index: TwinIndex, number: f64) {
        let slot = index.index();
        if column.len() <= slot {
            if number.is_nan() {
                return;
            }
            column.resize(slot + 1, f64::NAN);
        }
        column[slot] = number;
    }

    /// Copies the value of `name` (when tracked) from the twin.
    fn refresh_one(&mut self, index: TwinIndex, twin: &Twin, name: &str) {
        if let Some(c) = self.column(name) {
            Self::store(&mut self.columns[c], index, Self::number(twin.properties.get(name)));
        }
    }

    /// Records `value` as the twin's value of `name` (when tracked).
    fn set(&mut self, index: TwinIndex, name: &str, value: &serde_json::Value) {
        if let Some(c) = self.column(name) {
            Self::store(&mut self.columns[c], index, Self::number(Some(value)));
        }
    }

    /// Copies every tracked value from the twin (`None`: the twin is gone).
    fn refresh(&mut self, index: TwinIndex, twin: Option<&Twin>) {
        for (name, column) in self.names.iter().zip(&mut self.columns) {
            let number = Self::number(twin.and_then(|twin| twin.properties.get(name)));
            Self::store(column, index, number);
        }
    }

    fn get(&self, column: usize, index: TwinIndex) -> f64 {
        self.columns[column].get(index.index()).copied().unwrap_or(f64::NAN)
    }
}

/// Why an update was not applied. The graph is unchanged whenever one is returned.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no twin has id {0:?}")]
    UnknownTwin(String),
    #[error("patch for twin {twin:?} refused: {rejection}")]
    Rejected { twin: String, rejection: PatchRejection },
}

/// Why a create or delete was refused. The graph is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("a twin with id {0:?} already exists")]
    DuplicateTwin(String),
    #[error("no twin has id {0:?}")]
    UnknownTwin(String),
    #[error("twin {0:?} still has relationships; delete them first")]
    TwinHasRelationships(String),
    #[error("twin {twin:?} already has a relationship with id {relationship:?}")]
    DuplicateRelationship { twin: String, relationship: String },
    #[error("twin {twin:?} has no relationship with id {relationship:?}")]
    UnknownRelationship { twin: String, relationship: String },
    #[error("twin {twin:?} does not fit its model: {message}")]
    ModelMismatch { twin: String, message: String },
}

impl PartialEq for TwinGraph {
    fn eq(&self, other: &Self) -> bool {
        self.twins().eq(other.twins()) && self.relationships() == other.relationships()
    }
}

impl TwinGraph {
    /// Builds a graph from a snapshot. A later twin with the id of an earlier one replaces it.
    pub fn new(twins: impl IntoIterator<Item = Twin>, relationships: Vec<Relationship>) -> Self {
        let twins = twins.into_iter();
        let mut graph = Self::default();
        let expected = twins.size_hint().0;
        graph.graph.reserve_nodes(expected);
        graph.graph.reserve_edges(relationships.len());
        graph.twin_by_id.reserve(expected);
        graph.relationship_by_id.reserve(relationships.len());
        for twin in twins {
            match graph.twin_by_id.get(twin.id.as_str()) {
                Some(&index) => graph.graph[index] = twin,
                None => {
                    let id = CompactString::from(twin.id.as_str());
                    let index = graph.graph.add_node(twin);
                    graph.twin_by_id.insert(id, index);
                }
            }
        }
        for relationship in relationships {
            graph.insert_relationship_unchecked(relationship);
        }
        graph
    }

    /// Keeps the numeric values of these top-level properties in dense columns as well, for
    /// expressions that read them from many twins (see [`Self::tracked_number`]). Replaces the
    /// previous set. Names starting with `$` are not properties and are ignored.
    pub fn track_numbers<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) {
        let mut tracked: Vec<Box<str>> = Vec::new();
        for name in names {
            if !name.starts_with('$') && !tracked.iter().any(|known| **known == *name) {
                tracked.push(name.into());
            }
        }
        let bound = self.graph.node_indices().map(|index| index.index() + 1).max().unwrap_or(0);
        let columns = tracked
            .iter()
            .map(|name| {
                let mut column = vec![f64::NAN; bound];
                for index in self.graph.node_indices() {
                    column[index.index()] = NumberColumns::number(self.graph[index].properties.get(name));
                }
                column
            })
            .collect();
        self.numbers = NumberColumns { names: tracked, columns };
    }

    /// Which tracked column holds property `name`, if it is tracked ([`Self::track_numbers`]).
    pub(crate) fn number_column(&self, name: &str) -> Option<usize> {
        self.numbers.column(name)
    }

    /// The value of the twin's property in column `column` when it is a number; `None` when it
    /// is anything else (or the twin does not exist): then read the twin.
    pub(crate) fn tracked_number(&self, column: usize, twin: TwinIndex) -> Option<f64> {
        Some(self.numbers.get(column, twin)).filter(|number| !number.is_nan())
    }

    /// Turns on type checks of property writes against these models.
    pub fn set_models(&mut self, models: Arc<ModelSet>) {
        self.models = Some(models);
    }

    pub fn models(&self) -> Option<&ModelSet> {
        self.models.as_deref()
    }

    /// Stops type-checking writes (the models stay known): for a copy of state whose writes
    /// another party has accepted already. A viewer must not refuse what its server applied,
    /// or its copy would diverge.
    pub fn trust_writes(&mut self) {
        self.writes_trusted = true;
    }

    /// The models writes are checked against, if any.
    fn write_models(&self) -> Option<&ModelSet> {
        self.models.as_deref().filter(|_| !self.writes_trusted)
    }

    pub fn twin(&self, id: &str) -> Option<&Twin> {
        self.twin_by_id.get(id).map(|&index| &self.graph[index])
    }

    pub fn twin_index(&self, id: &str) -> Option<TwinIndex> {
        self.twin_by_id.get(id).copied()
    }

    pub fn twin_at(&self, index: TwinIndex) -> Option<&Twin> {
        self.graph.node_weight(index)
    }

    pub fn twin_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Twins in id order (stable output for snapshots and exports).
    pub fn twins(&self) -> impl ExactSizeIterator<Item = &Twin> {
        let mut twins: Vec<&Twin> = self.graph.node_weights().collect();
        twins.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        twins.into_iter()
    }

    /// Every twin with its index, in no particular order (cheaper than [`Self::twins`]).
    pub fn indexed_twins(&self) -> impl Iterator<Item = (TwinIndex, &Twin)> {
        self.graph.node_indices().map(|index| (index, &self.graph[index]))
    }

    /// All relationships (copied), ordered by source twin id then relationship id; dangling
    /// ones last in arrival order.
    pub fn relationships(&self) -> Vec<Relationship> {
        let mut connected: Vec<&Relationship> =
            self.graph.edge_weights().map(|edge| &edge.relationship).collect();
        connected.sort_unstable_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        connected.into_iter().chain(&self.dangling).cloned().collect()
    }

    /// The relationships from or to one twin (a twin's relationship to itself once), ordered
    /// like [`Self::relationships`]. Reads only that twin's edges: what an inspector shows for
    /// a selected twin, which [`Self::relationships`] copied all 10^6 of (0.6 s in wasm).
    pub fn relationships_of(&self, twin: &str) -> Vec<&Relationship> {
        let mut found: Vec<&Relationship> = match self.twin_index(twin) {
            Some(index) => self
                .graph
                .edges_directed(index, Direction::Outgoing)
                .chain(
                    self.graph
                        .edges_directed(index, Direction::Incoming)
                        .filter(|edge| edge.source() != index),
                )
                .map(|edge| &edge.weight().relationship)
                .collect(),
            None => Vec::new(),
        };
        found.sort_unstable_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        found.extend(self.dangling.iter().filter(|r| r.source == twin || r.target == twin));
        found
    }

    pub fn relationship_count(&self) -> usize {
        self.graph.edge_count() + self.dangling.len()
    }

    pub fn relationship(&self, source: &str, id: &str) -> Option<&Relationship> {
        let edge = self.relationship_by_id.get(&(source.to_owned(), id.to_owned()))?;
        self.graph.edge_weight(*edge).map(|edge| &edge.relationship)
    }

    /// Targets of the twin's outgoing relationships named `name`, oldest first.
    pub fn related(&self, twin: TwinIndex, name: &str) -> impl Iterator<Item = TwinIndex> + use<> {
        let mut targets = Vec::new();
        if let Some(&name) = self.relationship_names.get(name) {
            targets.extend(
                self.graph
                    .edges_directed(twin, Direction::Outgoing)
                    .filter(|edge| edge.weight().name == name)
                    .map(|edge| edge.target()),
            );
        }
        // petgraph walks a node's edges newest first.
        targets.into_iter().rev()
    }

    /// Calls `visit` with each target of the twin's outgoing relationships named `name`, newest
    /// first, without allocating (for aggregates, where order does not matter).
    pub fn for_each_related<'g>(
        &'g self,
        twin: TwinIndex,
        name: &str,
        mut visit: impl FnMut(TwinIndex, &'g Twin),
    ) {
        let Some(&name) = self.relationship_names.get(name) else { return };
        for edge in self.graph.edges_directed(twin, Direction::Outgoing) {
            if edge.weight().name == name
                && let Some(target) = self.graph.node_weight(edge.target())
            {
                visit(edge.target(), target);
            }
        }
    }

    /// [`Self::for_each_related`] with the targets' indexes alone: a caller that reads tracked
    /// columns ([`Self::tracked_number`]) need not touch the twins.
    pub(crate) fn for_each_related_index(
        &self,
        twin: TwinIndex,
        name: &str,
        mut visit: impl FnMut(TwinIndex),
    ) {
        let Some(&name) = self.relationship_names.get(name) else { return };
        for &(edge_name, target) in self.outgoing.get(twin.index()).into_iter().flatten() {
            if edge_name == name {
                visit(target);
            }
        }
    }

    /// Sum, minimum, maximum, count and non-zero count of the tracked numbers in `column` of the
    /// targets of the twin's relationships named `name`, in one pass over adjacent memory.
    /// `None` when some target's value is not a tracked number: the caller then reads the twins.
    pub(crate) fn related_numbers(&self, twin: TwinIndex, name: &str, column: usize) -> Option<NumberTotals> {
        let mut totals =
            NumberTotals { count: 0, nonzero: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };
        let Some(&name) = self.relationship_names.get(name) else { return Some(totals) };
        let values = &self.numbers.columns[column];
        for &(edge_name, target) in self.outgoing.get(twin.index()).into_iter().flatten() {
            if edge_name != name {
                continue;
            }
            let number = values.get(target.index()).copied().unwrap_or(f64::NAN);
            if number.is_nan() {
                return None;
            }
            totals.count += 1;
            totals.nonzero += usize::from(number != 0.0);
            totals.sum += number;
            totals.min = totals.min.min(number);
            totals.max = totals.max.max(number);
        }
        Some(totals)
    }

    /// Targets of all the twin's outgoing relationships, whatever their name.
    pub fn all_related(&self, twin: TwinIndex) -> impl Iterator<Item = TwinIndex> + '_ {
        self.graph.edges_directed(twin, Direction::Outgoing).map(|edge| edge.target())
    }

    /// Sources of relationships named `name` pointing at the twin (`None`: any name).
    pub fn incoming<'a>(
        &'a self,
        twin: TwinIndex,
        name: Option<&'a str>,
    ) -> impl Iterator<Item = TwinIndex> + 'a {
        self.graph
            .edges_directed(twin, Direction::Incoming)
            .filter(move |edge| name.is_none_or(|name| edge.weight().relationship.name == name))
            .map(|edge| edge.source())
    }

    /// Creates a twin. With models set, its properties must fit its model.
    pub fn add_twin(&mut self, twin: Twin) -> Result<TwinIndex, GraphError> {
        if self.twin_by_id.contains_key(twin.id.as_str()) {
            return Err(GraphError::DuplicateTwin(twin.id));
        }
        self.check_twin(&twin)?;
        let id = CompactString::from(twin.id.as_str());
        let index = self.graph.add_node(twin);
        self.numbers.refresh(index, Some(&self.graph[index]));
        self.twin_by_id.insert(id, index);
        self.reattach_dangling();
        Ok(index)
    }

    /// Replaces a twin's properties and model wholesale (ADT `PUT`), keeping its relationships.
    pub fn replace_twin(&mut self, twin: Twin) -> Result<TwinIndex, GraphError> {
        let Some(&index) = self.twin_by_id.get(twin.id.as_str()) else { return self.add_twin(twin) };
        self.check_twin(&twin)?;
        let mut twin = twin;
        twin.etag.clone_from(&self.graph[index].etag);
        twin.bump_etag();
        self.graph[index] = twin;
        self.numbers.refresh(index, Some(&self.graph[index]));
        Ok(index)
    }

    /// Deletes a twin. As in ADT, a twin with relationships (either way) cannot be deleted.
    pub fn remove_twin(&mut self, id: &str) -> Result<Twin, GraphError> {
        let index = self.twin_index(id).ok_or_else(|| GraphError::UnknownTwin(id.to_owned()))?;
        let has_edges = self.graph.edges_directed(index, Direction::Outgoing).next().is_some()
            || self.graph.edges_directed(index, Direction::Incoming).next().is_some();
        if has_edges {
            return Err(GraphError::TwinHasRelationships(id.to_owned()));
        }
        self.twin_by_id.remove(id);
        self.numbers.refresh(index, None);
        self.graph.remove_node(index).ok_or_else(|| GraphError::UnknownTwin(id.to_owned()))
    }

    /// Creates a relationship between two existing twins.
    pub fn add_relationship(&mut self, relationship: Relationship) -> Result<(), GraphError> {
        let key = (relationship.source.clone(), relationship.id.clone());
        if self.relationship_by_id.contains_key(&key) {
            return Err(GraphError::DuplicateRelationship { twin: key.0, relationship: key.1 });
        }
        let source = self.twin_index(&relationship.source);
        let target = self.twin_index(&relationship.target);
        let (Some(source), Some(target)) = (source, target) else {
            let missing = if source.is_none() { &relationship.source } else { &relationship.target };
            return Err(GraphError::UnknownTwin(missing.clone()));
        };
        self.connect(key, source, target, relationship);
        Ok(())
    }

    /// Deletes a relationship and returns it.
    pub fn remove_relationship(&mut self, source: &str, id: &str) -> Result<Relationship, GraphError> {
        let unknown =
            || GraphError::UnknownRelationship { twin: source.to_owned(), relationship: id.to_owned() };
        let edge = self.relationship_by_id.remove(&(source.to_owned(), id.to_owned())).ok_or_else(unknown)?;
        let (from, to) = self.graph.edge_endpoints(edge).ok_or_else(unknown)?;
        let removed = self.graph.remove_edge(edge).ok_or_else(unknown)?;
        if let Some(outgoing) = self.outgoing.get_mut(from.index())
            && let Some(at) = outgoing.iter().position(|&pair| pair == (removed.name, to))
        {
            // Keeps the order of the others, which sums follow.
            outgoing.remove(at);
        }
        Ok(removed.relationship)
    }

    /// Applies a JSON Patch to one twin, all operations or none; `timestamp` (RFC 3339) becomes
    /// the last update time of the touched properties. With models set, the written values
    /// must fit the twin's model.
    pub fn apply_patch(
        &mut self,
        id: &str,
        patch: &[PatchOperation],
        timestamp: &str,
    ) -> Result<&Twin, UpdateError> {
        let index = self.twin_index(id).ok_or_else(|| UpdateError::UnknownTwin(id.to_owned()))?;
        self.apply_patch_at(index, patch, timestamp)?;
        Ok(&self.graph[index])
    }

    /// [`Self::apply_patch`] by index; returns the touched top-level property names.
    pub fn apply_patch_at(
        &mut self,
        index: TwinIndex,
        patch: &[PatchOperation],
        timestamp: &str,
    ) -> Result<crate::patch::Touched, UpdateError> {
        // Field by field: the models are read while the twin is written.
        let models = self.models.as_deref().filter(|_| !self.writes_trusted);
        let twin =
            self.graph.node_weight_mut(index).ok_or_else(|| UpdateError::UnknownTwin(String::new()))?;
        let touched = apply_to_twin(twin, patch, timestamp, models)
            .map_err(|rejection| UpdateError::Rejected { twin: twin.id.clone(), rejection })?;
        for name in &touched {
            self.numbers.refresh_one(index, twin, name);
        }
        Ok(touched)
    }

    /// [`Self::apply_patch_at`] without copying the touched names out of the patch.
    pub(crate) fn apply_patch_borrowed<'p>(
        &mut self,
        index: TwinIndex,
        patch: &'p [PatchOperation],
        timestamp: &str,
    ) -> Result<TouchedNames<'p>, UpdateError> {
        // Field by field: the models are read while the twin is written.
        let models = self.models.as_deref().filter(|_| !self.writes_trusted);
        let twin =
            self.graph.node_weight_mut(index).ok_or_else(|| UpdateError::UnknownTwin(String::new()))?;
        let touched = apply_to_twin_borrowed(twin, patch, timestamp, models)
            .map_err(|rejection| UpdateError::Rejected { twin: twin.id.clone(), rejection })?;
        match (&touched, patch) {
            // A single top-level write: the value is the operation's, no need to look it up.
            (TouchedNames::One(name), [PatchOperation::Add(AddOperation { value, .. })])
            | (TouchedNames::One(name), [PatchOperation::Replace(ReplaceOperation { value, .. })]) => {
                self.numbers.set(index, name, value);
            }
            _ => touched.for_each(|name| self.numbers.refresh_one(index, twin, name)),
        }
        Ok(touched)
    }

    /// Sets a property without a client write (computed properties): no etag or time change.
    pub(crate) fn set_computed(&mut self, index: TwinIndex, name: &str, value: Option<serde_json::Value>) {
        let Some(twin) = self.graph.node_weight_mut(index) else { return };
        match value {
            Some(value) => match twin.properties.get_mut(name) {
                Some(slot) => *slot = value,
                None => {
                    twin.properties.insert(name.to_owned(), value);
                }
            },
            None => {
                twin.properties.remove(name);
            }
        }
        self.numbers.refresh_one(index, twin, name);
    }

    fn check_twin(&self, twin: &Twin) -> Result<(), GraphError> {
        let Some(models) = self.write_models() else { return Ok(()) };
        models
            .check_twin(twin)
            .map_err(|message| GraphError::ModelMismatch { twin: twin.id.clone(), message })
    }

    fn edge(&mut self, relationship: Relationship) -> Edge {
        let next = self.relationship_names.len() as u32;
        let name = *self.relationship_names.entry(relationship.name.clone()).or_insert(next);
        Edge { name, relationship }
    }

    /// Adds a relationship between two twins of the graph, indexed.
    fn connect(
        &mut self,
        key: (String, String),
        source: TwinIndex,
        target: TwinIndex,
        relationship: Relationship,
    ) {
        let edge = self.edge(relationship);
        let name = edge.name;
        let edge = self.graph.add_edge(source, target, edge);
        self.relationship_by_id.insert(key, edge);
        let slot = source.index();
        if self.outgoing.len() <= slot {
            self.outgoing.resize_with(slot + 1, Vec::new);
        }
        self.outgoing[slot].push((name, target));
    }

    fn insert_relationship_unchecked(&mut self, relationship: Relationship) {
        let key = (relationship.source.clone(), relationship.id.clone());
        match (self.twin_index(&relationship.source), self.twin_index(&relationship.target)) {
            (Some(source), Some(target)) if !self.relationship_by_id.contains_key(&key) => {
                self.connect(key, source, target, relationship);
            }
            _ => self.dangling.push(relationship),
        }
    }

    fn reattach_dangling(&mut self) {
        if self.dangling.is_empty() {
            return;
        }
        for relationship in std::mem::take(&mut self.dangling) {
            self.insert_relationship_unchecked(relationship);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn relationship(id: &str, source: &str, target: &str, name: &str) -> Relationship {
        Relationship {
            id: id.into(),
            source: source.into(),
            target: target.into(),
            name: name.into(),
            properties: Map::new(),
        }
    }

    #[test]
    fn patching_an_unknown_twin_is_an_error() {
        let mut graph = TwinGraph::new([Twin::new("a", "m")], vec![]);
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/x", "value": 1}])).unwrap();
        assert!(
            matches!(graph.apply_patch("b", &patch, "t"), Err(UpdateError::UnknownTwin(id)) if id == "b")
        );
        assert_eq!(graph.apply_patch("a", &patch, "t").unwrap().property("x"), Some(&json!(1)));
    }

    /// The outgoing index gives the same targets as petgraph's edge lists, for every name.
    fn assert_outgoing_index_matches(graph: &TwinGraph) {
        for (index, _) in graph.indexed_twins() {
            for name in graph.relationship_names.keys() {
                let mut indexed = Vec::new();
                graph.for_each_related_index(index, name, |target| indexed.push(target));
                let mut walked: Vec<TwinIndex> = graph.related(index, name).collect();
                indexed.sort_unstable();
                walked.sort_unstable();
                assert_eq!(indexed, walked, "{name} from {:?}", graph.twin_at(index).map(|t| &t.id));
            }
        }
    }

    #[test]
    fn twins_and_relationships_have_crud() {
        let mut graph = TwinGraph::new([Twin::new("floor", "m"), Twin::new("r1", "m")], vec![]);
        graph.add_twin(Twin::new("r2", "m")).unwrap();
        assert_eq!(graph.add_twin(Twin::new("r2", "m")), Err(GraphError::DuplicateTwin("r2".into())));
        graph.add_relationship(relationship("c1", "floor", "r1", "contains")).unwrap();
        graph.add_relationship(relationship("c2", "floor", "r2", "contains")).unwrap();
        graph.add_relationship(relationship("c3", "floor", "r2", "contains")).unwrap();
        graph.add_relationship(relationship("f", "floor", "r2", "feeds")).unwrap();
        assert_outgoing_index_matches(&graph);
        graph.remove_relationship("floor", "c3").unwrap();
        graph.remove_relationship("floor", "f").unwrap();
        assert_outgoing_index_matches(&graph);
        assert!(matches!(
            graph.add_relationship(relationship("c1", "floor", "r2", "contains")),
            Err(GraphError::DuplicateRelationship { .. })
        ));
        assert_eq!(
            graph.add_relationship(relationship("x", "floor", "ghost", "contains")),
            Err(GraphError::UnknownTwin("ghost".into()))
        );
        let floor = graph.twin_index("floor").unwrap();
        let related: Vec<_> =
            graph.related(floor, "contains").map(|i| graph.twin_at(i).unwrap().id.clone()).collect();
        assert_eq!(related, ["r1", "r2"]);
        assert_eq!(graph.remove_twin("r1"), Err(GraphError::TwinHasRelationships("r1".into())));
        graph.remove_relationship("floor", "c1").unwrap();
        assert_eq!(graph.remove_twin("r1").unwrap().id, "r1");
        graph.add_twin(Twin::new("r3", "m")).unwrap();
        graph.add_relationship(relationship("c4", "r3", "floor", "contains")).unwrap();
        assert_outgoing_index_matches(&graph);
        assert_eq!(graph.related(floor, "contains").count(), 1);
        assert_eq!(graph.relationship("floor", "c2").unwrap().target, "r2");
        assert!(graph.twin("r1").is_none());
        assert_eq!(graph.twin("r2").unwrap().id, "r2", "indexes stay valid after a removal");
    }

    #[test]
    fn a_twins_relationships_are_those_from_or_to_it_in_the_same_order() {
        let graph = TwinGraph::new(
            [Twin::new("a", "m"), Twin::new("b", "m"), Twin::new("c", "m")],
            vec![
                relationship("r2", "a", "b", "feeds"),
                relationship("r1", "a", "c", "feeds"),
                relationship("r3", "b", "a", "feeds"),
                relationship("self", "a", "a", "loops"),
                relationship("r4", "b", "c", "feeds"),
                relationship("gone", "a", "x", "feeds"),
                relationship("in", "y", "b", "feeds"),
            ],
        );
        for twin in ["a", "b", "c", "x", "y", "nobody"] {
            let all = graph.relationships();
            let expected: Vec<&Relationship> =
                all.iter().filter(|r| r.source == twin || r.target == twin).collect();
            assert_eq!(graph.relationships_of(twin), expected, "relationships of {twin}");
        }
        assert_eq!(graph.relationships_of("a").len(), 5);
    }

    #[test]
    fn dangling_relationships_are_kept_and_attach_when_the_twin_arrives() {
        let mut graph = TwinGraph::new([Twin::new("a", "m")], vec![relationship("r", "a", "b", "feeds")]);
        assert_eq!(graph.relationships().len(), 1);
        let a = graph.twin_index("a").unwrap();
        assert_eq!(graph.related(a, "feeds").count(), 0);
        graph.add_twin(Twin::new("b", "m")).unwrap();
        assert_eq!(graph.related(a, "feeds").count(), 1);
        assert_outgoing_index_matches(&graph);
        assert_eq!(graph.relationships().len(), 1);
    }

    /// Every tracked column agrees with the twins' own maps (and says nothing of absent twins).
    fn assert_columns_match(graph: &TwinGraph) {
        for (c, name) in graph.numbers.names.iter().enumerate() {
            for slot in 0..graph.numbers.columns[c].len().max(8) {
                let index = TwinIndex::new(slot);
                let expected = graph.twin_at(index).and_then(|twin| twin.properties.get(name)?.as_f64());
                assert_eq!(graph.tracked_number(c, index), expected, "{name} of twin slot {slot}");
            }
        }
    }

    #[test]
    fn tracked_numbers_follow_every_kind_of_write() {
        let with = |id: &str, value: serde_json::Value| {
            let mut twin = Twin::new(id, "m");
            twin.properties.insert("t", value);
            twin
        };
        let mut graph = TwinGraph::new([with("a", json!(1)), with("b", json!("warm"))], vec![]);
        graph.track_numbers(["t", "u", "t", "$dtId"]);
        assert_eq!(graph.numbers.names.len(), 2, "repeats and $ names are not tracked");
        assert_columns_match(&graph);
        let write = |graph: &mut TwinGraph, id: &str, ops: serde_json::Value| {
            let patch: json_patch::Patch = serde_json::from_value(ops).unwrap();
            let _ = graph.apply_patch(id, &patch, "t");
            assert_columns_match(graph);
        };
        write(&mut graph, "a", json!([{"op": "replace", "path": "/t", "value": 2.5}]));
        write(&mut graph, "b", json!([{"op": "replace", "path": "/t", "value": 3}]));
        write(&mut graph, "a", json!([{"op": "replace", "path": "/t", "value": "cold"}]));
        write(
            &mut graph,
            "a",
            json!([{"op": "add", "path": "/u", "value": 4}, {"op": "remove", "path": "/t"}]),
        );
        write(&mut graph, "a", json!([{"op": "move", "from": "/u", "path": "/t"}]));
        write(&mut graph, "a", json!([{"op": "add", "path": "/u", "value": {"x": 1}}]));
        write(
            &mut graph,
            "b",
            json!([{"op": "replace", "path": "/t", "value": 9}, {"op": "remove", "path": "/nope"}]),
        );
        let b = graph.twin_index("b").unwrap();
        graph.set_computed(b, "u", Some(json!(7)));
        assert_columns_match(&graph);
        graph.set_computed(b, "u", None);
        assert_columns_match(&graph);
        graph.replace_twin(with("b", json!(null))).unwrap();
        assert_columns_match(&graph);
        graph.remove_twin("a").unwrap();
        assert_columns_match(&graph);
        graph.add_twin(with("c", json!(11))).unwrap();
        graph.add_twin(with("d", json!(12))).unwrap();
        assert_columns_match(&graph);
    }

    #[test]
    fn twins_come_out_in_id_order() {
        let graph = TwinGraph::new([Twin::new("b", "m"), Twin::new("a", "m"), Twin::new("c", "m")], vec![]);
        let ids: Vec<_> = graph.twins().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
