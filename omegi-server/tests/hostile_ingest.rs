//! A hostile client holding one ingest token: each ingest row of the
//! table in issue 13, at a size that runs in seconds.
//!
//! What is asserted is what a user relies on: the status code and the OTLP
//! `Status` body of a refusal, that nothing of a refused request was stored,
//! that memory stayed bounded (the peak RSS of a real `omegi serve` child,
//! `VmHWM` in `/proc/<pid>/status`, and the bytes a counting allocator sees
//! around in-process decode calls), and that cost grows linearly with the
//! input (allocated bytes and stored sizes, never wall-clock time).
//! Property tests feed arbitrary bytes and mutated valid requests to both
//! decoders.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use omegi_core::limits::DROPPED_ATTRIBUTES;
use omegi_core::Record;
use omegi_server::api::views::{IssueView, StatsView, TraceView};
use omegi_server::api::BodyRate;
use omegi_server::otlp::{self, DecodeBudget, DecodeError, Decoded, Limits};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Value};

use common::{kv, TestServer};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const LIMIT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------- counting allocator

/// Counts, per thread and only while a [`measure`] runs on it, the bytes
/// allocated and the peak of the bytes live.
struct Counting;

struct Tracker {
    on: Cell<bool>,
    live: Cell<isize>,
    peak: Cell<isize>,
    total: Cell<usize>,
}

thread_local! {
    static TRACKER: Tracker = const {
        Tracker {
            on: Cell::new(false),
            live: Cell::new(0),
            peak: Cell::new(0),
            total: Cell::new(0),
        }
    };
}

fn record(delta: isize) {
    let _ = TRACKER.try_with(|t| {
        if t.on.get() {
            let live = t.live.get() + delta;
            t.live.set(live);
            t.peak.set(t.peak.get().max(live));
            if delta > 0 {
                t.total.set(t.total.get() + delta as usize);
            }
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the sizes are counted, in a thread-local that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory a call took on this thread.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// The most bytes live at once, above what was live before.
    peak: u64,
    /// All bytes allocated.
    total: u64,
}

fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    TRACKER.with(|t| {
        t.live.set(0);
        t.peak.set(0);
        t.total.set(0);
        t.on.set(true);
    });
    let result = f();
    let usage = TRACKER.with(|t| {
        t.on.set(false);
        Usage {
            peak: t.peak.get().max(0) as u64,
            total: t.total.get() as u64,
        }
    });
    (result, usage)
}

// ---------------------------------------------------------------- requests

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

fn traces(service: &str, spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
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
}

fn span(trace: u128, id: u64, parent: Option<u64>, name: &str, start: u64) -> pt::Span {
    pt::Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(1_000_000),
        ..Default::default()
    }
}

fn exception(time: u64, message: &str) -> pt::span::Event {
    pt::span::Event {
        time_unix_nano: time,
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", "Boom"),
            kv("exception.message", message),
        ],
        dropped_attributes_count: 0,
    }
}

/// `ExportTraceServiceRequest` { resource_spans { scope_spans { spans × n } } }
/// with every span empty, written on the wire by hand: 2 bytes a span.
fn empty_spans_protobuf(n: usize) -> Vec<u8> {
    fn len_field(tag: u8, payload_len: usize, out: &mut Vec<u8>) {
        out.push(tag);
        let mut v = payload_len as u64;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let spans_len = 2 * n;
    let mut scope_head = Vec::new();
    len_field(0x12, spans_len, &mut scope_head); // ResourceSpans.scope_spans
    let mut request = Vec::with_capacity(spans_len + 16);
    len_field(0x0a, scope_head.len() + spans_len, &mut request); // .resource_spans
    request.extend_from_slice(&scope_head);
    for _ in 0..n {
        request.extend_from_slice(&[0x12, 0x00]); // ScopeSpans.spans: an empty span
    }
    request
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, flate2::Compression::fast())
}

fn gzip_at(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An OTLP answer's `google.rpc.Status`: (code, message).
fn status_of(content_type: &str, body: &[u8]) -> (i32, String) {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    if content_type.starts_with(JSON) {
        let v: Value = serde_json::from_slice(body).expect("a JSON Status");
        (
            v["code"].as_i64().expect("a code") as i32,
            v["message"].as_str().expect("a message").to_owned(),
        )
    } else {
        let s = RpcStatus::decode(body).expect("a protobuf Status");
        (s.code, s.message)
    }
}

fn spans_of(decoded: &Decoded) -> Vec<&omegi_core::SpanRecord> {
    decoded
        .records()
        .filter_map(|(_, r)| match r {
            Record::Span(s) => Some(s),
            Record::Error(_) => None,
        })
        .collect()
}

fn errors_of(decoded: &Decoded) -> Vec<&omegi_core::ErrorRecord> {
    decoded
        .records()
        .filter_map(|(_, r)| match r {
            Record::Error(e) => Some(e),
            Record::Span(_) => None,
        })
        .collect()
}

/// The size of what would be stored: the records as JSON.
fn stored_bytes(decoded: &Decoded) -> usize {
    decoded
        .records()
        .map(|(_, r)| serde_json::to_vec(r).unwrap().len())
        .sum()
}

// ---------------------------------------------------------------- a real omegi serve

/// `omegi serve` as a child process on 127.0.0.1 with a port of its choice
/// and a temporary data directory; killed when dropped.
struct ChildServer {
    child: Child,
    url: String,
    ingest: String,
    user: String,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl ChildServer {
    fn start(args: &[&str]) -> ChildServer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_omegi"))
            .arg("--data")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--otlp-http-listen", "off", "--grpc-listen", "off"])
            // Each request settles on arrival: what a test sent is stored
            // when it is answered.
            .args(["--trace-wait", "0"])
            .args(args)
            .env("OMEGI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("omegi starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut ingest, mut user) = (None, None, None);
        while url.is_none() || ingest.is_none() || user.is_none() {
            let line = lines
                .next()
                .expect("omegi prints its address and tokens")
                .unwrap();
            if let Some(rest) = line.split(" listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            } else if line.contains("ingest token:") {
                ingest = line.split_whitespace().last().map(str::to_owned);
            } else if line.contains("API token:") {
                user = line.split_whitespace().last().map(str::to_owned);
            }
        }
        ChildServer {
            child,
            url: url.unwrap(),
            ingest: ingest.unwrap(),
            user: user.unwrap(),
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// The child's peak resident memory, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the child's /proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM");
        kb * 1024
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Vec<u8>) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.ingest)
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.expect("omegi answers");
        let status = response.status().as_u16();
        let ct = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, response.bytes().await.unwrap().to_vec())
    }

    async fn api<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.user)
            .send()
            .await
            .expect("omegi answers");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- row 1: decode bomb

