//! Error derivation: `exception` span events, ERROR log records and failed
//! spans become [`ErrorRecord`]s (the rules are in the module docs of
//! `otlp`).

use std::collections::{HashMap, HashSet};

use omegi_core::{
    CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level, SpanFrame, SpanId, SpanRecord,
    Status, TraceId,
};
use opentelemetry_proto::tonic::common::v1::{self as pc, any_value::Value as AV};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::convert::{attributes_of, take, take_location, text, TARGET};
use super::ResourceRecords;

/// At most this many breadcrumbs are attached to an error derived from a
/// request (the latest ones).
pub const MAX_BREADCRUMBS: usize = 50;

/// `SEVERITY_NUMBER_ERROR`: log records at or above it are errors.
pub(crate) const ERROR_SEVERITY: i32 = 17;

/// The span event name of the OpenTelemetry exception convention.
pub(crate) const EXCEPTION_EVENT: &str = "exception";

/// A converted span with what error derivation needs.
pub(crate) struct SpanEntry {
    /// Index of its resource in the request.
    pub(crate) resource: usize,
    pub(crate) record: SpanRecord,
    /// Its `exception` events, with their index in `record.events`.
    pub(crate) exceptions: Vec<(usize, pt::span::Event)>,
    /// Whether its resource says `telemetry.sdk.name = omegi`.
    pub(crate) sdk_is_omegi: bool,
}

/// A log record with its checked ids.
pub(crate) struct LogEntry {
    pub(crate) resource: usize,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) span_id: Option<SpanId>,
    pub(crate) time_ns: u64,
    pub(crate) scope: String,
    pub(crate) is_error: bool,
    pub(crate) log: pl::LogRecord,
}

/// What an error gets from where it was found, unless its attributes say
/// otherwise.
struct Origin {
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    service: String,
    time_ns: u64,
    target: String,
    location: CodeLocation,
    span_stack: Vec<SpanFrame>,
    breadcrumbs: Vec<EventRecord>,
    /// The message when the attributes have no `exception.message`.
    message: Option<String>,
    /// The message when there is nothing better.
    fallback: String,
}

/// The errors of the spans of one request, each with its resource index.
pub(crate) fn from_spans(entries: &[SpanEntry]) -> Vec<(usize, ErrorRecord)> {
    let mut index: HashMap<(TraceId, SpanId), usize> = HashMap::new();
    let mut by_trace: HashMap<TraceId, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        index
            .entry((e.record.trace_id, e.record.span_id))
            .or_insert(i);
        by_trace.entry(e.record.trace_id).or_default().push(i);
    }
    let ancestors = |i: usize| -> Vec<usize> {
        // From `i` up to the root, stopping at a missing parent or a cycle.
        let mut chain = vec![i];
        let mut seen = HashSet::from([i]);
        let mut current = &entries[i].record;
        while let Some(parent) = current.parent_span_id {
            match index.get(&(current.trace_id, parent)) {
                Some(&p) if seen.insert(p) => {
                    chain.push(p);
                    current = &entries[p].record;
                }
                _ => break,
            }
        }
        chain
    };
    let span_stack = |i: usize| -> Vec<SpanFrame> {
        ancestors(i)
            .into_iter()
            .rev()
            .map(|a| frame(&entries[a].record))
            .collect()
    };

    // Failed spans with a failed descendant stay silent.
    let mut has_failed_descendant = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        if e.record.status == Status::Error {
            has_failed_descendant.extend(ancestors(i).into_iter().skip(1));
        }
    }

    let mut errors = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let span = &e.record;
        for (event_index, event) in &e.exceptions {
            let breadcrumbs = span_breadcrumbs(
                entries,
                &by_trace[&span.trace_id],
                event.time_unix_nano,
                (i, *event_index),
            );
            let origin = Origin {
                trace_id: Some(span.trace_id),
                span_id: Some(span.span_id),
                service: span.service.clone(),
                time_ns: event.time_unix_nano,
                target: span.target.to_string(),
                location: span.location.clone(),
                span_stack: span_stack(i),
                breadcrumbs,
                message: None,
                fallback: EXCEPTION_EVENT.to_owned(),
            };
            errors.push((e.resource, error_record(event.attributes.clone(), origin)));
        }
        let reports_status = span.status == Status::Error
            && e.exceptions.is_empty()
            && !e.sdk_is_omegi
            && !has_failed_descendant.contains(&i);
        if reports_status {
            let breadcrumbs = span_breadcrumbs(
                entries,
                &by_trace[&span.trace_id],
                span.end_ns,
                (usize::MAX, 0),
            );
            let error = ErrorRecord {
                trace_id: Some(span.trace_id),
                span_id: Some(span.span_id),
                service: span.service.clone(),
                time_ns: span.end_ns,
                kind: ErrorKind::Remote,
                message: span
                    .status_message
                    .clone()
                    .unwrap_or_else(|| format!("span {} failed", span.name)),
                causes: Vec::new(),
                error_type: None,
                target: span.target.to_string(),
                fields: Vec::new(),
                span_stack: span_stack(i),
                breadcrumbs,
                location: span.location.clone(),
                thread: None,
                fingerprint: None,
            };
            errors.push((e.resource, error));
        }
    }
    errors
}

