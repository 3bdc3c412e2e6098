//! Spans encoded as an OTLP `ExportTraceServiceRequest` straight from the
//! spans as captured (or from records of the model), by reference: no
//! intermediate messages, no per-span allocation, in one pass, backward,
//! into a buffer reused from batch to batch ([`Backward`]). The bytes are
//! those prost writes for the messages of [`encode`](super::encode) (tests
//! hold them equal), so either form may be sent.
//!
//! The attributes that are the same for every span or event of a callsite
//! (`omegi.target`, `omegi.level`, `level`, `code.*`) are encoded once per
//! callsite and copied from then on ([`Constants`]).

use std::collections::HashMap;
use std::sync::Arc;

use omegi_core::{
    Attribute, CodeLocation, EventRecord, Level, SpanId, SpanKind, SpanRecord, Status, TraceId,
    Value,
};
use prost::encoding::{encoded_len_varint, WireType};
use tracing_core::Metadata;

use super::encode::{span_kind, HAS_IS_REMOTE, IS_REMOTE, SAMPLED};
use crate::export::{level, CapturedSpan};
use crate::layer::data::{FieldValue, RawEvent};

/// A span as the encoder reads it: a record of the model, or a span as the
/// layer captured it.
pub(crate) trait WireSpan {
    /// Its events.
    type Event: WireEvent;
    fn trace_id(&self) -> TraceId;
    fn span_id(&self) -> SpanId;
    fn parent_span_id(&self) -> Option<SpanId>;
    fn remote_parent(&self) -> bool;
    fn name(&self) -> &str;
    fn target(&self) -> &str;
    fn kind(&self) -> SpanKind;
    fn start_ns(&self) -> u64;
    fn end_ns(&self) -> u64;
    /// Calls `f` with each attribute of the span's own fields, last first
    /// (they are written backward; they are sent before the constant ones).
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>));
    /// Calls `f` with each attribute that depends only on the callsite, in
    /// the order sent.
    fn constant_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>));
    /// The callsite, when [`WireSpan::constant_attributes`] are the same
    /// for every span that names it (their encoding is then kept).
    fn callsite(&self) -> Option<&'static Metadata<'static>> {
        None
    }
    fn events(&self) -> &[Self::Event];
    fn dropped_events(&self) -> u32;
    fn status(&self) -> Status;
    fn status_message(&self) -> Option<&str>;
}

/// An event of a [`WireSpan`].
pub(crate) trait WireEvent {
    fn time_ns(&self) -> u64;
    fn message(&self) -> &str;
    /// Calls `f` with each attribute that depends only on the callsite and
    /// on whether the span's target is the event's, in the order sent
    /// (before the fields).
    fn constant_attributes<'a>(&'a self, span_target: &str, f: &mut impl FnMut(&'a str, Val<'a>));
    /// Calls `f` with each of the event's fields, last first (they are
    /// written backward).
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>));
    /// The callsite, when the constant attributes depend on nothing else
    /// (see [`WireEvent::constant_attributes`]).
    fn callsite(&self) -> Option<&'static Metadata<'static>> {
        None
    }
    /// Whether the event's target differs from `span_target`.
    fn other_target(&self, span_target: &str) -> bool;
}

impl WireSpan for SpanRecord {
    type Event = EventRecord;
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
    fn remote_parent(&self) -> bool {
        self.remote_parent
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn target(&self) -> &str {
        &self.target
    }
    fn kind(&self) -> SpanKind {
        self.kind
    }
    fn start_ns(&self) -> u64 {
        self.start_ns
    }
    fn end_ns(&self) -> u64 {
        self.end_ns
    }
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        fields(&self.attributes, f);
    }
    fn constant_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        f("omegi.target", Val::Str(&self.target));
        if self.level != Level::Info {
            f("omegi.level", Val::Str(self.level.as_str()));
        }
        location_attributes(&self.location, f);
    }
    fn events(&self) -> &[EventRecord] {
        &self.events
    }
    fn dropped_events(&self) -> u32 {
        self.dropped_events
    }
    fn status(&self) -> Status {
        self.status
    }
    fn status_message(&self) -> Option<&str> {
        self.status_message.as_deref()
    }
}