/// A request of `n` copies of one valid span (37 bytes each on the wire).
fn span_flood(n: usize) -> Vec<u8> {
    let one = span(0xf1, 1, None, "", now_ns());
    traces("flood", vec![one; n]).encode_to_vec()
}

#[test]
fn four_million_empty_spans_are_refused_before_decoding() {
    // The bomb of the issue: 7.8 KB of gzip, 8 MB of empty spans. The first
    // span has no trace id: refused there, before anything is decoded.
    let body = empty_spans_protobuf(4_000_000);
    assert_eq!(body.len(), 8_000_010);
    let compressed = gzip_at(&body, flate2::Compression::best());
    assert!(compressed.len() < 16 * 1024, "{}", compressed.len());
    let (result, usage) =
        measure(|| otlp::decode_traces(&compressed, PROTOBUF, Some("gzip"), &Limits::default()));
    let error = result.unwrap_err();
    assert!(error.to_string().starts_with("invalid trace id"), "{error}");
    assert_eq!(error.http_status(), 400);
    // The decompressed body (8 MB) and nothing more: no span was built
    // (they took 1.66 GB before).
    assert!(usage.peak < 32 * MIB, "{usage:?}");

    // With valid ids, the count of spans stops it: 500,000 spans (18 MB
    // decompressed) are refused at the 50,001st.
    let compressed = gzip(&span_flood(500_000));
    let (result, usage) =
        measure(|| otlp::decode_traces(&compressed, PROTOBUF, Some("gzip"), &Limits::default()));
    let error = result.unwrap_err();
    assert_eq!(
        error,
        DecodeError::OverBudget {
            cap: otlp::Cap::Spans,
            limit: 50_000
        }
    );
    assert_eq!(error.http_status(), 400);
    assert!(error.to_string().contains("max_spans"), "{error}");
    assert!(usage.peak < 64 * MIB, "{usage:?}");

    // JSON: 4 million `{}` are refused at the first, 200,000 valid spans
    // (22 MB) at the 50,001st, while they are parsed.
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec!["{}"; 4_000_000].join(",")
    );
    let compressed = gzip(json.as_bytes());
    let (result, usage) =
        measure(|| otlp::decode_traces(&compressed, JSON, Some("gzip"), &Limits::default()));
    assert!(
        matches!(result, Err(DecodeError::InvalidTraceId { .. })),
        "{result:?}"
    );
    assert!(usage.peak < 32 * MIB, "{usage:?}");
    let one = format!(
        r#"{{"traceId":"000000000000000000000000000000f1","spanId":"0000000000000001","startTimeUnixNano":"{}"}}"#,
        now_ns()
    );
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec![one; 200_000].join(",")
    );
    let compressed = gzip(json.as_bytes());
    let (result, usage) =
        measure(|| otlp::decode_traces(&compressed, JSON, Some("gzip"), &Limits::default()));
    assert!(
        matches!(
            result,
            Err(DecodeError::OverBudget {
                cap: otlp::Cap::Spans,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(usage.peak < 128 * MIB, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_gets_a_status_and_leaves_memory_and_store_alone() {
    tokio::time::timeout(LIMIT, async {
        let s = tokio::task::spawn_blocking(|| ChildServer::start(&[]))
            .await
            .unwrap();
        let bomb = gzip(&empty_spans_protobuf(4_000_000));
        let flood = gzip(&span_flood(500_000));
        // Warm up: one valid request, so the baseline includes a request.
        let t0 = now_ns();
        let valid = traces("warm-up", vec![span(7, 1, None, "ok", t0)]).encode_to_vec();
        assert_eq!(s.post("/v1/traces", PROTOBUF, None, valid).await.0, 200);
        let before = s.peak_rss();
        for _ in 0..2 {
            let (status, ct, body) = s
                .post("/v1/traces", PROTOBUF, Some("gzip"), bomb.clone())
                .await;
            assert_eq!(status, 400);
            let (code, message) = status_of(&ct, &body);
            assert_eq!(code, 3, "{message}");
            assert!(message.starts_with("invalid trace id"), "{message}");
            let (status, ct, body) = s
                .post("/v1/traces", PROTOBUF, Some("gzip"), flood.clone())
                .await;
            assert_eq!(status, 400);
            let (code, message) = status_of(&ct, &body);
            assert_eq!(code, 8, "{message}");
            assert!(message.contains("more than 50000 spans"), "{message}");
            assert!(message.contains("max_spans"), "{message}");
        }
        let after = s.peak_rss();
        // The bodies cost their decompressed size (8 and 18 MB) and what
        // the allocator keeps of them while the settle threads and the
        // store work beside (up to 107 MB seen on a loaded machine), no
        // more; before the budget, 1.66 GB.
        assert!(
            after - before < 128 * MIB,
            "peak RSS went from {before} to {after}"
        );
        assert!(after < 256 * MIB, "peak RSS {after}");
        let stats: StatsView = s.api("/api/stats").await;
        assert_eq!(stats.summary.spans, 1, "{stats:?}");
    })
    .await
    .expect("within the time limit");
}

#[test]
fn every_cap_of_the_budget_refuses_on_the_wire() {
    let t0 = now_ns();
    let attributes = |n: usize| {
        (0..n)
            .map(|i| kv(&format!("k{i}"), "v"))
            .collect::<Vec<_>>()
    };
    let nested = |depth: usize| {
        let mut value = AnyValue {
            value: Some(any_value::Value::StringValue("leaf".into())),
        };
        for _ in 0..depth {
            value = AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![value],
                    },
                )),
            };
        }
        KeyValue {
            key: "deep".into(),
            value: Some(value),
            key_strindex: 0,
        }
    };
    let mut budget = DecodeBudget::default();
    budget.max_resources = 2;
    budget.max_spans = 3;
    budget.max_events = 4;
    budget.max_links = 1;
    budget.max_attributes = 20;
    budget.max_attributes_per_item = 5;
    budget.max_value_depth = 3;
    budget.max_string_bytes = 4096;
    let mut limits = Limits::default();
    limits.budget = budget;
    let one = |mut s: pt::Span| {
        s.name = "x".into();
        traces("svc", vec![s])
    };
    let cases: Vec<(ExportTraceServiceRequest, otlp::Cap)> = vec![
        (
            ExportTraceServiceRequest {
                resource_spans: vec![Default::default(); 3],
            },
            otlp::Cap::Resources,
        ),
        (
            traces(
                "svc",
                (0..4).map(|i| span(1, i + 1, None, "s", t0)).collect(),
            ),
            otlp::Cap::Spans,
        ),
        (
            one(pt::Span {
                events: (0..5).map(|_| exception(t0, "m")).collect(),
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::Events,
        ),
        (
            one(pt::Span {
                links: vec![Default::default(); 2],
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::Links,
        ),
        (
            one(pt::Span {
                attributes: attributes(6),
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::AttributesPerItem,
        ),
        (
            // 5 attributes of the span and 5 of each event: the fourth
            // event makes 25.
            one(pt::Span {
                attributes: attributes(5),
                events: (0..4)
                    .map(|_| pt::span::Event {
                        attributes: attributes(5),
                        ..exception(t0, "m")
                    })
                    .collect(),
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::Attributes,
        ),
        (
            one(pt::Span {
                attributes: vec![nested(4)],
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::ValueDepth,
        ),
        (
            one(pt::Span {
                attributes: vec![kv("big", &"x".repeat(5000))],
                ..span(1, 1, None, "s", t0)
            }),
            otlp::Cap::StringBytes,
        ),
    ];
    for (request, cap) in cases {
        let body = request.encode_to_vec();
        let err = otlp::decode_traces(&body, PROTOBUF, None, &limits).unwrap_err();
        assert!(
            matches!(err, DecodeError::OverBudget { cap: c, .. } if c == cap),
            "{cap:?}: {err}"
        );
        assert!(err.to_string().contains(cap.name()), "{err}");
        let expected_status = if cap == otlp::Cap::StringBytes {
            413
        } else {
            400
        };
        assert_eq!(err.http_status(), expected_status, "{err}");
    }
    // Within every cap, the same kind of request is accepted.
    let ok = one(pt::Span {
        attributes: vec![nested(3)],
        events: vec![exception(t0, "m")],
        ..span(1, 1, None, "s", t0)
    });
    otlp::decode_traces(&ok.encode_to_vec(), PROTOBUF, None, &limits).unwrap();
}

#[test]
fn an_invalid_id_is_refused_before_the_rest_is_decoded() {
    let t0 = now_ns();
    let mut spans: Vec<pt::Span> = (0..20_000).map(|i| span(1, i + 1, None, "s", t0)).collect();
    spans[0].trace_id = vec![0; 16];
    let body = traces("svc", spans).encode_to_vec();
    let (result, usage) =
        measure(|| otlp::decode_traces(&body, PROTOBUF, None, &Limits::default()));
    let err = result.unwrap_err();
    assert!(err.to_string().starts_with("invalid trace id"), "{err}");
    // Refused by the scan: not one span decoded (a decoded span alone takes
    // more than its 40 bytes on the wire).
    assert!(
        usage.peak < body.len() as u64,
        "{usage:?} for {} bytes",
        body.len()
    );
}

// ---------------------------------------------------------------- row 2: 64,000 exception events

fn exception_span(events: usize) -> Vec<u8> {
    let t0 = now_ns();
    traces(
        "checkout",
        vec![pt::Span {
            events: (0..events as u64)
                .map(|i| exception(t0 + i, "card declined"))
                .collect(),
            status: Some(pt::Status {
                code: 2,
                message: "failed".into(),
            }),
            ..span(0xe1, 1, None, "charge", t0)
        }],
    )
    .encode_to_vec()
}

#[test]
fn a_span_with_64000_exception_events_keeps_128_events_and_32_errors() {
    let limits = Limits::default();
    let decode = |events: usize| {
        let body = exception_span(events);
        measure(|| otlp::decode_traces(&body, PROTOBUF, None, &limits).unwrap())
    };
    let (decoded, usage_64k) = decode(64_000);
    let spans = spans_of(&decoded);
    assert_eq!(spans[0].events.len(), 128);
    assert_eq!(spans[0].dropped_events, 64_000 - 128);
    let errors = errors_of(&decoded);
    assert_eq!(errors.len(), 32);
    assert_eq!(decoded.dropped_errors, 64_000 - 32);
    // Identical exceptions make one breadcrumb, not 50 copies.
    assert!(errors.iter().all(|e| e.breadcrumbs.len() <= 1));
    let message = decoded.partial_success_message().unwrap();
    assert!(message.contains("max_errors_per_span"), "{message}");
    let stored_64k = stored_bytes(&decoded);
    drop(decoded);

    // Twice the input, about twice the allocations (decoding the events is
    // linear); what is stored does not grow at all.
    let (decoded, usage_32k) = decode(32_000);
    let stored_32k = stored_bytes(&decoded);
    let ratio = usage_64k.total as f64 / usage_32k.total as f64;
    assert!((1.5..2.5).contains(&ratio), "{usage_32k:?} → {usage_64k:?}");
    assert!(
        stored_32k.abs_diff(stored_64k) < 64,
        "{stored_32k} → {stored_64k}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exception_storm_is_stored_cut_and_memory_stays_bounded() {
    tokio::time::timeout(LIMIT, async {
        let s = tokio::task::spawn_blocking(|| ChildServer::start(&["--read-items", "256"]))
            .await
            .unwrap();
        let body = exception_span(64_000);
        let before = s.peak_rss();
        let (status, ct, answer) = s.post("/v1/traces", PROTOBUF, None, body).await;
        assert_eq!(status, 200);
        let response =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
                answer.as_slice(),
            )
            .expect("an ExportTraceServiceResponse");
        assert_eq!(ct, PROTOBUF);
        let partial = response.partial_success.expect("a warning");
        assert_eq!(partial.rejected_spans, 0);
        assert!(
            partial.error_message.contains("63968 errors not derived"),
            "{partial:?}"
        );
        let after = s.peak_rss();
        assert!(
            after - before < 128 * MIB,
            "peak RSS from {before} to {after}"
        );
        let issues: Vec<IssueView> = s.api("/api/issues?status=all").await;
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].issue.count, 32);
        let trace: TraceView = s.api(&format!("/api/traces/{:032x}", 0xe1)).await;
        assert_eq!(trace.spans[0].span.events.len(), 128);
        assert_eq!(trace.spans[0].span.dropped_events, 64_000 - 128);
    })
    .await
    .expect("within the time limit");
}

// ---------------------------------------------------------------- row 3: a deep chain of failures

fn chain(depth: u64) -> Vec<u8> {
    let t0 = now_ns();
    let spans = (1..=depth)
        .map(|i| pt::Span {
            events: vec![exception(t0 + i, &format!("step {i} failed"))],
            ..span(
                0xc4a1,
                i,
                (i > 1).then(|| i - 1),
                &format!("step {i}"),
                t0 + i,
            )
        })
        .collect();
    traces("deep", spans).encode_to_vec()
}

#[test]
fn a_chain_of_nested_failures_costs_linear_time_and_space() {
    // Without the caps on copied context and errors per request, to see
    // the derivation itself.
    let mut limits = Limits::default();
    limits.max_error_context_bytes = usize::MAX;
    limits.max_errors_per_request = 10_000;
    let run = |depth: u64, limits: &Limits| {
        let body = chain(depth);
        let (decoded, usage) =
            measure(|| otlp::decode_traces(&body, PROTOBUF, None, limits).unwrap());
        (stored_bytes(&decoded), usage, decoded)
    };
    let (stored_1k, usage_1k, _) = run(1_000, &limits);
    let (stored_2k, usage_2k, decoded) = run(2_000, &limits);
    let errors = errors_of(&decoded);
    assert_eq!(errors.len(), 2_000);
    // The deepest error: the root, the 32 nearest frames, the rest counted.
    let deepest = errors
        .iter()
        .find(|e| e.message == "step 2000 failed")
        .unwrap();
    assert_eq!(deepest.span_stack.len(), 33);
    assert_eq!(deepest.span_stack[0].name, "step 1");
    assert_eq!(deepest.span_stack[1].name, "step 1969");
    assert_eq!(deepest.span_stack[32].name, "step 2000");
    assert_eq!(
        omegi_core::attribute(&deepest.fields, omegi_core::limits::DROPPED_FRAMES),
        Some(&omegi_core::Value::I64(2_000 - 33))
    );
    assert_eq!(deepest.breadcrumbs.len(), 50);
    // Twice the depth: about twice the allocations and the stored bytes,
    // not four times.
    let alloc_ratio = usage_2k.total as f64 / usage_1k.total as f64;
    let stored_ratio = stored_2k as f64 / stored_1k as f64;
    assert!(
        (1.7..2.4).contains(&alloc_ratio),
        "{usage_1k:?} → {usage_2k:?}"
    );
    assert!(
        (1.7..2.4).contains(&stored_ratio),
        "{stored_1k} → {stored_2k}"
    );

    // With the default cap, the copies stop at 8 MiB (as estimated): the
    // last errors keep the root and the innermost frame and count the rest.
    let mut limits = Limits::default();
    limits.max_errors_per_request = 10_000;
    let (stored, usage, decoded) = run(4_000, &limits);
    assert!(usage.peak < 48 * MIB, "{usage:?}");
    assert!(stored < 32 * MIB as usize, "{stored}");
    let last = errors_of(&decoded)
        .into_iter()
        .find(|e| e.message == "step 4000 failed")
        .unwrap();
    let frames: Vec<&str> = last.span_stack.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(frames, ["step 1", "step 4000"]);
    assert!(last.breadcrumbs.is_empty());
    let count = |key: &str| omegi_core::attribute(&last.fields, key).cloned();
    assert_eq!(
        count(omegi_core::limits::DROPPED_FRAMES),
        Some(omegi_core::Value::I64(4_000 - 2))
    );
    assert_eq!(
        count(omegi_core::limits::DROPPED_BREADCRUMBS),
        Some(omegi_core::Value::I64(50))
    );
}

#[test]
fn the_errors_of_a_request_copy_a_bounded_context() {
    // One span with 512 KiB of attributes and many failing children: each
    // error would copy the parent's fields.
    let t0 = now_ns();
    let mut parent = span(0xbeef, 1, None, "parent", t0);
    parent.attributes = (0..128)
        .map(|i| kv(&format!("k{i}"), &"v".repeat(4000)))
        .collect();
    let mut spans = vec![parent];
    spans.extend((2..2_002).map(|i| pt::Span {
        events: vec![exception(t0 + i, "boom")],
        ..span(0xbeef, i, Some(1), "child", t0 + i)
    }));
    let body = traces("svc", spans).encode_to_vec();
    let mut limits = Limits::default();
    limits.max_error_context_bytes = 4 * MIB as usize;
    limits.max_errors_per_request = 10_000;
    let (decoded, usage) = measure(|| otlp::decode_traces(&body, PROTOBUF, None, &limits).unwrap());
    let errors = errors_of(&decoded);
    assert_eq!(errors.len(), 2_000);
    let with_fields = errors
        .iter()
        .filter(|e| e.span_stack.iter().any(|f| !f.fields.is_empty()))
        .count();
    assert!(with_fields > 0 && with_fields < 10, "{with_fields}");
    // 2,000 copies of 512 KiB would be 1 GB.
    assert!(stored_bytes(&decoded) < 16 * MIB as usize);
    assert!(usage.peak < 64 * MIB, "{usage:?}");
}

// ---------------------------------------------------------------- rows 4 and 5: huge texts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_names_and_values_are_cut_with_a_marker() {
    tokio::time::timeout(LIMIT, async {
        // The trace view shows texts whole up to 16 KiB, so that what ingest
        // kept (4 KiB values with their marker) is what is read back.
        let s = TestServer::start_with(|c| {
            c.read_limits(omegi_server::api::limits::ReadLimits {
                text_chars: 16 * 1024,
                ..Default::default()
            })
        })
        .await;
        let t0 = now_ns();
        let mut request = traces(
            &"s".repeat(70_000),
            vec![pt::Span {
                attributes: vec![kv("payload", &"v".repeat(10 * 1024 * 1024))],
                status: Some(pt::Status {
                    code: 2,
                    message: "m".repeat(100_000),
                }),
                ..span(0x1a, 1, None, &"n".repeat(5 * 1024 * 1024), t0)
            }],
        );
        request.resource_spans[0].scope_spans[0].spans.push(span(
            0x1a,
            2,
            Some(1),
            "child",
            t0 + 1,
        ));
        let body = gzip(&request.encode_to_vec());
        let response = s
            .http
            .post(s.server.url() + "/v1/traces")
            .bearer_auth(&s.ingest)
            .header("content-type", PROTOBUF)
            .header("content-encoding", "gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer = response.bytes().await.unwrap();
        let partial =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
                answer.as_ref(),
            )
            .unwrap()
            .partial_success
            .expect("a warning about the cut values");
        assert!(partial.error_message.contains("texts cut"), "{partial:?}");

        let get = |path: String| {
            let request = s.http.get(s.server.url() + &path).bearer_auth(&s.user);
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                response.bytes().await.unwrap()
            }
        };
        let trace = get(format!("/api/traces/{:032x}", 0x1a)).await;
        let trace: TraceView = serde_json::from_slice(&trace).unwrap();
        let root = &trace
            .spans
            .iter()
            .find(|n| n.span.span_id.0 == 1)
            .unwrap()
            .span;
        assert!(root.name.len() <= 256, "{}", root.name.len());
        assert!(root.name.ends_with(" bytes]"), "{}", &root.name[200..]);
        assert!(root.service.len() <= 256);
        assert!(root.service.contains("…[truncated 69"), "{}", root.service);
        let payload = root.attribute("payload").unwrap().to_string();
        assert!(payload.len() <= 4096);
        assert!(payload.contains("…[truncated 10"), "{}", &payload[4000..]);
        assert!(root.status_message.as_ref().unwrap().len() <= 4096);
        // Lists stay small.
        let issues = get("/api/issues?status=all".into()).await;
        assert!(issues.len() < 64 * 1024, "{} bytes", issues.len());
        let issues: Vec<IssueView> = serde_json::from_slice(&issues).unwrap();
        assert_eq!(issues.len(), 1);
        let stats = get("/api/stats".into()).await;
        assert!(stats.len() < 64 * 1024, "{} bytes", stats.len());
        s.server.shutdown().await.unwrap();
    })
    .await
    .expect("within the time limit");
}

#[test]
fn too_many_attributes_are_dropped_and_counted() {
    let t0 = now_ns();
    let request = traces(
        "svc",
        vec![pt::Span {
            attributes: (0..300).map(|i| kv(&format!("k{i}"), "v")).collect(),
            dropped_attributes_count: 5,
            ..span(1, 1, None, "s", t0)
        }],
    );
    let decoded =
        otlp::decode_traces(&request.encode_to_vec(), PROTOBUF, None, &Limits::default()).unwrap();
    let span = spans_of(&decoded)[0];
    assert_eq!(span.attributes.len(), 129);
    assert_eq!(
        span.attribute(DROPPED_ATTRIBUTES),
        Some(&omegi_core::Value::I64(300 - 128 + 5))
    );
    assert_eq!(decoded.truncation.attributes_dropped, 300 - 128);
}

// ---------------------------------------------------------------- row 9: timestamps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_outside_the_window_are_rejected_and_ends_repaired() {
    tokio::time::timeout(LIMIT, async {
        let s =
            TestServer::start_with(|c| c.retention(Some(Duration::from_secs(30 * 86_400)))).await;
        let now = now_ns();
        let century = 100 * 365 * 86_400 * 1_000_000_000u64;
        let failing = |trace: u128, start: u64| pt::Span {
            status: Some(pt::Status {
                code: 2,
                message: "boom".into(),
            }),
            ..span(trace, 1, None, "s", start)
        };
        let mut backwards = failing(0x4, now);
        backwards.end_time_unix_nano = now - 5_000_000_000;
        let mut endless = failing(0x5, now);
        endless.end_time_unix_nano = u64::MAX;
        let mut spans = vec![
            failing(0x1, u64::MAX),
            failing(0x2, now + century),
            failing(0x3, 1),
            backwards,
            endless,
        ];
        spans[0].end_time_unix_nano = u64::MAX;
        let body = serde_json::to_vec(&json_of(&traces("clock", spans))).unwrap();
        let (status, answer) = post_json(&s, "/v1/traces", body).await;
        assert_eq!(status, 200);
        assert_eq!(answer["partialSuccess"]["rejectedSpans"], "3", "{answer}");
        let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
        assert!(message.contains("outside the accepted window"), "{message}");

        // The kept spans: their ends repaired, the same in lists and details.
        let traces_listed: Vec<Value> = s_api(&s, "/api/traces?limit=100").await;
        assert_eq!(traces_listed.len(), 2, "{traces_listed:?}");
        for trace in [0x4u128, 0x5] {
            let view: TraceView = s_api(&s, &format!("/api/traces/{trace:032x}")).await;
            let span = &view.spans[0].span;
            // Before its start, or 100 years ahead: it ends at its start.
            assert_eq!(span.end_ns, span.start_ns);
            let listed = traces_listed
                .iter()
                .find(|t| t["trace_id"] == format!("{trace:032x}"))
                .unwrap();
            assert_eq!(listed["end_ns"].as_u64(), Some(span.end_ns), "{listed}");
        }
        let issues: Vec<IssueView> = s_api(&s, "/api/issues?status=all").await;
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].issue.count, 2);
        assert!(issues[0].issue.last_seen_ns < now + 60_000_000_000);
        let stats: StatsView = s_api(&s, "/api/stats?since=1h").await;
        assert_eq!(stats.summary.spans, 2);

        // ERROR log records likewise.
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![pl::ResourceLogs {
                resource: resource("clock"),
                scope_logs: vec![pl::ScopeLogs {
                    log_records: [u64::MAX, now + century, now]
                        .into_iter()
                        .map(|time| pl::LogRecord {
                            time_unix_nano: time,
                            severity_number: 17,
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("log boom".into())),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let response = s
            .http
            .post(s.server.url() + "/v1/logs")
            .bearer_auth(&s.ingest)
            .header("content-type", PROTOBUF)
            .body(logs.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer =
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
                response.bytes().await.unwrap().as_ref(),
            )
            .unwrap();
        assert_eq!(answer.partial_success.unwrap().rejected_log_records, 2);
        let issues: Vec<IssueView> = s_api(&s, "/api/issues?status=all").await;
        let log_issue = issues
            .iter()
            .find(|i| i.issue.title.contains("log boom"))
            .unwrap();
        assert_eq!(log_issue.issue.count, 1);
        s.server.shutdown().await.unwrap();
    })
    .await
    .expect("within the time limit");
}

// ---------------------------------------------------------------- row 7: a flood of one error

#[tokio::test]
async fn an_error_flood_keeps_the_first_errors_of_a_request_and_counts_the_rest() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let now = now_ns();
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![pl::ResourceLogs {
                resource: resource("payment"),
                scope_logs: vec![pl::ScopeLogs {
                    log_records: (0..1_500u64)
                        .map(|i| pl::LogRecord {
                            time_unix_nano: now - 1_500 + i,
                            severity_number: 17,
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(
                                    "payment provider timed out".into(),
                                )),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        // Sent twice, as a client retrying after a timeout would.
        for _ in 0..2 {
            let response = s
                .http
                .post(s.server.url() + "/v1/logs")
                .bearer_auth(&s.ingest)
                .header("content-type", PROTOBUF)
                .body(logs.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let answer =
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
                    response.bytes().await.unwrap().as_ref(),
                )
                .unwrap();
            let partial = answer.partial_success.unwrap();
            assert_eq!(partial.rejected_log_records, 500);
            assert!(
                partial.error_message.contains("max_errors_per_request"),
                "{}",
                partial.error_message
            );
            let issues: Vec<IssueView> = s_api(&s, "/api/issues?status=all").await;
            assert_eq!(issues.len(), 1);
            assert_eq!(issues[0].issue.count, 1_000);
        }
        s.server.shutdown().await.unwrap();
    })
    .await
    .expect("within the time limit");
}

/// A request as OTLP/JSON (hex ids, 64-bit integers as strings).
fn json_of(request: &ExportTraceServiceRequest) -> Value {
    let spans: Vec<Value> = request.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            json!({
                "traceId": hex(&s.trace_id),
                "spanId": hex(&s.span_id),
                "parentSpanId": hex(&s.parent_span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                "status": s.status.as_ref().map(|st| json!({"code": st.code, "message": st.message})),
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "clock"}}]},
        "scopeSpans": [{"spans": spans}]
    }]})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post_json(s: &TestServer, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = s
        .http
        .post(s.server.url() + path)
        .bearer_auth(&s.ingest)
        .header("content-type", JSON)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn s_api<T: serde::de::DeserializeOwned>(s: &TestServer, path: &str) -> T {
    let response = s
        .http
        .get(s.server.url() + path)
        .bearer_auth(&s.user)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

// ---------------------------------------------------------------- row 8: slow uploads

/// Sends the headers of a request with a body of `len` bytes, then `rate`
/// bytes a second until the server answers; the answer.
async fn slow_upload(addr: std::net::SocketAddr, token: String, len: usize, rate: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: omegi\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..len / rate.max(1) {
            if write.write_all(&vec![b' '; rate]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = read.read_to_end(&mut answer).await;
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_time_out_and_hold_no_turn_of_any_project() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start_with(|c| {
            c.ingest_limit(4, Duration::from_millis(500))
                .connection_timeouts(
                    Duration::from_secs(1),
                    BodyRate {
                        grace: Duration::from_secs(3),
                        min_bytes_per_second: 1024,
                    },
                )
        })
        .await;
        // A second project, with its own token.
        let created: Value = s
            .http
            .post(s.server.url() + "/api/projects")
            .bearer_auth(&s.user)
            .json(&json!({"id": "other"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let other = created["token"].as_str().unwrap().to_owned();
        let addr = s.server.local_addr();
        // Four uploads at 100 bytes/s from the default project. Bodies are
        // read before a turn is taken, so they hold only the room for the
        // bytes they sent.
        let slow: Vec<_> = (0..4)
            .map(|_| tokio::spawn(slow_upload(addr, s.ingest.clone(), 1_000_000, 100)))
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = now_ns();
        let body = serde_json::to_vec(&json_of(&traces("x", vec![span(0x0b, 1, None, "ok", t0)])))
            .unwrap();
        // Another project is not kept waiting,
        let response = s
            .http
            .post(s.server.url() + "/v1/traces")
            .bearer_auth(&other)
            .header("content-type", JSON)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // and neither is the same project, while the slow uploads still run.
        let (status, _) = post_json(&s, "/v1/traces", body.clone()).await;
        assert_eq!(status, 200);
        assert!(
            slow.iter().all(|upload| !upload.is_finished()),
            "the slow uploads were still being read"
        );
        // The slow uploads are cut off with 408 and a Status, all four.
        for upload in slow {
            let answer = upload.await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("\"code\":4"), "{answer}");
            assert!(answer.contains("min_body_rate"), "{answer}");
        }
        // And the default project is served after them too.
        let (status, _) = post_json(&s, "/v1/traces", body).await;
        assert_eq!(status, 200);
        // A client that never finishes its headers is disconnected.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: om")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(30), stalled.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection is closed by the server");
        s.server.shutdown().await.unwrap();
    })
    .await
    .expect("within the time limit");
}

// ---------------------------------------------------------------- issue 14: every refusal is a Status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_an_otlp_status_in_the_request_format() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start_with(|c| {
            let mut limits = Limits::default();
            limits.budget.max_spans = 2;
            c.body_limit(64 * 1024).limits(limits)
        })
        .await;
        let t0 = now_ns();
        let three = traces("svc", (1..=3).map(|i| span(1, i, None, "s", t0)).collect());
        // (what, token, body, content type, HTTP status, Status code)
        type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, &'a str, u16, i32);
        let cases: Vec<Case> = vec![
            ("no token", None, vec![], PROTOBUF, 401, 16),
            ("user token", Some(s.user.as_str()), vec![], JSON, 403, 7),
            (
                "over the body limit",
                Some(s.ingest.as_str()),
                vec![b' '; 65 * 1024],
                JSON,
                413,
                8,
            ),
            (
                "over the budget",
                Some(s.ingest.as_str()),
                three.encode_to_vec(),
                PROTOBUF,
                400,
                8,
            ),
            (
                "over the budget, JSON",
                Some(s.ingest.as_str()),
                serde_json::to_vec(&json_of(&three)).unwrap(),
                JSON,
                400,
                8,
            ),
            (
                "malformed",
                Some(s.ingest.as_str()),
                b"{".to_vec(),
                JSON,
                400,
                3,
            ),
            (
                "wrong type",
                Some(s.ingest.as_str()),
                vec![],
                "text/plain",
                415,
                3,
            ),
        ];
        for (what, token, body, content_type, status, code) in cases {
            let mut request = s
                .http
                .post(s.server.url() + "/v1/traces")
                .header("content-type", content_type)
                .body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{what}");
            let ct = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            let expected_ct = if content_type == JSON { JSON } else { PROTOBUF };
            assert_eq!(ct, expected_ct, "{what}");
            let (got, message) = status_of(&ct, &response.bytes().await.unwrap());
            assert_eq!(got, code, "{what}: {message}");
            assert!(!message.is_empty(), "{what}");
        }
        let stats: StatsView = s_api(&s, "/api/stats").await;
        assert_eq!(stats.summary.spans, 0);
        s.server.shutdown().await.unwrap();
    })
    .await
    .expect("within the time limit");
}

// ---------------------------------------------------------------- property tests

/// A small budget, so that the properties can reach every cap.
fn small_limits() -> Limits {
    let mut limits = Limits::default();
    let b = &mut limits.budget;
    b.max_resources = 4;
    b.max_scopes = 8;
    b.max_spans = 64;
    b.max_events = 64;
    b.max_links = 16;
    b.max_log_records = 64;
    b.max_attributes = 256;
    b.max_attributes_per_item = 16;
    b.max_value_depth = 4;
    b.max_string_bytes = 64 * 1024;
    limits.max_decompressed_bytes = 256 * 1024;
    limits
}

/// What a decoded request may hold under [`small_limits`].
fn within_small_budget(decoded: &Decoded) {
    let spans = spans_of(decoded).len();
    assert!(spans <= 64);
    for span in spans_of(decoded) {
        assert!(span.attributes.len() <= 129);
        assert!(span.events.len() <= 64);
    }
    assert!(decoded.resources.len() <= 4);
}

/// A valid request with some of everything, as protobuf.
fn valid_traces() -> Vec<u8> {
    let t0 = now_ns();
    let mut root = span(0xaa, 1, None, "root", t0);
    root.attributes = vec![kv("http.method", "POST"), kv("n", "1")];
    root.events = vec![exception(t0 + 5, "boom")];
    root.links = vec![pt::span::Link {
        trace_id: 7u128.to_be_bytes().to_vec(),
        span_id: 9u64.to_be_bytes().to_vec(),
        ..Default::default()
    }];
    let mut child = span(0xaa, 2, Some(1), "child", t0 + 1);
    child.status = Some(pt::Status {
        code: 2,
        message: "failed".into(),
    });
    traces("svc", vec![root, child]).encode_to_vec()
}

fn valid_logs() -> Vec<u8> {
    let t0 = now_ns();
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource("svc"),
            scope_logs: vec![pl::ScopeLogs {
                log_records: vec![
                    pl::LogRecord {
                        time_unix_nano: t0,
                        severity_number: 9,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("before".into())),
                        }),
                        trace_id: 0xabu128.to_be_bytes().to_vec(),
                        ..Default::default()
                    },
                    pl::LogRecord {
                        time_unix_nano: t0 + 1,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("failed".into())),
                        }),
                        trace_id: 0xabu128.to_be_bytes().to_vec(),
                        attributes: vec![kv("exception.type", "E")],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn valid_logs_json() -> String {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},
            "scopeLogs":[{{"logRecords":[
              {{"timeUnixNano":"{t}","severityNumber":9,"body":{{"stringValue":"before"}},
                "traceId":"000000000000000000000000000000ab"}},
              {{"timeUnixNano":"{t}","severityNumber":17,"body":{{"kvlistValue":{{"values":[{{"key":"k","value":{{"arrayValue":{{"values":[{{"intValue":"1"}}]}}}}}}]}}}},
                "traceId":"000000000000000000000000000000ab","spanId":"00000000000000cd",
                "attributes":[{{"key":"exception.type","value":{{"stringValue":"E"}}}}]}}]}}]}}]}}"#,
        t = now_ns()
    )
}

