//! What the layer keeps of oversized input: long text is cut with a marker,
//! span stacks, breadcrumbs and error causes are bounded, and what is left
//! out is counted.

use std::time::Duration;

use omegi_core::limits::truncate_text;
use omegi_core::{ErrorRecord, SpanRecord, Value};
use omegi_layer::{MemorySink, OmegiBuilder, OmegiGuard};
use tracing::{error, info, info_span};
use tracing_subscriber::prelude::*;

/// What every cut text ends with: `…[truncated N bytes]`.
const MARKER_END: &str = " bytes]";

/// Runs `f` with an Omegi layer as the thread's subscriber and returns what it captured.
fn capture(builder: OmegiBuilder, f: impl FnOnce()) -> (MemorySink, OmegiGuard) {
    let sink = MemorySink::new();
    let (layer, guard) = builder.with_sink(sink.clone()).build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    assert!(guard.flush(Duration::from_secs(5)));
    (sink, guard)
}

fn text<'a>(attributes: &'a [omegi_core::Attribute], key: &str) -> &'a str {
    match omegi_core::attribute(attributes, key) {
        Some(Value::Str(text)) => text,
        other => panic!("{key}: {other:?}"),
    }
}

fn field<'a>(span: &'a SpanRecord, key: &str) -> &'a str {
    text(&span.attributes, key)
}

/// `original` as the collector's rule (`omegi_core::limits`) cuts it to
/// `limit` bytes.
fn cut(original: &str, limit: usize) -> String {
    let mut text = original.to_owned();
    truncate_text(&mut text, limit);
    text
}

/// Asserts that `text` is `original` cut to `limit` bytes by the one rule
/// that the collector applies too: the start of `original` on a char
/// boundary, then `…[truncated N bytes]`.
fn assert_cut(text: &str, limit: usize, original: &str) {
    assert!(original.len() > limit);
    assert!(text.len() <= limit, "{text}");
    assert!(text.ends_with(MARKER_END), "no marker: {text}");
    assert_eq!(text, cut(original, limit));
}

/// Asserts that `text` is `original` cut as [`assert_cut`] says, except
/// that formatting stopped before the end of the value: the marker gives a
/// lower bound, `…[truncated N+ bytes]`.
fn assert_cut_at_least(text: &str, limit: usize, original: &str) {
    let exact = cut(original, limit);
    let (kept, marker) = text.split_once('…').expect("a marker");
    assert_eq!(kept, exact.split_once('…').expect("a marker").0);
    let n: usize = marker
        .strip_prefix("[truncated ")
        .and_then(|m| m.strip_suffix("+ bytes]"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a lower bound: {marker}"));
    assert!(n < original.len() - kept.len() && n > 64 * 1024, "{n}");
}

/// A `Display` value: the layer formats it instead of copying a `&str`.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Debug)]
struct HugeError(String, Option<Box<HugeError>>);

impl std::fmt::Display for HugeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HugeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

/// An error whose message is `message` and whose source chain is `depth`
/// errors long, each with a different message.
fn chain(message: &str, depth: usize) -> HugeError {
    let mut error = None;
    for i in (0..depth).rev() {
        error = Some(Box::new(HugeError(format!("cause {i}"), error)));
    }
    HugeError(message.to_owned(), error)
}

#[test]
fn long_values_messages_and_errors_are_cut_to_the_default_4_kib_with_a_marker() {
    let huge = "a".repeat(1 << 20);
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let span = info_span!(
            "request",
            short = "kept as it is",
            as_str = huge.as_str(),
            shown = %Shown(&huge),
            debugged = ?huge,
            later = tracing::field::Empty,
            otel.name = huge.as_str(),
        );
        span.in_scope(|| {
            info!(value = huge.as_str(), "{}", Shown(&huge));
            let error = HugeError(huge.clone(), Some(Box::new(HugeError(huge.clone(), None))));
            error!(error = &error as &dyn std::error::Error, "failed: {huge}");
        });
        span.record("later", huge.as_str());
    });
    let limit = 4 * 1024;
    let spans = sink.spans();
    let span = &spans[0];
    assert_eq!(field(span, "short"), "kept as it is");
    for key in ["as_str", "shown", "later"] {
        assert_cut(field(span, key), limit, &huge);
    }
    // Debug quotes the text: the cut keeps its start.
    let debugged = field(span, "debugged");
    assert!(debugged.starts_with("\"aaa"));
    // The closing quote comes after more than the bytes counted past the
    // limit: the marker gives a lower bound.
    assert_cut_at_least(debugged, limit, &format!("{huge:?}"));
    assert_cut(&span.name, limit, &huge);
    let event = &span.events[0];
    assert_cut(&event.message, limit, &huge);
    assert_cut(text(&event.fields, "value"), limit, &huge);

    let errors = sink.errors();
    let error = &errors[0];
    assert_cut(&error.message, limit, &format!("failed: {huge}"));
    assert_eq!(error.causes.len(), 2, "{:?}", error.causes.len());
    for cause in &error.causes {
        assert_cut(cause, limit, &huge);
    }
    assert_cut(text(&error.fields, "error"), limit, &huge);
    assert_cut(
        span.status_message.as_deref().unwrap(),
        limit,
        &format!("failed: {huge}"),
    );
    assert_cut(&error.span_stack[0].name, limit, &huge);
}

