//! A scene in motion: the twin graph, computed properties and compiled behaviors, answering
//! every update with the style changes it causes.
//!
//! Incremental evaluation: at load each expression lists what it reads (twin roles, property
//! names, relationship names). Binding that to the graph gives, per twin, the elements and
//! computed properties that may read it. A patch re-computes only the computed properties that
//! read the touched properties (transitively, in dependency order), re-evaluates only the
//! elements that read a changed twin, and reports only styles that really changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use json_patch::PatchOperation;

use crate::color::{Color, Opacity};
use crate::computed::{ComputedPlan, ComputedRule, reach};
use crate::dtdl::ModelSet;
use crate::expression::{Expression, Scope};
use crate::graph::{GraphError, TwinGraph, TwinIndex, UpdateError};
use crate::rules::ColorRange;
use crate::rules::{RangeTest, last_match};
use crate::scene::{
    Element, ElementSelection, ModelSelection, QuerySelection, Scene, SceneError, SceneProblem, Severity,
    Visual, Widget,
};
use crate::staleness;
use crate::twin::{Relationship, Twin};

/// How an element looks, as decided by the scene's behaviors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementStyle {
    /// Mesh color from color visuals; `None` keeps the model's own materials ("no value").
    pub color: Option<Color>,
    /// False while the element's twin is not in the graph ("twin not found").
    pub twin_found: bool,
    /// Alert badges, in scene order (behaviors, then visuals).
    pub badges: Vec<Badge>,
    /// False when a visibility visual hides the element.
    pub visible: bool,
    /// Text from label visuals (the last one with a value).
    pub label: Option<String>,
    /// Ids of the layers of the behaviors that apply to the element; empty when none of them
    /// is in a layer. Layers group behaviors, not values: this changes only when a selection by
    /// model or query changes (twins or relationships replaced, created or deleted).
    pub layers: Arc<[String]>,
    /// How opaque to draw the element's meshes, from `conditions` visuals; `None` keeps the
    /// model's own opacity. An 8-bit alpha (see [`Opacity`]) so that styles compare exactly.
    pub opacity: Option<Opacity>,
}

impl ElementStyle {
    /// [`Self::opacity`] as `0.0..=1.0`.
    pub fn opacity_f32(&self) -> Option<f32> {
        self.opacity.map(Opacity::as_f32)
    }
}

impl Default for ElementStyle {
    fn default() -> Self {
        Self {
            color: None,
            twin_found: false,
            badges: Vec::new(),
            visible: true,
            label: None,
            layers: Arc::from([]),
            opacity: None,
        }
    }
}

/// An alert shown over an element: a value range with an icon matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Badge {
    pub icon: String,
    pub color: Option<Color>,
    pub label: Option<String>,
    pub severity: Option<Severity>,
}

/// A new style for one element (by index into [`Scene::elements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StyleChange {
    pub element: usize,
    pub style: ElementStyle,
}

struct CompiledRange {
    test: RangeTest,
    color: Option<Color>,
    icon: Option<String>,
    label: Option<Expression>,
    severity: Option<Severity>,
}

/// One case of a `conditions` visual, compiled.
struct CompiledCase {
    when: Expression,
    color: Option<Color>,
    opacity: Option<Opacity>,
    icon: Option<String>,
    severity: Option<Severity>,
    label: Option<Expression>,
}

/// Which elements a behavior applies to, compiled.
enum SelectionRule {
    All,
    /// Sorted element indexes.
    Fixed(Vec<u32>),
    Model(String),
    Query(Expression),
}

enum VisualRule {
    /// Evaluated on demand for the selected element ([`SceneRuntime::popover`]), never as part
    /// of the look, so it adds nothing to the incremental evaluator's work.
    Popover(Vec<CompiledWidget>),
    Ranges {
        expression: Expression,
        ranges: Vec<CompiledRange>,
        /// Some range has an icon (gives a badge); color visuals have none, and skip that pass.
        badges: bool,
    },
    Visibility {
        expression: Expression,
    },
    Label {
        text: Expression,
    },
    /// The first case whose `when` is truthy gives the look.
    Conditions(Vec<CompiledCase>),
}

struct CompiledVisual {
    behavior: usize,
    rule: VisualRule,
}

impl CompiledVisual {
    fn expressions(&self) -> Vec<&Expression> {
        match &self.rule {
            VisualRule::Ranges { expression, ranges, .. } => {
                std::iter::once(expression).chain(ranges.iter().filter_map(|r| r.label.as_ref())).collect()
            }
            VisualRule::Visibility { expression } => vec![expression],
            VisualRule::Label { text } => vec![text],
            VisualRule::Conditions(cases) => {
                cases.iter().flat_map(|case| std::iter::once(&case.when).chain(case.label.as_ref())).collect()
            }
            VisualRule::Popover(_) => vec![],
        }
    }
}