impl WireEvent for EventRecord {
    fn time_ns(&self) -> u64 {
        self.time_ns
    }
    fn message(&self) -> &str {
        &self.message
    }
    fn constant_attributes<'a>(&'a self, span_target: &str, f: &mut impl FnMut(&'a str, Val<'a>)) {
        f("level", Val::Str(self.level.as_str()));
        if self.other_target(span_target) {
            f("omegi.target", Val::Str(&self.target));
        }
        location_attributes(&self.location, f);
    }
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        fields(&self.fields, f);
    }
    fn other_target(&self, span_target: &str) -> bool {
        self.target != span_target
    }
}

/// The attributes of a callsite's code location, in the order sent (as
/// [`location_attributes`] sends a record's).
fn meta_location<'a>(meta: &'static Metadata<'static>, f: &mut impl FnMut(&'a str, Val<'a>)) {
    if let Some(file) = meta.file() {
        f("code.filepath", Val::Str(file));
    }
    if let Some(line) = meta.line() {
        f("code.lineno", Val::Int(i64::from(line)));
    }
    if let Some(module) = meta.module_path() {
        f("code.namespace", Val::Str(module));
    }
}

/// Calls `f` with each of `fields`, last first.
fn captured_fields<'a>(
    fields: &'a [(&'static str, FieldValue)],
    f: &mut impl FnMut(&'a str, Val<'a>),
) {
    for (key, value) in fields.iter().rev() {
        f(key, Val::of_field(value));
    }
}

impl WireSpan for CapturedSpan {
    type Event = Arc<RawEvent>;
    fn trace_id(&self) -> TraceId {
        self.data.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.data.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.data.parent
    }
    fn remote_parent(&self) -> bool {
        self.data.remote_parent
    }
    fn name(&self) -> &str {
        self.data.name.as_deref().unwrap_or(self.data.meta.name())
    }
    fn target(&self) -> &str {
        self.data.meta.target()
    }
    fn kind(&self) -> SpanKind {
        self.data.kind
    }
    fn start_ns(&self) -> u64 {
        self.data.start_ns
    }
    fn end_ns(&self) -> u64 {
        self.end_ns
    }
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        captured_fields(&self.data.attributes, f);
    }
    fn constant_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        f("omegi.target", Val::Str(self.data.meta.target()));
        let level = level(self.data.meta);
        if level != Level::Info {
            f("omegi.level", Val::Str(level.as_str()));
        }
        meta_location(self.data.meta, f);
    }
    fn callsite(&self) -> Option<&'static Metadata<'static>> {
        Some(self.data.meta)
    }
    fn events(&self) -> &[Arc<RawEvent>] {
        &self.data.events
    }
    fn dropped_events(&self) -> u32 {
        self.data.dropped_events
    }
    fn status(&self) -> Status {
        self.data.status
    }
    fn status_message(&self) -> Option<&str> {
        self.data.status_message.as_deref()
    }
}

impl WireEvent for Arc<RawEvent> {
    fn time_ns(&self) -> u64 {
        self.time_ns
    }
    fn message(&self) -> &str {
        &self.message
    }
    fn constant_attributes<'a>(&'a self, span_target: &str, f: &mut impl FnMut(&'a str, Val<'a>)) {
        f("level", Val::Str(level(self.meta).as_str()));
        if self.other_target(span_target) {
            f("omegi.target", Val::Str(self.meta.target()));
        }
        meta_location(self.meta, f);
    }
    fn field_attributes<'a>(&'a self, f: &mut impl FnMut(&'a str, Val<'a>)) {
        captured_fields(&self.fields, f);
    }
    fn callsite(&self) -> Option<&'static Metadata<'static>> {
        Some(self.meta)
    }
    fn other_target(&self, span_target: &str) -> bool {
        self.meta.target() != span_target
    }
}

/// A value as written: the `AnyValue` variants the layer sends.
#[derive(Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// An unsigned value above `i64::MAX`, sent as its decimal text.
    Big(u64),
}

