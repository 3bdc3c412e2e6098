//! From captured spans to what a person on call reads.
//!
//! - [`Trace`]: spans of one trace id assembled into a tree — duplicates
//!   merged, cycles broken, orphans kept, clock skew between hosts corrected
//!   ([`assemble`] groups a mixed set by trace id).
//! - [`Flow`] and [`Hop`]: the path from the root to the failing span, one hop
//!   per service crossed, with the events logged before the failure;
//!   [`Flow::summary`] renders it in a few lines.
//! - [`Trace::raw_log`], [`Trace::waterfall`]: the whole trace as text.
//! - [`Trace::critical_path`] and [`service_dependencies`].
//! - [`Trace::attribute`]: where the failures of a whole trace started
//!   (root causes) and what they caused ([`Consequence`]s), with
//!   [`Trace::failing_flows`] and [`ErrorContext`] ([`failure`]'s docs
//!   give the rule).
//! - [`TailSampling`]: whether a settled trace is stored whole
//!   ([`Verdict`]); [`Trace::requests`] and [`Trace::calls`]: what it
//!   adds to the traffic statistics.
//! - [`ViewLimits`]: how much of a trace one answer shows; every rendering
//!   has a `_within` form that stays inside them and says whether it cut
//!   ([`Rendered`]), and [`ViewLimits::clip_span`],
//!   [`ViewLimits::clip_error`] and [`ViewLimits::clip_flow`] copy records
//!   for display within them.
//!
//! Everything here is a pure function of its input: no I/O, no clock, no
//! randomness, and the same output for the same spans in any order.
//!
//! ```
//! use omegi_core::flow::{Flow, Trace};
//! use omegi_core::{SpanId, SpanRecord, Status, TraceId};
//!
//! let span = |id: u64, parent: Option<u64>, service: &str, name: &'static str, start: u64, end: u64| {
//!     SpanRecord::new(TraceId(7), SpanId(id), name, start, end)
//!         .with_parent(parent.map(SpanId))
//!         .with_service(service)
//! };
//! let failed = span(3, Some(2), "payment", "charge", 2_000_000, 3_000_000)
//!     .with_status(Status::Error)
//!     .with_status_message("card declined");
//! let trace = Trace::from_spans(vec![
//!     failed,
//!     span(1, None, "user", "POST /checkout", 0, 5_000_000),
//!     span(2, Some(1), "user", "call payment", 1_000_000, 4_000_000),
//! ])
//! .unwrap();
//! let flow = Flow::for_span(&trace, SpanId(3)).unwrap();
//! assert_eq!(
//!     flow.summary(),
//!     "1. user     POST /checkout  +0.0ms  5.0ms  unset\n\
//!      2. payment  charge          +2.0ms  1.0ms  error\n\
//!      error: card declined\n"
//! );
//! ```

mod clip;
mod critical;
mod deps;
pub mod failure;
mod path;
mod render;
mod sampling;
mod trace;
mod traffic;

pub use clip::{clip, Clipped, ViewLimits, CLIP_MARKER, MAX_BAR_WIDTH};
pub use critical::CriticalSection;
pub use deps::{service_dependencies, ServiceEdge};
pub use failure::{Attribution, Cause, Consequence, ErrorContext, EXCEPTION_EVENT};
pub use path::{Flow, Hop};
pub use render::{format_duration, Rendered, OMITTED_MARKER};
pub use sampling::{TailSampling, Verdict};
pub use trace::{assemble, NodeId, SpanNode, Trace};
pub use traffic::{route_of, Call, Request};

use crate::ids::{SpanId, TraceId};

/// Why a trace or a flow could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// [`Trace::from_spans`] was given no span.
    #[error("no spans to assemble")]
    NoSpans,
    /// [`Trace::from_spans`] was given spans of more than one trace.
    #[error("spans of more than one trace: {first} and {other}")]
    MixedTraces {
        /// The trace id of the first span.
        first: TraceId,
        /// Another trace id found.
        other: TraceId,
    },
    /// The error was not captured inside a span.
    #[error("the error was not captured inside a span")]
    NotInSpan,
    /// The error belongs to another trace.
    #[error("the error belongs to trace {error}, not to trace {trace}")]
    TraceMismatch {
        /// The error's trace.
        error: TraceId,
        /// The trace it was matched against.
        trace: TraceId,
    },
    /// The span is not in the trace.
    #[error("span {span_id} is not in trace {trace_id}")]
    SpanNotFound {
        /// The span looked for.
        span_id: SpanId,
        /// The trace looked in.
        trace_id: TraceId,
    },
}
