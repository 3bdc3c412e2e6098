//! Trace assembly: from an unordered bag of span records to a tree, with
//! duplicates merged, cycles broken, orphans kept and clock skew corrected.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ops::Index;

use crate::ids::{SpanId, TraceId};
use crate::model::{SpanRecord, Status};

use super::FlowError;

/// The index of a span in a [`Trace`]'s arena of nodes.
///
/// Only meaningful for the trace that handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

impl NodeId {
    /// The position of the node in [`Trace::nodes`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// One span in an assembled [`Trace`], with its place in the tree and what
/// assembly did to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanNode {
    /// The span, its times (start, end and events) corrected for clock skew by
    /// [`skew_ns`](Self::skew_ns). A span that ended before it started is given
    /// its start as end (zero duration).
    pub span: SpanRecord,
    /// The parent node; `None` for a root, an orphan or a span whose parent
    /// link was cut to break a cycle.
    pub parent: Option<NodeId>,
    /// The children, ordered by (corrected) start time, then span id.
    pub children: Vec<NodeId>,
    /// Distance from the root of the node's subtree (a root has depth 0).
    pub depth: usize,
    /// The signed shift in ns added to this span's recorded times to correct
    /// clock skew. Spans of the same service below a corrected span carry the
    /// same shift.
    pub skew_ns: i64,
    /// Whether the clock-skew correction was decided at this span: it comes
    /// from another service than its parent and did not fit inside it.
    pub skew_corrected: bool,
    /// The span names a parent that is not in the trace: the node is the root
    /// of an orphan subtree.
    pub orphan: bool,
    /// The span's parent link was cut because it formed a cycle (a span that
    /// is its own parent included).
    pub cycle_broken: bool,
    /// How many duplicate records of the same span id were merged into this one.
    pub duplicates: u32,
}

impl SpanNode {
    fn new(span: SpanRecord) -> SpanNode {
        SpanNode {
            span,
            parent: None,
            children: Vec::new(),
            depth: 0,
            skew_ns: 0,
            skew_corrected: false,
            orphan: false,
            cycle_broken: false,
            duplicates: 0,
        }
    }

    /// The span's id.
    pub fn span_id(&self) -> SpanId {
        self.span.span_id
    }

    /// Corrected start, in ns since the Unix epoch.
    pub fn start_ns(&self) -> u64 {
        self.span.start_ns
    }

    /// Corrected end, in ns since the Unix epoch (never before the start).
    pub fn end_ns(&self) -> u64 {
        self.span.end_ns
    }

    /// Duration in ns.
    pub fn duration_ns(&self) -> u64 {
        self.span.duration_ns()
    }
}

/// The spans of one trace id, assembled into a tree (or a forest, when
/// parents are missing).
///
/// Nodes live in an arena ([`nodes`](Self::nodes)) and point to each other by
/// [`NodeId`]. Assembly never fails on bad data and never loops:
///
/// - duplicates (same span id) merge into one node: the record with the later
///   end is kept, completed with the other's events, attributes, parent and
///   the more severe status;
/// - a span whose parent is not in the set becomes the root of an orphan
///   subtree ([`SpanNode::orphan`]);
/// - a cycle of parent links is broken by cutting the link of its earliest
///   span ([`SpanNode::cycle_broken`]), which becomes a root;
/// - a child from another service that starts before or ends after its parent
///   is shifted, with its subtree, into the parent, assuming symmetric network
///   latency (see [`SpanNode::skew_ns`]).
///
/// Roots are ordered true roots first (spans without a parent id), then the
/// others, each by start time; [`root`](Self::root) is the first.
///
/// ```
/// use omegi_core::flow::Trace;
/// use omegi_core::{SpanId, SpanRecord, TraceId};
///
/// let span = |id: u64, parent: Option<u64>, service: &str, start: u64, end: u64| {
///     SpanRecord::new(TraceId(1), SpanId(id), format!("span {id}"), start, end)
///         .with_parent(parent.map(SpanId))
///         .with_service(service)
/// };
/// // The child's host clock runs 5 ms behind: it seems to start before its parent.
/// let trace = Trace::from_spans(vec![
///     span(2, Some(1), "inventory", 1_000_000, 9_000_000),
///     span(1, None, "user", 4_000_000, 16_000_000),
/// ])
/// .unwrap();
/// let child = &trace[trace[trace.root()].children[0]];
/// assert_eq!(child.start_ns(), 6_000_000); // 2 ms of latency on each side
/// assert_eq!(child.skew_ns, 5_000_000);
/// ```
#[derive(Debug, Clone)]
pub struct Trace {
    trace_id: TraceId,
    nodes: Vec<SpanNode>,
    roots: Vec<NodeId>,
    preorder: Vec<NodeId>,
    index: HashMap<SpanId, NodeId>,
}

