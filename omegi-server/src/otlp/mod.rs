//! OTLP/HTTP decoding: turns the body of a `POST /v1/traces` or
//! `POST /v1/logs` request into Omegi's model.
//!
//! Any OpenTelemetry SDK (or Collector) can send to `omegi serve`; this module
//! is the whole translation between their wire format and
//! [`SpanRecord`]/[`ErrorRecord`]. It does no I/O: a handler passes the body
//! and two headers, and gets back records grouped by [`Resource`] plus the
//! numbers for the OTLP response.
//!
//! # Wiring it into a handler
//!
//! ```no_run
//! use omegi_server::otlp::{self, DecodeError, Limits};
//!
//! /// What an axum handler for `POST /v1/traces` does with the request.
//! fn handle_traces(
//!     body: &[u8],
//!     content_type: &str,             // the `Content-Type` header, "" if absent
//!     content_encoding: Option<&str>, // the `Content-Encoding` header
//! ) -> (u16, &'static str, Vec<u8>) {
//!     match otlp::decode_traces(body, content_type, content_encoding, &Limits::default()) {
//!         Ok(decoded) => {
//!             for batch in &decoded.resources {
//!                 // store batch.records (spans and errors) for batch.resource here
//!                 let _ = (&batch.resource, &batch.records);
//!             }
//!             // 200 with an ExportTraceServiceResponse in the request's format
//!             // (carries `partial_success` when some spans were rejected).
//!             let (ct, body) = otlp::traces_response(&decoded, content_type);
//!             (200, ct, body)
//!         }
//!         Err(err) => {
//!             // Nothing is stored. 415 for a wrong content type or encoding,
//!             // 413 for a body (or its strings) too large, 400 for
//!             // everything else (too many objects, invalid data).
//!             let (ct, body) = otlp::error_response(&err, content_type);
//!             (err.http_status(), ct, body)
//!         }
//!     }
//! }
//! ```
//!
//! `/v1/logs` is the same with [`decode_logs`] and [`logs_response`].
//!
//! # The wire format
//!
//! What is accepted (content types, encodings, the decode budget, OTLP/JSON's
//! rules), how ids are validated (all or nothing), the time window, the
//! record limits, how spans, events and log records map to
//! [`SpanRecord`]/[`EventRecord`], how errors are derived, and what the round
//! trip through OTLP loses are described for users in `API.md`, section
//! "How OTLP maps to Omegi's model". The code is laid out the same way:
//! `budget` (the decode budget, checked on the wire), `json` (OTLP/JSON),
//! `ids` (id validation), `attributes` (values, attributes, and the ones
//! Omegi reads for itself), `convert` (spans, events, resources) and
//! `errors` (errors from exception events, ERROR logs and failed spans).
//!
//! [`SpanRecord`]: omegi_core::SpanRecord
//! [`ErrorRecord`]: omegi_core::ErrorRecord
//! [`EventRecord`]: omegi_core::EventRecord

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omegi_core::limits::{RecordLimits, TimeWindow, Truncation};
use omegi_core::{Record, Resource};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

mod attributes;
mod budget;
mod convert;
mod errors;
mod ids;
mod json;

#[cfg(test)]
mod tests;

pub use budget::{scan_logs, scan_traces, Cap, DecodeBudget, Tally, VALUE_DEPTH_CEILING};

/// Bounds on what one request may cost and hold. [`Default`] gives the
/// values in the field docs; `omegi serve` sets each from a flag (see the
/// limits table of `API.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest body accepted, counted after decompression (default
    /// 32 MiB).
    pub max_decompressed_bytes: usize,
    /// How many objects of each kind a request may hold, checked before it
    /// is decoded.
    pub budget: DecodeBudget,
    /// How large each kept span, event, error and resource may be.
    pub records: RecordLimits,
    /// Errors derived from the `exception` events of one span; further
    /// exception events are kept as events (within
    /// [`RecordLimits::max_events`]) but raise no error (default 32).
    pub max_errors_per_span: usize,
    /// Errors derived from one request; further ones are not derived, and
    /// further ERROR log records are rejected (default 1,000).
    pub max_errors_per_request: usize,
    /// Bytes (as estimated in memory) of span stacks and breadcrumbs that
    /// the errors of one request may copy from the spans and events around
    /// them; once spent, errors keep the root and innermost frame of their
    /// span stack, without fields, and no breadcrumbs (default 8 MiB).
    pub max_error_context_bytes: usize,
    /// Spans and ERROR log records older than this when they arrive are
    /// rejected (default none: `omegi serve` uses its retention).
    pub max_age: Option<Duration>,
    /// Spans and ERROR log records more than this ahead of the server's
    /// clock are rejected; a kept span that ends later ends at its start
    /// (default 1 hour).
    pub max_ahead: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 32 * 1024 * 1024,
            budget: DecodeBudget::default(),
            records: RecordLimits::default(),
            max_errors_per_span: 32,
            max_errors_per_request: 1_000,
            max_error_context_bytes: 8 * 1024 * 1024,
            max_age: None,
            max_ahead: Duration::from_secs(3600),
        }
    }
}

