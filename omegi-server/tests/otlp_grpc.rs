//! One table of OTLP requests, sent once over OTLP/HTTP to one server and
//! once over OTLP/gRPC (a tonic client on a real connection) to another:
//! each gets its mapped status (HTTP status and `google.rpc.Status` code,
//! gRPC code, retry info or none), the same partial success, and both
//! servers end up storing the same issues and traces.

mod common;

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omegi_server::otlp::Limits;
use omegi_server::server::ServeConfig;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use serde_json::Value;
use tonic::Code;

use common::grpc::{self, retry_delay};
use common::{kv, TestServer};

const BODY_LIMIT: usize = 64 * 1024;
const DECOMPRESSED_LIMIT: usize = 256 * 1024;
const MAX_SPANS: usize = 50;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

/// A span of `trace` (16 bytes) starting at `start_ns`, failed when
/// `error` is set (status error and an `exception` event).
fn span(trace: u8, id: u8, name: &str, start_ns: u64, error: Option<&str>) -> pt::Span {
    let mut span = pt::Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + 1_000_000,
        ..Default::default()
    };
    if let Some(message) = error {
        span.status = Some(pt::Status {
            code: 2,
            message: message.into(),
        });
        span.events.push(pt::span::Event {
            time_unix_nano: start_ns + 500_000,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", "PaymentDeclined"),
                kv("exception.message", message),
            ],
            ..Default::default()
        });
    }
    span
}

