//! `TopologyBuilder`: declare spouts and bolts, wire them with groupings, validate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::error::TopologyError;
use super::grouping::{Grouping, Input, StreamRef};
use super::limits::{MAX_CONNECTIONS, MAX_PARALLELISM, MAX_TASKS};
use crate::component::{Bolt, BoltFactory, OutputDeclarer, Spout, SpoutFactory};
use crate::sync::lock;

#[derive(Clone)]
pub enum ComponentKind {
    Spout(SpoutFactory),
    Bolt(BoltFactory),
}

/// One declared component.
#[derive(Clone)]
pub struct ComponentDef {
    pub name: String,
    pub kind: ComponentKind,
    pub parallelism: usize,
    pub inputs: Vec<Input>,
    pub outputs: OutputDeclarer,
    /// Something a layer above gives the component's tasks (see
    /// [`TaskContext::extension`](crate::component::TaskContext::extension)).
    pub extension: Option<crate::component::Extension>,
    /// A spout's `event_time` option: where the time of its messages is.
    pub event_time: Option<crate::time::event_time::EventTimeConfig>,
}

impl ComponentDef {
    pub fn is_spout(&self) -> bool {
        matches!(self.kind, ComponentKind::Spout(_))
    }
}

/// Declares a topology. Errors are reported by `build()`.
pub struct TopologyBuilder {
    name: String,
    components: Vec<ComponentDef>,
}

impl TopologyBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        TopologyBuilder {
            name: name.into(),
            components: Vec::new(),
        }
    }

    /// Adds a spout; each task gets a clone of `spout`.
    pub fn spout<S: Spout + Clone>(
        &mut self,
        name: &str,
        spout: S,
        parallelism: usize,
    ) -> &mut Self {
        let proto = std::sync::Mutex::new(spout);
        let factory: SpoutFactory = Arc::new(move || Box::new(lock(&proto).clone()));
        self.spout_factory(name, factory, parallelism)
    }

    /// Adds a spout built by `factory` for each task.
    pub fn spout_factory(
        &mut self,
        name: &str,
        factory: SpoutFactory,
        parallelism: usize,
    ) -> &mut Self {
        let mut outputs = OutputDeclarer::default();
        factory().declare_outputs(&mut outputs);
        self.components.push(ComponentDef {
            name: name.to_string(),
            kind: ComponentKind::Spout(factory),
            parallelism,
            inputs: Vec::new(),
            outputs,
            extension: None,
            event_time: None,
        });
        self
    }

    /// Adds a bolt; each task gets a clone of `bolt`. Follow with one grouping per input.
    pub fn bolt<B: Bolt + Clone>(
        &mut self,
        name: &str,
        bolt: B,
        parallelism: usize,
    ) -> BoltDeclarer<'_> {
        let proto = std::sync::Mutex::new(bolt);
        let factory: BoltFactory = Arc::new(move || Box::new(lock(&proto).clone()));
        self.bolt_factory(name, factory, parallelism)
    }

    /// Adds a bolt built by `factory` for each task.
    pub fn bolt_factory(
        &mut self,
        name: &str,
        factory: BoltFactory,
        parallelism: usize,
    ) -> BoltDeclarer<'_> {
        let mut outputs = OutputDeclarer::default();
        factory().declare_outputs(&mut outputs);
        self.components.push(ComponentDef {
            name: name.to_string(),
            kind: ComponentKind::Bolt(factory),
            parallelism,
            inputs: Vec::new(),
            outputs,
            extension: None,
            event_time: None,
        });
        let idx = self.components.len() - 1;
        BoltDeclarer {
            def: &mut self.components[idx],
        }
    }

    /// Validates and returns the topology.
    /// Gives a component's tasks something (see [`ComponentDef::extension`]).
    pub fn set_extension(&mut self, name: &str, ext: crate::component::Extension) -> &mut Self {
        if let Some(c) = self.components.iter_mut().find(|c| c.name == name) {
            c.extension = Some(ext);
        }
        self
    }

    /// Spout `name` assigns event time as `cfg` says (see docs/event-time.md).
    pub fn set_event_time(
        &mut self,
        name: &str,
        cfg: crate::time::event_time::EventTimeConfig,
    ) -> &mut Self {
        if let Some(c) = self.components.iter_mut().find(|c| c.name == name) {
            c.event_time = Some(cfg);
        }
        self
    }

    pub fn build(self) -> Result<Topology, TopologyError> {
        Topology::new(self.name, self.components)
    }
}

/// Adds the inputs of the bolt just declared.
pub struct BoltDeclarer<'a> {
    def: &'a mut ComponentDef,
}

