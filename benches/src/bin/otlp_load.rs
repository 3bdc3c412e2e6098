//! Load generator for `omegi serve`'s OTLP/HTTP receiver.
//!
//! Starts the server in-process on 127.0.0.1 with a temporary data
//! directory, sends OTLP protobuf `ExportTraceServiceRequest`s over several
//! concurrent loopback connections, shuts the server down (which flushes
//! the store), reopens the store to count what was stored, and reports
//! spans per second stored.
//!
//! Runs on mimalloc, the `omegi` binary's allocator, unless built with
//! `--features system-alloc`.
//!
//! ```text
//! cargo run --release -p benches --bin otlp_load -- \
//!     [--requests 400] [--spans 500] [--connections 4] [--sync always|interval]
//! ```
//!
//! `--sync` is the server's policy (`omegi serve --sync`): with `always`
//! (the default) each request is answered once its spans are on disk, with
//! `interval` once they are stored.
//!
//! `--trace-wait-ms` (default 1000) is the settle window (`0`: every request
//! settles on arrival, no write-ahead log), `--sample-rate` (default 0.1)
//! the share of healthy traces stored whole. With a window, the run ends
//! when every trace has settled: the rate reported is spans settled (stored
//! or sampled out, all counted in the statistics) per second of the run
//! without the last window's wait; the window's peak memory (encoded
//! bytes) and the store's size on disk per span are reported too.
//!
//! Each request holds `--spans` spans: traces of five spans over three
//! services (one resource per service), one trace in fifty failing with an
//! `exception` event. Trace ids are unique over the run. Every request and
//! the whole run are bounded in time.
//!
//! `--rate N` offers N spans per second instead of sending as fast as the
//! server answers: requests are built as they are sent (so that the
//! process's memory is the server's, not a queue of bodies), paced over
//! the connections, and a request refused with `503` because the window is
//! full is sent again after a pause. It reports the rate reached, the
//! window's peak (spans and encoded bytes, sampled every 20 ms, and the
//! server's own peak gauge), the traces settled early, the `503`s, and the
//! process's peak resident memory (`VmHWM`, the server and this client
//! together). With `--settle-max-spans` and `--settle-max-mib` the
//! window's budget can be set (`omegi serve --settle-max-spans`,
//! `--settle-max-bytes`); the defaults are the server's.
//! `--settle-workers N` sets how many threads settle traces (the default:
//! one per core, 2 to 4).
//!
//! ```text
//! cargo run --release -p benches --bin otlp_load -- \
//!     --rate 100000 --requests 2000 --trace-wait-ms 5000
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omegi_core::flow::TailSampling;
use omegi_server::server::{ServeConfig, Server, SyncPolicy, STORE_DIR};
use omegi_server::settle::SettleConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;

/// The allocator of the `omegi` binary, which runs the store and the
/// collector; `--features system-alloc` measures with the system's instead.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: [&str; 3] = ["user-service", "inventory-service", "payment-service"];
const SPANS_PER_TRACE: usize = 5;

struct Options {
    requests: usize,
    spans: usize,
    connections: usize,
    sync: SyncPolicy,
    trace_wait_ms: u64,
    sample_rate: f64,
    /// Spans per second offered; `None`: as fast as answered.
    rate: Option<u64>,
    settle_max_spans: Option<usize>,
    settle_max_mib: Option<usize>,
    settle_workers: Option<usize>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        requests: 400,
        spans: 500,
        connections: 4,
        sync: SyncPolicy::Always,
        trace_wait_ms: 1000,
        sample_rate: 0.1,
        rate: None,
        settle_max_spans: None,
        settle_max_mib: None,
        settle_workers: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--sync" {
            o.sync = match value.as_str() {
                "always" => SyncPolicy::Always,
                "interval" => SyncPolicy::Interval,
                other => return Err(format!("--sync: always or interval, not {other}")),
            };
            continue;
        }
        if flag == "--sample-rate" {
            o.sample_rate = value
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("--sample-rate: a number from 0 to 1, not {value}"))?;
            continue;
        }
        let n: usize = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--requests" => o.requests = n.max(1),
            "--spans" => o.spans = n.max(SPANS_PER_TRACE),
            "--connections" => o.connections = n.max(1),
            "--trace-wait-ms" => o.trace_wait_ms = n as u64,
            "--rate" => o.rate = Some(n.max(1) as u64),
            "--settle-max-spans" => o.settle_max_spans = Some(n),
            "--settle-max-mib" => o.settle_max_mib = Some(n),
            "--settle-workers" => o.settle_workers = Some(n),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

