//! Plain-text renderings for terminals and logs: a flow's summary, a trace's
//! raw log and its waterfall. All are deterministic: the same trace renders
//! the same text on every machine, and all stay within [`ViewLimits`]: a
//! name wider than its column is cut with [`CLIP_MARKER`], and lines left
//! out are counted on a last line that starts with [`OMITTED_MARKER`].

use std::fmt::Write as _;

use crate::model::{Status, Value};

use super::clip::{clip, ends_of, ViewLimits, CLIP_MARKER, MAX_BAR_WIDTH};
use super::path::Flow;
use super::trace::{NodeId, SpanNode, Trace};

/// Starts the last line of a rendering that left lines out:
/// `… 1500 more spans not shown (view limit)`.
pub const OMITTED_MARKER: &str = "… ";

/// A text rendering, and whether it was cut to the [`ViewLimits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The text, one line per row, each ending with `\n`.
    pub text: String,
    /// Whether a name was cut or lines were left out.
    pub truncated: bool,
}

/// Collects the lines of one rendering within a byte budget.
struct Lines {
    out: String,
    bytes: usize,
    truncated: bool,
    full: bool,
}

impl Lines {
    fn new(limits: &ViewLimits) -> Self {
        Lines {
            out: String::new(),
            bytes: limits.bytes,
            truncated: false,
            full: false,
        }
    }

    /// Adds a line (without its newline); false once the budget is spent.
    fn push(&mut self, line: &str) -> bool {
        if self.full || self.out.len() + line.len() + 1 > self.bytes {
            self.full = true;
            self.truncated = true;
            return false;
        }
        self.out.push_str(line);
        self.out.push('\n');
        true
    }

    /// Adds a line whatever the budget says (for lines bounded otherwise).
    fn push_anyway(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    /// The closing `… N more <what> not shown` line (outside the budget).
    fn omitted(&mut self, n: usize, what: &str) {
        if n > 0 {
            self.truncated = true;
            let _ = writeln!(
                self.out,
                "{OMITTED_MARKER}{n} more {what} not shown (view limit)"
            );
        }
    }

    fn finish(self, clipped: bool) -> Rendered {
        Rendered {
            text: self.out,
            truncated: self.truncated || clipped,
        }
    }
}

/// A duration as people read it: tenths of a millisecond below one second
/// (`42.1ms`), hundredths of a second above (`3.25s`).
pub fn format_duration(ns: u64) -> String {
    if ns < 1_000_000_000 {
        let tenths = (ns + 50_000) / 100_000;
        format!("{}.{}ms", tenths / 10, tenths % 10)
    } else {
        let hundredths = ns / 10_000_000 + u64::from(ns % 10_000_000 >= 5_000_000);
        format!("{}.{:02}s", hundredths / 100, hundredths % 100)
    }
}

fn format_signed(ns: i64) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    format!("{sign}{}", format_duration(ns.unsigned_abs()))
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Unset => "unset",
        Status::Ok => "ok",
        Status::Error => "error",
    }
}