#[test]
fn the_value_limit_is_configuration() {
    let huge = "b".repeat(10_000);
    let (sink, _guard) = capture(omegi_layer::layer("svc").max_value_bytes(100), || {
        info_span!("request", value = huge.as_str(), exact = &huge[..100]).in_scope(|| {
            info!("{}", Shown(&huge));
        });
    });
    let span = &sink.spans()[0];
    assert_cut(field(span, "value"), 100, &huge);
    assert_eq!(
        field(span, "exact"),
        &huge[..100],
        "a value at the limit stays whole"
    );
    assert_cut(&span.events[0].message, 100, &huge);
}

#[test]
fn cut_text_keeps_whole_chars() {
    // Three bytes per char: most limits fall inside a char.
    let korean = "결제실패".repeat(2_000);
    for limit in [100, 101, 102] {
        let (sink, _guard) = capture(omegi_layer::layer("svc").max_value_bytes(limit), || {
            info_span!("request", value = korean.as_str(), shown = %Shown(&korean)).in_scope(|| {});
        });
        let span = &sink.spans()[0];
        for key in ["value", "shown"] {
            let value = field(span, key);
            assert_cut(value, limit, &korean);
            let (kept, _) = value.split_once('…').expect("marker");
            assert!(korean.starts_with(kept));
        }
    }
}

#[test]
fn panic_backtraces_may_be_longer_than_other_values() {
    let (sink, _guard) = capture(
        omegi_layer::layer("svc")
            .with_panic_hook()
            .max_value_bytes(64)
            .max_stacktrace_bytes(64 * 1024),
        || {
            let _ = std::panic::catch_unwind(|| {
                info_span!("handler").in_scope(|| panic!("{}", "boom ".repeat(100)));
            });
        },
    );
    let errors = sink.errors();
    let panic = errors
        .iter()
        .find(|e| e.kind == omegi_core::ErrorKind::Panic)
        .expect("a panic record");
    assert!(panic.message.starts_with("boom boom"));
    assert_cut(&panic.message, 64, &"boom ".repeat(100));
    let backtrace = text(&panic.fields, "exception.stacktrace");
    // A debug build's backtrace is a few KiB at least: longer than the
    // value limit, and kept whole within the stack trace limit.
    assert!(backtrace.len() > 64, "{backtrace}");
    assert!(!backtrace.ends_with(MARKER_END));
}

#[test]
fn error_causes_are_bounded() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let error = chain("top", 1_000);
        error!(error = &error as &dyn std::error::Error);
        error!(error = &error as &dyn std::error::Error, "with a message");
    });
    let errors = sink.errors();
    assert_eq!(errors[0].message, "top");
    assert_eq!(errors[0].causes.len(), 32);
    assert_eq!(errors[0].causes[31], "cause 31");
    // With a message, the error itself is the first cause.
    assert_eq!(errors[1].causes.len(), 32);
    assert_eq!(errors[1].causes[..2], ["top", "cause 0"]);

    let (sink, _guard) = capture(omegi_layer::layer("svc").max_error_causes(3), || {
        let error = chain("top", 10);
        error!(error = &error as &dyn std::error::Error);
    });
    assert_eq!(sink.errors()[0].causes, ["cause 0", "cause 1", "cause 2"]);
}

/// Opens `depth` nested spans named `level` with a `depth` field, runs `f`
/// in the innermost one and closes them innermost first.
fn nested(depth: u64, fields: &str, f: impl FnOnce()) {
    let mut entered = Vec::new();
    for d in 0..depth {
        entered.push(info_span!("level", depth = d, data = fields).entered());
    }
    f();
    while let Some(span) = entered.pop() {
        drop(span);
    }
}

fn depths(error: &ErrorRecord) -> Vec<i64> {
    error
        .span_stack
        .iter()
        .map(
            |frame| match omegi_core::attribute(&frame.fields, "depth") {
                Some(Value::I64(d)) => *d,
                other => panic!("{other:?} in {frame:?}"),
            },
        )
        .collect()
}

