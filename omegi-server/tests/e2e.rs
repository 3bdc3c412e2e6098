//! `omegi serve` end to end over real HTTP on loopback: OTLP in, issues,
//! flows and alerts out through the REST API and the CLI.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use omegi_server::alerts::RetryPolicy;
use omegi_server::api::views::{ErrorFlowView, IssueDetail, IssueView, StatsView, TraceView};
use omegi_server::server::STORE_DIR;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use serde_json::{json, Value};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

const SERVICES: [&str; 3] = ["user-service", "inventory-service", "payment-service"];

mod common;

use common::{kv, offline_cli, TestServer};

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn post_otlp(
        &self,
        path: &str,
        content_type: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("a body").to_vec())
    }

    async fn api<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.user)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON of the expected shape")
    }
}

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

/// user-service → inventory-service → payment-service, the payment span
/// failing with an `exception` event; one resource per service.
fn checkout_protobuf(trace: u128, t0: u64) -> Vec<u8> {
    let span = |service: usize, parent: Option<u64>, name: &str, start: u64, end: u64| pt::Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: (service as u64 + 1).to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: t0 + start,
        end_time_unix_nano: t0 + end,
        ..Default::default()
    };
    let mut user = span(0, None, "POST /checkout", 0, 40_000_000);
    user.status = Some(pt::Status {
        code: 2,
        message: "checkout failed".into(),
    });
    let mut inventory = span(1, Some(1), "reserve", 3_000_000, 30_000_000);
    inventory.status = Some(pt::Status {
        code: 2,
        message: "payment failed".into(),
    });
    let mut payment = span(2, Some(2), "charge", 8_000_000, 13_000_000);
    payment.status = Some(pt::Status {
        code: 2,
        message: "card declined".into(),
    });
    payment.events.push(pt::span::Event {
        time_unix_nano: t0 + 12_000_000,
        name: "exception".into(),
        attributes: vec![
            kv("exception.type", "PaymentError"),
            kv("exception.message", "card declined"),
            kv("exception.stacktrace", "at payment::charge"),
        ],
        ..Default::default()
    });
    let resource_spans = [user, inventory, payment]
        .into_iter()
        .enumerate()
        .map(|(i, span)| pt::ResourceSpans {
            resource: Some(PResource {
                attributes: vec![kv("service.name", SERVICES[i])],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: format!("{}::http", SERVICES[i]),
                    ..Default::default()
                }),
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// The same trace as OTLP/JSON.
fn checkout_json(trace: u128, t0: u64) -> Vec<u8> {
    let span = |i: usize, parent: Option<u64>, name: &str, start: u64, end: u64, message: &str| {
        let mut s = json!({
            "traceId": format!("{trace:032x}"),
            "spanId": format!("{:016x}", i as u64 + 1),
            "name": name,
            "kind": 2,
            "startTimeUnixNano": (t0 + start).to_string(),
            "endTimeUnixNano": (t0 + end).to_string(),
            "status": { "code": 2, "message": message },
        });
        if let Some(p) = parent {
            s["parentSpanId"] = json!(format!("{p:016x}"));
        }
        s
    };
    let mut payment = span(2, Some(2), "charge", 8_000_000, 13_000_000, "card declined");
    payment["events"] = json!([{
        "timeUnixNano": (t0 + 12_000_000).to_string(),
        "name": "exception",
        "attributes": [
            {"key": "exception.type", "value": {"stringValue": "PaymentError"}},
            {"key": "exception.message", "value": {"stringValue": "card declined"}},
        ],
    }]);
    let spans = [
        span(0, None, "POST /checkout", 0, 40_000_000, "checkout failed"),
        span(
            1,
            Some(1),
            "reserve",
            3_000_000,
            30_000_000,
            "payment failed",
        ),
        payment,
    ];
    let resource_spans: Vec<Value> = spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICES[i]}}]},
                "scopeSpans": [{"scope": {"name": format!("{}::http", SERVICES[i])}, "spans": [s]}],
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceSpans": resource_spans })).expect("JSON")
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn hop_services(flow: &omegi_server::api::views::FlowView) -> Vec<&str> {
    flow.flow.hops.iter().map(|h| h.service.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_service_trace_becomes_one_issue_with_its_flow() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns();
        let trace_a: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
        let trace_b: u128 = 0x5b8efff798038103d269b633813fc60c;
        let (status, body) = s
            .post_otlp(
                "/v1/traces",
                PROTOBUF,
                Some(&s.ingest),
                checkout_protobuf(trace_a, t0),
            )
            .await;
        assert_eq!(status, 200);
        // A full success: an empty ExportTraceServiceResponse.
        assert!(body.is_empty(), "{body:?}");
        let (status, body) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                Some(&s.ingest),
                checkout_json(trace_b, t0 + 1_000_000_000),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({}));

        // One issue, seen twice, in the payment service.
        let issues: Vec<IssueView> = s.api("/api/issues").await;
        assert_eq!(issues.len(), 1, "{issues:#?}");
        let issue = &issues[0];
        assert_eq!(issue.issue.title, "PaymentError: card declined");
        assert_eq!(issue.issue.count, 2);
        assert_eq!(issue.issue.services, vec!["payment-service"]);
        assert_eq!(issue.id, format!("default:{}", issue.issue.fingerprint));

        // Its flow crosses the three services.
        let path = format!("/api/issues/default/{}", issue.issue.fingerprint);
        let flow: ErrorFlowView = s.api(&format!("{path}/flow")).await;
        let f = flow.flow.as_ref().expect("a flow");
        assert_eq!(hop_services(f), SERVICES);
        assert_eq!(f.flow.trace_id.0, trace_b, "the latest occurrence");
        assert!(
            f.summary.contains("error: card declined (PaymentError)"),
            "{}",
            f.summary
        );
        assert!(flow.raw_log.as_deref().is_some_and(|l| !l.is_empty()));
        // The older occurrence, by id.
        let detail: IssueDetail = s.api(&path).await;
        assert_eq!(detail.occurrences.len(), 2);
        let oldest = &detail.occurrences[1];
        assert_eq!(oldest.trace_id.map(|t| t.0), Some(trace_a));
        let flow: ErrorFlowView = s
            .api(&format!("{path}/flow?occurrence={}", oldest.id))
            .await;
        assert_eq!(flow.flow.expect("a flow").flow.trace_id.0, trace_a);

        // The trace: tree, flow, dependencies.
        let trace: TraceView = s.api(&format!("/api/traces/{trace_a:032x}")).await;
        assert_eq!(trace.spans.len(), 3);
        assert_eq!(trace.spans[2].depth, 2);
        assert_eq!(trace.flows.len(), 1);
        assert_eq!(hop_services(&trace.flows[0]), SERVICES);
        let edges: Vec<(&str, &str)> = trace
            .dependencies
            .iter()
            .map(|e| (e.caller.as_str(), e.callee.as_str()))
            .collect();
        assert_eq!(
            edges,
            [
                ("inventory-service", "payment-service"),
                ("user-service", "inventory-service")
            ]
        );

        // The dashboard.
        let stats: StatsView = s.api("/api/stats?bucket=minute&since=1h").await;
        assert_eq!(stats.summary.spans, 6);
        assert_eq!(stats.summary.open_issues, 1);
        let default = &stats.projects[0];
        assert_eq!(default.error_counts.iter().map(|b| b.count).sum::<u64>(), 2);
        assert_eq!(default.new_issues.len(), 1);
        assert_eq!(stats.dependencies.len(), 2);
        assert_eq!(stats.dependencies[0].calls, 2);

        // Through the CLI, as functions.
        let out = s.run_cli(&["issues"]).await;
        assert!(
            out.contains(&issue.id) && out.contains("PaymentError: card declined"),
            "{out}"
        );
        let out = s.run_cli(&["flow", &format!("{trace_a:032x}")]).await;
        for service in SERVICES {
            assert!(out.contains(service), "{out}");
        }
        assert!(
            out.lines()
                .any(|l| l.starts_with("3. payment-service") && l.contains("charge")),
            "{out}"
        );
        assert!(out.contains("error: card declined (PaymentError)"), "{out}");
        let out = s.run_cli(&["issue", &issue.id]).await;
        assert!(
            out.contains("count:      2") && out.contains("1. user-service"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "notes: none yet; write one with `omegi note new --issue {}",
                issue.id
            )),
            "{out}"
        );
        // A note written for the issue shows up with it from then on.
        let body = s.dir.path().join("declined.md");
        std::fs::write(&body, "Retry with another card.\n").expect("write body");
        let out = s
            .run_cli(&[
                "note",
                "new",
                "--title",
                "Declined cards",
                "--issue",
                &issue.id,
                "--file",
                &body.display().to_string(),
            ])
            .await;
        assert!(out.starts_with("created note "), "{out}");
        let out = s.run_cli(&["issue", &issue.id]).await;
        let notes = out
            .split_once("notes about this issue")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no notes section in\n{out}"));
        assert!(notes.contains("Declined cards"), "{out}");
        assert!(notes.contains("by admin"), "{out}");
        let json = s.run_cli(&["--json", "issue", &issue.id]).await;
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(
            json["notes"]["linked"][0]["title"], "Declined cards",
            "{json}"
        );

        // Through the built binary, reading the token from the data directory.
        let exe = env!("CARGO_BIN_EXE_omegi");
        let url = s.server.url();
        let data = s.dir.path().to_owned();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .args(["--json", "--server", &url, "issues"])
                .env("OMEGI_DATA", &data)
                .env_remove("OMEGI_TOKEN")
                .output()
                .expect("the binary runs")
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: Vec<IssueView> = serde_json::from_slice(&output.stdout).expect("JSON output");
        assert_eq!(listed, issues);

        // Resolving, then the status filter.
        let out = s.run_cli(&["resolve", &issue.id]).await;
        assert!(out.contains("resolved"), "{out}");
        let open: Vec<IssueView> = s.api("/api/issues").await;
        assert!(open.is_empty());
        let resolved: Vec<IssueView> = s.api("/api/issues?status=resolved").await;
        assert_eq!(resolved.len(), 1);
        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_store_nothing() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start_with(|c| c.body_limit(64 * 1024)).await;
        let t0 = now_ns();
        let ingest = Some(s.ingest.as_str());
        let good_json = checkout_json(1, t0);

        let message = |body: &[u8]| -> String {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default()
        };

        // Malformed protobuf: 400.
        let (status, _) = s
            .post_otlp(
                "/v1/traces",
                PROTOBUF,
                ingest,
                vec![0x0a, 0xff, 0xff, 0xff, 0x0f],
            )
            .await;
        assert_eq!(status, 400);
        // Malformed JSON: 400 saying where.
        let (status, body) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                ingest,
                br#"{"resourceSpans": [{"#.to_vec(),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            message(&body).contains("invalid JSON at line 1"),
            "{}",
            message(&body)
        );
        // Wrong content type: 415.
        let (status, _) = s
            .post_otlp("/v1/traces", "text/plain", ingest, good_json.clone())
            .await;
        assert_eq!(status, 415);
        // Over-size body: 413 with a message.
        let mut big = good_json.clone();
        big.resize(100 * 1024, b' ');
        let (status, body) = s.post_otlp("/v1/traces", JSON, ingest, big).await;
        assert_eq!(status, 413);
        assert!(message(&body).contains("too large"), "{}", message(&body));
        // Missing and wrong tokens: 401 with an OTLP Status.
        let (status, body) = s
            .post_otlp("/v1/traces", JSON, None, good_json.clone())
            .await;
        assert_eq!(status, 401);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], 16);
        assert!(
            message(&body).contains("Authorization"),
            "{}",
            message(&body)
        );
        let (status, _) = s
            .post_otlp("/v1/traces", JSON, Some("omegi_i_wrong"), good_json.clone())
            .await;
        assert_eq!(status, 401);
        // A user token cannot ingest, an ingest token cannot read.
        let (status, _) = s
            .post_otlp("/v1/traces", JSON, Some(&s.user), good_json.clone())
            .await;
        assert_eq!(status, 403);
        let response = s
            .http
            .get(s.url("/api/issues"))
            .bearer_auth(&s.ingest)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let response = s.http.get(s.url("/api/issues")).send().await.unwrap();
        assert_eq!(response.status(), 401);
        // Invalid trace id and span id: 400, and the valid spans of the same
        // request are not kept either.
        let mut bad_trace: Value = serde_json::from_slice(&good_json).unwrap();
        bad_trace["resourceSpans"][2]["scopeSpans"][0]["spans"][0]["traceId"] =
            json!("00000000000000000000000000000000");
        let (status, body) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                ingest,
                serde_json::to_vec(&bad_trace).unwrap(),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            message(&body).contains("invalid trace id"),
            "{}",
            message(&body)
        );
        let mut bad_span: Value = serde_json::from_slice(&good_json).unwrap();
        bad_span["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["spanId"] = json!("abcd");
        let (status, body) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                ingest,
                serde_json::to_vec(&bad_span).unwrap(),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            message(&body).contains("invalid span id"),
            "{}",
            message(&body)
        );

        // Nothing was stored.
        let stats: StatsView = s.api("/api/stats").await;
        assert_eq!(stats.summary.spans, 0, "{stats:#?}");
        assert_eq!(stats.summary.errors, 0);
        let issues: Vec<IssueView> = s.api("/api/issues?status=all").await;
        assert!(issues.is_empty());
        // And the good request still goes in.
        let (status, _) = s.post_otlp("/v1/traces", JSON, ingest, good_json).await;
        assert_eq!(status, 200);
        let stats: StatsView = s.api("/api/stats").await;
        assert_eq!(stats.summary.spans, 3);
        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_delivers_a_new_issue_alert() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let mut stream = s
            .http
            .get(s.url("/api/alerts/stream"))
            .bearer_auth(&s.user)
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(stream.status(), 200);
        assert_eq!(
            stream.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let (status, _) = s
            .post_otlp(
                "/v1/traces",
                PROTOBUF,
                Some(&s.ingest),
                checkout_protobuf(7, now_ns()),
            )
            .await;
        assert_eq!(status, 200);
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = stream
                .chunk()
                .await
                .expect("the stream stays open")
                .expect("an event arrives");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let event = text.split("\n\n").next().unwrap();
        assert!(event.contains("event: new_issue"), "{event}");
        let data = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line");
        let alert: Value = serde_json::from_str(data).expect("JSON data");
        assert_eq!(alert["kind"], "new_issue");
        assert_eq!(alert["title"], "PaymentError: card declined");
        assert_eq!(alert["project"], "default");
        // Shutdown ends the stream instead of waiting for it.
        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("the test finishes in time");
}

