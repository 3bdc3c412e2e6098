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
//!             // 413 for a body too large, 400 for everything else.
//!             let (ct, body) = otlp::error_response(&err, content_type);
//!             (err.http_status(), ct, body)
//!         }
//!     }
//! }
//! ```
//!
//! `/v1/logs` is the same with [`decode_logs`] and [`logs_response`].
//!
//! # What is accepted
//!
//! - `Content-Type`: `application/x-protobuf` (also `application/protobuf`)
//!   or `application/json`, parameters such as `; charset=utf-8` ignored.
//!   Anything else is [`DecodeError::UnsupportedContentType`].
//! - `Content-Encoding`: none, `identity` or `gzip`. The body is never
//!   decompressed past [`Limits::max_decompressed_bytes`], so a gzip bomb
//!   costs at most that much memory ([`DecodeError::BodyTooLarge`]).
//! - JSON follows the OTLP/JSON rules: lowerCamelCase keys, trace and span ids
//!   as hex strings (either case), enums as integers (their proto names are
//!   accepted too), 64-bit integers as numbers or decimal strings, doubles as
//!   numbers or `"NaN"`/`"Infinity"`/`"-Infinity"`, bytes as base64, `null`
//!   and missing fields as the default value, unknown fields ignored. The
//!   serde support of `opentelemetry-proto` misses some of these (an empty
//!   `arrayValue: {}` or a `null` is an error there), so the mapping lives in
//!   this module.
//!
//! # Validation: all or nothing
//!
//! Every span must have a 16-byte trace id and an 8-byte span id, neither all
//! zero; a parent span id is empty (a root; all zero counts as empty too) or
//! 8 bytes. A log record's trace and span ids are optional: empty or all zero
//! means "not in a span", any other length is invalid. One invalid id rejects
//! the whole request with [`DecodeError::InvalidTraceId`] or
//! [`DecodeError::InvalidSpanId`], so the server answers 400 and stores
//! nothing. A span without a start time is not an error of the request: it is
//! left out and counted in [`Decoded::rejected`] (OTLP's partial success);
//! likewise an ERROR log record with neither a time nor an observed time.
//!
//! # Spans
//!
//! Each OTLP span becomes a [`SpanRecord`]: name, kind, start and end,
//! status code and message, the service from the resource's `service.name`
//! (`unknown_service` when absent), `parent_span_id` (empty → `None`) and
//! `remote_parent` from the span flags. Attributes become [`Attribute`]s;
//! arrays, key-value lists and bytes become JSON text (bytes as a base64 JSON
//! string). `code.filepath`/`code.file.path`, `code.lineno`/
//! `code.line.number` and `code.namespace` become the [`CodeLocation`];
//! `omegi.target` (else the instrumentation scope's name) the target;
//! `omegi.level` the level (default INFO). Those attributes are not repeated
//! in `attributes`. Events become [`EventRecord`]s the same way: name →
//! message, `level` attribute → level (default INFO), other attributes →
//! fields.
//!
//! # Errors
//!
//! Errors are derived as [`ErrorRecord`]s of kind [`ErrorKind::Remote`]:
//!
//! 1. Every span event named `exception`: `exception.type` → error type,
//!    `exception.message` → message (else the type, else `"exception"`),
//!    other attributes (including `exception.stacktrace`) → fields; trace and
//!    span ids from the span; the span stack is the chain of the span's
//!    ancestors found in the same request, root first, ending with the span
//!    itself; breadcrumbs are the other events of the same trace in the
//!    request that happened no later than the exception, oldest first (the last
//!    [`MAX_BREADCRUMBS`]).
//! 2. Every log record with `severity_number >= 17` (ERROR and FATAL): message
//!    from `exception.message`, else the body (non-string bodies as JSON
//!    text); trace and span ids from the record (`None` when absent); breadcrumbs
//!    are the earlier non-error log records of the same trace in the request.
//!    The span stack is empty unless `omegi.span_stack` says otherwise: the
//!    spans are in another request, so the store joins them later.
//! 3. A span with status Error and no `exception` event yields one error from
//!    its status message (else `"span <name> failed"`), with no error type —
//!    except when a descendant in the same request also failed (the deepest
//!    failed span reports, so one failure is not counted at every level) and
//!    except when the resource's `telemetry.sdk.name` is `omegi` (Omegi's own
//!    layer already sends each of its errors as an ERROR log record).
//!
//! On errors of both sources, `thread.name` (else `thread.id`) → thread,
//! `code.*` → location, `omegi.target` (else the scope name) → target, and the
//! attributes that Omegi's OTLP sink writes restore what the wire has no place
//! for: `omegi.error.kind` → kind (instead of `Remote`), `omegi.fingerprint`
//! → fingerprint override, `omegi.causes` (array of strings) → causes (and
//! `exception.stacktrace`, which then only repeats them, is dropped),
//! `omegi.span_stack` and `omegi.breadcrumbs` (JSON of [`SpanFrame`]s and
//! [`EventRecord`]s) → span stack and breadcrumbs. None of these attributes
//! appears in the error's fields.
//!
//! # What the round trip through OTLP loses
//!
//! Omegi's sink and this decoder are inverse for all data except: an
//! unsigned attribute above `i64::MAX` comes back as a string; the status
//! message of a span whose status is `Ok` or `Unset` (OTLP keeps messages for
//! `Error` only); a field named like one of the attributes above is taken as
//! that attribute.
//!
//! [`SpanRecord`]: omegi_core::SpanRecord
//! [`ErrorRecord`]: omegi_core::ErrorRecord
//! [`EventRecord`]: omegi_core::EventRecord
//! [`SpanFrame`]: omegi_core::SpanFrame
//! [`Attribute`]: omegi_core::Attribute
//! [`CodeLocation`]: omegi_core::CodeLocation
//! [`ErrorKind::Remote`]: omegi_core::ErrorKind::Remote

