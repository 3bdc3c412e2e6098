//! Plain-text renderings for terminals and logs: a flow's summary, a trace's
//! raw log and its waterfall. All are deterministic: the same trace renders
//! the same text on every machine.

use std::fmt::Write as _;

use crate::model::{Status, Value};

use super::path::Flow;
use super::trace::{SpanNode, Trace};

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

fn width_of(s: &str) -> usize {
    s.chars().count()
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
    pub fn summary(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .hops
            .iter()
            .enumerate()
            .map(|(i, hop)| {
                let is_last = i + 1 == self.hops.len();
                let name = if is_last && hop.last_span_name != hop.span_name {
                    format!("{} > {}", hop.span_name, hop.last_span_name)
                } else {
                    hop.span_name.clone()
                };
                [
                    format!("{}.", i + 1),
                    hop.service.clone(),
                    name,
                    format!("+{}", format_duration(hop.offset_ns)),
                    format_duration(hop.duration_ns),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..5)
            .map(|c| rows.iter().map(|r| width_of(&r[c])).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (row, hop) in rows.iter().zip(&self.hops) {
            pad_left(&mut out, &row[0], widths[0]);
            out.push(' ');
            pad(&mut out, &row[1], widths[1]);
            out.push_str("  ");
            pad(&mut out, &row[2], widths[2]);
            out.push_str("  ");
            pad_left(&mut out, &row[3], widths[3]);
            out.push_str("  ");
            pad_left(&mut out, &row[4], widths[4]);
            out.push_str("  ");
            out.push_str(status_word(hop.status));
            out.push('\n');
        }
        out.push_str("error: ");
        out.push_str(if self.message.is_empty() {
            "<no message>"
        } else {
            &self.message
        });
        if let Some(ty) = &self.error_type {
            let _ = write!(out, " ({ty})");
        }
        out.push('\n');
        for cause in &self.causes {
            let _ = writeln!(out, "caused by: {cause}");
        }
        out
    }
}

fn format_value(value: &Value) -> String {
    match value {
        Value::Str(s) if s.is_empty() || s.contains(char::is_whitespace) => format!("{s:?}"),
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
    pub fn raw_log(&self) -> String {
        let origin = self.start_ns();
        let mut lines: Vec<(u64, usize, usize, [String; 5])> = Vec::new();
        for (pos, &id) in self.preorder().iter().enumerate() {
            let span = &self[id].span;
            for (k, event) in span.events.iter().enumerate() {
                let mut text = event.message.clone();
                for field in &event.fields {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    let _ = write!(text, "{}={}", field.key, format_value(&field.value));
                }
                lines.push((
                    event.time_ns,
                    pos,
                    k,
                    [
                        format_signed(
                            i64::try_from(i128::from(event.time_ns) - i128::from(origin))
                                .unwrap_or(i64::MIN),
                        ),
                        event.level.as_str().to_owned(),
                        span.service.clone(),
                        span.name.to_string(),
                        text,
                    ],
                ));
            }
        }
        lines.sort_by_key(|l| (l.0, l.1, l.2));
        let widths: Vec<usize> = (0..4)
            .map(|c| lines.iter().map(|l| width_of(&l.3[c])).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (_, _, _, cols) in &lines {
            pad_left(&mut out, &cols[0], widths[0]);
            for (c, width) in widths.iter().enumerate().skip(1) {
                out.push_str("  ");
                pad(&mut out, &cols[c], *width);
            }
            out.push_str("  ");
            out.push_str(&cols[4]);
            let trimmed = out.trim_end_matches(' ').len();
            out.truncate(trimmed);
            out.push('\n');
        }
        out
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
    pub fn waterfall(&self, width: usize) -> String {
        let width = width.max(1);
        let origin = self.start_ns();
        let total = self.end_ns().saturating_sub(origin);
        let labels: Vec<String> = self
            .preorder()
            .iter()
            .map(|&id| {
                let node = &self[id];
                format!(
                    "{}{} {}",
                    "  ".repeat(node.depth),
                    node.span.service,
                    node.span.name
                )
            })
            .collect();
        let durations: Vec<String> = self
            .preorder()
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
        let mut out = format!(
            "trace {}  {} span{}  {} service{}  {}\n",
            self.trace_id(),
            self.len(),
            if self.len() == 1 { "" } else { "s" },
            services.len(),
            if services.len() == 1 { "" } else { "s" },
            format_duration(total),
        );
        for ((&id, label), duration) in self.preorder().iter().zip(&labels).zip(&durations) {
            let node = &self[id];
            pad(&mut out, label, label_width);
            out.push_str("  |");
            out.push_str(&bar(node, origin, total, width));
            out.push_str("|  ");
            pad_left(&mut out, duration, duration_width);
            for marker in markers(node) {
                out.push_str("  ");
                out.push_str(&marker);
            }
            out.push('\n');
        }
        out
    }
}

/// The bar of one span: `width` columns for the range `origin..origin+total`,
/// at least one column drawn.
fn bar(node: &SpanNode, origin: u64, total: u64, width: usize) -> String {
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
    let mut s = String::with_capacity(width);
    for col in 0..width {
        s.push(if (from..to).contains(&col) { '=' } else { ' ' });
    }
    s
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