fn frame(span: &SpanRecord) -> SpanFrame {
    SpanFrame {
        span_id: span.span_id,
        name: span.name.to_string(),
        target: span.target.to_string(),
        fields: span.attributes.clone(),
        location: span.location.clone(),
    }
}

/// The events of a trace's spans up to `until_ns`, except `skip` (span
/// entry, event index), oldest first, the last [`MAX_BREADCRUMBS`].
fn span_breadcrumbs(
    entries: &[SpanEntry],
    trace: &[usize],
    until_ns: u64,
    skip: (usize, usize),
) -> Vec<EventRecord> {
    let mut events: Vec<&EventRecord> = trace
        .iter()
        .flat_map(|&i| {
            entries[i]
                .record
                .events
                .iter()
                .enumerate()
                .filter(move |(j, _)| (i, *j) != skip)
                .map(|(_, ev)| ev)
        })
        .filter(|ev| ev.time_ns <= until_ns)
        .collect();
    events.sort_by_key(|ev| ev.time_ns);
    let start = events.len().saturating_sub(MAX_BREADCRUMBS);
    events[start..].iter().map(|ev| (*ev).clone()).collect()
}

/// The errors of the ERROR log records of one request, each with its
/// resource index.
pub(crate) fn from_logs(
    entries: Vec<LogEntry>,
    resources: &[ResourceRecords],
) -> Vec<(usize, ErrorRecord)> {
    // Non-error records are breadcrumbs of the errors of their trace.
    let mut crumbs: HashMap<TraceId, Vec<EventRecord>> = HashMap::new();
    let mut error_entries = Vec::new();
    for entry in entries {
        if entry.is_error {
            error_entries.push(entry);
        } else if let Some(trace_id) = entry.trace_id {
            crumbs.entry(trace_id).or_default().push(log_event(
                entry.log,
                entry.time_ns,
                &entry.scope,
            ));
        }
    }
    for list in crumbs.values_mut() {
        list.sort_by_key(|ev| ev.time_ns);
    }
    error_entries
        .into_iter()
        .map(|entry| {
            let breadcrumbs = entry
                .trace_id
                .and_then(|t| crumbs.get(&t))
                .map(|list| {
                    let upto = list.partition_point(|ev| ev.time_ns <= entry.time_ns);
                    list[upto.saturating_sub(MAX_BREADCRUMBS)..upto].to_vec()
                })
                .unwrap_or_default();
            let log = entry.log;
            let body = log.body.as_ref().map(text).filter(|b| !b.is_empty());
            let fallback = if log.event_name.is_empty() {
                "error".to_owned()
            } else {
                log.event_name.clone()
            };
            let origin = Origin {
                trace_id: entry.trace_id,
                span_id: entry.span_id,
                service: resources[entry.resource].resource.service.clone(),
                time_ns: entry.time_ns,
                target: entry.scope,
                location: CodeLocation::default(),
                span_stack: Vec::new(),
                breadcrumbs,
                message: body,
                fallback,
            };
            (entry.resource, error_record(log.attributes, origin))
        })
        .collect()
}