impl<'a> Val<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Bool(b) => Val::Bool(*b),
            Value::I64(i) => Val::Int(*i),
            Value::U64(u) => match i64::try_from(*u) {
                Ok(i) => Val::Int(i),
                Err(_) => Val::Big(*u),
            },
            Value::F64(f) => Val::Double(*f),
            Value::Str(s) => Val::Str(s),
        }
    }

    /// As [`FieldValue::to_value`] and then [`Val::of`] would make it.
    fn of_field(value: &'a FieldValue) -> Self {
        match value {
            FieldValue::Bool(b) => Val::Bool(*b),
            FieldValue::I64(i) => Val::Int(*i),
            FieldValue::U64(u) => match i64::try_from(*u) {
                Ok(i) => Val::Int(i),
                Err(_) => Val::Big(*u),
            },
            FieldValue::F64(f) => Val::Double(*f),
            FieldValue::Str(s) => Val::Str(s),
        }
    }
}

/// A buffer written from its end toward its start. A protobuf message is
/// preceded by its length, which is known once the message is written:
/// written backward, last field first, every length is at hand when it is
/// needed, and one pass encodes the request (forward, a first pass would
/// have to size every message). Reused from batch to batch: its room stays.
#[derive(Default)]
pub(crate) struct Backward {
    /// Written bytes are `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
}

impl Backward {
    /// Forgets what was written, keeping the room.
    pub(crate) fn clear(&mut self) {
        self.start = self.buf.len();
    }

    /// What was written.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Bytes written since the last [`clear`](Self::clear).
    #[inline]
    fn written(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The `n` bytes before what was written, to be filled in.
    #[inline]
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.start < n {
            self.grow(n);
        }
        self.start -= n;
        &mut self.buf[self.start..self.start + n]
    }

    /// At least doubles the room, keeping what was written at the end.
    #[cold]
    fn grow(&mut self, n: usize) {
        let used = self.written();
        let size = (2 * self.buf.len()).max(used + n).max(4096);
        let mut buf = vec![0; size];
        buf[size - used..].copy_from_slice(self.as_slice());
        self.buf = buf;
        self.start = size - used;
    }

    #[inline]
    fn bytes(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
    }