/// Assembles spans of any number of trace ids: one [`Trace`] per trace id,
/// ordered by the start of their main root, then by trace id.
///
/// Every distinct (trace id, span id) appears in exactly one node of one trace.
pub fn assemble(spans: impl IntoIterator<Item = SpanRecord>) -> Vec<Trace> {
    let mut groups: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
    for span in spans {
        groups.entry(span.trace_id).or_default().push(span);
    }
    let mut traces: Vec<Trace> = groups
        .into_iter()
        .map(|(trace_id, spans)| Trace::build(trace_id, spans))
        .collect();
    traces.sort_by_key(|t| (t.nodes[t.root().0].start_ns(), t.trace_id));
    traces
}

impl Trace {
    /// Assembles the spans of one trace.
    ///
    /// # Errors
    /// [`FlowError::NoSpans`] when `spans` is empty, and
    /// [`FlowError::MixedTraces`] when they belong to more than one trace id
    /// (use [`assemble`] for those).
    pub fn from_spans(spans: impl IntoIterator<Item = SpanRecord>) -> Result<Trace, FlowError> {
        let spans: Vec<SpanRecord> = spans.into_iter().collect();
        let first = spans.first().ok_or(FlowError::NoSpans)?.trace_id;
        if let Some(other) = spans.iter().find(|s| s.trace_id != first) {
            return Err(FlowError::MixedTraces {
                first,
                other: other.trace_id,
            });
        }
        Ok(Trace::build(first, spans))
    }

    /// Builds the tree of a non-empty set of spans, all of `trace_id`.
    ///
    /// Records are large, so each is moved once, into its node; the tree
    /// work runs on compact arrays of times, services and parent positions.
    fn build(trace_id: TraceId, records: Vec<SpanRecord>) -> Trace {
        // 1. One node per span id, in first-seen order; duplicates merged.
        let mut index: HashMap<SpanId, NodeId> = HashMap::with_capacity(records.len());
        let mut nodes: Vec<SpanNode> = Vec::with_capacity(records.len());
        for record in records {
            match index.entry(record.span_id) {
                Entry::Occupied(slot) => {
                    let node = &mut nodes[slot.get().0];
                    merge_duplicate(&mut node.span, record);
                    node.duplicates += 1;
                }
                Entry::Vacant(slot) => {
                    slot.insert(NodeId(nodes.len()));
                    nodes.push(SpanNode::new(record));
                }
            }
        }
        let n = nodes.len();

        // 2. Hot data: repaired times, span ids, services as numbers.
        for node in &mut nodes {
            if node.span.end_ns < node.span.start_ns {
                node.span.end_ns = node.span.start_ns;
            }
        }
        let mut start: Vec<u64> = nodes.iter().map(|n| n.span.start_ns).collect();
        let mut end: Vec<u64> = nodes.iter().map(|n| n.span.end_ns).collect();
        let ids: Vec<SpanId> = nodes.iter().map(SpanNode::span_id).collect();
        let service: Vec<u32> = {
            let mut numbers: HashMap<&str, u32> = HashMap::new();
            nodes
                .iter()
                .map(|node| {
                    let next = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
                    *numbers.entry(node.span.service.as_str()).or_insert(next)
                })
                .collect()
        };

        // 3. Parent links.
        const NONE: usize = usize::MAX;
        let mut parent = vec![NONE; n];
        for (i, node) in nodes.iter_mut().enumerate() {
            match node.span.parent_span_id {
                None => {}
                Some(p) if p == node.span.span_id => node.cycle_broken = true,
                Some(p) => match index.get(&p) {
                    Some(&p) => parent[i] = p.0,
                    None => node.orphan = true,
                },
            }
        }

        // 4. Break cycles: walk up from every node; meeting a node of the
        //    current walk again closes a cycle, cut above its earliest span.
        const NEW: u8 = 0;
        const ON_WALK: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; n];
        let mut walk: Vec<usize> = Vec::new();
        for first in 0..n {
            walk.clear();
            let mut cur = first;
            loop {
                match state[cur] {
                    NEW => {
                        state[cur] = ON_WALK;
                        walk.push(cur);
                        if parent[cur] == NONE {
                            break;
                        }
                        cur = parent[cur];
                    }
                    ON_WALK => {
                        let pos = walk.iter().position(|&x| x == cur).unwrap_or(0);
                        if let Some(&cut) = walk[pos..].iter().min_by_key(|&&x| (start[x], ids[x]))
                        {
                            parent[cut] = NONE;
                            nodes[cut].cycle_broken = true;
                        }
                        break;
                    }
                    _ => break,
                }
            }
            for &x in &walk {
                state[x] = DONE;
            }
        }
        drop(state);

