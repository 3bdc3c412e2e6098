//! The read and note rows of the hostile-input table (issue 13), against
//! an in-process `omegi serve` on loopback, at sizes that run in seconds:
//! every answer is `200` (or a clear refusal), its size is bounded by the
//! read limits and not by what was stored, what was cut is marked, and the
//! issue page's work follows the answer (bytes allocated while it is
//! served, counted by this binary's allocator; no clock is read).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use omegi_core::flow::OMITTED_MARKER;
use omegi_core::note::EMBED_LIMIT_MARKER;
use omegi_server::api::notes::RenderedNote;
use omegi_server::api::views::{ErrorFlowView, IssueDetail, IssueView, StatsView, TraceView};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use reqwest::Method;
use serde_json::{json, Value};

mod common;

use common::{kv, TestServer};

/// Counts the bytes this test binary allocates, on every thread.
struct CountingAllocator;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only
// the sizes are counted, in an atomic.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Tests of this binary run one at a time, so that what one allocates is
/// not counted for another.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(120);

const MIB: usize = 1024 * 1024;

impl TestServer {
    async fn post_otlp(&self, path: &str, body: Vec<u8>) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).expect("gzip in memory");
        let response = self
            .http
            .post(format!("{}{path}", self.server.url()))
            .bearer_auth(&self.ingest)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(gz.finish().expect("gzip in memory"))
            .send()
            .await
            .expect("the request is answered");
        assert_eq!(response.status(), 200, "POST {path}");
    }

    /// Sends a request as the admin user: status and body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(&self.user);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// `GET path`: must be `200`; the body's size and the body as `T`.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> (usize, T) {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {}", &body[..body.len().min(300)]);
        let value = serde_json::from_str(&body).expect("JSON of the expected shape");
        (body.len(), value)
    }
}

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

