//! How much the layer keeps of what the application hands it: the limits,
//! and the rule that cuts text that is too long.
//!
//! Text is cut on the hot path, so the common case costs one comparison:
//! text within its limit is kept as it is, with no extra allocation, and
//! formatting a value (`?value`, `%value`, a message) stops as soon as the
//! limit is reached, so a huge `Debug` value costs no more work than the
//! limit.

use std::fmt::{self, Write as _};

use compact_str::CompactString;

/// Ends text that was cut, within its limit, so that a reader sees that
/// something is missing.
pub(crate) const TRUNCATION_MARKER: &str = "…[truncated]";

/// The smallest text limit: room for the marker and some text.
pub(crate) const MIN_TEXT_BYTES: usize = 64;

/// The field that may be longer than other values (see
/// [`TextLimits::stacktrace_bytes`]).
const STACKTRACE_FIELD: &str = "exception.stacktrace";

/// Limits on text captured from fields, messages and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextLimits {
    /// Longest field value, message or error text, in bytes, marker included.
    pub(crate) value_bytes: usize,
    /// Longest `exception.stacktrace` value (the panic hook's backtrace);
    /// never less than `value_bytes`.
    pub(crate) stacktrace_bytes: usize,
    /// Most `source` causes kept per error.
    pub(crate) error_causes: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits {
            value_bytes: 4 * 1024,
            stacktrace_bytes: 32 * 1024,
            error_causes: 32,
        }
    }
}

impl TextLimits {
    /// The limit for the value of the field `name`.
    fn for_field(&self, name: &str) -> usize {
        if name == STACKTRACE_FIELD {
            self.stacktrace_bytes.max(self.value_bytes)
        } else {
            self.value_bytes
        }
    }

    /// The value of the field `name`, cut to its limit.
    #[inline]
    pub(crate) fn field_text(&self, name: &str, value: &str) -> CompactString {
        if value.len() <= self.value_bytes {
            CompactString::new(value)
        } else {
            cut(value, self.for_field(name))
        }
    }

    /// `value` formatted with `Debug`, cut to the limit of the field `name`.
    pub(crate) fn field_debug(&self, name: &str, value: &dyn fmt::Debug) -> CompactString {
        let mut text = BoundedText::new(self.value_bytes, name, self);
        // An error here means the text was cut (or the value's own `Debug`
        // failed): keep what was written.
        let _ = write!(text, "{value:?}");
        text.finish()
    }

    /// `value` formatted with `Display`, cut to `value_bytes`.
    pub(crate) fn display(&self, value: &dyn fmt::Display) -> CompactString {
        let mut text = BoundedText::new(self.value_bytes, "", self);
        let _ = write!(text, "{value}");
        text.finish()
    }
}

/// Limits on what the layer keeps per span, per error and per trace, and in
/// the export queue. The defaults and their meaning are documented on the
/// builder methods and in the crate's limits table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) text: TextLimits,
    /// Events kept per span; later ones are counted in `dropped_events`.
    pub(crate) max_events_per_span: usize,
    /// Most recent events of a trace kept as breadcrumbs, by count...
    pub(crate) breadcrumbs: usize,
    /// ...and by estimated bytes.
    pub(crate) breadcrumb_bytes: usize,
    /// Frames of an error's span stack: the root and the nearest ones.
    pub(crate) max_span_frames: usize,
    /// Bytes of span fields in an error's span stack, nearest frames first.
    pub(crate) span_stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            text: TextLimits::default(),
            max_events_per_span: 128,
            breadcrumbs: 32,
            breadcrumb_bytes: 64 * 1024,
            max_span_frames: 32,
            span_stack_bytes: 64 * 1024,
        }
    }
}

/// The largest index `<= index` that is a char boundary of `text`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    // A UTF-8 char is at most 4 bytes long.
    (index.saturating_sub(3)..=index)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// `text` cut to at most `max` bytes on a char boundary, ending with the
/// marker; `text` itself when it fits.
pub(crate) fn cut(text: &str, max: usize) -> CompactString {
    if text.len() <= max {
        return CompactString::new(text);
    }
    cut_long(text, max)
}

#[cold]
fn cut_long(text: &str, max: usize) -> CompactString {
    let keep = floor_char_boundary(text, max.saturating_sub(TRUNCATION_MARKER.len()));
    let mut out = CompactString::with_capacity(keep + TRUNCATION_MARKER.len());
    out.push_str(&text[..keep]);
    out.push_str(TRUNCATION_MARKER);
    out
}

/// A `fmt::Write` target that keeps at most `max` bytes: once more would
/// be written, it cuts the text, appends the marker and fails the write, so
/// that formatting stops there.
struct BoundedText<'a> {
    text: CompactString,
    max: usize,
    /// The field being written, looked at only when the text gets long.
    field: &'a str,
    limits: &'a TextLimits,
    cut: bool,
}

impl<'a> BoundedText<'a> {
    fn new(max: usize, field: &'a str, limits: &'a TextLimits) -> Self {
        BoundedText {
            text: CompactString::default(),
            max,
            field,
            limits,
            cut: false,
        }
    }

