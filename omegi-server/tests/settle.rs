//! One failure is one issue when the trace arrives in several requests:
//! three services export their spans separately (as every OpenTelemetry
//! SDK does), in any order, some after the trace settled; the failure where
//! it started is the issue, the failures it caused are its consequences.

use std::time::Duration;

use omegi_core::flow::TailSampling;
use omegi_core::{Fingerprint, TraceId};
use omegi_server::otlp::Limits;
use omegi_server::server::ServeConfig;
use omegi_server::settle::SettleConfig;
use omegi_store::{Issue, IssueQuery, Occurrence};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;

mod common;

use common::{kv, TestServer};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(60);

const WEB: u64 = 1;
const GATEWAY: u64 = 2;
const GATEWAY_CLIENT: u64 = 3;
const BILLING: u64 = 4;
const STOCK: u64 = 5;

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

struct SpanSpec {
    id: u64,
    parent: Option<u64>,
    name: &'static str,
    kind: i32,
    failed: Option<&'static str>,
    exception: Option<(&'static str, &'static str)>,
}

fn span(trace: u128, t0: u64, s: &SpanSpec) -> pt::Span {
    let mut span = pt::Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: (s.id + ((trace as u64) << 8)).to_be_bytes().to_vec(),
        parent_span_id: s
            .parent
            .map(|p| (p + ((trace as u64) << 8)).to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: s.name.into(),
        kind: s.kind,
        start_time_unix_nano: t0 + s.id * 1_000_000,
        end_time_unix_nano: t0 + 100_000_000 - s.id * 1_000_000,
        ..Default::default()
    };
    if let Some(message) = s.failed {
        span.status = Some(pt::Status {
            code: 2,
            message: message.into(),
        });
    }
    if let Some((ty, message)) = s.exception {
        span.events.push(pt::span::Event {
            time_unix_nano: t0 + 50_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", ty), kv("exception.message", message)],
            ..Default::default()
        });
    }
    span
}

