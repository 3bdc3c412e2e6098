//! The records as OTLP protobuf messages: spans as `ExportTraceServiceRequest`,
//! errors as `ExportLogsServiceRequest`, both encoded into a buffer the sink
//! reuses from batch to batch. The records are consumed: their texts move
//! into the messages without a copy.

use omegi_core::{
    Attribute, CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level, Resource, SpanKind,
    SpanRecord, Status, Text, Value,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind as OtlpSpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status as OtlpStatus,
};

/// W3C trace flags: sampled.
pub(crate) const SAMPLED: u32 = 0x01;
/// OTLP span flags: whether the parent is remote is known.
pub(crate) const HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flags: the parent is remote.
pub(crate) const IS_REMOTE: u32 = 0x200;

/// The OTLP span kind of `kind`.
pub(crate) fn span_kind(kind: SpanKind) -> OtlpSpanKind {
    match kind {
        SpanKind::Internal => OtlpSpanKind::Internal,
        SpanKind::Server => OtlpSpanKind::Server,
        SpanKind::Client => OtlpSpanKind::Client,
        SpanKind::Producer => OtlpSpanKind::Producer,
        SpanKind::Consumer => OtlpSpanKind::Consumer,
    }
}

/// The resource as sent: `service.name`, the resource's attributes, and
/// `telemetry.sdk.*` naming Omegi (by which `omegi serve` knows that errors
/// come as log records and not from failed spans).
pub(crate) fn resource(resource: &Resource) -> OtlpResource {
    let mut attributes = vec![key_value("service.name", resource.service.clone())];
    attributes.extend(
        resource
            .attributes
            .iter()
            .filter(|a| a.key != "service.name" && !a.key.starts_with("telemetry.sdk."))
            .map(|a| KeyValue {
                key: a.key.clone(),
                value: Some(any_value(a.value.clone())),
                ..KeyValue::default()
            }),
    );
    attributes.push(key_value("telemetry.sdk.name", "omegi"));
    attributes.push(key_value("telemetry.sdk.language", "rust"));
    attributes.push(key_value(
        "telemetry.sdk.version",
        env!("CARGO_PKG_VERSION"),
    ));
    OtlpResource {
        attributes,
        ..OtlpResource::default()
    }
}

/// The instrumentation scope of everything the layer sends.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "omegi".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

