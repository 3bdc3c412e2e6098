//! How large a captured record may be, and when its times are believable.
//!
//! Whatever produces records from outside input (the OTLP collector, a layer
//! capturing arbitrary field values) passes them through [`RecordLimits`]
//! before they are stored, in the spirit of OpenTelemetry's attribute and span
//! limits:
//!
//! - texts are cut to a byte length on a `char` boundary and end with a
//!   visible marker, `…[truncated 123456 bytes]`, so that a reader knows the
//!   value is not whole ([`truncate_text`]); the same rule serves text that
//!   is borrowed ([`write_truncated`]) or still being formatted
//!   ([`TruncatingWriter`], which stops reading a value
//!   [`MAX_COUNTED_BYTES`] past its limit and then says `…[truncated N+
//!   bytes]`), so that the layer and the collector cut alike;
//! - lists are capped: attributes per span, event, error, resource and span
//!   frame, events per span, frames of an error's span stack (the root and
//!   the nearest ones), causes and breadcrumbs of an error;
//! - what was dropped is counted where the record keeps it: OTLP's
//!   `dropped_events_count` in [`SpanRecord::dropped_events`], the others as
//!   attributes in the same list ([`DROPPED_ATTRIBUTES`], [`DROPPED_FRAMES`],
//!   [`DROPPED_CAUSES`]).
//!
//! Applying the limits twice changes nothing the second time.
//!
//! [`TimeWindow`] is the rule for timestamps: a span or an error whose time is
//! not within a window around the time it was received is refused; the times
//! inside an accepted record (a span's end and its events, an error's
//! breadcrumbs) are repaired: they take the record's own time.
//!
//! ```
//! use omegi_core::limits::{truncate_text, RecordLimits};
//!
//! let mut message = "é".repeat(10_000); // 20,000 bytes
//! let cut = truncate_text(&mut message, 4096);
//! assert!(message.len() <= 4096);
//! assert!(message.ends_with(&format!("…[truncated {cut} bytes]")));
//! assert_eq!(RecordLimits::default().max_value_bytes, 4096);
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use crate::model::{Attribute, CodeLocation, ErrorRecord, EventRecord, Resource, SpanRecord};
use crate::model::{SpanFrame, Text, Value};

/// The attribute that counts the attributes dropped from its list.
pub const DROPPED_ATTRIBUTES: &str = "omegi.dropped_attributes";
/// The error field that counts the span-stack frames dropped from the
/// middle of the stack.
pub const DROPPED_FRAMES: &str = "omegi.dropped_frames";
/// The error field that counts the breadcrumbs left out of an error (when
/// the errors of one request have copied as much context as they may).
pub const DROPPED_BREADCRUMBS: &str = "omegi.dropped_breadcrumbs";
/// The error field that counts the causes dropped from the end of the chain.
pub const DROPPED_CAUSES: &str = "omegi.dropped_causes";
/// The attribute whose value is cut to [`RecordLimits::max_stacktrace_bytes`]
/// instead of [`RecordLimits::max_value_bytes`].
pub const STACKTRACE: &str = "exception.stacktrace";

/// Prefix of the counting attributes above: they are not counted against
/// the attribute cap, so that capping twice keeps them.
const DROPPED_PREFIX: &str = "omegi.dropped_";

/// Room kept for the marker: `…[truncated ` + 20 digits + ` bytes]`.
const MARKER_ROOM: usize = "…[truncated  bytes]".len() + 20;

/// Caps on the size of one record. [`Default`] gives the values in the
/// field docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordLimits {
    /// Names: service names, span names, targets, attribute keys, error
    /// types, thread names, source files and modules (default 256 bytes).
    pub max_name_bytes: usize,
    /// Values: attribute string values, event messages (log bodies), status
    /// messages, error messages and each cause (default 4 KiB).
    pub max_value_bytes: usize,
    /// The `exception.stacktrace` attribute (default 16 KiB).
    pub max_stacktrace_bytes: usize,
    /// Attributes of one span, event, error, resource or span frame, not
    /// counting the `omegi.dropped_*` counters (default 128).
    pub max_attributes: usize,
    /// Events of one span, the first ones kept (default 128).
    pub max_events: usize,
    /// Frames of an error's span stack besides the root: the nearest ones to
    /// the failing span are kept (default 32).
    pub max_span_stack: usize,
    /// Breadcrumbs of one error, the latest ones kept (default 50).
    pub max_breadcrumbs: usize,
    /// Causes of one error, the outermost ones kept (default 32).
    pub max_causes: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_name_bytes: 256,
            max_value_bytes: 4 * 1024,
            max_stacktrace_bytes: 16 * 1024,
            max_attributes: 128,
            max_events: 128,
            max_span_stack: 32,
            max_breadcrumbs: 50,
            max_causes: 32,
        }
    }
}