/// One process's export request: its spans of `trace`.
fn export(service: &str, trace: u128, t0: u64, spans: &[SpanSpec]) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(PResource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: format!("{service}::http"),
                    ..Default::default()
                }),
                spans: spans.iter().map(|s| span(trace, t0, s)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The web front end: its server span fails because the gateway did.
fn web(trace: u128, t0: u64) -> Vec<u8> {
    export(
        "web",
        trace,
        t0,
        &[SpanSpec {
            id: WEB,
            parent: None,
            name: "POST /checkout",
            kind: 2,
            failed: Some("checkout failed"),
            exception: None,
        }],
    )
}

/// The gateway: its server span and its client span to billing fail with
/// "billing failed", as the HTTP instrumentations do for a 5xx answer.
fn gateway(trace: u128, t0: u64) -> Vec<u8> {
    export(
        "gateway",
        trace,
        t0,
        &[
            SpanSpec {
                id: GATEWAY,
                parent: Some(WEB),
                name: "POST /orders",
                kind: 2,
                failed: Some("billing failed"),
                exception: None,
            },
            SpanSpec {
                id: GATEWAY_CLIENT,
                parent: Some(GATEWAY),
                name: "POST billing/charge",
                kind: 3,
                failed: Some("billing failed"),
                exception: None,
            },
        ],
    )
}

/// Billing: the failure where it started, an exception.
fn billing(trace: u128, t0: u64) -> Vec<u8> {
    export(
        "billing",
        trace,
        t0,
        &[SpanSpec {
            id: BILLING,
            parent: Some(GATEWAY_CLIENT),
            name: "POST /charge",
            kind: 2,
            failed: Some("LedgerError: ledger offline"),
            exception: Some(("LedgerError", "ledger offline")),
        }],
    )
}

/// Stock, called by the gateway next to billing: failing on its own.
fn stock_failing(trace: u128, t0: u64) -> Vec<u8> {
    export(
        "stock",
        trace,
        t0,
        &[SpanSpec {
            id: STOCK,
            parent: Some(GATEWAY),
            name: "POST /reserve",
            kind: 2,
            failed: Some("no stock"),
            exception: Some(("StockError", "no stock")),
        }],
    )
}

impl TestServer {
    async fn send(&self, body: Vec<u8>) {
        let response = self
            .http
            .post(format!("{}/v1/traces", self.server.url()))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(&self.ingest)
            .body(body)
            .send()
            .await
            .expect("the request is answered");
        assert_eq!(response.status(), 200);
    }

    /// Waits until nothing waits in the window and at least `settled`
    /// traces settled since the start.
    async fn settled(&self, settled: u64) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let stats = self.server.settle_stats();
            if stats.waiting_traces == 0 && stats.settled >= settled {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "traces did not settle: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn all_issues(&self) -> Vec<Issue> {
        self.server
            .store()
            .issues()
            .list("default", &IssueQuery::all())
            .expect("issues")
    }

    fn occurrences_of(&self, fingerprint: &Fingerprint) -> Vec<Occurrence> {
        self.server
            .store()
            .issues()
            .occurrences("default", fingerprint, 0, u64::MAX, 1_000)
            .expect("occurrences")
    }
}

async fn windowed() -> TestServer {
    TestServer::start_with(|c: ServeConfig| {
        c.settle(
            SettleConfig::default()
                .trace_wait(Duration::from_millis(200))
                .sampling(TailSampling::keep_all()),
        )
    })
    .await
}

/// The one issue of the billing failure, with its consequences in every
/// occurrence: the gateway's client span, its server span, the web's.
fn assert_one_billing_issue(s: &TestServer, traces: usize) {
    let issues = s.all_issues();
    let titles: Vec<&str> = issues.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(issues.len(), 1, "one failure, one issue: {titles:?}");
    let issue = &issues[0];
    assert_eq!(issue.latest_error.service, "billing");
    assert_eq!(issue.latest_error.message, "ledger offline");
    assert_eq!(issue.count, traces as u64);
    let occurrences = s.occurrences_of(&issue.fingerprint);
    assert_eq!(occurrences.len(), traces);
    for occurrence in &occurrences {
        let caused: Vec<(&str, &str, Option<&str>)> = occurrence
            .consequences
            .iter()
            .map(|c| {
                (
                    c.service.as_str(),
                    c.span_name.as_str(),
                    c.status_message.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            caused,
            [
                ("gateway", "POST billing/charge", Some("billing failed")),
                ("gateway", "POST /orders", Some("billing failed")),
                ("web", "POST /checkout", Some("checkout failed")),
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_in_any_order_are_one_issue_with_its_consequences() {
    tokio::time::timeout(LIMIT, async {
        let s = windowed().await;
        let t0 = now_ns() - 1_000_000_000;
        // Every order of the three exports, one trace each.
        let orders: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for (i, order) in orders.iter().enumerate() {
            let trace = 0x100 + i as u128;
            for &part in order {
                let body = match part {
                    0 => web(trace, t0),
                    1 => gateway(trace, t0),
                    _ => billing(trace, t0),
                };
                s.send(body).await;
            }
        }
        s.settled(orders.len() as u64).await;
        assert_one_billing_issue(&s, orders.len());
        // Each trace is whole: 4 spans.
        for i in 0..orders.len() {
            let spans = s
                .server
                .store()
                .traces()
                .spans("default", TraceId(0x100 + i as u128))
                .unwrap();
            assert_eq!(spans.len(), 4);
        }
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_the_window_takes_back_the_provisional_issue() {
    tokio::time::timeout(LIMIT, async {
        let s = windowed().await;
        let t0 = now_ns() - 1_000_000_000;
        let trace = 0x200;
        s.send(web(trace, t0)).await;
        s.send(gateway(trace, t0)).await;
        s.settled(1).await;
        // Settled without billing: the gateway's failure is all there is.
        let issues = s.all_issues();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].latest_error.message, "billing failed");
        let provisional = issues[0].fingerprint.clone();
        // Billing's batch arrives late: its failure is the cause.
        s.send(billing(trace, t0)).await;
        s.settled(2).await;
        assert_one_billing_issue(&s, 1);
        assert!(
            s.server
                .store()
                .issues()
                .get("default", &provisional)
                .unwrap()
                .is_none(),
            "the provisional issue is taken back"
        );
        let totals = s.server.store().stats().sampling_totals("default").unwrap();
        assert_eq!(totals.late_spans, 1);
        assert_eq!(totals.retracted, 1);
        assert_eq!(totals.traces, 1);
        assert_eq!(totals.spans, 4);
        // Sent again (an exporter's retry): nothing changes.
        s.send(billing(trace, t0)).await;
        s.send(gateway(trace, t0)).await;
        s.settled(3).await;
        assert_one_billing_issue(&s, 1);
        assert_eq!(
            s.server.store().stats().sampling_totals("default").unwrap(),
            totals
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_failure_in_another_branch_is_a_second_issue() {
    tokio::time::timeout(LIMIT, async {
        let s = windowed().await;
        let t0 = now_ns() - 1_000_000_000;
        let trace = 0x300;
        s.send(stock_failing(trace, t0)).await;
        s.send(billing(trace, t0)).await;
        s.send(web(trace, t0)).await;
        s.send(gateway(trace, t0)).await;
        s.settled(1).await;
        let mut issues = s.all_issues();
        issues.sort_by(|a, b| a.latest_error.service.cmp(&b.latest_error.service));
        let causes: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| {
                (
                    i.latest_error.service.as_str(),
                    i.latest_error.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            causes,
            [("billing", "ledger offline"), ("stock", "no stock")]
        );
        // The gateway's server span and the web's failed because of both.
        let stock = s.occurrences_of(&issues[1].fingerprint);
        let caused: Vec<&str> = stock[0]
            .consequences
            .iter()
            .map(|c| c.span_name.as_str())
            .collect();
        assert_eq!(caused, ["POST /orders", "POST /checkout"]);
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_window_each_request_settles_and_later_parts_correct_it() {
    tokio::time::timeout(LIMIT, async {
        // The shared test server: `--trace-wait 0`.
        let s = TestServer::start().await;
        let t0 = now_ns() - 1_000_000_000;
        let trace = 0x400;
        s.send(gateway(trace, t0)).await;
        assert_eq!(s.all_issues().len(), 1, "stored before the answer");
        s.send(web(trace, t0)).await;
        s.send(billing(trace, t0)).await;
        assert_one_billing_issue(&s, 1);
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failure_in_a_healthy_settled_trace_creates_its_issue() {
    tokio::time::timeout(LIMIT, async {
        let s = windowed().await;
        let t0 = now_ns() - 1_000_000_000;
        let trace = 0x500;
        let healthy = export(
            "gateway",
            trace,
            t0,
            &[SpanSpec {
                id: GATEWAY,
                parent: None,
                name: "POST /orders",
                kind: 2,
                failed: None,
                exception: None,
            }],
        );
        s.send(healthy).await;
        s.settled(1).await;
        assert!(s.all_issues().is_empty());
        assert_eq!(
            s.server
                .store()
                .traces()
                .spans("default", TraceId(trace))
                .unwrap()
                .len(),
            1
        );
        s.send(stock_failing(trace, t0)).await;
        s.settled(2).await;
        let issues = s.all_issues();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].latest_error.message, "no stock");
        // Attached to the stored trace.
        assert_eq!(
            s.server
                .store()
                .traces()
                .spans("default", TraceId(trace))
                .unwrap()
                .len(),
            2
        );
        let settled = s
            .server
            .store()
            .traces()
            .settlement("default", TraceId(trace))
            .unwrap()
            .expect("settled");
        assert!(settled.failed && settled.kept);
        assert_eq!(settled.span_count, 2);
    })
    .await
    .expect("the test finishes in time");
}

/// One resource's spans of many traces.
fn resource_spans(service: &str, spans: Vec<pt::Span>) -> pt::ResourceSpans {
    pt::ResourceSpans {
        resource: Some(PResource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![pt::ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_keeps_failed_and_slow_traces_whole_and_counts_every_trace() {
    tokio::time::timeout(LIMIT, async {
        const TRACES: u64 = 10_000;
        const RATE: f64 = 0.1;
        let s = TestServer::start_with(|c: ServeConfig| {
            c.settle(
                SettleConfig::default()
                    .trace_wait(Duration::from_millis(200))
                    .sampling(
                        TailSampling::new(RATE).keep_slower_than(Some(Duration::from_secs(1))),
                    ),
            )
        })
        .await;
        let t0 = now_ns() - 60_000_000_000;
        // Trace n: gateway GET /orders/{id} calling billing; every 100th
        // fails in billing, every 100th (offset 50) takes 1.5 s.
        let failing = |n: u64| n.is_multiple_of(100);
        let slow = |n: u64| n % 100 == 50;
        let trace_id = |n: u64| 0x5a00_0000_u128 + u128::from(n);
        for batch in 0..(TRACES / 100) {
            let (mut gateway, mut billing) = (Vec::new(), Vec::new());
            for n in batch * 100..(batch + 1) * 100 {
                let trace = trace_id(n).to_be_bytes().to_vec();
                let start = t0 + n * 1_000_000;
                let duration = if slow(n) { 1_500_000_000 } else { 10_000_000 };
                gateway.push(pt::Span {
                    trace_id: trace.clone(),
                    span_id: (2 * n + 1).to_be_bytes().to_vec(),
                    name: format!("GET /orders/{n}"),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + duration,
                    attributes: vec![
                        kv("http.route", "/orders/{id}"),
                        kv("http.request.method", "GET"),
                    ],
                    ..Default::default()
                });
                let mut charge = pt::Span {
                    trace_id: trace,
                    span_id: (2 * n + 2).to_be_bytes().to_vec(),
                    parent_span_id: (2 * n + 1).to_be_bytes().to_vec(),
                    name: "POST /charge".into(),
                    kind: 2,
                    start_time_unix_nano: start + 1_000_000,
                    end_time_unix_nano: start + duration - 1_000_000,
                    ..Default::default()
                };
                if failing(n) {
                    charge.status = Some(pt::Status {
                        code: 2,
                        message: "ledger offline".into(),
                    });
                }
                billing.push(charge);
            }
            let body = ExportTraceServiceRequest {
                resource_spans: vec![
                    resource_spans("gateway", gateway),
                    resource_spans("billing", billing),
                ],
            }
            .encode_to_vec();
            s.send(body).await;
        }
        s.settled(TRACES).await;
        let store = s.server.store();
        let mut healthy_kept = 0u64;
        for n in 0..TRACES {
            let spans = store
                .traces()
                .spans("default", TraceId(trace_id(n)))
                .unwrap();
            let settled = store
                .traces()
                .settlement("default", TraceId(trace_id(n)))
                .unwrap()
                .expect("every trace settled");
            assert_eq!(settled.span_count, 2);
            if failing(n) || slow(n) {
                assert_eq!(spans.len(), 2, "trace {n} is stored whole");
                assert!(settled.kept);
            } else {
                assert!(
                    spans.is_empty() || spans.len() == 2,
                    "trace {n}: whole or not at all"
                );
                assert_eq!(settled.kept, spans.len() == 2);
                healthy_kept += u64::from(settled.kept);
            }
        }
        // The rate, within three standard deviations.
        let healthy = (TRACES - TRACES / 50) as f64;
        let (mean, sigma) = (healthy * RATE, (healthy * RATE * (1.0 - RATE)).sqrt());
        assert!(
            (healthy_kept as f64 - mean).abs() <= 3.0 * sigma,
            "{healthy_kept} healthy traces kept, expected {mean} ± {}",
            3.0 * sigma
        );
        // The dashboard counts every trace, kept or not.
        let stats: serde_json::Value = s
            .http
            .get(format!(
                "{}/api/stats?project=default&since=1d&bucket=day",
                s.server.url()
            ))
            .bearer_auth(&s.user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            stats["summary"]["spans"],
            2 * TRACES,
            "{}",
            stats["summary"]
        );
        assert_eq!(stats["summary"]["errors"], TRACES / 100);
        let project = &stats["projects"][0];
        let sampling = &project["sampling"];
        assert_eq!(sampling["traces"], TRACES);
        assert_eq!(sampling["spans"], 2 * TRACES);
        assert_eq!(sampling["kept_traces"], TRACES / 50 + healthy_kept);
        assert_eq!(sampling["kept_spans"], 2 * (TRACES / 50 + healthy_kept));
        let route = |service: &str, route: &str| {
            project["routes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["service"] == service && r["route"] == route)
                .cloned()
                .unwrap_or_else(|| panic!("no route {service} {route}: {}", project["routes"]))
        };
        let orders = route("gateway", "GET /orders/{id}");
        assert_eq!(orders["requests"], TRACES);
        assert_eq!(orders["errors"], 0);
        assert_eq!(orders["max_ns"], 1_500_000_000u64);
        let charge = route("billing", "POST /charge");
        assert_eq!(charge["requests"], TRACES);
        assert_eq!(charge["errors"], TRACES / 100);
        let edges = stats["dependencies"].as_array().unwrap();
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0]["caller"], "gateway");
        assert_eq!(edges[0]["callee"], "billing");
        assert_eq!(edges[0]["calls"], TRACES);
        assert_eq!(edges[0]["errors"], TRACES / 100);
        // A trace sampled out is said to be, not missing.
        let out = (0..TRACES)
            .find(|&n| {
                !failing(n)
                    && !slow(n)
                    && store
                        .traces()
                        .spans("default", TraceId(trace_id(n)))
                        .unwrap()
                        .is_empty()
            })
            .expect("some healthy trace was sampled out");
        let response = s
            .http
            .get(format!(
                "{}/api/traces/{:032x}?project=default",
                s.server.url(),
                trace_id(out)
            ))
            .bearer_auth(&s.user)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let view: serde_json::Value = response.json().await.unwrap();
        assert_eq!(view["settlement"]["kept"], false);
        assert_eq!(view["spans"].as_array().unwrap().len(), 0);
    })
    .await
    .expect("the test finishes in time");
}

/// The dashboard of the default project as `/api/stats` answers it.
async fn dashboard(s: &TestServer) -> serde_json::Value {
    s.http
        .get(format!(
            "{}/api/stats?project=default&since=1d&bucket=hour",
            s.server.url()
        ))
        .bearer_auth(&s.user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_keep_settled_traces_statistics_and_consequences() {
    tokio::time::timeout(LIMIT, async {
        const TRACES: u128 = 200;
        let sampled = || {
            SettleConfig::default()
                .trace_wait(Duration::from_millis(200))
                .sampling(TailSampling::new(0.1))
        };
        let a = TestServer::start_with(|c: ServeConfig| c.settle(sampled())).await;
        let t0 = now_ns() - 1_000_000_000;
        // Every tenth trace fails in billing (one issue, its consequences
        // in the gateway and the web); the others are healthy, sampled.
        let failing = |trace: u128| trace.is_multiple_of(10);
        for trace in 0x700..0x700 + TRACES {
            send_trace(&a, trace, t0, failing(trace)).await;
        }
        a.settled(TRACES as u64).await;
        let mut file = Vec::new();
        let exported = a.server.store().export(&mut file).unwrap();
        assert_eq!(exported.settled, TRACES as u64);
        assert!(exported.traffic > 0);

        let b = TestServer::start_with(|c: ServeConfig| c.settle(sampled())).await;
        let imported = b
            .server
            .store()
            .import_with(&file[..], omegi_store::ImportOptions::data_only())
            .unwrap();
        assert_eq!(imported.settled, exported.settled);
        assert_eq!(imported.traffic, exported.traffic);

        // The dashboard: counts, sampling, routes, calls between services.
        let (before, after) = (dashboard(&a).await, dashboard(&b).await);
        for field in ["summary", "projects", "dependencies"] {
            assert_eq!(before[field], after[field], "{field}");
        }
        let sampling = &after["projects"][0]["sampling"];
        assert_eq!(sampling["traces"], TRACES as u64);
        assert!(
            sampling["sampled_out_traces"].as_u64().unwrap() > 0,
            "{sampling}"
        );
        assert!(!after["dependencies"].as_array().unwrap().is_empty());
        // Every trace settled the same way; sampled out ones say so.
        let mut out = 0;
        for trace in 0x700..0x700 + TRACES {
            let id = TraceId(trace);
            let (x, y) = (
                a.server.store().traces().settlement("default", id).unwrap(),
                b.server.store().traces().settlement("default", id).unwrap(),
            );
            assert_eq!(x, y, "trace {trace:x}");
            let y = y.expect("settled");
            if failing(trace) {
                assert!(y.kept, "a failed trace is kept: {trace:x}");
            }
            out += u32::from(!y.kept);
            let spans = b.server.store().traces().spans("default", id).unwrap();
            assert_eq!(spans.len(), if y.kept { 4 } else { 0 });
        }
        assert!(out > 0);
        // One issue with its consequences in every occurrence.
        assert_one_billing_issue(&a, (TRACES / 10) as usize);
        assert_one_billing_issue(&b, (TRACES / 10) as usize);
        // A part of an imported trace sent again settles on what was
        // imported: its failure is known, nothing is counted twice.
        let resent = (0x700..).find(|&t| failing(t)).unwrap();
        send_trace_parts(&b, resent, t0, &[web]).await;
        b.settled(1).await;
        assert_one_billing_issue(&b, (TRACES / 10) as usize);
        assert_eq!(dashboard(&b).await["summary"], before["summary"]);
    })
    .await
    .expect("the test finishes in time");
}

/// Sends a trace in three requests; a healthy one's spans end well.
async fn send_trace(s: &TestServer, trace: u128, t0: u64, fails: bool) {
    if fails {
        send_trace_parts(s, trace, t0, &[web, gateway, billing]).await;
    } else {
        let healthy = |service: &'static str, id: u64, parent: Option<u64>| {
            export(
                service,
                trace,
                t0,
                &[SpanSpec {
                    id,
                    parent,
                    name: "POST /step",
                    kind: 2,
                    failed: None,
                    exception: None,
                }],
            )
        };
        s.send(healthy("web", WEB, None)).await;
        s.send(healthy("gateway", GATEWAY, Some(WEB))).await;
        s.send(healthy("gateway", GATEWAY_CLIENT, Some(GATEWAY)))
            .await;
        s.send(healthy("billing", BILLING, Some(GATEWAY_CLIENT)))
            .await;
    }
}

async fn send_trace_parts(
    s: &TestServer,
    trace: u128,
    t0: u64,
    parts: &[fn(u128, u64) -> Vec<u8>],
) {
    for part in parts {
        s.send(part(trace, t0)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_window_settles_its_oldest_traces_early_and_loses_nothing() {
    tokio::time::timeout(LIMIT, async {
        const MAX_SPANS: usize = 40;
        // A wait longer than the test: only the budget settles traces.
        let s = TestServer::start_with(|c: ServeConfig| {
            c.settle(
                SettleConfig::default()
                    .trace_wait(Duration::from_secs(3_600))
                    .sampling(TailSampling::keep_all())
                    .budget(MAX_SPANS, 64 << 20, 10_000, 16 << 20),
            )
        })
        .await;
        let t0 = now_ns() - 1_000_000_000;
        // 20 traces of 4 spans: twice the budget.
        for trace in 0x900..0x914u128 {
            send_trace(&s, trace, t0, trace.is_multiple_of(10)).await;
        }
        let deadline = tokio::time::Instant::now() + LIMIT;
        let stats = loop {
            let stats = s.server.settle_stats();
            // Every trace settled so far settled early: wait until those
            // taken are stored.
            let done = stats.early > 0 && stats.settled >= stats.early;
            if done && stats.waiting_spans <= MAX_SPANS as u64 {
                break stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the window stays over its budget: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            stats.waiting_spans > 0,
            "the newest traces still wait: {stats:?}"
        );
        // The oldest traces went first; the newest still wait.
        let store = s.server.store();
        let first = store
            .traces()
            .settlement("default", TraceId(0x900))
            .unwrap();
        let last = store
            .traces()
            .settlement("default", TraceId(0x913))
            .unwrap();
        assert!(first.is_some() && last.is_none(), "{first:?} {last:?}");
        // Shutting down settles the rest: every span is counted once.
        let dir = s.dir;
        s.server.shutdown().await.expect("a clean shutdown");
        let store = omegi_store::Store::open(dir.path().join(omegi_server::server::STORE_DIR))
            .expect("the store opens");
        let totals = store.stats().sampling_totals("default").unwrap();
        assert_eq!((totals.traces, totals.spans), (20, 80), "{totals:?}");
    })
    .await
    .expect("the test finishes in time");
}

/// Spans whose errors a request left out over its cap do not all come
/// back when their trace settles: settling derives at most the cap's worth
/// of errors from failed spans' statuses per trace, and counts the others;
/// every span is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_derives_no_more_errors_than_a_request_may_carry() {
    tokio::time::timeout(LIMIT, async {
        const CAP: usize = 4;
        const FAILED: u64 = 12;
        let mut limits = Limits::default();
        limits.max_errors_per_request = CAP;
        let s = TestServer::start_with(move |c: ServeConfig| {
            c.limits(limits).settle(
                SettleConfig::default()
                    .trace_wait(Duration::from_millis(200))
                    .sampling(TailSampling::keep_all()),
            )
        })
        .await;
        let t0 = now_ns() - 1_000_000_000;
        let trace: u128 = 0x5a4d;
        // A healthy root and twelve shards that each fail on their own.
        let mut spans = vec![SpanSpec {
            id: 1,
            parent: None,
            name: "GET /search",
            kind: 2,
            failed: None,
            exception: None,
        }];
        spans.extend((0..FAILED).map(|i| SpanSpec {
            id: 10 + i,
            parent: Some(1),
            name: "GET /shard",
            kind: 3,
            failed: Some("shard offline"),
            exception: None,
        }));
        s.send(export("search", trace, t0, &spans)).await;
        s.settled(1).await;
        let stored = s
            .server
            .store()
            .traces()
            .spans("default", TraceId(trace))
            .unwrap();
        assert_eq!(stored.len(), 1 + FAILED as usize, "every span is kept");
        let issues = s.all_issues();
        assert_eq!(issues.len(), 1, "{issues:?}");
        let occurrences = s.occurrences_of(&issues[0].fingerprint).len();
        let not_derived = s.server.settle_stats().errors_not_derived;
        // What the request carried, and at most the cap's worth more.
        assert!(
            (CAP..=2 * CAP).contains(&occurrences),
            "{occurrences} occurrences"
        );
        assert_eq!(occurrences as u64 + not_derived, FAILED);
    })
    .await
    .expect("the test finishes in time");
}