/// The part of an [`ElementStyle`] that depends on twin state.
struct Look {
    color: Option<Color>,
    twin_found: bool,
    badges: Vec<Badge>,
    visible: bool,
    label: Option<String>,
    opacity: Option<Opacity>,
}

/// What the elements' expressions read, merged (a cheap filter before per-twin lookups).
#[derive(Default)]
struct ElementReads {
    /// Few names: a scan beats hashing.
    properties: Vec<String>,
    any_property: bool,
    clock: bool,
    /// Relationship names followed by any visual, and the most `related` calls of one.
    relationships: crate::expression::Dependencies,
}

pub struct SceneRuntime {
    scene: Scene,
    graph: TwinGraph,
    models: Option<Arc<ModelSet>>,
    /// Writes are applied without type checks (see [`SceneRuntime::trust_writes`]).
    writes_trusted: bool,
    /// Per behavior: which elements it applies to, as written.
    selection_rules: Vec<SelectionRule>,
    /// Per behavior: `None` applies to all elements, else the sorted element indexes. Bound to
    /// the current graph (selections by model or query depend on the twins).
    selections: Vec<Option<Vec<u32>>>,
    /// Per element: its primary twin, layers and generation mark, together so that a
    /// re-evaluation reads one cache line of them.
    element_slots: Vec<ElementSlot>,
    visuals: Vec<CompiledVisual>,
    reads: ElementReads,
    element_by_id: HashMap<String, usize>,
    /// Layers switched off by the user; a behavior whose layers are all off applies nowhere.
    hidden_layers: HashSet<String>,
    /// Bound to the current graph: per twin index, the elements that may read it.
    element_readers: Vec<Readers>,
    computed_rules: Vec<ComputedRule>,
    computed: ComputedPlan,
    now_millis: Option<f64>,
    styles: Vec<ElementStyle>,
    /// Scratch list of computed values changed by one update (kept to not allocate per update).
    computed_changes: Vec<(TwinIndex, usize)>,
    /// The generation of [`ElementSlot::mark`]s that de-duplicates re-evaluations in one update.
    generation: u32,
    /// While on ([`Self::record_writes`]): the twins written since they were last taken.
    written_twins: Option<Vec<TwinIndex>>,
    /// Counts bindings of elements to twins ([`Self::binding_epoch`]).
    binding_epoch: u64,
}

/// What re-evaluating an element reads besides its style.
#[derive(Clone)]
struct ElementSlot {
    /// Bound to the current graph: the element's primary twin.
    twin: Option<TwinIndex>,
    /// Generation stamp: the element was re-evaluated in this generation.
    mark: u32,
    /// The element has twin aliases (then they are read from the scene).
    has_aliases: bool,
    /// The sorted layer ids of the behaviors that apply to the element.
    layers: Arc<[String]>,
}

/// The elements that may read a twin; one without an allocation (the common case).
#[derive(Clone)]
enum Readers {
    One(u32),
    Many(Box<[u32]>),
}

impl Readers {
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Self::One(element) => (i == 0).then_some(*element),
            Self::Many(elements) => elements.get(i).copied(),
        }
    }
}

fn invalid(pointer: String, message: String) -> SceneError {
    SceneError::Invalid(vec![SceneProblem { pointer, message }])
}