/// What applying the limits to a record changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncation {
    /// Texts that were cut.
    pub texts_cut: u64,
    /// Attributes dropped (over [`RecordLimits::max_attributes`]).
    pub attributes_dropped: u64,
    /// Events dropped (over [`RecordLimits::max_events`]).
    pub events_dropped: u64,
    /// Span-stack frames, breadcrumbs and causes dropped.
    pub context_dropped: u64,
}

impl Truncation {
    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        *self == Truncation::default()
    }

    /// Adds what another application of the limits changed.
    pub fn add(&mut self, other: Truncation) {
        self.texts_cut += other.texts_cut;
        self.attributes_dropped += other.attributes_dropped;
        self.events_dropped += other.events_dropped;
        self.context_dropped += other.context_dropped;
    }
}

/// The smallest limit at which a cut text ends with the marker; below it
/// the marker would not fit, and the text is cut without one.
pub const MIN_MARKED_BYTES: usize = 64;

/// How many bytes past its limit a formatted value is still read (not kept)
/// by [`TruncatingWriter`], to count what was cut; past that, formatting
/// stops and the marker gives a lower bound (`…[truncated 65600+ bytes]`).
pub const MAX_COUNTED_BYTES: usize = 64 * 1024;

/// The marker that ends a text cut by these limits: `…[truncated N bytes]`,
/// N being the bytes of the original that are not kept, or
/// `…[truncated N+ bytes]` when the original was not read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncationMarker {
    /// Bytes of the original that are not kept.
    pub dropped: usize,
    /// Whether the original may be longer still (it was not read to its end).
    pub at_least: bool,
}

impl std::fmt::Display for TruncationMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plus = if self.at_least { "+" } else { "" };
        write!(f, "…[truncated {}{plus} bytes]", self.dropped)
    }
}

/// Bytes of a text cut to `max_bytes` that are kept before the marker.
fn kept_before_marker(max_bytes: usize) -> usize {
    if max_bytes >= MIN_MARKED_BYTES {
        max_bytes - MARKER_ROOM
    } else {
        max_bytes
    }
}

/// Where `text` is cut to fit `max_bytes`: the number of its bytes that are
/// kept (a `char` boundary), before the marker; `None` when it fits whole.
/// The rule of [`truncate_text`], for callers that build the cut text
/// themselves.
pub fn truncation_point(text: &str, max_bytes: usize) -> Option<usize> {
    if text.len() <= max_bytes {
        return None;
    }
    Some(floor_char_boundary(text, kept_before_marker(max_bytes)))
}

/// Cuts `text` to at most `max_bytes` bytes on a `char` boundary, ending
/// with `…[truncated N bytes]` (N: the bytes of the original that are not
/// kept). Returns N, 0 when the text already fits. Below
/// [`MIN_MARKED_BYTES`] the cut has no marker (it would not fit).
pub fn truncate_text(text: &mut String, max_bytes: usize) -> usize {
    let Some(keep) = truncation_point(text, max_bytes) else {
        return 0;
    };
    let dropped = text.len() - keep;
    text.truncate(keep);
    if max_bytes >= MIN_MARKED_BYTES {
        let marker = TruncationMarker {
            dropped,
            at_least: false,
        };
        let _ = write!(text, "{marker}");
    }
    text.shrink_to_fit();
    dropped
}

/// Writes `text` into `out` as [`truncate_text`] would leave it, without
/// copying it first: whole when it fits, else cut with the marker. Returns
/// the bytes not kept.
pub fn write_truncated<W: std::fmt::Write>(
    out: &mut W,
    text: &str,
    max_bytes: usize,
) -> Result<usize, std::fmt::Error> {
    let Some(keep) = truncation_point(text, max_bytes) else {
        out.write_str(text)?;
        return Ok(0);
    };
    out.write_str(&text[..keep])?;
    let dropped = text.len() - keep;
    if max_bytes >= MIN_MARKED_BYTES {
        let marker = TruncationMarker {
            dropped,
            at_least: false,
        };
        write!(out, "{marker}")?;
    }
    Ok(dropped)
}

