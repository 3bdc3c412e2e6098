//! Protobuf messages → Omegi's model: ids, values, attributes, spans, events,
//! resources. Error derivation is in `errors.rs`.

use omegi_core::limits::TimeWindow;
use omegi_core::{
    service_name, EventRecord, Level, Record, Resource, SpanId, SpanKind, SpanRecord, Status,
    TraceId,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{self as pc, any_value::Value as AV};
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::attributes::{
    attributes_of, level, take, take_location, text, EVENT_LEVEL, SPAN_LEVEL, TARGET,
};
use super::errors::{self, LogEntry, SpanEntry};
use super::ids::{optional_span_id, optional_trace_id, span_id, trace_id};
use super::{DecodeError, Decoded, Limits, ResourceRecords};

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
    let named = take(&mut attributes, "service.name").map(|v| text(&v));
    let service = service_name([named.as_deref().unwrap_or_default()]).to_owned();
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
