//! Error derivation: `exception` span events, ERROR log records and failed
//! spans become [`ErrorRecord`]s (the rules are in the module docs of
//! `otlp`).

use std::collections::HashMap;

use omegi_core::limits::{
    add_count, estimated_event_bytes, estimated_frame_bytes, RecordLimits, DROPPED_BREADCRUMBS,
    DROPPED_FRAMES,
};
use omegi_core::{
    CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level, SpanFrame, SpanId, SpanRecord,
    Status, TraceId,
};
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::attributes::{attributes_of, strings, take, take_location, text, TARGET};
use super::{Limits, ResourceRecords};

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
    /// The span stack and breadcrumbs, unless the attributes carry them.
    context: Context,
    /// The message when the attributes have no `exception.message`.
    message: Option<String>,
    /// The message when there is nothing better.
    fallback: String,
}

/// The errors derived from one request, each with its resource index, and
/// how many were not derived because of the caps.
#[derive(Debug, Default)]
pub(crate) struct Derived {
    pub(crate) errors: Vec<(usize, ErrorRecord)>,
    /// Errors not derived: over `max_errors_per_request`.
    pub(crate) dropped: u64,
    /// Why, for the partial success.
    pub(crate) dropped_message: Option<String>,
}

impl Derived {
    /// Whether another error may be added; counts it as dropped if not.
    fn has_room(&mut self, limits: &Limits) -> bool {
        if self.errors.len() < limits.max_errors_per_request {
            return true;
        }
        self.dropped += 1;
        self.dropped_message.get_or_insert_with(|| {
            format!(
                "more than {} errors in one request (max_errors_per_request)",
                limits.max_errors_per_request
            )
        });
        false
    }
}

/// What the errors of one request may copy from the spans and events
/// around them (span stacks and breadcrumbs), in bytes: once it is spent,
/// errors keep the root and innermost frames of their span stack, without
/// fields, and no breadcrumbs.
struct ContextBudget {
    left: usize,
}

impl ContextBudget {
    /// Takes `bytes` from the budget if they fit.
    fn take(&mut self, bytes: usize) -> bool {
        if bytes <= self.left {
            self.left -= bytes;
            true
        } else {
            self.left = 0;
            false
        }
    }
}

/// The span stack and breadcrumbs an error copies from the spans and events
/// around it.
struct Context {
    span_stack: Vec<SpanFrame>,
    /// Frames left out of the span stack.
    dropped_frames: u64,
    breadcrumbs: Vec<EventRecord>,
    /// Breadcrumbs left out for the budget.
    dropped_breadcrumbs: u64,
}

/// Copies the frames of `chain` (span entries, root first, and the number
/// of frames already left out of it) and the breadcrumbs `crumbs` if they
/// fit into what is left of the budget; otherwise only the root and
/// innermost frame, without fields, and no breadcrumbs. Nothing is copied
/// before the budget says yes.
fn copy_context(
    budget: &mut ContextBudget,
    entries: &[SpanEntry],
    (chain, dropped_frames): (Vec<usize>, u64),
    crumbs: Vec<&EventRecord>,
) -> Context {
    let bytes = chain
        .iter()
        .map(|&a| estimated_frame_bytes(&entries[a].record))
        .sum::<usize>()
        + crumbs
            .iter()
            .map(|e| estimated_event_bytes(e))
            .sum::<usize>();
    if budget.take(bytes) {
        return Context {
            span_stack: chain
                .iter()
                .map(|&a| SpanFrame::of(&entries[a].record, true))
                .collect(),
            dropped_frames,
            breadcrumbs: crumbs.into_iter().cloned().collect(),
            dropped_breadcrumbs: 0,
        };
    }
    let kept: Vec<usize> = match chain.as_slice() {
        [root, .., innermost] if chain.len() > 2 => vec![*root, *innermost],
        _ => chain.clone(),
    };
    Context {
        span_stack: kept
            .iter()
            .map(|&a| SpanFrame::of(&entries[a].record, false))
            .collect(),
        dropped_frames: dropped_frames + (chain.len() - kept.len()) as u64,
        breadcrumbs: Vec::new(),
        dropped_breadcrumbs: crumbs.len() as u64,
    }
}

/// The spans of a request as a forest: each span's parent in the request,
/// its root and its depth, computed once (linear in the spans, cycles
/// broken).
struct Forest {
    parent: Vec<Option<usize>>,
    root: Vec<usize>,
    depth: Vec<usize>,
}