/// One trace export request for `spans` from `resource`.
pub(crate) fn traces_request(
    resource: OtlpResource,
    scope: InstrumentationScope,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One logs export request for `records` from `resource`.
pub(crate) fn logs_request(
    resource: OtlpResource,
    scope: InstrumentationScope,
    log_records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn text(t: Text) -> String {
    t.into_owned()
}

fn string_value(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn key_value(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(string_value(value)),
        ..KeyValue::default()
    }
}

fn int_key_value(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// A field value; unsigned values above `i64::MAX` are sent as strings.
fn any_value(value: Value) -> AnyValue {
    let value = match value {
        Value::Bool(b) => any_value::Value::BoolValue(b),
        Value::I64(i) => any_value::Value::IntValue(i),
        Value::U64(u) => match i64::try_from(u) {
            Ok(i) => any_value::Value::IntValue(i),
            Err(_) => any_value::Value::StringValue(u.to_string()),
        },
        Value::F64(f) => any_value::Value::DoubleValue(f),
        Value::Str(s) => any_value::Value::StringValue(s),
    };
    AnyValue { value: Some(value) }
}

fn attribute(a: Attribute) -> KeyValue {
    KeyValue {
        key: a.key,
        value: Some(any_value(a.value)),
        ..KeyValue::default()
    }
}

fn push_location(out: &mut Vec<KeyValue>, location: CodeLocation) {
    if let Some(file) = location.file {
        out.push(key_value("code.filepath", text(file)));
    }
    if let Some(line) = location.line {
        out.push(int_key_value("code.lineno", i64::from(line)));
    }
    if let Some(module) = location.module {
        out.push(key_value("code.namespace", text(module)));
    }
}

fn event(event: EventRecord, span_target: &str) -> Event {
    let mut attributes = Vec::with_capacity(event.fields.len() + 5);
    attributes.push(key_value("level", event.level.as_str()));
    if event.target != span_target {
        attributes.push(key_value("omegi.target", text(event.target)));
    }
    push_location(&mut attributes, event.location);
    attributes.extend(event.fields.into_iter().map(attribute));
    Event {
        time_unix_nano: event.time_ns,
        name: event.message,
        attributes,
        dropped_attributes_count: 0,
    }
}

/// A span record as an OTLP span: same ids, parent (and whether it is
/// remote), kind, times, attributes and status; its target and level (when
/// not INFO) in `omegi.target` and `omegi.level`, its location in `code.*`.
pub(crate) fn span(span: SpanRecord) -> Span {
    let mut attributes = Vec::with_capacity(span.attributes.len() + 5);
    attributes.extend(span.attributes.into_iter().map(attribute));
    let target = text(span.target);
    attributes.push(key_value("omegi.target", target.as_str()));
    if span.level != Level::Info {
        attributes.push(key_value("omegi.level", span.level.as_str()));
    }
    push_location(&mut attributes, span.location);
    let events = span.events.into_iter().map(|e| event(e, &target)).collect();
    let flags = SAMPLED | HAS_IS_REMOTE | if span.remote_parent { IS_REMOTE } else { 0 };
    Span {
        trace_id: span.trace_id.0.to_be_bytes().to_vec(),
        span_id: span.span_id.0.to_be_bytes().to_vec(),
        trace_state: String::new(),
        parent_span_id: span
            .parent_span_id
            .map_or_else(Vec::new, |p| p.0.to_be_bytes().to_vec()),
        flags,
        name: text(span.name),
        kind: span_kind(span.kind) as i32,
        start_time_unix_nano: span.start_ns,
        end_time_unix_nano: span.end_ns,
        attributes,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: span.dropped_events,
        links: Vec::new(),
        dropped_links_count: 0,
        status: match span.status {
            Status::Unset => Some(OtlpStatus {
                message: String::new(),
                code: StatusCode::Unset as i32,
            }),
            Status::Ok => Some(OtlpStatus {
                message: String::new(),
                code: StatusCode::Ok as i32,
            }),
            // OTLP keeps a status message for status Error only.
            Status::Error => Some(OtlpStatus {
                message: span.status_message.unwrap_or_default(),
                code: StatusCode::Error as i32,
            }),
        },
    }
}

/// An error record as an ERROR log record following the OpenTelemetry
/// exception conventions, with `omegi.*` attributes for the rest.
pub(crate) fn log_record(error: ErrorRecord) -> LogRecord {
    let mut attributes = Vec::with_capacity(error.fields.len() + 12);
    if let Some(ty) = error.error_type {
        attributes.push(key_value("exception.type", ty));
    }
    attributes.push(key_value("exception.message", error.message.as_str()));
    if !error.causes.is_empty() {
        let mut trace = String::new();
        for cause in &error.causes {
            if !trace.is_empty() {
                trace.push('\n');
            }
            trace.push_str("caused by: ");
            trace.push_str(cause);
        }
        attributes.push(key_value("exception.stacktrace", trace));
    }
    if let Some(thread) = error.thread {
        attributes.push(key_value("thread.name", thread));
    }
    push_location(&mut attributes, error.location);
    attributes.push(key_value(
        "omegi.error.kind",
        match error.kind {
            ErrorKind::Event => "event",
            ErrorKind::Panic => "panic",
            ErrorKind::Remote => "remote",
        },
    ));
    if let Some(fingerprint) = error.fingerprint {
        attributes.push(key_value("omegi.fingerprint", fingerprint));
    }
    // The model types serialize to JSON infallibly (string keys, no maps
    // with non-string keys); an empty list stands in if that ever changes.
    let json = |v: Result<String, serde_json::Error>| v.unwrap_or_else(|_| "[]".to_owned());
    let span_stack = json(serde_json::to_string(&error.span_stack));
    let breadcrumbs = json(serde_json::to_string(&error.breadcrumbs));
    attributes.push(KeyValue {
        key: "omegi.causes".to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: error.causes.into_iter().map(string_value).collect(),
            })),
        }),
        ..KeyValue::default()
    });
    attributes.push(key_value("omegi.span_stack", span_stack));
    attributes.push(key_value("omegi.breadcrumbs", breadcrumbs));
    attributes.push(key_value("omegi.target", error.target));
    attributes.extend(error.fields.into_iter().map(attribute));
    let has_context = error.trace_id.is_some() || error.span_id.is_some();
    LogRecord {
        time_unix_nano: error.time_ns,
        observed_time_unix_nano: error.time_ns,
        severity_number: SeverityNumber::Error as i32,
        severity_text: "ERROR".to_owned(),
        body: Some(string_value(error.message)),
        attributes,
        dropped_attributes_count: 0,
        flags: if has_context { SAMPLED } else { 0 },
        trace_id: if has_context {
            error.trace_id.map_or(0, |t| t.0).to_be_bytes().to_vec()
        } else {
            Vec::new()
        },
        span_id: if has_context {
            error.span_id.map_or(0, |s| s.0).to_be_bytes().to_vec()
        } else {
            Vec::new()
        },
        event_name: String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use omegi_core::{SpanId, TraceId};

    pub(crate) fn span_record() -> SpanRecord {
        let mut span = SpanRecord::new(TraceId(0xabc), SpanId(0x12), "charge", 1_000, 2_500)
            .with_remote_parent(SpanId(0x11))
            .with_service("payment")
            .with_target("payment::api")
            .with_level(Level::Debug)
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                Attribute::new("order", 7i64),
                Attribute::new("big", u64::MAX),
            ])
            .with_events(vec![EventRecord::new(1_200, Level::Warn, "slow query")
                .with_target("payment::db")
                .with_field("ms", 900i64)])
            .with_status(Status::Error)
            .with_status_message("declined")
            .with_location(CodeLocation {
                file: Some("src/api.rs".into()),
                line: Some(42),
                module: Some("payment::api".into()),
            });
        span.dropped_events = 3;
        span
    }

    fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn string(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.to_owned())
    }

    #[test]
    fn a_span_carries_ids_times_and_omegi_attributes() {
        let otlp = span(span_record());
        let mut trace_id = [0u8; 16];
        trace_id[14..].copy_from_slice(&[0x0a, 0xbc]);
        assert_eq!(otlp.trace_id, trace_id);
        assert_eq!(otlp.parent_span_id, 0x11u64.to_be_bytes());
        assert_eq!(otlp.flags, 0x301, "sampled, with a remote parent");
        assert_eq!(otlp.kind, OtlpSpanKind::Server as i32);
        assert_eq!(otlp.start_time_unix_nano, 1_000);
        assert_eq!(
            otlp.status,
            Some(OtlpStatus {
                message: "declined".into(),
                code: StatusCode::Error as i32
            })
        );
        let attr = |k| find(&otlp.attributes, k).cloned();
        assert_eq!(attr("order"), Some(any_value::Value::IntValue(7)));
        assert_eq!(attr("big"), Some(string(&u64::MAX.to_string())));
        assert_eq!(attr("omegi.target"), Some(string("payment::api")));
        assert_eq!(attr("omegi.level"), Some(string("DEBUG")));
        assert_eq!(attr("code.lineno"), Some(any_value::Value::IntValue(42)));
        assert_eq!(otlp.dropped_events_count, 3);
        let ev = &otlp.events[0];
        assert_eq!(ev.name, "slow query");
        assert_eq!(
            find(&ev.attributes, "omegi.target"),
            Some(&string("payment::db"))
        );
        assert_eq!(find(&ev.attributes, "level"), Some(&string("WARN")));
    }

    #[test]
    fn a_local_root_span_has_no_parent_and_no_remote_flag() {
        let mut record = span_record();
        record.parent_span_id = None;
        record.remote_parent = false;
        record.status = Status::Unset;
        let otlp = span(record);
        assert!(otlp.parent_span_id.is_empty());
        assert_eq!(otlp.flags, 0x101);
        assert_eq!(otlp.status.map(|s| s.code), Some(StatusCode::Unset as i32));
    }
}