/// [`truncate_text`] for a [`Text`]: borrowed text is copied only when cut.
pub fn truncate_cow(text: &mut Text, max_bytes: usize) -> usize {
    if text.len() <= max_bytes {
        return 0;
    }
    let mut owned = std::mem::take(text).into_owned();
    let dropped = truncate_text(&mut owned, max_bytes);
    *text = Cow::Owned(owned);
    dropped
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Room for the end of a text that may still fit: at most the marker's room
/// and a split `char` past the point where a cut text stops.
const TAIL_BYTES: usize = MARKER_ROOM + 4;

/// A [`std::fmt::Write`] adapter that applies the rule of [`truncate_text`]
/// while a value is being formatted (`Display`, `Debug`), so that a huge
/// value is never held whole: what fits goes to the inner writer as it
/// comes; once the text is longer than its limit, the rest is only counted,
/// for at most [`MAX_COUNTED_BYTES`], then formatting is stopped (the write
/// fails). [`finish`](Self::finish) appends the marker.
///
/// ```
/// use std::fmt::Write as _;
/// use omegi_core::limits::{truncate_text, TruncatingWriter};
///
/// let value = vec![7u8; 10_000];
/// let mut writer = TruncatingWriter::new(String::new(), 100);
/// let _ = write!(writer, "{value:?}");
/// let (text, cut) = writer.finish();
/// let mut whole = format!("{value:?}");
/// assert_eq!(truncate_text(&mut whole, 100), cut.unwrap().dropped);
/// assert_eq!(text, whole);
/// ```
#[derive(Debug)]
pub struct TruncatingWriter<W> {
    out: W,
    max_bytes: usize,
    /// Bytes of a cut text kept before the marker.
    keep: usize,
    /// Bytes given to `out`.
    written: usize,
    /// Bytes offered so far.
    seen: usize,
    /// Text past `keep` that is kept only if the whole text fits.
    tail: [u8; TAIL_BYTES],
    tail_len: usize,
    /// The text is longer than `max_bytes`.
    over: bool,
    /// Formatting was stopped before the end of the value.
    stopped: bool,
}

impl<W: std::fmt::Write> TruncatingWriter<W> {
    /// Writes into `out` at most `max_bytes` bytes, marker included.
    pub fn new(out: W, max_bytes: usize) -> Self {
        TruncatingWriter {
            out,
            max_bytes,
            keep: kept_before_marker(max_bytes),
            written: 0,
            seen: 0,
            tail: [0; TAIL_BYTES],
            tail_len: 0,
            over: false,
            stopped: false,
        }
    }

    /// Ends the text: the inner writer, and the marker it ends with when it
    /// was cut (`None` when the text fits; below [`MIN_MARKED_BYTES`] the
    /// marker is returned but not written).
    pub fn finish(mut self) -> (W, Option<TruncationMarker>) {
        if !self.over {
            let tail = std::str::from_utf8(&self.tail[..self.tail_len]).unwrap_or_default();
            let _ = self.out.write_str(tail);
            return (self.out, None);
        }
        let marker = TruncationMarker {
            dropped: self.seen - self.written,
            at_least: self.stopped,
        };
        if self.max_bytes >= MIN_MARKED_BYTES {
            let _ = write!(self.out, "{marker}");
        }
        (self.out, Some(marker))
    }

    /// Takes a piece that goes past the point where a cut text stops.
    #[cold]
    fn past_keep(&mut self, s: &str) -> std::fmt::Result {
        if self.over {
            if self.seen - self.max_bytes > MAX_COUNTED_BYTES {
                self.stopped = true;
                return Err(std::fmt::Error);
            }
            self.seen += s.len();
            return Ok(());
        }
        let mut rest = s;
        if self.tail_len == 0 {
            // Everything so far went to `out`: it takes this piece up to
            // the cut, on a char boundary.
            let head = floor_char_boundary(rest, self.keep - self.written);
            self.out.write_str(&rest[..head])?;
            self.written += head;
            rest = &rest[head..];
        }
        self.seen += s.len();
        if self.seen <= self.max_bytes {
            // It may still fit whole: keep the end aside until it is known.
            let end = self.tail_len + rest.len();
            self.tail[self.tail_len..end].copy_from_slice(rest.as_bytes());
            self.tail_len = end;
        } else {
            self.over = true;
            self.tail_len = 0;
        }
        Ok(())
    }
}

impl<W: std::fmt::Write> std::fmt::Write for TruncatingWriter<W> {
    #[inline]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if !self.over && self.seen + s.len() <= self.keep {
            self.seen += s.len();
            self.written += s.len();
            return self.out.write_str(s);
        }
        self.past_keep(s)
    }
}

impl RecordLimits {
    fn name(&self, text: &mut String, t: &mut Truncation) {
        if truncate_text(text, self.max_name_bytes) > 0 {
            t.texts_cut += 1;
        }
    }

    fn name_cow(&self, text: &mut Text, t: &mut Truncation) {
        if truncate_cow(text, self.max_name_bytes) > 0 {
            t.texts_cut += 1;
        }
    }