#[derive(Clone, Default)]
struct Hook {
    attempts: Arc<AtomicUsize>,
    received: Arc<tokio::sync::Mutex<Vec<Value>>>,
}

async fn hook_handler(State(hook): State<Hook>, Json(body): Json<Value>) -> StatusCode {
    if hook.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    hook.received.lock().await.push(body);
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_the_alert_after_a_failed_attempt() {
    tokio::time::timeout(LIMIT, async {
        let hook = Hook::default();
        let app = Router::new()
            .route("/hook", post(hook_handler))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

        let retry = RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let s = TestServer::start_with(|c| c.webhooks([hook_url]).retry(retry)).await;
        let (status, _) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                Some(&s.ingest),
                checkout_json(9, now_ns()),
            )
            .await;
        assert_eq!(status, 200);
        // Shutdown drains the webhook queue: the retried delivery is done
        // when it returns.
        let report = s.server.shutdown().await.expect("a clean shutdown");
        assert!(report.webhooks_drained);
        assert_eq!(
            hook.attempts.load(Ordering::SeqCst),
            2,
            "one failure, one retry"
        );
        let received = hook.received.lock().await;
        assert_eq!(received.len(), 1);
        assert_eq!(received[0]["kind"], "new_issue");
        assert_eq!(received[0]["services"], json!(["payment-service"]));
        receiver.abort();
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes_the_store() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns();
        let mut requests = Vec::new();
        for i in 0..8u128 {
            let body = checkout_protobuf(0x1000 + i, t0 + i as u64);
            let request = s
                .http
                .post(s.url("/v1/traces"))
                .header("content-type", PROTOBUF)
                .bearer_auth(&s.ingest)
                .body(body)
                .send();
            requests.push(tokio::spawn(request));
        }
        for r in requests {
            assert_eq!(r.await.unwrap().expect("answered").status(), 200);
        }
        let addr = s.server.local_addr();
        let report = s.server.shutdown().await.expect("a clean shutdown");
        assert!(report.requests_drained);
        // No longer listening.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        // The data directory reopens with everything acknowledged.
        let store =
            omegi_store::Store::open(s.dir.path().join(STORE_DIR)).expect("the store reopens");
        let summary = store.stats().summary().unwrap();
        assert_eq!(summary.spans, 24);
        assert_eq!(summary.issues, 1);
        assert_eq!(
            store
                .traces()
                .spans("default", omegi_core::TraceId(0x1007))
                .unwrap()
                .len(),
            3
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_a_data_directory() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns();
        for i in 0..3u128 {
            let (status, _) = s
                .post_otlp(
                    "/v1/traces",
                    PROTOBUF,
                    Some(&s.ingest),
                    checkout_protobuf(0x2000 + i, t0 + i as u64),
                )
                .await;
            assert_eq!(status, 200);
        }
        // While the server holds the directory, export refuses.
        let file = s.dir.path().join("backup.jsonl");
        let file_arg = file.display().to_string();
        let locked = offline_cli(s.dir.path(), &["export", &file_arg]).await;
        assert!(locked.is_err(), "{locked:?}");
        s.server.shutdown().await.expect("a clean shutdown");

        let said = offline_cli(s.dir.path(), &["export", &file_arg])
            .await
            .expect("export succeeds");
        assert!(
            said.contains("9 spans, 3 settled traces, 1 issues, 3 occurrences"),
            "{said}"
        );

        let fresh = tempfile::tempdir().unwrap();
        let said = offline_cli(fresh.path(), &["import", &file_arg, "--accounts"])
            .await
            .expect("import succeeds");
        assert!(
            said.contains("9 spans, 3 settled traces, 1 issues, 3 occurrences"),
            "{said}"
        );
        assert!(
            said.contains("accounts imported: 1 projects, 1 users"),
            "{said}"
        );
        // The new directory holds the same data: its export is the same text.
        let again = fresh.path().join("again.jsonl");
        offline_cli(fresh.path(), &["export", &again.display().to_string()])
            .await
            .expect("export of the copy succeeds");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            std::fs::read_to_string(&again).unwrap()
        );
        let store = omegi_store::Store::open(fresh.path().join(STORE_DIR)).unwrap();
        assert_eq!(
            store
                .traces()
                .spans("default", omegi_core::TraceId(0x2002))
                .unwrap()
                .len(),
            3
        );
        drop(store);

        // Importing over an existing store, or a file that is not an
        // export, is refused and leaves nothing behind.
        let over = offline_cli(fresh.path(), &["import", &file_arg]).await;
        assert!(over.unwrap_err().contains("already holds a store"));
        let empty = tempfile::tempdir().unwrap();
        let junk = empty.path().join("junk.jsonl");
        std::fs::write(&junk, "not json\n").unwrap();
        let bad = offline_cli(empty.path(), &["import", &junk.display().to_string()]).await;
        assert!(bad.unwrap_err().contains("line 1"));
        assert!(!empty.path().join(STORE_DIR).exists());
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_traces_and_keeps_issues() {
    tokio::time::timeout(LIMIT, async {
        // Spans up to 3 hours old are accepted, and deleted after one hour.
        let mut limits = omegi_server::otlp::Limits::default();
        limits.max_age = Some(Duration::from_secs(3 * 3600));
        let s = TestServer::start_with(|c| {
            c.retention(Some(Duration::from_secs(3600)))
                .retention_interval(Duration::from_millis(100))
                .limits(limits)
        })
        .await;
        let ingest = Some(s.ingest.as_str());
        let now = now_ns();
        let (old, fresh) = (0xa1u128, 0xb2u128);
        for (trace, t0) in [(old, now - 2 * 3_600_000_000_000), (fresh, now)] {
            let (status, _) = s
                .post_otlp(
                    "/v1/traces",
                    "application/json",
                    ingest,
                    checkout_json(trace, t0),
                )
                .await;
            assert_eq!(status, 200);
        }
        let listed = |traces: &[Value]| -> Vec<String> {
            traces
                .iter()
                .map(|t| t["trace_id"].as_str().expect("a trace id").to_owned())
                .collect()
        };
        // The background pass removes the trace from two hours ago.
        loop {
            let traces: Vec<Value> = s.api("/api/traces?limit=10").await;
            let ids = listed(&traces);
            assert!(ids.contains(&format!("{fresh:032x}")), "{ids:?}");
            if !ids.contains(&format!("{old:032x}")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let response = s
            .http
            .get(s.url(&format!("/api/traces/{old:032x}")))
            .bearer_auth(&s.user)
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status(), 404);
        // What was remembered of the old trace's settle goes too; the
        // fresh one's stays.
        let store = s.server.store();
        let trace = omegi_core::TraceId;
        while store
            .traces()
            .settlement("default", trace(old))
            .unwrap()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(store
            .traces()
            .settlement("default", trace(fresh))
            .unwrap()
            .is_some());
        // The issue stays, with both occurrences counted.
        let issues: Vec<IssueView> = s.api("/api/issues?status=all").await;
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].issue.count, 2);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_create_projects_and_users() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let post = |token: String, path: &'static str, body: Value| {
            let request = s
                .http
                .post(s.url(path))
                .bearer_auth(token)
                .json(&body)
                .send();
            async move {
                let response = request.await.expect("the API answers");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            }
        };
        // The first user, `admin`, creates a user who is not an admin...
        let (status, kim) = post(s.user.clone(), "/api/users", json!({ "login": "kim" })).await;
        assert_eq!(status, 201, "{kim}");
        let kim = kim["token"].as_str().expect("a token").to_owned();
        // ...who may use the API but not create accounts.
        let issues: Vec<IssueView> = {
            let response = s
                .http
                .get(s.url("/api/issues"))
                .bearer_auth(&kim)
                .send()
                .await
                .expect("the API answers");
            assert_eq!(response.status(), 200);
            response.json().await.expect("JSON")
        };
        assert!(issues.is_empty());
        for (path, body) in [
            ("/api/users", json!({ "login": "eve" })),
            ("/api/projects", json!({ "id": "eve" })),
        ] {
            let (status, answer) = post(kim.clone(), path, body).await;
            assert_eq!(status, 403, "{path}: {answer}");
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("only an admin"),
                "{answer}"
            );
        }
        // An admin may make another admin, who may create a project.
        let (status, lee) = post(
            s.user.clone(),
            "/api/users",
            json!({ "login": "lee", "admin": true }),
        )
        .await;
        assert_eq!(status, 201, "{lee}");
        let lee = lee["token"].as_str().expect("a token").to_owned();
        let (status, shop) = post(lee, "/api/projects", json!({ "id": "shop" })).await;
        assert_eq!(status, 201, "{shop}");
        let users: Vec<Value> = s.api("/api/users").await;
        let admins: Vec<&str> = users
            .iter()
            .filter(|u| u["admin"] == true)
            .map(|u| u["login"].as_str().unwrap())
            .collect();
        assert_eq!(admins, ["admin", "lee"]);
        let out = s.run_cli(&["users"]).await;
        assert_eq!(out, "admin  admin\nkim\nlee  admin\n");
        let projects: Vec<Value> = s.api("/api/projects").await;
        assert_eq!(projects.len(), 2);

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_answers_503_with_retry_after() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(LIMIT, async {
        let body = checkout_json(0x5a, now_ns());
        // Room for one body in flight (and a few bytes more), waited for
        // 100 ms.
        let room = body.len() + 16;
        let s = TestServer::start_with(|c| {
            c.ingest_limit(1, Duration::from_millis(100))
                .body_limit(room)
                .bodies_in_flight(Some(room), Some(room))
        })
        .await;
        // A client that sends its headers and half its body, then stalls:
        // the room its `Content-Length` announces is taken as its first
        // bytes arrive.
        let mut slow = tokio::net::TcpStream::connect(s.server.local_addr())
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: omegi\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            s.ingest,
            body.len()
        );
        let (first, rest) = body.split_at(body.len() / 2);
        slow.write_all(head.as_bytes()).await.unwrap();
        slow.write_all(first).await.unwrap();
        // Wait until the slow request has taken the room: a probe is then
        // turned away after the wait.
        let mut stored = 0;
        let response = loop {
            let response = s
                .http
                .post(s.url("/v1/traces"))
                .header("content-type", JSON)
                .bearer_auth(&s.ingest)
                .body(checkout_json(0x5b00 + stored, now_ns()))
                .send()
                .await
                .expect("answered");
            if response.status() == 503 {
                break response;
            }
            assert_eq!(response.status(), 200);
            stored += 1;
        };
        assert_eq!(response.headers()["retry-after"], "1");
        let answer: Value = response.json().await.expect("a JSON status");
        assert_eq!(answer["code"], 14, "{answer}");
        // The slow client finishes and is answered.
        slow.write_all(rest).await.unwrap();
        let mut reply = String::new();
        slow.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // The room is free again, and the turned-away request was not stored.
        let (status, _) = s
            .post_otlp(
                "/v1/traces",
                JSON,
                Some(&s.ingest),
                checkout_json(0x5c, now_ns()),
            )
            .await;
        assert_eq!(status, 200);
        let traces: Vec<Value> = s.api("/api/traces?limit=1000").await;
        assert_eq!(traces.len() as u128, stored + 2);
        assert!(traces
            .iter()
            .any(|t| t["trace_id"] == format!("{:032x}", 0x5a)));
        assert!(traces
            .iter()
            .any(|t| t["trace_id"] == format!("{:032x}", 0x5c)));

        s.server.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("within the time limit");
}

/// An error is printed with each of its causes once: `omegi serve` on an
/// address that is taken says which address and why, and the operating
/// system's reason appears one time.
#[test]
fn a_taken_address_is_reported_with_its_cause_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_omegi"))
        .args([
            "--data",
            &data.path().display().to_string(),
            "serve",
            "--listen",
            &addr,
            "--otlp-http-listen",
            "off",
            "--grpc-listen",
            "off",
        ])
        .env("OMEGI_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("omegi serve kept running on a taken address");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with(&format!("omegi: cannot listen on {addr}: ")),
        "{stderr}"
    );
    // The operating system's reason ("Address already in use (os error
    // 98)"), once.
    assert_eq!(line.matches("os error").count(), 1, "{line}");
    drop(taken);
}