impl Limits {
    /// The window of acceptable times for a request received at `now_ns`.
    pub fn window(&self, now_ns: u64) -> TimeWindow {
        TimeWindow::around(now_ns, self.max_age, self.max_ahead)
    }
}

/// The records of one resource (one service instance) in a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRecords {
    /// The process that sent them.
    pub resource: Resource,
    /// Its spans and the errors derived from them (traces), or its errors
    /// (logs), in request order; errors follow the spans they come from.
    pub records: Vec<Record>,
}

/// A decoded request: records grouped by resource, and what was left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// One entry per OTLP `ResourceSpans`/`ResourceLogs`, in request order.
    pub resources: Vec<ResourceRecords>,
    /// Spans (for traces) or log records (for logs) left out as malformed:
    /// OTLP's `rejected_spans`/`rejected_log_records`.
    pub rejected: u64,
    /// Why they were left out (the first reason), for the partial success.
    pub rejection_message: Option<String>,
    /// Log records below ERROR severity: accepted and not kept (always 0 for
    /// traces).
    pub ignored: u64,
    /// Errors not derived because of [`Limits::max_errors_per_span`],
    /// [`Limits::max_errors_per_request`] or the time window; the spans
    /// they come from are kept.
    pub dropped_errors: u64,
    /// Why (the first reason), for the partial success.
    pub dropped_errors_message: Option<String>,
    /// What the record limits cut and dropped from what is kept.
    pub truncation: Truncation,
}

impl Decoded {
    /// Every record, with the resource it came from.
    pub fn records(&self) -> impl Iterator<Item = (&Resource, &Record)> {
        self.resources
            .iter()
            .flat_map(|r| r.records.iter().map(move |rec| (&r.resource, rec)))
    }

    /// The number of span records.
    pub fn span_count(&self) -> usize {
        self.records()
            .filter(|(_, r)| matches!(r, Record::Span(_)))
            .count()
    }

    /// The number of error records.
    pub fn error_count(&self) -> usize {
        self.records()
            .filter(|(_, r)| matches!(r, Record::Error(_)))
            .count()
    }

    fn reject(&mut self, why: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.rejection_message.is_none() {
            self.rejection_message = Some(why());
        }
    }

    fn drop_errors(&mut self, n: u64, why: impl FnOnce() -> String) {
        self.dropped_errors += n;
        if self.dropped_errors_message.is_none() {
            self.dropped_errors_message = Some(why());
        }
    }

