//! How much of a trace one answer shows: [`ViewLimits`], and copies of
//! records made within them.

use std::borrow::Cow;

use crate::model::{
    Attribute, CodeLocation, ErrorRecord, EventRecord, SpanFrame, SpanRecord, Value,
};

use super::path::{Flow, Hop};

/// Ends a text that was cut short.
pub const CLIP_MARKER: &str = "…";

/// The widest waterfall bar drawn, in columns, whatever width is asked for.
pub const MAX_BAR_WIDTH: usize = 1000;

/// Bounds of what one answer shows of a trace.
///
/// A stored trace can be anything a client sent: thousands of spans, a
/// span name of megabytes, an attribute of ten. What is *read back* for a
/// person is cut to these limits instead, so that the size of a waterfall,
/// a raw log, a flow summary or a record copied into an answer depends on
/// the limits and never on the input. Whatever is cut is marked where it is
/// cut: a cut text ends with [`CLIP_MARKER`], a rendering that leaves lines
/// out ends with a line saying how many, and every function taking limits
/// reports whether it cut anything. Build with [`ViewLimits::default`] and
/// the setters.
///
/// ```
/// use omegi_core::flow::{clip, ViewLimits, CLIP_MARKER};
///
/// assert_eq!(clip("checkout", 20), "checkout");
/// assert_eq!(clip("a very long span name", 8), format!("a very {CLIP_MARKER}"));
/// let limits = ViewLimits::default().lines(100).text_chars(200);
/// assert_eq!(limits.lines, 100);
/// ```
///
/// A record copied for display ([`ViewLimits::clip_span`],
/// [`ViewLimits::clip_error`], [`ViewLimits::clip_flow`]) keeps at most
/// [`items`](Self::items) entries of each list, cuts each text to
/// [`text_chars`](Self::text_chars), and spends at most eight times
/// `text_chars` characters in all, so that one record costs a bounded
/// number of bytes whatever was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewLimits {
    /// Lines of one rendering: spans of a waterfall, events of a raw log,
    /// hops of a flow summary; also the spans and hops copied into an
    /// answer. Default 500.
    pub lines: usize,
    /// Characters of a name shown in a column (service, span name, a
    /// waterfall label with its indentation). Default 80.
    pub label_chars: usize,
    /// Characters of one text: a message, an attribute value, a cause, a
    /// span name in a record. Default 1,024.
    pub text_chars: usize,
    /// Entries of one list in a record: attributes, events, causes, span
    /// frames, breadcrumbs, span ids of a hop. Default 32.
    pub items: usize,
    /// Bytes of one rendering (waterfall, raw log, summary). Default 1 MiB.
    pub bytes: usize,
}

impl Default for ViewLimits {
    fn default() -> Self {
        ViewLimits {
            lines: 500,
            label_chars: 80,
            text_chars: 1024,
            items: 32,
            bytes: 1024 * 1024,
        }
    }
}

impl ViewLimits {
    /// Sets [`lines`](Self::lines) (at least 1).
    pub fn lines(mut self, lines: usize) -> Self {
        self.lines = lines.max(1);
        self
    }

    /// Sets [`label_chars`](Self::label_chars) (at least 8).
    pub fn label_chars(mut self, chars: usize) -> Self {
        self.label_chars = chars.max(8);
        self
    }

    /// Sets [`text_chars`](Self::text_chars) (at least 8).
    pub fn text_chars(mut self, chars: usize) -> Self {
        self.text_chars = chars.max(8);
        self
    }

    /// Sets [`items`](Self::items) (at least 1).
    pub fn items(mut self, items: usize) -> Self {
        self.items = items.max(1);
        self
    }

