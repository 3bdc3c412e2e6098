//! What a trace adds to the traffic statistics: the requests each service
//! served and the calls between services.

use crate::fingerprint::normalize_message;
use crate::ids::SpanId;
use crate::model::{SpanKind, SpanRecord, Value};

use super::trace::{NodeId, Trace};

/// One request a service served: a server or consumer span, or a span
/// that starts the trace (no parent, or a parent in another process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The span.
    pub span_id: SpanId,
    /// The service that served it.
    pub service: String,
    /// Its route: see [`route_of`].
    pub route: String,
    /// When it started, ns since the Unix epoch (as its host recorded it).
    pub start_ns: u64,
    /// How long it took, ns.
    pub duration_ns: u64,
    /// Whether it failed.
    pub failed: bool,
}

/// A call from one service to another: a span whose parent is a span of
/// another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The calling span (the parent).
    pub caller_span: SpanId,
    /// The called span (the child).
    pub callee_span: SpanId,
    /// The calling service.
    pub caller: String,
    /// The called service.
    pub callee: String,
    /// When the called span started, ns since the Unix epoch (as its host
    /// recorded it).
    pub start_ns: u64,
    /// Whether the called span failed.
    pub failed: bool,
}

/// The route of a request: its `http.route` attribute (a template such as
/// `/orders/{id}`), else its `rpc.method` with `rpc.service`, else its name
/// with numbers and ids replaced ([`normalize_message`]), so that one route
/// is one entry of the statistics.
pub fn route_of(span: &SpanRecord) -> String {
    let text = |key: &str| match span.attribute(key) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    if let Some(route) = text("http.route") {
        let method = text("http.request.method").or_else(|| text("http.method"));
        return match method {
            Some(method) if !route.starts_with(method) => format!("{method} {route}"),
            _ => route.to_owned(),
        };
    }
    if let Some(method) = text("rpc.method") {
        return match text("rpc.service") {
            Some(service) => format!("{service}/{method}"),
            None => method.to_owned(),
        };
    }
    normalize_message(&span.name)
}

impl Trace {
    /// The nodes that are requests (see [`Request`]), depth first.
    pub fn request_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.preorder().iter().copied().filter(move |&id| {
            let node = &self[id];
            let span = &node.span;
            let enters_service = span.remote_parent
                || node
                    .parent
                    .is_some_and(|p| self[p].span.service != span.service);
            match span.kind {
                SpanKind::Server | SpanKind::Consumer => true,
                _ if span.parent_span_id.is_none() => true,
                SpanKind::Internal => enters_service,
                SpanKind::Client | SpanKind::Producer => false,
            }
        })
    }

    /// The requests of the trace, depth first; `failing` says which nodes
    /// failed (as [`Trace::attribute`] decides, by node index).
    pub fn requests(&self, failing: &[bool]) -> Vec<Request> {
        self.request_nodes()
            .map(|id| {
                let node = &self[id];
                let span = &node.span;
                Request {
                    span_id: span.span_id,
                    service: span.service.clone(),
                    route: route_of(span),
                    start_ns: raw(span.start_ns, node.skew_ns),
                    duration_ns: span.duration_ns(),
                    failed: failing.get(id.index()).copied().unwrap_or(false),
                }
            })
            .collect()
    }

    /// The calls between services in the trace, depth first; `failing` as
    /// for [`Trace::requests`].
    pub fn calls(&self, failing: &[bool]) -> Vec<Call> {
        self.preorder()
            .iter()
            .filter_map(|&id| {
                let node = &self[id];
                let parent = &self[node.parent?].span;
                (parent.service != node.span.service).then(|| Call {
                    caller_span: parent.span_id,
                    callee_span: node.span.span_id,
                    caller: parent.service.clone(),
                    callee: node.span.service.clone(),
                    start_ns: raw(node.span.start_ns, node.skew_ns),
                    failed: failing.get(id.index()).copied().unwrap_or(false),
                })
            })
            .collect()
    }
}

/// A corrected time back on its host's clock: the same span always counts
/// in the same bucket, whatever else of its trace arrived.
fn raw(corrected: u64, skew_ns: i64) -> u64 {
    u64::try_from((i128::from(corrected) - i128::from(skew_ns)).max(0)).unwrap_or(u64::MAX)
}