    /// One byte.
    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        if self.start == 0 {
            self.grow(1);
        }
        self.start -= 1;
        self.buf[self.start] = byte;
    }

    /// A protobuf varint, as `prost::encoding::encode_varint` writes it.
    /// Most (keys, lengths, small numbers) take one or two bytes.
    #[inline(always)]
    fn varint(&mut self, value: u64) {
        if value < 0x80 {
            self.byte(value as u8);
        } else if value < 0x4000 {
            let room = self.room(2);
            room[0] = (value as u8) | 0x80;
            room[1] = (value >> 7) as u8;
        } else {
            self.long_varint(value);
        }
    }

    #[inline(never)]
    fn long_varint(&mut self, mut value: u64) {
        let room = self.room(encoded_len_varint(value));
        if let Some((last, head)) = room.split_last_mut() {
            for byte in head {
                *byte = (value as u8) | 0x80;
                value >>= 7;
            }
            *last = value as u8;
        }
    }

    /// A field's key: its tag and wire type (one byte for the tags below
    /// 16, once inlined).
    #[inline(always)]
    fn key(&mut self, tag: u32, wire_type: WireType) {
        self.varint(u64::from(tag << 3 | wire_type as u32));
    }

    /// The one byte of a key whose tag is below 16 (see [`Backward::key`]).
    #[inline(always)]
    fn short_key(tag: u32, wire_type: WireType) -> u8 {
        debug_assert!(tag < 16);
        (tag << 3 | wire_type as u32) as u8
    }

    /// The key and length of a length-delimited field `tag` holding `len`
    /// bytes: one reservation of two bytes when both fit in one each (the
    /// tags below 16 and all but the largest lengths).
    #[inline(always)]
    fn key_and_len(&mut self, tag: u32, len: usize) {
        if tag < 16 && len < 0x80 {
            let room = self.room(2);
            room[0] = Self::short_key(tag, WireType::LengthDelimited);
            room[1] = len as u8;
        } else {
            self.varint(len as u64);
            self.key(tag, WireType::LengthDelimited);
        }
    }

    /// The length and key of a length-delimited field `tag` whose contents
    /// are what was written since `mark` (a [`written`](Self::written)).
    #[inline]
    fn delimited(&mut self, tag: u32, mark: usize) {
        self.key_and_len(tag, self.written() - mark);
    }

    /// A string or bytes field, always written (a oneof's, or a message's).
    #[inline]
    fn bytes_field(&mut self, tag: u32, bytes: &[u8]) {
        let len = bytes.len();
        if tag < 16 && len < 0x80 {
            // Key, length and bytes in one reservation.
            let room = self.room(len + 2);
            room[0] = Self::short_key(tag, WireType::LengthDelimited);
            room[1] = len as u8;
            room[2..].copy_from_slice(bytes);
        } else {
            self.bytes(bytes);
            self.key_and_len(tag, len);
        }
    }

    /// A proto3 string or bytes field: left out when empty.
    #[inline]
    fn optional_bytes_field(&mut self, tag: u32, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.bytes_field(tag, bytes);
        }
    }

    /// A proto3 varint field: left out when 0.
    #[inline]
    fn varint_field(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.varint(value);
            self.key(tag, WireType::Varint);
        }
    }

    /// A proto3 fixed64 field: left out when 0.
    #[inline]
    fn fixed64_field(&mut self, tag: u32, value: u64) {
        if value != 0 {
            if tag < 16 {
                let room = self.room(9);
                room[0] = Self::short_key(tag, WireType::SixtyFourBit);
                room[1..].copy_from_slice(&value.to_le_bytes());
            } else {
                self.bytes(&value.to_le_bytes());
                self.key(tag, WireType::SixtyFourBit);
            }
        }
    }

    /// An `AnyValue` message's contents (a oneof: always written).
    fn any_value(&mut self, value: Val<'_>) {
        match value {
            Val::Str(s) => self.bytes_field(1, s.as_bytes()),
            Val::Bool(b) => {
                self.varint(u64::from(b));
                self.key(2, WireType::Varint);
            }
            Val::Int(i) => {
                self.varint(i as u64);
                self.key(3, WireType::Varint);
            }
            Val::Double(f) => {
                self.bytes(&f.to_le_bytes());
                self.key(4, WireType::SixtyFourBit);
            }
            Val::Big(u) => self.bytes_field(1, decimal(u, &mut [0; 20]).as_bytes()),
        }
    }

    /// A `KeyValue` as field `tag` of its parent.
    fn key_value(&mut self, tag: u32, key: &str, value: Val<'_>) {
        let mark = self.written();
        self.any_value(value);
        self.delimited(2, mark);
        self.optional_bytes_field(1, key.as_bytes());
        self.delimited(tag, mark);
    }

    /// The `KeyValue`s `visit` yields in the order sent, as fields `tag`.
    /// Only for what is encoded once ([`Constants`]): the attributes are
    /// gathered first, to be written last first.
    fn key_values<'a>(&mut self, tag: u32, visit: impl FnOnce(&mut dyn FnMut(&'a str, Val<'a>))) {
        let mut attributes: smallvec::SmallVec<[(&str, Val<'_>); 8]> = smallvec::SmallVec::new();
        visit(&mut |key, value| attributes.push((key, value)));
        for (key, value) in attributes.into_iter().rev() {
            self.key_value(tag, key, value);
        }
    }
}

/// Digits of `u` in decimal, written into `buf`.
fn decimal(u: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = u;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Calls `f` with each attribute of `location`, in the order sent.
fn location_attributes<'a>(location: &'a CodeLocation, f: &mut impl FnMut(&'a str, Val<'a>)) {
    if let Some(file) = &location.file {
        f("code.filepath", Val::Str(file));
    }
    if let Some(line) = location.line {
        f("code.lineno", Val::Int(i64::from(line)));
    }
    if let Some(module) = &location.module {
        f("code.namespace", Val::Str(module));
    }
}

/// Calls `f` with each of `fields`, last first.
fn fields<'a>(fields: &'a [Attribute], f: &mut impl FnMut(&'a str, Val<'a>)) {
    for field in fields.iter().rev() {
        f(&field.key, Val::of(&field.value));
    }
}

