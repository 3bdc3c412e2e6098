//! The library behind the `omegi` binary: what `omegi serve` does with the
//! requests it receives, usable without the binary.
//!
//! - [`otlp`]: OTLP/HTTP decoding. [`otlp::decode_traces`] and
//!   [`otlp::decode_logs`] turn the body of a `/v1/traces` or `/v1/logs`
//!   request (protobuf or JSON, gzip or not) into Omegi's
//!   [`SpanRecord`](omegi_core::SpanRecord)s and
//!   [`ErrorRecord`](omegi_core::ErrorRecord)s, grouped by
//!   [`Resource`](omegi_core::Resource), within the [`otlp::Limits`] (a
//!   decode budget checked on the wire first, record sizes, a time window);
//!   [`otlp::traces_response`] and [`otlp::error_response`] build the
//!   answers.
//!
//! ```
//! use omegi_core::Record;
//! use omegi_server::otlp::{decode_traces, Limits};
//!
//! // What any OpenTelemetry SDK sends as OTLP/JSON: one failed span.
//! let body = br#"{"resourceSpans":[{
//!   "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payment"}}]},
//!   "scopeSpans":[{"scope":{"name":"payment::api"},"spans":[{
//!     "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
//!     "name":"charge","kind":2,
//!     "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
//!     "status":{"code":2,"message":"card declined"}}]}]}]}"#;
//!
//! let decoded = decode_traces(body, "application/json", None, &Limits::default()).unwrap();
//! let batch = &decoded.resources[0];
//! assert_eq!(batch.resource.service, "payment");
//! // The span, and the error derived from its status.
//! let Record::Error(error) = &batch.records[1] else { panic!("expected an error") };
//! assert_eq!(error.message, "card declined");
//! assert_eq!(error.innermost_span(), Some("charge"));
//! ```
//!
//! - [`server`]: [`Server::start`](server::Server::start) runs `omegi serve`
//!   in-process (store, first credentials, its listeners with or without
//!   TLS, connection timeouts, graceful shutdown).
//! - [`grpc`]: the OTLP/gRPC receiver, on the same ingest path as OTLP/HTTP.
//! - [`tls`]: the certificate a server presents, and extra CAs for the CLI
//!   and webhooks.
//! - [`api`]: [`api::router`], the OTLP receiver and the REST API (see
//!   `API.md`), with [`auth`] (tokens) and [`alerts`] (SSE, webhooks in
//!   JSON or Slack's Block Kit, spikes, and the notes each alert carries).
//! - [`settle`]: the settle window: a trace's spans wait (in a
//!   write-ahead log and in memory) until the trace is complete; then its
//!   failures are attributed to their root causes (one failure, one issue)
//!   and it is tail-sampled.
//! - [`cli`]: the `omegi` command line, usable as functions.
//! - [`ui`]: the web UI served at `/`, built into the binary.
//!
//! This crate has no feature flags.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod grpc;
pub mod otlp;
pub mod server;
pub mod settle;
pub mod tls;
pub mod ui;