/// One request body: `spans` spans in traces of five, unique trace ids
/// starting at `first_trace`.
fn request(first_trace: u128, spans: usize, t0: u64) -> Vec<u8> {
    let mut per_service: Vec<Vec<pt::Span>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let traces = spans / SPANS_PER_TRACE;
    for t in 0..traces {
        let trace = first_trace + t as u128;
        let fails = trace.is_multiple_of(50);
        let start = t0 + t as u64 * 1_000;
        // user(1) -> user(2) -> inventory(3) -> payment(4), inventory(5)
        let shape: [(u64, Option<u64>, usize, &str); SPANS_PER_TRACE] = [
            (1, None, 0, "POST /checkout"),
            (2, Some(1), 0, "load cart"),
            (3, Some(1), 1, "reserve"),
            (4, Some(3), 2, "charge"),
            (5, Some(3), 1, "update stock"),
        ];
        for (i, (id, parent, service, name)) in shape.into_iter().enumerate() {
            let mut span = pt::Span {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: ((trace as u64) << 8 | id).to_be_bytes().to_vec(),
                parent_span_id: parent
                    .map(|p| ((trace as u64) << 8 | p).to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: name.into(),
                kind: 2,
                start_time_unix_nano: start + i as u64 * 100_000,
                end_time_unix_nano: start + 5_000_000 - i as u64 * 100_000,
                attributes: vec![
                    text("http.request.method", "POST"),
                    text("http.route", "/checkout"),
                    kv("http.response.status_code", any_value::Value::IntValue(200)),
                ],
                ..Default::default()
            };
            if fails && id == 4 {
                span.status = Some(pt::Status {
                    code: 2,
                    message: "card declined".into(),
                });
                span.events.push(pt::span::Event {
                    time_unix_nano: start + 1_000_000,
                    name: "exception".into(),
                    attributes: vec![
                        text("exception.type", "PaymentError"),
                        text("exception.message", "card declined"),
                    ],
                    ..Default::default()
                });
            }
            per_service[service].push(span);
        }
    }
    let resource_spans = per_service
        .into_iter()
        .enumerate()
        .map(|(i, spans)| pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", SERVICES[i])],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "load".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), String> {
    let o = options()?;
    let spans_per_request = o.spans / SPANS_PER_TRACE * SPANS_PER_TRACE;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let listen = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let trace_wait = Duration::from_millis(o.trace_wait_ms);
    let mut settle = SettleConfig::default()
        .trace_wait(trace_wait)
        .sampling(TailSampling::new(o.sample_rate));
    if o.settle_max_spans.is_some() || o.settle_max_mib.is_some() {
        settle = settle.budget(
            o.settle_max_spans.unwrap_or(settle.max_spans),
            o.settle_max_mib.map_or(settle.max_bytes, |m| m << 20),
            settle.max_trace_spans,
            settle.max_trace_bytes,
        );
    }
    if let Some(workers) = o.settle_workers {
        settle = settle.workers(workers);
    }
    let budget = (settle.max_spans, settle.max_bytes);
    let server = Arc::new(
        Server::start(
            ServeConfig::new(dir.path(), listen)
                .sync(o.sync)
                .settle(settle),
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let token = server
        .created_credentials()
        .and_then(|c| c.project.clone())
        .ok_or("no ingest token")?
        .token;
    let url = format!("{}/v1/traces", server.url());

    let t0 = omegi_server::api::now_ns();
    let body_of =
        move |r: usize| request(1 + (r * spans_per_request) as u128, spans_per_request, t0);
    // As fast as answered: the bodies are built before the clock starts.
    // At a rate: built as they are sent.
    let bodies: VecDeque<Vec<u8>> = match o.rate {
        None => (0..o.requests).map(body_of).collect(),
        Some(_) => VecDeque::new(),
    };
    let bytes = Arc::new(AtomicUsize::new(bodies.iter().map(Vec::len).sum()));
    let queue = Arc::new(Mutex::new(bodies));
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    // Seconds between two requests at the offered rate.
    let pace = o
        .rate
        .map(|rate| Duration::from_secs_f64(spans_per_request as f64 / rate as f64));

    let started = Instant::now();
    let watch = tokio::spawn(watch_window(Arc::clone(&server)));
    let mut workers = Vec::new();
    for _ in 0..o.connections {
        let queue = Arc::clone(&queue);
        let next = Arc::clone(&next);
        let bytes = Arc::clone(&bytes);
        let refused = Arc::clone(&refused);
        let url = url.clone();
        let token = token.clone();
        let requests = o.requests;
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(1)
                .build()
                .map_err(|e| e.to_string())?;
            let mut sent = 0usize;
            loop {
                let body = match pace {
                    None => {
                        let next = queue.lock().map_err(|e| e.to_string())?.pop_front();
                        let Some(body) = next else { break };
                        body
                    }
                    Some(pace) => {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        if r >= requests {
                            break;
                        }
                        tokio::time::sleep_until((started + pace * r as u32).into()).await;
                        let body = body_of(r);
                        bytes.fetch_add(body.len(), Ordering::Relaxed);
                        body
                    }
                };
                let body = axum::body::Bytes::from(body);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    if status.is_success() {
                        break;
                    }
                    // The window is full: the server asks for a pause.
                    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        && pace.is_some()
                        && Instant::now() < deadline
                    {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    return Err(format!("server answered {status}"));
                }
                sent += 1;
            }
            Ok::<usize, String>(sent)
        }));
    }
    let mut sent = 0;
    for w in workers {
        sent += tokio::time::timeout(Duration::from_secs(600), w)
            .await
            .map_err(|_| "the run took more than 10 minutes")?
            .map_err(|e| e.to_string())??;
    }
    let answered = started.elapsed();
    // With a window: until every trace has settled, less the last wait.
    let deadline = Instant::now() + Duration::from_secs(600);
    while server.settle_stats().waiting_traces > 0 {
        if Instant::now() > deadline {
            return Err("traces did not settle within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().saturating_sub(trace_wait).max(answered);
    let settle = server.settle_stats();
    watch.abort();
    let _ = watch.await;
    let peak = *PEAK.lock().map_err(|e| e.to_string())?;
    let server = Arc::try_unwrap(server).map_err(|_| "the server is still shared")?;
    let report = server.shutdown().await.map_err(|e| e.to_string())?;
    let total = started.elapsed();

    let store = omegi_store::Store::open(dir.path().join(STORE_DIR)).map_err(|e| e.to_string())?;
    let stored = store.stats().summary().map_err(|e| e.to_string())?.spans;
    let sampling = store
        .stats()
        .sampling_totals("default")
        .map_err(|e| e.to_string())?;
    drop(store);
    let disk = dir_bytes(&dir.path().join(STORE_DIR));
    let expected = (sent * spans_per_request) as u64;
    println!(
        "otlp_load: {sent} requests x {spans_per_request} spans over {} connections, {:.1} MiB protobuf, --sync {}",
        o.connections,
        bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
        match o.sync {
            SyncPolicy::Always => "always",
            SyncPolicy::Interval => "interval",
        }
    );
    println!(
        "  {stored} spans settled, stored or sampled out (expected {expected}) in {:.2}s: {:.0} spans/s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  all requests answered in {:.2}s: {:.0} spans/s; settle window {} ms, sample rate {}",
        answered.as_secs_f64(),
        expected as f64 / answered.as_secs_f64(),
        o.trace_wait_ms,
        o.sample_rate
    );
    println!(
        "  including the shutdown flush ({} bytes): {:.2}s, {:.0} spans/s",
        report.flushed_bytes,
        total.as_secs_f64(),
        stored as f64 / total.as_secs_f64()
    );
    println!(
        "  kept {} of {} traces, {} of {} spans; window peak {:.1} MiB, {} settled early; store on disk {:.1} MiB = {:.0} bytes per span sent",
        sampling.kept_traces,
        sampling.traces,
        sampling.kept_spans,
        sampling.spans,
        settle.peak_bytes as f64 / (1024.0 * 1024.0),
        settle.early,
        disk as f64 / (1024.0 * 1024.0),
        disk as f64 / expected.max(1) as f64
    );
    if let Some(rate) = o.rate {
        println!(
            "  offered {rate} spans/s, reached {:.0} spans/s; window at most {} spans, {:.1} MiB waiting (server's peak gauge {:.1} MiB; budget {} spans, {:.1} MiB); {} traces settled early; {} requests refused (503) and sent again; peak resident memory (VmHWM, server and client) {:.1} MiB",
            expected as f64 / answered.as_secs_f64(),
            peak.0,
            peak.1 as f64 / (1024.0 * 1024.0),
            settle.peak_bytes as f64 / (1024.0 * 1024.0),
            budget.0,
            budget.1 as f64 / (1024.0 * 1024.0),
            settle.early,
            refused.load(Ordering::Relaxed),
            peak_resident_kib().unwrap_or(0) as f64 / 1024.0,
        );
    }
    if stored != expected {
        return Err(format!("stored {stored} spans, expected {expected}"));
    }
    Ok(())
}

/// The most spans and bytes seen waiting in the window.
static PEAK: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// Samples the window every 20 ms into [`PEAK`] until aborted.
async fn watch_window(server: Arc<Server>) {
    loop {
        let stats = server.settle_stats();
        if let Ok(mut peak) = PEAK.lock() {
            peak.0 = peak.0.max(stats.waiting_spans);
            peak.1 = peak.1.max(stats.waiting_bytes);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
