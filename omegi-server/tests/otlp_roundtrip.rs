//! Records sent by the layer's `OtlpSink` and decoded by `omegi_server::otlp`
//! come back as they were: a three-service trace with a failing payment.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use omegi_core::{
    Attribute, CodeLocation, ErrorKind, ErrorRecord, EventRecord, Level, Record, Resource,
    SpanFrame, SpanId, SpanKind, SpanRecord, Status, TraceId,
};
use omegi_layer::sink::{OtlpSink, Sink};
use omegi_server::otlp::{self, Decoded, Limits};

#[derive(Default)]
struct Received {
    traces: Vec<Decoded>,
    logs: Vec<Decoded>,
    authorization: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    state: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    logs: bool,
) -> (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    Vec<u8>,
) {
    let content_type = header(headers, CONTENT_TYPE).unwrap_or("");
    let encoding = header(headers, CONTENT_ENCODING);
    let decoded = if logs {
        otlp::decode_logs(body, content_type, encoding, &Limits::default())
    } else {
        otlp::decode_traces(body, content_type, encoding, &Limits::default())
    };
    match decoded {
        Ok(decoded) => {
            let (ct, response) = if logs {
                otlp::logs_response(&decoded, content_type)
            } else {
                otlp::traces_response(&decoded, content_type)
            };
            let mut received = state.lock().expect("no panic while holding the lock");
            if let Some(auth) = header(headers, AUTHORIZATION) {
                received.authorization.push(auth.to_owned());
            }
            if logs {
                received.logs.push(decoded);
            } else {
                received.traces.push(decoded);
            }
            (StatusCode::OK, [(CONTENT_TYPE, ct)], response)
        }
        Err(err) => {
            let (ct, response) = otlp::error_response(&err, content_type);
            let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, [(CONTENT_TYPE, ct)], response)
        }
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1 with an ephemeral port, on its own
/// thread and runtime; stops when the sender is dropped or fires.
fn start_receiver() -> (
    SocketAddr,
    Shared,
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<()>,
) {
    let state: Shared = Arc::default();
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app_state = state.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/v1/traces",
                    post(
                        |State(s): State<Shared>, h: HeaderMap, b: Bytes| async move {
                            receive(&s, &h, &b, false).await
                        },
                    ),
                )
                .route(
                    "/v1/logs",
                    post(
                        |State(s): State<Shared>, h: HeaderMap, b: Bytes| async move {
                            receive(&s, &h, &b, true).await
                        },
                    ),
                )
                .with_state(app_state);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            addr_tx
                .send(listener.local_addr().expect("a local address"))
                .expect("the test waits for the address");
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("the server runs");
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the receiver starts");
    (addr, state, stop_tx, thread)
}

const TRACE: TraceId = TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736);
const T0: u64 = 1_700_000_000_000_000_000;

fn resource(service: &str) -> Resource {
    Resource::new(service).with_attributes(vec![
        Attribute::new("deployment.environment", "test"),
        Attribute::new("service.instance.id", format!("{service}-1")),
    ])
}

#[allow(clippy::too_many_arguments)]
fn span(
    service: &str,
    name: &str,
    id: u64,
    parent: Option<u64>,
    remote_parent: bool,
    kind: SpanKind,
    start: u64,
    end: u64,
) -> SpanRecord {
    let mut span = SpanRecord::new(TRACE, SpanId(id), name.to_owned(), T0 + start, T0 + end)
        .with_parent(parent.map(SpanId))
        .with_service(service)
        .with_target(format!("{service}::http"))
        .with_kind(kind);
    span.remote_parent = remote_parent;
    span
}

fn event(
    time: u64,
    level: Level,
    target: &str,
    message: &str,
    fields: Vec<Attribute>,
) -> EventRecord {
    EventRecord::new(T0 + time, level, message)
        .with_target(target.to_owned())
        .with_fields(fields)
}

