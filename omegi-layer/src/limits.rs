//! How much the layer keeps of what the application hands it: the limits.
//!
//! Text is cut by the rule of `omegi_core::limits` (one rule for the layer
//! and the collector: on a char boundary, ending with `…[truncated N
//! bytes]`), on the hot path, so the common case costs one comparison:
//! text within its limit is kept as it is, with no extra allocation, and
//! formatting a value (`?value`, `%value`, a message) keeps no more than
//! the limit and reads at most `MAX_COUNTED_BYTES` past it to count what
//! was cut, so a huge `Debug` value costs a bounded amount of work.

use std::fmt::{self, Write as _};

use compact_str::CompactString;
use omegi_core::limits::{write_truncated, TruncatingWriter, MIN_MARKED_BYTES, STACKTRACE};

/// The smallest text limit: room for the marker and some text.
pub(crate) const MIN_TEXT_BYTES: usize = MIN_MARKED_BYTES;

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
    #[inline]
    fn for_field(&self, name: &str) -> usize {
        if name == STACKTRACE {
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
        let mut text = TruncatingWriter::new(CompactString::default(), self.for_field(name));
        // An error here means that formatting was stopped past the limit
        // (or the value's own `Debug` failed): keep what was written.
        let _ = write!(text, "{value:?}");
        text.finish().0
    }

    /// `value` formatted with `Display`, cut to `value_bytes`.
    pub(crate) fn display(&self, value: &dyn fmt::Display) -> CompactString {
        let mut text = TruncatingWriter::new(CompactString::default(), self.value_bytes);
        let _ = write!(text, "{value}");
        text.finish().0
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

/// `text` cut to at most `max` bytes by the rule of `omegi_core::limits`.
#[cold]
fn cut(text: &str, max: usize) -> CompactString {
    let mut out = CompactString::with_capacity(max);
    // Writing into a `CompactString` cannot fail.
    let _ = write_truncated(&mut out, text, max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use omegi_core::limits::truncate_text;

    fn limits(value_bytes: usize) -> TextLimits {
        TextLimits {
            value_bytes,
            stacktrace_bytes: 4 * value_bytes,
            error_causes: 4,
        }
    }

    /// `text` as the collector's rule leaves it at `max` bytes.
    fn as_core_cuts(text: &str, max: usize) -> String {
        let mut text = text.to_owned();
        truncate_text(&mut text, max);
        text
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
    fn long_text_is_cut_by_the_collectors_rule() {
        let l = limits(100);
        let long = "y".repeat(1000);
        let expected = as_core_cuts(&long, 100);
        assert!(expected.ends_with("…[truncated 941 bytes]"), "{expected}");
        for text in [
            l.field_text("f", &long),
            l.field_debug("f", &format_args!("{long}")),
            l.display(&long),
        ] {
            assert_eq!(text, expected);
        }
        // Debug quotes and escapes: cut as the whole `Debug` text would be.
        let debug = l.field_debug("f", &long);
        assert_eq!(debug, as_core_cuts(&format!("{long:?}"), 100));
    }

    #[test]
    fn cuts_fall_on_char_boundaries() {
        // 3-byte chars: no limit lands between two chars by luck.
        let korean = "결제".repeat(100);
        for shift in 0..3 {
            let l = limits(64 + shift);
            for text in [l.field_text("f", &korean), l.display(&korean)] {
                assert_eq!(text, as_core_cuts(&korean, 64 + shift));
                let (kept, _) = text.split_once('…').unwrap();
                assert!(kept.chars().all(|c| c == '결' || c == '제'), "{kept}");
            }
        }
    }

    #[test]
    fn formatting_stops_past_the_limit() {
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
        assert!(text.len() <= 64, "{text}");
        assert!(text.ends_with("+ bytes]"), "{text}");
        // The value was read to count what was cut, then stopped.
        let read = pieces.get() * 10;
        assert!(
            read > omegi_core::limits::MAX_COUNTED_BYTES
                && read < omegi_core::limits::MAX_COUNTED_BYTES + 100,
            "{read}"
        );
    }

    #[test]
    fn stack_traces_may_be_longer_than_other_values() {
        let l = limits(64);
        let trace = "frame\n".repeat(100);
        assert_eq!(
            l.field_text("exception.stacktrace", &trace),
            as_core_cuts(&trace, 256)
        );
        assert_eq!(
            l.field_debug("exception.stacktrace", &format_args!("{trace}")),
            as_core_cuts(&trace, 256)
        );
        assert_eq!(l.field_text("backtrace", &trace), as_core_cuts(&trace, 64));
    }
}
