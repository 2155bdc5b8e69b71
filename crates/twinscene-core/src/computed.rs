//! Computed properties: twin properties defined by expressions over the graph, ordered so that
//! each is computed after everything it reads, with cycles refused, and re-computed
//! incrementally when what they read changes.
//!
//! Each (rule, twin) pair is an *instance*. Instance A feeds instance B when B's twin can reach
//! A's twin through the relationships B's expression follows and B reads the property A writes.
//! Instances run in topological order of that graph (petgraph `toposort`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::DiGraph;
use serde_json::Value;

use crate::expression::{Dependencies, Expression, ExpressionError, Scope};
use crate::graph::{TwinGraph, TwinIndex};
use crate::scene::ComputedProperty;

/// A compiled computed-property rule.
#[derive(Clone, Debug)]
pub struct ComputedRule {
    pub id: String,
    pub property: String,
    pub expression: Expression,
    pub model: Option<String>,
    pub twins: Option<Vec<String>>,
}

/// The computed properties of a graph in evaluation order.
#[derive(Clone, Debug, Default)]
pub struct ComputedPlan {
    rules: Vec<ComputedRule>,
    /// (rule, twin) in topological order.
    instances: Vec<(u32, TwinIndex)>,
    /// Per twin index: the instances (positions in `instances`) that may read that twin.
    readers: Vec<Vec<u32>>,
    /// A description of the cycle that was left out, if any.
    cycle: Option<String>,
    /// Scratch queue of [`Self::propagate_into`], kept to not allocate per update.
    queue: BinaryHeap<Reverse<u32>>,
}

