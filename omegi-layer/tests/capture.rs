//! What the layer captures from spans, events and errors.

use std::time::Duration;

use omegi_core::{ErrorKind, Level, SpanKind, SpanRecord, Status, Value};
use omegi_layer::{MemorySink, OmegiBuilder, OmegiGuard};
use tracing::{error, info, info_span, warn};
use tracing_subscriber::prelude::*;

/// Runs `f` with an Omegi layer as the thread's subscriber and returns what it captured.
fn capture(builder: OmegiBuilder, f: impl FnOnce()) -> (MemorySink, OmegiGuard) {
    let sink = MemorySink::new();
    let (layer, guard) = builder.with_sink(sink.clone()).build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    assert!(guard.flush(Duration::from_secs(5)));
    (sink, guard)
}

fn span<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[derive(Debug, thiserror::Error)]
#[error("gateway refused the card")]
struct GatewayError {
    #[source]
    source: std::io::Error,
}

#[derive(Debug, thiserror::Error)]
#[error("payment declined for order {order}")]
struct PaymentError {
    order: u64,
    #[source]
    source: GatewayError,
}

fn payment_error() -> PaymentError {
    PaymentError {
        order: 42,
        source: GatewayError {
            source: std::io::Error::other("connection reset by peer"),
        },
    }
}

#[test]
fn spans_fields_records_and_events() {
    let (sink, _guard) = capture(omegi_layer::layer("checkout"), || {
        let root = info_span!(
            "checkout",
            user = "ann",
            items = 3u64,
            amount = tracing::field::Empty
        );
        root.in_scope(|| {
            info!(cart = 7, "cart loaded");
            let child = info_span!("reserve", sku = "A-1", qty = 2i64);
            child.in_scope(|| warn!(left = 1, "stock low"));
        });
        root.record("amount", 12.5);
    });
    let spans = sink.spans();
    assert_eq!(spans.len(), 2);
    let root = span(&spans, "checkout");
    let child = span(&spans, "reserve");

    assert_eq!(root.service, "checkout");
    assert_eq!(root.parent_span_id, None);
    assert!(root.trace_id.is_valid() && root.span_id.is_valid());
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.parent_span_id, Some(root.span_id));
    assert_ne!(child.span_id, root.span_id);
    assert!(root.start_ns <= child.start_ns && child.end_ns <= root.end_ns);

    assert_eq!(root.attribute("user"), Some(&Value::from("ann")));
    assert_eq!(root.attribute("items"), Some(&Value::I64(3)));
    assert_eq!(root.attribute("amount"), Some(&Value::F64(12.5)));
    assert_eq!(child.attribute("qty"), Some(&Value::I64(2)));

    assert_eq!(root.events.len(), 1);
    assert_eq!(root.events[0].message, "cart loaded");
    assert_eq!(root.events[0].fields[0].key, "cart");
    assert_eq!(child.events[0].level, Level::Warn);
    assert_eq!(child.events[0].message, "stock low");
    assert!(child.events[0].location.line.is_some());
    assert_eq!(root.status, Status::Unset);
    assert_eq!(sink.errors().len(), 0);
    assert_eq!(sink.resource().unwrap().service, "checkout");
}

#[test]
fn separate_roots_start_separate_traces() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        info_span!("one").in_scope(|| {});
        info_span!("two").in_scope(|| {});
    });
    let spans = sink.spans();
    assert_ne!(span(&spans, "one").trace_id, span(&spans, "two").trace_id);
}

#[test]
fn error_event_carries_source_chain_span_stack_and_breadcrumbs() {
    let (sink, _guard) = capture(omegi_layer::layer("payment"), || {
        info_span!("request", path = "/pay").in_scope(|| {
            info_span!("validate").in_scope(|| info!(order = 42, "validating order"));
            info_span!("charge", order = 42u64).in_scope(|| {
                info!("calling gateway");
                let err = payment_error();
                error!(error = &err as &dyn std::error::Error, "charge failed");
            });
        });
    });
    let errors = sink.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::Event);
    assert_eq!(e.service, "payment");
    assert_eq!(e.message, "charge failed");
    assert_eq!(
        e.causes,
        vec![
            "payment declined for order 42",
            "gateway refused the card",
            "connection reset by peer"
        ]
    );
    let stack: Vec<&str> = e.span_stack.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(stack, ["request", "charge"]);
    assert_eq!(e.span_stack[0].fields[0].key, "path");
    assert_eq!(e.span_stack[1].fields[0].value, Value::I64(42));
    let crumbs: Vec<&str> = e.breadcrumbs.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(crumbs, ["validating order", "calling gateway"]);
    assert!(e.location.file.as_deref().unwrap().ends_with("capture.rs"));
    assert!(e.thread.is_some());

    let spans = sink.spans();
    let charge = span(&spans, "charge");
    assert_eq!(e.trace_id, Some(charge.trace_id));
    assert_eq!(e.span_id, Some(charge.span_id));
    assert_eq!(charge.status, Status::Error);
    assert_eq!(charge.status_message.as_deref(), Some("charge failed"));
    // The error stays an event of its span.
    assert_eq!(charge.events.last().unwrap().message, "charge failed");
    assert_eq!(span(&spans, "validate").status, Status::Unset);
}

