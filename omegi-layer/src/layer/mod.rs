//! The `tracing_subscriber::Layer` that captures spans, events and errors.

pub(crate) mod data;
mod table;

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

use omegi_core::{Attribute, CodeLocation, ErrorKind, ErrorRecord, SpanFrame, SpanKind, Status};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::export::{self, CapturedSpan, ExportStats, Item, Queue};
use crate::limits::Limits;
use data::{
    fields_bytes, new_trace_id, now_ns, EventVisitor, FieldReader, FieldValue, Fields, LocalTrace,
    RawEvent, SpanData,
};
use table::SpanTable;

/// The field of an error record that counts the span frames left out of its
/// span stack (see [`Limits::max_span_frames`]).
pub(crate) const DROPPED_SPAN_FRAMES: &str = "omegi.dropped_span_frames";
/// The field of an error record that counts the span fields left out of its
/// span stack (see [`Limits::span_stack_bytes`]).
pub(crate) const DROPPED_SPAN_FIELDS: &str = "omegi.dropped_span_fields";

/// Lets code outside the layer (propagation) reach a span's [`SpanData`]
/// through the `Dispatch`, whatever the subscriber's concrete type.
pub(crate) struct WithContext {
    spans: Arc<SpanTable>,
}

impl WithContext {
    /// Runs `f` on the data of span `id`, if the layer records it; `f` runs
    /// under a lock of the layer's span table (see [`SpanTable`]'s rule).
    pub(crate) fn with(&self, id: &Id, f: &mut dyn FnMut(&mut SpanData)) {
        self.spans.with(id, f);
    }
}

/// Captures spans, events and errors and hands them to the exporter thread.
///
/// Built by [`layer`](crate::layer) or [`builder`](crate::builder); works with
/// any subscriber that stores spans in a registry (`S: Subscriber + for<'a>
/// LookupSpan<'a>`), beside fmt, `EnvFilter` and other layers.
pub struct OmegiLayer<S> {
    /// `false` when `OTEL_SDK_DISABLED=true`: every callback returns at once.
    active: bool,
    queue: Queue,
    limits: Limits,
    /// The data of open spans; shared with propagation ([`WithContext`]).
    spans: Arc<SpanTable>,
    with_context: WithContext,
    _subscriber: PhantomData<fn(S)>,
}

impl<S> OmegiLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    pub(crate) fn new(queue: Queue, limits: Limits, active: bool) -> Self {
        let spans = Arc::new(SpanTable::default());
        OmegiLayer {
            active,
            queue,
            limits,
            with_context: WithContext {
                spans: Arc::clone(&spans),
            },
            spans,
            _subscriber: PhantomData,
        }
    }

    /// The export counters: exported, dropped (queue full, in records or
    /// bytes), failed (sink error), and the bytes held for export.
    pub fn stats(&self) -> ExportStats {
        self.queue.counters.snapshot()
    }

    /// Builds an error record whose span stack is `own` (the frame of a
    /// span that is closing, whose data has left the registry) below the
    /// spans of `scope` (innermost first), and marks every span of `scope`
    /// as having seen an error.
    ///
    /// The stack keeps the root and the nearest frames, at most
    /// `max_span_frames`, and span fields up to `span_stack_bytes`, nearest
    /// frames first; what is left out is counted in the record's fields
    /// [`DROPPED_SPAN_FRAMES`] and [`DROPPED_SPAN_FIELDS`].
    fn error_record<'a>(
        &self,
        own: Option<(&SpanData, &'static Metadata<'static>)>,
        scope: impl Iterator<Item = SpanRef<'a, S>>,
        time_ns: u64,
    ) -> ErrorRecord {
        let mut record = ErrorRecord::new(String::new(), time_ns);
        record.thread = thread_name();
        let mut stack = StackBuilder::new(&self.limits);
        let mut local_trace: Option<Arc<LocalTrace>> = None;
        if let Some((data, meta)) = own {
            record.trace_id = Some(data.trace_id);
            record.span_id = Some(data.span_id);
            stack.push(data, meta);
            local_trace = Some(data.local_trace.clone());
        }
        // The outermost span seen beyond the nearest frames: the root, once
        // the walk is over.
        let mut outermost: Option<SpanRef<'a, S>> = None;
        for span in scope {
            let room = stack.has_room();
            let found = self.spans.with(&span.id(), |data| {
                data.error_seen = true;
                if record.span_id.is_none() {
                    record.trace_id = Some(data.trace_id);
                    record.span_id = Some(data.span_id);
                    local_trace = Some(data.local_trace.clone());
                }
                if room {
                    stack.push(data, span.metadata());
                }
            });
            if found.is_some() && !room && outermost.replace(span).is_some() {
                stack.dropped_frames += 1;
            }
        }
        if let Some(root) = outermost {
            self.spans
                .with(&root.id(), |data| stack.push(data, root.metadata()));
        }
        stack.finish(&mut record);
        if let Some(local) = local_trace {
            record.breadcrumbs = local
                .breadcrumbs()
                .iter()
                .map(|e| export::event_record(e))
                .collect();
        }
        record
    }
    /// Reports span `data`, which failed (e.g. a 5xx response) without any
    /// error being logged below it: the failure itself, with the span stack
    /// of `parent` and above.
    fn report_failed_span(&self, data: &SpanData, parent: Option<SpanRef<'_, S>>, end_ns: u64) {
        let meta = data.meta;
        let mut record = self.error_record(
            Some((data, meta)),
            parent.into_iter().flat_map(|p| p.scope()),
            end_ns,
        );
        record.message = match &data.status_message {
            Some(message) => message.clone(),
            None => {
                let name = data.name.as_deref().unwrap_or(meta.name());
                format!("{name} failed")
            }
        };
        record.target = meta.target().to_owned();
        record.location = export::location(meta);
        self.queue.push(Item::error(record));
    }
}

