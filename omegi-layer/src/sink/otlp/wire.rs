//! Spans encoded as an OTLP `ExportTraceServiceRequest` straight from the
//! records, by reference: no intermediate messages, no per-span allocation,
//! into a buffer reused from batch to batch. The bytes are those prost
//! writes for the messages of [`encode`](super::encode) (a test holds them
//! equal), so either form may be sent.

use omegi_core::{Attribute, CodeLocation, EventRecord, Level, SpanRecord, Status, Value};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::encode::{span_kind, HAS_IS_REMOTE, IS_REMOTE, SAMPLED};

/// A value as written: the `AnyValue` variants the layer sends.
#[derive(Clone, Copy)]
enum Val<'a> {
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
}

fn key_len(tag: u32) -> usize {
    encoded_len_varint(u64::from(tag << 3))
}

/// Length of a length-delimited field holding `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A proto3 string or bytes field: left out when empty.
fn bytes_field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        delimited_len(tag, len)
    }
}

fn write_delimited(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn write_bytes_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        write_delimited(tag, bytes.len(), out);
        out.extend_from_slice(bytes);
    }
}

fn write_varint_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

fn varint_field_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn write_fixed64_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed64_field_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + 8
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

/// Length of an `AnyValue` message (a oneof: always written).
fn any_value_len(value: Val<'_>) -> usize {
    match value {
        Val::Str(s) => delimited_len(1, s.len()),
        Val::Bool(_) => key_len(2) + 1,
        Val::Int(i) => key_len(3) + encoded_len_varint(i as u64),
        Val::Double(_) => key_len(4) + 8,
        Val::Big(u) => delimited_len(1, decimal(u, &mut [0; 20]).len()),
    }
}

fn write_any_value(value: Val<'_>, out: &mut Vec<u8>) {
    match value {
        Val::Str(s) => {
            write_delimited(1, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Val::Bool(b) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(b), out);
        }
        Val::Int(i) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(i as u64, out);
        }
        Val::Double(f) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Val::Big(u) => {
            let mut buf = [0; 20];
            let s = decimal(u, &mut buf);
            write_delimited(1, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Length of a `KeyValue` message.
fn key_value_len(key: &str, value: Val<'_>) -> usize {
    bytes_field_len(1, key.len()) + delimited_len(2, any_value_len(value))
}

/// Writes a `KeyValue` as field `tag` of its parent.
fn write_key_value(tag: u32, key: &str, value: Val<'_>, out: &mut Vec<u8>) {
    write_delimited(tag, key_value_len(key, value), out);
    write_bytes_field(1, key.as_bytes(), out);
    write_delimited(2, any_value_len(value), out);
    write_any_value(value, out);
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

fn fields<'a>(fields: &'a [Attribute], f: &mut impl FnMut(&'a str, Val<'a>)) {
    for field in fields {
        f(&field.key, Val::of(&field.value));
    }
}

/// Calls `f` with each attribute of `span`, in the order sent.
fn span_attributes<'a>(span: &'a SpanRecord, f: &mut impl FnMut(&'a str, Val<'a>)) {
    fields(&span.attributes, f);
    f("omegi.target", Val::Str(&span.target));
    if span.level != Level::Info {
        f("omegi.level", Val::Str(span.level.as_str()));
    }
    location_attributes(&span.location, f);
}

/// Calls `f` with each attribute of `event`, in the order sent.
fn event_attributes<'a>(
    event: &'a EventRecord,
    span_target: &str,
    f: &mut impl FnMut(&'a str, Val<'a>),
) {
    f("level", Val::Str(event.level.as_str()));
    if event.target != span_target {
        f("omegi.target", Val::Str(&event.target));
    }
    location_attributes(&event.location, f);
    fields(&event.fields, f);
}

/// Length of the attributes (field `tag`) `visit` yields.
fn attributes_len<'a>(tag: u32, visit: impl FnOnce(&mut dyn FnMut(&'a str, Val<'a>))) -> usize {
    let mut len = 0;
    visit(&mut |key, value| len += delimited_len(tag, key_value_len(key, value)));
    len
}

fn event_len(event: &EventRecord, span_target: &str) -> usize {
    fixed64_field_len(1, event.time_ns)
        + bytes_field_len(2, event.message.len())
        + attributes_len(3, |f| {
            event_attributes(event, span_target, &mut |k, v| f(k, v))
        })
}

fn write_event(event: &EventRecord, span_target: &str, out: &mut Vec<u8>) {
    write_delimited(11, event_len(event, span_target), out);
    write_fixed64_field(1, event.time_ns, out);
    write_bytes_field(2, event.message.as_bytes(), out);
    event_attributes(event, span_target, &mut |k, v| {
        write_key_value(3, k, v, out)
    });
}