impl SceneRuntime {
    /// Compiles the scene's behaviors and computed properties and evaluates every element
    /// against the scene's twins.
    ///
    /// The scene's twins and relationships move into [`Self::graph`]: afterwards
    /// `scene().twins` and `scene().relationships` are empty (one copy of the state, not two).
    pub fn new(mut scene: Scene) -> Result<Self, SceneError> {
        let problems = scene.problems();
        if !problems.is_empty() {
            return Err(SceneError::Invalid(problems));
        }
        let models = if scene.models.is_empty() {
            None
        } else {
            let models = ModelSet::from_documents(&scene.models).map_err(|errors| {
                SceneError::Invalid(
                    errors
                        .into_iter()
                        .map(|e| SceneProblem {
                            pointer: format!("/models{}", e.document_pointer),
                            message: e.to_string(),
                        })
                        .collect(),
                )
            })?;
            Some(Arc::new(models))
        };
        let mut selection_rules = Vec::new();
        let mut visuals = Vec::new();
        for (b, behavior) in scene.behaviors.iter().enumerate() {
            selection_rules.push(match &behavior.elements {
                ElementSelection::All(_) => SelectionRule::All,
                ElementSelection::List(ids) => {
                    let mut selected: Vec<u32> = scene
                        .elements
                        .iter()
                        .enumerate()
                        .filter(|(_, element)| ids.contains(&element.id))
                        .map(|(i, _)| i as u32)
                        .collect();
                    selected.sort_unstable();
                    SelectionRule::Fixed(selected)
                }
                ElementSelection::Model(ModelSelection { model }) => SelectionRule::Model(model.clone()),
                ElementSelection::Query(QuerySelection { query }) => SelectionRule::Query(
                    Expression::parse(query)
                        .map_err(|e| invalid(format!("/behaviors/{b}/elements/query"), e.to_string()))?,
                ),
            });
            for (v, visual) in behavior.visuals.iter().enumerate() {
                let at = format!("/behaviors/{b}/visuals/{v}");
                visuals.push(CompiledVisual { behavior: b, rule: compile_visual(visual, &at)? });
            }
        }
        let mut reads = ElementReads::default();
        for visual in &visuals {
            for expression in visual.expressions() {
                let dependencies = expression.dependencies();
                for name in &dependencies.properties {
                    if !reads.properties.contains(name) {
                        reads.properties.push(name.clone());
                    }
                }
                reads.any_property |= dependencies.any_property;
                reads.clock |= dependencies.clock;
                let merged = &mut reads.relationships;
                for name in &dependencies.relationships {
                    if !merged.relationships.contains(name) {
                        merged.relationships.push(name.clone());
                    }
                }
                merged.any_relationship |= dependencies.any_relationship;
                merged.related_calls = merged.related_calls.max(dependencies.related_calls);
            }
        }
        let mut computed_rules = Vec::new();
        for (c, definition) in scene.computed.iter().enumerate() {
            let rule = ComputedRule::compile(definition)
                .map_err(|e| invalid(format!("/computed/{c}/expression"), e.to_string()))?;
            computed_rules.push(rule);
        }
        let element_by_id = scene.elements.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        let mut graph =
            TwinGraph::new(std::mem::take(&mut scene.twins), std::mem::take(&mut scene.relationships));
        if let Some(models) = &models {
            graph.set_models(models.clone());
        }
        graph.track_numbers(tracked_names(&reads, &computed_rules));
        let computed = ComputedPlan::new(computed_rules.clone(), &graph)
            .map_err(|cycle| invalid("/computed".into(), cycle))?;
        let mut runtime = Self {
            styles: vec![ElementStyle::default(); scene.elements.len()],
            element_slots: scene
                .elements
                .iter()
                .map(|element| ElementSlot {
                    twin: None,
                    mark: 0,
                    has_aliases: !element.aliases.is_empty(),
                    layers: Arc::from([]),
                })
                .collect(),
            selections: Vec::new(),
            selection_rules,
            generation: 0,
            scene,
            graph,
            models,
            writes_trusted: false,
            visuals,
            reads,
            element_by_id,
            hidden_layers: HashSet::new(),
            element_readers: Vec::new(),
            computed_rules,
            computed,
            computed_changes: Vec::new(),
            now_millis: None,
            written_twins: None,
            binding_epoch: 0,
        };
        runtime.bind();
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

    /// The first element, in scene order, whose primary twin is `twin`; found among the
    /// twin's readers, not by a walk over every element.
    pub fn element_of_twin(&self, twin: &str) -> Option<usize> {
        self.elements_bound_to(self.graph.twin_index(twin)?).next()
    }

    /// The elements whose primary twin is `twin`, in scene order: those of its readers that
    /// are bound to it (the others read it through a relationship or an alias).
    fn elements_bound_to(&self, twin: TwinIndex) -> impl Iterator<Item = usize> + '_ {
        let readers = self.element_readers.get(twin.index());
        (0..).map_while(move |i| readers?.get(i)).map(|element| element as usize).filter(move |&element| {
            self.element_slots.get(element).is_some_and(|slot| slot.twin == Some(twin))
        })
    }