/// Collects an error's span stack, innermost frame first, within the limits.
struct StackBuilder {
    /// Innermost first; reversed at the end.
    frames: Vec<SpanFrame>,
    /// Frames taken from the innermost outward; the root takes the last one.
    nearest: usize,
    /// Bytes of span fields still allowed.
    field_budget: usize,
    dropped_frames: u64,
    dropped_fields: u64,
}

impl StackBuilder {
    fn new(limits: &Limits) -> Self {
        StackBuilder {
            frames: Vec::new(),
            nearest: limits.max_span_frames.saturating_sub(1),
            field_budget: limits.span_stack_bytes,
            dropped_frames: 0,
            dropped_fields: 0,
        }
    }

    /// Whether one more of the nearest frames fits.
    fn has_room(&self) -> bool {
        self.frames.len() < self.nearest
    }

    fn push(&mut self, data: &SpanData, meta: &'static Metadata<'static>) {
        let mut fields = Vec::new();
        for field in &data.attributes {
            let bytes = fields_bytes(std::slice::from_ref(field));
            if bytes <= self.field_budget {
                self.field_budget -= bytes;
                fields.push(Attribute {
                    key: field.0.to_owned(),
                    value: field.1.to_value(),
                });
            } else {
                self.dropped_fields += 1;
            }
        }
        self.frames.push(
            SpanFrame::new(
                data.span_id,
                data.name.clone().unwrap_or_else(|| meta.name().to_owned()),
            )
            .with_target(meta.target().to_owned())
            .with_fields(fields)
            .with_location(export::location(meta)),
        );
    }

    /// Puts the stack in the record, root first, with what was left out.
    fn finish(mut self, record: &mut ErrorRecord) {
        self.frames.reverse();
        record.span_stack = self.frames;
        for (key, count) in [
            (DROPPED_SPAN_FRAMES, self.dropped_frames),
            (DROPPED_SPAN_FIELDS, self.dropped_fields),
        ] {
            if count > 0 {
                record.fields.push(Attribute::new(key, count));
            }
        }
    }
}

fn thread_name() -> Option<String> {
    let thread = std::thread::current();
    Some(match thread.name() {
        Some(name) => name.to_owned(),
        None => format!("{:?}", thread.id()),
    })
}

