//! Where a failure started: the failures of a whole trace attributed to
//! their root causes.
//!
//! A span *fails* when its status is `Error`, when it holds an OpenTelemetry
//! `exception` event, or when an error was recorded in it (an error whose
//! `span_id` is the span's). A failing span with another failing span in
//! its subtree failed *because of* it: it is a [`Consequence`], not a new
//! failure. A failing span with no failing descendant is a *root cause*,
//! even when all it says is a status message. One rule for every source:
//! Omegi's own layer, any OpenTelemetry SDK's exception events and failed
//! spans, and ERROR log records.
//!
//! [`Trace::attribute`] applies the rule to an assembled trace;
//! [`Trace::status_error`] describes a span that failed with nothing but
//! its status; [`ErrorContext`] gives an error the span stack and the
//! breadcrumbs around it in the trace; [`Trace::failing_flows`] are the
//! flows of the root causes a trace's spans show by themselves.
//!
//! ```
//! use omegi_core::flow::Trace;
//! use omegi_core::{SpanId, SpanKind, SpanRecord, Status, TraceId};
//!
//! let span = |id: u64, parent: Option<u64>, service: &str, failed: Option<&str>| {
//!     let span = SpanRecord::new(TraceId(1), SpanId(id), format!("op {id}"), id * 10, 1_000 - id * 10)
//!         .with_parent(parent.map(SpanId))
//!         .with_service(service)
//!         .with_kind(SpanKind::Server);
//!     match failed {
//!         Some(message) => span.with_status(Status::Error).with_status_message(message),
//!         None => span,
//!     }
//! };
//! // The gateway failed because billing failed: one root cause.
//! let trace = Trace::from_spans([
//!     span(1, None, "gateway", Some("billing failed")),
//!     span(2, Some(1), "billing", Some("ledger offline")),
//!     span(3, Some(1), "gateway", None),
//! ])
//! .unwrap();
//! let attribution = trace.attribute(&[], &[]);
//! assert_eq!(attribution.causes.len(), 1);
//! let cause = &attribution.causes[0];
//! assert_eq!(trace[cause.node.unwrap()].span.service, "billing");
//! let consequences = attribution.consequences_of(&trace, cause, &[]);
//! assert_eq!(consequences[0].service, "gateway");
//! assert_eq!(consequences[0].status_message.as_deref(), Some("billing failed"));
//! ```

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ids::SpanId;
use crate::limits::{
    add_count, estimated_event_bytes, estimated_frame_bytes, RecordLimits, DROPPED_BREADCRUMBS,
    DROPPED_FRAMES,
};
use crate::model::{attribute, ErrorRecord, EventRecord, SpanFrame, SpanRecord, Status, Value};

use super::path::Flow;
use super::trace::{NodeId, Trace};

/// The span event name of the OpenTelemetry exception convention.
pub const EXCEPTION_EVENT: &str = "exception";

/// A span that failed because a span below it failed: what a root cause's
/// occurrence records about each failure it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consequence {
    /// The service of the span.
    pub service: String,
    /// The span.
    pub span_id: SpanId,
    /// The span's name.
    pub span_name: String,
    /// The span's status message, if it has one.
    #[serde(default)]
    pub status_message: Option<String>,
    /// The type of the error recorded in the span (an exception event's
    /// `exception.type`, an error's type), if any.
    #[serde(default)]
    pub error_type: Option<String>,
    /// The message of the error recorded in the span, if any.
    #[serde(default)]
    pub message: Option<String>,
}

impl Consequence {
    /// One line: `service span: message` (the status message or the
    /// error's, when there is one).
    pub fn describe(&self) -> String {
        let what = self
            .message
            .as_deref()
            .or(self.status_message.as_deref())
            .unwrap_or("failed");
        match &self.error_type {
            Some(ty) => format!("{} {}: {ty}: {what}", self.service, self.span_name),
            None => format!("{} {}: {what}", self.service, self.span_name),
        }
    }
}