/// Attributes that depend only on the callsite, encoded once per callsite
/// (and per kind: a span's, an event's in a span of its own target, an
/// event's in a span of another target) and copied from then on. Kept by
/// the exporter from batch to batch; bounded: when more callsites than
/// [`Constants::MAX_CALLSITES`] were seen, it starts again. What the span
/// encoder keeps from batch to batch.
#[derive(Default)]
pub(crate) struct Constants {
    encoded: HashMap<(usize, u8), Box<[u8]>, crate::hash::BuildWordHasher>,
    /// Where they are encoded: for what has no callsite (records of the
    /// model), anew each time.
    scratch: Backward,
}

const SPAN: u8 = 0;
const EVENT: u8 = 1;
const EVENT_OTHER_TARGET: u8 = 2;

impl Constants {
    const MAX_CALLSITES: usize = 4096;

    /// The encoded constant attributes of `callsite` of this `kind`, made by
    /// `encode` the first time (or every time, without a callsite).
    fn get(
        &mut self,
        callsite: Option<&'static Metadata<'static>>,
        kind: u8,
        encode: impl FnOnce(&mut Backward),
    ) -> &[u8] {
        let scratch = &mut self.scratch;
        let encoded = || {
            scratch.clear();
            encode(scratch);
            scratch.as_slice()
        };
        let Some(meta) = callsite else {
            return encoded();
        };
        let key = (std::ptr::from_ref(meta) as usize, kind);
        if self.encoded.len() >= Self::MAX_CALLSITES && !self.encoded.contains_key(&key) {
            self.encoded.clear();
        }
        self.encoded.entry(key).or_insert_with(|| encoded().into())
    }

    fn span<S: WireSpan>(&mut self, span: &S) -> &[u8] {
        self.get(span.callsite(), SPAN, |out| {
            out.key_values(9, |f| span.constant_attributes(&mut |k, v| f(k, v)));
        })
    }

    fn event<E: WireEvent>(&mut self, event: &E, span_target: &str) -> &[u8] {
        let kind = if event.other_target(span_target) {
            EVENT_OTHER_TARGET
        } else {
            EVENT
        };
        self.get(event.callsite(), kind, |out| {
            out.key_values(3, |f| {
                event.constant_attributes(span_target, &mut |k, v| f(k, v));
            });
        })
    }
}

/// An `Event` as field 11 of its span.
fn write_event<E: WireEvent>(
    event: &E,
    span_target: &str,
    constants: &mut Constants,
    out: &mut Backward,
) {
    let mark = out.written();
    event.field_attributes(&mut |k, v| out.key_value(3, k, v));
    out.bytes(constants.event(event, span_target));
    out.optional_bytes_field(2, event.message().as_bytes());
    out.fixed64_field(1, event.time_ns());
    out.delimited(11, mark);
}

/// The status message sent: OTLP keeps one for status Error only.
fn status_message<S: WireSpan>(span: &S) -> &str {
    match span.status() {
        Status::Error => span.status_message().unwrap_or_default(),
        _ => "",
    }
}