impl BoltDeclarer<'_> {
    pub fn grouping(self, source: impl Into<StreamRef>, grouping: Grouping) -> Self {
        self.input(source, grouping, false)
    }

    /// An input with its grouping, crossing processes when `distributed` (see
    /// [`Input::distributed`]).
    pub fn input(
        self,
        source: impl Into<StreamRef>,
        grouping: Grouping,
        distributed: bool,
    ) -> Self {
        self.def.inputs.push(Input {
            source: source.into(),
            grouping,
            distributed,
        });
        self
    }

    /// A fields grouping across processes: a key goes to one partition of the repartition
    /// topic, so to the one instance that holds that partition (and its state).
    pub fn fields_distributed<I, S>(self, source: impl Into<StreamRef>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let fs = fields.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.input(source, Grouping::Fields(fs), true)
    }

    /// A global grouping across processes: one instance of the application at a time
    /// receives everything (through a one-partition topic); another takes over when it
    /// dies.
    pub fn global_distributed(self, source: impl Into<StreamRef>) -> Self {
        self.input(source, Grouping::Global, true)
    }

    pub fn shuffle(self, source: impl Into<StreamRef>) -> Self {
        self.grouping(source, Grouping::Shuffle)
    }

    pub fn fields<I, S>(self, source: impl Into<StreamRef>, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let fs = fields.into_iter().map(|s| s.as_ref().to_string()).collect();
        self.grouping(source, Grouping::Fields(fs))
    }

    pub fn all(self, source: impl Into<StreamRef>) -> Self {
        self.grouping(source, Grouping::All)
    }

    pub fn global(self, source: impl Into<StreamRef>) -> Self {
        self.grouping(source, Grouping::Global)
    }

    pub fn direct(self, source: impl Into<StreamRef>) -> Self {
        self.grouping(source, Grouping::Direct)
    }

    pub fn local_or_shuffle(self, source: impl Into<StreamRef>) -> Self {
        self.grouping(source, Grouping::LocalOrShuffle)
    }
}

/// A validated topology: a DAG of components.
#[derive(Clone)]
pub struct Topology {
    pub(crate) name: String,
    pub(crate) components: Vec<ComponentDef>,
}

impl Topology {
    fn new(name: String, components: Vec<ComponentDef>) -> Result<Self, TopologyError> {
        let mut seen = HashSet::new();
        for c in &components {
            if !seen.insert(c.name.as_str()) {
                return Err(TopologyError::DuplicateName(c.name.clone()));
            }
            if c.parallelism == 0 {
                return Err(TopologyError::ZeroParallelism(c.name.clone()));
            }
            if c.parallelism > MAX_PARALLELISM {
                return Err(TopologyError::TooManyTasks {
                    component: c.name.clone(),
                    parallelism: c.parallelism,
                });
            }
        }
        let total: usize = components.iter().map(|c| c.parallelism).sum();
        if total > MAX_TASKS
            && let Some(largest) = components
                .iter()
                .reduce(|a, c| if c.parallelism > a.parallelism { c } else { a })
        {
            return Err(TopologyError::TooManyTasksInAll {
                total,
                largest: largest.name.clone(),
                parallelism: largest.parallelism,
            });
        }
        if !components.iter().any(ComponentDef::is_spout) {
            return Err(TopologyError::NoSpouts);
        }
        for c in &components {
            if let Some(et) = &c.event_time {
                let fields = c.outputs.fields_of(crate::data::tuple::DEFAULT_STREAM);
                let known = fields.is_some_and(|f| f.contains(&et.field));
                if !known && et.field != crate::task::source_time::RECORD_TIMESTAMP {
                    return Err(TopologyError::UnknownTimeField {
                        spout: c.name.clone(),
                        field: et.field.clone(),
                        declared: fields
                            .map_or_else(|| "no default stream".into(), |f| f.to_string()),
                    });
                }
            }
        }
        let by_name: HashMap<&str, &ComponentDef> =
            components.iter().map(|c| (c.name.as_str(), c)).collect();
        for c in components.iter().filter(|c| !c.is_spout()) {
            if c.inputs.is_empty() {
                return Err(TopologyError::NoInputs(c.name.clone()));
            }
            for input in &c.inputs {
                check_input(c, input, &by_name)?;
            }
        }
        check_acyclic(&components)?;
        check_connections(&components, &by_name)?;
        Ok(Topology { name, components })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn components(&self) -> &[ComponentDef] {
        &self.components
    }

    pub fn component(&self, name: &str) -> Option<&ComponentDef> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Every subscription to `component`'s `stream`: the subscriber and its input.
    pub fn subscriptions<'a>(
        &'a self,
        component: &'a str,
        stream: &'a str,
    ) -> impl Iterator<Item = (&'a ComponentDef, &'a Input)> + 'a {
        self.components.iter().flat_map(move |c| {
            c.inputs
                .iter()
                .filter(move |i| i.source.component == component && i.source.stream == stream)
                .map(move |i| (c, i))
        })
    }

    /// The topology as a Graphviz DOT graph.
    pub fn to_dot(&self) -> String {
        let mut s = format!("digraph \"{}\" {{\n  rankdir=LR;\n", self.name);
        for c in &self.components {
            let shape = if c.is_spout() { "invhouse" } else { "box" };
            s.push_str(&format!(
                "  \"{}\" [shape={shape}, label=\"{} x{}\"];\n",
                c.name, c.name, c.parallelism
            ));
        }
        for c in &self.components {
            for i in &c.inputs {
                s.push_str(&format!(
                    "  \"{}\" -> \"{}\" [label=\"{}{}\"];\n",
                    i.source.component,
                    c.name,
                    if i.source.stream == crate::data::tuple::DEFAULT_STREAM {
                        String::new()
                    } else {
                        format!("{}: ", i.source.stream)
                    },
                    i.grouping
                ));
            }
        }
        s.push_str("}\n");
        s
    }

    /// Task ids per component, in declaration order starting at 1.
    pub(crate) fn task_ids(&self) -> BTreeMap<String, Vec<u32>> {
        let mut next = 1u32;
        let mut out = BTreeMap::new();
        for c in &self.components {
            let ids: Vec<u32> = (next..next + c.parallelism as u32).collect();
            next += c.parallelism as u32;
            out.insert(c.name.clone(), ids);
        }
        out
    }
}

