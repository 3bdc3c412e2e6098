//! The OTLP sink (feature `otlp`): sends records to any OTLP/HTTP endpoint
//! (protobuf), such as `omegi serve`, an OpenTelemetry Collector, Jaeger or
//! Tempo.
//!
//! Spans go to `/v1/traces` as OTLP spans; errors go to `/v1/logs` as ERROR
//! log records following the OpenTelemetry exception conventions, with
//! `omegi.*` attributes for what those conventions have no place for.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omegi_core::{
    Attribute, CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level, Record, Resource,
    SpanKind, SpanRecord, Status, Value,
};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{self as otrace, SpanContext, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use super::{Sink, SinkError};

/// The endpoint used when neither the code nor `OTEL_EXPORTER_OTLP_ENDPOINT`
/// names one.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// Sends spans and errors over OTLP/HTTP with protobuf, from the exporter
/// thread, with a blocking HTTP client (no async runtime needed).
///
/// The endpoint is a base URL: spans go to `<endpoint>/v1/traces`, errors to
/// `<endpoint>/v1/logs`. Without an explicit endpoint the OpenTelemetry
/// variables apply: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and
/// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` (used as they are), else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL), else `http://localhost:4318`.
/// Headers from `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`) are
/// added to those set here, and `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds)
/// applies unless a timeout is set here.
///
/// The resource sent carries `service.name`, the [`Resource`]'s attributes,
/// and `telemetry.sdk.name = "omegi"`, by which `omegi serve` knows that
/// errors come as log records and not from failed spans.
///
/// What goes on the wire:
/// - A [`SpanRecord`] becomes an OTLP span with the same ids, parent (and
///   whether it is remote), kind, times, attributes and status; its target
///   and level (when not INFO) go in `omegi.target` and `omegi.level`, its
///   location in `code.filepath`, `code.lineno` and `code.namespace`. Each
///   event becomes a span event named by its message, with a `level`
///   attribute, `omegi.target` when it differs from the span's, `code.*`,
///   and its fields.
/// - An [`ErrorRecord`] becomes an ERROR log record with the trace and span
///   ids, body = message, `exception.type`, `exception.message`,
///   `exception.stacktrace` (the causes as `caused by: ...` lines),
///   `thread.name`, `code.*`, `omegi.error.kind`, `omegi.fingerprint`,
///   `omegi.causes` (array of strings), `omegi.span_stack` and
///   `omegi.breadcrumbs` (JSON), `omegi.target`, then the error's fields.
///
/// Unsigned attribute values above `i64::MAX` are sent as strings, and a
/// status message is sent for status Error only (OTLP keeps no other).
///
/// A request that fails for a reason worth retrying (no connection, `429`,
/// `502`, `503`, `504`) is retried up to 3 times with exponential backoff
/// (100 ms up to 1.6 s, or as `Retry-After` says) within the timeout; after
/// that its records count as failed in [`OmegiGuard::stats`](crate::OmegiGuard::stats).
///
/// ```no_run
/// use omegi_layer::sink::OtlpSink;
/// use std::time::Duration;
///
/// // To `omegi serve` or a collector, with a token:
/// let sink = OtlpSink::builder()
///     .endpoint("https://otlp.example.com")
///     .bearer_token("secret")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// // Or from the OTEL_EXPORTER_OTLP_* variables:
/// let from_env = OtlpSink::new()?;
/// # Ok::<(), omegi_layer::SinkError>(())
/// ```
pub struct OtlpSink {
    spans: opentelemetry_otlp::SpanExporter,
    logs: opentelemetry_otlp::LogExporter,
    /// Creates log records; it has no processor, records go to `logs` directly.
    logger: SdkLogger,
    _logger_provider: SdkLoggerProvider,
    scope: InstrumentationScope,
    /// The resource last given to the exporters.
    resource: Option<Resource>,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("spans", &self.spans)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

/// Configures an [`OtlpSink`]: endpoint, headers, timeout.
#[derive(Debug, Clone, Default)]
pub struct OtlpSinkBuilder {
    endpoint: Option<String>,
    headers: HashMap<String, String>,
    timeout: Option<Duration>,
}

impl OtlpSinkBuilder {
    /// The base URL of the OTLP/HTTP receiver, e.g. `http://localhost:4318`;
    /// `/v1/traces` and `/v1/logs` are appended.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Adds a header to every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Adds `Authorization: Bearer <token>` to every request.
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("authorization", value)
    }

    /// How long one export may take, retries included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Builds the sink. Fails when the endpoint is not a valid URL or the
    /// HTTP client cannot be created; nothing is sent yet.
    pub fn build(self) -> Result<OtlpSink, SinkError> {
        let endpoint = self
            .endpoint
            .as_deref()
            .map(|base| base.trim_end_matches('/').to_owned());
        let mut spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_headers(self.headers.clone());
        let mut logs = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_headers(self.headers);
        if let Some(base) = &endpoint {
            spans = spans.with_endpoint(format!("{base}/v1/traces"));
            logs = logs.with_endpoint(format!("{base}/v1/logs"));
        }
        if let Some(timeout) = self.timeout {
            spans = spans.with_timeout(timeout);
            logs = logs.with_timeout(timeout);
        }
        let spans = spans.build().map_err(SinkError::new)?;
        let logs = logs.build().map_err(SinkError::new)?;
        let logger_provider = SdkLoggerProvider::builder().build();
        let scope = InstrumentationScope::builder("omegi")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let logger = logger_provider.logger_with_scope(scope.clone());
        Ok(OtlpSink {
            spans,
            logs,
            logger,
            _logger_provider: logger_provider,
            scope,
            resource: None,
        })
    }
}

impl OtlpSink {
    /// A sink configured from the `OTEL_EXPORTER_OTLP_*` variables, else
    /// sending to `http://localhost:4318`.
    pub fn new() -> Result<Self, SinkError> {
        Self::builder().build()
    }

    /// A sink sending to the OTLP/HTTP receiver at `url` (a base URL such as
    /// `http://localhost:4318`).
    pub fn with_endpoint(url: impl Into<String>) -> Result<Self, SinkError> {
        Self::builder().endpoint(url).build()
    }

    /// A builder for headers (authentication) and timeout.
    pub fn builder() -> OtlpSinkBuilder {
        OtlpSinkBuilder::default()
    }

    /// The default base URL when nothing is configured.
    pub const DEFAULT_ENDPOINT: &'static str = DEFAULT_ENDPOINT;

    fn set_resource(&mut self, resource: &Resource) {
        if self.resource.as_ref() == Some(resource) {
            return;
        }
        let mut attributes = vec![KeyValue::new("service.name", resource.service.clone())];
        attributes.extend(
            resource
                .attributes
                .iter()
                .filter(|a| a.key != "service.name" && !a.key.starts_with("telemetry.sdk."))
                .map(key_value),
        );
        attributes.push(KeyValue::new("telemetry.sdk.name", "omegi"));
        attributes.push(KeyValue::new("telemetry.sdk.language", "rust"));
        attributes.push(KeyValue::new(
            "telemetry.sdk.version",
            env!("CARGO_PKG_VERSION"),
        ));
        let otel = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(attributes)
            .build();
        self.spans.set_resource(&otel);
        self.logs.set_resource(&otel);
        self.resource = Some(resource.clone());
    }

    fn export_spans(&self, spans: Vec<SpanRecord>) -> OTelSdkResult {
        let data = spans
            .into_iter()
            .map(|s| span_data(s, &self.scope))
            .collect();
        futures_executor::block_on(self.spans.export(data))
    }

    fn export_errors(&self, errors: &[ErrorRecord]) -> OTelSdkResult {
        let records: Vec<_> = errors.iter().map(|e| self.log_record(e)).collect();
        let batch: Vec<_> = records.iter().map(|r| (r, &self.scope)).collect();
        futures_executor::block_on(self.logs.export(LogBatch::new(&batch)))
    }

    fn log_record(&self, error: &ErrorRecord) -> opentelemetry_sdk::logs::SdkLogRecord {
        let mut record = self.logger.create_log_record();
        let time = system_time(error.time_ns);
        record.set_timestamp(time);
        record.set_observed_timestamp(time);
        record.set_severity_number(Severity::Error);
        record.set_severity_text("ERROR");
        record.set_body(AnyValue::from(error.message.clone()));
        if error.trace_id.is_some() || error.span_id.is_some() {
            record.set_trace_context(
                opentelemetry::TraceId::from(error.trace_id.map_or(0, |t| t.0)),
                opentelemetry::SpanId::from(error.span_id.map_or(0, |s| s.0)),
                Some(TraceFlags::SAMPLED),
            );
        }
        if let Some(ty) = &error.error_type {
            record.add_attribute("exception.type", ty.clone());
        }
        record.add_attribute("exception.message", error.message.clone());
        if !error.causes.is_empty() {
            let mut trace = String::new();
            for cause in &error.causes {
                if !trace.is_empty() {
                    trace.push('\n');
                }
                trace.push_str("caused by: ");
                trace.push_str(cause);
            }
            record.add_attribute("exception.stacktrace", trace);
        }
        if let Some(thread) = &error.thread {
            record.add_attribute("thread.name", thread.clone());
        }
        for kv in location_attributes(&error.location) {
            record.add_attribute(kv.key, log_value(kv.value));
        }
        record.add_attribute(
            "omegi.error.kind",
            match error.kind {
                ErrorKind::Event => "event",
                ErrorKind::Panic => "panic",
                ErrorKind::Remote => "remote",
            },
        );
        if let Some(fingerprint) = &error.fingerprint {
            record.add_attribute("omegi.fingerprint", fingerprint.clone());
        }
        record.add_attribute(
            "omegi.causes",
            AnyValue::ListAny(Box::new(
                error
                    .causes
                    .iter()
                    .map(|c| AnyValue::from(c.clone()))
                    .collect(),
            )),
        );
        // The model types serialize to JSON infallibly (string keys, no maps
        // with non-string keys); an empty list stands in if that ever changes.
        let json = |v: Result<String, serde_json::Error>| v.unwrap_or_else(|_| "[]".to_owned());
        record.add_attribute(
            "omegi.span_stack",
            json(serde_json::to_string(&error.span_stack)),
        );
        record.add_attribute(
            "omegi.breadcrumbs",
            json(serde_json::to_string(&error.breadcrumbs)),
        );
        record.add_attribute("omegi.target", error.target.clone());
        for field in &error.fields {
            record.add_attribute(field.key.clone(), log_value(otel_value(&field.value)));
        }
        record
    }
}

impl Sink for OtlpSink {
    fn export(&mut self, batch: Vec<Record>, resource: &Resource) -> Result<(), SinkError> {
        self.set_resource(resource);
        let mut spans = Vec::new();
        let mut errors = Vec::new();
        for record in batch {
            match record {
                Record::Span(s) => spans.push(s),
                Record::Error(e) => errors.push(e),
            }
        }
        // Both are attempted; the first failure is reported.
        let spans_result = if spans.is_empty() {
            Ok(())
        } else {
            self.export_spans(spans)
                .map_err(|e| SinkError::new(format!("OTLP span export failed: {e}")))
        };
        let errors_result = if errors.is_empty() {
            Ok(())
        } else {
            self.export_errors(&errors)
                .map_err(|e| SinkError::new(format!("OTLP log export failed: {e}")))
        };
        spans_result.and(errors_result)
    }
}

fn system_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn otel_value(value: &Value) -> opentelemetry::Value {
    match value {
        Value::Bool(b) => opentelemetry::Value::Bool(*b),
        Value::I64(i) => opentelemetry::Value::I64(*i),
        Value::U64(u) => match i64::try_from(*u) {
            Ok(i) => opentelemetry::Value::I64(i),
            Err(_) => opentelemetry::Value::from(u.to_string()),
        },
        Value::F64(f) => opentelemetry::Value::F64(*f),
        Value::Str(s) => opentelemetry::Value::from(s.clone()),
    }
}

fn log_value(value: opentelemetry::Value) -> AnyValue {
    match value {
        opentelemetry::Value::Bool(b) => AnyValue::Boolean(b),
        opentelemetry::Value::I64(i) => AnyValue::Int(i),
        opentelemetry::Value::F64(f) => AnyValue::Double(f),
        other => AnyValue::from(other.as_str().into_owned()),
    }
}

fn key_value(a: &Attribute) -> KeyValue {
    KeyValue::new(a.key.clone(), otel_value(&a.value))
}

fn location_attributes(location: &CodeLocation) -> Vec<KeyValue> {
    let mut out = Vec::new();
    if let Some(file) = &location.file {
        out.push(KeyValue::new("code.filepath", file.clone()));
    }
    if let Some(line) = location.line {
        out.push(KeyValue::new("code.lineno", i64::from(line)));
    }
    if let Some(module) = &location.module {
        out.push(KeyValue::new("code.namespace", module.clone()));
    }
    out
}

fn level_name(level: Level) -> &'static str {
    level.as_str()
}