/// Twins an expression rooted at `start` may read: the start and everything reachable within
/// the expression's number of `related` hops over the relationship names it uses.
pub(crate) fn reach(
    graph: &TwinGraph,
    start: TwinIndex,
    dependencies: &Dependencies,
    out: &mut Vec<TwinIndex>,
) {
    out.push(start);
    if !dependencies.follows_relationships() {
        return;
    }
    let mut frontier = vec![start];
    let mut seen: HashSet<TwinIndex> = HashSet::from([start]);
    for _ in 0..dependencies.related_calls {
        let mut next = Vec::new();
        for &twin in &frontier {
            let targets: Vec<TwinIndex> = if dependencies.any_relationship {
                graph.all_related(twin).collect()
            } else {
                dependencies.relationships.iter().flat_map(|name| graph.related(twin, name)).collect()
            };
            for target in targets {
                if seen.insert(target) {
                    out.push(target);
                    next.push(target);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
}

impl ComputedRule {
    pub fn compile(definition: &ComputedProperty) -> Result<Self, ExpressionError> {
        Ok(Self {
            id: definition.id.clone(),
            property: definition.property.clone(),
            expression: Expression::parse(&definition.expression)?,
            model: definition.model.clone(),
            twins: definition.twins.clone(),
        })
    }

    fn applies_to(&self, graph: &TwinGraph, twin: &crate::twin::Twin) -> bool {
        let by_model = self.model.as_ref().is_none_or(|model| {
            twin.model == *model || graph.models().is_some_and(|models| models.is_a(&twin.model, model))
        });
        let by_list = self.twins.as_ref().is_none_or(|twins| twins.contains(&twin.id));
        by_model && by_list
    }
}

impl ComputedPlan {
    /// Orders the rules' instances over `graph`. With a cycle, the error names the rules,
    /// twins and properties on it.
    pub fn new(rules: Vec<ComputedRule>, graph: &TwinGraph) -> Result<Self, String> {
        let plan = Self::build(rules, graph);
        match plan.cycle.clone() {
            Some(cycle) => Err(cycle),
            None => Ok(plan),
        }
    }

    /// Like [`Self::new`], but leaves the instances on a cycle out (they have no value) and
    /// keeps the description in [`Self::cycle`]. Used for live snapshots, which cannot be refused.
    pub fn build(rules: Vec<ComputedRule>, graph: &TwinGraph) -> Self {
        let mut instances = Vec::new();
        let mut by_twin: Vec<Vec<u32>> = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            for (twin_index, twin) in graph.indexed_twins() {
                if rule.applies_to(graph, twin) {
                    let slot = twin_index.index();
                    if by_twin.len() <= slot {
                        by_twin.resize(slot + 1, Vec::new());
                    }
                    by_twin[slot].push(instances.len() as u32);
                    instances.push((r as u32, twin_index));
                }
            }
        }
        let mut dependency_graph: DiGraph<u32, ()> = DiGraph::with_capacity(instances.len(), instances.len());
        for i in 0..instances.len() {
            dependency_graph.add_node(i as u32);
        }
        let mut reads = Vec::new();
        let mut readers_of_twin: Vec<(TwinIndex, u32)> = Vec::new();
        for (i, &(r, twin)) in instances.iter().enumerate() {
            let dependencies = rules[r as usize].expression.dependencies();
            reads.clear();
            reach(graph, twin, dependencies, &mut reads);
            // Following relationships from a twin does not read its properties.
            let skip_start = usize::from(!dependencies.reads_root_properties);
            for &read in &reads[skip_start.min(reads.len())..] {
                readers_of_twin.push((read, i as u32));
                for &j in by_twin.get(read.index()).into_iter().flatten() {
                    let writer = &rules[instances[j as usize].0 as usize];
                    if dependencies.reads_property(&writer.property) {
                        dependency_graph.add_edge(
                            petgraph::graph::NodeIndex::new(j as usize),
                            petgraph::graph::NodeIndex::new(i),
                            (),
                        );
                    }
                }
            }
        }
        let (order, cycle) = match toposort(&dependency_graph, None) {
            Ok(order) => (order.into_iter().map(|n| n.index()).collect::<Vec<_>>(), None),
            Err(_) => {
                let mut cyclic = HashSet::new();
                let mut description = None;
                for component in tarjan_scc(&dependency_graph) {
                    let self_loop =
                        component.len() == 1 && dependency_graph.contains_edge(component[0], component[0]);
                    if component.len() > 1 || self_loop {
                        if description.is_none() {
                            let names: Vec<String> = component
                                .iter()
                                .rev()
                                .map(|n| {
                                    let (r, twin) = instances[n.index()];
                                    let rule = &rules[r as usize];
                                    let id = graph.twin_at(twin).map_or("?", |t| t.id.as_str());
                                    format!("{id}.{} (rule {:?})", rule.property, rule.id)
                                })
                                .collect();
                            description = Some(format!(
                                "computed properties depend on each other in a cycle: {}",
                                names.join(" -> ")
                            ));
                        }
                        cyclic.extend(component.iter().map(|n| n.index()));
                    }
                }
                // Kahn's order of what remains: instances off the cycle still get values.
                let mut acyclic = dependency_graph.clone();
                acyclic.retain_nodes(|g, n| !cyclic.contains(&(g[n] as usize)));
                let order = toposort(&acyclic, None)
                    .map_or_else(|_| Vec::new(), |o| o.into_iter().map(|n| acyclic[n] as usize).collect());
                (order, description)
            }
        };
        let mut rank = vec![u32::MAX; instances.len()];
        for (position, &i) in order.iter().enumerate() {
            rank[i] = position as u32;
        }
        let ordered: Vec<(u32, TwinIndex)> = order.iter().map(|&i| instances[i]).collect();
        let mut readers: Vec<Vec<u32>> = Vec::new();
        for (twin, i) in readers_of_twin {
            let position = rank[i as usize];
            if position == u32::MAX {
                continue;
            }
            let slot = twin.index();
            if readers.len() <= slot {
                readers.resize(slot + 1, Vec::new());
            }
            readers[slot].push(position);
        }
        Self { rules, instances: ordered, readers, cycle, queue: BinaryHeap::new() }
    }

    pub fn rules(&self) -> &[ComputedRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The cycle left out by [`Self::build`], described.
    pub fn cycle(&self) -> Option<&str> {
        self.cycle.as_deref()
    }

    /// Properties computed by some rule (for dependency filters).
    pub fn writes(&self, property: &str) -> bool {
        self.rules.iter().any(|rule| rule.property == property)
    }

    pub fn uses_clock(&self) -> bool {
        self.rules.iter().any(|rule| rule.expression.dependencies().clock)
    }

    /// Computes every instance in order; returns the twins whose computed values changed.
    pub fn evaluate_all(&self, graph: &mut TwinGraph, now_millis: Option<f64>) -> Vec<TwinIndex> {
        let mut changed = Vec::new();
        for position in 0..self.instances.len() {
            if let Some(twin) = self.evaluate_instance(position, graph, now_millis) {
                changed.push(twin);
            }
        }
        changed
    }

    /// Re-computes what depends on `twin`'s `touched` properties (or on all of them: `None`),
    /// transitively, each instance once and in order. Returns the twins whose computed values
    /// changed, with the property.
    pub fn propagate(
        &self,
        graph: &mut TwinGraph,
        twin: TwinIndex,
        touched: Option<&[String]>,
        now_millis: Option<f64>,
    ) -> Vec<(TwinIndex, usize)> {
        let mut changed = Vec::new();
        if self.instances.is_empty() {
            return changed;
        }
        let mut queue = BinaryHeap::new();
        self.enqueue_readers(
            twin,
            |rule| touched.is_none_or(|names| names.iter().any(|n| rule.reads(n))),
            &mut queue,
        );
        self.run_queue(&mut queue, graph, now_millis, &mut changed);
        changed
    }

    /// [`Self::propagate`] for the touched properties `touched` says yes to, appending to
    /// `changed` and reusing the plan's queue (no allocation on the live update path).
    pub(crate) fn propagate_into(
        &mut self,
        graph: &mut TwinGraph,
        twin: TwinIndex,
        touched: impl Fn(&ComputedRule) -> bool,
        now_millis: Option<f64>,
        changed: &mut Vec<(TwinIndex, usize)>,
    ) {
        if self.instances.is_empty() {
            return;
        }
        let mut queue = std::mem::take(&mut self.queue);
        queue.clear();
        self.enqueue_readers(twin, touched, &mut queue);
        self.run_queue(&mut queue, graph, now_millis, changed);
        self.queue = queue;
    }

    /// Runs the queued instances in order, each once; each that changes its twin's value
    /// queues the instances that read it. Appends the changed twins with the rule that changed
    /// them. Readers come later in the order than what they read, so positions pop in
    /// increasing order and a repeat is a duplicate.
    fn run_queue(
        &self,
        queue: &mut BinaryHeap<Reverse<u32>>,
        graph: &mut TwinGraph,
        now_millis: Option<f64>,
        changed: &mut Vec<(TwinIndex, usize)>,
    ) {
        let mut last: Option<u32> = None;
        while let Some(Reverse(position)) = queue.pop() {
            if last.is_some_and(|last| position <= last) {
                continue;
            }
            last = Some(position);
            let Some(changed_twin) = self.evaluate_instance(position as usize, graph, now_millis) else {
                continue;
            };
            let rule = self.instances[position as usize].0 as usize;
            changed.push((changed_twin, rule));
            let property = &self.rules[rule].property;
            self.enqueue_readers(changed_twin, |reader| reader.reads(property), queue);
        }
    }

    /// Re-computes the instances that use the clock; returns the twins whose values changed.
    pub fn evaluate_clocked(
        &self,
        graph: &mut TwinGraph,
        now_millis: Option<f64>,
    ) -> Vec<(TwinIndex, usize)> {
        let mut queue = BinaryHeap::new();
        for (position, &(rule, _)) in self.instances.iter().enumerate() {
            if self.rules[rule as usize].expression.dependencies().clock {
                queue.push(Reverse(position as u32));
            }
        }
        let mut changed = Vec::new();
        self.run_queue(&mut queue, graph, now_millis, &mut changed);
        changed
    }

    pub fn property_of_rule(&self, rule: usize) -> &str {
        &self.rules[rule].property
    }

    fn enqueue_readers(
        &self,
        twin: TwinIndex,
        relevant: impl Fn(&ComputedRule) -> bool,
        queue: &mut BinaryHeap<Reverse<u32>>,
    ) {
        for &position in self.readers.get(twin.index()).into_iter().flatten() {
            let rule = &self.rules[self.instances[position as usize].0 as usize];
            if relevant(rule) {
                queue.push(Reverse(position));
            }
        }
    }

    /// Computes one instance and stores the value; `Some(twin)` when it changed.
    fn evaluate_instance(
        &self,
        position: usize,
        graph: &mut TwinGraph,
        now_millis: Option<f64>,
    ) -> Option<TwinIndex> {
        let (rule, twin) = self.instances[position];
        let rule = &self.rules[rule as usize];
        let scope = Scope { primary: Some(twin), now_millis, ..Scope::new(graph) };
        let value: Option<Value> = rule.expression.evaluate_json(&scope);
        let current = graph.twin_at(twin)?.properties.get(&rule.property);
        if current == value.as_ref() {
            return None;
        }
        graph.set_computed(twin, &rule.property, value);
        Some(twin)
    }
}

impl ComputedRule {
    pub(crate) fn reads(&self, property: &str) -> bool {
        self.expression.dependencies().reads_property(property)
    }
}
