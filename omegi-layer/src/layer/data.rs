//! Per-span state kept in the layer's span table, and the field visitors
//! that fill it.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::mem::size_of;
use std::sync::{Arc, Mutex, PoisonError};
#[cfg(not(unix))]
use std::time::{SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use omegi_core::{SpanId, SpanKind, Status, TraceId, TraceState, Value};
use smallvec::SmallVec;
use tracing_core::field::{Field, Visit};
use tracing_core::Metadata;

use crate::limits::TextLimits;

/// Nanoseconds since the Unix epoch (0 before it).
///
/// Read on every span's start and end and every event: `clock_gettime`
/// directly, since `SystemTime::now` and `duration_since` cost more than
/// the clock read itself (normalising and checking the two `timespec`s).
#[cfg(unix)]
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a `timespec` the call may write, and
    // `CLOCK_REALTIME` is a clock every Unix has; on failure it is left
    // at 0, read as the epoch.
    #[allow(unsafe_code)]
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0;
    match (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
        (Ok(secs), Ok(nanos)) if !failed => secs.saturating_mul(1_000_000_000) + nanos,
        _ => 0,
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
#[cfg(not(unix))]
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A random non-zero trace id.
pub(crate) fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return TraceId(id);
        }
    }
}

/// A random non-zero span id.
pub(crate) fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId(id);
        }
    }
}

/// A field value as captured on the hot path: text of up to 24 bytes is
/// kept inline, without an allocation. Becomes a [`Value`] on the exporter
/// thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(CompactString),
}

impl FieldValue {
    /// The model's value.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            FieldValue::Bool(v) => Value::Bool(*v),
            FieldValue::I64(v) => Value::I64(*v),
            FieldValue::U64(v) => Value::U64(*v),
            FieldValue::F64(v) => Value::F64(*v),
            FieldValue::Str(v) => Value::Str(v.as_str().to_owned()),
        }
    }

    fn from_u64(v: u64) -> Self {
        i64::try_from(v).map_or(FieldValue::U64(v), FieldValue::I64)
    }

    /// Bytes of text this value holds or becomes (see [`text_bytes`]).
    #[inline]
    fn text_bytes(&self) -> usize {
        match self {
            FieldValue::Str(text) => text_bytes(text),
            _ => 0,
        }
    }
}

/// Bytes of text that `text` holds or becomes: its heap buffer here, or the
/// string it is copied into for export, whichever is larger. Text kept
/// inline counts as the longest inline text, which is cheaper to tell than
/// its length.
#[inline]
fn text_bytes(text: &CompactString) -> usize {
    if text.is_heap_allocated() {
        text.capacity()
    } else {
        INLINE_TEXT_BYTES
    }
}

/// The longest text `CompactString` keeps without an allocation.
const INLINE_TEXT_BYTES: usize = size_of::<CompactString>();

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(v) => write!(f, "{v}"),
            FieldValue::I64(v) => write!(f, "{v}"),
            FieldValue::U64(v) => write!(f, "{v}"),
            FieldValue::F64(v) => write!(f, "{v}"),
            FieldValue::Str(v) => f.write_str(v),
        }
    }
}