/// Terminal columns `s` takes: wide characters (Hangul, CJK) take two.
fn width_of(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `text` cut to `max` characters; sets `clipped` when it was cut.
fn cut(text: &str, max: usize, clipped: &mut bool) -> String {
    let out = clip(text, max);
    *clipped |= matches!(out, std::borrow::Cow::Owned(_));
    out.into_owned()
}

fn pad(out: &mut String, s: &str, width: usize) {
    out.push_str(s);
    for _ in width_of(s)..width {
        out.push(' ');
    }
}

fn pad_left(out: &mut String, s: &str, width: usize) {
    for _ in width_of(s)..width {
        out.push(' ');
    }
    out.push_str(s);
}

impl Flow {
    /// One line per hop — number, service, span (`first > failing` on the
    /// last hop when they differ), offset from the root, duration, status —
    /// then the error and its causes.
    ///
    /// ```text
    /// 1. user-service       POST /checkout        +0.0ms  42.1ms  error
    /// 2. inventory-service  reserve               +3.2ms  20.0ms  error
    /// 3. payment-service    charge > charge_card  +8.0ms   5.0ms  error
    /// error: card declined (PaymentError)
    /// caused by: gateway answered 402
    /// ```
    ///
    /// Within the default [`ViewLimits`]; see [`summary_within`](Self::summary_within).
    pub fn summary(&self) -> String {
        self.summary_within(&ViewLimits::default()).text
    }

    /// [`summary`](Self::summary) within `limits`: at most
    /// [`lines`](ViewLimits::lines) hops (the first and the last ones, with
    /// a line counting those left out between them), names cut to
    /// [`label_chars`](ViewLimits::label_chars), the message and causes to
    /// [`text_chars`](ViewLimits::text_chars), at most
    /// [`items`](ViewLimits::items) causes.
    pub fn summary_within(&self, limits: &ViewLimits) -> Rendered {
        let mut clipped = false;
        let (head, tail) = ends_of(self.hops.len(), limits.lines);
        let shown: Vec<usize> = head.chain(tail).collect();
        let rows: Vec<[String; 5]> = shown
            .iter()
            .map(|&i| {
                let hop = &self.hops[i];
                let is_last = i + 1 == self.hops.len();
                let name = if is_last && hop.last_span_name != hop.span_name {
                    let half = limits.label_chars / 2;
                    format!(
                        "{} > {}",
                        cut(&hop.span_name, half, &mut clipped),
                        cut(&hop.last_span_name, half, &mut clipped)
                    )
                } else {
                    cut(&hop.span_name, limits.label_chars, &mut clipped)
                };
                [
                    format!("{}.", i + 1),
                    cut(&hop.service, limits.label_chars, &mut clipped),
                    name,
                    format!("+{}", format_duration(hop.offset_ns)),
                    format_duration(hop.duration_ns),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..5)
            .map(|c| rows.iter().map(|r| width_of(&r[c])).max().unwrap_or(0))
            .collect();
        let mut lines = Lines::new(limits);
        let mut line = String::new();
        let mut previous: Option<usize> = None;
        let mut written = 0;
        for (row, &i) in rows.iter().zip(&shown) {
            if let Some(p) = previous.filter(|&p| p + 1 != i) {
                lines.truncated = true;
                if !lines.push(&format!("{OMITTED_MARKER}{} hops not shown", i - p - 1)) {
                    break;
                }
                written += i - p - 1;
            }
            previous = Some(i);
            line.clear();
            pad_left(&mut line, &row[0], widths[0]);
            line.push(' ');
            pad(&mut line, &row[1], widths[1]);
            line.push_str("  ");
            pad(&mut line, &row[2], widths[2]);
            line.push_str("  ");
            pad_left(&mut line, &row[3], widths[3]);
            line.push_str("  ");
            pad_left(&mut line, &row[4], widths[4]);
            line.push_str("  ");
            line.push_str(status_word(self.hops[i].status));
            if !lines.push(&line) {
                break;
            }
            written += 1;
        }
        lines.omitted(self.hops.len() - written, "hops");
        // The error and its causes go out even when the hops filled the
        // budget: each is cut to `text_chars`, at most `items` causes.
        line.clear();
        line.push_str("error: ");
        if self.message.is_empty() {
            line.push_str("<no message>");
        } else {
            line.push_str(&cut(&self.message, limits.text_chars, &mut clipped));
        }
        if let Some(ty) = &self.error_type {
            let _ = write!(line, " ({})", cut(ty, limits.label_chars, &mut clipped));
        }
        lines.push_anyway(&line);
        let causes = self.causes.len().min(limits.items);
        for cause in &self.causes[..causes] {
            let cause = cut(cause, limits.text_chars, &mut clipped);
            lines.push_anyway(&format!("caused by: {cause}"));
        }
        lines.omitted(self.causes.len() - causes, "causes");
        lines.finish(clipped)
    }
}

fn format_value(value: &Value, max_chars: usize, clipped: &mut bool) -> String {
    match value {
        Value::Str(s) if s.is_empty() || s.contains(char::is_whitespace) => {
            format!("{:?}", cut(s, max_chars, clipped))
        }
        Value::Str(s) => cut(s, max_chars, clipped),
        other => other.to_string(),
    }
}

impl Trace {
    /// Every event of the trace in time order (corrected for clock skew; ties
    /// keep tree order), one per line: offset from the trace's start, level,
    /// service, span, message and fields.
    ///
    /// ```text
    /// +1.0ms  INFO   user-service       POST /checkout  checkout started order=42
    /// +9.5ms  ERROR  payment-service    charge_card     card declined code=51
    /// ```
    ///
    /// Within the default [`ViewLimits`]; see [`raw_log_within`](Self::raw_log_within).
    pub fn raw_log(&self) -> String {
        self.raw_log_within(&ViewLimits::default()).text
    }

    /// [`raw_log`](Self::raw_log) within `limits`: the first
    /// [`lines`](ViewLimits::lines) events, service and span cut to
    /// [`label_chars`](ViewLimits::label_chars), each message with its
    /// fields (at most [`items`](ViewLimits::items)) cut to
    /// [`text_chars`](ViewLimits::text_chars).
    pub fn raw_log_within(&self, limits: &ViewLimits) -> Rendered {
        let origin = self.start_ns();
        // Sort positions only; format just the lines shown.
        let mut events: Vec<(u64, usize, usize, NodeId)> = Vec::new();
        for (pos, &id) in self.preorder().iter().enumerate() {
            for (k, event) in self[id].span.events.iter().enumerate() {
                events.push((event.time_ns, pos, k, id));
            }
        }
        events.sort_unstable_by_key(|e| (e.0, e.1, e.2));
        let shown = events.len().min(limits.lines);
        let mut clipped = false;
        let rows: Vec<[String; 5]> = events[..shown]
            .iter()
            .map(|&(_, _, k, id)| {
                let span = &self[id].span;
                let event = &span.events[k];
                let mut text = cut(&event.message, limits.text_chars, &mut clipped);
                let fields = event.fields.len().min(limits.items);
                clipped |= fields < event.fields.len();
                for field in &event.fields[..fields] {
                    if text.len() > limits.text_chars.saturating_mul(4) {
                        clipped = true;
                        break;
                    }
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    let _ = write!(
                        text,
                        "{}={}",
                        cut(&field.key, limits.label_chars, &mut clipped),
                        format_value(&field.value, limits.text_chars, &mut clipped)
                    );
                }
                [
                    format_signed(
                        i64::try_from(i128::from(event.time_ns) - i128::from(origin))
                            .unwrap_or(i64::MIN),
                    ),
                    event.level.as_str().to_owned(),
                    cut(&span.service, limits.label_chars, &mut clipped),
                    cut(&span.name, limits.label_chars, &mut clipped),
                    cut(&text, limits.text_chars, &mut clipped),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..4)
            .map(|c| rows.iter().map(|r| width_of(&r[c])).max().unwrap_or(0))
            .collect();
        let mut lines = Lines::new(limits);
        let mut line = String::new();
        let mut written = 0;
        for cols in &rows {
            line.clear();
            pad_left(&mut line, &cols[0], widths[0]);
            for (c, width) in widths.iter().enumerate().skip(1) {
                line.push_str("  ");
                pad(&mut line, &cols[c], *width);
            }
            line.push_str("  ");
            line.push_str(&cols[4]);
            let trimmed = line.trim_end_matches(' ').len();
            line.truncate(trimmed);
            if !lines.push(&line) {
                break;
            }
            written += 1;
        }
        lines.omitted(events.len() - written, "events");
        lines.finish(clipped)
    }

    /// A waterfall for terminals: a header, then one line per span in tree
    /// order — indented service and span name, a bar `width` columns wide
    /// placing the span in the trace's time range, its duration, and markers
    /// (`error`, `skew ±x` where a clock-skew correction was applied, `orphan`,
    /// `cycle` for a cut parent link, `dup xN` for merged duplicates).
    ///
    /// ```text
    /// trace 0000…0001  3 spans  3 services  42.1ms
    /// user-service POST /checkout        |==============================|  42.1ms
    ///   inventory-service reserve        |   ==============             |  20.0ms
    ///     payment-service charge         |        ====                  |   5.0ms  error
    /// ```
    ///
    /// Within the default [`ViewLimits`]; see
    /// [`waterfall_within`](Self::waterfall_within).
    pub fn waterfall(&self, width: usize) -> String {
        self.waterfall_within(width, &ViewLimits::default()).text
    }

    /// [`waterfall`](Self::waterfall) within `limits`: the first
    /// [`lines`](ViewLimits::lines) spans in tree order; each label, its
    /// indentation included, at most [`label_chars`](ViewLimits::label_chars)
    /// wide (indentation takes at most half of it; deeper spans show their
    /// depth as `[d]`); the bar at most [`MAX_BAR_WIDTH`] columns. Lines
    /// are padded to the widest label shown, never wider.
    pub fn waterfall_within(&self, width: usize, limits: &ViewLimits) -> Rendered {
        let width = width.clamp(1, MAX_BAR_WIDTH);
        let origin = self.start_ns();
        let total = self.end_ns().saturating_sub(origin);
        let order = self.preorder();
        let shown = &order[..order.len().min(limits.lines)];
        let mut clipped = false;
        let labels: Vec<String> = shown
            .iter()
            .map(|&id| waterfall_label(&self[id], limits, &mut clipped))
            .collect();
        let durations: Vec<String> = shown
            .iter()
            .map(|&id| format_duration(self[id].duration_ns()))
            .collect();
        let label_width = labels.iter().map(|l| width_of(l)).max().unwrap_or(0);
        let duration_width = durations.iter().map(|d| width_of(d)).max().unwrap_or(0);

        let mut services: Vec<&str> = self
            .nodes()
            .iter()
            .map(|n| n.span.service.as_str())
            .collect();
        services.sort_unstable();
        services.dedup();
        let mut lines = Lines::new(limits);
        lines.push(&format!(
            "trace {}  {} span{}  {} service{}  {}",
            self.trace_id(),
            self.len(),
            if self.len() == 1 { "" } else { "s" },
            services.len(),
            if services.len() == 1 { "" } else { "s" },
            format_duration(total),
        ));
        let mut line = String::new();
        let mut written = 0;
        for ((&id, label), duration) in shown.iter().zip(&labels).zip(&durations) {
            let node = &self[id];
            line.clear();
            pad(&mut line, label, label_width);
            line.push_str("  |");
            bar(&mut line, node, origin, total, width);
            line.push_str("|  ");
            pad_left(&mut line, duration, duration_width);
            for marker in markers(node) {
                line.push_str("  ");
                line.push_str(&marker);
            }
            if !lines.push(&line) {
                break;
            }
            written += 1;
        }
        lines.omitted(order.len() - written, "spans");
        lines.finish(clipped)
    }
}

/// A span's waterfall label: indentation by depth, service and name, at
/// most `limits.label_chars` characters.
fn waterfall_label(node: &SpanNode, limits: &ViewLimits, clipped: &mut bool) -> String {
    let max_indent = limits.label_chars / 2;
    let mut label = String::new();
    if node.depth * 2 <= max_indent {
        label.extend(std::iter::repeat_n(' ', node.depth * 2));
    } else {
        let depth = format!("[{}] ", node.depth);
        label.extend(std::iter::repeat_n(
            ' ',
            max_indent.saturating_sub(width_of(&depth)),
        ));
        label.push_str(&depth);
    }
    let room = limits.label_chars.saturating_sub(width_of(&label)).max(1);
    let service = clip(&node.span.service, room);
    let name = clip(&node.span.name, room);
    let text = format!("{service} {name}");
    label.push_str(&cut(&text, room, clipped));
    if label.ends_with(CLIP_MARKER) {
        *clipped = true;
    }
    label
}

/// The bar of one span: `width` columns for the range `origin..origin+total`,
/// at least one column drawn.
fn bar(out: &mut String, node: &SpanNode, origin: u64, total: u64, width: usize) {
    let (from, to) = if total == 0 {
        (0, width)
    } else {
        let w = width as u128;
        let total = u128::from(total);
        let start = u128::from(node.start_ns().saturating_sub(origin));
        let end = u128::from(node.end_ns().saturating_sub(origin));
        let from = (start * w / total).min(w - 1);
        let to = (end * w).div_ceil(total).clamp(from + 1, w);
        // Both are at most `width`, which is a usize.
        (from as usize, to as usize)
    };
    for col in 0..width {
        out.push(if (from..to).contains(&col) { '=' } else { ' ' });
    }
}

fn markers(node: &SpanNode) -> Vec<String> {
    let mut m = Vec::new();
    if node.span.status == Status::Error {
        m.push("error".to_owned());
    }
    if node.skew_corrected {
        m.push(format!("skew {}", format_signed(node.skew_ns)));
    }
    if node.orphan {
        m.push("orphan".to_owned());
    }
    if node.cycle_broken {
        m.push("cycle".to_owned());
    }
    if node.duplicates > 0 {
        m.push(format!("dup x{}", node.duplicates + 1));
    }
    m
}
