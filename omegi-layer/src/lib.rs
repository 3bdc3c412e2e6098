//! A [`tracing_subscriber::Layer`] that captures spans, events and errors with
//! W3C trace context, and exports them in batches from a background thread.
//!
//! A service adds it in one expression and keeps the guard:
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let (omegi, _guard) = omegi_layer::layer("payment-service").build();
//! tracing_subscriber::registry().with(omegi).init();
//!
//! #[tracing::instrument(err)]
//! fn charge(order: u64) -> Result<(), std::io::Error> {
//!     Err(std::io::Error::other("card declined"))
//! }
//! let _ = charge(7); // captured as an error record with its span stack
//! ```
//!
//! Central types:
//! - [`OmegiLayer`]: the layer. It keeps per-span state in the registry's
//!   extensions and does no I/O on the application's thread.
//! - [`OmegiBuilder`]: service name, resource, [`Sink`], queue and limits.
//! - [`OmegiGuard`]: flushes on drop; [`ExportStats`] counts exported and
//!   dropped records.
//! - [`propagation`]: `traceparent`/`tracestate` over HTTP, a reqwest
//!   extension and a tower layer for axum/hyper servers.
//!
//! What is captured: spans (open, `Span::record`, close), events inside spans,
//! and errors — events at ERROR level, events with a `&dyn Error` field (with
//! the whole `source` chain), `#[instrument(err)]`, and panics when
//! [`OmegiBuilder::with_panic_hook`] is set. A span in which an error happens
//! gets status `Error`. A field `omegi.fingerprint` on an error event sets its
//! grouping key; `error.type` names its type.
//!
//! When the queue is full, records are dropped and counted: the application
//! never waits for the exporter.
//!
//! Feature flags: `reqwest` (default) for [`propagation::RequestBuilderExt`],
//! `tower` (default) for [`propagation::ServerTraceLayer`].
#![warn(missing_docs)]

mod builder;
mod export;
mod layer;
mod limits;
mod panic;
pub mod propagation;
pub mod sink;

pub use builder::{builder, layer, OmegiBuilder};
pub use export::{ExportStats, OmegiGuard};
pub use layer::OmegiLayer;
pub use sink::{MemorySink, NullSink, Sink, SinkError};
