//! The decode budget: how many objects one request may hold, checked on the
//! wire before anything is built from it.
//!
//! A protobuf message costs far more in memory than on the wire when it is
//! small: an empty span is 2 bytes on the wire and a few hundred bytes once
//! decoded, so a 8 MB body (7.8 KB gzipped) holding 4 million empty spans
//! would take gigabytes. [`scan_traces`] and [`scan_logs`] walk the protobuf
//! wire format of an export request (tags and lengths of the fields Omegi
//! reads; unknown fields skipped; no allocation) and count what the decoded
//! message would hold: resources, scopes, spans, events, links, log records,
//! attributes, string bytes and how deep values nest. Over a cap of
//! [`DecodeBudget`] the request is refused with
//! [`DecodeError::OverBudget`] before it is decoded, so the memory of a
//! request stays within a small multiple of its size. The scan checks the
//! ids of spans and log records as it meets them, so an invalid id is
//! refused without decoding the rest either.
//!
//! The JSON decoder counts the same things with the same caps while it
//! parses. Any receiver of OTLP protobuf (HTTP now, gRPC later) calls the
//! scan on the decompressed message before decoding it.

use std::fmt;

use super::ids::{optional_span_id, optional_trace_id, span_id, trace_id};
use super::DecodeError;

/// Values nest at most this deep whatever the configuration: the protobuf
/// and JSON decoders refuse deeper nesting anyway.
pub const VALUE_DEPTH_CEILING: usize = 24;

/// How many objects of each kind one request may hold. [`Default`] gives
/// the values in the field docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeBudget {
    /// `ResourceSpans`/`ResourceLogs` groups (default 1,000).
    pub max_resources: usize,
    /// `ScopeSpans`/`ScopeLogs` groups (default 10,000).
    pub max_scopes: usize,
    /// Spans (default 50,000).
    pub max_spans: usize,
    /// Span events (default 100,000).
    pub max_events: usize,
    /// Span links (default 50,000).
    pub max_links: usize,
    /// Log records (default 50,000).
    pub max_log_records: usize,
    /// Attributes in the whole request: key-value pairs anywhere (resources,
    /// scopes, spans, events, links, log records, inside key-value lists)
    /// and the elements of array values (default 500,000).
    pub max_attributes: usize,
    /// Attributes of one span, event, link, log record, resource or scope,
    /// and elements of one array or key-value list (default 1,000).
    pub max_attributes_per_item: usize,
    /// How deep array and key-value-list values nest (default 16, at most
    /// [`VALUE_DEPTH_CEILING`]).
    pub max_value_depth: usize,
    /// Bytes of all strings and byte values together, ids included
    /// (default 32 MiB).
    pub max_string_bytes: usize,
}

