//! The flow of an error: the path from the root to the failing span, one hop
//! per service boundary crossed.

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};
use crate::model::{ErrorRecord, EventRecord, Level, Status};

use super::trace::{NodeId, Trace};
use super::FlowError;

/// One stretch of the path that stays in one service: consecutive spans of the
/// same service on the path from the root to the failing span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// The service.
    pub service: String,
    /// The name of the hop's first span (where the request entered the service).
    pub span_name: String,
    /// The name of the hop's last span on the path; for the last hop, the
    /// failing span.
    pub last_span_name: String,
    /// The hop's spans on the path, outermost first.
    pub span_ids: Vec<SpanId>,
    /// Start of the hop's first span, in ns after the start of the path's root.
    pub offset_ns: u64,
    /// Duration of the hop's first span, in ns.
    pub duration_ns: u64,
    /// The most severe status among the hop's spans on the path; the last hop,
    /// where the failure happened, is always [`Status::Error`].
    pub status: Status,
    /// Events of the hop's spans on the path logged at or before the failure,
    /// in time order (times corrected for clock skew).
    pub events: Vec<EventRecord>,
}

/// How an error travelled through the services of a trace: see
/// [`Flow::for_error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// The trace.
    pub trace_id: TraceId,
    /// The span the error happened in.
    pub failing_span: SpanId,
    /// The hops from the root to the failing span; never empty.
    pub hops: Vec<Hop>,
    /// When the error happened, in ns since the Unix epoch, on the corrected
    /// clock of the trace.
    pub error_time_ns: u64,
    /// The error's message.
    pub message: String,
    /// The error's type, where known.
    pub error_type: Option<String>,
    /// The error's causes, outermost first.
    pub causes: Vec<String>,
}

impl Flow {
    /// The flow of an error captured in one of the trace's spans (matched by
    /// the error's `span_id`).
    ///
    /// # Errors
    /// [`FlowError::NotInSpan`] when the error has no span id,
    /// [`FlowError::TraceMismatch`] when it names another trace, and
    /// [`FlowError::SpanNotFound`] when its span is not in the trace.
    pub fn for_error(trace: &Trace, error: &ErrorRecord) -> Result<Flow, FlowError> {
        let span_id = error.span_id.ok_or(FlowError::NotInSpan)?;
        if let Some(error_trace) = error.trace_id {
            if error_trace != trace.trace_id() {
                return Err(FlowError::TraceMismatch {
                    error: error_trace,
                    trace: trace.trace_id(),
                });
            }
        }
        let node = find(trace, span_id)?;
        // The error was timed by the failing span's host: correct it likewise.
        let shift = i128::from(trace[node].skew_ns);
        let time = u64::try_from((i128::from(error.time_ns) + shift).max(0)).unwrap_or(u64::MAX);
        Ok(build(
            trace,
            node,
            time,
            error.message.clone(),
            error.error_type.clone(),
            error.causes.clone(),
        ))
    }

    /// The flow of a failing span, without a captured error: the message is
    /// the span's status message or else its last ERROR event's message; the
    /// failure time is that event's or else the span's end.
    ///
    /// # Errors
    /// [`FlowError::SpanNotFound`] when the span is not in the trace.
    pub fn for_span(trace: &Trace, span_id: SpanId) -> Result<Flow, FlowError> {
        let node = find(trace, span_id)?;
        let span = &trace[node].span;
        let last_error = span.events.iter().rev().find(|e| e.level == Level::Error);
        let time = last_error.map_or(span.end_ns, |e| e.time_ns);
        let message = span
            .status_message
            .clone()
            .or_else(|| last_error.map(|e| e.message.clone()))
            .unwrap_or_default();
        Ok(build(trace, node, time, message, None, Vec::new()))
    }

    /// The hop the failure happened in.
    pub fn failing_hop(&self) -> Option<&Hop> {
        self.hops.last()
    }
}

fn find(trace: &Trace, span_id: SpanId) -> Result<NodeId, FlowError> {
    trace.find(span_id).ok_or(FlowError::SpanNotFound {
        span_id,
        trace_id: trace.trace_id(),
    })
}

fn worse(a: Status, b: Status) -> Status {
    match (a, b) {
        (Status::Error, _) | (_, Status::Error) => Status::Error,
        (Status::Ok, _) | (_, Status::Ok) => Status::Ok,
        _ => Status::Unset,
    }
}

fn build(
    trace: &Trace,
    failing: NodeId,
    error_time_ns: u64,
    message: String,
    error_type: Option<String>,
    causes: Vec<String>,
) -> Flow {
    let path = trace.path_to(failing);
    let origin = path.first().map_or(0, |&r| trace[r].start_ns());
    let mut hops: Vec<Hop> = Vec::new();
    for &id in &path {
        let node = &trace[id];
        let span = &node.span;
        let same_service = hops.last().is_some_and(|h| h.service == span.service);
        if !same_service {
            hops.push(Hop {
                service: span.service.clone(),
                span_name: span.name.to_string(),
                last_span_name: span.name.to_string(),
                span_ids: Vec::new(),
                offset_ns: span.start_ns.saturating_sub(origin),
                duration_ns: span.duration_ns(),
                status: Status::Unset,
                events: Vec::new(),
            });
        }
        if let Some(hop) = hops.last_mut() {
            (*span.name).clone_into(&mut hop.last_span_name);
            hop.span_ids.push(span.span_id);
            hop.status = worse(hop.status, span.status);
            hop.events.extend(
                span.events
                    .iter()
                    .filter(|e| e.time_ns <= error_time_ns)
                    .cloned(),
            );
        }
    }
    for hop in &mut hops {
        hop.events.sort_by_key(|e| e.time_ns);
    }
    if let Some(last) = hops.last_mut() {
        last.status = Status::Error;
    }
    Flow {
        trace_id: trace.trace_id(),
        failing_span: trace[failing].span_id(),
        hops,
        error_time_ns,
        message,
        error_type,
        causes,
    }
}