/// A non-error log record as a breadcrumb.
fn log_event(log: pl::LogRecord, time_ns: u64, scope: &str) -> EventRecord {
    let mut attributes = log.attributes;
    let target = take(&mut attributes, TARGET)
        .map(|v| text(&v))
        .unwrap_or_else(|| scope.to_owned());
    let location = take_location(&mut attributes);
    let level = match log.severity_number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        13..=16 => Level::Warn,
        n if n >= ERROR_SEVERITY => Level::Error,
        _ => Level::Info,
    };
    EventRecord {
        time_ns,
        level,
        target: target.into(),
        message: log.body.as_ref().map(text).unwrap_or_default(),
        fields: attributes_of(attributes),
        location,
    }
}

/// Builds an error from the attributes of an `exception` event or an ERROR
/// log record, honouring `exception.*`, `thread.*`, `code.*` and `omegi.*`.
fn error_record(mut attributes: Vec<pc::KeyValue>, origin: Origin) -> ErrorRecord {
    let error_type = take(&mut attributes, "exception.type").map(|v| text(&v));
    let exception_message = take(&mut attributes, "exception.message").map(|v| text(&v));
    let causes = take(&mut attributes, "omegi.causes").map(|v| strings(&v));
    if causes.is_some() {
        // Omegi's sink writes the causes into the stack trace: not a field.
        take(&mut attributes, "exception.stacktrace");
    }
    let kind = take(&mut attributes, "omegi.error.kind")
        .and_then(|v| match text(&v).as_str() {
            "event" => Some(ErrorKind::Event),
            "panic" => Some(ErrorKind::Panic),
            "remote" => Some(ErrorKind::Remote),
            _ => None,
        })
        .unwrap_or(ErrorKind::Remote);
    let fingerprint = take(&mut attributes, "omegi.fingerprint").map(|v| text(&v));
    let span_stack = take(&mut attributes, "omegi.span_stack")
        .and_then(|v| serde_json::from_str::<Vec<SpanFrame>>(&text(&v)).ok());
    let breadcrumbs = take(&mut attributes, "omegi.breadcrumbs")
        .and_then(|v| serde_json::from_str::<Vec<EventRecord>>(&text(&v)).ok());
    let target = take(&mut attributes, TARGET).map(|v| text(&v));
    let thread_name = take(&mut attributes, "thread.name").map(|v| text(&v));
    let thread_id = take(&mut attributes, "thread.id").map(|v| text(&v));
    let location = take_location(&mut attributes);
    let message = exception_message
        .or(origin.message)
        .or_else(|| error_type.clone())
        .unwrap_or(origin.fallback);
    ErrorRecord {
        trace_id: origin.trace_id,
        span_id: origin.span_id,
        service: origin.service,
        time_ns: origin.time_ns,
        kind,
        message,
        causes: causes.unwrap_or_default(),
        error_type,
        target: target.unwrap_or(origin.target),
        fields: attributes_of(attributes),
        span_stack: span_stack.unwrap_or(origin.span_stack),
        breadcrumbs: breadcrumbs.unwrap_or(origin.breadcrumbs),
        location: if location == CodeLocation::default() {
            origin.location
        } else {
            location
        },
        thread: thread_name.or(thread_id),
        fingerprint,
    }
}

/// An array of strings (other elements as text); a lone value as one string.
fn strings(v: &pc::AnyValue) -> Vec<String> {
    match &v.value {
        Some(AV::ArrayValue(a)) => a.values.iter().map(text).collect(),
        _ => vec![text(v)],
    }
}
