//! Service dependencies: who calls whom, how often, how often it fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Status;

use super::trace::Trace;

/// Calls from one service to another, seen as parent/child spans that cross
/// the service boundary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceEdge {
    /// The calling service (the parent span's).
    pub caller: String,
    /// The called service (the child span's).
    pub callee: String,
    /// How many child spans of `callee` have a parent span of `caller`.
    pub calls: u64,
    /// How many of those child spans failed ([`Status::Error`]).
    pub errors: u64,
}

/// The service dependency edges of any number of traces, ordered by caller
/// then callee. Spans without a parent in their trace (roots, orphans) add no
/// edge.
pub fn service_dependencies<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> Vec<ServiceEdge> {
    let mut edges: BTreeMap<(&'a str, &'a str), (u64, u64)> = BTreeMap::new();
    for trace in traces {
        for node in trace.nodes() {
            let Some(parent) = node.parent.and_then(|p| trace.get(p)) else {
                continue;
            };
            if parent.span.service == node.span.service {
                continue;
            }
            let counts = edges
                .entry((parent.span.service.as_str(), node.span.service.as_str()))
                .or_default();
            counts.0 += 1;
            counts.1 += u64::from(node.span.status == Status::Error);
        }
    }
    edges
        .into_iter()
        .map(|((caller, callee), (calls, errors))| ServiceEdge {
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            calls,
            errors,
        })
        .collect()
}

impl Trace {
    /// The service dependency edges of this trace; see [`service_dependencies`].
    pub fn service_dependencies(&self) -> Vec<ServiceEdge> {
        service_dependencies([self])
    }
}