        // 5. Children as one compact list (counting sort by parent):
        //    `kids[first[p]..first[p + 1]]` are the children of `p`.
        let mut first = vec![0usize; n + 1];
        for &p in &parent {
            if p != NONE {
                first[p + 1] += 1;
            }
        }
        for i in 0..n {
            first[i + 1] += first[i];
        }
        let mut kids = vec![0usize; first[n]];
        let mut fill = first.clone();
        for (i, &p) in parent.iter().enumerate() {
            if p != NONE {
                kids[fill[p]] = i;
                fill[p] += 1;
            }
        }
        drop(fill);
        let mut roots: Vec<usize> = (0..n).filter(|&i| parent[i] == NONE).collect();

        // 6. Clock skew, top-down so that a parent is corrected before its
        //    children are measured against it.
        let mut skew = vec![0i64; n];
        let mut corrected = vec![false; n];
        let mut stack: Vec<usize> = roots.clone();
        while let Some(i) = stack.pop() {
            let p = parent[i];
            if p != NONE {
                let shift = if service[i] != service[p] {
                    corrected[i] = true;
                    skew_shift((start[i], end[i]), (start[p], end[p]))
                } else {
                    skew[p]
                };
                if shift != 0 {
                    skew[i] = shift;
                    start[i] = shift_time(start[i], shift);
                    end[i] = shift_time(end[i], shift).max(start[i]);
                }
            }
            stack.extend_from_slice(&kids[first[i]..first[i + 1]]);
        }

        // 7. Order children and roots by (corrected) start, then span id.
        for p in 0..n {
            let children = &mut kids[first[p]..first[p + 1]];
            if children.len() > 1 {
                children.sort_unstable_by_key(|&c| (start[c], ids[c]));
            }
        }
        roots.sort_unstable_by_key(|&r| (nodes[r].span.parent_span_id.is_some(), start[r], ids[r]));