fn event(event: EventRecord, span_target: &str) -> otrace::Event {
    let mut attributes = vec![KeyValue::new("level", level_name(event.level))];
    if event.target != span_target {
        attributes.push(KeyValue::new("omegi.target", event.target));
    }
    attributes.extend(location_attributes(&event.location));
    attributes.extend(event.fields.iter().map(key_value));
    otrace::Event::new(event.message, system_time(event.time_ns), attributes, 0)
}

fn span_data(span: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let mut attributes: Vec<KeyValue> = span.attributes.iter().map(key_value).collect();
    attributes.push(KeyValue::new("omegi.target", span.target.clone()));
    if span.level != Level::Info {
        attributes.push(KeyValue::new("omegi.level", level_name(span.level)));
    }
    attributes.extend(location_attributes(&span.location));
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .into_iter()
        .map(|e| event(e, &span.target))
        .collect();
    events.dropped_count = span.dropped_events;
    SpanData {
        span_context: SpanContext::new(
            opentelemetry::TraceId::from(span.trace_id.0),
            opentelemetry::SpanId::from(span.span_id.0),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: opentelemetry::SpanId::from(span.parent_span_id.map_or(0, |p| p.0)),
        parent_span_is_remote: span.remote_parent,
        span_kind: match span.kind {
            SpanKind::Internal => otrace::SpanKind::Internal,
            SpanKind::Server => otrace::SpanKind::Server,
            SpanKind::Client => otrace::SpanKind::Client,
            SpanKind::Producer => otrace::SpanKind::Producer,
            SpanKind::Consumer => otrace::SpanKind::Consumer,
        },
        name: span.name,
        start_time: system_time(span.start_ns),
        end_time: system_time(span.end_ns),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: match span.status {
            Status::Unset => otrace::Status::Unset,
            Status::Ok => otrace::Status::Ok,
            Status::Error => otrace::Status::error(span.status_message.unwrap_or_default()),
        },
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omegi_core::{SpanId, TraceId};

    fn span() -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x12),
            parent_span_id: Some(SpanId(0x11)),
            remote_parent: true,
            service: "payment".into(),
            name: "charge".into(),
            target: "payment::api".into(),
            level: Level::Debug,
            kind: SpanKind::Server,
            start_ns: 1_000,
            end_ns: 2_500,
            attributes: vec![
                Attribute::new("order", 7i64),
                Attribute::new("big", u64::MAX),
            ],
            events: vec![EventRecord {
                time_ns: 1_200,
                level: Level::Warn,
                target: "payment::db".into(),
                message: "slow query".into(),
                fields: vec![Attribute::new("ms", 900i64)],
                location: CodeLocation::default(),
            }],
            dropped_events: 3,
            status: Status::Error,
            status_message: Some("declined".into()),
            location: CodeLocation {
                file: Some("src/api.rs".into()),
                line: Some(42),
                module: Some("payment::api".into()),
            },
        }
    }

    #[test]
    fn span_data_carries_ids_times_and_omegi_attributes() {
        let scope = InstrumentationScope::builder("omegi").build();
        let data = span_data(span(), &scope);
        assert_eq!(
            data.span_context.trace_id(),
            opentelemetry::TraceId::from(0xabcu128)
        );
        assert_eq!(data.parent_span_id, opentelemetry::SpanId::from(0x11u64));
        assert!(data.parent_span_is_remote);
        assert_eq!(data.span_kind, otrace::SpanKind::Server);
        assert_eq!(data.start_time, UNIX_EPOCH + Duration::from_nanos(1_000));
        assert_eq!(data.status, otrace::Status::error("declined"));
        let attr = |k: &str| {
            data.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(attr("order"), Some(opentelemetry::Value::I64(7)));
        assert_eq!(
            attr("big"),
            Some(opentelemetry::Value::from(u64::MAX.to_string()))
        );
        assert_eq!(
            attr("omegi.target"),
            Some(opentelemetry::Value::from("payment::api"))
        );
        assert_eq!(
            attr("omegi.level"),
            Some(opentelemetry::Value::from("DEBUG"))
        );
        assert_eq!(attr("code.lineno"), Some(opentelemetry::Value::I64(42)));
        assert_eq!(data.events.dropped_count, 3);
        let ev = &data.events.events[0];
        assert_eq!(ev.name, "slow query");
        assert!(ev
            .attributes
            .contains(&KeyValue::new("omegi.target", "payment::db")));
        assert!(ev.attributes.contains(&KeyValue::new("level", "WARN")));
    }

    #[test]
    fn builder_rejects_an_invalid_endpoint() {
        let err = OtlpSink::with_endpoint("not a url at all").unwrap_err();
        assert!(err.to_string().contains("endpoint"), "{err}");
    }
}
