//! W3C Trace Context over HTTP: inject into and extract from
//! [`http::HeaderMap`], join a remote trace, and the reqwest and tower
//! integrations.
//!
//! ```
//! use http::HeaderMap;
//! use omegi_layer::propagation;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
//! let remote = propagation::extract(&headers).expect("valid context");
//! let span = tracing::info_span!("handle request");
//! // With an Omegi layer installed, the span now belongs to the caller's trace.
//! propagation::set_remote_parent(&span, &remote);
//! ```

#[cfg(feature = "reqwest")]
mod client;
#[cfg(feature = "tower")]
mod server;

#[cfg(feature = "reqwest")]
pub use client::RequestBuilderExt;
#[cfg(feature = "tower")]
pub use server::{ServerTrace, ServerTraceLayer};

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use omegi_core::context::{TRACEPARENT, TRACESTATE};
use omegi_core::{RemoteContext, TraceParent};
use tracing::Span;

use crate::layer::data::{LocalTrace, SpanData};
use crate::layer::WithContext;

/// Runs `f` on the layer's data of `span`, if an Omegi layer records it.
fn with_span_data<R>(span: &Span, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(with_context) = dispatch.downcast_ref::<WithContext>() {
            with_context.with(id, &mut |data| {
                if let Some(f) = f.take() {
                    out = Some(f(data));
                }
            });
        }
    });
    out
}

/// The trace context of `span`, as it would be sent to a callee; `None` if
/// the span is disabled or no Omegi layer records it.
pub fn span_context(span: &Span) -> Option<RemoteContext> {
    with_span_data(span, |data| {
        let parent = TraceParent::new(data.trace_id, data.span_id);
        RemoteContext {
            parent: match data.local_trace.upstream_flags {
                Some(flags) => parent.with_flags(flags),
                None => parent,
            },
            state: data.local_trace.tracestate.clone(),
        }
    })
}

/// The trace context of the current span.
pub fn current_context() -> Option<RemoteContext> {
    span_context(&Span::current())
}

/// Makes `span` join the remote trace of `context`: it takes the remote trace
/// id, the remote span becomes its parent, and the `tracestate` is kept for
/// forwarding. Call it right after creating the span, before entering it or
/// creating children. Returns `false` if no Omegi layer records the span.
///
/// Calls made inside the span forward the caller's `sampled` and `random`
/// flags (other flag bits are set to zero, as the W3C specification asks):
/// the span is recorded either way, but a service downstream that samples
/// by the flag follows the caller's decision.
pub fn set_remote_parent(span: &Span, context: &RemoteContext) -> bool {
    with_span_data(span, |data| {
        data.trace_id = context.parent.trace_id;
        data.parent = Some(context.parent.parent_id);
        data.remote_parent = true;
        data.local_trace = Arc::new(LocalTrace {
            tracestate: context.state.clone(),
            upstream_flags: Some(context.parent.propagated_flags()),
            ..LocalTrace::default()
        });
    })
    .is_some()
}

/// Writes `traceparent` (and `tracestate`, when not empty) into `headers`.
pub fn inject_context(context: &RemoteContext, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::from_str(&context.parent.to_string()) {
        headers.insert(TRACEPARENT, value);
    }
    headers.remove(TRACESTATE);
    if !context.state.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&context.state.to_string()) {
            headers.insert(TRACESTATE, value);
        }
    }
}

/// Writes the current span's context into `headers`; does nothing outside a
/// recorded span.
pub fn inject(headers: &mut HeaderMap) {
    if let Some(context) = current_context() {
        inject_context(&context, headers);
    }
}

/// Reads the trace context from request headers. `None` when `traceparent`
/// is missing or invalid: the receiver then starts a new trace.
pub fn extract(headers: &HeaderMap) -> Option<RemoteContext> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = parents.next()?.to_str().ok()?;
    if parents.next().is_some() {
        // Several traceparent headers are ambiguous; the spec says to ignore them.
        return None;
    }
    let states = headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    RemoteContext::from_headers(Some(parent), states)
}