impl<S> Layer<S> for OmegiLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        // Asked for first: its memory arrives while the parent is found.
        let returned = self.queue.returned();
        // The parent is found as the registry finds it, and its data in the
        // layer's own table: no lookup of the new span or of its parent in
        // the registry. (A span filtered out for this layer never reaches
        // this callback.)
        let parent = parent_id(&ctx, attrs.is_root(), attrs.is_contextual(), attrs.parent());
        let inherit = |p: &mut SpanData| (p.trace_id, p.span_id, p.local_trace.clone());
        let inherited = parent.and_then(|parent| {
            self.spans.with(&parent, inherit).or_else(|| {
                // A parent this layer does not record (filtered out): its
                // nearest ancestor that it does, as the registry tells.
                let ancestor = ctx.span(id)?.parent()?;
                self.spans.with(&ancestor.id(), inherit)
            })
        });
        let (trace_id, parent, local_trace) = match inherited {
            Some((trace_id, parent_id, local)) => (trace_id, Some(parent_id), local),
            None => (new_trace_id(), None, Arc::new(LocalTrace::default())),
        };
        let mut data = SpanData::start(
            returned.map(|data| self.queue.reuse(data)),
            attrs.metadata(),
            trace_id,
            parent,
            local_trace,
        );
        attrs.record(&mut FieldReader {
            limits: &self.limits.text,
            put: |name, value| data.set_field(name, value, false),
        });
        self.spans.insert(id, data);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, _ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        // The values are read first: reading runs the application's code
        // (`Debug`), which must not run under the table's lock.
        let mut fields = Fields::new();
        values.record(&mut FieldReader {
            limits: &self.limits.text,
            put: |name, value| fields.push((name, value)),
        });
        self.spans.with(id, |data| {
            for (name, value) in fields {
                data.set_field(name, value, true);
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        let meta = event.metadata();
        // The event's span as the registry finds it, without looking it up
        // there (see `on_new_span`).
        let span = parent_id(&ctx, event.is_root(), event.is_contextual(), event.parent());
        let mut visitor = EventVisitor::new(&self.limits.text);
        event.record(&mut visitor);
        let is_error =
            *meta.level() == tracing_core::Level::ERROR || visitor.error.is_some() || visitor.panic;
        if span.is_none() && !is_error {
            // Nothing to attach the event to, and nothing to report.
            return;
        }
        let time_ns = now_ns();

        let error = is_error.then(|| {
            let mut record =
                self.error_record(None, ctx.event_scope(event).into_iter().flatten(), time_ns);
            fill_error(&mut record, &visitor, meta, &self.limits);
            record
        });

        if let Some(span) = span {
            let raw = RawEvent::shared(
                time_ns,
                meta,
                std::mem::take(&mut visitor.message),
                std::mem::take(&mut visitor.fields),
            );
            // Runs once at most: where the span is found.
            let mut raw = Some(raw);
            let mut attach = |data: &mut SpanData| {
                let Some(raw) = raw.take() else {
                    return;
                };
                data.local_trace.push_breadcrumb(
                    raw.clone(),
                    self.limits.breadcrumbs,
                    self.limits.breadcrumb_bytes,
                );
                if data.events.len() < self.limits.max_events_per_span {
                    data.events.push(raw);
                } else {
                    data.dropped_events = data.dropped_events.saturating_add(1);
                }
                if let Some(error) = &error {
                    data.status = Status::Error;
                    if data.status_message.is_none() {
                        data.status_message = Some(error.message.clone());
                    }
                }
            };
            if self.spans.with(&span, &mut attach).is_none() {
                // A span this layer does not record (filtered out): the
                // nearest one that it does, as the registry tells.
                if let Some(span) = ctx.event_span(event) {
                    self.spans.with(&span.id(), &mut attach);
                }
            }
        }

        if let Some(error) = error {
            self.queue.push(Item::error(error));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        let Some(data) = self.spans.remove(&id) else {
            return;
        };
        let end_ns = now_ns();
        if data.status == Status::Error || data.error_seen {
            // The parent learns that something below it failed, so that a
            // failure is reported once, where it happened.
            let parent = ctx.span(&id).and_then(|span| span.parent());
            if let Some(parent) = &parent {
                self.spans.with(&parent.id(), |p| p.error_seen = true);
            }
            if data.status == Status::Error && !data.error_seen && data.kind != SpanKind::Client {
                self.report_failed_span(&data, parent, end_ns);
            }
        }
        self.queue.push(Item::Span(CapturedSpan { data, end_ns }));
    }

    // SAFETY: each pointer returned is to a value of exactly the type whose
    // `TypeId` was asked for (the layer itself, or its `WithContext` field),
    // borrowed from `self`, which is what `Layer::downcast_raw` requires:
    // the subscriber casts it back to that type and does not outlive `self`.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<WithContext>() {
            Some(&self.with_context as *const WithContext as *const ())
        } else {
            None
        }
    }
}

/// The span a new span or an event belongs to, as the registry finds it:
/// none for a root, the current span for a contextual one, else the
/// explicit parent.
fn parent_id<S: Subscriber>(
    ctx: &Context<'_, S>,
    root: bool,
    contextual: bool,
    explicit: Option<&Id>,
) -> Option<Id> {
    if root {
        None
    } else if contextual {
        ctx.current_span().id().cloned()
    } else {
        explicit.cloned()
    }
}