    fn finish(self) -> CompactString {
        self.text
    }

    #[cold]
    fn overflow(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Err(fmt::Error);
        }
        let field_max = self.limits.for_field(self.field);
        if field_max > self.max {
            // A stack trace: it may be longer.
            self.max = field_max;
            return self.write_str(s);
        }
        // The cut text is built at its final size: growing the buffer by
        // doubling could leave it twice as large as what it holds.
        let keep = self.max.saturating_sub(TRUNCATION_MARKER.len());
        let (head, tail) = if self.text.len() <= keep {
            (
                &*self.text,
                &s[..floor_char_boundary(s, keep - self.text.len())],
            )
        } else {
            (&self.text[..floor_char_boundary(&self.text, keep)], "")
        };
        let mut out =
            CompactString::with_capacity(head.len() + tail.len() + TRUNCATION_MARKER.len());
        out.push_str(head);
        out.push_str(tail);
        out.push_str(TRUNCATION_MARKER);
        self.text = out;
        self.cut = true;
        Err(fmt::Error)
    }
}

impl fmt::Write for BoundedText<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.cut && self.text.len() + s.len() <= self.max {
            self.text.push_str(s);
            return Ok(());
        }
        self.overflow(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(value_bytes: usize) -> TextLimits {
        TextLimits {
            value_bytes,
            stacktrace_bytes: 4 * value_bytes,
            error_causes: 4,
        }
    }

    #[test]
    fn text_within_the_limit_is_kept_as_it_is() {
        let l = limits(64);
        let exact = "x".repeat(64);
        assert_eq!(l.field_text("f", &exact), exact);
        assert_eq!(l.field_text("f", "short"), "short");
        // Short text stays inline: no allocation.
        assert!(!l.field_text("f", "short").is_heap_allocated());
        assert_eq!(l.field_debug("f", &"ab"), "\"ab\"");
        assert_eq!(l.display(&exact), exact);
    }

    #[test]
    fn long_text_is_cut_to_the_limit_with_the_marker() {
        let l = limits(64);
        let long = "y".repeat(1000);
        for text in [
            l.field_text("f", &long),
            l.field_debug("f", &format_args!("{long}")),
            l.display(&long),
        ] {
            assert_eq!(text.len(), 64, "{text}");
            assert!(text.ends_with(TRUNCATION_MARKER), "{text}");
            assert!(text.starts_with("yyyy"), "{text}");
        }
        // Debug quotes and escapes: the cut text still starts as it would.
        let debug = l.field_debug("f", &long);
        assert!(debug.starts_with("\"yyy") && debug.len() == 64, "{debug}");
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        let l = limits(64);
        // 3-byte chars: no limit lands between two chars by luck.
        let korean = "결제".repeat(100);
        for shift in 0..3 {
            let l = limits(64 + shift);
            for text in [l.field_text("f", &korean), l.display(&korean)] {
                assert!(text.len() <= 64 + shift);
                assert!(text.len() > 64 + shift - 4, "{text}");
                assert!(text.ends_with(TRUNCATION_MARKER));
                let kept = text.strip_suffix(TRUNCATION_MARKER).unwrap();
                assert!(kept.chars().all(|c| c == '결' || c == '제'), "{kept}");
            }
        }
        let text = l.field_debug("f", &format_args!("{}", "é".repeat(500)));
        assert!(text.len() <= 64 && text.ends_with(TRUNCATION_MARKER));
    }

    #[test]
    fn formatting_stops_at_the_limit() {
        /// Counts how many pieces it was asked to write.
        struct Endless<'a>(&'a std::cell::Cell<usize>);
        impl fmt::Debug for Endless<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                loop {
                    self.0.set(self.0.get() + 1);
                    f.write_str("0123456789")?;
                }
            }
        }
        let pieces = std::cell::Cell::new(0);
        let text = limits(64).field_debug("f", &Endless(&pieces));
        assert_eq!(text.len(), 64);
        // Six pieces of ten bytes fit; the seventh was refused and the
        // value's formatting stopped there.
        assert_eq!(pieces.get(), 7);
    }

    #[test]
    fn stack_traces_may_be_longer_than_other_values() {
        let l = limits(64);
        let trace = "frame\n".repeat(100);
        assert_eq!(l.field_text("exception.stacktrace", &trace).len(), 256);
        assert_eq!(
            l.field_debug("exception.stacktrace", &format_args!("{trace}"))
                .len(),
            256
        );
        assert_eq!(l.field_text("backtrace", &trace).len(), 64);
    }

    #[test]
    fn floor_char_boundary_never_splits_a_char() {
        let s = "a결b";
        assert_eq!(floor_char_boundary(s, 0), 0);
        assert_eq!(floor_char_boundary(s, 1), 1);
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(floor_char_boundary(s, 3), 1);
        assert_eq!(floor_char_boundary(s, 4), 4);
        assert_eq!(floor_char_boundary(s, 99), 5);
    }
}