#[test]
fn error_field_without_message_and_explicit_type_and_fingerprint() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let io = std::io::Error::other("disk full");
        // A warning with an error field is still an error record.
        tracing::warn!(error = &io as &dyn std::error::Error);
        tracing::error!(omegi.fingerprint = "billing-outage", error.type = "BillingError", "billing down");
    });
    let errors = sink.errors();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].message, "disk full");
    assert_eq!(errors[0].error_type.as_deref(), Some("std::io::Error"));
    assert!(errors[0].causes.is_empty());
    assert_eq!(errors[0].trace_id, None, "outside any span");
    assert_eq!(errors[1].fingerprint.as_deref(), Some("billing-outage"));
    assert_eq!(errors[1].error_type.as_deref(), Some("BillingError"));
}

#[tracing::instrument(err)]
fn reserve(sku: &str) -> Result<u32, PaymentError> {
    Err(payment_error())
}

#[test]
fn instrument_err_is_captured() {
    let (sink, _guard) = capture(omegi_layer::layer("inventory"), || {
        let _ = reserve("A-1");
    });
    let errors = sink.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "payment declined for order 42");
    assert_eq!(errors[0].innermost_span(), Some("reserve"));
    assert_eq!(errors[0].span_stack[0].fields[0].value, Value::from("A-1"));
    let spans = sink.spans();
    assert_eq!(span(&spans, "reserve").status, Status::Error);
}

#[test]
fn panics_are_captured_with_the_span_stack() {
    let (sink, _guard) = capture(omegi_layer::layer("svc").with_panic_hook(), || {
        let result = std::panic::catch_unwind(|| {
            info_span!("handler", route = "/boom").in_scope(|| {
                info!("about to fail");
                panic!("boom {}", 7);
            })
        });
        assert!(result.is_err());
    });
    let errors = sink.errors();
    let e = errors
        .iter()
        .find(|e| e.kind == ErrorKind::Panic)
        .expect("a panic record");
    assert_eq!(e.message, "boom 7");
    assert_eq!(e.error_type.as_deref(), Some("panic"));
    assert_eq!(e.innermost_span(), Some("handler"));
    assert!(e.location.file.as_deref().unwrap().ends_with("capture.rs"));
    assert_eq!(e.breadcrumbs[0].message, "about to fail");
}

#[test]
fn events_per_span_are_capped() {
    let (sink, _guard) = capture(omegi_layer::layer("svc").max_events_per_span(3), || {
        info_span!("long").in_scope(|| {
            for i in 0..10 {
                info!(i, "tick");
            }
        });
    });
    let spans = sink.spans();
    assert_eq!(spans[0].events.len(), 3);
    assert_eq!(spans[0].dropped_events, 7);
}

#[test]
fn failed_span_without_logged_error_is_reported_once() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let outer = info_span!("outer", otel.status_code = tracing::field::Empty);
        outer.in_scope(|| {
            // A span between the two that does not fail itself.
            let _middle = info_span!("middle").entered();
            let inner = info_span!(
                "inner",
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                otel.status_message = tracing::field::Empty
            );
            inner.record("otel.status_code", "ERROR");
            inner.record("otel.status_message", "HTTP 500 Internal Server Error");
            drop(inner);
        });
        // The outer span fails because the inner one did: not a second error.
        outer.record("otel.status_code", "ERROR");
    });
    let errors = sink.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].message, "HTTP 500 Internal Server Error");
    assert_eq!(errors[0].innermost_span(), Some("inner"));
    let spans = sink.spans();
    assert_eq!(span(&spans, "inner").kind, SpanKind::Server);
    assert_eq!(span(&spans, "outer").status, Status::Error);
}