/// The status message sent: OTLP keeps one for status Error only.
fn status_message(span: &SpanRecord) -> &str {
    match span.status {
        Status::Error => span.status_message.as_deref().unwrap_or_default(),
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

fn status_len(span: &SpanRecord) -> usize {
    bytes_field_len(2, status_message(span).len()) + varint_field_len(3, status_code(span.status))
}

fn span_flags(span: &SpanRecord) -> u32 {
    SAMPLED | HAS_IS_REMOTE | if span.remote_parent { IS_REMOTE } else { 0 }
}

/// Length of a `Span` message.
fn span_len(span: &SpanRecord) -> usize {
    let target = &*span.target;
    delimited_len(1, 16)
        + delimited_len(2, 8)
        + span.parent_span_id.map_or(0, |_| delimited_len(4, 8))
        + bytes_field_len(5, span.name.len())
        + varint_field_len(6, span_kind(span.kind) as u64)
        + fixed64_field_len(7, span.start_ns)
        + fixed64_field_len(8, span.end_ns)
        + attributes_len(9, |f| span_attributes(span, &mut |k, v| f(k, v)))
        + span
            .events
            .iter()
            .map(|e| delimited_len(11, event_len(e, target)))
            .sum::<usize>()
        + varint_field_len(12, u64::from(span.dropped_events))
        + delimited_len(15, status_len(span))
        + key_len(16)
        + 4
}

fn write_span(span: &SpanRecord, len: usize, out: &mut Vec<u8>) {
    write_delimited(2, len, out);
    write_bytes_field(1, &span.trace_id.0.to_be_bytes(), out);
    write_bytes_field(2, &span.span_id.0.to_be_bytes(), out);
    if let Some(parent) = span.parent_span_id {
        write_bytes_field(4, &parent.0.to_be_bytes(), out);
    }
    write_bytes_field(5, span.name.as_bytes(), out);
    write_varint_field(6, span_kind(span.kind) as u64, out);
    write_fixed64_field(7, span.start_ns, out);
    write_fixed64_field(8, span.end_ns, out);
    span_attributes(span, &mut |k, v| write_key_value(9, k, v, out));
    for event in &span.events {
        write_event(event, &span.target, out);
    }
    write_varint_field(12, u64::from(span.dropped_events), out);
    write_delimited(15, status_len(span), out);
    write_bytes_field(2, status_message(span).as_bytes(), out);
    write_varint_field(3, status_code(span.status), out);
    encode_key(16, WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&span_flags(span).to_le_bytes());
}

/// Encodes one `ExportTraceServiceRequest` holding `spans` into `out`
/// (cleared first): `resource` and `scope` are the encoded `Resource` and
/// `InstrumentationScope` messages. `lens` is scratch space, kept by the
/// caller so that its allocation is reused.
pub(crate) fn traces_request(
    resource: &[u8],
    scope: &[u8],
    spans: &[SpanRecord],
    lens: &mut Vec<usize>,
    out: &mut Vec<u8>,
) {
    out.clear();
    lens.clear();
    lens.extend(spans.iter().map(span_len));
    let spans_len: usize = lens.iter().map(|&len| delimited_len(2, len)).sum();
    let scope_spans_len = delimited_len(1, scope.len()) + spans_len;
    let resource_spans_len = delimited_len(1, resource.len()) + delimited_len(2, scope_spans_len);
    out.reserve(delimited_len(1, resource_spans_len));
    write_delimited(1, resource_spans_len, out);
    write_delimited(1, resource.len(), out);
    out.extend_from_slice(resource);
    write_delimited(2, scope_spans_len, out);
    write_delimited(1, scope.len(), out);
    out.extend_from_slice(scope);
    for (span, &len) in spans.iter().zip(lens.iter()) {
        write_span(span, len, out);
    }
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
        let resource = Resource {
            service: "payment".into(),
            attributes: vec![Attribute::new("region", "eu")],
        };
        let otlp_resource = encode::resource(&resource);
        let scope = encode::scope();
        let (resource_bytes, scope_bytes) = (otlp_resource.encode_to_vec(), scope.encode_to_vec());
        let (mut lens, mut out) = (Vec::new(), Vec::new());
        for batch in [spans(), spans()[..1].to_vec(), Vec::new()] {
            let expected = encode::traces_request(
                otlp_resource.clone(),
                scope.clone(),
                batch.iter().cloned().map(encode::span).collect(),
            )
            .encode_to_vec();
            traces_request(&resource_bytes, &scope_bytes, &batch, &mut lens, &mut out);
            assert_eq!(out, expected, "{} spans", batch.len());
        }
    }

    #[test]
    fn decimal_digits() {
        let mut buf = [0; 20];
        assert_eq!(decimal(0, &mut buf), "0");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string());
    }
}
