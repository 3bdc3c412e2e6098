//! Protobuf messages → Omegi's model: ids, values, attributes, spans, events,
//! resources. Error derivation is in `errors.rs`.

use base64::Engine as _;
use omegi_core::limits::TimeWindow;
use omegi_core::{
    Attribute, CodeLocation, EventRecord, Level, Record, Resource, SpanId, SpanKind, SpanRecord,
    Status, TraceId, Value,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{self as pc, any_value::Value as AV};
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::errors::{self, LogEntry, SpanEntry};
use super::{DecodeError, Decoded, IdProblem, Limits, ResourceRecords};

/// `service.name` when the resource has none, as the OpenTelemetry SDKs say.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// The target attribute written by Omegi's sink.
pub(crate) const TARGET: &str = "omegi.target";
/// The span level attribute written by Omegi's sink.
pub(crate) const SPAN_LEVEL: &str = "omegi.level";
/// The event level attribute.
pub(crate) const EVENT_LEVEL: &str = "level";

/// OTLP span flags: whether the flags say anything about the parent, and
/// whether the parent is remote.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Converts a trace export request: all ids are checked before anything is
/// returned; spans outside the time window are left out and counted; the
/// record limits are applied to everything kept.
pub(crate) fn traces(
    request: ExportTraceServiceRequest,
    limits: &Limits,
    window: &TimeWindow,
) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    let mut entries: Vec<SpanEntry> = Vec::new();
    for (ri, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let (mut resource, sdk_is_omegi) = resource(resource_spans.resource);
        decoded
            .truncation
            .add(limits.records.limit_resource(&mut resource));
        decoded.resources.push(ResourceRecords {
            resource: resource.clone(),
            records: Vec::new(),
        });
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for (si, span) in scope_spans.spans.into_iter().enumerate() {
                let context = || format!("span {:?} (#{si} of resource #{ri})", short(&span.name));
                let trace_id = trace_id(&span.trace_id, context)?;
                let span_id = span_id(&span.span_id, context)?;
                let parent_span_id = optional_span_id(&span.parent_span_id, || {
                    format!("{} (parent_span_id)", context())
                })?;
                if span.start_time_unix_nano == 0 {
                    let name = short(&span.name);
                    decoded.reject(|| format!("span {name:?} ({span_id}) has no start time"));
                    continue;
                }
                let events = span.events.len();
                let max_events = limits.records.max_events;
                decoded.truncation.events_dropped += events.saturating_sub(max_events) as u64;
                let (mut record, mut exceptions, dropped_exceptions) = span_record(
                    span,
                    trace_id,
                    span_id,
                    parent_span_id,
                    &resource,
                    &scope,
                    limits,
                );
                if let Err(out) = window.repair_span(&mut record) {
                    let name = short(&record.name);
                    decoded.reject(|| format!("span {name:?} ({span_id}): start {out}"));
                    continue;
                }
                for (_, event) in &mut exceptions {
                    if !window.contains(event.time_unix_nano) {
                        event.time_unix_nano = record.start_ns;
                    }
                }
                if dropped_exceptions > 0 {
                    decoded.drop_errors(dropped_exceptions, || {
                        format!(
                            "span {:?} ({span_id}) has more than {} exception events (max_errors_per_span)",
                            short(&record.name),
                            limits.max_errors_per_span
                        )
                    });
                }
                decoded
                    .truncation
                    .add(limits.records.limit_span(&mut record));
                entries.push(SpanEntry {
                    resource: ri,
                    record,
                    exceptions,
                    sdk_is_omegi,
                });
            }
        }
    }
    let derived = errors::from_spans(&entries, limits);
    for entry in entries {
        decoded.resources[entry.resource]
            .records
            .push(Record::Span(entry.record));
    }
    keep_errors(&mut decoded, derived, limits, window);
    Ok(decoded)
}

