//! A [`tracing_subscriber::Layer`] that captures spans, events and errors with
//! W3C trace context, and exports them in batches from a background thread.
//!
//! A service adds it in one expression and keeps the guard. Without a sink
//! of its own, the layer sends OTLP where the OpenTelemetry variables say
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, …; `http://localhost:4318` when none is
//! set), as [`sink::OtlpSink`] describes:
//!
//! ```no_run
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
//! - [`OmegiLayer`]: the layer. It keeps per-span state in a table of its
//!   own, by span id, and does no I/O on the application's thread.
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
//! # Limits
//!
//! What the application hands the layer is bounded before it is kept, so
//! that a huge value, a deep recursion or a sink that hangs costs the
//! application a known amount of memory. Each limit is a method of
//! [`OmegiBuilder`]:
//!
//! | what | method | default | when exceeded |
//! |---|---|---|---|
//! | a field value, message, error message or cause | [`max_value_bytes`](OmegiBuilder::max_value_bytes) | 4 KiB | cut on a char boundary by the collector's rule (`omegi_core::limits`), ending with `…[truncated N bytes]` within the limit; formatting a `%`/`?` value keeps no more than the limit and stops 64 KiB past it (the marker then says `N+`) |
//! | an `exception.stacktrace` field (the panic hook's backtrace) | [`max_stacktrace_bytes`](OmegiBuilder::max_stacktrace_bytes) | 32 KiB | cut the same way |
//! | causes (`Error::source`) per error | [`max_error_causes`](OmegiBuilder::max_error_causes) | 32 | the rest of the chain is left out |
//! | events per span | [`max_events_per_span`](OmegiBuilder::max_events_per_span) | 128 | later events are counted in the span's `dropped_events` (OTLP `dropped_events_count`) |
//! | breadcrumbs per trace and error, by count | [`breadcrumbs`](OmegiBuilder::breadcrumbs) | 32 | the oldest are forgotten |
//! | breadcrumbs per trace and error, by estimated bytes | [`breadcrumb_bytes`](OmegiBuilder::breadcrumb_bytes) | 64 KiB | the oldest are forgotten; an event larger than this is not a breadcrumb |
//! | frames of an error's span stack | [`max_span_frames`](OmegiBuilder::max_span_frames) | 32 | the root and the nearest spans are kept; the number left out is the error's field `omegi.dropped_span_frames` |
//! | span fields in an error's span stack, by estimated bytes | [`span_stack_bytes`](OmegiBuilder::span_stack_bytes) | 64 KiB | nearest frames first; fields past it are left out and counted in the error's field `omegi.dropped_span_fields` |
//! | records waiting for export | [`queue_capacity`](OmegiBuilder::queue_capacity) | 16,384 | dropped, counted in [`ExportStats::dropped`] |
//! | memory of the records held for export, by estimated bytes | [`queue_bytes`](OmegiBuilder::queue_bytes) | 8 MiB | dropped, counted in [`ExportStats::dropped`]; [`ExportStats::held_bytes`] shows what is held |
//!
//! A span has at most the fields its callsite declares (`tracing` allows
//! 32), so fields per span need no limit of their own. Estimates err on the
//! high side: they count each text at its allocated size and a queued span
//! twice (its data and the record the exporter makes of it). A sink that
//! never returns thus holds at most `queue_bytes`, beside the queue's slots,
//! allocated up front (about 40 bytes per record of `queue_capacity`).
//!
//! # Environment
//!
//! The layer reads the OpenTelemetry variables, from the process or from an
//! [`Environment`] given to [`OmegiBuilder::environment`]; what the code sets
//! wins:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED=true` | the layer captures nothing, exports nothing and installs no panic hook |
//! | `OTEL_SERVICE_NAME` | the service name, unless the code names it ([`layer`] does, [`builder`] does not) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | resource attributes (`key=value,…`, percent-decoded); its `service.name` names the service last |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `…_ENDPOINT`, `…_HEADERS`, `…_TIMEOUT`, `…_CERTIFICATE`, and their `…_TRACES_…`/`…_LOGS_…` forms | the default sink's settings, see [`sink::OtlpSink`] |
//!
//! Discarding is an explicit choice: `.with_sink(NullSink)`. When the default
//! sink cannot be configured, [`OmegiBuilder::try_build`] says why, and
//! [`OmegiBuilder::build`] prints it and counts every record as failed.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `otlp` | on | [`sink::OtlpSink`], the default sink: OTLP/HTTP with protobuf (ureq), TLS with rustls and the bundled Mozilla roots (`webpki-roots`) or a custom CA |
//! | `grpc` | on | OTLP/gRPC for the OTLP sink (tonic, with a single-threaded Tokio runtime on the exporter thread); implies `otlp` |
//! | `reqwest` | on | [`propagation::RequestBuilderExt`]: trace context on outgoing reqwest requests |
//! | `tower` | on | [`propagation::ServerTraceLayer`]: trace context from incoming requests, server spans |
//! | `store` | off | `sink::StoreSink`: embedded mode, records written into an omegi-store database |
#![warn(missing_docs)]
// `unsafe` is allowed in three places alone: `Layer::downcast_raw` (layer/mod.rs), the
// clock read (`now_ns`, layer/data.rs) and the prefetch of returned span data (export.rs).
#![deny(unsafe_code)]

mod builder;
mod env;
mod export;
mod hash;
mod layer;
mod limits;
mod panic;
pub mod propagation;
pub mod sink;

pub use builder::{builder, layer, OmegiBuilder};
pub use env::Environment;
pub use export::{ExportStats, OmegiGuard};
pub use layer::OmegiLayer;
pub use sink::{MemorySink, NullSink, Sink, SinkError};