    /// An element's primary twin, by the index it was bound to (no id to look up: callers
    /// that go through every element, like the staleness check, do a million of these at the
    /// largest).
    pub fn element_twin(&self, element: usize) -> Option<&Twin> {
        self.graph.twin_at(self.element_slots.get(element)?.twin?)
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

    /// Computed properties left without a value because they depend on each other in a cycle
    /// (possible only after a live snapshot; a scene with a cycle does not load).
    pub fn computed_cycle(&self) -> Option<&str> {
        self.computed.cycle()
    }

    /// Applies writes without type-checking them against the models, which stay known (units,
    /// selections by model). For a viewer: its server has accepted every write it forwards, and
    /// refusing one would only make the viewer's copy diverge.
    pub fn trust_writes(&mut self) {
        self.writes_trusted = true;
        self.graph.trust_writes();
    }

    /// Replaces all twin state (a live snapshot) and returns the styles that changed.
    pub fn replace_twins(&mut self, twins: Vec<Twin>, relationships: Vec<Relationship>) -> Vec<StyleChange> {
        let trusted = self.writes_trusted;
        self.graph = TwinGraph::new(twins, relationships);
        if let Some(models) = &self.models {
            self.graph.set_models(models.clone());
        }
        if trusted {
            self.graph.trust_writes();
        }
        self.graph.track_numbers(tracked_names(&self.reads, &self.computed_rules));
        self.computed = ComputedPlan::build(self.computed_rules.clone(), &self.graph);
        self.bind();
        self.evaluate_all()
    }

    /// Creates a twin and returns the styles that changed (its elements find it, and
    /// selections by model or query are evaluated again).
    pub fn add_twin(&mut self, twin: Twin) -> Result<Vec<StyleChange>, GraphError> {
        self.graph.add_twin(twin)?;
        Ok(self.rebind_after_topology_change())
    }

    /// Deletes a twin (and its relationships) and returns the styles that changed.
    pub fn remove_twin(&mut self, id: &str) -> Result<Vec<StyleChange>, GraphError> {
        self.graph.remove_twin(id)?;
        Ok(self.rebind_after_topology_change())
    }

    /// Whether behavior `behavior` (index into [`Scene::behaviors`]) applies to `element` by
    /// its selection, bound to the current twins (layers switched off do not matter here).
    pub fn behavior_applies(&self, behavior: usize, element: usize) -> bool {
        self.selections.get(behavior).is_some_and(|selection| selects(selection, element))
    }

    /// Applies a JSON Patch to one twin and returns the styles that changed.
    pub fn apply_patch(
        &mut self,
        twin: &str,
        patch: &[PatchOperation],
        timestamp: &str,
    ) -> Result<Vec<StyleChange>, UpdateError> {
        let mut changes = Vec::new();
        self.apply_patch_into(twin, patch, timestamp, &mut changes)?;
        Ok(changes)
    }

    /// [`Self::apply_patch`] appending the changed styles to `changes`, which the caller keeps
    /// from one update to the next: a live stream then allocates nothing per update. On error
    /// nothing is appended.
    pub fn apply_patch_into(
        &mut self,
        twin: &str,
        patch: &[PatchOperation],
        timestamp: &str,
        changes: &mut Vec<StyleChange>,
    ) -> Result<(), UpdateError> {
        let index = self.graph.twin_index(twin).ok_or_else(|| UpdateError::UnknownTwin(twin.to_owned()))?;
        self.start_reading_first_reader(index);
        let touched = self.graph.apply_patch_borrowed(index, patch, timestamp)?;
        if let Some(written) = &mut self.written_twins {
            written.push(index);
        }
        let mut computed_changes = std::mem::take(&mut self.computed_changes);
        computed_changes.clear();
        self.computed.propagate_into(
            &mut self.graph,
            index,
            |rule| touched.any(|name| rule.reads(name)),
            self.now_millis,
            &mut computed_changes,
        );
        self.next_generation();
        if touched.any(|name| self.element_reads(name)) {
            self.reevaluate_readers(index, changes);
        }
        for &(twin, rule) in &computed_changes {
            if self.element_reads(self.computed.property_of_rule(rule)) {
                self.reevaluate_readers(twin, changes);
            }
        }
        self.computed_changes = computed_changes;
        Ok(())
    }

    /// Starts or stops recording which twins live writes touch ([`Self::take_written_elements`]):
    /// a viewer that marks stale data follows the writes instead of looking at every element's
    /// twin on each tick. Off by default (nobody would take what is recorded).
    pub fn record_writes(&mut self, on: bool) {
        match (on, self.written_twins.is_some()) {
            (true, false) => self.written_twins = Some(Vec::new()),
            (false, true) => self.written_twins = None,
            _ => {}
        }
    }

    /// Changes whenever elements are bound to twins anew (a snapshot, a twin created or
    /// deleted). Writes recorded before are dropped then: whoever follows them must look at
    /// every element again.
    pub fn binding_epoch(&self) -> u64 {
        self.binding_epoch
    }

    /// Takes the writes recorded since the last call (see [`Self::record_writes`]): appends each
    /// element whose primary twin was written, once, with that twin's newest write time
    /// ([`staleness::last_update_millis`]), and forgets them.
    pub fn take_written_elements(&mut self, out: &mut Vec<(usize, Option<f64>)>) {
        let Some(mut written) = self.written_twins.take() else { return };
        written.sort_unstable();
        written.dedup();
        let mut times = staleness::UpdateTimes::default();
        for &twin in &written {
            let newest = self.graph.twin_at(twin).and_then(|twin| times.newest(twin));
            out.extend(self.elements_bound_to(twin).map(|element| (element, newest)));
        }
        written.clear();
        self.written_twins = Some(written);
    }

    /// Sets the clock that `age(...)` measures against (milliseconds since the Unix epoch) and
    /// returns the styles that changed.
    pub fn set_now(&mut self, now_millis: f64) -> Vec<StyleChange> {
        self.now_millis = Some(now_millis);
        let computed_changes = self.computed.evaluate_clocked(&mut self.graph, self.now_millis);
        let mut changes = Vec::new();
        self.next_generation();
        if self.reads.clock {
            for element in 0..self.styles.len() {
                self.reevaluate_once(element, &mut changes);
            }
        }
        for (twin, _) in computed_changes {
            self.reevaluate_readers(twin, &mut changes);
        }
        changes
    }

    /// Adds a relationship and returns the styles that changed.
    pub fn add_relationship(&mut self, relationship: Relationship) -> Result<Vec<StyleChange>, GraphError> {
        self.graph.add_relationship(relationship)?;
        Ok(self.rebind_after_topology_change())
    }

    /// Removes a relationship and returns the styles that changed.
    pub fn remove_relationship(&mut self, source: &str, id: &str) -> Result<Vec<StyleChange>, GraphError> {
        self.graph.remove_relationship(source, id)?;
        Ok(self.rebind_after_topology_change())
    }

    /// Switches a layer on or off and returns the styles that changed. A behavior in several
    /// layers applies while any of them is on (as in 3D Scenes); behaviors in no layer always
    /// apply. Unknown layer ids are ignored.
    pub fn set_layer_visible(&mut self, layer: &str, visible: bool) -> Vec<StyleChange> {
        let changed = if visible {
            self.hidden_layers.remove(layer)
        } else {
            self.hidden_layers.insert(layer.to_owned())
        };
        if !changed {
            return Vec::new();
        }
        let mut changes = Vec::new();
        self.next_generation();
        for element in 0..self.styles.len() {
            self.reevaluate_once(element, &mut changes);
        }
        changes
    }

    /// Whether the user has not switched this layer off.
    pub fn layer_visible(&self, layer: &str) -> bool {
        !self.hidden_layers.contains(layer)
    }

    fn behavior_shown(&self, behavior: usize) -> bool {
        let layers = &self.scene.behaviors[behavior].layers;
        self.hidden_layers.is_empty()
            || layers.is_empty()
            || layers.iter().any(|layer| !self.hidden_layers.contains(layer))
    }

    fn rebind_after_topology_change(&mut self) -> Vec<StyleChange> {
        self.computed = ComputedPlan::build(self.computed_rules.clone(), &self.graph);
        self.bind();
        self.evaluate_all()
    }

    fn element_reads(&self, property: &str) -> bool {
        self.reads.any_property || self.reads.properties.iter().any(|name| name == property)
    }

    /// Resolves elements to twins, evaluates selections by model and query, and builds the
    /// per-twin reader lists.
    fn bind(&mut self) {
        // Twin indexes recorded before mean nothing after: whoever follows writes starts over.
        self.binding_epoch += 1;
        if let Some(written) = &mut self.written_twins {
            written.clear();
        }
        for (slot, element) in self.element_slots.iter_mut().zip(&self.scene.elements) {
            slot.twin = self.graph.twin_index(&element.twin);
        }
        self.select();
        let mut readers: Vec<Vec<u32>> = Vec::new();
        let mut add = |twin: TwinIndex, element: usize| {
            let slot = twin.index();
            if readers.len() <= slot {
                readers.resize(slot + 1, Vec::new());
            }
            if readers[slot].last() != Some(&(element as u32)) {
                readers[slot].push(element as u32);
            }
        };
        let mut reached = Vec::new();
        for (element, definition) in self.scene.elements.iter().enumerate() {
            let roots = self.element_slots[element]
                .twin
                .into_iter()
                .chain(definition.aliases.values().filter_map(|id| self.graph.twin_index(id)));
            for root in roots {
                reached.clear();
                reach(&self.graph, root, &self.reads.relationships, &mut reached);
                for &twin in &reached {
                    add(twin, element);
                }
            }
        }
        self.element_readers = readers
            .into_iter()
            .map(|elements| match elements[..] {
                [element] => Readers::One(element),
                _ => Readers::Many(elements.into()),
            })
            .collect();
    }

    /// Binds each behavior's selection to the current twins, and each element's layers to the
    /// behaviors that apply to it. Needs the elements' twins bound.
    fn select(&mut self) {
        let mut selections = Vec::with_capacity(self.selection_rules.len());
        for rule in &self.selection_rules {
            selections.push(match rule {
                SelectionRule::All => None,
                SelectionRule::Fixed(selected) => Some(selected.clone()),
                SelectionRule::Model(model) => Some(
                    (0..self.scene.elements.len())
                        .filter(|&element| {
                            self.element_slots[element]
                                .twin
                                .and_then(|twin| self.graph.twin_at(twin))
                                .is_some_and(|twin| {
                                    twin.model == *model
                                        || self
                                            .models
                                            .as_ref()
                                            .is_some_and(|models| models.is_a(&twin.model, model))
                                })
                        })
                        .map(|element| element as u32)
                        .collect(),
                ),
                SelectionRule::Query(query) => Some(
                    (0..self.scene.elements.len())
                        .filter(|&element| {
                            self.element_scope(element)
                                .and_then(|scope| query.evaluate(&scope).map(|value| value.truthy()))
                                .unwrap_or(false)
                        })
                        .map(|element| element as u32)
                        .collect(),
                ),
            });
        }
        self.selections = selections;
        for element in 0..self.scene.elements.len() {
            let mut layers: Vec<&String> = self
                .scene
                .behaviors
                .iter()
                .enumerate()
                .filter(|(b, _)| selects(&self.selections[*b], element))
                .flat_map(|(_, behavior)| behavior.layers.iter())
                .collect();
            layers.sort_unstable();
            layers.dedup();
            let current = &self.element_slots[element].layers;
            let same = current.len() == layers.len() && current.iter().zip(&layers).all(|(a, b)| a == *b);
            if !same {
                let layers = layers.into_iter().cloned().collect::<Vec<_>>().into();
                self.element_slots[element].layers = layers;
            }
        }
    }

    fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.element_slots.iter_mut().for_each(|slot| slot.mark = 0);
            self.generation = 1;
        }
    }

    /// Loads the first reader's slot and style of a twin about to be written, so that they are
    /// on their way from memory while the patch is applied. A live update is bound by memory
    /// latency, not instructions: these two loads missed the cache one after the other after
    /// the write, a quarter of an update's time (perf, 10^4 twins).
    #[inline]
    fn start_reading_first_reader(&self, twin: TwinIndex) {
        let Some(element) = self.element_readers.get(twin.index()).and_then(|readers| readers.get(0)) else {
            return;
        };
        let element = element as usize;
        if let (Some(slot), Some(style)) = (self.element_slots.get(element), self.styles.get(element)) {
            std::hint::black_box((slot.mark, style.visible));
        }
    }

    fn reevaluate_readers(&mut self, twin: TwinIndex, changes: &mut Vec<StyleChange>) {
        // Indexes are copied out one by one because evaluation borrows `self`.
        let mut i = 0;
        while let Some(element) = self.element_readers.get(twin.index()).and_then(|readers| readers.get(i)) {
            self.reevaluate_once(element as usize, changes);
            i += 1;
        }
    }

    fn reevaluate_once(&mut self, element: usize, changes: &mut Vec<StyleChange>) {
        if self.element_slots[element].mark == self.generation {
            return;
        }
        self.element_slots[element].mark = self.generation;
        let look = self.evaluate(element);
        let current = &mut self.styles[element];
        let layers = &self.element_slots[element].layers;
        let same = current.color == look.color
            && current.twin_found == look.twin_found
            && current.visible == look.visible
            && current.badges == look.badges
            && current.label == look.label
            && current.opacity == look.opacity
            && current.layers == *layers;
        if !same {
            current.color = look.color;
            current.twin_found = look.twin_found;
            current.visible = look.visible;
            current.badges = look.badges;
            current.label = look.label;
            current.opacity = look.opacity;
            // Usually the same list: then no reference count changes hands.
            if !Arc::ptr_eq(&current.layers, layers) {
                current.layers = layers.clone();
            }
            changes.push(StyleChange { element, style: current.clone() });
        }
    }

    fn evaluate_all(&mut self) -> Vec<StyleChange> {
        self.computed.evaluate_all(&mut self.graph, self.now_millis);
        let mut changes = Vec::new();
        self.next_generation();
        for element in 0..self.styles.len() {
            self.reevaluate_once(element, &mut changes);
        }
        changes
    }

    /// The expression scope of an element: its primary twin and aliases. `None` while the
    /// primary twin is not in the graph.
    fn element_scope(&self, element: usize) -> Option<Scope<'_>> {
        let slot = &self.element_slots[element];
        let primary = slot.twin?;
        Some(Scope {
            primary: Some(primary),
            aliases: slot.has_aliases.then(|| &self.scene.elements[element].aliases),
            now_millis: self.now_millis,
            ..Scope::new(&self.graph)
        })
    }

    /// The popover widgets of an element with their current values, in scene order, from the
    /// behaviors that apply to it and are shown. Empty while the element's twin is missing.
    pub fn popover(&self, element: usize) -> Vec<WidgetValue> {
        let Some(scope) = self.element_scope(element) else { return Vec::new() };
        let twin = &self.scene.elements[element].twin;
        let mut widgets = Vec::new();
        for visual in &self.visuals {
            let VisualRule::Popover(compiled) = &visual.rule else { continue };
            if !selects(&self.selections[visual.behavior], element) || !self.behavior_shown(visual.behavior) {
                continue;
            }
            widgets.extend(compiled.iter().map(|widget| widget.evaluate(&scope, twin)));
        }
        widgets
    }

    /// The element's look by the current state (all of [`ElementStyle`] but the fixed layers).
    fn evaluate(&self, element: usize) -> Look {
        let mut style = Look {
            color: None,
            twin_found: false,
            badges: Vec::new(),
            visible: true,
            label: None,
            opacity: None,
        };
        let Some(scope) = self.element_scope(element) else { return style };
        style.twin_found = true;
        for visual in &self.visuals {
            if !selects(&self.selections[visual.behavior], element) || !self.behavior_shown(visual.behavior) {
                continue;
            }
            match &visual.rule {
                VisualRule::Ranges { expression, ranges, badges } => {
                    let Some(value) = expression.evaluate(&scope) else { continue };
                    let mesh =
                        last_match(ranges, |r| &r.test, |r| r.icon.is_none() && r.color.is_some(), &value);
                    if let Some(range) = mesh {
                        style.color = range.color;
                    }
                    if !badges {
                        continue;
                    }
                    let badge = last_match(ranges, |r| &r.test, |r| r.icon.is_some(), &value);
                    if let Some(CompiledRange { icon: Some(icon), color, label, severity, .. }) = badge {
                        let label = label.as_ref().and_then(|label| label.evaluate_text(&scope));
                        style.badges.push(Badge {
                            icon: icon.clone(),
                            color: *color,
                            label,
                            severity: *severity,
                        });
                    }
                }
                VisualRule::Conditions(cases) => {
                    let Some(case) = cases
                        .iter()
                        .find(|case| case.when.evaluate(&scope).is_some_and(|value| value.truthy()))
                    else {
                        continue;
                    };
                    let label = case.label.as_ref().and_then(|label| label.evaluate_text(&scope));
                    if let Some(icon) = &case.icon {
                        style.badges.push(Badge {
                            icon: icon.clone(),
                            color: case.color,
                            label,
                            severity: case.severity,
                        });
                    } else {
                        if case.color.is_some() {
                            style.color = case.color;
                        }
                        if label.is_some() {
                            style.label = label;
                        }
                    }
                    if case.opacity.is_some() {
                        style.opacity = case.opacity;
                    }
                }
                VisualRule::Visibility { expression } => {
                    if expression.evaluate(&scope).is_some_and(|value| !value.truthy()) {
                        style.visible = false;
                    }
                }
                VisualRule::Popover(_) => {}
                VisualRule::Label { text } => {
                    if let Some(text) = text.evaluate_text(&scope) {
                        style.label = Some(text);
                    }
                }
            }
        }
        style
    }
}

