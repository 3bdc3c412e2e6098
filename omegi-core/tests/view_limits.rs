//! Renderings and record copies of hostile traces stay within their
//! [`ViewLimits`]: thousands of spans, a span name of 100 KB, a chain of
//! thousands of nested spans, events with megabyte messages. The size of
//! what is shown depends on the limits, not on the input, and every cut is
//! marked.

use omegi_core::flow::{Trace, ViewLimits, CLIP_MARKER, OMITTED_MARKER};
use omegi_core::{
    Attribute, ErrorKind, ErrorRecord, EventRecord, Flow, Level, SpanFrame, SpanId, SpanRecord,
    Status, TraceId,
};

const T0: u64 = 1_700_000_000_000_000_000;

fn span(id: u64, parent: Option<u64>, service: &str, name: String) -> SpanRecord {
    SpanRecord::new(
        TraceId(9),
        SpanId(id),
        name,
        T0 + id * 1_000,
        T0 + 10_000_000 - id,
    )
    .with_parent(parent.map(SpanId))
    .with_service(service)
    .with_target("app")
}

fn event(time_ns: u64, message: String, fields: Vec<Attribute>) -> EventRecord {
    EventRecord::new(time_ns, Level::Error, message)
        .with_target("app")
        .with_fields(fields)
}

/// `n` spans under one root, span 2 named with `name_bytes` bytes.
fn wide(n: u64, name_bytes: usize) -> Trace {
    let mut spans = vec![span(1, None, "gateway", "root".into())];
    for id in 2..=n {
        let name = if id == 2 {
            "x".repeat(name_bytes)
        } else {
            format!("call {id}")
        };
        spans.push(span(id, Some(1), "gateway", name));
    }
    Trace::from_spans(spans).unwrap()
}

/// A chain of `n` nested spans alternating between two services, the
/// innermost failing.
fn chain(n: u64) -> Trace {
    let spans = (1..=n).map(|id| {
        let service = if id % 2 == 0 { "even" } else { "odd" };
        let mut s = span(id, (id > 1).then(|| id - 1), service, format!("hop {id}"));
        s.events = vec![event(s.start_ns, format!("step {id}"), vec![])];
        if id == n {
            s.status = Status::Error;
            s.status_message = Some("boom".into());
        }
        s
    });
    Trace::from_spans(spans).unwrap()
}

#[test]
fn a_huge_span_name_does_not_widen_every_line() {
    let limits = ViewLimits::default();
    let small = wide(2_000, 10).waterfall_within(40, &limits);
    let huge = wide(2_000, 100_000).waterfall_within(40, &limits);
    // The 100 KB name is cut to the label width: every line is at most
    // label + bar + duration wide, whatever the name.
    let line_max = limits.label_chars + 2 + 40 + 2 + 20;
    assert!(small.text.len() < huge.text.len());
    assert!(huge.text.len() <= 502 * line_max, "{}", huge.text.len());
    assert!(huge.text.len() <= limits.bytes + 100);
    assert!(huge.truncated);
    assert!(huge.text.contains(CLIP_MARKER));
    // 2,000 spans, 500 lines shown, the rest counted on the last line.
    let last = huge.text.lines().last().unwrap();
    assert!(last.starts_with(OMITTED_MARKER), "{last}");
    assert!(last.contains("1500 more spans"), "{last}");
    assert_eq!(huge.text.lines().count(), 1 + 500 + 1);
    let widest = huge.text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= limits.label_chars + 2 + 40 + 2 + 20, "{widest}");
}

#[test]
fn waterfall_size_follows_the_limits_not_the_input() {
    let limits = ViewLimits::default().lines(100).bytes(16 * 1024);
    let sizes: Vec<usize> = [1_000, 4_000]
        .into_iter()
        .map(|n| chain(n).waterfall_within(400, &limits).text.len())
        .collect();
    // A chain four times deeper answers the same size: the indentation stops
    // at half the label and the line count at the limit.
    assert!(sizes.iter().all(|&s| s <= 16 * 1024 + 100), "{sizes:?}");
    assert!(sizes[0].abs_diff(sizes[1]) < 8, "{sizes:?}");
    let text = chain(4_000).waterfall_within(40, &limits).text;
    assert!(text.contains("[60] "), "deep spans show their depth");
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < limits.label_chars + 80, "{widest}");
}

#[test]
fn byte_budget_cuts_a_rendering_with_a_marker() {
    let limits = ViewLimits::default().bytes(4 * 1024);
    let rendered = wide(300, 10).waterfall_within(400, &limits);
    assert!(rendered.truncated);
    assert!(rendered.text.len() <= 4 * 1024 + 100);
    assert!(rendered
        .text
        .lines()
        .last()
        .unwrap()
        .starts_with(OMITTED_MARKER));
}