fn count(error: &ErrorRecord, key: &str) -> Option<i64> {
    match omegi_core::attribute(&error.fields, key) {
        Some(Value::I64(n)) => Some(*n),
        None => None,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn a_deep_span_stack_keeps_the_root_and_the_nearest_frames() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        nested(1_000, "", || error!("deep failure"));
        nested(5, "", || error!("shallow failure"));
    });
    let errors = sink.errors();
    let deep = &errors[0];
    assert_eq!(deep.span_stack.len(), 32);
    let expected: Vec<i64> = std::iter::once(0).chain(969..1_000).collect();
    assert_eq!(depths(deep), expected);
    assert_eq!(count(deep, "omegi.dropped_span_frames"), Some(968));
    let innermost = sink
        .spans()
        .into_iter()
        .find(|s| s.attribute("depth") == Some(&Value::I64(999)))
        .unwrap();
    assert_eq!(deep.span_id, Some(innermost.span_id));

    let shallow = &errors[1];
    assert_eq!(depths(shallow), [0, 1, 2, 3, 4]);
    assert_eq!(count(shallow, "omegi.dropped_span_frames"), None);
}

#[test]
fn a_failed_span_deep_in_a_stack_is_reported_with_a_bounded_stack() {
    let (sink, _guard) = capture(omegi_layer::layer("svc").max_span_frames(4), || {
        nested(50, "", || {
            info_span!("call", otel.status_code = "error", depth = 50).in_scope(|| {});
        });
    });
    let errors = sink.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].message, "call failed");
    assert_eq!(depths(&errors[0]), [0, 48, 49, 50]);
    assert_eq!(errors[0].innermost_span(), Some("call"));
    assert_eq!(count(&errors[0], "omegi.dropped_span_frames"), Some(47));
}

#[test]
fn span_stack_fields_are_kept_within_their_budget_nearest_first() {
    let data = "d".repeat(1_000);
    let (sink, _guard) = capture(omegi_layer::layer("svc").span_stack_bytes(5_000), || {
        nested(10, &data, || error!("failed"));
    });
    let error = &sink.errors()[0];
    assert_eq!(error.span_stack.len(), 10);
    let with_data: Vec<bool> = error
        .span_stack
        .iter()
        .map(|f| omegi_core::attribute(&f.fields, "data").is_some())
        .collect();
    // About 1 KiB per frame: the four nearest keep their data; the small
    // `depth` fields fit for every frame.
    assert_eq!(
        with_data,
        [false, false, false, false, false, false, true, true, true, true]
    );
    assert_eq!(depths(error), (0..10).collect::<Vec<_>>());
    assert_eq!(count(error, "omegi.dropped_span_fields"), Some(6));
}

#[test]
fn breadcrumbs_are_bounded_by_count_and_bytes() {
    let data = "e".repeat(1_000);
    let (sink, _guard) = capture(
        omegi_layer::layer("svc")
            .breadcrumbs(10)
            .breadcrumb_bytes(5_000),
        || {
            info_span!("request").in_scope(|| {
                for i in 0..20 {
                    info!(i, "small {i}");
                }
                error!("after small events");
                for i in 0..20 {
                    info!(i, data = data.as_str(), "large {i}");
                }
                error!("after large events");
                // Two values of 4 KiB (each cut from 10,000 bytes).
                let huge = "f".repeat(10_000);
                info!(
                    data = huge.as_str(),
                    more = huge.as_str(),
                    "larger than the whole budget"
                );
                error!("after a huge event");
            });
        },
    );
    let errors = sink.errors();
    let messages = |e: &ErrorRecord| -> Vec<String> {
        e.breadcrumbs.iter().map(|b| b.message.clone()).collect()
    };
    // By count: the ten most recent.
    let small = messages(&errors[0]);
    assert_eq!(small.len(), 10);
    assert_eq!(small[0], "small 10");
    assert_eq!(small[9], "small 19");
    // By bytes: the most recent that fit in 5,000 bytes, oldest first.
    let large = messages(&errors[1]);
    assert!((3..=4).contains(&large.len()), "{large:?}");
    assert_eq!(large.last().unwrap(), "large 19");
    let kept: usize = errors[1]
        .breadcrumbs
        .iter()
        .map(|b| {
            b.message.len()
                + b.fields
                    .iter()
                    .map(|f| f.value.to_string().len())
                    .sum::<usize>()
        })
        .sum();
    assert!(kept <= 5_000, "{kept}");
    // An event larger than the budget is not a breadcrumb; older ones stay.
    let after_huge = messages(&errors[2]);
    assert!(!after_huge.iter().any(|m| m.starts_with("larger")));
    assert_eq!(after_huge.last().unwrap(), "after large events");
}