    /// Sets [`bytes`](Self::bytes) (at least 1 KiB).
    pub fn bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes.max(1024);
        self
    }

    /// Characters one clipped record may spend in all.
    fn record_chars(&self) -> usize {
        self.text_chars.saturating_mul(8)
    }

    /// A copy of `span` within the limits: names, texts and attribute
    /// values cut, at most [`items`](Self::items) attributes and events
    /// (the earliest), each event clipped likewise.
    pub fn clip_span(&self, span: &SpanRecord) -> Clipped<SpanRecord> {
        let mut c = Clipper::new(self);
        let value = SpanRecord {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            remote_parent: span.remote_parent,
            service: c.text(&span.service),
            name: c.text(&span.name).into(),
            target: c.text(&span.target).into(),
            level: span.level,
            kind: span.kind,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            attributes: c.attributes(&span.attributes),
            events: c.list(&span.events, |c, e| c.event(e)),
            dropped_events: span.dropped_events,
            status: span.status,
            status_message: span.status_message.as_deref().map(|m| c.text(m)),
            location: c.location(&span.location),
        };
        c.done(value)
    }

    /// A copy of `error` within the limits: message, causes, fields, span
    /// stack (the frames nearest the error, and the root) and breadcrumbs
    /// (the latest) cut as [`clip_span`](Self::clip_span) does.
    pub fn clip_error(&self, error: &ErrorRecord) -> Clipped<ErrorRecord> {
        let mut c = Clipper::new(self);
        let value = ErrorRecord {
            trace_id: error.trace_id,
            span_id: error.span_id,
            service: c.text(&error.service),
            time_ns: error.time_ns,
            kind: error.kind,
            message: c.text(&error.message),
            error_type: error.error_type.as_deref().map(|t| c.text(t)),
            causes: c.list(&error.causes, |c, s| c.text(s)),
            target: c.text(&error.target),
            fields: c.attributes(&error.fields),
            span_stack: c.ends(&error.span_stack, |c, f| c.frame(f)),
            breadcrumbs: c.latest(&error.breadcrumbs, |c, e| c.event(e)),
            location: c.location(&error.location),
            thread: error.thread.as_deref().map(|t| c.text(t)),
            fingerprint: error.fingerprint.as_deref().map(|f| c.text(f)),
        };
        c.done(value)
    }

    /// A copy of `flow` within the limits: at most [`lines`](Self::lines)
    /// hops (the first and the last ones, the failing hop always among
    /// them), each with at most [`items`](Self::items) span ids (the
    /// innermost) and events (the latest, nearest the failure), texts cut.
    pub fn clip_flow(&self, flow: &Flow) -> Clipped<Flow> {
        let mut truncated = false;
        let mut c = Clipper::new(self);
        let (head, tail) = ends_of(flow.hops.len(), self.lines);
        let mut hops = Vec::with_capacity(head.len() + tail.len());
        for hop in flow.hops[head].iter().chain(&flow.hops[tail]) {
            // Each hop gets a fresh character budget: a long path must not
            // starve the failing hop at its end.
            let mut h = Clipper::new(self);
            hops.push(Hop {
                service: h.label(&hop.service),
                span_name: h.text(&hop.span_name),
                last_span_name: h.text(&hop.last_span_name),
                span_ids: h.latest(&hop.span_ids, |_, id| *id),
                offset_ns: hop.offset_ns,
                duration_ns: hop.duration_ns,
                status: hop.status,
                events: h.latest(&hop.events, |h, e| h.event(e)),
            });
            truncated |= h.truncated;
        }
        truncated |= hops.len() < flow.hops.len();
        let value = Flow {
            trace_id: flow.trace_id,
            failing_span: flow.failing_span,
            hops,
            error_time_ns: flow.error_time_ns,
            message: c.text(&flow.message),
            error_type: flow.error_type.as_deref().map(|t| c.text(t)),
            causes: c.list(&flow.causes, |c, s| c.text(s)),
        };
        let mut clipped = c.done(value);
        clipped.truncated |= truncated;
        clipped
    }
}

/// A copy made within [`ViewLimits`], and whether anything was cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Clipped<T> {
    /// The copy.
    pub value: T,
    /// Whether a text, a list or a line was cut to the limits.
    pub truncated: bool,
}

/// `text` cut to at most `max_chars` characters (at least 1), the last of
/// them [`CLIP_MARKER`] when it was cut. Costs `O(max_chars)`, not
/// `O(text)`.
pub fn clip(text: &str, max_chars: usize) -> Cow<'_, str> {
    let max_chars = max_chars.max(1);
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = max_chars.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            let mut out = String::with_capacity(end + CLIP_MARKER.len());
            out.push_str(&text[..end]);
            out.push_str(CLIP_MARKER);
            Cow::Owned(out)
        }
    }
}