fn resource(service: &str) -> Option<PResource> {
    Some(PResource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

fn traces(spans: Vec<pt::Span>) -> Vec<u8> {
    traces_of(vec![("api", spans)])
}

/// One resource per service with its spans.
fn traces_of(services: Vec<(&str, Vec<pt::Span>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: services
            .into_iter()
            .map(|(service, spans)| pt::ResourceSpans {
                resource: resource(service),
                scope_spans: vec![pt::ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn span(trace: u128, id: u64, parent: Option<u64>, name: String, t0: u64) -> pt::Span {
    pt::Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name,
        kind: 2,
        start_time_unix_nano: t0 + id * 1_000,
        end_time_unix_nano: t0 + 50_000_000 - id,
        ..Default::default()
    }
}

/// A failing span with an `exception` event.
fn failing(mut s: pt::Span, message: &str) -> pt::Span {
    s.status = Some(pt::Status {
        code: 2,
        message: message.into(),
    });
    s.events.push(pt::span::Event {
        time_unix_nano: s.start_time_unix_nano + 1,
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", "Boom"),
            kv("exception.message", message),
        ],
        ..Default::default()
    });
    s
}

async fn the_issue(s: &TestServer) -> IssueView {
    let (_, issues): (_, Vec<IssueView>) = s.get("/api/issues?status=all").await;
    assert_eq!(issues.len(), 1, "one issue");
    issues.into_iter().next().expect("one issue")
}

fn issue_path(issue: &IssueView) -> String {
    format!(
        "/api/issues/{}/{}",
        issue.issue.project, issue.issue.fingerprint.0
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_span_name_among_thousands_of_spans_answers_a_bounded_trace_and_flow() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns();
        let trace: u128 = 0xa1;
        // 2,000 spans under one root; span 2 is named with 100 KB and the
        // last one fails.
        let mut spans = vec![span(trace, 1, None, "root".into(), t0)];
        for id in 2..=2_000u64 {
            let name = if id == 2 {
                "n".repeat(100_000)
            } else {
                format!("call {id}")
            };
            spans.push(span(trace, id, Some(1), name, t0));
        }
        let last = spans.pop().expect("spans");
        spans.push(failing(last, "the last call failed"));
        s.post_otlp("/v1/traces", traces(spans)).await;

        let (size, view): (_, TraceView) =
            s.get(&format!("/api/traces/{trace:032x}?width=400")).await;
        assert!(size < 5 * MIB, "trace detail answered {size} bytes");
        assert!(view.truncated);
        assert!(view.spans.len() <= 500);
        let last_line = view.waterfall.lines().last().expect("a waterfall");
        assert!(last_line.starts_with(OMITTED_MARKER), "{last_line}");
        let widest = view.waterfall.lines().map(|l| l.chars().count()).max();
        assert!(widest < Some(80 + 400 + 64), "{widest:?}");

        let issue = the_issue(&s).await;
        let (size, flow): (_, ErrorFlowView) = s
            .get(&format!("{}/flow?width=400", issue_path(&issue)))
            .await;
        assert!(size < 3 * MIB, "flow answered {size} bytes");
        assert!(flow.truncated);
        assert!(flow.flow.is_some(), "{:?}", flow.flow_error);
        let waterfall = flow.waterfall.expect("a waterfall");
        assert!(waterfall.contains("more spans not shown"));
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_answers_a_bounded_waterfall() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns();
        let trace: u128 = 0xa2;
        let mut spans: Vec<pt::Span> = (1..=3_000u64)
            .map(|id| {
                span(
                    trace,
                    id,
                    (id > 1).then(|| id - 1),
                    format!("level {id}"),
                    t0,
                )
            })
            .collect();
        let last = spans.pop().expect("spans");
        spans.push(failing(last, "deep failure"));
        // Two services taking turns: every span is a hop of the flow.
        let (odd, even): (Vec<pt::Span>, Vec<pt::Span>) = spans
            .into_iter()
            .partition(|s| s.span_id.last().is_some_and(|b| b % 2 == 1));
        s.post_otlp("/v1/traces", traces_of(vec![("odd", odd), ("even", even)]))
            .await;
        let (size, view): (_, TraceView) =
            s.get(&format!("/api/traces/{trace:032x}?width=100")).await;
        assert!(size < 5 * MIB, "{size} bytes");
        assert!(view.truncated);
        // Indentation stops at half the label width; deeper spans show
        // their depth.
        assert!(view.waterfall.contains("[100] "));
        let widest = view.waterfall.lines().map(|l| l.chars().count()).max();
        assert!(widest < Some(80 + 100 + 64), "{widest:?}");
        // The flow keeps its first and last hops.
        let flow = &view.flows[0];
        assert!(flow.flow.hops.len() <= 500);
        assert!(flow.summary.contains("hops not shown"));
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_never_reach_list_answers() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start_with(|c| c.body_limit(32 * MIB)).await;
        let t0 = now_ns();
        let trace: u128 = 0xa3;
        let big_name = "s".repeat(2 * MIB);
        let mut root = failing(span(trace, 1, None, big_name, t0), "boom");
        root.attributes.push(kv("blob", &"v".repeat(4 * MIB)));
        s.post_otlp("/v1/traces", traces(vec![root])).await;

        let (size, issues): (_, Vec<IssueView>) = s.get("/api/issues?status=all").await;
        assert!(size < 64 * 1024, "/api/issues answered {size} bytes");
        assert_eq!(issues.len(), 1);
        assert!(issues[0].issue.latest_error.span_stack.is_empty());
        let (size, stats): (_, StatsView) = s.get("/api/stats").await;
        assert!(size < 64 * 1024, "/api/stats answered {size} bytes");
        assert_eq!(stats.projects[0].new_issue_count, 1);
        let (size, _): (_, Value) = s.get("/api/traces").await;
        assert!(size < 64 * 1024, "/api/traces answered {size} bytes");
        let (size, detail): (_, IssueDetail) = s.get(&issue_path(&issues[0])).await;
        assert!(size < 512 * 1024, "the issue answered {size} bytes");
        let (size, view): (_, TraceView) = s.get(&format!("/api/traces/{trace:032x}")).await;
        assert!(size < 512 * 1024, "the trace answered {size} bytes");
        assert!(view.truncated);
        let name = &view.spans[0].span.name;
        // Cut at ingest already (names keep 256 bytes and a marker).
        assert!(
            name.contains('…') && name.len() < 8 * 1024,
            "{}",
            name.len()
        );
        // Whatever the ingest kept, the issue's page says whether it cut.
        let error = &detail.issue.issue.latest_error;
        let stored_big = error
            .span_stack
            .iter()
            .any(|f| f.name.ends_with('…') || f.fields.iter().any(|a| a.key == "blob"));
        assert!(!stored_big || detail.truncated);
    })
    .await
    .expect("within the time limit");
}

/// `n` ERROR log records of one issue, each with a 4 KB message and field.
fn error_logs(n: usize, t0: u64) -> Vec<u8> {
    let message = format!("order store unavailable: {}", "x".repeat(4_000));
    let records = (0..n)
        .map(|i| pl::LogRecord {
            time_unix_nano: t0 + i as u64,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(message.clone())),
            }),
            attributes: vec![kv("payload", &"p".repeat(4_000))],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource("orders"),
            scope_logs: vec![pl::ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The issue's page: its size, the answer, and the bytes allocated while
/// it was served.
async fn issue_page(s: &TestServer) -> (usize, IssueDetail, usize) {
    let issue = the_issue(s).await;
    let before = ALLOCATED.load(Ordering::Relaxed);
    let (size, detail): (_, IssueDetail) = s.get(&issue_path(&issue)).await;
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;
    (size, detail, allocated)
}

async fn note_count(s: &TestServer) -> usize {
    let (_, notes): (_, Vec<Value>) = s.get("/api/notes").await;
    notes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_page_reads_what_it_shows_not_every_occurrence() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns() - 60_000_000_000;
        s.post_otlp("/v1/logs", error_logs(1_000, t0)).await;
        let (small_size, small, small_allocated) = issue_page(&s).await;
        for round in 1..6u64 {
            s.post_otlp("/v1/logs", error_logs(1_000, t0 + round * 1_000_000))
                .await;
        }
        let (size, detail, allocated) = issue_page(&s).await;
        assert_eq!(detail.issue.issue.count, 6_000);
        assert_eq!(detail.occurrences.len(), 20);
        let times: Vec<u64> = detail.occurrences.iter().map(|o| o.time_ns).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
        assert_eq!(times[0], t0 + 5_000_000 + 999);
        assert!(detail.occurrences[0].message.chars().count() <= 200);
        // Six times the occurrences, the same answer. The page decodes the
        // 20 it shows; what still grows is the histogram's walk over the
        // occurrence keys of the last 24 hours, a small cost per occurrence
        // whatever its size: decoding 6,000 occurrences of 8 KB each, as
        // the page did, allocates over 48 MB.
        assert!(size <= small_size + 1024, "{small_size} then {size} bytes");
        assert_eq!(small.occurrences.len(), 20);
        let per_occurrence = allocated.saturating_sub(small_allocated) / 5_000;
        assert!(
            allocated < 16 * MIB && per_occurrence < 2 * 1024,
            "the issue page allocated {allocated} bytes ({small_allocated} with 1,000 \
             occurrences, {per_occurrence} per occurrence more)"
        );

        // The occurrence list pages from the newest end as well.
        let path = format!(
            "{}/occurrences?limit=5&before={}",
            issue_path(&detail.issue),
            detail.occurrences[19].id
        );
        let (_, older): (_, Vec<Value>) = s.get(&path).await;
        assert_eq!(older.len(), 5);
        assert!(older[0]["time_ns"].as_u64() < Some(times[19]));
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embed_bomb_renders_within_the_budget() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        // Sections that embed the next one 15 times each, four levels deep:
        // 15^4 copies without a budget.
        let mut body = String::new();
        for level in 0..4 {
            body.push_str(&format!("# S{level}\n"));
            for _ in 0..15 {
                body.push_str(&format!("![[Bomb#S{}]]\n", level + 1));
            }
        }
        body.push_str("# S4\npayload\n");
        assert!(body.len() < 1_000);
        let (status, created) = s
            .call(
                Method::POST,
                "/api/notes",
                Some(json!({ "title": "Bomb", "body": body })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = serde_json::from_str::<Value>(&created).expect("a note")["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        let (size, rendered): (_, RenderedNote) = s.get(&format!("/api/notes/{id}/rendered")).await;
        assert!(size < 2 * MIB, "rendered {size} bytes");
        assert!(rendered.limit_reached);
        assert!(rendered.markdown.contains(EMBED_LIMIT_MARKER));
        assert!(rendered.markdown.contains("payload"));
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_over_their_limits_are_refused_and_nothing_is_stored() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let over = [
            (json!({ "title": "Big", "body": "x".repeat(MIB + 1) }), 413),
            (json!({ "title": "t".repeat(300), "body": "" }), 400),
            (json!({ "title": "Links", "body": "[[a]] ".repeat(1_001) }), 400),
            (
                json!({ "title": "Tags", "body": "", "tags": (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>() }),
                400,
            ),
            (
                json!({ "title": "Aliases", "body": "", "aliases": (0..51).map(|i| format!("a{i}")).collect::<Vec<_>>() }),
                400,
            ),
        ];
        for (body, want) in over {
            let (status, answer) = s.call(Method::POST, "/api/notes", Some(body)).await;
            assert_eq!(status, want, "{answer}");
            assert!(answer.contains("error"), "{answer}");
        }
        assert_eq!(note_count(&s).await, 0, "nothing was stored");

        // An update over a limit leaves the note as it was.
        let (status, created) = s
            .call(
                Method::POST,
                "/api/notes",
                Some(json!({ "title": "Fine", "body": "ok" })),
            )
            .await;
        assert_eq!(status, 201);
        let note: Value = serde_json::from_str(&created).expect("a note");
        let path = format!("/api/notes/{}", note["id"].as_str().expect("an id"));
        let (status, _) = s
            .call(
                Method::PUT,
                &path,
                Some(json!({ "revision": 1, "body": "x".repeat(MIB + 1) })),
            )
            .await;
        assert_eq!(status, 413);
        let (_, now): (_, Value) = s.get(&path).await;
        assert_eq!(now["revision"], 1);
        assert_eq!(now["body"], "ok");
    })
    .await
    .expect("within the time limit");
}