/// The properties whose numbers the graph keeps in columns: those the scene's expressions read.
fn tracked_names<'r>(reads: &'r ElementReads, rules: &'r [ComputedRule]) -> impl Iterator<Item = &'r str> {
    let computed = rules.iter().flat_map(|rule| rule.expression.dependencies().properties.iter());
    reads.properties.iter().chain(computed).map(String::as_str)
}

fn selects(selection: &Option<Vec<u32>>, element: usize) -> bool {
    selection.as_ref().is_none_or(|selected| selected.binary_search(&(element as u32)).is_ok())
}

fn compile_visual(visual: &Visual, at: &str) -> Result<VisualRule, SceneError> {
    let parse = |source: &str, field: &str| {
        Expression::parse(source).map_err(|e| invalid(format!("{at}/{field}"), e.to_string()))
    };
    Ok(match visual {
        Visual::Color { expression, ranges } => VisualRule::Ranges {
            expression: parse(expression, "expression")?,
            ranges: ranges
                .iter()
                .map(|range| CompiledRange {
                    test: RangeTest::Numeric { min: range.min, max: range.max },
                    color: Some(range.color),
                    icon: None,
                    label: None,
                    severity: None,
                })
                .collect(),
            badges: false,
        },
        Visual::ValueRanges { expression, kind, ranges } => {
            let mut compiled = Vec::new();
            for (r, range) in ranges.iter().enumerate() {
                let test = RangeTest::new(*kind, &range.values)
                    .map_err(|message| invalid(format!("{at}/ranges/{r}/values"), message))?;
                let label = match &range.label {
                    Some(label) => Some(
                        Expression::parse_text(label)
                            .map_err(|e| invalid(format!("{at}/ranges/{r}/label"), e.to_string()))?,
                    ),
                    None => None,
                };
                compiled.push(CompiledRange {
                    test,
                    color: range.color,
                    icon: range.icon.clone(),
                    label,
                    severity: range.severity,
                });
            }
            let badges = compiled.iter().any(|range| range.icon.is_some());
            VisualRule::Ranges { expression: parse(expression, "expression")?, ranges: compiled, badges }
        }
        Visual::Visibility { expression } => {
            VisualRule::Visibility { expression: parse(expression, "expression")? }
        }
        Visual::Label { text } => VisualRule::Label {
            text: Expression::parse_text(text).map_err(|e| invalid(format!("{at}/text"), e.to_string()))?,
        },
        Visual::Conditions { cases } => {
            let mut compiled = Vec::with_capacity(cases.len());
            for (c, case) in cases.iter().enumerate() {
                let when = Expression::parse(&case.when)
                    .map_err(|e| invalid(format!("{at}/cases/{c}/when"), e.to_string()))?;
                let label = match &case.label {
                    Some(label) => Some(
                        Expression::parse_text(label)
                            .map_err(|e| invalid(format!("{at}/cases/{c}/label"), e.to_string()))?,
                    ),
                    None => None,
                };
                compiled.push(CompiledCase {
                    when,
                    color: case.color,
                    opacity: case.opacity.map(Opacity::from_f64),
                    icon: case.icon.clone(),
                    severity: case.severity,
                    label,
                });
            }
            VisualRule::Conditions(compiled)
        }
        Visual::Popover { widgets } => VisualRule::Popover(
            widgets
                .iter()
                .enumerate()
                .map(|(w, widget)| CompiledWidget::compile(widget, &format!("{at}/widgets/{w}")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A popover widget with its expressions parsed.
struct CompiledWidget {
    widget: Widget,
    expression: Option<Expression>,
}

impl CompiledWidget {
    fn compile(widget: &Widget, at: &str) -> Result<Self, SceneError> {
        let expression = match widget {
            Widget::Value { expression, .. } | Widget::Gauge { expression, .. } => Some(
                Expression::parse(expression)
                    .map_err(|e| invalid(format!("{at}/expression"), e.to_string()))?,
            ),
            Widget::Link { url, .. } => {
                Some(Expression::parse_text(url).map_err(|e| invalid(format!("{at}/url"), e.to_string()))?)
            }
            Widget::Trend { .. } => None,
        };
        Ok(Self { widget: widget.clone(), expression })
    }

    fn evaluate(&self, scope: &Scope<'_>, twin: &str) -> WidgetValue {
        let value = || self.expression.as_ref().and_then(|e| e.evaluate(scope)).and_then(|v| v.to_json());
        match &self.widget {
            Widget::Value { label, units, .. } => {
                WidgetValue::Value { label: label.clone(), value: value(), units: units.clone() }
            }
            Widget::Gauge { label, min, max, units, ranges, .. } => WidgetValue::Gauge {
                label: label.clone(),
                value: value().and_then(|v| v.as_f64()),
                min: *min,
                max: *max,
                units: units.clone(),
                ranges: ranges.clone(),
            },
            Widget::Link { label, .. } => WidgetValue::Link {
                label: label.clone(),
                url: self.expression.as_ref().and_then(|e| e.evaluate_text(scope)),
            },
            Widget::Trend { label, property, units } => WidgetValue::Trend {
                label: label.clone(),
                twin: twin.to_owned(),
                property: property.clone(),
                units: units.clone(),
            },
        }
    }
}

/// A popover widget with its current value; `None` values are "no value" (shown as such).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WidgetValue {
    Value {
        label: String,
        value: Option<serde_json::Value>,
        units: Option<String>,
    },
    Gauge {
        label: String,
        value: Option<f64>,
        min: f64,
        max: f64,
        units: Option<String>,
        ranges: Vec<ColorRange>,
    },
    Link {
        label: String,
        url: Option<String>,
    },
    Trend {
        label: String,
        twin: String,
        property: String,
        units: Option<String>,
    },
}

#[cfg(test)]
mod tests;