/// Fills an error record from the event that reported it.
fn fill_error(
    record: &mut ErrorRecord,
    visitor: &EventVisitor,
    meta: &'static tracing_core::Metadata<'static>,
    limits: &Limits,
) {
    let error = visitor.error.as_ref();
    if !visitor.message.is_empty() {
        record.message = visitor.message.to_string();
        if let Some(error) = error {
            record.causes.push(error.message.clone());
            record.causes.extend(error.causes.iter().cloned());
            record.causes.truncate(limits.text.error_causes);
        }
    } else if let Some(error) = error {
        record.message = error.message.clone();
        record.causes = error.causes.clone();
    } else if let Some(text) = visitor.field_text("error") {
        // `#[instrument(err)]` records the error as `error = %e`.
        record.message = text;
    } else {
        record.message = meta.name().to_owned();
    }
    record.error_type = visitor
        .error_type
        .clone()
        .or_else(|| error.and_then(|e| e.type_name.clone()));
    record.target = meta.target().to_owned();
    // The event's fields come before what the span stack counted.
    let stack_counts = std::mem::replace(&mut record.fields, export::attributes(&visitor.fields));
    record.fields.extend(stack_counts);
    record.fingerprint = visitor.fingerprint.clone();
    record.location = export::location(meta);
    if visitor.panic {
        record.kind = ErrorKind::Panic;
        record.error_type.get_or_insert_with(|| "panic".to_owned());
        if let Some(message) = visitor.field_text("panic.message") {
            record.message = message;
        }
        if let Some(file) = visitor.field_text("panic.file") {
            record.location = CodeLocation {
                file: Some(file.into()),
                line: visitor.fields.iter().find_map(|(k, v)| match (k, v) {
                    (&"panic.line", FieldValue::I64(n)) => u32::try_from(*n).ok(),
                    _ => None,
                }),
                module: None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::time::Duration;

    use omegi_core::{SpanRecord, Value};
    use tracing_subscriber::prelude::*;

    use super::*;

    /// A value whose `Debug` logs, as application code may.
    struct Logs;

    impl fmt::Debug for Logs {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::info!("formatting");
            f.write_str("logged")
        }
    }

    #[test]
    fn closed_spans_leave_the_table_and_a_field_that_logs_is_recorded() {
        let sink = crate::MemorySink::new();
        let (layer, guard) = crate::layer("svc").with_sink(sink.clone()).build();
        let table = Arc::clone(&layer.spans);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer", later = tracing::field::Empty);
            let entered = outer.enter();
            let inner = tracing::info_span!("inner", a = 1);
            assert_eq!(table.len(), 2);
            // Its `Debug` runs before the span's data is locked: the event
            // it logs lands in the same span.
            outer.record("later", tracing::field::debug(Logs));
            drop(inner);
            assert_eq!(table.len(), 1);
            drop(entered);
        });
        assert_eq!(table.len(), 0, "every span closed");
        assert!(guard.flush(Duration::from_secs(5)));
        let spans = sink.spans();
        let outer = spans.iter().find(|s| s.name == "outer").expect("outer");
        assert_eq!(outer.attribute("later"), Some(&Value::from("logged")));
        assert_eq!(outer.events.len(), 1);
        assert_eq!(outer.events[0].message, "formatting");
    }

    #[test]
    fn a_span_filtered_out_for_the_layer_is_skipped_by_its_children_and_events() {
        use tracing_subscriber::filter::filter_fn;
        let sink = crate::MemorySink::new();
        let (layer, guard) = crate::layer("svc").with_sink(sink.clone()).build();
        let layer = layer.with_filter(filter_fn(|meta| meta.name() != "hidden"));
        // Another layer records every span, so `hidden` exists, filtered out
        // for Omegi's layer only.
        let subscriber = tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer");
            let _outer = outer.enter();
            let hidden = tracing::info_span!("hidden");
            let _hidden = hidden.enter();
            tracing::info!("in hidden");
            let inner = tracing::info_span!("inner");
            let _inner = inner.enter();
            tracing::info!("in inner");
            // An explicit parent that the layer does not record.
            let explicit = tracing::info_span!(parent: &hidden, "explicit");
            drop(explicit);
        });
        assert!(guard.flush(Duration::from_secs(5)));
        let spans = sink.spans();
        let by_name = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name} recorded"))
        };
        assert!(spans.iter().all(|s| s.name != "hidden"));
        let outer = by_name("outer");
        for child in ["inner", "explicit"] {
            let child = by_name(child);
            assert_eq!(child.trace_id, outer.trace_id, "{}", child.name);
            assert_eq!(child.parent_span_id, Some(outer.span_id), "{}", child.name);
        }
        let messages = |span: &SpanRecord| -> Vec<String> {
            span.events.iter().map(|e| e.message.clone()).collect()
        };
        assert_eq!(messages(outer), ["in hidden"]);
        assert_eq!(messages(by_name("inner")), ["in inner"]);
    }
}