/// One place where failures of a trace started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The failing span with no failing descendant; `None` for an error
    /// that names no span of the trace (it stands on its own).
    pub node: Option<NodeId>,
    /// The errors recorded in that span (indexes into the errors given to
    /// [`Trace::attribute`]); empty when the span failed without one (its
    /// status or exception event says it all).
    pub errors: Vec<usize>,
    /// The failing spans above it, nearest first: they failed because of it.
    pub consequences: Vec<NodeId>,
}

/// The failures of a trace, attributed: see [`Trace::attribute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The root causes: failing spans in depth-first order, then the errors
    /// that name no span of the trace.
    pub causes: Vec<Cause>,
    /// Per node (by [`NodeId::index`]): whether the span failed.
    pub failing: Vec<bool>,
    /// Per node: the root causes (indexes into `causes`) it failed because
    /// of; empty for a span that did not fail or is a root cause itself.
    pub because_of: Vec<Vec<usize>>,
}

impl Attribution {
    /// Whether anything in the trace failed.
    pub fn has_failures(&self) -> bool {
        !self.causes.is_empty()
    }

    /// The failing spans, by span id.
    pub fn failing_spans(&self, trace: &Trace) -> Vec<SpanId> {
        trace
            .preorder()
            .iter()
            .filter(|id| self.failing[id.index()])
            .map(|&id| trace[id].span_id())
            .collect()
    }

    /// Whether a span is a root cause.
    pub fn is_cause(&self, node: NodeId) -> bool {
        self.causes.iter().any(|c| c.node == Some(node))
    }

    /// What each consequence of `cause` records, nearest first.
    pub fn consequences_of(
        &self,
        trace: &Trace,
        cause: &Cause,
        errors: &[ErrorRecord],
    ) -> Vec<Consequence> {
        cause
            .consequences
            .iter()
            .map(|&node| trace.consequence(node, errors))
            .collect()
    }
}

/// The `exception` event of a span that says the most: its last one.
fn exception_of(span: &SpanRecord) -> Option<&EventRecord> {
    span.events
        .iter()
        .rev()
        .find(|e| e.message == EXCEPTION_EVENT)
}

/// A field of an event as text.
fn field_text(event: &EventRecord, key: &str) -> Option<String> {
    attribute(&event.fields, key).map(|v| match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    })
}

impl Trace {
    /// Per node: whether the span failed by its own data (status `Error`
    /// or an `exception` event), by an error recorded in it (`errors` whose
    /// `span_id` is the span's), or because `also` names it (failures known
    /// from earlier, such as errors already stored).
    pub fn failing(&self, errors: &[ErrorRecord], also: &[SpanId]) -> Vec<bool> {
        let mut failing: Vec<bool> = self
            .nodes()
            .iter()
            .map(|n| n.span.status == Status::Error || exception_of(&n.span).is_some())
            .collect();
        let named = errors
            .iter()
            .filter_map(|e| e.span_id)
            .chain(also.iter().copied());
        for span in named {
            if let Some(node) = self.find(span) {
                failing[node.index()] = true;
            }
        }
        failing
    }

