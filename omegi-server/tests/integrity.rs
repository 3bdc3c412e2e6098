//! Integrity of OTLP ingest over HTTP: a trace id sent to two projects is
//! two traces in every trace route, a retried request is stored and counted
//! once, and a request that is not answered 200 leaves nothing.

mod common;

use std::time::Duration;

use common::TestServer;
use omegi_server::api::views::TraceView;
use serde_json::{json, Value};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

const JSON: &str = "application/json";

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

/// A span of an OTLP/JSON request: id, parent, name, start offset (ns).
struct Span<'a> {
    id: u64,
    parent: Option<u64>,
    name: &'a str,
    start: u64,
    /// An `exception` event with this message.
    exception: Option<&'a str>,
}

/// An OTLP/JSON `/v1/traces` body: spans of one trace from one service.
fn traces_json(service: &str, trace: u128, t0: u64, spans: &[Span<'_>]) -> Vec<u8> {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": format!("{trace:032x}"),
                "spanId": format!("{:016x}", s.id),
                "parentSpanId": s.parent.map(|p| format!("{p:016x}")).unwrap_or_default(),
                "name": s.name,
                "kind": 2,
                "startTimeUnixNano": (t0 + s.start).to_string(),
                "endTimeUnixNano": (t0 + s.start + 5_000_000).to_string(),
            });
            if let Some(message) = s.exception {
                span["status"] = json!({ "code": 2, "message": message });
                span["events"] = json!([{
                    "timeUnixNano": (t0 + s.start + 1_000_000).to_string(),
                    "name": "exception",
                    "attributes": [
                        { "key": "exception.type", "value": { "stringValue": "PaymentError" } },
                        { "key": "exception.message", "value": { "stringValue": message } },
                    ],
                }]);
            }
            span
        })
        .collect();
    json!({ "resourceSpans": [{
        "resource": { "attributes": [
            { "key": "service.name", "value": { "stringValue": service } },
        ] },
        "scopeSpans": [{ "spans": spans }],
    }] })
    .to_string()
    .into_bytes()
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn send(&self, token: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/v1/traces"))
            .header("content-type", JSON)
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("the request is answered");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("a body");
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("a JSON body")
        };
        (status, body)
    }

    /// `GET path` with the admin's token: the status and the JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.user)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn api(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates a project and returns its ingest token.
    async fn project(&self, id: &str) -> String {
        let response = self
            .http
            .post(self.url("/api/projects"))
            .bearer_auth(&self.user)
            .json(&json!({ "id": id }))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(response.status(), 201, "POST /api/projects");
        let body: Value = response.json().await.expect("JSON");
        body["token"].as_str().expect("a token").to_owned()
    }
}