        // 8. Depths and depth-first order.
        let mut depth = vec![0usize; n];
        let mut preorder = Vec::with_capacity(n);
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            preorder.push(NodeId(i));
            for &c in kids[first[i]..first[i + 1]].iter().rev() {
                depth[c] = depth[i] + 1;
                stack.push(c);
            }
        }

        // 9. Write the results into the nodes, in one pass.
        for (i, node) in nodes.iter_mut().enumerate() {
            node.parent = (parent[i] != NONE).then_some(NodeId(parent[i]));
            node.children = kids[first[i]..first[i + 1]]
                .iter()
                .map(|&c| NodeId(c))
                .collect();
            node.depth = depth[i];
            let shift = skew[i];
            if shift != 0 {
                node.skew_ns = shift;
                node.skew_corrected = corrected[i];
                node.span.start_ns = start[i];
                node.span.end_ns = end[i];
                for event in &mut node.span.events {
                    event.time_ns = shift_time(event.time_ns, shift);
                }
            }
        }
        let roots = roots.into_iter().map(NodeId).collect();

        Trace {
            trace_id,
            nodes,
            roots,
            preorder,
            index,
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// How many distinct spans the trace has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a trace has at least one span.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All nodes, in the arena's order: the order their span ids were first
    /// seen. Use [`roots`](Self::roots), [`preorder`](Self::preorder) and the
    /// children lists for an order that does not depend on arrival.
    pub fn nodes(&self) -> &[SpanNode] {
        &self.nodes
    }

    /// A node by id, if it belongs to this trace.
    pub fn get(&self, id: NodeId) -> Option<&SpanNode> {
        self.nodes.get(id.0)
    }

    /// The node of a span id.
    pub fn find(&self, span_id: SpanId) -> Option<NodeId> {
        self.index.get(&span_id).copied()
    }

    /// The roots of the forest: true roots first, then orphans and spans
    /// whose parent link was cut, each group by start time.
    pub fn roots(&self) -> &[NodeId] {
        &self.roots
    }

    /// The main root: the earliest span without a parent id or, when there is
    /// none, the earliest other root.
    pub fn root(&self) -> NodeId {
        // `build` is only called with at least one span, and a forest over a
        // non-empty set has at least one root.
        self.roots.first().copied().unwrap_or(NodeId(0))
    }

    /// The roots of orphan subtrees (spans whose parent is missing).
    pub fn orphans(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.roots
            .iter()
            .copied()
            .filter(move |r| self.nodes[r.0].orphan)
    }

    /// Every node once, depth first: each root followed by its subtree,
    /// children in start order.
    pub fn preorder(&self) -> &[NodeId] {
        &self.preorder
    }

    /// The earliest corrected start of any span.
    pub fn start_ns(&self) -> u64 {
        self.nodes.iter().map(SpanNode::start_ns).min().unwrap_or(0)
    }

    /// The latest corrected end of any span.
    pub fn end_ns(&self) -> u64 {
        self.nodes.iter().map(SpanNode::end_ns).max().unwrap_or(0)
    }

    /// The nodes from the root of `id`'s subtree down to `id`, both included.
    pub fn path_to(&self, id: NodeId) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut cur = Some(id).filter(|id| id.0 < self.nodes.len());
        while let Some(c) = cur {
            path.push(c);
            cur = self.nodes[c.0].parent;
        }
        path.reverse();
        path
    }
}

impl Index<NodeId> for Trace {
    type Output = SpanNode;

    /// # Panics
    /// When the id comes from another trace and is out of range.
    fn index(&self, id: NodeId) -> &SpanNode {
        &self.nodes[id.0]
    }
}

/// The shift that puts `child` (recorded times) inside `parent` (corrected
/// times), as Jaeger's clock-skew adjuster computes it: zero when it fits;
/// when the child is longer than its parent, align the starts if the child
/// starts first; otherwise centre it, assuming equal latency both ways.
fn skew_shift(child: (u64, u64), parent: (u64, u64)) -> i64 {
    let (cs, ce) = (i128::from(child.0), i128::from(child.1));
    let (ps, pe) = (i128::from(parent.0), i128::from(parent.1));
    let (cd, pd) = (ce - cs, pe - ps);
    let shift = if cd > pd {
        if cs < ps {
            ps - cs
        } else {
            0
        }
    } else if cs >= ps && ce <= pe {
        0
    } else {
        let latency = (pd - cd) / 2;
        ps + latency - cs
    };
    i64::try_from(shift).unwrap_or(if shift < 0 { i64::MIN } else { i64::MAX })
}

fn shift_time(t: u64, shift: i64) -> u64 {
    let moved = i128::from(t) + i128::from(shift);
    u64::try_from(moved.max(0)).unwrap_or(u64::MAX)
}

fn status_rank(status: Status) -> u8 {
    match status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

/// Merges a duplicate record into the kept one: the record with the later end
/// wins (the first seen on a tie), completed with what only the other has.
fn merge_duplicate(kept: &mut SpanRecord, mut other: SpanRecord) {
    if other.end_ns > kept.end_ns {
        std::mem::swap(kept, &mut other);
    }
    let extra = other;
    for event in extra.events {
        if !kept.events.contains(&event) {
            kept.events.push(event);
        }
    }
    kept.events.sort_by_key(|e| e.time_ns);
    for attr in extra.attributes {
        if !kept.attributes.iter().any(|a| a.key == attr.key) {
            kept.attributes.push(attr);
        }
    }
    if status_rank(extra.status) > status_rank(kept.status) {
        kept.status = extra.status;
    }
    if kept.status_message.is_none() {
        kept.status_message = extra.status_message;
    }
    if kept.parent_span_id.is_none() {
        kept.parent_span_id = extra.parent_span_id;
        kept.remote_parent = extra.remote_parent;
    }
    kept.dropped_events = kept.dropped_events.max(extra.dropped_events);
}
