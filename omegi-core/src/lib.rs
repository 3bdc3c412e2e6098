//! Omegi's pure logic, with no I/O: what the layer, the store, the server and
//! other tools share.
//!
//! - [`TraceId`] and [`SpanId`]: small `Copy` ids with hex `Display`/`FromStr`.
//! - [`TraceParent`] and [`TraceState`]: the W3C Trace Context codec.
//! - [`SpanRecord`], [`EventRecord`], [`ErrorRecord`]: the captured-data model,
//!   sent by the layer as [`Record`]s; each is built with `new` and `with_*`
//!   methods (`SpanRecord::new(trace, span, name, start, end).with_parent(..)`),
//!   so that new fields can be added without breaking its users.
//! - [`fingerprint()`]: the stable grouping key of an error.
//! - [`Trace`], [`Flow`], [`Hop`]: spans assembled into a tree and the path
//!   of an error through the services ([`flow`]); [`Trace::attribute`]:
//!   which failures of a whole trace are root causes and which are their
//!   [`Consequence`]s; [`TailSampling`]: which settled traces are kept.
//! - [`Note`] and [`NoteGraph`]: error notes in Obsidian-flavoured Markdown,
//!   their links, embeds and graph queries, and each note rendered to safe
//!   HTML for one reader from the same parse and resolution
//!   ([`note::to_html`]); the server and the web UI show that HTML and
//!   understand no Markdown themselves ([`note`]).
//! - [`RecordLimits`] and [`TimeWindow`]: how large a record taken from
//!   outside input may be, and which times it may carry ([`limits`]).
//! - [`ErrorChain`]: an error with its causes, each printed once. Omegi's
//!   errors say only their own part in `Display` and give the cause as
//!   `source()`; whoever prints one for a person prints the chain.
//!
//! ```
//! use omegi_core::{RemoteContext, SpanId, TraceParent};
//!
//! // An incoming request carries W3C trace context...
//! let ctx = RemoteContext::from_headers(
//!     Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
//!     ["vendor=abc"],
//! )
//! .expect("valid traceparent");
//! // ...and the outgoing call forwards the same trace with our own span as
//! // parent, and the caller's sampling decision.
//! let out = TraceParent::new(ctx.parent.trace_id, SpanId(0x1234))
//!     .with_flags(ctx.parent.propagated_flags());
//! assert_eq!(out.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000001234-01");
//! assert_eq!(ctx.state.to_string(), "vendor=abc");
//! ```
//!
//! This crate has no feature flags and depends only on serde, thiserror and uuid,
//! plus pulldown-cmark (with its HTML writer and escaping), serde_norway (YAML) and
//! serde_json for [`note`].
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod chain;
pub mod context;
pub mod fingerprint;
pub mod flow;
pub mod ids;
pub mod limits;
pub mod model;
pub mod note;

pub use chain::ErrorChain;
pub use context::{RemoteContext, TraceParent, TraceParentError, TraceState};
pub use fingerprint::{fingerprint, normalize_message, Fingerprint};
pub use flow::{assemble, Consequence, Flow, FlowError, Hop, TailSampling, Trace};
pub use ids::{IdError, SpanId, TraceId};
pub use limits::{RecordLimits, TimeWindow};
pub use model::{
    attribute, service_name, Attribute, CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level,
    Record, Resource, SpanFrame, SpanKind, SpanRecord, Status, Text, Value, UNKNOWN_SERVICE,
};
pub use note::{Note, NoteGraph, NoteId, Visibility};