    fn value(&self, text: &mut String, t: &mut Truncation) {
        if truncate_text(text, self.max_value_bytes) > 0 {
            t.texts_cut += 1;
        }
    }

    fn location(&self, location: &mut CodeLocation, t: &mut Truncation) {
        for text in [&mut location.file, &mut location.module]
            .into_iter()
            .flatten()
        {
            self.name_cow(text, t);
        }
    }

    /// Caps a list of attributes: the first [`RecordLimits::max_attributes`]
    /// are kept (the `omegi.dropped_*` counters aside), keys and values are
    /// cut, and the dropped ones are added to [`DROPPED_ATTRIBUTES`].
    pub fn limit_attributes(&self, attributes: &mut Vec<Attribute>) -> Truncation {
        let mut t = Truncation::default();
        let mut counters: Vec<Attribute> = Vec::new();
        if attributes.iter().any(|a| a.key.starts_with(DROPPED_PREFIX)) {
            attributes.retain_mut(|a| {
                if !a.key.starts_with(DROPPED_PREFIX) {
                    return true;
                }
                let n = count_of(&a.value);
                match counters.iter_mut().find(|c| c.key == a.key) {
                    Some(c) => c.value = Value::I64(count_of(&c.value).saturating_add(n)),
                    None => counters.push(Attribute {
                        key: std::mem::take(&mut a.key),
                        value: Value::I64(n),
                    }),
                }
                false
            });
        }
        if attributes.len() > self.max_attributes {
            t.attributes_dropped = (attributes.len() - self.max_attributes) as u64;
            attributes.truncate(self.max_attributes);
            attributes.shrink_to_fit();
        }
        for attribute in attributes.iter_mut() {
            self.name(&mut attribute.key, &mut t);
            if let Value::Str(text) = &mut attribute.value {
                let max = if attribute.key == STACKTRACE {
                    self.max_stacktrace_bytes
                } else {
                    self.max_value_bytes
                };
                if truncate_text(text, max) > 0 {
                    t.texts_cut += 1;
                }
            }
        }
        attributes.extend(counters);
        add_count(attributes, DROPPED_ATTRIBUTES, t.attributes_dropped);
        t
    }

    /// Applies the limits to an event: target, message, fields, location.
    pub fn limit_event(&self, event: &mut EventRecord) -> Truncation {
        let mut t = Truncation::default();
        self.name_cow(&mut event.target, &mut t);
        self.value(&mut event.message, &mut t);
        t.add(self.limit_attributes(&mut event.fields));
        self.location(&mut event.location, &mut t);
        t
    }

    /// Applies the limits to a span: its names and status message, its
    /// attributes, and its events (the first [`RecordLimits::max_events`],
    /// the others counted in [`SpanRecord::dropped_events`]).
    pub fn limit_span(&self, span: &mut SpanRecord) -> Truncation {
        let mut t = Truncation::default();
        self.name(&mut span.service, &mut t);
        self.name_cow(&mut span.name, &mut t);
        self.name_cow(&mut span.target, &mut t);
        if let Some(message) = &mut span.status_message {
            self.value(message, &mut t);
        }
        t.add(self.limit_attributes(&mut span.attributes));
        if span.events.len() > self.max_events {
            let dropped = span.events.len() - self.max_events;
            t.events_dropped = dropped as u64;
            span.events.truncate(self.max_events);
            span.events.shrink_to_fit();
            span.dropped_events = span
                .dropped_events
                .saturating_add(u32::try_from(dropped).unwrap_or(u32::MAX));
        }
        for event in &mut span.events {
            t.add(self.limit_event(event));
        }
        self.location(&mut span.location, &mut t);
        t
    }

    /// Applies the limits to one frame of a span stack.
    pub fn limit_frame(&self, frame: &mut SpanFrame) -> Truncation {
        let mut t = Truncation::default();
        self.name(&mut frame.name, &mut t);
        self.name(&mut frame.target, &mut t);
        t.add(self.limit_attributes(&mut frame.fields));
        self.location(&mut frame.location, &mut t);
        t
    }