/// Converts a logs export request: all ids are checked before anything is
/// returned; ERROR records outside the time window or over the cap of
/// errors per request are left out and counted; the record limits are
/// applied to the errors.
pub(crate) fn logs(
    request: ExportLogsServiceRequest,
    limits: &Limits,
    window: &TimeWindow,
) -> Result<Decoded, DecodeError> {
    let mut decoded = Decoded::default();
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut error_records = 0usize;
    for (ri, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let (mut resource, _) = resource(resource_logs.resource);
        decoded
            .truncation
            .add(limits.records.limit_resource(&mut resource));
        decoded.resources.push(ResourceRecords {
            resource,
            records: Vec::new(),
        });
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            for (li, log) in scope_logs.log_records.into_iter().enumerate() {
                let context = || format!("log record #{li} of resource #{ri}");
                let trace_id = optional_trace_id(&log.trace_id, context)?;
                let span_id = optional_span_id(&log.span_id, context)?;
                let is_error = log.severity_number >= errors::ERROR_SEVERITY;
                if !is_error {
                    decoded.ignored += 1;
                }
                let time_ns = if log.time_unix_nano != 0 {
                    log.time_unix_nano
                } else {
                    log.observed_time_unix_nano
                };
                if is_error {
                    if time_ns == 0 {
                        decoded
                            .reject(|| format!("{} has neither time nor observed time", context()));
                        continue;
                    }
                    if let Err(out) = window.check(time_ns) {
                        decoded.reject(|| format!("{}: time {out}", context()));
                        continue;
                    }
                    if error_records == limits.max_errors_per_request {
                        decoded.reject(|| {
                            format!(
                                "more than {} ERROR log records in one request (max_errors_per_request)",
                                limits.max_errors_per_request
                            )
                        });
                        continue;
                    }
                    error_records += 1;
                }
                entries.push(LogEntry {
                    resource: ri,
                    trace_id,
                    span_id,
                    time_ns,
                    scope: scope.clone(),
                    is_error,
                    log,
                });
            }
        }
    }
    let derived = errors::from_logs(entries, &decoded.resources, limits);
    keep_errors(&mut decoded, derived, limits, window);
    Ok(decoded)
}

/// Applies the record limits and the time window to derived errors and
/// adds them to their resources.
fn keep_errors(
    decoded: &mut Decoded,
    derived: errors::Derived,
    limits: &Limits,
    window: &TimeWindow,
) {
    if derived.dropped > 0 {
        let message = derived.dropped_message;
        decoded.drop_errors(derived.dropped, || message.unwrap_or_default());
    }
    for (ri, mut error) in derived.errors {
        decoded
            .truncation
            .add(limits.records.limit_error(&mut error));
        if let Err(out) = window.repair_error(&mut error) {
            decoded.drop_errors(1, || format!("an error's time {out}"));
            continue;
        }
        decoded.resources[ri].records.push(Record::Error(error));
    }
}

/// A name for a message: at most 64 characters.
pub(crate) fn short(name: &str) -> String {
    let mut s: String = name.chars().take(64).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s
}

/// The model's resource, and whether it was sent by Omegi's own layer.
fn resource(resource: Option<pr::Resource>) -> (Resource, bool) {
    let mut attributes = resource.map(|r| r.attributes).unwrap_or_default();
    let service = take(&mut attributes, "service.name")
        .map(|v| text(&v))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
    let sdk_is_omegi = attributes.iter().any(|kv| {
        kv.key == "telemetry.sdk.name"
            && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(AV::StringValue(s)) if s == "omegi")
    });
    (
        Resource::new(service).with_attributes(attributes_of(attributes)),
        sdk_is_omegi,
    )
}

