//! The OTLP/JSON mapping into the protobuf message types.
//!
//! Follows <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>:
//! lowerCamelCase keys, hex ids, integer enums (proto enum names accepted
//! too), 64-bit integers as numbers or strings, `null` as the default value,
//! unknown keys ignored.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::budget::{Cap, Counter, DecodeBudget};
use super::ids::{optional_span_id, optional_trace_id, span_id, trace_id};
use super::DecodeError;

/// Parses an OTLP/JSON `ExportTraceServiceRequest`, counting what it holds
/// against the budget while parsing.
pub(crate) fn traces(
    body: &[u8],
    budget: &DecodeBudget,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    let req: TraceRequest = parse(body, budget)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: req.resource_spans.into_iter().map(Into::into).collect(),
    })
}

/// Parses an OTLP/JSON `ExportLogsServiceRequest`, counting what it holds
/// against the budget while parsing.
pub(crate) fn logs(
    body: &[u8],
    budget: &DecodeBudget,
) -> Result<ExportLogsServiceRequest, DecodeError> {
    let req: LogsRequest = parse(body, budget)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: req.resource_logs.into_iter().map(Into::into).collect(),
    })
}

/// `{"partialSuccess":{...}}` or `{}` (int64 as a string, as OTLP/JSON says).
pub(crate) fn partial_success_json(count_key: &str, partial: Option<(i64, String)>) -> Vec<u8> {
    let value = match partial {
        Some((count, message)) => serde_json::json!({
            "partialSuccess": { count_key: count.to_string(), "errorMessage": message }
        }),
        None => serde_json::json!({}),
    };
    value.to_string().into_bytes()
}

// ---------------------------------------------------------------- budget

/// What the deserializers of one parse share: serde has no place for
/// context, so it lives in a thread-local for the duration of [`parse`]
/// (which runs on one thread, start to end).
struct ParseState {
    counter: Counter,
    /// How deep the value being parsed is nested.
    depth: usize,
    /// The index of the resource group being parsed (for messages).
    resource: usize,
    /// Why the parse was stopped, when the budget or an id stopped it.
    failure: Option<DecodeError>,
}

thread_local! {
    static STATE: RefCell<Option<ParseState>> = const { RefCell::new(None) };
}

/// Removes the parse state when the parse ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        STATE.with(|s| s.borrow_mut().take());
    }
}

/// Runs `f` on the parse state; its error stops the parse: it is kept as
/// the parse's result and its message handed to serde.
fn charge<E: de::Error>(
    f: impl FnOnce(&mut ParseState) -> Result<(), DecodeError>,
) -> Result<(), E> {
    STATE.with(|s| {
        let mut state = s.borrow_mut();
        let Some(state) = state.as_mut() else {
            return Ok(());
        };
        f(state).map_err(|error| {
            let message = error.to_string();
            state.failure.get_or_insert(error);
            E::custom(message)
        })
    })
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], budget: &DecodeBudget) -> Result<T, DecodeError> {
    STATE.with(|s| {
        *s.borrow_mut() = Some(ParseState {
            counter: Counter::new(budget),
            depth: 0,
            resource: 0,
            failure: None,
        })
    });
    let _installed = Installed;
    let parsed = serde_json::from_slice(body);
    let failure = STATE.with(|s| s.borrow_mut().as_mut().and_then(|s| s.failure.take()));
    if let Some(failure) = failure {
        return Err(failure);
    }
    parsed.map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; we report those separately.
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_owned(),
            None => full,
        };
        DecodeError::Json {
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// A list element that the budget counts.
trait Counted: Sized {
    /// The cap it counts against.
    const CAP: Cap;
    /// Whether the list is one item's attributes (or elements), which
    /// `max_attributes_per_item` bounds.
    const PER_ITEM: bool = false;
    /// Called before element `index` is parsed.
    fn enter(_index: usize, _state: &mut ParseState) {}
    /// Checks element `index` once it is parsed.
    fn check(&self, _index: usize, _state: &ParseState) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// A list whose elements are counted as they are parsed; `null` is empty.
fn counted<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Counted,
{
    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Counted> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut list = Vec::new();
            loop {
                let index = list.len();
                charge::<A::Error>(|s| {
                    T::enter(index, s);
                    Ok(())
                })?;
                let Some(element) = seq.next_element::<T>()? else {
                    return Ok(list);
                };
                charge::<A::Error>(|s| {
                    s.counter.add(T::CAP, 1)?;
                    if T::PER_ITEM {
                        s.counter.item_attributes(index + 1)?;
                    }
                    element.check(index, s)
                })?;
                list.push(element);
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }

    d.deserialize_any(ListVisitor(PhantomData))
}

/// A nested array or key-value-list value: one level deeper.
fn nested<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    charge::<D::Error>(|s| {
        s.depth += 1;
        s.counter.depth(s.depth)
    })?;
    let value = Option::<T>::deserialize(d);
    charge::<D::Error>(|s| {
        s.depth -= 1;
        Ok(())
    })?;
    value
}

/// A string, counted; `null` is empty.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    charge::<D::Error>(|st| st.counter.add(Cap::StringBytes, s.len()))?;
    Ok(s)
}