    /// Applies the limits to an error: texts, causes (the outermost
    /// [`RecordLimits::max_causes`]), fields, the span stack (the root and
    /// the nearest [`RecordLimits::max_span_stack`] frames) and the
    /// breadcrumbs (the latest [`RecordLimits::max_breadcrumbs`]).
    pub fn limit_error(&self, error: &mut ErrorRecord) -> Truncation {
        let mut t = Truncation::default();
        self.name(&mut error.service, &mut t);
        self.value(&mut error.message, &mut t);
        if error.causes.len() > self.max_causes {
            let dropped = (error.causes.len() - self.max_causes) as u64;
            error.causes.truncate(self.max_causes);
            add_count(&mut error.fields, DROPPED_CAUSES, dropped);
            t.context_dropped += dropped;
        }
        for cause in &mut error.causes {
            self.value(cause, &mut t);
        }
        for text in [
            &mut error.error_type,
            &mut error.thread,
            &mut error.fingerprint,
        ]
        .into_iter()
        .flatten()
        {
            self.name(text, &mut t);
        }
        self.name(&mut error.target, &mut t);
        let stack = &mut error.span_stack;
        if stack.len() > self.max_span_stack + 1 {
            let dropped = stack.len() - self.max_span_stack - 1;
            stack.drain(1..=dropped);
            add_count(&mut error.fields, DROPPED_FRAMES, dropped as u64);
            t.context_dropped += dropped as u64;
        }
        for frame in stack.iter_mut() {
            t.add(self.limit_frame(frame));
        }
        if error.breadcrumbs.len() > self.max_breadcrumbs {
            let dropped = error.breadcrumbs.len() - self.max_breadcrumbs;
            error.breadcrumbs.drain(..dropped);
            t.context_dropped += dropped as u64;
        }
        for crumb in &mut error.breadcrumbs {
            t.add(self.limit_event(crumb));
        }
        t.add(self.limit_attributes(&mut error.fields));
        self.location(&mut error.location, &mut t);
        t
    }

    /// Applies the limits to a resource: its service name and attributes.
    pub fn limit_resource(&self, resource: &mut Resource) -> Truncation {
        let mut t = Truncation::default();
        self.name(&mut resource.service, &mut t);
        t.add(self.limit_attributes(&mut resource.attributes));
        t
    }

    /// The breadcrumbs of an error from the events before it, given newest
    /// first: the latest [`RecordLimits::max_breadcrumbs`] distinct ones
    /// (an event equal to a later one but for its time is left out), looking
    /// at no more than four times that many candidates, oldest first.
    pub fn breadcrumbs<'a>(
        &self,
        newest_first: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Vec<&'a EventRecord> {
        let max = self.max_breadcrumbs;
        // Each kept event with the hash of what it says: candidates are
        // compared by hash first.
        let mut kept: Vec<(&EventRecord, u64)> = Vec::with_capacity(max.min(64));
        for candidate in newest_first.into_iter().take(max.saturating_mul(4)) {
            if kept.len() == max {
                break;
            }
            let hash = event_hash(candidate);
            if !kept
                .iter()
                .any(|(k, h)| *h == hash && same_event(k, candidate))
            {
                kept.push((candidate, hash));
            }
        }
        kept.into_iter().rev().map(|(e, _)| e).collect()
    }
}

/// A hash of what an event says (not when).
fn event_hash(event: &EventRecord) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    event.level.hash(&mut h);
    event.message.hash(&mut h);
    event.target.hash(&mut h);
    event.location.hash(&mut h);
    for field in &event.fields {
        field.key.hash(&mut h);
        match &field.value {
            Value::Bool(v) => v.hash(&mut h),
            Value::I64(v) => v.hash(&mut h),
            Value::U64(v) => v.hash(&mut h),
            Value::F64(v) => v.to_bits().hash(&mut h),
            Value::Str(v) => v.hash(&mut h),
        }
    }
    h.finish()
}

/// Two events that say the same thing, at whatever time.
fn same_event(a: &EventRecord, b: &EventRecord) -> bool {
    a.level == b.level
        && a.message == b.message
        && a.target == b.target
        && a.location == b.location
        && a.fields == b.fields
}