/// gateway → inventory → payment; the payment fails.
fn flow() -> Vec<(Resource, Vec<Record>)> {
    let mut checkout = span(
        "gateway",
        "GET /checkout",
        0x10,
        None,
        false,
        SpanKind::Server,
        0,
        9_000,
    );
    checkout.attributes = vec![
        Attribute::new("http.method", "GET"),
        Attribute::new("http.status_code", 502i64),
        Attribute::new("user.vip", true),
    ];
    checkout.status = Status::Error;
    checkout.status_message = Some("bad gateway".into());
    let mut call_inventory = span(
        "gateway",
        "POST /reserve",
        0x11,
        Some(0x10),
        false,
        SpanKind::Client,
        100,
        8_900,
    );
    call_inventory.events = vec![event(
        150,
        Level::Info,
        "gateway::http",
        "sending",
        vec![Attribute::new("bytes", 512i64)],
    )];

    let mut reserve = span(
        "inventory",
        "reserve",
        0x20,
        Some(0x11),
        true,
        SpanKind::Server,
        200,
        8_800,
    );
    reserve.level = Level::Debug;
    reserve.attributes = vec![Attribute::new("sku", "A-17"), Attribute::new("ratio", 0.25)];
    reserve.location = CodeLocation {
        file: Some("inventory/src/api.rs".into()),
        line: Some(31),
        module: Some("inventory::api".into()),
    };
    let mut call_payment = span(
        "inventory",
        "POST /charge",
        0x21,
        Some(0x20),
        false,
        SpanKind::Client,
        300,
        8_700,
    );
    call_payment.dropped_events = 2;

    let calling_issuer = event(
        500,
        Level::Warn,
        "payment::issuer",
        "calling issuer",
        vec![Attribute::new("attempt", 2i64)],
    )
    .with_location(CodeLocation {
        file: Some("payment/src/issuer.rs".into()),
        line: Some(88),
        module: Some("payment::issuer".into()),
    });
    let mut charge = span(
        "payment",
        "charge",
        0x30,
        Some(0x21),
        true,
        SpanKind::Server,
        400,
        8_600,
    );
    charge.attributes = vec![
        Attribute::new("order.id", 42i64),
        Attribute::new("amount", 12.5),
    ];
    charge.events = vec![calling_issuer.clone()];
    charge.status = Status::Error;
    charge.status_message = Some("charge failed".into());

    let charge_error = ErrorRecord::new("charge failed", T0 + 8_500)
        .with_trace_id(TRACE)
        .with_span_id(SpanId(0x30))
        .with_service("payment")
        .with_causes(vec![
            "card declined by issuer".into(),
            "connection reset by peer".into(),
        ])
        .with_error_type("payment::ChargeError")
        .with_target("payment::api")
        .with_fields(vec![
            Attribute::new("order.id", 42i64),
            Attribute::new("retryable", false),
        ])
        .with_span_stack(vec![SpanFrame::new(SpanId(0x30), "charge")
            .with_target("payment::http")
            .with_fields(vec![
                Attribute::new("order.id", 42i64),
                Attribute::new("amount", 12.5),
            ])])
        .with_breadcrumbs(vec![calling_issuer])
        .with_location(CodeLocation {
            file: Some("payment/src/api.rs".into()),
            line: Some(120),
            module: Some("payment::api".into()),
        })
        .with_thread("tokio-runtime-worker")
        .with_fingerprint("payment-declined");
    let startup_panic = ErrorRecord::new("config missing", T0 + 9_500)
        .with_service("payment")
        .with_kind(ErrorKind::Panic)
        .with_target("payment::main");

    vec![
        (
            resource("gateway"),
            vec![Record::Span(checkout), Record::Span(call_inventory)],
        ),
        (
            resource("inventory"),
            vec![Record::Span(reserve), Record::Span(call_payment)],
        ),
        (
            resource("payment"),
            vec![
                Record::Span(charge),
                Record::Error(charge_error),
                Record::Error(startup_panic),
            ],
        ),
    ]
}

fn split(records: impl IntoIterator<Item = Record>) -> (Vec<SpanRecord>, Vec<ErrorRecord>) {
    let mut spans = Vec::new();
    let mut errors = Vec::new();
    for record in records {
        match record {
            Record::Span(s) => spans.push(s),
            Record::Error(e) => errors.push(e),
        }
    }
    spans.sort_by_key(|s| s.span_id);
    errors.sort_by_key(|e| e.time_ns);
    (spans, errors)
}

#[test]
fn records_survive_the_otlp_round_trip() {
    let (addr, received, stop, server) = start_receiver();
    let mut sink = OtlpSink::builder()
        .endpoint(format!("http://{addr}/"))
        .bearer_token("s3cret")
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a valid endpoint");

    let flow = flow();
    for (resource, records) in &flow {
        sink.export(records.clone(), resource)
            .expect("the receiver accepts");
    }
    sink.flush().expect("nothing pending");
    let _ = stop.send(());
    server.join().expect("the receiver stops");

    let received = received.lock().expect("the server thread has ended");
    // One request per signal and service: 3 trace batches, 1 log batch.
    assert_eq!(received.traces.len(), 3);
    assert_eq!(received.logs.len(), 1);
    assert!(received.authorization.iter().all(|a| a == "Bearer s3cret"));
    assert_eq!(received.authorization.len(), 4);

    for decoded in received.traces.iter().chain(&received.logs) {
        assert_eq!(decoded.rejected, 0);
        assert_eq!(decoded.resources.len(), 1);
        let resource = &decoded.resources[0].resource;
        let original = &flow
            .iter()
            .find(|(r, _)| r.service == resource.service)
            .expect("a service that was sent")
            .0;
        for attribute in &original.attributes {
            assert!(
                resource.attributes.contains(attribute),
                "{attribute:?} in {resource:?}"
            );
        }
        assert!(resource
            .attributes
            .contains(&Attribute::new("telemetry.sdk.name", "omegi")));
    }

    let sent = split(flow.into_iter().flat_map(|(_, records)| records));
    let got = split(
        received
            .traces
            .iter()
            .chain(&received.logs)
            .flat_map(|d| d.records().map(|(_, r)| r.clone())),
    );
    // Spans: ids, parents, names, kinds, times, attributes, events, status, locations.
    assert_eq!(got.0.len(), 5);
    for (got, sent) in got.0.iter().zip(&sent.0) {
        assert_eq!(got, sent);
    }
    // Errors: message, causes, type, fingerprint, span stack, breadcrumbs,
    // kind, thread, location and fields; and no extra error from the failed
    // spans, which Omegi reports through its error log records.
    assert_eq!(got.1.len(), 2);
    for (got, sent) in got.1.iter().zip(&sent.1) {
        assert_eq!(got, sent);
    }
}

#[test]
fn an_unreachable_endpoint_is_a_sink_error() {
    // Bind and drop a listener to get a port on which nothing listens.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut sink = OtlpSink::builder()
        .endpoint(format!("http://{addr}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a valid endpoint");
    let (resource, records) = flow().remove(0);
    let err = sink.export(records, &resource).unwrap_err();
    assert!(err.to_string().contains("OTLP span export failed"), "{err}");
}