/// Fields kept inline: most spans and events have a handful, and an
/// allocation per list would cost more than the copying.
pub(crate) type Fields = SmallVec<[(&'static str, FieldValue); 2]>;

/// Entries a reused span's lists keep room for (see [`SpanData::start`]):
/// more than most spans have, and a bounded amount of memory per span.
const KEPT_SLOTS: usize = 16;

/// Empties `list`, keeping its room when it is at most [`KEPT_SLOTS`].
fn clear_keeping_room<A: smallvec::Array>(list: &mut SmallVec<A>) {
    if list.capacity() > KEPT_SLOTS {
        *list = SmallVec::new();
    } else {
        list.clear();
    }
}

/// Bytes of the room `list` keeps beyond its entries on the heap, at
/// `entry` bytes an entry (none while it is inline).
#[inline]
fn spare_bytes<A: smallvec::Array>(list: &SmallVec<A>, entry: usize) -> usize {
    if list.spilled() {
        (list.capacity() - list.len()) * entry
    } else {
        0
    }
}

/// The larger of two sizes, in a constant.
const fn larger(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Estimated bytes of one field: its entry here or as an exported
/// attribute, whichever is larger, plus its key and text.
const FIELD_BYTES: usize = larger(
    size_of::<(&'static str, FieldValue)>(),
    size_of::<omegi_core::Attribute>(),
);

/// Estimated bytes of a list of fields, here or once exported: an estimate
/// that is cheap to compute on the hot path, and at least what either form
/// holds on the heap.
#[inline]
pub(crate) fn fields_bytes(fields: &[(&'static str, FieldValue)]) -> usize {
    fields
        .iter()
        .map(|(key, value)| FIELD_BYTES + key.len() + value.text_bytes())
        .sum()
}

/// Estimated bytes of one event, as captured (behind its `Arc`) or exported.
const EVENT_BYTES: usize = larger(
    size_of::<RawEvent>() + 2 * size_of::<usize>(),
    size_of::<omegi_core::EventRecord>(),
);

/// An event as captured on the hot path; turned into an `EventRecord` on the
/// exporter thread.
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub(crate) time_ns: u64,
    pub(crate) meta: &'static Metadata<'static>,
    pub(crate) message: CompactString,
    pub(crate) fields: Fields,
    /// Estimated bytes, here or exported (see [`fields_bytes`]).
    pub(crate) bytes: usize,
}

impl RawEvent {
    /// A captured event, shared by its span and the trace's breadcrumbs.
    #[inline]
    pub(crate) fn shared(
        time_ns: u64,
        meta: &'static Metadata<'static>,
        message: CompactString,
        fields: Fields,
    ) -> Arc<Self> {
        let bytes = EVENT_BYTES + text_bytes(&message) + fields_bytes(&fields);
        Arc::new(RawEvent {
            time_ns,
            meta,
            message,
            fields,
            bytes,
        })
    }
}

/// Breadcrumb slots a trace's ring takes at its first event: enough for the
/// events of most requests, so that the ring is allocated once, and small
/// enough (64 bytes) for a trace with one event.
const BREADCRUMB_SLOTS: usize = 8;

/// The most recent events of a trace, within a count and a byte budget.
#[derive(Debug, Default)]
pub(crate) struct Breadcrumbs {
    events: VecDeque<Arc<RawEvent>>,
    bytes: usize,
}

/// State shared by all spans of one trace inside this process.
#[derive(Debug, Default)]
pub(crate) struct LocalTrace {
    /// The most recent events of the trace, for error breadcrumbs.
    pub(crate) breadcrumbs: Mutex<Breadcrumbs>,
    /// The `tracestate` received with the trace, forwarded on outgoing calls.
    pub(crate) tracestate: TraceState,
    /// The trace flags received with the trace, forwarded on outgoing calls
    /// (only the bits the specification defines); `None` when the trace
    /// started in this process, which records it (sampled).
    pub(crate) upstream_flags: Option<u8>,
}

impl LocalTrace {
    /// Keeps `event` as the newest breadcrumb, forgetting the oldest ones
    /// until at most `count` events of at most `bytes` bytes are kept. An
    /// event larger than `bytes` on its own is not kept.
    pub(crate) fn push_breadcrumb(&self, event: Arc<RawEvent>, count: usize, bytes: usize) {
        if count == 0 || event.bytes > bytes {
            return;
        }
        let mut ring = self
            .breadcrumbs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if ring.events.capacity() == 0 {
            // Room for several events at once, instead of growing from one
            // slot (and allocating again) as the first events come in.
            ring.events.reserve_exact(count.min(BREADCRUMB_SLOTS));
        }
        while ring.events.len() >= count || ring.bytes + event.bytes > bytes {
            let Some(oldest) = ring.events.pop_front() else {
                break;
            };
            ring.bytes -= oldest.bytes;
        }
        ring.bytes += event.bytes;
        ring.events.push_back(event);
    }

    /// The breadcrumbs, oldest first.
    pub(crate) fn breadcrumbs(&self) -> Vec<Arc<RawEvent>> {
        self.breadcrumbs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .events
            .iter()
            .cloned()
            .collect()
    }
}

/// What the layer keeps for one open span.
#[derive(Debug)]
pub(crate) struct SpanData {
    /// The span's callsite.
    pub(crate) meta: &'static Metadata<'static>,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) remote_parent: bool,
    pub(crate) start_ns: u64,
    pub(crate) attributes: Fields,
    /// Kept inline up to two.
    pub(crate) events: SmallVec<[Arc<RawEvent>; 2]>,
    pub(crate) dropped_events: u32,
    pub(crate) status: Status,
    pub(crate) status_message: Option<String>,
    pub(crate) kind: SpanKind,
    /// `otel.name`: a name chosen at runtime (e.g. `GET /orders`).
    pub(crate) name: Option<String>,
    /// An error was reported in this span or below it in this process.
    pub(crate) error_seen: bool,
    pub(crate) local_trace: Arc<LocalTrace>,
    /// What this data counts against the export queue's byte budget while
    /// it waits to be reused, once the span has closed; 0 while it is open.
    pub(crate) charged_bytes: usize,
}

impl SpanData {
    /// The data of a span that starts now, written over `recycled` (data the
    /// exporter has finished with) when there is one, so that a span costs
    /// no allocation: its lists keep the room they had (up to
    /// [`KEPT_SLOTS`] entries), so a span with more fields than fit inline
    /// does not allocate again either.
    pub(crate) fn start(
        recycled: Option<Box<SpanData>>,
        meta: &'static Metadata<'static>,
        trace_id: TraceId,
        parent: Option<SpanId>,
        local_trace: Arc<LocalTrace>,
    ) -> Box<SpanData> {
        let Some(mut data) = recycled else {
            return Box::new(SpanData {
                meta,
                trace_id,
                span_id: new_span_id(),
                parent,
                remote_parent: false,
                start_ns: now_ns(),
                attributes: Fields::new(),
                events: SmallVec::new(),
                dropped_events: 0,
                status: Status::Unset,
                status_message: None,
                kind: SpanKind::Internal,
                name: None,
                error_seen: false,
                local_trace,
                charged_bytes: 0,
            });
        };
        clear_keeping_room(&mut data.attributes);
        clear_keeping_room(&mut data.events);
        data.meta = meta;
        data.trace_id = trace_id;
        data.span_id = new_span_id();
        data.parent = parent;
        data.remote_parent = false;
        data.start_ns = now_ns();
        data.dropped_events = 0;
        data.status = Status::Unset;
        data.status_message = None;
        data.kind = SpanKind::Internal;
        data.name = None;
        data.error_seen = false;
        data.local_trace = local_trace;
        data.charged_bytes = 0;
        data
    }

    /// Estimated bytes of this data, and of the span record the exporter
    /// makes of it (see [`fields_bytes`]), with the room its lists keep for
    /// reuse; cheap enough for the hot path.
    #[inline]
    pub(crate) fn estimated_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        size_of::<SpanData>()
            + fields_bytes(&self.attributes)
            + spare_bytes(&self.attributes, FIELD_BYTES)
            + spare_bytes(&self.events, size_of::<Arc<RawEvent>>())
            + self
                .events
                .iter()
                .map(|e| size_of::<Arc<RawEvent>>() + e.bytes)
                .sum::<usize>()
            + text(&self.name)
            + text(&self.status_message)
    }

    /// Applies one field, honouring the `otel.*` conventions of
    /// tracing-opentelemetry (`otel.name`, `otel.kind`, `otel.status_code`,
    /// `otel.status_message`). `recorded`: set by `Span::record`, which may
    /// replace a field the span already has; at creation, every field of
    /// the callsite is visited once.
    pub(crate) fn set_field(&mut self, name: &'static str, value: FieldValue, recorded: bool) {
        let Some(special) = name.strip_prefix("otel.") else {
            if recorded {
                self.put_attribute(name, value);
            } else {
                self.attributes.push((name, value));
            }
            return;
        };
        let text = value.to_string();
        match special {
            "name" => self.name = Some(text),
            "kind" => {
                self.kind = match text.to_ascii_lowercase().as_str() {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    "producer" => SpanKind::Producer,
                    "consumer" => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                }
            }
            "status_code" => {
                self.status = match text.to_ascii_lowercase().as_str() {
                    "error" => Status::Error,
                    "ok" => Status::Ok,
                    _ => Status::Unset,
                }
            }
            "status_message" => self.status_message = Some(text),
            _ => self.put_attribute(name, value),
        }
    }

    fn put_attribute(&mut self, name: &'static str, value: FieldValue) {
        // A span's fields all come from its callsite's field set, so the
        // same field has the same name, at the same address: compared first.
        let same = |k: &&'static str| std::ptr::eq(*k, name) || *k == name;
        if let Some(slot) = self.attributes.iter_mut().find(|(k, _)| same(k)) {
            slot.1 = value;
        } else {
            self.attributes.push((name, value));
        }
    }
}

/// Reads a span's fields (at `new_span` and `Span::record`), cutting text
/// to its limit, and hands each to `put`: straight into the span's data at
/// creation, into a list for `Span::record` (see [`SpanData::set_field`]).
pub(crate) struct FieldReader<'a, F> {
    pub(crate) limits: &'a TextLimits,
    pub(crate) put: F,
}

impl<F: FnMut(&'static str, FieldValue)> Visit for FieldReader<'_, F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        (self.put)(field.name(), FieldValue::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        (self.put)(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        (self.put)(field.name(), FieldValue::from_u64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        (self.put)(field.name(), FieldValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let text = self.limits.field_text(field.name(), value);
        (self.put)(field.name(), FieldValue::Str(text));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
        let text = self.limits.display(&value);
        (self.put)(field.name(), FieldValue::Str(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = self.limits.field_debug(field.name(), value);
        (self.put)(field.name(), FieldValue::Str(text));
    }
}

/// An error value found in an event's fields.
#[derive(Debug, Default)]
pub(crate) struct CapturedError {
    pub(crate) message: String,
    pub(crate) causes: Vec<String>,
    pub(crate) type_name: Option<String>,
}

/// The name of an error's type, for the standard library errors that can be
/// recognised by downcasting.
fn known_type_name(error: &(dyn StdError + 'static)) -> Option<String> {
    macro_rules! probe {
        ($($ty:ty),*) => {
            $(if error.is::<$ty>() { return Some(stringify!($ty).to_owned()); })*
        };
    }
    probe!(
        std::io::Error,
        std::fmt::Error,
        std::num::ParseIntError,
        std::num::ParseFloatError,
        std::str::Utf8Error,
        std::string::FromUtf8Error,
        std::time::SystemTimeError
    );
    None
}

impl CapturedError {
    /// The error's message and `source` chain, each cut to its limit, and at
    /// most `limits.error_causes` causes (a cycle in a buggy source chain
    /// must not hang the application either).
    fn from_error(error: &(dyn StdError + 'static), limits: &TextLimits) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            if causes.len() >= limits.error_causes {
                break;
            }
            causes.push(limits.display(&cause).into_string());
            source = cause.source();
        }
        CapturedError {
            message: limits.display(&error).into_string(),
            causes,
            type_name: known_type_name(error),
        }
    }
}

/// Records an event's fields, cutting text to its limit.
pub(crate) struct EventVisitor<'a> {
    pub(crate) limits: &'a TextLimits,
    pub(crate) message: CompactString,
    pub(crate) fields: Fields,
    /// The first `&dyn Error` field, with its source chain.
    pub(crate) error: Option<CapturedError>,
    /// The `omegi.fingerprint` override.
    pub(crate) fingerprint: Option<String>,
    /// `error.type` or `exception.type`, set by the code.
    pub(crate) error_type: Option<String>,
    /// Set by the panic hook.
    pub(crate) panic: bool,
}

impl<'a> EventVisitor<'a> {
    #[inline]
    pub(crate) fn new(limits: &'a TextLimits) -> Self {
        EventVisitor {
            limits,
            message: CompactString::default(),
            fields: Fields::new(),
            error: None,
            fingerprint: None,
            error_type: None,
            panic: false,
        }
    }

    fn put(&mut self, name: &'static str, value: FieldValue) {
        match name {
            "message" => {
                self.message = match value {
                    FieldValue::Str(text) => text,
                    other => CompactString::from(other.to_string()),
                }
            }
            "omegi.fingerprint" => self.fingerprint = Some(value.to_string()),
            "omegi.panic" => self.panic = matches!(value, FieldValue::Bool(true)),
            "error.type" | "exception.type" => {
                self.error_type = Some(value.to_string());
                self.fields.push((name, value));
            }
            _ => self.fields.push((name, value)),
        }
    }

    /// The text of a field, if present.
    pub(crate) fn field_text(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

impl Visit for EventVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field.name(), FieldValue::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), FieldValue::from_u64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), FieldValue::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let text = self.limits.field_text(field.name(), value);
        self.put(field.name(), FieldValue::Str(text));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
        let captured = CapturedError::from_error(value, self.limits);
        self.put(
            field.name(),
            FieldValue::Str(CompactString::new(&captured.message)),
        );
        if self.error.is_none() {
            self.error = Some(captured);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = self.limits.field_debug(field.name(), value);
        if field.name() == "message" {
            self.message = text;
        } else {
            self.put(field.name(), FieldValue::Str(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_clock_reads_the_wall_clock_in_nanoseconds() {
        let system = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let before = system(SystemTime::now());
        let now = super::now_ns();
        let after = system(SystemTime::now());
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