/// A span in the model, with its first `exception` events (with their
/// index in the span's events) up to the cap of errors per span, and the
/// number of exception events over that cap. Only the first
/// `max_events` events are converted; the others are counted as dropped.
fn span_record(
    span: pt::Span,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    resource: &Resource,
    scope: &str,
    limits: &Limits,
) -> (SpanRecord, Vec<(usize, pt::span::Event)>, u64) {
    let mut attributes = span.attributes;
    let target = take(&mut attributes, TARGET)
        .map(|v| text(&v))
        .unwrap_or_else(|| scope.to_owned());
    let level = take(&mut attributes, SPAN_LEVEL)
        .and_then(|v| level(&text(&v)))
        .unwrap_or(Level::Info);
    let location = take_location(&mut attributes);
    if span.dropped_attributes_count > 0 {
        attributes.push(pc::KeyValue {
            key: omegi_core::limits::DROPPED_ATTRIBUTES.to_owned(),
            value: Some(pc::AnyValue {
                value: Some(AV::IntValue(i64::from(span.dropped_attributes_count))),
            }),
            key_strindex: 0,
        });
    }
    let mut exceptions = Vec::new();
    let mut dropped_exceptions = 0u64;
    let max_events = limits.records.max_events;
    let kept_events = span.events.len().min(max_events);
    let dropped_events = span.events.len() - kept_events;
    let mut events = Vec::with_capacity(kept_events);
    for (i, event) in span.events.into_iter().enumerate() {
        let keep = i < max_events;
        if event.name == errors::EXCEPTION_EVENT {
            if exceptions.len() == limits.max_errors_per_span {
                dropped_exceptions += 1;
            } else if keep {
                exceptions.push((i, event.clone()));
            } else {
                exceptions.push((i, event));
                continue;
            }
        }
        if keep {
            events.push(event_record(event, &target));
        }
    }
    let (status, status_message) = match span.status {
        Some(s) => (
            match s.code {
                1 => Status::Ok,
                2 => Status::Error,
                _ => Status::Unset,
            },
            Some(s.message).filter(|m| !m.is_empty()),
        ),
        None => (Status::Unset, None),
    };
    let mut record = SpanRecord::new(
        trace_id,
        span_id,
        span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
    )
    .with_parent(parent_span_id)
    .with_service(resource.service.clone())
    .with_target(target)
    .with_level(level)
    .with_kind(match span.kind {
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    })
    .with_attributes(attributes_of(attributes))
    .with_events(events)
    .with_status(status)
    .with_location(location);
    record.remote_parent = parent_span_id.is_some()
        && span.flags & FLAG_HAS_IS_REMOTE != 0
        && span.flags & FLAG_IS_REMOTE != 0;
    record.dropped_events = span
        .dropped_events_count
        .saturating_add(u32::try_from(dropped_events).unwrap_or(u32::MAX));
    record.status_message = status_message;
    (record, exceptions, dropped_exceptions)
}

/// A span event as an event record; `exception` events default to ERROR.
fn event_record(event: pt::span::Event, span_target: &str) -> EventRecord {
    let mut attributes = event.attributes;
    let default_level = if event.name == errors::EXCEPTION_EVENT {
        Level::Error
    } else {
        Level::Info
    };
    let level = take(&mut attributes, EVENT_LEVEL)
        .and_then(|v| level(&text(&v)))
        .unwrap_or(default_level);
    let target = take(&mut attributes, TARGET)
        .map(|v| text(&v))
        .unwrap_or_else(|| span_target.to_owned());
    let location = take_location(&mut attributes);
    EventRecord::new(event.time_unix_nano, level, event.name)
        .with_target(target)
        .with_fields(attributes_of(attributes))
        .with_location(location)
}

/// A level from its name, any case (`warning` too).
pub(crate) fn level(name: &str) -> Option<Level> {
    match name.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::Trace),
        "debug" => Some(Level::Debug),
        "info" => Some(Level::Info),
        "warn" | "warning" => Some(Level::Warn),
        "error" => Some(Level::Error),
        _ => None,
    }
}

/// Removes an attribute and returns its value (the first one with that key;
/// later duplicates are removed too).
pub(crate) fn take(attributes: &mut Vec<pc::KeyValue>, key: &str) -> Option<pc::AnyValue> {
    let mut found = None;
    attributes.retain_mut(|kv| {
        if kv.key != key {
            return true;
        }
        if found.is_none() {
            found = Some(kv.value.take().unwrap_or_default());
        }
        false
    });
    found
}

/// Removes the `code.*` attributes and returns the location they describe.
pub(crate) fn take_location(attributes: &mut Vec<pc::KeyValue>) -> CodeLocation {
    let file_old = take(attributes, "code.filepath");
    let file_new = take(attributes, "code.file.path");
    let line_old = take(attributes, "code.lineno");
    let line_new = take(attributes, "code.line.number");
    let module = take(attributes, "code.namespace");
    CodeLocation {
        file: file_old.or(file_new).map(|v| text(&v).into()),
        line: line_old.or(line_new).and_then(|v| match v.value {
            Some(AV::IntValue(i)) => u32::try_from(i).ok(),
            Some(AV::StringValue(s)) => s.trim().parse().ok(),
            _ => None,
        }),
        module: module.map(|v| text(&v).into()),
    }
}