use std::fmt;
use std::io::Read;

use omegi_core::{Record, Resource};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

mod convert;
mod errors;
mod json;

#[cfg(test)]
mod tests;

pub use errors::MAX_BREADCRUMBS;

/// Bounds on what one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body accepted, counted after decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    /// 32 MiB after decompression.
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 32 * 1024 * 1024,
        }
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
    #[error("body too large: more than {limit} bytes after decompression")]
    BodyTooLarge {
        /// The limit that was exceeded.
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

impl DecodeError {
    /// The HTTP status an OTLP/HTTP server answers with: 415 for an
    /// unsupported content type or encoding, 413 for a body too large, 400
    /// otherwise (none of these is worth retrying).
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::UnsupportedContentType(_) | DecodeError::UnsupportedEncoding(_) => 415,
            DecodeError::BodyTooLarge { .. } => 413,
            _ => 400,
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
/// records and the errors derived from them (see the module docs).
pub fn decode_traces(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Decoded, DecodeError> {
    let request = decode_request(body, content_type, content_encoding, limits, json::traces)?;
    convert::traces(request)
}

/// Decodes the body of an OTLP/HTTP `POST /v1/logs` request into the errors
/// of its ERROR and FATAL log records (see the module docs); other records
/// are counted in [`Decoded::ignored`].
pub fn decode_logs(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Decoded, DecodeError> {
    let request = decode_request(body, content_type, content_encoding, limits, json::logs)?;
    convert::logs(request)
}

/// Decompresses a request body and decodes it as protobuf or, by its
/// content type, as OTLP JSON with `json`.
fn decode_request<R: Message + Default>(
    body: &[u8],
    content_type: &str,
    content_encoding: Option<&str>,
    limits: &Limits,
    json: fn(&[u8]) -> Result<R, DecodeError>,
) -> Result<R, DecodeError> {
    let format = Format::from_content_type(content_type)?;
    let body = decompress(body, content_encoding, limits)?;
    match format {
        Format::Protobuf => {
            R::decode(body.as_slice()).map_err(|e| DecodeError::Protobuf(e.to_string()))
        }
        Format::Json => json(&body),
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
    let partial = (decoded.rejected > 0).then(|| {
        (
            clamp_i64(decoded.rejected),
            decoded.rejection_message.clone().unwrap_or_default(),
        )
    });
    let body = match format {
        Format::Protobuf => protobuf(partial),
        Format::Json => json::partial_success_json(rejected_key, partial),
    };
    (format.content_type(), body)
}

/// The body of an error answer: a `google.rpc.Status` with code 3
/// (INVALID_ARGUMENT) and the error's message, in the request's format
/// (protobuf when the content type is not understood), with its content type.
pub fn error_response(error: &DecodeError, content_type: &str) -> (&'static str, Vec<u8>) {
    status_response(3, error.to_string(), content_type)
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

fn status_response(code: i32, message: String, content_type: &str) -> (&'static str, Vec<u8>) {
    let format = Format::from_content_type(content_type).unwrap_or(Format::Protobuf);
    let status = RpcStatus { code, message };
    let body = match format {
        Format::Protobuf => status.encode_to_vec(),
        Format::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    (format.content_type(), body)
}

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

/// Undoes the content encoding, never producing more than the limit.
fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Vec<u8>, DecodeError> {
    let too_large = DecodeError::BodyTooLarge {
        limit: limits.max_decompressed_bytes,
    };
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => {
            if body.len() > limits.max_decompressed_bytes {
                return Err(too_large);
            }
            Ok(body.to_vec())
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
            Ok(out)
        }
        Some(_) => Err(DecodeError::UnsupportedEncoding(
            content_encoding.unwrap_or_default().to_owned(),
        )),
    }
}