    /// Attributes the failures of the trace: every failing span with no
    /// failing descendant is a root cause (with the errors recorded in it),
    /// every other failing span a consequence of the root causes below it.
    /// An error recorded in a consequence is not a root cause's: the failure
    /// it reports is already counted where it started. An error that names
    /// no span of the trace is a root cause of its own.
    ///
    /// Linear in the spans and errors, and the same for the same input in
    /// any order.
    pub fn attribute(&self, errors: &[ErrorRecord], also: &[SpanId]) -> Attribution {
        let n = self.len();
        let failing = self.failing(errors, also);
        // Walk up from each failing span, marking ancestors, until a span
        // already marked: each span is marked once.
        let mut below = vec![false; n];
        for (i, &f) in failing.iter().enumerate() {
            if !f {
                continue;
            }
            let mut up = self.nodes()[i].parent;
            while let Some(p) = up {
                if below[p.index()] {
                    break;
                }
                below[p.index()] = true;
                up = self[p].parent;
            }
        }
        let mut errors_at: HashMap<NodeId, Vec<usize>> = HashMap::new();
        let mut unplaced = Vec::new();
        for (i, error) in errors.iter().enumerate() {
            match error.span_id.and_then(|s| self.find(s)) {
                Some(node) => errors_at.entry(node).or_default().push(i),
                None => unplaced.push(i),
            }
        }
        let mut causes = Vec::new();
        let mut because_of = vec![Vec::new(); n];
        for &id in self.preorder() {
            if !failing[id.index()] || below[id.index()] {
                continue;
            }
            let index = causes.len();
            let mut consequences = Vec::new();
            let mut up = self[id].parent;
            while let Some(p) = up {
                if failing[p.index()] {
                    consequences.push(p);
                    because_of[p.index()].push(index);
                }
                up = self[p].parent;
            }
            causes.push(Cause {
                node: Some(id),
                errors: errors_at.remove(&id).unwrap_or_default(),
                consequences,
            });
        }
        causes.extend(unplaced.into_iter().map(|i| Cause {
            node: None,
            errors: vec![i],
            consequences: Vec::new(),
        }));
        Attribution {
            causes,
            failing,
            because_of,
        }
    }

    /// What a failing span records as the consequence of a root cause:
    /// its service, name and status message, and the type and message of
    /// the first error recorded in it (from `errors`, else its exception
    /// event).
    pub fn consequence(&self, node: NodeId, errors: &[ErrorRecord]) -> Consequence {
        let span = &self[node].span;
        let recorded = errors.iter().find(|e| e.span_id == Some(span.span_id));
        let (error_type, message) = match (recorded, exception_of(span)) {
            (Some(error), _) => (error.error_type.clone(), Some(error.message.clone())),
            (None, Some(event)) => (
                field_text(event, "exception.type"),
                field_text(event, "exception.message"),
            ),
            (None, None) => (None, None),
        };
        Consequence {
            service: span.service.clone(),
            span_id: span.span_id,
            span_name: span.name.to_string(),
            status_message: span.status_message.clone(),
            error_type,
            message,
        }
    }

    /// The error a failing span reports when nothing was recorded in it
    /// but its status ([`ErrorRecord::of_failed_span`]), timed at the
    /// span's end as its host recorded it (before clock-skew correction, so
    /// that the same span always gives the same error). Its span stack is
    /// the span alone and it has no breadcrumbs: [`ErrorContext::fill`]
    /// adds them.
    pub fn status_error(&self, node: NodeId) -> ErrorRecord {
        let n = &self[node];
        let mut error = ErrorRecord::of_failed_span(&n.span);
        error.time_ns = shift(n.span.end_ns, -n.skew_ns);
        error
    }

    /// The flows of the root causes that the spans show by themselves
    /// (status `Error` or an `exception` event, no failing descendant), in
    /// depth-first order. A flow's message is the span's last exception
    /// event's `exception.message` when it has one, else its status
    /// message; its type the exception's `exception.type`.
    pub fn failing_flows(&self) -> Vec<Flow> {
        self.attribute(&[], &[])
            .causes
            .iter()
            .filter_map(|cause| cause.node)
            .filter_map(|node| {
                let mut flow = Flow::for_span(self, self[node].span_id()).ok()?;
                if let Some(event) = exception_of(&self[node].span) {
                    if let Some(message) = field_text(event, "exception.message") {
                        flow.message = message;
                    }
                    flow.error_type = flow
                        .error_type
                        .or_else(|| field_text(event, "exception.type"));
                }
                Some(flow)
            })
            .collect()
    }
}

fn shift(t: u64, by: i64) -> u64 {
    u64::try_from((i128::from(t) + i128::from(by)).max(0)).unwrap_or(u64::MAX)
}

/// The span stacks and breadcrumbs the errors of one trace copy from the
/// spans and events around them, within [`RecordLimits`] and a budget of
/// bytes (as estimated in memory) for all of them.
///
/// Built once per trace (its events sorted by time); each
/// [`fill`](Self::fill) then costs what the error copies.
#[derive(Debug)]
pub struct ErrorContext<'t> {
    trace: &'t Trace,
    limits: &'t RecordLimits,
    /// (corrected time, node, event index), by time.
    events: Vec<(u64, NodeId, usize)>,
    left: usize,
}