#[test]
fn raw_log_cuts_messages_fields_and_lines() {
    let mut spans = vec![span(1, None, "api", "root".into())];
    let fields = (0..40)
        .map(|i| Attribute::new(format!("k{i}"), "v".repeat(2_000)))
        .collect::<Vec<_>>();
    spans[0].events = (0..600)
        .map(|i| event(T0 + i, "m".repeat(20_000), fields.clone()))
        .collect();
    let trace = Trace::from_spans(spans).unwrap();
    let limits = ViewLimits::default();
    let log = trace.raw_log_within(&limits);
    assert!(log.truncated);
    assert!(log.text.len() <= limits.bytes + 100, "{}", log.text.len());
    let first = log.text.lines().next().unwrap();
    assert!(first.chars().count() <= limits.text_chars + 100);
    assert!(first.ends_with(CLIP_MARKER));
    assert!(log.text.lines().last().unwrap().starts_with(OMITTED_MARKER));
}

#[test]
fn ordinary_traces_are_not_marked() {
    let trace = wide(20, 10);
    let rendered = trace.waterfall_within(40, &ViewLimits::default());
    assert!(!rendered.truncated);
    assert_eq!(rendered.text, trace.waterfall(40));
    assert!(!rendered.text.contains(OMITTED_MARKER));
    let flow = Flow::for_span(&chain(5), SpanId(5)).unwrap();
    let summary = flow.summary_within(&ViewLimits::default());
    assert!(!summary.truncated);
    let clipped = ViewLimits::default().clip_flow(&flow);
    assert!(!clipped.truncated);
    assert_eq!(clipped.value, flow);
}

#[test]
fn a_long_flow_keeps_its_ends() {
    let trace = chain(4_000);
    let flow = Flow::for_span(&trace, SpanId(4_000)).unwrap();
    assert_eq!(flow.hops.len(), 4_000);
    let limits = ViewLimits::default().lines(50);
    let summary = flow.summary_within(&limits);
    assert!(summary.truncated);
    let lines: Vec<&str> = summary.text.lines().collect();
    assert!(lines[0].trim_start().starts_with("1. "));
    assert!(lines.iter().any(|l| l.starts_with(OMITTED_MARKER)));
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("4000. ")),
        "the failing hop"
    );
    assert!(lines.contains(&"error: boom"));
    let clipped = limits.clip_flow(&flow);
    assert!(clipped.truncated);
    assert_eq!(clipped.value.hops.len(), 50);
    assert_eq!(clipped.value.hops.last(), flow.hops.last());
    assert_eq!(clipped.value.hops[0], flow.hops[0]);
}

#[test]
fn clipped_records_have_a_bounded_size() {
    let limits = ViewLimits::default();
    let big = "v".repeat(1_000_000);
    let value = "w".repeat(10_000);
    let mut s = span(1, None, &"s".repeat(70_000), big.clone());
    s.attributes = (0..1_000)
        .map(|i| Attribute::new(format!("key{i}"), value.as_str()))
        .collect();
    s.events = (0..100)
        .map(|i| event(T0 + i, value.repeat(10), s.attributes[..10].to_vec()))
        .collect();
    let clipped = limits.clip_span(&s);
    assert!(clipped.truncated);
    let json = serde_json::to_vec(&clipped.value).unwrap();
    assert!(json.len() < 128 * 1024, "{}", json.len());
    assert_eq!(clipped.value.attributes.len(), limits.items);
    assert!(clipped.value.name.ends_with(CLIP_MARKER));

    let frame = SpanFrame::new(SpanId(1), value.clone())
        .with_target("t")
        .with_fields(s.attributes[..5].to_vec());
    let error = ErrorRecord::new(big.clone(), T0)
        .with_trace_id(TraceId(9))
        .with_span_id(SpanId(1))
        .with_service("api")
        .with_kind(ErrorKind::Remote)
        .with_causes(vec![value.clone(); 100])
        .with_error_type("Boom")
        .with_target("app")
        .with_fields(s.attributes.clone())
        .with_span_stack(
            (0..4_000u64)
                .map(|i| {
                    let mut frame = frame.clone();
                    frame.span_id = SpanId(i);
                    frame
                })
                .collect(),
        )
        .with_breadcrumbs(s.events.clone());
    let clipped = limits.clip_error(&error);
    assert!(clipped.truncated);
    let json = serde_json::to_vec(&clipped.value).unwrap();
    assert!(json.len() < 256 * 1024, "{}", json.len());
    let stack = &clipped.value.span_stack;
    assert_eq!(stack.len(), limits.items);
    assert_eq!(stack[0].span_id, SpanId(0), "the root is kept");
    assert_eq!(
        stack.last().unwrap().span_id,
        SpanId(3_999),
        "and the innermost"
    );
}