fn status_code(status: Status) -> u64 {
    match status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

fn span_flags<S: WireSpan>(span: &S) -> u32 {
    SAMPLED | HAS_IS_REMOTE | if span.remote_parent() { IS_REMOTE } else { 0 }
}

/// A `Span` as field 2 of its `ScopeSpans`, last field first.
fn write_span<S: WireSpan>(span: &S, constants: &mut Constants, out: &mut Backward) {
    let mark = out.written();
    out.bytes(&span_flags(span).to_le_bytes());
    out.key(16, WireType::ThirtyTwoBit);
    let status = out.written();
    out.varint_field(3, status_code(span.status()));
    out.optional_bytes_field(2, status_message(span).as_bytes());
    out.delimited(15, status);
    out.varint_field(12, u64::from(span.dropped_events()));
    let target = span.target();
    for event in span.events().iter().rev() {
        write_event(event, target, constants, out);
    }
    out.bytes(constants.span(span));
    span.field_attributes(&mut |k, v| out.key_value(9, k, v));
    out.fixed64_field(8, span.end_ns());
    out.fixed64_field(7, span.start_ns());
    out.varint_field(6, span_kind(span.kind()) as u64);
    out.optional_bytes_field(5, span.name().as_bytes());
    if let Some(parent) = span.parent_span_id() {
        out.bytes_field(4, &parent.0.to_be_bytes());
    }
    out.bytes_field(2, &span.span_id().0.to_be_bytes());
    out.bytes_field(1, &span.trace_id().0.to_be_bytes());
    out.delimited(2, mark);
}

/// Encodes one `ExportTraceServiceRequest` holding `spans` into `out`
/// (cleared first): `resource` and `scope` are the encoded `Resource` and
/// `InstrumentationScope` messages. `constants` is kept by the caller from
/// batch to batch, so that the callsites' encoded constants are reused.
pub(crate) fn traces_request<'s, S: WireSpan + 's>(
    resource: &[u8],
    scope: &[u8],
    spans: impl DoubleEndedIterator<Item = &'s S>,
    constants: &mut Constants,
    out: &mut Backward,
) {
    out.clear();
    // One `ResourceSpans` holding one `ScopeSpans`, written from the last
    // span back.
    for span in spans.rev() {
        write_span(span, constants, out);
    }
    out.bytes_field(1, scope);
    out.delimited(2, 0);
    out.bytes_field(1, resource);
    out.delimited(1, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::otlp::encode;
    use omegi_core::{Resource, SpanId, SpanKind};
    use prost::Message as _;

    /// Spans that touch every branch: parents or none, each status, big
    /// unsigned values, empty texts, zero times, events of other targets.
    fn spans() -> Vec<SpanRecord> {
        let full = encode::tests::span_record();
        let mut root = full.clone();
        root.parent_span_id = None;
        root.remote_parent = false;
        root.status = Status::Unset;
        root.status_message = Some("not sent".into());
        root.level = Level::Info;
        root.kind = SpanKind::Consumer;
        root.location = CodeLocation::default();
        root.events.clear();
        root.dropped_events = 0;
        let mut odd = full.clone();
        odd.span_id = SpanId(u64::MAX);
        odd.name = "".into();
        odd.start_ns = 0;
        odd.status = Status::Ok;
        odd.attributes = vec![
            Attribute::new("", ""),
            Attribute::new("f", 0.0),
            Attribute::new("b", false),
            Attribute::new("i", 0i64),
            Attribute::new("neg", -1i64),
            Attribute::new("u", i64::MAX as u64 + 1),
            Attribute::new("long", "x".repeat(300)),
        ];
        odd.events[0].target = odd.target.clone();
        odd.events[0].message = String::new();
        odd.events[0].time_ns = 0;
        odd.events.push(full.events[0].clone());
        vec![full, root, odd]
    }

    #[test]
    fn direct_encoding_writes_what_prost_writes_for_the_messages() {
        let resource = Resource::new("payment").with_attribute("region", "eu");
        let otlp_resource = encode::resource(&resource);
        let scope = encode::scope();
        let (resource_bytes, scope_bytes) = (otlp_resource.encode_to_vec(), scope.encode_to_vec());
        let (mut constants, mut out) = (Constants::default(), Backward::default());
        // The last batch outgrows the buffer's first room while it is written.
        for batch in [
            spans(),
            spans()[..1].to_vec(),
            Vec::new(),
            std::iter::repeat_n(spans(), 40).flatten().collect(),
        ] {
            let expected = encode::traces_request(
                otlp_resource.clone(),
                scope.clone(),
                batch.iter().cloned().map(encode::span).collect(),
            )
            .encode_to_vec();
            traces_request(
                &resource_bytes,
                &scope_bytes,
                batch.iter(),
                &mut constants,
                &mut out,
            );
            assert_eq!(out.as_slice(), expected, "{} spans", batch.len());
        }
    }

    /// Captured spans that touch every branch: fields of each kind, a name
    /// set at runtime, events of the span's target and of another, a
    /// failed span, a remote parent.
    fn captured() -> Vec<CapturedSpan> {
        use crate::layer::data::{Fields, LocalTrace, SpanData};
        use compact_str::CompactString;
        let span_meta = tracing::info_span!("work").metadata().expect("metadata");
        let warn_meta = tracing::warn_span!(target: "elsewhere", "other")
            .metadata()
            .expect("metadata");
        let mut fields = Fields::new();
        fields.push(("order", FieldValue::Str(CompactString::new("A-17"))));
        fields.push(("n", FieldValue::I64(-3)));
        fields.push(("big", FieldValue::U64(u64::MAX)));
        fields.push(("ok", FieldValue::Bool(true)));
        fields.push(("ratio", FieldValue::F64(0.5)));
        fields.push(("long", FieldValue::Str(CompactString::new("y".repeat(200)))));
        let event = |meta, message: &str| {
            RawEvent::shared(
                7,
                meta,
                CompactString::new(message),
                Fields::from_iter([("attempt", FieldValue::I64(1))]),
            )
        };
        let data = |id: u64| {
            let mut data = *SpanData::start(
                None,
                span_meta,
                TraceId(0xabc),
                Some(SpanId(1)),
                Arc::new(LocalTrace::default()),
            );
            data.span_id = SpanId(id);
            data.start_ns = 10;
            data
        };
        let mut full = data(2);
        full.attributes = fields;
        full.events.push(event(span_meta, "step done"));
        full.events.push(event(warn_meta, ""));
        full.events.push(event(span_meta, "third"));
        full.dropped_events = 4;
        full.name = Some("GET /orders".into());
        full.kind = SpanKind::Server;
        let mut failed = data(3);
        failed.meta = warn_meta;
        failed.status = Status::Error;
        failed.status_message = Some("declined".into());
        failed.remote_parent = true;
        let mut root = data(4);
        root.parent = None;
        root.status_message = Some("not sent".into());
        vec![
            CapturedSpan {
                data: Box::new(full),
                end_ns: 20,
            },
            CapturedSpan {
                data: Box::new(failed),
                end_ns: 0,
            },
            CapturedSpan {
                data: Box::new(root),
                end_ns: 30,
            },
        ]
    }

    #[test]
    fn captured_spans_are_encoded_as_their_records_would_be() {
        let resource = Resource::new("payment");
        let resource_bytes = encode::resource(&resource).encode_to_vec();
        let scope_bytes = encode::scope().encode_to_vec();
        let spans = captured();
        let records: Vec<SpanRecord> = spans
            .iter()
            .map(|span| crate::export::span_record(&span.data, span.end_ns, "payment"))
            .collect();
        let (mut constants, mut from_captured, mut from_records) = (
            Constants::default(),
            Backward::default(),
            Backward::default(),
        );
        traces_request(
            &resource_bytes,
            &scope_bytes,
            spans.iter(),
            &mut constants,
            &mut from_captured,
        );
        traces_request(
            &resource_bytes,
            &scope_bytes,
            records.iter(),
            &mut constants,
            &mut from_records,
        );
        let len = from_captured.as_slice().len();
        assert!(len > 300, "{len} bytes");
        assert_eq!(from_captured.as_slice(), from_records.as_slice());

        // Again, and in another order, with every callsite's constants
        // already encoded: the same bytes as the records give.
        let mut again = Backward::default();
        for order in [[0, 1, 2], [2, 1, 0]] {
            traces_request(
                &resource_bytes,
                &scope_bytes,
                order.iter().map(|&i| &spans[i]),
                &mut constants,
                &mut again,
            );
            traces_request(
                &resource_bytes,
                &scope_bytes,
                order.iter().map(|&i| &records[i]),
                &mut constants,
                &mut from_records,
            );
            assert_eq!(again.as_slice(), from_records.as_slice(), "{order:?}");
        }
        assert_eq!(
            constants.encoded.len(),
            4,
            "two span callsites, two event kinds"
        );
    }

    #[test]
    fn varints_are_written_as_prost_writes_them() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let (mut ours, mut theirs) = (Backward::default(), Vec::new());
            // Written before what is there already.
            ours.bytes(b"after");
            ours.varint(value);
            prost::encoding::encode_varint(value, &mut theirs);
            theirs.extend_from_slice(b"after");
            assert_eq!(ours.as_slice(), theirs, "{value}");
        }
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), "0");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string());
    }
}