    /// The message of the partial success: what was rejected, which errors
    /// were not derived and what was truncated; `None` when nothing was.
    pub fn partial_success_message(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.rejected > 0 {
            parts.push(self.rejection_message.clone().unwrap_or_default());
        }
        if self.dropped_errors > 0 {
            parts.push(format!(
                "{} errors not derived: {}",
                self.dropped_errors,
                self.dropped_errors_message.as_deref().unwrap_or("")
            ));
        }
        let t = &self.truncation;
        if !t.is_empty() {
            parts.push(format!(
                "truncated by the record limits: {} texts cut, {} attributes and {} events dropped",
                t.texts_cut, t.attributes_dropped, t.events_dropped
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Which id a [`DecodeError::InvalidTraceId`] or
/// [`DecodeError::InvalidSpanId`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    /// The id does not have the required number of bytes.
    Length {
        /// Bytes found.
        got: usize,
        /// Bytes required (16 for a trace id, 8 for a span id).
        expected: usize,
    },
    /// The id is all zeros, which OTLP and W3C reserve as invalid.
    AllZero,
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdProblem::Length { got, expected } => {
                write!(f, "{got} bytes, expected {expected}")
            }
            IdProblem::AllZero => f.write_str("all zero"),
        }
    }
}

/// Why a request body could not be decoded. Nothing of it is kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The `Content-Type` is neither protobuf nor JSON.
    #[error("unsupported content type {0:?}: expected application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// The `Content-Encoding` is neither absent, `identity` nor `gzip`.
    #[error("unsupported content encoding {0:?}: expected gzip or identity")]
    UnsupportedEncoding(String),
    /// The body says gzip but is not valid gzip.
    #[error("invalid gzip body: {0}")]
    InvalidGzip(String),
    /// The (decompressed) body is larger than [`Limits::max_decompressed_bytes`].
    #[error(
        "body too large: more than {limit} bytes after decompression (max_decompressed_bytes)"
    )]
    BodyTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The body as sent is larger than the receiver accepts (before
    /// decompression).
    #[error("request body too large: more than {limit} bytes (body_limit)")]
    RequestTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The request holds more objects than the [`DecodeBudget`] allows.
    #[error("request over budget: {} ({})", Described(*cap, *limit), cap.name())]
    OverBudget {
        /// The cap that was exceeded.
        cap: Cap,
        /// Its value.
        limit: usize,
    },
    /// The body is not a valid protobuf export request.
    #[error("invalid protobuf: {0}")]
    Protobuf(String),
    /// The body is not a valid OTLP/JSON export request.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// What is wrong there.
        message: String,
    },
    /// A trace id has the wrong length or is all zero.
    #[error("invalid trace id {id:?} of {context}: {problem}")]
    InvalidTraceId {
        /// The id as received, in hex.
        id: String,
        /// Where it is (which span or log record).
        context: String,
        /// What is wrong with it.
        problem: IdProblem,
    },
    /// A span id or parent span id has the wrong length or is all zero.
    #[error("invalid span id {id:?} of {context}: {problem}")]
    InvalidSpanId {
        /// The id as received, in hex.
        id: String,
        /// Where it is (which span or log record, and which field).
        context: String,
        /// What is wrong with it.
        problem: IdProblem,
    },
}

/// A cap and its value, for a message.
struct Described(Cap, usize);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(self.1, f)
    }
}

impl DecodeError {
    /// The HTTP status an OTLP/HTTP server answers with: 415 for an
    /// unsupported content type or encoding, 413 for too many bytes (a body
    /// or its strings too large), 400 otherwise (too many objects, invalid
    /// data; none of these is worth retrying).
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::UnsupportedContentType(_) | DecodeError::UnsupportedEncoding(_) => 415,
            DecodeError::BodyTooLarge { .. }
            | DecodeError::RequestTooLarge { .. }
            | DecodeError::OverBudget {
                cap: Cap::StringBytes,
                ..
            } => 413,
            _ => 400,
        }
    }

    /// The `google.rpc.Code` of the answer's `Status`: `RESOURCE_EXHAUSTED`
    /// (8) for a request over a limit, `INVALID_ARGUMENT` (3) otherwise.
    pub fn rpc_code(&self) -> i32 {
        match self {
            DecodeError::BodyTooLarge { .. }
            | DecodeError::RequestTooLarge { .. }
            | DecodeError::OverBudget { .. } => 8,
            _ => 3,
        }
    }
}

