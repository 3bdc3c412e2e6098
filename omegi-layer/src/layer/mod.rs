//! The `tracing_subscriber::Layer` that captures spans, events and errors.

pub(crate) mod data;

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

use omegi_core::{Attribute, CodeLocation, ErrorKind, ErrorRecord, SpanFrame, SpanKind, Status};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use crate::export::{self, CapturedSpan, ExportStats, Item, Queue};
use crate::limits::Limits;
use data::{
    fields_bytes, new_trace_id, now_ns, EventVisitor, FieldValue, LocalTrace, RawEvent, SpanData,
    SpanVisitor,
};

/// The field of an error record that counts the span frames left out of its
/// span stack (see [`Limits::max_span_frames`]).
pub(crate) const DROPPED_SPAN_FRAMES: &str = "omegi.dropped_span_frames";
/// The field of an error record that counts the span fields left out of its
/// span stack (see [`Limits::span_stack_bytes`]).
pub(crate) const DROPPED_SPAN_FIELDS: &str = "omegi.dropped_span_fields";

/// Lets code outside the layer (propagation) reach a span's [`SpanData`]
/// through the `Dispatch`, whatever the subscriber's concrete type.
pub(crate) struct WithContext {
    #[allow(clippy::type_complexity)]
    pub(crate) with: fn(&Dispatch, &Id, &mut dyn FnMut(&mut SpanData)),
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
    with_context: WithContext,
    _subscriber: PhantomData<fn(S)>,
}

impl<S> OmegiLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    pub(crate) fn new(queue: Queue, limits: Limits, active: bool) -> Self {
        OmegiLayer {
            active,
            queue,
            limits,
            with_context: WithContext {
                with: Self::with_span_data,
            },
            _subscriber: PhantomData,
        }
    }

    fn with_span_data(dispatch: &Dispatch, id: &Id, f: &mut dyn FnMut(&mut SpanData)) {
        let Some(subscriber) = dispatch.downcast_ref::<S>() else {
            return;
        };
        let Some(span) = subscriber.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<Box<SpanData>>() {
            f(data);
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
            let mut extensions = span.extensions_mut();
            let Some(data) = extensions.get_mut::<Box<SpanData>>() else {
                continue;
            };
            data.error_seen = true;
            if record.span_id.is_none() {
                record.trace_id = Some(data.trace_id);
                record.span_id = Some(data.span_id);
                local_trace = Some(data.local_trace.clone());
            }
            if stack.has_room() {
                stack.push(data, span.metadata());
            } else {
                drop(extensions);
                if outermost.replace(span).is_some() {
                    stack.dropped_frames += 1;
                }
            }
        }
        if let Some(root) = outermost {
            if let Some(data) = root.extensions().get::<Box<SpanData>>() {
                stack.push(data, root.metadata());
            }
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
        let Some(span) = ctx.span(id) else {
            return;
        };
        let inherited = span.parent().and_then(|parent| {
            parent
                .extensions()
                .get::<Box<SpanData>>()
                .map(|p| (p.trace_id, p.span_id, p.local_trace.clone()))
        });
        let (trace_id, parent, local_trace) = match inherited {
            Some((trace_id, parent_id, local)) => (trace_id, Some(parent_id), local),
            None => (new_trace_id(), None, Arc::new(LocalTrace::default())),
        };
        let mut data = SpanData::start(self.queue.recycled(), trace_id, parent, local_trace);
        attrs.record(&mut SpanVisitor {
            data: &mut data,
            limits: &self.limits.text,
            recorded: false,
        });
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<Box<SpanData>>() {
            values.record(&mut SpanVisitor {
                data,
                limits: &self.limits.text,
                recorded: true,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.active {
            return;
        }
        let meta = event.metadata();
        let span = ctx.event_span(event);
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
            let mut extensions = span.extensions_mut();
            if let Some(data) = extensions.get_mut::<Box<SpanData>>() {
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
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let end_ns = now_ns();
        let Some(data) = span.extensions_mut().remove::<Box<SpanData>>() else {
            return;
        };
        if data.status == Status::Error || data.error_seen {
            // The parent learns that something below it failed, so that a
            // failure is reported once, where it happened.
            if let Some(parent) = span.parent() {
                if let Some(p) = parent.extensions_mut().get_mut::<Box<SpanData>>() {
                    p.error_seen = true;
                }
            }
        }
        if data.status == Status::Error && !data.error_seen && data.kind != SpanKind::Client {
            // The span failed (e.g. a 5xx response) without any error
            // being logged below it: report the failure itself.
            let meta = span.metadata();
            let mut record = self.error_record(
                Some((&data, meta)),
                span.parent().into_iter().flat_map(|p| p.scope()),
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
        self.queue.push(Item::Span(CapturedSpan {
            meta: span.metadata(),
            data,
            end_ns,
        }));
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