/// An optional string, counted.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    let len = s.as_ref().map_or(0, String::len);
    charge::<D::Error>(|st| st.counter.add(Cap::StringBytes, len))?;
    Ok(s)
}

// ---------------------------------------------------------------- helpers

/// An integer given as a JSON number or a decimal string.
fn int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64> + TryFrom<i64> + Default,
{
    Ok(d.deserialize_any(IntVisitor::<T>(PhantomData, None))?
        .unwrap_or_default())
}

/// An optional integer given as a JSON number or a decimal string.
fn opt_int<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64> + TryFrom<i64>,
{
    d.deserialize_any(IntVisitor::<T>(PhantomData, None))
}

/// An enum given as its number, a decimal string or its proto name (looked
/// up in the table).
fn enumeration<'de, D>(d: D, names: &'static [(&'static str, i32)]) -> Result<i32, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(
        d.deserialize_any(IntVisitor::<i32>(PhantomData, Some(names)))?
            .unwrap_or_default(),
    )
}

struct IntVisitor<T>(PhantomData<T>, Option<&'static [(&'static str, i32)]>);

impl<'de, T> Visitor<'de> for IntVisitor<T>
where
    T: FromStr + TryFrom<u64> + TryFrom<i64>,
{
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string holding an integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Some encoders write `5.0` or `1e3` for integers.
        if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
            if v < 0.0 {
                self.visit_i64(v as i64)
            } else {
                self.visit_u64(v as u64)
            }
        } else {
            Err(E::custom(format!("expected an integer, found {v}")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Ok(n) = v.trim().parse::<T>() {
            return Ok(Some(n));
        }
        if let Some(names) = self.1 {
            if let Some((_, n)) = names.iter().find(|(name, _)| *name == v) {
                return self.visit_i64(i64::from(*n));
            }
        }
        Err(E::custom(format!("expected an integer, found {v:?}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

const SPAN_KINDS: &[(&str, i32)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];

const STATUS_CODES: &[(&str, i32)] = &[
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];

const SEVERITIES: &[(&str, i32)] = &[
    ("SEVERITY_NUMBER_UNSPECIFIED", 0),
    ("SEVERITY_NUMBER_TRACE", 1),
    ("SEVERITY_NUMBER_TRACE2", 2),
    ("SEVERITY_NUMBER_TRACE3", 3),
    ("SEVERITY_NUMBER_TRACE4", 4),
    ("SEVERITY_NUMBER_DEBUG", 5),
    ("SEVERITY_NUMBER_DEBUG2", 6),
    ("SEVERITY_NUMBER_DEBUG3", 7),
    ("SEVERITY_NUMBER_DEBUG4", 8),
    ("SEVERITY_NUMBER_INFO", 9),
    ("SEVERITY_NUMBER_INFO2", 10),
    ("SEVERITY_NUMBER_INFO3", 11),
    ("SEVERITY_NUMBER_INFO4", 12),
    ("SEVERITY_NUMBER_WARN", 13),
    ("SEVERITY_NUMBER_WARN2", 14),
    ("SEVERITY_NUMBER_WARN3", 15),
    ("SEVERITY_NUMBER_WARN4", 16),
    ("SEVERITY_NUMBER_ERROR", 17),
    ("SEVERITY_NUMBER_ERROR2", 18),
    ("SEVERITY_NUMBER_ERROR3", 19),
    ("SEVERITY_NUMBER_ERROR4", 20),
    ("SEVERITY_NUMBER_FATAL", 21),
    ("SEVERITY_NUMBER_FATAL2", 22),
    ("SEVERITY_NUMBER_FATAL3", 23),
    ("SEVERITY_NUMBER_FATAL4", 24),
];

fn span_kind<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enumeration(d, SPAN_KINDS)
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enumeration(d, STATUS_CODES)
}

fn severity<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    enumeration(d, SEVERITIES)
}

/// A trace or span id: hex, either case; empty or `null` → no bytes.
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    let id = decode_hex(&s).ok_or_else(|| {
        let mut shown: String = s.chars().take(64).collect();
        if shown.len() < s.len() {
            shown.push('…');
        }
        de::Error::custom(format!("id {shown:?} is not a hex string"))
    })?;
    charge::<D::Error>(|st| st.counter.add(Cap::StringBytes, id.len()))?;
    Ok(id)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let pairs = s.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    pairs
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// A double: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"` or a
/// numeric string.
fn opt_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Double {
        Number(f64),
        Text(String),
    }
    match Option::<Double>::deserialize(d)? {
        None => Ok(None),
        Some(Double::Number(v)) => Ok(Some(v)),
        Some(Double::Text(s)) => match s.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("expected a double, found {other:?}"))),
        },
    }
}

