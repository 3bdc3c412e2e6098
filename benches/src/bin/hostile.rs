//! Measures what a hostile client costs `omegi serve`: each row of the table
//! in issue 13, against a release `omegi serve` started as a child process
//! on 127.0.0.1 with a fresh data directory per row.
//!
//! ```text
//! cargo build --release -p omegi-server --bin omegi
//! cargo run --release -p benches --bin hostile -- [--omegi target/release/omegi] [--rows 1,2,8]
//! ```
//!
//! For every request of a row it prints the status, the size of the answer
//! and the time it took; for every row the server's peak resident memory
//! (`VmHWM` of `/proc/<pid>/status`, read before the server is stopped) and
//! how much its data directory grew (measured after a graceful stop, which
//! flushes the store). The output is a Markdown table. Every request and
//! every row is bounded in time.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use serde_json::{json, Value};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
/// No request of a row may take longer.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

type Result<T> = std::result::Result<T, String>;

struct Options {
    omegi: PathBuf,
    rows: Vec<usize>,
}

fn options() -> Result<Options> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut o = Options {
        omegi: exe.with_file_name("omegi"),
        rows: (1..=10).collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--omegi" => o.omegi = args.next().ok_or("--omegi needs a path")?.into(),
            "--rows" => {
                o.rows = args
                    .next()
                    .ok_or("--rows needs a list")?
                    .split(',')
                    .map(|r| r.trim().parse().map_err(|_| format!("not a row: {r}")))
                    .collect::<Result<_>>()?;
            }
            "--bench" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !o.omegi.exists() {
        return Err(format!(
            "no omegi binary at {}: run `cargo build --release -p omegi-server --bin omegi` \
             or pass --omegi PATH",
            o.omegi.display()
        ));
    }
    Ok(o)
}

// ---------------------------------------------------------------- the server

/// A release `omegi serve` on 127.0.0.1 with a fresh data directory.
struct Serve {
    child: Child,
    url: String,
    ingest: String,
    user: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    disk_at_start: u64,
}

