//! The critical path of a trace: the chain of work that decides when the root
//! ends.

use crate::ids::SpanId;

use super::trace::{NodeId, Trace};

/// A stretch of time during which one span is on the critical path, doing its
/// own work rather than waiting for a child that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalSection {
    /// The span's node.
    pub node: NodeId,
    /// The span's id.
    pub span_id: SpanId,
    /// Start of the section, in ns since the Unix epoch (corrected clock).
    pub start_ns: u64,
    /// End of the section, in ns since the Unix epoch (corrected clock).
    pub end_ns: u64,
}

/// A span's child, its time window clipped to the parent's.
#[derive(Clone, Copy)]
struct Window {
    node: NodeId,
    start: u64,
    end: u64,
}

/// One span being walked: its clipped children by end (latest first), how
/// many of them were looked at, and the time up to which the span is still
/// to be explained.
struct Frame {
    window: Window,
    children: Vec<Window>,
    next: usize,
    bound: u64,
}

impl Frame {
    fn new(trace: &Trace, window: Window) -> Frame {
        let mut children: Vec<Window> = trace[window.node]
            .children
            .iter()
            .filter_map(|&c| {
                let child = &trace[c];
                // Children wholly outside the parent play no part; the others
                // are clipped to it.
                if child.start_ns() > window.end || child.end_ns() < window.start {
                    return None;
                }
                Some(Window {
                    node: c,
                    start: child.start_ns().max(window.start),
                    end: child.end_ns().min(window.end),
                })
            })
            .collect();
        children.sort_unstable_by_key(|w| {
            (std::cmp::Reverse(w.end), std::cmp::Reverse(w.start), w.node)
        });
        Frame {
            window,
            children,
            next: 0,
            bound: window.end,
        }
    }
}

impl Trace {
    /// The critical path of the main root, in time order, following Jaeger's
    /// algorithm: starting from the root's end, go to the child that ends
    /// last; before that child's start, to the child that ends last no later
    /// than that start; and so on, down into each chosen child, and count the
    /// gaps in between as the parent's own work. Children are first clipped to
    /// their parent's time window (those wholly outside are ignored). Unlike
    /// Jaeger, a child that ends exactly when the next one starts counts as
    /// preceding it.
    ///
    /// The sections cover the root's duration without overlap; empty
    /// sections are left out.
    pub fn critical_path(&self) -> Vec<CriticalSection> {
        let root = self.root();
        let Some(root_node) = self.get(root) else {
            return Vec::new();
        };
        let mut sections = Vec::new();
        let mut push = |node: NodeId, start: u64, end: u64| {
            if start < end {
                sections.push(CriticalSection {
                    node,
                    span_id: self[node].span_id(),
                    start_ns: start,
                    end_ns: end,
                });
            }
        };
        let mut stack = vec![Frame::new(
            self,
            Window {
                node: root,
                start: root_node.start_ns(),
                end: root_node.end_ns(),
            },
        )];
        while let Some(top) = stack.last_mut() {
            let mut chosen = None;
            while let Some(&child) = top.children.get(top.next) {
                top.next += 1;
                if child.end <= top.bound {
                    chosen = Some(child);
                    break;
                }
            }
            match chosen {
                Some(child) => {
                    push(top.window.node, child.end, top.bound);
                    top.bound = child.start;
                    let frame = Frame::new(self, child);
                    stack.push(frame);
                }
                None => {
                    push(top.window.node, top.window.start, top.bound);
                    stack.pop();
                }
            }
        }
        sections.reverse();
        sections
    }
}