/// Bytes as base64, standard or URL-safe alphabet, padded or not.
fn opt_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let trimmed = s.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|e| de::Error::custom(format!("invalid base64 in bytesValue: {e}")))?;
    charge::<D::Error>(|st| st.counter.add(Cap::StringBytes, bytes.len()))?;
    Ok(Some(bytes))
}

// ---------------------------------------------------------------- messages

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TraceRequest {
    #[serde(deserialize_with = "counted")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LogsRequest {
    #[serde(deserialize_with = "counted")]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Scope {
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "text")]
    version: String,
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    resource: Option<Resource>,
    #[serde(deserialize_with = "counted")]
    scope_spans: Vec<ScopeSpans>,
    #[serde(deserialize_with = "text")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans {
    scope: Option<Scope>,
    #[serde(deserialize_with = "counted")]
    spans: Vec<Span>,
    #[serde(deserialize_with = "text")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Span {
    #[serde(deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    #[serde(deserialize_with = "text")]
    trace_state: String,
    #[serde(deserialize_with = "hex_id")]
    parent_span_id: Vec<u8>,
    #[serde(deserialize_with = "int")]
    flags: u32,
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "span_kind")]
    kind: i32,
    #[serde(deserialize_with = "int")]
    start_time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    end_time_unix_nano: u64,
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "counted")]
    events: Vec<Event>,
    #[serde(deserialize_with = "int")]
    dropped_events_count: u32,
    #[serde(deserialize_with = "counted")]
    links: Vec<Link>,
    #[serde(deserialize_with = "int")]
    dropped_links_count: u32,
    status: Option<Status>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Event {
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Link {
    #[serde(deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    #[serde(deserialize_with = "text")]
    trace_state: String,
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "int")]
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    #[serde(deserialize_with = "text")]
    message: String,
    #[serde(deserialize_with = "status_code")]
    code: i32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Option<Resource>,
    #[serde(deserialize_with = "counted")]
    scope_logs: Vec<ScopeLogs>,
    #[serde(deserialize_with = "text")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    scope: Option<Scope>,
    #[serde(deserialize_with = "counted")]
    log_records: Vec<LogRecord>,
    #[serde(deserialize_with = "text")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LogRecord {
    #[serde(deserialize_with = "int")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "int")]
    observed_time_unix_nano: u64,
    #[serde(deserialize_with = "severity")]
    severity_number: i32,
    #[serde(deserialize_with = "text")]
    severity_text: String,
    body: Option<AnyValue>,
    #[serde(deserialize_with = "counted")]
    attributes: Vec<KeyValue>,
    #[serde(deserialize_with = "int")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "int")]
    flags: u32,
    #[serde(deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    #[serde(deserialize_with = "text")]
    event_name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyValue {
    #[serde(deserialize_with = "text")]
    key: String,
    value: Option<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    #[serde(deserialize_with = "opt_text")]
    string_value: Option<String>,
    bool_value: Option<bool>,
    #[serde(deserialize_with = "opt_int")]
    int_value: Option<i64>,
    #[serde(deserialize_with = "opt_double")]
    double_value: Option<f64>,
    #[serde(deserialize_with = "nested")]
    array_value: Option<ArrayValue>,
    #[serde(deserialize_with = "nested")]
    kvlist_value: Option<KeyValueList>,
    #[serde(deserialize_with = "opt_base64")]
    bytes_value: Option<Vec<u8>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ArrayValue {
    #[serde(deserialize_with = "counted")]
    values: Vec<AnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KeyValueList {
    #[serde(deserialize_with = "counted")]
    values: Vec<KeyValue>,
}

// ---------------------------------------------------------------- counting

impl Counted for ResourceSpans {
    const CAP: Cap = Cap::Resources;
    fn enter(index: usize, state: &mut ParseState) {
        state.resource = index;
    }
}

impl Counted for ResourceLogs {
    const CAP: Cap = Cap::Resources;
    fn enter(index: usize, state: &mut ParseState) {
        state.resource = index;
    }
}

impl Counted for ScopeSpans {
    const CAP: Cap = Cap::Scopes;
}

impl Counted for ScopeLogs {
    const CAP: Cap = Cap::Scopes;
}

impl Counted for Span {
    const CAP: Cap = Cap::Spans;
    /// The ids, as soon as the span is read.
    fn check(&self, index: usize, state: &ParseState) -> Result<(), DecodeError> {
        let ri = state.resource;
        let mut name: String = self.name.chars().take(64).collect();
        if name.len() < self.name.len() {
            name.push('…');
        }
        let context = || format!("span {name:?} (#{index} of resource #{ri})");
        trace_id(&self.trace_id, context)?;
        span_id(&self.span_id, context)?;
        optional_span_id(&self.parent_span_id, || {
            format!("{} (parent_span_id)", context())
        })?;
        Ok(())
    }
}

impl Counted for LogRecord {
    const CAP: Cap = Cap::LogRecords;
    /// The ids, as soon as the record is read.
    fn check(&self, index: usize, state: &ParseState) -> Result<(), DecodeError> {
        let ri = state.resource;
        let context = || format!("log record #{index} of resource #{ri}");
        optional_trace_id(&self.trace_id, context)?;
        optional_span_id(&self.span_id, context)?;
        Ok(())
    }
}

impl Counted for Event {
    const CAP: Cap = Cap::Events;
}

impl Counted for Link {
    const CAP: Cap = Cap::Links;
}

impl Counted for KeyValue {
    const CAP: Cap = Cap::Attributes;
    const PER_ITEM: bool = true;
}

/// An element of an array value.
impl Counted for AnyValue {
    const CAP: Cap = Cap::Attributes;
    const PER_ITEM: bool = true;
}

// ---------------------------------------------------------------- into proto

fn all<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(Into::into).collect()
}

impl From<Resource> for pr::Resource {
    fn from(r: Resource) -> Self {
        pr::Resource {
            attributes: all(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            entity_refs: Vec::new(),
        }
    }
}

impl From<Scope> for pc::InstrumentationScope {
    fn from(s: Scope) -> Self {
        pc::InstrumentationScope {
            name: s.name,
            version: s.version,
            attributes: all(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
        }
    }
}

impl From<ResourceSpans> for pt::ResourceSpans {
    fn from(r: ResourceSpans) -> Self {
        pt::ResourceSpans {
            resource: r.resource.map(Into::into),
            scope_spans: all(r.scope_spans),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeSpans> for pt::ScopeSpans {
    fn from(s: ScopeSpans) -> Self {
        pt::ScopeSpans {
            scope: s.scope.map(Into::into),
            spans: all(s.spans),
            schema_url: s.schema_url,
        }
    }
}

impl From<Span> for pt::Span {
    fn from(s: Span) -> Self {
        pt::Span {
            trace_id: s.trace_id,
            span_id: s.span_id,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id,
            flags: s.flags,
            name: s.name,
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: all(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            events: all(s.events),
            dropped_events_count: s.dropped_events_count,
            links: all(s.links),
            dropped_links_count: s.dropped_links_count,
            status: s.status.map(|st| pt::Status {
                message: st.message,
                code: st.code,
            }),
        }
    }
}

impl From<Event> for pt::span::Event {
    fn from(e: Event) -> Self {
        pt::span::Event {
            time_unix_nano: e.time_unix_nano,
            name: e.name,
            attributes: all(e.attributes),
            dropped_attributes_count: e.dropped_attributes_count,
        }
    }
}

impl From<Link> for pt::span::Link {
    fn from(l: Link) -> Self {
        pt::span::Link {
            trace_id: l.trace_id,
            span_id: l.span_id,
            trace_state: l.trace_state,
            attributes: all(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        }
    }
}

impl From<ResourceLogs> for pl::ResourceLogs {
    fn from(r: ResourceLogs) -> Self {
        pl::ResourceLogs {
            resource: r.resource.map(Into::into),
            scope_logs: all(r.scope_logs),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeLogs> for pl::ScopeLogs {
    fn from(s: ScopeLogs) -> Self {
        pl::ScopeLogs {
            scope: s.scope.map(Into::into),
            log_records: all(s.log_records),
            schema_url: s.schema_url,
        }
    }
}

impl From<LogRecord> for pl::LogRecord {
    fn from(l: LogRecord) -> Self {
        pl::LogRecord {
            time_unix_nano: l.time_unix_nano,
            observed_time_unix_nano: l.observed_time_unix_nano,
            severity_number: l.severity_number,
            severity_text: l.severity_text,
            body: l.body.map(Into::into),
            attributes: all(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
            trace_id: l.trace_id,
            span_id: l.span_id,
            event_name: l.event_name,
        }
    }
}

impl From<KeyValue> for pc::KeyValue {
    fn from(kv: KeyValue) -> Self {
        pc::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            key_strindex: 0,
        }
    }
}

impl From<AnyValue> for pc::AnyValue {
    fn from(v: AnyValue) -> Self {
        use pc::any_value::Value as V;
        let value = if let Some(s) = v.string_value {
            Some(V::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(V::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(V::IntValue(i))
        } else if let Some(d) = v.double_value {
            Some(V::DoubleValue(d))
        } else if let Some(a) = v.array_value {
            Some(V::ArrayValue(pc::ArrayValue {
                values: all(a.values),
            }))
        } else if let Some(kv) = v.kvlist_value {
            Some(V::KvlistValue(pc::KeyValueList {
                values: all(kv.values),
            }))
        } else {
            v.bytes_value.map(V::BytesValue)
        };
        pc::AnyValue { value }
    }
}