impl Forest {
    fn new(entries: &[SpanEntry]) -> Forest {
        let mut index: HashMap<(TraceId, SpanId), usize> = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            index
                .entry((e.record.trace_id, e.record.span_id))
                .or_insert(i);
        }
        let parent: Vec<Option<usize>> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.record
                    .parent_span_id
                    .and_then(|p| index.get(&(e.record.trace_id, p)).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        let n = entries.len();
        let (mut root, mut depth) = (vec![usize::MAX; n], vec![0; n]);
        // 0: not seen, 1: on the current path, 2: done.
        let mut state = vec![0u8; n];
        let mut path = Vec::new();
        for start in 0..n {
            if state[start] == 2 {
                continue;
            }
            path.clear();
            let mut j = start;
            // The root and depth of the node above the path.
            let (r, d) = loop {
                match state[j] {
                    2 => break (root[j], depth[j] + 1),
                    // A cycle: the node met twice becomes the root.
                    1 => break (j, 0),
                    _ => {}
                }
                state[j] = 1;
                path.push(j);
                match parent[j] {
                    Some(p) => j = p,
                    None => break (j, 0),
                }
            };
            // Walk the path from its top down.
            for (d, &k) in (d..).zip(path.iter().rev()) {
                root[k] = r;
                depth[k] = d;
                state[k] = 2;
            }
        }
        Forest {
            parent,
            root,
            depth,
        }
    }

    /// The span stack of span `i`: its root, then the nearest `nearest`
    /// spans ending with `i`; and how many frames were left out between.
    fn stack(&self, i: usize, nearest: usize) -> (Vec<usize>, u64) {
        let mut chain = vec![i];
        let mut j = i;
        while chain.len() < nearest.max(1) {
            match self.parent[j] {
                Some(p) if !chain.contains(&p) => {
                    chain.push(p);
                    j = p;
                }
                _ => break,
            }
        }
        let root = self.root[i];
        if !chain.contains(&root) {
            chain.push(root);
        }
        chain.reverse();
        let dropped = (self.depth[i] + 1).saturating_sub(chain.len()) as u64;
        (chain, dropped)
    }

    /// Marks every span with a failed descendant, walking up from each
    /// failed span until a span already marked.
    fn failed_ancestors(&self, entries: &[SpanEntry]) -> Vec<bool> {
        let mut marked = vec![false; entries.len()];
        for (i, e) in entries.iter().enumerate() {
            if e.record.status != Status::Error {
                continue;
            }
            let mut j = self.parent[i];
            while let Some(p) = j {
                if marked[p] {
                    break;
                }
                marked[p] = true;
                j = self.parent[p];
            }
        }
        marked
    }
}

/// The events of the spans of each trace in a request, sorted by time
/// once: breadcrumbs are a slice of it.
struct TraceEvents {
    /// (time, span entry, event index), by time.
    by_trace: HashMap<TraceId, Vec<(u64, usize, usize)>>,
}

impl TraceEvents {
    fn new(entries: &[SpanEntry]) -> TraceEvents {
        let mut by_trace: HashMap<TraceId, Vec<(u64, usize, usize)>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.record.events.is_empty() {
                continue;
            }
            let list = by_trace.entry(e.record.trace_id).or_default();
            list.extend(
                e.record
                    .events
                    .iter()
                    .enumerate()
                    .map(|(j, ev)| (ev.time_ns, i, j)),
            );
        }
        for list in by_trace.values_mut() {
            list.sort_by_key(|&(time, _, _)| time);
        }
        TraceEvents { by_trace }
    }

    /// The breadcrumbs of an error at `until_ns` in `trace`, leaving out
    /// event `skip` (span entry, event index).
    fn breadcrumbs<'a>(
        &self,
        entries: &'a [SpanEntry],
        trace: TraceId,
        until_ns: u64,
        skip: (usize, usize),
        limits: &'a Limits,
    ) -> Vec<&'a EventRecord> {
        let Some(list) = self.by_trace.get(&trace) else {
            return Vec::new();
        };
        let upto = list.partition_point(|&(time, _, _)| time <= until_ns);
        limits.records.breadcrumbs(
            list[..upto]
                .iter()
                .rev()
                .filter(|&&(_, i, j)| (i, j) != skip)
                .map(|&(_, i, j)| &entries[i].record.events[j]),
        )
    }
}