fn span_names(trace: &Value) -> Vec<String> {
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["span"]["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_sent_to_two_projects_is_two_traces_in_every_route() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let other = s.project("other").await;
        let trace = 0x5b8e_fff7_9803_8103_d269_b633_813f_c60c_u128;
        let t0 = now_ns() - 60_000_000_000;
        let checkout = [
            Span {
                id: 1,
                parent: None,
                name: "POST /checkout",
                start: 0,
                exception: None,
            },
            Span {
                id: 2,
                parent: Some(1),
                name: "charge",
                start: 1_000_000,
                exception: Some("card declined"),
            },
        ];
        let (status, _) = s
            .send(&s.ingest, traces_json("payment", trace, t0, &checkout))
            .await;
        assert_eq!(status, 200);
        // Another project's token: the same trace and span id, earlier.
        let hacked = [Span {
            id: 1,
            parent: None,
            name: "HACKED",
            start: 0,
            exception: None,
        }];
        let (status, _) = s
            .send(
                &other,
                traces_json("evil", trace, t0 - 30_000_000_000, &hacked),
            )
            .await;
        assert_eq!(status, 200);

        // The detail route: each project's own spans; without `project`,
        // the caller reads both, so it must say which.
        let id = format!("{trace:032x}");
        let mine = s.api(&format!("/api/traces/{id}?project=default")).await;
        assert_eq!(span_names(&mine), ["POST /checkout", "charge"]);
        assert_eq!(mine["summary"]["project"], "default");
        let theirs = s.api(&format!("/api/traces/{id}?project=other")).await;
        assert_eq!(span_names(&theirs), ["HACKED"]);
        let (status, body) = s.get(&format!("/api/traces/{id}")).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("?project="),
            "{body}"
        );
        let (status, _) = s.get(&format!("/api/traces/{id}?project=nope")).await;
        assert_eq!(status, 404);

        // Lists: one trace per project, each with its own start.
        let listed = s.api("/api/traces?project=default&since=1h").await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["span_count"], 2);
        assert_eq!(listed[0]["start_ns"], t0);
        let all = s.api("/api/traces?since=1h").await;
        let projects: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["project"].as_str().unwrap())
            .collect();
        assert_eq!(projects, ["default", "other"]);

        // The issue's flow reads the trace of the issue's project.
        let issues = s.api("/api/issues?project=default").await;
        let issue = issues[0]["id"].as_str().unwrap().replacen(':', "/", 1);
        let flow = s.api(&format!("/api/issues/{issue}/flow")).await;
        let waterfall = flow["waterfall"].as_str().unwrap();
        assert!(waterfall.contains("POST /checkout"), "{waterfall}");
        assert!(!waterfall.contains("HACKED"), "{waterfall}");

        // The CLI names the project when it has to.
        let err = s.try_cli(&["flow", &id]).await.unwrap_err();
        assert!(err.contains("?project="), "{err}");
        let out = s.run_cli(&["flow", &id, "--project", "default"]).await;
        assert!(
            out.contains("POST /checkout") && !out.contains("HACKED"),
            "{out}"
        );
        let view: TraceView = serde_json::from_value(theirs).unwrap();
        assert_eq!(view.summary.unwrap().project, "other");
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_three_times_is_stored_and_counted_once() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns() - 60_000_000_000;
        let body = traces_json(
            "payment",
            0xabc,
            t0,
            &[
                Span {
                    id: 1,
                    parent: None,
                    name: "POST /checkout",
                    start: 0,
                    exception: None,
                },
                Span {
                    id: 2,
                    parent: Some(1),
                    name: "charge",
                    start: 1_000_000,
                    exception: Some("card declined"),
                },
            ],
        );
        let observe = || async {
            let stats = s.api("/api/stats?project=default&since=1h").await;
            let issues = s.api("/api/issues?project=default&status=all").await;
            let issue = issues[0]["id"].as_str().unwrap().replacen(':', "/", 1);
            let occurrences = s.api(&format!("/api/issues/{issue}/occurrences")).await;
            let traces = s.api("/api/traces?project=default&since=1h").await;
            (
                stats["summary"]["projects"].clone(),
                stats["projects"].clone(),
                issues,
                occurrences,
                traces,
            )
        };
        assert_eq!(s.send(&s.ingest, body.clone()).await.0, 200);
        let first = observe().await;
        assert_eq!(first.0[0]["spans"], 2);
        assert_eq!(first.0[0]["errors"], 1);
        assert_eq!(first.2[0]["count"], 1);
        for _ in 0..2 {
            assert_eq!(s.send(&s.ingest, body.clone()).await.0, 200);
            assert_eq!(observe().await, first);
        }
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_answered_200_stores_nothing() {
    tokio::time::timeout(LIMIT, async {
        let s = TestServer::start().await;
        let t0 = now_ns() - 60_000_000_000;
        // A service name of 70,000 bytes: more than the store keeps in a
        // key. Either the request is refused whole (400 with a Status
        // body), or it is stored whole.
        let service = "x".repeat(70_000);
        let spans = [
            Span {
                id: 1,
                parent: None,
                name: "POST /checkout",
                start: 0,
                exception: None,
            },
            Span {
                id: 2,
                parent: Some(1),
                name: "charge",
                start: 1_000_000,
                exception: Some("card declined"),
            },
        ];
        let (status, body) = s
            .send(&s.ingest, traces_json(&service, 0xdef, t0, &spans))
            .await;
        let stats = s.api("/api/stats?project=default&since=1h").await;
        let issues = s.api("/api/issues?project=default&status=all").await;
        let (trace_status, _) = s.get(&format!("/api/traces/{:032x}", 0xdef)).await;
        match status {
            400 => {
                assert_eq!(body["code"], 3, "{body}");
                assert!(
                    body["message"].as_str().unwrap().contains("service"),
                    "{body}"
                );
                assert_eq!(stats["summary"]["spans"], 0);
                assert_eq!(issues, json!([]));
                assert_eq!(trace_status, 404);
            }
            200 => {
                assert_eq!(stats["summary"]["spans"], 2);
                assert_eq!(issues[0]["count"], 1);
                assert_eq!(trace_status, 200);
            }
            other => panic!("answered {other}: {body}"),
        }
        // A good request goes through after it.
        let (status, _) = s
            .send(&s.ingest, traces_json("payment", 0xfed, t0, &spans))
            .await;
        assert_eq!(status, 200);
        let (status, _) = s.get(&format!("/api/traces/{:032x}", 0xfed)).await;
        assert_eq!(status, 200);
    })
    .await
    .expect("the test finishes in time");
}