impl Serve {
    fn start(omegi: &Path) -> Result<Serve> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(omegi)
            .arg("--data")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--otlp-http-listen", "off", "--grpc-listen", "off"])
            // Each request settles as it arrives, so that the reads of a
            // row see what it sent; the settle window's own memory is
            // bounded by `--settle-max-bytes` and measured by `otlp_load`.
            .args(["--trace-wait", "0"])
            .env("OMEGI_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", omegi.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut ingest, mut user) = (None, None, None);
        while url.is_none() || ingest.is_none() || user.is_none() {
            let line = lines
                .next()
                .ok_or("omegi ended before it printed its address and tokens")?
                .map_err(|e| e.to_string())?;
            if let Some(rest) = line.split(" listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            } else if line.contains("ingest token:") {
                ingest = line.split_whitespace().last().map(str::to_owned);
            } else if line.contains("API token:") {
                user = line.split_whitespace().last().map(str::to_owned);
            }
        }
        let disk_at_start = dir_size(dir.path());
        Ok(Serve {
            child,
            url: url.unwrap_or_default(),
            ingest: ingest.unwrap_or_default(),
            user: user.unwrap_or_default(),
            dir,
            http: reqwest::Client::builder()
                .timeout(REQUEST_LIMIT)
                .build()
                .map_err(|e| e.to_string())?,
            disk_at_start,
        })
    }

    fn peak_rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// Stops the server gracefully (SIGTERM: it flushes the store); its
    /// peak memory before the stop and the growth of its data directory.
    fn stop(mut self) -> (u64, u64) {
        let peak = self.peak_rss();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let grown = dir_size(self.dir.path()).saturating_sub(self.disk_at_start);
        (peak, grown)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content: Option<(&str, Option<&str>, Vec<u8>)>,
    ) -> Outcome {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some((content_type, encoding, body)) = content {
            request = request.header("content-type", content_type).body(body);
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16().to_string();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                Outcome {
                    status,
                    bytes: body.len(),
                    time: started.elapsed(),
                    body,
                }
            }
            Err(e) => Outcome {
                status: format!("error: {e}"),
                bytes: 0,
                time: started.elapsed(),
                body: Vec::new(),
            },
        }
    }

    async fn ingest(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> Outcome {
        self.send(
            reqwest::Method::POST,
            path,
            &self.ingest,
            Some((content_type, encoding, body)),
        )
        .await
    }

    async fn get(&self, path: &str) -> Outcome {
        self.send(reqwest::Method::GET, path, &self.user, None)
            .await
    }

    /// The id (`project/fingerprint`) of the first issue listed.
    async fn first_issue(&self) -> Option<String> {
        let list: Value =
            serde_json::from_slice(&self.get("/api/issues?status=all&limit=1").await.body).ok()?;
        let id = list.get(0)?.get("id")?.as_str()?;
        Some(id.replacen(':', "/", 1))
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One request's answer.
struct Outcome {
    status: String,
    bytes: usize,
    time: Duration,
    body: Vec<u8>,
}

/// A line of the table.
struct Line {
    row: usize,
    what: String,
    outcome: Outcome,
}

// ---------------------------------------------------------------- bodies

fn now_ns() -> u64 {
    omegi_server::api::now_ns()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

fn traces(service: &str, spans: Vec<pt::Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
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

fn span(trace: u128, id: u64, parent: Option<u64>, name: String, start: u64) -> pt::Span {
    pt::Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name,
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

fn failed(mut span: pt::Span) -> pt::Span {
    span.status = Some(pt::Status {
        code: 2,
        message: "failed".into(),
    });
    span
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// A request of `n` empty spans, written on the wire by hand.
fn empty_spans(n: usize) -> Vec<u8> {
    fn len_field(tag: u8, len: usize, out: &mut Vec<u8>) {
        out.push(tag);
        let mut v = len as u64;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut scope = Vec::new();
    len_field(0x12, 2 * n, &mut scope);
    let mut request = Vec::with_capacity(2 * n + 16);
    len_field(0x0a, scope.len() + 2 * n, &mut request);
    request.extend_from_slice(&scope);
    for _ in 0..n {
        request.extend_from_slice(&[0x12, 0x00]);
    }
    request
}

// ---------------------------------------------------------------- rows

const ROWS: [&str; 10] = [
    "gzip protobuf of 4M empty spans",
    "one span with 64,000 exception events",
    "4,000 nested spans, one exception each",
    "2,000 spans, one named with 100 KB",
    "a 10 MB attribute and a 5 MB span name",
    "a 757-byte note embedding sections 15 times per level",
    "20 × 10,000 ERROR log records of one issue",
    "4 uploads at 100 bytes/s and a normal request",
    "timestamps at u64::MAX, end before start, 100 years ahead",
    "an unknown token on every request",
];

async fn row(n: usize, s: &Serve) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut line = |what: &str, outcome: Outcome| {
        lines.push(Line {
            row: n,
            what: what.to_owned(),
            outcome,
        })
    };
    let t0 = now_ns();
    match n {
        1 => {
            let body = gzip(&empty_spans(4_000_000));
            let what = format!("POST /v1/traces ({} bytes gzip)", body.len());
            line(
                &what,
                s.ingest("/v1/traces", PROTOBUF, Some("gzip"), body).await,
            );
        }
        2 => {
            let events = (0..64_000)
                .map(|i| exception(t0 + i, "card declined"))
                .collect();
            let body = traces(
                "checkout",
                vec![pt::Span {
                    events,
                    ..failed(span(0xe1, 1, None, "charge".into(), t0))
                }],
            );
            let what = format!("POST /v1/traces ({} bytes)", body.len());
            line(&what, s.ingest("/v1/traces", PROTOBUF, None, body).await);
        }
        3 => {
            let spans = (1..=4_000u64)
                .map(|i| pt::Span {
                    events: vec![exception(t0 + i, &format!("step {i} failed"))],
                    ..span(
                        0xc4a1,
                        i,
                        (i > 1).then(|| i - 1),
                        format!("step {i}"),
                        t0 + i,
                    )
                })
                .collect();
            let body = traces("deep", spans);
            let what = format!("POST /v1/traces ({} bytes)", body.len());
            line(&what, s.ingest("/v1/traces", PROTOBUF, None, body).await);
        }
        4 => {
            let mut spans: Vec<pt::Span> = (1..=2_000u64)
                .map(|i| span(0x100, i, (i > 1).then(|| i - 1), format!("op {i}"), t0 + i))
                .collect();
            spans[1_000].name = "x".repeat(100 * 1024);
            spans[1_999] = failed(spans[1_999].clone());
            let body = traces("wide", spans);
            let what = format!("POST /v1/traces ({} bytes)", body.len());
            line(&what, s.ingest("/v1/traces", PROTOBUF, None, body).await);
            line(
                "GET /api/traces/{id}",
                s.get(&format!("/api/traces/{:032x}", 0x100)).await,
            );
            match s.first_issue().await {
                Some(issue) => line(
                    "GET /api/issues/{id}/flow",
                    s.get(&format!("/api/issues/{issue}/flow")).await,
                ),
                None => line("GET /api/issues/{id}/flow", no_issue()),
            }
        }
        5 => {
            let body = traces(
                "big",
                vec![pt::Span {
                    attributes: vec![kv("payload", &"v".repeat(10 * 1024 * 1024))],
                    ..failed(span(0x200, 1, None, "n".repeat(5 * 1024 * 1024), t0))
                }],
            );
            let body = gzip(&body);
            let what = format!("POST /v1/traces ({} bytes gzip)", body.len());
            line(
                &what,
                s.ingest("/v1/traces", PROTOBUF, Some("gzip"), body).await,
            );
            line("GET /api/issues", s.get("/api/issues?status=all").await);
            line("GET /api/stats", s.get("/api/stats").await);
            line(
                "GET /api/traces/{id}",
                s.get(&format!("/api/traces/{:032x}", 0x200)).await,
            );
        }
        6 => {
            let embeds = |section: &str| format!("![[Bomb#{section}]]\n").repeat(15);
            let body = format!(
                "{}# A\n{}# B\n{}# C\n{}# D\nboom\n",
                embeds("A"),
                embeds("B"),
                embeds("C"),
                embeds("D")
            );
            let note = json!({"title": "Bomb", "body": body});
            let created = s
                .send(
                    reqwest::Method::POST,
                    "/api/notes",
                    &s.user,
                    Some((JSON, None, note.to_string().into_bytes())),
                )
                .await;
            let id = serde_json::from_slice::<Value>(&created.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            line(
                &format!("POST /api/notes ({} bytes of body)", body.len()),
                created,
            );
            match id {
                Some(id) => line(
                    "GET /api/notes/{id}/rendered",
                    s.get(&format!("/api/notes/{id}/rendered")).await,
                ),
                None => line("GET /api/notes/{id}/rendered", no_issue()),
            }
        }
        7 => {
            let mut last = None;
            for batch in 0..20u64 {
                let records = (0..10_000u64)
                    .map(|i| pl::LogRecord {
                        time_unix_nano: t0 + batch * 10_000 + i,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(
                                "payment provider timed out".into(),
                            )),
                        }),
                        attributes: vec![kv("exception.type", "Timeout")],
                        ..Default::default()
                    })
                    .collect();
                let body = ExportLogsServiceRequest {
                    resource_logs: vec![pl::ResourceLogs {
                        resource: Some(Resource {
                            attributes: vec![kv("service.name", "payment")],
                            ..Default::default()
                        }),
                        scope_logs: vec![pl::ScopeLogs {
                            log_records: records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                }
                .encode_to_vec();
                last = Some(s.ingest("/v1/logs", PROTOBUF, None, body).await);
            }
            if let Some(outcome) = last {
                line("POST /v1/logs × 20 (the last)", outcome);
            }
            match s.first_issue().await {
                Some(issue) => line(
                    "GET /api/issues/{id}",
                    s.get(&format!("/api/issues/{issue}")).await,
                ),
                None => line("GET /api/issues/{id}", no_issue()),
            }
        }
        8 => {
            let addr = s.url.trim_start_matches("http://").to_owned();
            let slow: Vec<_> = (0..4)
                .map(|_| tokio::spawn(slow_upload(addr.clone(), s.ingest.clone())))
                .collect();
            tokio::time::sleep(Duration::from_millis(500)).await;
            // A normal request, retried as an OTLP exporter does, until 200.
            let body = traces("normal", vec![span(0x800, 1, None, "ok".into(), t0)]);
            let started = Instant::now();
            let mut refused = 0;
            let mut outcome = s.ingest("/v1/traces", PROTOBUF, None, body.clone()).await;
            while outcome.status != "200" && started.elapsed() < Duration::from_secs(60) {
                refused += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                outcome = s.ingest("/v1/traces", PROTOBUF, None, body.clone()).await;
            }
            outcome.time = started.elapsed();
            line(
                &format!("normal POST /v1/traces: until 200 ({refused} refused first)"),
                outcome,
            );
            for (i, upload) in slow.into_iter().enumerate() {
                let outcome = upload.await.unwrap_or_else(|e| Outcome {
                    status: format!("error: {e}"),
                    bytes: 0,
                    time: Duration::ZERO,
                    body: Vec::new(),
                });
                line(&format!("slow upload {} at 100 bytes/s", i + 1), outcome);
            }
        }
        9 => {
            let century = 100 * 365 * 86_400 * 1_000_000_000u64;
            let mut backwards = failed(span(0x904, 1, None, "backwards".into(), t0));
            backwards.end_time_unix_nano = t0 - 5_000_000_000;
            let mut forever = failed(span(0x901, 1, None, "max".into(), u64::MAX));
            forever.end_time_unix_nano = u64::MAX;
            let body = traces(
                "clock",
                vec![
                    forever,
                    failed(span(0x902, 1, None, "future".into(), t0 + century)),
                    backwards,
                ],
            );
            line(
                "POST /v1/traces",
                s.ingest("/v1/traces", PROTOBUF, None, body).await,
            );
            line("GET /api/issues", s.get("/api/issues?status=all").await);
            line(
                "GET /api/stats?since=1h",
                s.get("/api/stats?since=1h").await,
            );
        }
        10 => {
            let started = Instant::now();
            let mut last = None;
            let n = 2_000;
            for i in 0..n {
                let token = format!("omegi_u_{:032x}", 0xdead_0000u128 + i);
                last = Some(
                    s.send(reqwest::Method::GET, "/api/issues", &token, None)
                        .await,
                );
            }
            if let Some(mut outcome) = last {
                outcome.time = started.elapsed() / n as u32;
                line(&format!("GET /api/issues × {n} (time: each)"), outcome);
            }
        }
        _ => {}
    }
    lines
}

fn no_issue() -> Outcome {
    Outcome {
        status: "(nothing to read)".into(),
        bytes: 0,
        time: Duration::ZERO,
        body: Vec::new(),
    }
}

/// A request whose 1 MB body arrives at 100 bytes a second; the answer.
async fn slow_upload(addr: String, token: String) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
        return Outcome {
            status: "error: connect".into(),
            bytes: 0,
            time: started.elapsed(),
            body: Vec::new(),
        };
    };
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: omegi\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        if write.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..10_000 {
            if write.write_all(&[b' '; 100]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(REQUEST_LIMIT, read.read_to_end(&mut answer)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("no answer")
        .to_owned();
    Outcome {
        status,
        bytes: answer.len(),
        time: started.elapsed(),
        body: answer,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        mib(bytes as u64)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let o = options()?;
    println!("| # | input | request | status | answer | time | peak RSS | disk growth |");
    println!("|---|---|---|---|---:|---:|---:|---:|");
    for n in o.rows {
        let Some(input) = ROWS.get(n.wrapping_sub(1)) else {
            return Err(format!("no row {n}: rows are 1 to {}", ROWS.len()));
        };
        let omegi = o.omegi.clone();
        let s = tokio::task::spawn_blocking(move || Serve::start(&omegi))
            .await
            .map_err(|e| e.to_string())??;
        let lines = tokio::time::timeout(Duration::from_secs(600), row(n, &s))
            .await
            .map_err(|_| format!("row {n} took more than 10 minutes"))?;
        let (peak, disk) = tokio::task::spawn_blocking(move || s.stop())
            .await
            .map_err(|e| e.to_string())?;
        for (i, l) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            println!(
                "| {} | {} | {} | {} | {} | {:.3} s | {} | {} |",
                l.row,
                if i == 0 { input } else { "" },
                l.what,
                l.outcome.status,
                size(l.outcome.bytes),
                l.outcome.time.as_secs_f64(),
                if last { mib(peak) } else { String::new() },
                if last { mib(disk) } else { String::new() },
            );
        }
        let _ = std::io::stdout().flush();
    }
    Ok(())
}