impl<'t> ErrorContext<'t> {
    /// The context of `trace`'s errors, copying at most `budget` bytes.
    pub fn new(trace: &'t Trace, limits: &'t RecordLimits, budget: usize) -> Self {
        let mut events: Vec<(u64, NodeId, usize)> = trace
            .preorder()
            .iter()
            .flat_map(|&id| {
                trace[id]
                    .span
                    .events
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (e.time_ns, id, i))
            })
            .collect();
        events.sort_by_key(|&(time, _, _)| time);
        ErrorContext {
            trace,
            limits,
            events,
            left: budget,
        }
    }

    /// Bytes of the budget left.
    pub fn budget_left(&self) -> usize {
        self.left
    }

    /// Gives an error recorded in `node` what it lacks of its context:
    ///
    /// - a span stack that holds only the error's own span (an exception
    ///   event's error, a status error) becomes the path from the root of
    ///   the trace to it: the root and the nearest
    ///   [`RecordLimits::max_span_stack`] frames with their fields, the
    ///   frames left out counted in `omegi.dropped_frames`; an empty span
    ///   stack (an ERROR log record's) and a whole one (sent by Omegi's
    ///   layer) stay as they are, so that fingerprints stay what they were;
    /// - no breadcrumbs become the latest distinct events of the trace
    ///   logged no later than the error (in any service), the
    ///   [`RecordLimits::max_breadcrumbs`] latest, leaving out the error's
    ///   own exception event.
    ///
    /// Once the budget is spent, a span stack keeps the root and the
    /// error's span without fields, and breadcrumbs are left out, counted
    /// in `omegi.dropped_breadcrumbs`.
    pub fn fill(&mut self, error: &mut ErrorRecord, node: NodeId) {
        let trace = self.trace;
        let own = &trace[node];
        let grow_stack =
            matches!(error.span_stack.as_slice(), [only] if only.span_id == own.span_id());
        let path = if grow_stack {
            trace.path_to(node)
        } else {
            Vec::new()
        };
        // The root and the nearest frames.
        let nearest = self.limits.max_span_stack.max(1);
        let (chain, dropped_frames): (Vec<NodeId>, u64) = if path.len() > nearest + 1 {
            let mut chain = vec![path[0]];
            chain.extend_from_slice(&path[path.len() - nearest..]);
            let dropped = (path.len() - chain.len()) as u64;
            (chain, dropped)
        } else {
            (path, 0)
        };
        let want_crumbs = error.breadcrumbs.is_empty();
        let crumbs: Vec<&EventRecord> = if want_crumbs {
            // The error was timed by its span's host: compare on the
            // trace's corrected clock.
            let until = shift(error.time_ns, own.skew_ns);
            let own_exception = exception_index(&own.span, error);
            let upto = self.events.partition_point(|&(time, _, _)| time <= until);
            self.limits.breadcrumbs(
                self.events[..upto]
                    .iter()
                    .rev()
                    .filter(|&&(_, n, i)| !(n == node && Some(i) == own_exception))
                    .map(|&(_, n, i)| &trace[n].span.events[i]),
            )
        } else {
            Vec::new()
        };
        let bytes = chain
            .iter()
            .map(|&id| estimated_frame_bytes(&trace[id].span))
            .sum::<usize>()
            + crumbs
                .iter()
                .map(|e| estimated_event_bytes(e))
                .sum::<usize>();
        if bytes <= self.left {
            self.left -= bytes;
            if !chain.is_empty() {
                error.span_stack = chain
                    .iter()
                    .map(|&id| SpanFrame::of(&trace[id].span, true))
                    .collect();
            }
            add_count(&mut error.fields, DROPPED_FRAMES, dropped_frames);
            if want_crumbs {
                error.breadcrumbs = crumbs.into_iter().cloned().collect();
            }
            return;
        }
        self.left = 0;
        if let [root, .., _] = chain.as_slice() {
            error.span_stack = vec![
                SpanFrame::of(&trace[*root].span, false),
                SpanFrame::of(&own.span, false),
            ];
            add_count(
                &mut error.fields,
                DROPPED_FRAMES,
                dropped_frames + (chain.len() - 2) as u64,
            );
        } else {
            add_count(&mut error.fields, DROPPED_FRAMES, dropped_frames);
        }
        add_count(&mut error.fields, DROPPED_BREADCRUMBS, crumbs.len() as u64);
    }
}