fn count_of(value: &Value) -> i64 {
    match value {
        Value::I64(n) => (*n).max(0),
        Value::U64(n) => i64::try_from(*n).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// Adds `n` to the counter attribute `key` (such as [`DROPPED_FRAMES`]),
/// creating it when needed.
pub fn add_count(attributes: &mut Vec<Attribute>, key: &str, n: u64) {
    if n == 0 {
        return;
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    match attributes.iter_mut().find(|a| a.key == key) {
        Some(a) => a.value = Value::I64(count_of(&a.value).saturating_add(n)),
        None => attributes.push(Attribute::new(key, n)),
    }
}

/// About what attributes take in memory: each attribute and its texts.
/// The estimates below budget what errors copy from the spans and events
/// around them.
pub fn estimated_attributes_bytes(attributes: &[Attribute]) -> usize {
    attributes
        .iter()
        .map(|a| {
            64 + a.key.len()
                + match &a.value {
                    Value::Str(s) => s.len(),
                    _ => 0,
                }
        })
        .sum()
}

/// About what the frame of `span`, with its fields, takes in memory.
pub fn estimated_frame_bytes(span: &SpanRecord) -> usize {
    192 + span.name.len() + span.target.len() + estimated_attributes_bytes(&span.attributes)
}

/// About what `event` takes in memory.
pub fn estimated_event_bytes(event: &EventRecord) -> usize {
    192 + event.message.len() + event.target.len() + estimated_attributes_bytes(&event.fields)
}

/// The times a record may carry: from `max_age` before the time it was
/// received (no lower bound without one) to `max_ahead` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest acceptable time, in ns since the Unix epoch.
    pub earliest_ns: u64,
    /// The latest acceptable time, in ns since the Unix epoch.
    pub latest_ns: u64,
}

/// A record's time outside the [`TimeWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("time {time_ns} is outside the accepted window [{earliest_ns}, {latest_ns}]")]
pub struct OutOfWindow {
    /// The time found, in ns since the Unix epoch.
    pub time_ns: u64,
    /// The window's start.
    pub earliest_ns: u64,
    /// The window's end.
    pub latest_ns: u64,
}

impl TimeWindow {
    /// The window around `now_ns`.
    pub fn around(now_ns: u64, max_age: Option<Duration>, max_ahead: Duration) -> TimeWindow {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        TimeWindow {
            earliest_ns: max_age.map_or(0, |age| now_ns.saturating_sub(ns(age))),
            latest_ns: now_ns.saturating_add(ns(max_ahead)),
        }
    }

    /// Whether a time is within the window.
    pub fn contains(&self, time_ns: u64) -> bool {
        (self.earliest_ns..=self.latest_ns).contains(&time_ns)
    }

    /// `Ok` when the time is within the window.
    pub fn check(&self, time_ns: u64) -> Result<(), OutOfWindow> {
        if self.contains(time_ns) {
            Ok(())
        } else {
            Err(OutOfWindow {
                time_ns,
                earliest_ns: self.earliest_ns,
                latest_ns: self.latest_ns,
            })
        }
    }

    /// Refuses a span that starts outside the window; otherwise repairs its
    /// end (one before its start or after the window becomes its start:
    /// the duration is unknown) and gives its events outside the window the
    /// span's start.
    pub fn repair_span(&self, span: &mut SpanRecord) -> Result<(), OutOfWindow> {
        self.check(span.start_ns)?;
        if span.end_ns < span.start_ns || span.end_ns > self.latest_ns {
            span.end_ns = span.start_ns;
        }
        for event in &mut span.events {
            if !self.contains(event.time_ns) {
                event.time_ns = span.start_ns;
            }
        }
        Ok(())
    }

    /// Refuses an error whose time is outside the window; otherwise gives
    /// its breadcrumbs outside the window the error's time.
    pub fn repair_error(&self, error: &mut ErrorRecord) -> Result<(), OutOfWindow> {
        self.check(error.time_ns)?;
        for crumb in &mut error.breadcrumbs {
            if !self.contains(crumb.time_ns) {
                crumb.time_ns = error.time_ns;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorKind, Level, SpanKind, Status};
    use crate::{SpanId, TraceId};

    fn span() -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(1),
            span_id: SpanId(2),
            parent_span_id: None,
            remote_parent: false,
            service: "payment".into(),
            name: "charge".into(),
            target: "payment::api".into(),
            level: Level::Info,
            kind: SpanKind::Server,
            start_ns: 1_000,
            end_ns: 2_000,
            attributes: vec![],
            events: vec![],
            dropped_events: 0,
            status: Status::Unset,
            status_message: None,
            location: CodeLocation::default(),
        }
    }

    fn event(message: &str, time_ns: u64) -> EventRecord {
        EventRecord {
            time_ns,
            level: Level::Info,
            target: "t".into(),
            message: message.into(),
            fields: vec![],
            location: CodeLocation::default(),
        }
    }

    fn error() -> ErrorRecord {
        ErrorRecord {
            trace_id: None,
            span_id: None,
            service: "payment".into(),
            time_ns: 1_500,
            kind: ErrorKind::Remote,
            message: "declined".into(),
            causes: vec![],
            error_type: None,
            target: "t".into(),
            fields: vec![],
            span_stack: vec![],
            breadcrumbs: vec![],
            location: CodeLocation::default(),
            thread: None,
            fingerprint: None,
        }
    }

    fn frame(i: usize) -> SpanFrame {
        SpanFrame {
            span_id: SpanId(i as u64 + 1),
            name: format!("frame {i}"),
            target: "t".into(),
            fields: vec![],
            location: CodeLocation::default(),
        }
    }

    #[test]
    fn texts_are_cut_on_a_char_boundary_with_a_marker() {
        let mut text = "한".repeat(1000); // 3 bytes each
        let dropped = truncate_text(&mut text, 100);
        assert!(text.len() <= 100, "{}", text.len());
        assert_eq!(3000 - dropped, text.find('…').unwrap());
        assert!(text.ends_with(&format!("…[truncated {dropped} bytes]")));
        // Again: nothing changes.
        let before = text.clone();
        assert_eq!(truncate_text(&mut text, 100), 0);
        assert_eq!(text, before);
        // Short limits cut without a marker.
        let mut short = "abcdef".to_owned();
        assert_eq!(truncate_text(&mut short, 4), 2);
        assert_eq!(short, "abcd");
        let mut fits = "abc".to_owned();
        assert_eq!(truncate_text(&mut fits, 3), 0);
    }

    /// A `Display` value written in pieces of `piece` bytes.
    struct Pieces<'a>(&'a str, usize);

    impl std::fmt::Display for Pieces<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let mut rest = self.0;
            while !rest.is_empty() {
                let mut end = self.1.min(rest.len());
                while !rest.is_char_boundary(end) {
                    end += 1;
                }
                f.write_str(&rest[..end])?;
                rest = &rest[end..];
            }
            Ok(())
        }
    }

    #[test]
    fn formatting_through_the_writer_cuts_as_truncate_text_does() {
        let texts = [
            String::new(),
            "short".to_owned(),
            "x".repeat(63),
            "x".repeat(64),
            "x".repeat(65),
            "é".repeat(40),
            "한".repeat(30),
            "a한".repeat(200),
            "y".repeat(5_000),
        ];
        for text in &texts {
            for max in [0, 3, 10, 63, 64, 65, 70, 100, 101, 102, 4096] {
                let mut expected = text.clone();
                let dropped = truncate_text(&mut expected, max);
                let mut direct = String::new();
                assert_eq!(write_truncated(&mut direct, text, max), Ok(dropped));
                assert_eq!(direct, expected, "write_truncated {max}");
                for piece in [1, 2, 5, 40, 1000] {
                    let mut writer = TruncatingWriter::new(String::new(), max);
                    write!(writer, "{}", Pieces(text, piece)).unwrap();
                    let (got, marker) = writer.finish();
                    assert_eq!(got, expected, "max {max}, pieces of {piece}");
                    assert_eq!(marker.map_or(0, |m| m.dropped), dropped);
                    assert!(marker.is_none_or(|m| !m.at_least));
                }
            }
        }
    }

    #[test]
    fn formatting_an_endless_value_stops_and_says_so() {
        struct Endless;
        impl std::fmt::Debug for Endless {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                loop {
                    f.write_str("0123456789")?;
                }
            }
        }
        let mut writer = TruncatingWriter::new(String::new(), 100);
        assert!(write!(writer, "{Endless:?}").is_err());
        let (text, marker) = writer.finish();
        let marker = marker.expect("cut");
        assert!(marker.at_least);
        assert!(marker.dropped > MAX_COUNTED_BYTES, "{marker:?}");
        assert!(text.len() <= 100, "{text}");
        assert!(text.ends_with(&format!("…[truncated {}+ bytes]", marker.dropped)));
        // The text is final: applying the rule again changes nothing.
        let mut again = text.clone();
        assert_eq!(truncate_text(&mut again, 100), 0);
    }

    #[test]
    fn a_span_keeps_its_first_attributes_and_events_and_counts_the_rest() {
        let limits = RecordLimits {
            max_attributes: 3,
            max_events: 2,
            ..RecordLimits::default()
        };
        let mut s = span();
        s.name = "n".repeat(100_000).into();
        s.attributes = (0..10)
            .map(|i| Attribute::new(format!("k{i}"), "v".repeat(10_000)))
            .collect();
        s.events = (0..5).map(|i| event("e", i)).collect();
        s.dropped_events = 1;
        let t = limits.limit_span(&mut s);
        assert_eq!(t.attributes_dropped, 7);
        assert_eq!(t.events_dropped, 3);
        assert_eq!(t.texts_cut, 4);
        assert!(s.name.len() <= 256);
        assert_eq!(
            s.attributes
                .iter()
                .map(|a| a.key.as_str())
                .collect::<Vec<_>>(),
            ["k0", "k1", "k2", DROPPED_ATTRIBUTES]
        );
        assert_eq!(s.attributes[3].value, Value::I64(7));
        assert!(s.attributes[0].value.to_string().len() <= 4096);
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.dropped_events, 4);
        // Applying the limits again changes nothing.
        let before = s.clone();
        assert!(limits.limit_span(&mut s).is_empty());
        assert_eq!(s, before);
    }

    #[test]
    fn stack_traces_have_their_own_length() {
        let limits = RecordLimits::default();
        let mut attributes = vec![
            Attribute::new(STACKTRACE, "x".repeat(20_000)),
            Attribute::new("exception.message", "x".repeat(20_000)),
        ];
        limits.limit_attributes(&mut attributes);
        let len = |i: usize| attributes[i].value.to_string().len();
        assert!(len(0) > 4096 && len(0) <= 16 * 1024, "{}", len(0));
        assert!(len(1) <= 4096);
    }

    #[test]
    fn an_error_keeps_the_root_and_the_nearest_frames() {
        let limits = RecordLimits {
            max_span_stack: 3,
            max_breadcrumbs: 2,
            max_causes: 1,
            ..RecordLimits::default()
        };
        let mut e = error();
        e.span_stack = (0..10).map(frame).collect();
        e.breadcrumbs = (0..5).map(|i| event(&format!("b{i}"), i)).collect();
        e.causes = vec!["a".into(), "b".into(), "c".into()];
        let t = limits.limit_error(&mut e);
        let names: Vec<&str> = e.span_stack.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["frame 0", "frame 7", "frame 8", "frame 9"]);
        let crumbs: Vec<&str> = e.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
        assert_eq!(crumbs, ["b3", "b4"]);
        assert_eq!(e.causes, ["a"]);
        assert_eq!(t.context_dropped, 6 + 3 + 2);
        assert_eq!(
            crate::attribute(&e.fields, DROPPED_FRAMES),
            Some(&Value::I64(6))
        );
        assert_eq!(
            crate::attribute(&e.fields, DROPPED_CAUSES),
            Some(&Value::I64(2))
        );
        let before = e.clone();
        assert!(limits.limit_error(&mut e).is_empty());
        assert_eq!(e, before);
    }

    #[test]
    fn breadcrumbs_are_the_latest_distinct_events() {
        let limits = RecordLimits {
            max_breadcrumbs: 3,
            ..RecordLimits::default()
        };
        let events: Vec<EventRecord> = ["a", "b", "b", "c", "b", "d"]
            .iter()
            .enumerate()
            .map(|(i, m)| event(m, i as u64))
            .collect();
        let crumbs = limits.breadcrumbs(events.iter().rev());
        let got: Vec<(&str, u64)> = crumbs
            .iter()
            .map(|e| (e.message.as_str(), e.time_ns))
            .collect();
        assert_eq!(got, [("c", 3), ("b", 4), ("d", 5)]);
        // A long run of one event stops the search after 4 × the cap.
        let same: Vec<EventRecord> = (0..1000).map(|i| event("same", i)).collect();
        assert_eq!(limits.breadcrumbs(same.iter().rev()).len(), 1);
    }

    #[test]
    fn the_window_refuses_starts_and_repairs_the_rest() {
        let now = 1_000_000;
        let window = TimeWindow::around(
            now,
            Some(Duration::from_nanos(1_000)),
            Duration::from_nanos(10),
        );
        assert_eq!((window.earliest_ns, window.latest_ns), (999_000, 1_000_010));
        let mut s = span();
        s.start_ns = now;
        s.end_ns = now - 5; // before its start
        s.events = vec![event("late", u64::MAX), event("ok", now + 1)];
        window.repair_span(&mut s).unwrap();
        assert_eq!(s.end_ns, now);
        assert_eq!(s.events[0].time_ns, now);
        assert_eq!(s.events[1].time_ns, now + 1);
        s.end_ns = u64::MAX;
        window.repair_span(&mut s).unwrap();
        assert_eq!(s.end_ns, now);
        s.end_ns = now + 7;
        window.repair_span(&mut s).unwrap();
        assert_eq!(s.end_ns, now + 7);
        s.start_ns = u64::MAX;
        assert!(window.repair_span(&mut s).is_err());
        s.start_ns = 1;
        assert!(window.repair_span(&mut s).is_err());
        // Without a maximum age, old times are fine.
        let open = TimeWindow::around(now, None, Duration::from_secs(3600));
        assert!(open.contains(1));
        let mut e = error();
        e.time_ns = now;
        e.breadcrumbs = vec![event("old", 3)];
        window.repair_error(&mut e).unwrap();
        assert_eq!(e.breadcrumbs[0].time_ns, now);
        e.time_ns = u64::MAX;
        assert!(window.repair_error(&mut e).is_err());
    }
}