/// Applies byte mutations to a valid body.
fn mutate(mut body: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, byte, op) in edits {
        if body.is_empty() {
            body.push(byte);
            continue;
        }
        let at = at % body.len();
        match op % 4 {
            0 => body[at] = byte,
            1 => body.insert(at, byte),
            2 => {
                body.remove(at);
            }
            _ => body.truncate(at),
        }
    }
    body
}

fn decode_all(body: &[u8], limits: &Limits) {
    for content_type in [PROTOBUF, JSON] {
        if let Ok(decoded) = otlp::decode_traces(body, content_type, None, limits) {
            within_small_budget(&decoded);
        }
        if let Ok(decoded) = otlp::decode_logs(body, content_type, None, limits) {
            within_small_budget(&decoded);
        }
    }
    let _ = otlp::decode_traces(body, PROTOBUF, Some("gzip"), limits);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_within_the_budget(
        body in proptest::collection::vec(any::<u8>(), 0..4096)
    ) {
        let limits = small_limits();
        let ((), usage) = measure(|| decode_all(&body, &limits));
        // A few MiB at most, whatever the bytes.
        prop_assert!(usage.peak < 8 * MIB, "{usage:?}");
    }

    #[test]
    fn mutated_valid_requests_never_panic_and_stay_within_the_budget(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
        logs in any::<bool>(),
        as_json in any::<bool>(),
    ) {
        let limits = small_limits();
        let valid = if logs { valid_logs() } else { valid_traces() };
        let body = match (as_json, logs) {
            // The JSON form of a valid request, then mutated as text.
            (true, false) => {
                let request = ExportTraceServiceRequest::decode(valid.as_slice()).unwrap();
                mutate(serde_json::to_vec(&json_of(&request)).unwrap(), &edits)
            }
            (true, true) => mutate(valid_logs_json().into_bytes(), &edits),
            (false, _) => mutate(valid, &edits),
        };
        let ((), usage) = measure(|| decode_all(&body, &limits));
        prop_assert!(usage.peak < 8 * MIB, "{usage:?}");
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_stack_overflow(depth in 1usize..200) {
        let mut value = String::from(r#"{"stringValue":"x"}"#);
        for _ in 0..depth {
            value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
        }
        let body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"{}","attributes":[{{"key":"k","value":{value}}}]}}]}}]}}]}}"#,
            now_ns()
        );
        let result = otlp::decode_traces(body.as_bytes(), JSON, None, &small_limits());
        if depth <= 4 {
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            prop_assert!(result.is_err());
        }
    }
}
