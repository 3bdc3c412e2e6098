//! How long after the last span of a failing trace its alert goes out.
//!
//! Starts `omegi serve` in-process on 127.0.0.1 with a temporary data
//! directory and the settle window on, opens the alert stream
//! (`/api/alerts/stream`), and sends `--rounds` failing traces, each in two
//! requests as two processes would (the gateway's spans, then billing's
//! exception). For each, it measures the time from the `200` of the last
//! request to the `new_issue` alert on the stream, and prints the
//! latencies. The target is the window (`--trace-wait-ms`) plus 1 s.
//!
//! ```text
//! cargo run --release -p benches --bin alert_latency -- [--rounds 5] [--trace-wait-ms 5000]
//! ```
//!
//! Every wait is bounded in time.

use std::time::{Duration, Instant};

use omegi_server::server::{ServeConfig, Server};
use omegi_server::settle::SettleConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

/// One process's spans of trace `trace`: `(id, parent, name, failure)`.
fn export(service: &str, trace: u128, spans: &[(u64, Option<u64>, &str, Option<&str>)]) -> Vec<u8> {
    let t0 = omegi_server::api::now_ns() - 1_000_000_000;
    let spans = spans
        .iter()
        .map(|&(id, parent, name, failure)| {
            let mut span = pt::Span {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: name.into(),
                kind: 2,
                start_time_unix_nano: t0 + id * 1_000_000,
                end_time_unix_nano: t0 + 100_000_000 - id * 1_000_000,
                ..Default::default()
            };
            if let Some(message) = failure {
                span.status = Some(pt::Status {
                    code: 2,
                    message: message.into(),
                });
            }
            span
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), String> {
    let mut rounds = 5usize;
    let mut wait_ms = 5_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--rounds" => rounds = n.clamp(1, 26) as usize,
            "--trace-wait-ms" => wait_ms = n,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let wait = Duration::from_millis(wait_ms);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let listen = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let server = Server::start(
        ServeConfig::new(dir.path(), listen).settle(SettleConfig::default().trace_wait(wait)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let credentials = server.created_credentials().ok_or("no credentials")?;
    let ingest = credentials.project.clone().ok_or("no project")?.token;
    let user = credentials.user.clone().ok_or("no user")?.token;
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{}/api/alerts/stream", server.url()))
        .bearer_auth(&user)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let trace = 0xa1e0_0000_u128 + round as u128;
        // A new issue each round: billing-a, billing-b, …
        let billing = format!("billing-{}", (b'a' + round as u8) as char);
        let gateway = export(
            "gateway",
            trace,
            &[
                (1, None, "POST /orders", Some("billing failed")),
                (2, Some(1), "POST billing/charge", Some("billing failed")),
            ],
        );
        let billing = export(
            &billing,
            trace,
            &[(3, Some(2), "POST /charge", Some("ledger offline"))],
        );
        for body in [gateway, billing] {
            let response = http
                .post(format!("{}/v1/traces", server.url()))
                .bearer_auth(&ingest)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(format!("server answered {}", response.status()));
            }
        }
        let last_ack = Instant::now();
        let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(30);
        loop {
            let chunk = tokio::time::timeout_at(deadline, stream.chunk())
                .await
                .map_err(|_| format!("no alert within {:?}", wait + Duration::from_secs(30)))?
                .map_err(|e| e.to_string())?
                .ok_or("the alert stream ended")?;
            if String::from_utf8_lossy(&chunk).contains("new_issue") {
                break;
            }
        }
        latencies.push(last_ack.elapsed());
    }
    drop(stream);
    server.shutdown().await.map_err(|e| e.to_string())?;
    let ms: Vec<String> = latencies
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect();
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "alert_latency: --trace-wait {wait_ms} ms, {rounds} failing traces sent as two requests each"
    );
    println!(
        "  last 200 → new_issue alert: {} ms; worst {:.0} ms (target {} ms)",
        ms.join(", "),
        worst.as_secs_f64() * 1000.0,
        wait_ms + 1_000
    );
    Ok(())
}
