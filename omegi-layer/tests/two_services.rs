//! Two services in one test process: A calls B over loopback HTTP, B fails.
//! Each service runs on its own thread with its own runtime and subscriber,
//! as separate processes would.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use omegi_core::{SpanKind, SpanRecord, Status};
use omegi_layer::propagation::{RequestBuilderExt, ServerTraceLayer};
use omegi_layer::MemorySink;
use tracing_subscriber::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("card issuer unreachable")]
struct IssuerError(#[source] std::io::Error);

#[derive(Debug, thiserror::Error)]
#[error("payment declined")]
struct Declined(#[source] IssuerError);

#[tracing::instrument]
async fn charge(order: u64) -> StatusCode {
    tracing::info!(order, "charging card");
    let err = Declined(IssuerError(std::io::Error::other("timed out")));
    tracing::error!(error = &err as &dyn std::error::Error, "charge failed");
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn checkout(State(b): State<SocketAddr>) -> StatusCode {
    tracing::info!("forwarding to payment");
    let response = reqwest::Client::new()
        .get(format!("http://{b}/charge"))
        .send_traced()
        .await;
    match response {
        Ok(r) if r.status().is_success() => StatusCode::OK,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Runs `app` as service `name` on its own thread; returns its address and
/// what it captured (once `stop` is sent).
fn spawn_service(
    name: &'static str,
    app: Router,
    stop: mpsc::Receiver<()>,
) -> (SocketAddr, std::thread::JoinHandle<MemorySink>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let sink = MemorySink::new();
        let (layer, guard) = omegi_layer::layer(name).with_sink(sink.clone()).build();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let server = axum::serve(listener, app.layer(ServerTraceLayer::new()));
                let stop = async move {
                    tokio::task::spawn_blocking(move || stop.recv()).await.ok();
                };
                tokio::time::timeout(Duration::from_secs(30), server.with_graceful_shutdown(stop))
                    .await
                    .ok();
            });
        });
        assert!(guard.flush(Duration::from_secs(5)));
        sink
    });
    (addr_rx.recv().unwrap(), handle)
}

fn find<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[test]
fn one_trace_across_two_services() {
    let (stop_b_tx, stop_b) = mpsc::channel();
    let (b_addr, b) = spawn_service(
        "payment",
        Router::new().route("/charge", get(|| charge(42))),
        stop_b,
    );
    let (stop_a_tx, stop_a) = mpsc::channel();
    let app_a = Router::new()
        .route("/checkout", get(checkout))
        .with_state(b_addr);
    let (a_addr, a) = spawn_service("user", app_a, stop_a);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("http://{a_addr}/checkout"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY);
    stop_a_tx.send(()).unwrap();
    stop_b_tx.send(()).unwrap();
    let a = a.join().unwrap();
    let b = b.join().unwrap();

    let a_spans = a.spans();
    let b_spans = b.spans();
    let a_server = find(&a_spans, "GET /checkout");
    let a_client = find(&a_spans, "GET /charge");
    let b_server = find(&b_spans, "GET /charge");
    let b_charge = find(&b_spans, "charge");

    // One trace id across both services.
    let trace = a_server.trace_id;
    assert!(a_spans.iter().chain(&b_spans).all(|s| s.trace_id == trace));
    assert_eq!(
        a_server.parent_span_id, None,
        "the request came without context"
    );

    // B's server span is a child of A's client span, which is a child of A's server span.
    assert_eq!(a_client.parent_span_id, Some(a_server.span_id));
    assert_eq!(b_server.parent_span_id, Some(a_client.span_id));
    assert!(b_server.remote_parent);
    assert_eq!(b_charge.parent_span_id, Some(b_server.span_id));
    assert_eq!(
        (a_server.kind, a_client.kind, b_server.kind),
        (SpanKind::Server, SpanKind::Client, SpanKind::Server)
    );
    assert_eq!(a_server.service, "user");
    assert_eq!(b_server.service, "payment");

    // B's error record: source chain and span stack.
    let errors = b.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.message, "charge failed");
    assert_eq!(
        e.causes,
        ["payment declined", "card issuer unreachable", "timed out"]
    );
    let stack: Vec<&str> = e.span_stack.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(stack, ["GET /charge", "charge"]);
    assert_eq!(e.trace_id, Some(trace));
    assert_eq!(e.breadcrumbs[0].message, "charging card");
    assert_eq!(b_charge.status, Status::Error);
    assert_eq!(b_server.status, Status::Error);
    assert_eq!(
        b_server.status_message.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );

    // A's spans failed because of the 5xx; A reports no error of its own.
    assert_eq!(a_client.status, Status::Error);
    assert_eq!(
        a_client.attribute("http.response.status_code"),
        Some(&omegi_core::Value::I64(500))
    );
    assert_eq!(a_server.status, Status::Error);
    assert!(a.errors().is_empty(), "{:#?}", a.errors());
}

#[test]
fn tracestate_is_forwarded_and_invalid_context_starts_a_new_trace() {
    let (stop_tx, stop) = mpsc::channel();
    let echo = Router::new().route(
        "/echo",
        get(|| async {
            let mut headers = http::HeaderMap::new();
            omegi_layer::propagation::inject(&mut headers);
            let get = |k: &str| {
                headers
                    .get(k)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            format!("{}|{}", get("traceparent"), get("tracestate"))
        }),
    );
    let (addr, service) = spawn_service("echo", echo, stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call = |traceparent: &'static str, tracestate: &'static str| {
        runtime.block_on(async move {
            reqwest::Client::new()
                .get(format!("http://{addr}/echo"))
                .header("traceparent", traceparent)
                .header("tracestate", tracestate)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let joined = call(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
    );
    let (parent, state) = joined.split_once('|').unwrap();
    assert!(
        parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{parent}"
    );
    assert!(
        !parent.contains("00f067aa0ba902b7"),
        "our span is the new parent"
    );
    assert!(parent.ends_with("-01"), "{parent}");
    assert_eq!(state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

    // The caller's "not sampled" decision is forwarded; a tracestate with an
    // invalid member is discarded whole.
    let unsampled = call(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "congo=t61rcWkgMzE,Bad=1",
    );
    let (parent, state) = unsampled.split_once('|').unwrap();
    assert!(
        parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{parent}"
    );
    assert!(parent.ends_with("-00"), "{parent}");
    assert_eq!(state, "");

    let fresh = call(
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "congo=t61rcWkgMzE",
    );
    let (parent, state) = fresh.split_once('|').unwrap();
    assert!(
        !parent.contains("00000000000000000000000000000000"),
        "{parent}"
    );
    assert_eq!(parent.len(), 55);
    assert!(
        parent.ends_with("-01"),
        "a trace started here is sampled: {parent}"
    );
    assert_eq!(
        state, "",
        "tracestate is dropped with an invalid traceparent"
    );
    stop_tx.send(()).unwrap();
    let spans = service.join().unwrap().spans();
    assert_eq!(spans.len(), 3);
    for joined in &spans[..2] {
        assert_eq!(
            joined.parent_span_id.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
    }
    assert_eq!(spans[2].parent_span_id, None);
}