/// Attributes in the model's form, in order.
pub(crate) fn attributes_of(attributes: Vec<pc::KeyValue>) -> Vec<Attribute> {
    attributes
        .into_iter()
        .map(|kv| Attribute {
            key: kv.key,
            value: value(kv.value.as_ref()),
        })
        .collect()
}

/// An OTLP value in the model: scalars keep their type, arrays, key-value
/// lists and bytes become JSON text, an empty value the empty string.
pub(crate) fn value(v: Option<&pc::AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Str(String::new()),
        Some(AV::StringValue(s)) => Value::Str(s.clone()),
        Some(AV::BoolValue(b)) => Value::Bool(*b),
        Some(AV::IntValue(i)) => Value::I64(*i),
        Some(AV::DoubleValue(d)) => Value::F64(*d),
        Some(other) => Value::Str(json_of(Some(other)).to_string()),
    }
}

/// An OTLP value as text: strings as they are, anything else as JSON text.
pub(crate) fn text(v: &pc::AnyValue) -> String {
    match &v.value {
        Some(AV::StringValue(s)) => s.clone(),
        None => String::new(),
        other => json_of(other.as_ref()).to_string(),
    }
}

/// An OTLP value as JSON: bytes as a base64 string, non-finite doubles as
/// their OTLP/JSON names.
fn json_of(v: Option<&AV>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(AV::StringValue(s)) => J::String(s.clone()),
        Some(AV::BoolValue(b)) => J::Bool(*b),
        Some(AV::IntValue(i)) => J::from(*i),
        Some(AV::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or_else(
            || {
                J::String(if d.is_nan() {
                    "NaN".into()
                } else if *d > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                })
            },
            J::Number,
        ),
        Some(AV::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| json_of(v.value.as_ref())).collect())
        }
        Some(AV::KvlistValue(kvs)) => J::Object(
            kvs.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        json_of(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
        Some(AV::BytesValue(b)) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(AV::StringValueStrindex(i)) => J::from(*i),
    }
}

// ---------------------------------------------------------------- ids

fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 32;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}

pub(crate) fn trace_id(bytes: &[u8], context: impl Fn() -> String) -> Result<TraceId, DecodeError> {
    let invalid = |problem| DecodeError::InvalidTraceId {
        id: hex(bytes),
        context: context(),
        problem,
    };
    let array: [u8; 16] = bytes.try_into().map_err(|_| {
        invalid(IdProblem::Length {
            got: bytes.len(),
            expected: 16,
        })
    })?;
    let id = TraceId::from_bytes(array);
    if !id.is_valid() {
        return Err(invalid(IdProblem::AllZero));
    }
    Ok(id)
}

pub(crate) fn span_id(bytes: &[u8], context: impl Fn() -> String) -> Result<SpanId, DecodeError> {
    let invalid = |problem| DecodeError::InvalidSpanId {
        id: hex(bytes),
        context: context(),
        problem,
    };
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        invalid(IdProblem::Length {
            got: bytes.len(),
            expected: 8,
        })
    })?;
    let id = SpanId::from_bytes(array);
    if !id.is_valid() {
        return Err(invalid(IdProblem::AllZero));
    }
    Ok(id)
}

/// Empty or all zero → `None`; 16 bytes → the id; anything else is invalid.
pub(crate) fn optional_trace_id(
    bytes: &[u8],
    context: impl Fn() -> String,
) -> Result<Option<TraceId>, DecodeError> {
    if bytes.iter().all(|b| *b == 0) && (bytes.is_empty() || bytes.len() == 16) {
        return Ok(None);
    }
    trace_id(bytes, context).map(Some)
}

/// Empty or all zero → `None`; 8 bytes → the id; anything else is invalid.
pub(crate) fn optional_span_id(
    bytes: &[u8],
    context: impl Fn() -> String,
) -> Result<Option<SpanId>, DecodeError> {
    if bytes.iter().all(|b| *b == 0) && (bytes.is_empty() || bytes.len() == 8) {
        return Ok(None);
    }
    span_id(bytes, context).map(Some)
}