/// The wire format of a request, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Format {
    /// The format named by a `Content-Type` header value.
    pub fn from_content_type(content_type: &str) -> Result<Format, DecodeError> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(DecodeError::UnsupportedContentType(content_type.to_owned())),
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Decodes the body of an OTLP/HTTP `POST /v1/traces` request into span
/// records and the errors derived from them (see the module docs), with
/// the time window around now.
pub fn decode_traces(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Decoded, DecodeError> {
    let request = decode_request(
        body,
        content_type,
        content_encoding,
        limits,
        scan_traces,
        json::traces,
    )?;
    convert::traces(request, limits, &limits.window(now_ns()))
}

/// Decodes the body of an OTLP/HTTP `POST /v1/logs` request into the errors
/// of its ERROR and FATAL log records (see the module docs), with the time
/// window around now; other records are counted in [`Decoded::ignored`].
pub fn decode_logs(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Decoded, DecodeError> {
    let request = decode_request(
        body,
        content_type,
        content_encoding,
        limits,
        scan_logs,
        json::logs,
    )?;
    convert::logs(request, limits, &limits.window(now_ns()))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Decompresses a request body, then decodes it as protobuf (after the
/// budget scan `scan`) or, by its content type, as OTLP JSON with `json`
/// (which counts against the budget while it parses).
fn decode_request<R: Message + Default>(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
    scan: fn(&[u8], &DecodeBudget) -> Result<Tally, DecodeError>,
    json: fn(&[u8], &DecodeBudget) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    let format = Format::from_content_type(content_type)?;
    let body = decompress(body, content_encoding, limits)?;
    match format {
        Format::Protobuf => {
            scan(&body, &limits.budget)?;
            R::decode(&*body).map_err(|e| DecodeError::Protobuf(e.to_string()))
        }
        Format::Json => json(&body, &limits.budget),
    }
}

/// The body of the `200 OK` answer to `/v1/traces`, in the request's format
/// (protobuf when the content type is not understood), with its content type.
pub fn traces_response(decoded: &Decoded, content_type: &str) -> (&'static str, Vec<u8>) {
    success_response(decoded, content_type, "rejectedSpans", |partial| {
        ExportTraceServiceResponse {
            partial_success: partial.map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }
        .encode_to_vec()
    })
}

/// The body of the `200 OK` answer to `/v1/logs`, in the request's format
/// (protobuf when the content type is not understood), with its content type.
pub fn logs_response(decoded: &Decoded, content_type: &str) -> (&'static str, Vec<u8>) {
    success_response(decoded, content_type, "rejectedLogRecords", |partial| {
        ExportLogsServiceResponse {
            partial_success: partial.map(|(rejected_log_records, error_message)| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }
        .encode_to_vec()
    })
}

/// A success answer: the partial success (rejected count and message) when
/// something was rejected, as JSON under `rejected_key` or as the protobuf
/// message `protobuf` builds.
fn success_response(
    decoded: &Decoded,
    content_type: &str,
    rejected_key: &str,
    protobuf: impl FnOnce(Option<(i64, String)>) -> Vec<u8>,
) -> (&'static str, Vec<u8>) {
    let format = Format::from_content_type(content_type).unwrap_or(Format::Protobuf);
    // A rejected count of 0 with a message is a warning (the OTLP spec).
    let partial = decoded
        .partial_success_message()
        .map(|message| (clamp_i64(decoded.rejected), message));
    let body = match format {
        Format::Protobuf => protobuf(partial),
        Format::Json => json::partial_success_json(rejected_key, partial),
    };
    (format.content_type(), body)
}

/// The body of an error answer: a `google.rpc.Status` with the error's
/// code ([`DecodeError::rpc_code`]) and message, in the request's format
/// (protobuf when the content type is not understood), with its content type.
pub fn error_response(error: &DecodeError, content_type: &str) -> (&'static str, Vec<u8>) {
    status_response(error.rpc_code(), error.to_string(), content_type)
}

/// The body of a `400` answer for data that decoded but cannot be stored:
/// a `google.rpc.Status` with code 3 (INVALID_ARGUMENT), in the request's
/// format, with its content type.
pub fn invalid_argument_response(message: &str, content_type: &str) -> (&'static str, Vec<u8>) {
    status_response(3, message.to_owned(), content_type)
}

/// The body of a `503` answer: a `google.rpc.Status` with code 14
/// (UNAVAILABLE), in the request's format, with its content type.
pub fn unavailable_response(message: &str, content_type: &str) -> (&'static str, Vec<u8>) {
    status_response(14, message.to_owned(), content_type)
}

/// A `google.rpc.Status` with any code and message, in the request's
/// format (protobuf when the content type is not understood), with its
/// content type; messages are cut to 1 KiB.
pub fn status_response(code: i32, message: String, content_type: &str) -> (&'static str, Vec<u8>) {
    let format = Format::from_content_type(content_type).unwrap_or(Format::Protobuf);
    let mut message = message;
    omegi_core::limits::truncate_text(&mut message, MAX_STATUS_MESSAGE);
    let status = RpcStatus { code, message };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    (format.content_type(), body)
}

/// The longest message of an error answer.
const MAX_STATUS_MESSAGE: usize = 1024;

/// `google.rpc.Status`, the body of OTLP/HTTP error responses (details left out).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Undoes the content encoding, never producing more than the limit; an
/// unencoded body is not copied.
fn decompress<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    let too_large = DecodeError::BodyTooLarge {
        limit: limits.max_decompressed_bytes,
    };
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => {
            if body.len() > limits.max_decompressed_bytes {
                return Err(too_large);
            }
            Ok(Cow::Borrowed(body))
        }
        Some("gzip") | Some("x-gzip") => {
            let limit = limits.max_decompressed_bytes;
            // Read one byte past the limit to tell "exactly at" from "over".
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            flate2::read::MultiGzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::InvalidGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(too_large);
            }
            Ok(Cow::Owned(out))
        }
        Some(_) => Err(DecodeError::UnsupportedEncoding(
            content_encoding.unwrap_or_default().to_owned(),
        )),
    }
}