impl Default for DecodeBudget {
    fn default() -> Self {
        DecodeBudget {
            max_resources: 1_000,
            max_scopes: 10_000,
            max_spans: 50_000,
            max_events: 100_000,
            max_links: 50_000,
            max_log_records: 50_000,
            max_attributes: 500_000,
            max_attributes_per_item: 1_000,
            max_value_depth: 16,
            max_string_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One cap of the [`DecodeBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cap {
    /// [`DecodeBudget::max_resources`].
    Resources,
    /// [`DecodeBudget::max_scopes`].
    Scopes,
    /// [`DecodeBudget::max_spans`].
    Spans,
    /// [`DecodeBudget::max_events`].
    Events,
    /// [`DecodeBudget::max_links`].
    Links,
    /// [`DecodeBudget::max_log_records`].
    LogRecords,
    /// [`DecodeBudget::max_attributes`].
    Attributes,
    /// [`DecodeBudget::max_attributes_per_item`].
    AttributesPerItem,
    /// [`DecodeBudget::max_value_depth`].
    ValueDepth,
    /// [`DecodeBudget::max_string_bytes`].
    StringBytes,
}

impl Cap {
    /// The cap's name, as in [`DecodeBudget`] and the limits table of
    /// `API.md`.
    pub fn name(self) -> &'static str {
        match self {
            Cap::Resources => "max_resources",
            Cap::Scopes => "max_scopes",
            Cap::Spans => "max_spans",
            Cap::Events => "max_events",
            Cap::Links => "max_links",
            Cap::LogRecords => "max_log_records",
            Cap::Attributes => "max_attributes",
            Cap::AttributesPerItem => "max_attributes_per_item",
            Cap::ValueDepth => "max_value_depth",
            Cap::StringBytes => "max_string_bytes",
        }
    }

    /// The cap's value in a budget.
    pub fn limit(self, budget: &DecodeBudget) -> usize {
        match self {
            Cap::Resources => budget.max_resources,
            Cap::Scopes => budget.max_scopes,
            Cap::Spans => budget.max_spans,
            Cap::Events => budget.max_events,
            Cap::Links => budget.max_links,
            Cap::LogRecords => budget.max_log_records,
            Cap::Attributes => budget.max_attributes,
            Cap::AttributesPerItem => budget.max_attributes_per_item,
            Cap::ValueDepth => budget.max_value_depth.min(VALUE_DEPTH_CEILING),
            Cap::StringBytes => budget.max_string_bytes,
        }
    }

    /// What is over the cap, for a message: "more than 10 spans in one
    /// request".
    pub(crate) fn describe(self, limit: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Cap::Resources => "resource groups in one request",
            Cap::Scopes => "scope groups in one request",
            Cap::Spans => "spans in one request",
            Cap::Events => "span events in one request",
            Cap::Links => "span links in one request",
            Cap::LogRecords => "log records in one request",
            Cap::Attributes => "attributes and array elements in one request",
            Cap::AttributesPerItem => "attributes in one item (span, event, link, log record, resource, scope, array or key-value list)",
            Cap::ValueDepth => {
                return write!(f, "values nested more than {limit} deep")
            }
            Cap::StringBytes => "bytes of strings in one request",
        };
        write!(f, "more than {limit} {what}")
    }
}

/// What a request holds, as counted against the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Resource groups.
    pub resources: usize,
    /// Scope groups.
    pub scopes: usize,
    /// Spans.
    pub spans: usize,
    /// Span events.
    pub events: usize,
    /// Span links.
    pub links: usize,
    /// Log records.
    pub log_records: usize,
    /// Attributes and array elements.
    pub attributes: usize,
    /// Bytes of strings and byte values.
    pub string_bytes: usize,
}

/// Counts objects against a budget; the first count over a cap is the error.
#[derive(Debug, Clone)]
pub(crate) struct Counter {
    budget: DecodeBudget,
    pub(crate) tally: Tally,
}

impl Counter {
    pub(crate) fn new(budget: &DecodeBudget) -> Counter {
        Counter {
            budget: *budget,
            tally: Tally::default(),
        }
    }

    fn over(&self, cap: Cap) -> DecodeError {
        DecodeError::OverBudget {
            cap,
            limit: cap.limit(&self.budget),
        }
    }

    /// Counts `n` more objects of the kind `cap` bounds.
    pub(crate) fn add(&mut self, cap: Cap, n: usize) -> Result<(), DecodeError> {
        let t = &mut self.tally;
        let count = match cap {
            Cap::Resources => &mut t.resources,
            Cap::Scopes => &mut t.scopes,
            Cap::Spans => &mut t.spans,
            Cap::Events => &mut t.events,
            Cap::Links => &mut t.links,
            Cap::LogRecords => &mut t.log_records,
            Cap::Attributes => &mut t.attributes,
            Cap::StringBytes => &mut t.string_bytes,
            Cap::AttributesPerItem | Cap::ValueDepth => return Ok(()),
        };
        *count = count.saturating_add(n);
        if *count > cap.limit(&self.budget) {
            return Err(self.over(cap));
        }
        Ok(())
    }

    /// Checks the number of attributes (or elements) of one item so far.
    pub(crate) fn item_attributes(&self, n: usize) -> Result<(), DecodeError> {
        if n > Cap::AttributesPerItem.limit(&self.budget) {
            return Err(self.over(Cap::AttributesPerItem));
        }
        Ok(())
    }

    /// Checks the nesting depth of a value being entered.
    pub(crate) fn depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > Cap::ValueDepth.limit(&self.budget) {
            return Err(self.over(Cap::ValueDepth));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- wire format

/// A field's payload as far as the scan cares.
#[derive(Clone, Copy)]
enum Payload<'a> {
    /// Wire type 2: a string, bytes or a nested message.
    Len(&'a [u8]),
    /// Anything else (varint, fixed, groups): skipped.
    Other,
}

fn malformed(what: &str) -> DecodeError {
    DecodeError::Protobuf(format!("malformed wire format: {what}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| malformed("a varint runs past the end"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(malformed("a varint is longer than 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("a varint is longer than 10 bytes"))
}

fn skip(buf: &[u8], pos: &mut usize, n: usize) -> Result<(), DecodeError> {
    if buf.len() - *pos < n {
        return Err(malformed("a field runs past the end"));
    }
    *pos += n;
    Ok(())
}

/// Groups (wire types 3 and 4, deprecated) nest at most this deep.
const GROUP_DEPTH: usize = 32;

/// Calls `f` with each field of a message, in order.
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, Payload<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut pos = 0;
    while pos < buf.len() {
        let (number, wire) = tag(buf, &mut pos)?;
        match wire {
            0 => {
                varint(buf, &mut pos)?;
                f(number, Payload::Other)?;
            }
            1 => skip(buf, &mut pos, 8)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)
                    .map_err(|_| malformed("a length does not fit"))?;
                let start = pos;
                skip(buf, &mut pos, len)?;
                f(number, Payload::Len(&buf[start..pos]))?;
            }
            3 => skip_group(buf, &mut pos, number)?,
            4 => return Err(malformed("an end-group tag without its start")),
            5 => skip(buf, &mut pos, 4)?,
            _ => return Err(malformed("an invalid wire type")),
        }
    }
    Ok(())
}

fn tag(buf: &[u8], pos: &mut usize) -> Result<(u64, u8), DecodeError> {
    let key = varint(buf, pos)?;
    let number = key >> 3;
    if number == 0 || number > u64::from(u32::MAX >> 3) {
        return Err(malformed("an invalid field number"));
    }
    Ok((number, (key & 7) as u8))
}

/// Skips a group whose start tag (field `number`) was just read.
fn skip_group(buf: &[u8], pos: &mut usize, number: u64) -> Result<(), DecodeError> {
    let mut open = vec![number];
    while let Some(&innermost) = open.last() {
        if *pos >= buf.len() {
            return Err(malformed("a group runs past the end"));
        }
        let (n, wire) = tag(buf, pos)?;
        match wire {
            0 => {
                varint(buf, pos)?;
            }
            1 => skip(buf, pos, 8)?,
            2 => {
                let len = usize::try_from(varint(buf, pos)?)
                    .map_err(|_| malformed("a length does not fit"))?;
                skip(buf, pos, len)?;
            }
            3 if open.len() < GROUP_DEPTH => open.push(n),
            3 => return Err(malformed("groups nested too deep")),
            4 if n == innermost => {
                open.pop();
            }
            4 => return Err(malformed("an end-group tag does not match its start")),
            5 => skip(buf, pos, 4)?,
            _ => return Err(malformed("an invalid wire type")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- schema

/// Counts and checks an `ExportTraceServiceRequest` on the wire (see the
/// module docs); the tally when it is within the budget.
pub fn scan_traces(body: &[u8], budget: &DecodeBudget) -> Result<Tally, DecodeError> {
    let mut c = Counter::new(budget);
    let mut ri = 0;
    fields(body, |number, payload| match (number, payload) {
        (1, Payload::Len(rs)) => {
            c.add(Cap::Resources, 1)?;
            resource_spans(rs, ri, &mut c)?;
            ri += 1;
            Ok(())
        }
        _ => Ok(()),
    })?;
    Ok(c.tally)
}

/// Counts and checks an `ExportLogsServiceRequest` on the wire (see the
/// module docs); the tally when it is within the budget.
pub fn scan_logs(body: &[u8], budget: &DecodeBudget) -> Result<Tally, DecodeError> {
    let mut c = Counter::new(budget);
    let mut ri = 0;
    fields(body, |number, payload| match (number, payload) {
        (1, Payload::Len(rl)) => {
            c.add(Cap::Resources, 1)?;
            resource_logs(rl, ri, &mut c)?;
            ri += 1;
            Ok(())
        }
        _ => Ok(()),
    })?;
    Ok(c.tally)
}

fn string(c: &mut Counter, payload: Payload<'_>) -> Result<(), DecodeError> {
    match payload {
        Payload::Len(s) => c.add(Cap::StringBytes, s.len()),
        Payload::Other => Ok(()),
    }
}

/// The attributes of one item: counted in total and per item.
struct ItemAttributes(usize);

impl ItemAttributes {
    fn add(&mut self, c: &mut Counter, kv: &[u8]) -> Result<(), DecodeError> {
        self.0 += 1;
        c.item_attributes(self.0)?;
        c.add(Cap::Attributes, 1)?;
        key_value(kv, 0, c)
    }
}

fn resource(buf: &[u8], c: &mut Counter) -> Result<(), DecodeError> {
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| match (number, payload) {
        (1, Payload::Len(kv)) => attributes.add(c, kv),
        // entity_refs: strings and lists of strings, counted as attributes.
        (3, Payload::Len(entity)) => {
            c.add(Cap::Attributes, 1)?;
            fields(entity, |n, p| {
                if n == 3 || n == 4 {
                    c.add(Cap::Attributes, 1)?;
                }
                string(c, p)
            })
        }
        _ => Ok(()),
    })
}

fn scope(buf: &[u8], c: &mut Counter) -> Result<(), DecodeError> {
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| match (number, payload) {
        (1 | 2, p) => string(c, p),
        (3, Payload::Len(kv)) => attributes.add(c, kv),
        _ => Ok(()),
    })
}

fn key_value(buf: &[u8], depth: usize, c: &mut Counter) -> Result<(), DecodeError> {
    fields(buf, |number, payload| match (number, payload) {
        (1, p) => string(c, p),
        (2, Payload::Len(value)) => any_value(value, depth, c),
        _ => Ok(()),
    })
}

fn any_value(buf: &[u8], depth: usize, c: &mut Counter) -> Result<(), DecodeError> {
    fields(buf, |number, payload| match (number, payload) {
        (1 | 7, p) => string(c, p),
        (5, Payload::Len(array)) => {
            c.depth(depth + 1)?;
            let mut elements = 0;
            fields(array, |n, p| match (n, p) {
                (1, Payload::Len(element)) => {
                    elements += 1;
                    c.item_attributes(elements)?;
                    c.add(Cap::Attributes, 1)?;
                    any_value(element, depth + 1, c)
                }
                _ => Ok(()),
            })
        }
        (6, Payload::Len(list)) => {
            c.depth(depth + 1)?;
            let mut entries = 0;
            fields(list, |n, p| match (n, p) {
                (1, Payload::Len(kv)) => {
                    entries += 1;
                    c.item_attributes(entries)?;
                    c.add(Cap::Attributes, 1)?;
                    key_value(kv, depth + 1, c)
                }
                _ => Ok(()),
            })
        }
        _ => Ok(()),
    })
}

fn resource_spans(buf: &[u8], ri: usize, c: &mut Counter) -> Result<(), DecodeError> {
    fields(buf, |number, payload| match (number, payload) {
        (1, Payload::Len(r)) => resource(r, c),
        (2, Payload::Len(ss)) => {
            c.add(Cap::Scopes, 1)?;
            scope_spans(ss, ri, c)
        }
        (3, p) => string(c, p),
        _ => Ok(()),
    })
}

fn scope_spans(buf: &[u8], ri: usize, c: &mut Counter) -> Result<(), DecodeError> {
    let mut si = 0;
    fields(buf, |number, payload| match (number, payload) {
        (1, Payload::Len(s)) => scope(s, c),
        (2, Payload::Len(s)) => {
            c.add(Cap::Spans, 1)?;
            span(s, ri, si, c)?;
            si += 1;
            Ok(())
        }
        (3, p) => string(c, p),
        _ => Ok(()),
    })
}

/// At most this much of a name goes into an error message.
const NAME_IN_MESSAGE: usize = 64;

fn name_for_message(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    let mut short: String = name.chars().take(NAME_IN_MESSAGE).collect();
    if short.len() < name.len() {
        short.push('…');
    }
    short
}

fn span(buf: &[u8], ri: usize, si: usize, c: &mut Counter) -> Result<(), DecodeError> {
    let (mut trace, mut own, mut parent, mut name): (&[u8], &[u8], &[u8], &[u8]) =
        (&[], &[], &[], &[]);
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| {
        match (number, payload) {
            (1, Payload::Len(b)) => trace = b,
            (2, Payload::Len(b)) => own = b,
            (4, Payload::Len(b)) => parent = b,
            (5, Payload::Len(b)) => name = b,
            (9, Payload::Len(kv)) => return attributes.add(c, kv),
            (11, Payload::Len(e)) => {
                c.add(Cap::Events, 1)?;
                return event(e, c);
            }
            (13, Payload::Len(l)) => {
                c.add(Cap::Links, 1)?;
                return link(l, c);
            }
            (15, Payload::Len(s)) => {
                return fields(s, |n, p| if n == 2 { string(c, p) } else { Ok(()) })
            }
            _ => {}
        }
        if matches!(number, 1..=5) {
            string(c, payload)?;
        }
        Ok(())
    })?;
    let context = || {
        format!(
            "span {:?} (#{si} of resource #{ri})",
            name_for_message(name)
        )
    };
    trace_id(trace, context)?;
    span_id(own, context)?;
    optional_span_id(parent, || format!("{} (parent_span_id)", context()))?;
    Ok(())
}

fn event(buf: &[u8], c: &mut Counter) -> Result<(), DecodeError> {
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| match (number, payload) {
        (2, p) => string(c, p),
        (3, Payload::Len(kv)) => attributes.add(c, kv),
        _ => Ok(()),
    })
}

fn link(buf: &[u8], c: &mut Counter) -> Result<(), DecodeError> {
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| match (number, payload) {
        (1..=3, p) => string(c, p),
        (4, Payload::Len(kv)) => attributes.add(c, kv),
        _ => Ok(()),
    })
}

fn resource_logs(buf: &[u8], ri: usize, c: &mut Counter) -> Result<(), DecodeError> {
    fields(buf, |number, payload| match (number, payload) {
        (1, Payload::Len(r)) => resource(r, c),
        (2, Payload::Len(sl)) => {
            c.add(Cap::Scopes, 1)?;
            scope_logs(sl, ri, c)
        }
        (3, p) => string(c, p),
        _ => Ok(()),
    })
}

fn scope_logs(buf: &[u8], ri: usize, c: &mut Counter) -> Result<(), DecodeError> {
    let mut li = 0;
    fields(buf, |number, payload| match (number, payload) {
        (1, Payload::Len(s)) => scope(s, c),
        (2, Payload::Len(l)) => {
            c.add(Cap::LogRecords, 1)?;
            log_record(l, ri, li, c)?;
            li += 1;
            Ok(())
        }
        (3, p) => string(c, p),
        _ => Ok(()),
    })
}

fn log_record(buf: &[u8], ri: usize, li: usize, c: &mut Counter) -> Result<(), DecodeError> {
    let (mut trace, mut span): (&[u8], &[u8]) = (&[], &[]);
    let mut attributes = ItemAttributes(0);
    fields(buf, |number, payload| match (number, payload) {
        (3 | 12, p) => string(c, p),
        (5, Payload::Len(body)) => any_value(body, 0, c),
        (6, Payload::Len(kv)) => attributes.add(c, kv),
        (9, Payload::Len(b)) => {
            trace = b;
            string(c, payload)
        }
        (10, Payload::Len(b)) => {
            span = b;
            string(c, payload)
        }
        _ => Ok(()),
    })?;
    let context = || format!("log record #{li} of resource #{ri}");
    optional_trace_id(trace, context)?;
    optional_span_id(span, context)?;
    Ok(())
}