#[test]
fn composes_with_fmt_and_env_filter() {
    let sink = MemorySink::new();
    let (omegi, guard) = omegi_layer::layer("svc").with_sink(sink.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
        .with(omegi);
    tracing::subscriber::with_default(subscriber, || {
        info_span!("kept").in_scope(|| {
            tracing::debug_span!("filtered").in_scope(|| info!("inside filtered"));
        });
    });
    assert!(guard.flush(Duration::from_secs(5)));
    let spans = sink.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "kept");
    // The event's span was filtered out, so it lands in the nearest enabled one.
    assert_eq!(spans[0].events[0].message, "inside filtered");
}

#[test]
fn context_follows_instrumented_futures_across_spawn() {
    use tracing::Instrument;
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(
            async {
                let task = tokio::spawn(
                    async {
                        tokio::task::yield_now().await;
                        info!("in spawned task");
                    }
                    .instrument(info_span!("spawned")),
                );
                task.await.unwrap();
            }
            .instrument(info_span!("parent")),
        );
    });
    let spans = sink.spans();
    let parent = span(&spans, "parent");
    let spawned = span(&spans, "spawned");
    assert_eq!(spawned.trace_id, parent.trace_id);
    assert_eq!(spawned.parent_span_id, Some(parent.span_id));
    assert_eq!(spawned.events[0].message, "in spawned task");
}

#[test]
fn otel_name_and_kind_fields_are_honoured() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        info_span!("request", otel.name = "GET /orders", otel.kind = "client").in_scope(|| {});
    });
    let spans = sink.spans();
    assert_eq!(spans[0].name, "GET /orders");
    assert_eq!(spans[0].kind, SpanKind::Client);
    assert!(spans[0].attribute("otel.name").is_none());
}

#[test]
fn a_span_shares_nothing_with_the_span_before_it() {
    // The exporter hands finished span data back for reuse: a new span must
    // start empty, whatever the previous one held, fields beyond those kept
    // inline included.
    let sink = MemorySink::new();
    let (layer, guard) = omegi_layer::layer("svc").with_sink(sink.clone()).build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for round in 0..3 {
            info_span!(
                "first",
                otel.name = "GET /first",
                otel.kind = "server",
                otel.status_code = "error",
                otel.status_message = "went wrong",
                round,
                // More fields than are kept inline: the reused data keeps
                // the room it grew, and none of them.
                sku = "A-1",
                qty = 2u64,
                price = 9.5
            )
            .in_scope(|| info!("inside first"));
            assert!(guard.flush(Duration::from_secs(5)));
            info_span!("second").in_scope(|| {});
            assert!(guard.flush(Duration::from_secs(5)));
        }
    });
    let spans = sink.spans();
    assert_eq!(spans.len(), 6);
    let firsts: Vec<_> = spans.iter().filter(|s| s.name == "GET /first").collect();
    let seconds: Vec<_> = spans.iter().filter(|s| s.name == "second").collect();
    assert_eq!((firsts.len(), seconds.len()), (3, 3));
    for first in &firsts {
        assert_eq!(first.status, Status::Error);
        assert_eq!(first.kind, SpanKind::Server);
        assert_eq!(first.events.len(), 1);
    }
    for second in seconds {
        assert_eq!(second.status, Status::Unset, "{second:?}");
        assert_eq!(second.status_message, None);
        assert_eq!(second.kind, SpanKind::Internal);
        assert!(second.attributes.is_empty(), "{second:?}");
        assert!(second.events.is_empty(), "{second:?}");
        assert!(second.parent_span_id.is_none());
        assert!(firsts.iter().all(|f| f.trace_id != second.trace_id));
    }
}

#[test]
fn a_recorded_field_replaces_the_value_given_at_creation() {
    let (sink, _guard) = capture(omegi_layer::layer("svc"), || {
        let step = info_span!("step", attempt = 1u64, state = "new");
        step.record("attempt", 2u64);
        step.record("state", "done");
        step.record("attempt", 3u64);
    });
    let spans = sink.spans();
    let step = span(&spans, "step");
    let attempts = step.attributes.iter().filter(|a| a.key == "attempt");
    assert_eq!(attempts.count(), 1, "{:?}", step.attributes);
    assert_eq!(step.attribute("attempt"), Some(&Value::I64(3)));
    assert_eq!(step.attribute("state"), Some(&Value::from("done")));
}