/// Refuses more connections between tasks than [`MAX_CONNECTIONS`].
fn check_connections(
    components: &[ComponentDef],
    by_name: &HashMap<&str, &ComponentDef>,
) -> Result<(), TopologyError> {
    let mut total = 0usize;
    // The subscription with the most connections: (connections, source, bolt).
    let mut most: Option<(usize, &ComponentDef, &ComponentDef)> = None;
    for bolt in components.iter().filter(|c| !c.is_spout()) {
        let sources: std::collections::BTreeSet<&str> = bolt
            .inputs
            .iter()
            .map(|i| i.source.component.as_str())
            .collect();
        for src in sources.into_iter().filter_map(|s| by_name.get(s)) {
            let n = src.parallelism.saturating_mul(bolt.parallelism);
            total = total.saturating_add(n);
            if most.is_none_or(|(m, ..)| n > m) {
                most = Some((n, src, bolt));
            }
        }
    }
    match most {
        Some((_, src, bolt)) if total > MAX_CONNECTIONS => Err(TopologyError::TooManyConnections {
            total,
            source_name: src.name.clone(),
            source_tasks: src.parallelism,
            bolt: bolt.name.clone(),
            bolt_tasks: bolt.parallelism,
        }),
        _ => Ok(()),
    }
}

fn check_input(
    bolt: &ComponentDef,
    input: &Input,
    by_name: &HashMap<&str, &ComponentDef>,
) -> Result<(), TopologyError> {
    let src = by_name
        .get(input.source.component.as_str())
        .ok_or_else(|| TopologyError::UnknownSource {
            bolt: bolt.name.clone(),
            source_name: input.source.component.clone(),
        })?;
    let fields = src.outputs.fields_of(&input.source.stream).ok_or_else(|| {
        TopologyError::UnknownStream {
            bolt: bolt.name.clone(),
            source_name: src.name.clone(),
            stream: input.source.stream.clone(),
            declared: src.outputs.streams.keys().cloned().collect(),
        }
    })?;
    if let Grouping::Fields(names) = &input.grouping {
        if names.is_empty() {
            return Err(TopologyError::EmptyFields {
                bolt: bolt.name.clone(),
                source_name: src.name.clone(),
            });
        }
        for f in names {
            if !fields.contains(f) {
                return Err(TopologyError::UnknownField {
                    bolt: bolt.name.clone(),
                    source_name: src.name.clone(),
                    stream: input.source.stream.clone(),
                    field: f.clone(),
                    declared: fields.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Depth-first search for a back edge; reports the cycle's path.
fn check_acyclic(components: &[ComponentDef]) -> Result<(), TopologyError> {
    // edges: source -> bolt
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in components {
        for i in &c.inputs {
            next.entry(i.source.component.as_str())
                .or_default()
                .push(c.name.as_str());
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = components
        .iter()
        .map(|c| (c.name.as_str(), Mark::New))
        .collect();
    fn visit<'a>(
        n: &'a str,
        next: &HashMap<&'a str, Vec<&'a str>>,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), TopologyError> {
        marks.insert(n, Mark::Active);
        path.push(n);
        for &m in next.get(n).map(Vec::as_slice).unwrap_or(&[]) {
            match marks.get(m).copied().unwrap_or(Mark::Done) {
                Mark::Active => {
                    let start = path.iter().position(|p| *p == m).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(m.to_string());
                    return Err(TopologyError::Cycle(cycle));
                }
                Mark::New => visit(m, next, marks, path)?,
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(n, Mark::Done);
        Ok(())
    }
    for c in components {
        if marks.get(c.name.as_str()) == Some(&Mark::New) {
            visit(&c.name, &next, &mut marks, &mut Vec::new())?;
        }
    }
    Ok(())
}