fn traces(service: &str, spans: Vec<pt::Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: resource(service),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs(service: &str, records: Vec<(i32, &str)>, at_ns: u64) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource(service),
            scope_logs: vec![pl::ScopeLogs {
                log_records: records
                    .into_iter()
                    .map(|(severity, body)| pl::LogRecord {
                        time_unix_nano: at_ns,
                        severity_number: severity,
                        severity_text: if severity >= 17 { "ERROR" } else { "INFO" }.into(),
                        body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                            value: Some(
                                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                    body.into(),
                                ),
                            ),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Ingest,
    Missing,
    Unknown,
    User,
}

/// What a case expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Stored, with this many records rejected in the partial success
    /// (`None`: no partial success).
    Ok(Option<i64>),
    /// Refused: the HTTP status, the `Status` code (the same over gRPC),
    /// whether a retry is invited.
    Refused(u16, Code, bool),
}

struct Case {
    name: &'static str,
    signal: Signal,
    token: Token,
    body: Vec<u8>,
    /// Sent gzip-compressed (HTTP `Content-Encoding`, gRPC compression).
    gzip: bool,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let now = now_ns();
    let minute_ago = now - 60_000_000_000;
    let in_two_hours = now + 7_200_000_000_000;
    let valid = traces(
        "checkout",
        vec![
            span(1, 1, "checkout", minute_ago, None),
            span(1, 2, "charge", minute_ago + 1_000, Some("card declined")),
        ],
    );
    let mut bad_id = span(4, 1, "lookup", minute_ago, Some("not found"));
    bad_id.trace_id = vec![7; 3];
    let many: Vec<pt::Span> = (0..=MAX_SPANS as u8)
        .map(|i| span(5, i + 1, "step", minute_ago, None))
        .collect();
    let bomb = gzip(&vec![0u8; DECOMPRESSED_LIMIT * 4]);
    vec![
        Case {
            name: "valid traces with a failed span",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: valid.clone(),
            gzip: false,
            expect: Expect::Ok(None),
        },
        Case {
            name: "the same request again changes nothing",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: valid,
            gzip: false,
            expect: Expect::Ok(None),
        },
        Case {
            name: "gzip traces",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: traces(
                "inventory",
                vec![span(2, 1, "reserve", minute_ago, Some("out of stock"))],
            ),
            gzip: true,
            expect: Expect::Ok(None),
        },
        Case {
            name: "logs with an ERROR record",
            signal: Signal::Logs,
            token: Token::Ingest,
            body: logs(
                "billing",
                vec![(9, "invoice sent"), (17, "ledger unreachable")],
                minute_ago,
            ),
            gzip: false,
            expect: Expect::Ok(None),
        },
        Case {
            name: "partial success: a span two hours ahead",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: traces(
                "shipping",
                vec![
                    span(3, 1, "ship", minute_ago, Some("carrier down")),
                    span(3, 2, "label", in_two_hours, None),
                ],
            ),
            gzip: false,
            expect: Expect::Ok(Some(1)),
        },
        Case {
            name: "malformed protobuf",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01],
            gzip: false,
            expect: Expect::Refused(400, Code::InvalidArgument, false),
        },
        Case {
            name: "a trace id of 3 bytes",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: traces("search", vec![bad_id]),
            gzip: false,
            expect: Expect::Refused(400, Code::InvalidArgument, false),
        },
        Case {
            name: "more spans than the decode budget",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: traces("batch", many),
            gzip: false,
            expect: Expect::Refused(400, Code::ResourceExhausted, false),
        },
        Case {
            name: "a message over the body limit",
            signal: Signal::Logs,
            token: Token::Ingest,
            body: logs("bulk", vec![(17, &"x".repeat(BODY_LIMIT))], minute_ago),
            gzip: false,
            expect: Expect::Refused(413, Code::ResourceExhausted, false),
        },
        Case {
            name: "gzip over the decompressed limit",
            signal: Signal::Traces,
            token: Token::Ingest,
            body: bomb,
            // Already compressed: sent as is, labelled gzip.
            gzip: true,
            expect: Expect::Refused(413, Code::ResourceExhausted, false),
        },
        Case {
            name: "no token",
            signal: Signal::Traces,
            token: Token::Missing,
            body: traces("anon", vec![span(6, 1, "x", minute_ago, Some("boom"))]),
            gzip: false,
            expect: Expect::Refused(401, Code::Unauthenticated, false),
        },
        Case {
            name: "an unknown token",
            signal: Signal::Logs,
            token: Token::Unknown,
            body: logs("anon", vec![(17, "boom")], minute_ago),
            gzip: false,
            expect: Expect::Refused(401, Code::Unauthenticated, false),
        },
        Case {
            name: "a user token",
            signal: Signal::Traces,
            token: Token::User,
            body: traces("anon", vec![span(7, 1, "x", minute_ago, Some("boom"))]),
            gzip: false,
            expect: Expect::Refused(403, Code::PermissionDenied, false),
        },
    ]
}

async fn start() -> TestServer {
    TestServer::start_with(|config: ServeConfig| {
        let mut limits = Limits::default();
        limits.max_decompressed_bytes = DECOMPRESSED_LIMIT;
        limits.budget.max_spans = MAX_SPANS;
        config
            .body_limit(BODY_LIMIT)
            .limits(limits)
            .grpc_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await
}

fn token(server: &TestServer, token: Token) -> Option<&str> {
    match token {
        Token::Ingest => Some(&server.ingest),
        Token::Missing => None,
        Token::Unknown => Some("omegi_not_a_token"),
        Token::User => Some(&server.user),
    }
}

/// The rejected count of a success answer's partial success.
fn rejected(signal: Signal, body: &[u8]) -> Option<i64> {
    match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .expect("an ExportTraceServiceResponse")
            .partial_success
            .map(|p| p.rejected_spans),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .expect("an ExportLogsServiceResponse")
            .partial_success
            .map(|p| p.rejected_log_records),
    }
}

/// `google.rpc.Status` of an OTLP/HTTP refusal.
#[derive(Clone, PartialEq, prost::Message)]
struct HttpStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn over_http(server: &TestServer, case: &Case) {
    let path = match case.signal {
        Signal::Traces => "/v1/traces",
        Signal::Logs => "/v1/logs",
    };
    let mut request = server
        .http
        .post(format!("{}{path}", server.server.url()))
        .header("content-type", "application/x-protobuf");
    if let Some(token) = token(server, case.token) {
        request = request.bearer_auth(token);
    }
    let body = if case.gzip && case.name != "gzip over the decompressed limit" {
        gzip(&case.body)
    } else {
        case.body.clone()
    };
    if case.gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.body(body).send().await.expect("an HTTP answer");
    let status = response.status().as_u16();
    let retry = response.headers().contains_key("retry-after");
    let bytes = response.bytes().await.expect("a body");
    match case.expect {
        Expect::Ok(partial) => {
            assert_eq!(
                status,
                200,
                "HTTP {}: {:?}",
                case.name,
                HttpStatus::decode(&*bytes)
            );
            assert_eq!(rejected(case.signal, &bytes), partial, "HTTP {}", case.name);
        }
        Expect::Refused(http, code, retryable) => {
            assert_eq!(status, http, "HTTP {}", case.name);
            let body = HttpStatus::decode(&*bytes).expect("a google.rpc.Status body");
            assert_eq!(
                body.code, code as i32,
                "HTTP {}: {}",
                case.name, body.message
            );
            assert_eq!(retry, retryable, "HTTP {} Retry-After", case.name);
        }
    }
}

async fn over_grpc(server: &TestServer, case: &Case) {
    let addr = server.server.grpc_addr().expect("a gRPC listener");
    let path = match case.signal {
        Signal::Traces => grpc::TRACES,
        Signal::Logs => grpc::LOGS,
    };
    let channel = grpc::channel(addr).await;
    let body = if case.name == "gzip over the decompressed limit" {
        // tonic compresses what it sends: the bomb's payload itself.
        vec![0u8; DECOMPRESSED_LIMIT * 4]
    } else {
        case.body.clone()
    };
    let answer = grpc::export(channel, path, token(server, case.token), body, case.gzip).await;
    match (case.expect, answer) {
        (Expect::Ok(partial), Ok(bytes)) => {
            assert_eq!(rejected(case.signal, &bytes), partial, "gRPC {}", case.name);
        }
        (Expect::Refused(_, code, retryable), Err(status)) => {
            assert_eq!(
                status.code(),
                code,
                "gRPC {}: {}",
                case.name,
                status.message()
            );
            assert_eq!(
                retry_delay(&status).is_some(),
                retryable,
                "gRPC {} RetryInfo",
                case.name
            );
        }
        (expect, answer) => panic!("gRPC {}: expected {expect:?}, got {answer:?}", case.name),
    }
}

/// What a server stored, as its API shows it: issues (id, title, count,
/// status, services) and trace summaries.
async fn stored(server: &TestServer) -> (Vec<Value>, Vec<Value>) {
    let get = |path: &str| {
        let request = server
            .http
            .get(format!("{}{path}", server.server.url()))
            .bearer_auth(&server.user);
        async move {
            request
                .send()
                .await
                .expect("an API answer")
                .error_for_status()
                .expect("200")
                .json::<Vec<Value>>()
                .await
                .expect("a JSON list")
        }
    };
    let mut issues: Vec<Value> = get("/api/issues?status=all")
        .await
        .into_iter()
        .map(|issue| {
            serde_json::json!({
                "id": issue["id"],
                "title": issue["title"],
                "count": issue["count"],
                "status": issue["status"],
                "services": issue["services"],
            })
        })
        .collect();
    issues.sort_by_key(|issue| issue["id"].to_string());
    let mut traces = get("/api/traces?since=7d&limit=1000").await;
    traces.sort_by_key(|trace| trace["trace_id"].to_string());
    (issues, traces)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_grpc_answer_and_store_the_same() {
    let (http_server, grpc_server) = (start().await, start().await);
    for case in cases() {
        over_http(&http_server, &case).await;
        over_grpc(&grpc_server, &case).await;
    }
    let (http_issues, http_traces) = stored(&http_server).await;
    let (grpc_issues, grpc_traces) = stored(&grpc_server).await;
    // What the accepted cases hold: checkout, inventory, billing (from its
    // log) and shipping failed, once each despite the repeated request.
    assert_eq!(http_issues.len(), 4, "{http_issues:#?}");
    assert!(
        http_issues.iter().all(|issue| issue["count"] == 1),
        "{http_issues:#?}"
    );
    assert_eq!(http_traces.len(), 3, "{http_traces:#?}");
    // Both transports stored exactly the same.
    assert_eq!(grpc_issues, http_issues);
    assert_eq!(grpc_traces, http_traces);
    for server in [http_server, grpc_server] {
        server.server.shutdown().await.expect("a clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_asks_grpc_clients_to_retry() {
    // Room for one body of 1,000 bytes, waited for up to 5 s: a request
    // that arrives while another body holds the room for longer is refused
    // with a retry delay. The wait also lets the held body get the room
    // after a probe that came first, whatever the order on a busy machine.
    // The held body has a minute before the rate counts.
    let rate = omegi_server::api::BodyRate {
        grace: Duration::from_secs(60),
        min_bytes_per_second: 16 * 1024,
    };
    let server = TestServer::start_with(|config| {
        config
            .ingest_limit(1, Duration::from_secs(5))
            .body_limit(1000)
            .bodies_in_flight(Some(1000), Some(1000))
            .connection_timeouts(Duration::from_secs(60), rate)
            .grpc_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await;
    let addr = server.server.grpc_addr().expect("a gRPC listener");
    // The first request announces 1,000 bytes, takes the room for them and
    // never finishes its body.
    let held = tokio::net::TcpStream::connect(server.server.local_addr())
        .await
        .expect("connects");
    let (_read, mut write) = held.into_split();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: omegi\r\nauthorization: Bearer {}\r\n\
         content-type: application/x-protobuf\r\ncontent-length: 1000\r\n\r\nxx",
        server.ingest
    );
    tokio::io::AsyncWriteExt::write_all(&mut write, head.as_bytes())
        .await
        .expect("sends");
    // The room is taken once the server reads the body; poll until the
    // gRPC request is refused as busy (bounded by a deadline).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let body = traces("late", vec![span(9, 1, "x", now_ns() - 1_000, None)]);
        let answer = grpc::export(
            grpc::channel(addr).await,
            grpc::TRACES,
            Some(&server.ingest),
            body,
            false,
        )
        .await;
        match answer {
            Err(status) if status.code() == Code::ResourceExhausted => break status,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never refused as busy: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(retry_delay(&status), Some(1), "{status:?}");
    drop(write);
    server.server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_stalls_is_cut_off_with_deadline_exceeded() {
    let rate = omegi_server::api::BodyRate {
        grace: Duration::from_secs(2),
        min_bytes_per_second: 16 * 1024,
    };
    let server = TestServer::start_with(|config| {
        config
            .ingest_limit(1, Duration::from_millis(200))
            .connection_timeouts(Duration::from_secs(30), rate)
            .grpc_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await;
    let addr = server.server.grpc_addr().expect("a gRPC listener");
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{}", grpc::TRACES))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", server.ingest))
        .body(())
        .expect("a request");
    let (response, mut message) = client.send_request(request, false).expect("sent");
    // A message of 1000 bytes announced, 3 sent, then nothing.
    message
        .send_data(
            bytes::Bytes::from_static(&[0, 0, 0, 3, 232, 1, 2, 3]),
            false,
        )
        .expect("sent");
    // While it stalls it holds no turn: with one slot in all, a whole
    // message of the same project is stored meanwhile.
    let stored = grpc::export(
        grpc::channel(addr).await,
        grpc::TRACES,
        Some(&server.ingest),
        traces("beside", vec![span(10, 1, "ok", now_ns() - 1_000, None)]),
        false,
    )
    .await;
    assert!(stored.is_ok(), "{stored:?}");
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("answered within 30 s")
        .expect("a response");
    let mut status = response.headers().get("grpc-status").cloned();
    if status.is_none() {
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            chunk.expect("data");
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers");
        status = trailers.get("grpc-status").cloned();
    }
    assert_eq!(
        status.as_ref().and_then(|s| s.to_str().ok()),
        Some("4"),
        "DEADLINE_EXCEEDED expected: {status:?}"
    );
    drop(message);
    server.server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_are_unimplemented() {
    let server = TestServer::start_with(|config| {
        config.grpc_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await;
    let addr = server.server.grpc_addr().expect("a gRPC listener");
    let answer = grpc::export(
        grpc::channel(addr).await,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Some(&server.ingest),
        Vec::new(),
        false,
    )
    .await;
    assert_eq!(answer.expect_err("no metrics").code(), Code::Unimplemented);
    server.server.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_http_listener_serves_otlp_only_and_every_listener_can_be_off() {
    let server = TestServer::start_with(|config| {
        config
            .listen(None)
            .otlp_http_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await;
    let otlp = server
        .server
        .otlp_http_addr()
        .expect("an OTLP/HTTP listener");
    assert_eq!(server.server.api_addr(), None);
    assert_eq!(server.server.grpc_addr(), None);
    assert_eq!(server.server.local_addr(), otlp);
    let body = traces(
        "edge",
        vec![span(8, 1, "route", now_ns() - 1_000_000, Some("boom"))],
    );
    let accepted = server
        .http
        .post(format!("http://{otlp}/v1/traces"))
        .bearer_auth(&server.ingest)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(accepted.status(), 200);
    let api = server
        .http
        .get(format!("http://{otlp}/api/health"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        api.status(),
        404,
        "the API is not on the OTLP/HTTP listener"
    );
    server.server.shutdown().await.expect("a clean shutdown");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let none =
        ServeConfig::new(dir.path(), "127.0.0.1:0".parse().expect("an address")).listen(None);
    let error = omegi_server::server::Server::start(none)
        .await
        .expect_err("nothing to listen on");
    assert!(
        error.to_string().contains("every listener is off"),
        "{error}"
    );
}