/// Ranges of the first and the last of `len` entries to keep at most
/// `keep` of them: the first half and the rest from the end.
pub(crate) fn ends_of(len: usize, keep: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    if len <= keep {
        return (0..len, len..len);
    }
    let head = keep / 2;
    let tail = keep - head;
    (0..head, len - tail..len)
}

/// Copies parts of one record, spending a shared character budget.
struct Clipper<'l> {
    limits: &'l ViewLimits,
    chars_left: usize,
    truncated: bool,
}

impl<'l> Clipper<'l> {
    fn new(limits: &'l ViewLimits) -> Self {
        Clipper {
            limits,
            chars_left: limits.record_chars(),
            truncated: false,
        }
    }

    fn done<T>(self, value: T) -> Clipped<T> {
        Clipped {
            value,
            truncated: self.truncated,
        }
    }

    fn cut(&mut self, text: &str, max_chars: usize) -> String {
        let max = max_chars.min(self.chars_left.max(1));
        let out = clip(text, max);
        if let Cow::Owned(_) = out {
            self.truncated = true;
        }
        let out = out.into_owned();
        self.chars_left = self.chars_left.saturating_sub(out.chars().count());
        out
    }

    fn text(&mut self, text: &str) -> String {
        self.cut(text, self.limits.text_chars)
    }

    fn label(&mut self, text: &str) -> String {
        self.cut(text, self.limits.label_chars)
    }

    fn value(&mut self, value: &Value) -> Value {
        match value {
            Value::Str(s) => Value::Str(self.text(s)),
            other => other.clone(),
        }
    }

    fn attributes(&mut self, attributes: &[Attribute]) -> Vec<Attribute> {
        self.list(attributes, |c, a| Attribute {
            key: c.label(&a.key),
            value: c.value(&a.value),
        })
    }

    fn location(&mut self, location: &CodeLocation) -> CodeLocation {
        CodeLocation {
            file: location.file.as_deref().map(|f| self.label(f).into()),
            line: location.line,
            module: location.module.as_deref().map(|m| self.label(m).into()),
        }
    }

    fn event(&mut self, event: &EventRecord) -> EventRecord {
        EventRecord {
            time_ns: event.time_ns,
            level: event.level,
            target: self.label(&event.target).into(),
            message: self.text(&event.message),
            fields: self.attributes(&event.fields),
            location: self.location(&event.location),
        }
    }

    fn frame(&mut self, frame: &SpanFrame) -> SpanFrame {
        SpanFrame {
            span_id: frame.span_id,
            name: self.text(&frame.name),
            target: self.label(&frame.target),
            fields: self.attributes(&frame.fields),
            location: self.location(&frame.location),
        }
    }

    /// The first entries of a list.
    fn list<T, U>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T) -> U) -> Vec<U> {
        let keep = items.len().min(self.limits.items);
        self.truncated |= keep < items.len();
        items[..keep].iter().map(|item| f(self, item)).collect()
    }

    /// The last entries of a list, in their order.
    fn latest<T, U>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T) -> U) -> Vec<U> {
        let keep = items.len().min(self.limits.items);
        self.truncated |= keep < items.len();
        items[items.len() - keep..]
            .iter()
            .map(|item| f(self, item))
            .collect()
    }

    /// The first entry and the last ones of a list (a span stack: its
    /// root and the frames nearest the error).
    fn ends<T, U>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T) -> U) -> Vec<U> {
        let keep = self.limits.items;
        if items.len() <= keep {
            return items.iter().map(|item| f(self, item)).collect();
        }
        self.truncated = true;
        items[..1]
            .iter()
            .chain(&items[items.len() - (keep - 1)..])
            .map(|item| f(self, item))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("결제 실패", 5), "결제 실패");
        assert_eq!(clip("결제 실패입니다", 5), "결제 실…");
        assert_eq!(clip("", 3), "");
        assert_eq!(clip("abc", 0), "…");
        assert_eq!(clip("abc", 1), "…");
        assert_eq!(clip("a", 1), "a");
    }

    #[test]
    fn ends_keep_both_sides() {
        assert_eq!(ends_of(3, 5), (0..3, 3..3));
        assert_eq!(ends_of(10, 4), (0..2, 8..10));
        assert_eq!(ends_of(10, 5), (0..2, 7..10));
    }
}