/// The errors of the spans of one request (see the module docs of `otlp`),
/// linear in the spans and events: one pass to build the span forest and
/// the sorted events of each trace, then a bounded amount of work per
/// error.
pub(crate) fn from_spans(entries: &[SpanEntry], limits: &Limits) -> Derived {
    let forest = Forest::new(entries);
    let events = TraceEvents::new(entries);
    let has_failed_descendant = forest.failed_ancestors(entries);
    let mut budget = ContextBudget {
        left: limits.max_error_context_bytes,
    };
    let nearest = limits.records.max_span_stack;

    let mut derived = Derived::default();
    for (i, e) in entries.iter().enumerate() {
        let span = &e.record;
        for (event_index, event) in &e.exceptions {
            if !derived.has_room(limits) {
                continue;
            }
            let crumbs = events.breadcrumbs(
                entries,
                span.trace_id,
                event.time_unix_nano,
                (i, *event_index),
                limits,
            );
            let context = copy_context(&mut budget, entries, forest.stack(i, nearest), crumbs);
            let origin = Origin {
                trace_id: Some(span.trace_id),
                span_id: Some(span.span_id),
                service: span.service.clone(),
                time_ns: event.time_unix_nano,
                target: span.target.to_string(),
                location: span.location.clone(),
                context,
                message: None,
                fallback: EXCEPTION_EVENT.to_owned(),
            };
            let error = error_record(event.attributes.clone(), origin);
            derived.errors.push((e.resource, error));
        }
        let reports_status = span.status == Status::Error
            && e.exceptions.is_empty()
            && !e.sdk_is_omegi
            && !has_failed_descendant[i];
        if reports_status && derived.has_room(limits) {
            let crumbs =
                events.breadcrumbs(entries, span.trace_id, span.end_ns, (usize::MAX, 0), limits);
            let context = copy_context(&mut budget, entries, forest.stack(i, nearest), crumbs);
            let mut error = ErrorRecord::of_failed_span(span)
                .with_span_stack(context.span_stack)
                .with_breadcrumbs(context.breadcrumbs);
            add_count(&mut error.fields, DROPPED_FRAMES, context.dropped_frames);
            add_count(
                &mut error.fields,
                DROPPED_BREADCRUMBS,
                context.dropped_breadcrumbs,
            );
            derived.errors.push((e.resource, error));
        }
    }
    derived
}

/// The errors of the ERROR log records of one request, each with its
/// resource index.
pub(crate) fn from_logs(
    entries: Vec<LogEntry>,
    resources: &[ResourceRecords],
    limits: &Limits,
) -> Derived {
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
                &limits.records,
            ));
        }
    }
    for list in crumbs.values_mut() {
        list.sort_by_key(|ev| ev.time_ns);
    }
    let mut budget = ContextBudget {
        left: limits.max_error_context_bytes,
    };
    let mut derived = Derived::default();
    for entry in error_entries {
        if !derived.has_room(limits) {
            continue;
        }
        let refs = entry
            .trace_id
            .and_then(|t| crumbs.get(&t))
            .map(|list| {
                let upto = list.partition_point(|ev| ev.time_ns <= entry.time_ns);
                limits.records.breadcrumbs(list[..upto].iter().rev())
            })
            .unwrap_or_default();
        let context = copy_context(&mut budget, &[], (Vec::new(), 0), refs);
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
            context,
            message: body,
            fallback,
        };
        let error = error_record(log.attributes, origin);
        derived.errors.push((entry.resource, error));
    }
    derived
}

/// A non-error log record as a breadcrumb.
fn log_event(log: pl::LogRecord, time_ns: u64, scope: &str, limits: &RecordLimits) -> EventRecord {
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
    let mut event = EventRecord::new(
        time_ns,
        level,
        log.body.as_ref().map(text).unwrap_or_default(),
    )
    .with_target(target)
    .with_fields(attributes_of(attributes))
    .with_location(location);
    limits.limit_event(&mut event);
    event
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
    let mut fields = attributes_of(attributes);
    let context = origin.context;
    let span_stack = span_stack.unwrap_or_else(|| {
        add_count(&mut fields, DROPPED_FRAMES, context.dropped_frames);
        context.span_stack
    });
    let breadcrumbs = breadcrumbs.unwrap_or_else(|| {
        add_count(
            &mut fields,
            DROPPED_BREADCRUMBS,
            context.dropped_breadcrumbs,
        );
        context.breadcrumbs
    });
    let mut error = ErrorRecord::new(message, origin.time_ns)
        .with_trace_id(origin.trace_id)
        .with_span_id(origin.span_id)
        .with_service(origin.service)
        .with_kind(kind)
        .with_causes(causes.unwrap_or_default())
        .with_target(target.unwrap_or(origin.target))
        .with_fields(fields)
        .with_span_stack(span_stack)
        .with_breadcrumbs(breadcrumbs)
        .with_location(if location == CodeLocation::default() {
            origin.location
        } else {
            location
        });
    error.error_type = error_type;
    error.thread = thread_name.or(thread_id);
    error.fingerprint = fingerprint;
    error
}