/// The index of the exception event of `span` that `error` comes from: the
/// one with its time and message, if any.
fn exception_index(span: &SpanRecord, error: &ErrorRecord) -> Option<usize> {
    span.events.iter().position(|e| {
        e.message == EXCEPTION_EVENT
            && field_text(e, "exception.message").as_deref() == Some(error.message.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;
    use crate::model::{Attribute, Level, SpanKind};

    fn span(id: u64, parent: Option<u64>, service: &str, status: Status) -> SpanRecord {
        let mut span = SpanRecord::new(
            TraceId(9),
            SpanId(id),
            format!("op {id}"),
            1_000 + id,
            10_000 - id,
        )
        .with_parent(parent.map(SpanId))
        .with_service(service)
        .with_target("t")
        .with_kind(SpanKind::Server)
        .with_attribute("k", "v")
        .with_status(status);
        span.status_message = (status == Status::Error).then(|| format!("{service} failed"));
        span
    }

    fn logged(span: u64, message: &str) -> ErrorRecord {
        ErrorRecord::new(message, 5_000)
            .with_trace_id(TraceId(9))
            .with_span_id(SpanId(span))
            .with_service("svc")
            .with_error_type("E")
            .with_target("t")
    }

    #[test]
    fn a_chain_of_failures_has_one_cause_and_its_consequences_nearest_first() {
        // 1 gateway (err) -> 2 gateway client (err) -> 3 billing (err) -> 4 billing db (err)
        let trace = Trace::from_spans([
            span(4, Some(3), "billing", Status::Error),
            span(1, None, "gateway", Status::Error),
            span(3, Some(2), "billing", Status::Error),
            span(2, Some(1), "gateway", Status::Error),
        ])
        .unwrap();
        let a = trace.attribute(&[], &[]);
        assert_eq!(a.causes.len(), 1);
        let cause = &a.causes[0];
        assert_eq!(trace[cause.node.unwrap()].span_id(), SpanId(4));
        let ids: Vec<u64> = cause
            .consequences
            .iter()
            .map(|&n| trace[n].span_id().0)
            .collect();
        assert_eq!(ids, [3, 2, 1]);
        assert_eq!(a.because_of[trace.find(SpanId(1)).unwrap().index()], [0]);
        assert!(a.because_of[trace.find(SpanId(4)).unwrap().index()].is_empty());
    }

    #[test]
    fn independent_branches_are_two_causes_sharing_the_root_consequence() {
        let trace = Trace::from_spans([
            span(1, None, "gateway", Status::Error),
            span(2, Some(1), "billing", Status::Error),
            span(3, Some(1), "stock", Status::Error),
            span(4, Some(1), "mail", Status::Unset),
        ])
        .unwrap();
        let a = trace.attribute(&[], &[]);
        let causes: Vec<u64> = a
            .causes
            .iter()
            .map(|c| trace[c.node.unwrap()].span_id().0)
            .collect();
        assert_eq!(causes, [2, 3]);
        assert_eq!(a.because_of[trace.find(SpanId(1)).unwrap().index()], [0, 1]);
    }

    #[test]
    fn logged_errors_make_spans_fail_and_follow_the_same_rule() {
        // No span status at all: errors logged in 1 and 3.
        let trace = Trace::from_spans([
            span(1, None, "gateway", Status::Unset),
            span(2, Some(1), "gateway", Status::Unset),
            span(3, Some(2), "billing", Status::Unset),
        ])
        .unwrap();
        let errors = [
            logged(1, "checkout failed"),
            logged(3, "ledger offline"),
            logged(77, "elsewhere"),
        ];
        let a = trace.attribute(&errors, &[]);
        assert_eq!(a.causes.len(), 2);
        assert_eq!(a.causes[0].errors, [1]);
        assert_eq!(trace[a.causes[0].consequences[0]].span_id(), SpanId(1));
        // An error naming no span of the trace stands on its own.
        assert_eq!(a.causes[1].node, None);
        assert_eq!(a.causes[1].errors, [2]);
        let c = trace.consequence(a.causes[0].consequences[0], &errors);
        assert_eq!(c.message.as_deref(), Some("checkout failed"));
        assert_eq!(c.error_type.as_deref(), Some("E"));
        // Known failures from elsewhere count too.
        let b = trace.attribute(&[], &[SpanId(2)]);
        assert_eq!(b.causes.len(), 1);
        assert_eq!(trace[b.causes[0].node.unwrap()].span_id(), SpanId(2));
    }

    #[test]
    fn an_exception_event_is_a_failure_and_names_the_flow() {
        let mut failed = span(2, Some(1), "billing", Status::Unset);
        failed.events.push(
            EventRecord::new(2_000, Level::Error, EXCEPTION_EVENT)
                .with_target("t")
                .with_fields(vec![
                    Attribute::new("exception.type", "LedgerError"),
                    Attribute::new("exception.message", "ledger offline"),
                ]),
        );
        let trace = Trace::from_spans([span(1, None, "gateway", Status::Error), failed]).unwrap();
        let flows = trace.failing_flows();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].message, "ledger offline");
        assert_eq!(flows[0].error_type.as_deref(), Some("LedgerError"));
        let c = trace.consequence(trace.find(SpanId(1)).unwrap(), &[]);
        assert_eq!(c.status_message.as_deref(), Some("gateway failed"));
        let c = trace.consequence(trace.find(SpanId(2)).unwrap(), &[]);
        assert_eq!(c.error_type.as_deref(), Some("LedgerError"));
    }

    #[test]
    fn status_errors_take_their_context_from_the_whole_trace() {
        let mut root = span(1, None, "gateway", Status::Unset);
        root.events
            .push(EventRecord::new(1_500, Level::Info, "cart loaded").with_target("t"));
        let trace = Trace::from_spans([root, span(2, Some(1), "billing", Status::Error)]).unwrap();
        let node = trace.find(SpanId(2)).unwrap();
        let mut error = trace.status_error(node);
        assert_eq!(error.message, "billing failed");
        assert_eq!(error.time_ns, 10_000 - 2);
        assert_eq!(error.innermost_span(), Some("op 2"));
        let limits = RecordLimits::default();
        let mut context = ErrorContext::new(&trace, &limits, 1 << 20);
        context.fill(&mut error, node);
        let stack: Vec<&str> = error.span_stack.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(stack, ["op 1", "op 2"]);
        assert_eq!(error.span_stack[0].fields, [Attribute::new("k", "v")]);
        assert_eq!(error.breadcrumbs.len(), 1);
        assert_eq!(error.breadcrumbs[0].message, "cart loaded");
        // A logged error keeps its empty span stack (its fingerprint stays).
        let mut log = logged(2, "ledger offline");
        context.fill(&mut log, node);
        assert!(log.span_stack.is_empty());
        assert_eq!(log.breadcrumbs.len(), 1);
        // Once the budget is spent: the root and the span, no fields, no
        // breadcrumbs.
        let mut poor = ErrorContext::new(&trace, &limits, 10);
        let mut error = trace.status_error(node);
        poor.fill(&mut error, node);
        assert_eq!(error.span_stack.len(), 2);
        assert!(error.span_stack[0].fields.is_empty());
        assert!(error.breadcrumbs.is_empty());
        assert_eq!(
            attribute(&error.fields, DROPPED_BREADCRUMBS),
            Some(&Value::I64(1))
        );
    }
}
