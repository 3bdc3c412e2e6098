//! A crash test over HTTP: a child `omegi serve --sync always` (the built
//! binary) takes OTLP requests from a few concurrent senders and is killed
//! with SIGKILL at a random moment; restarted on the same data directory, it
//! must serve every span of every request it answered 200, every request
//! whole or not at all, and no issue may count more occurrences than were
//! sent. Twice, so that the second kill hits a store that was recovered.
//!
//! Once without a settle window (`--trace-wait 0`: each request is stored
//! before its answer) and once with one: then most acknowledged traces are
//! only in the write-ahead log when the process dies, and the restarted
//! server must replay them and settle them, each once.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omegi_server::auth::read_credentials;
use serde_json::Value;

mod common;

use common::ServeProcess as Serve;

/// The whole test is bounded in time.
const LIMIT: Duration = Duration::from_secs(240);
const SENDERS: u64 = 3;
const SPANS_PER_REQUEST: u64 = 20;

/// `omegi serve --sync always` with the settle window `trace_wait`.
fn start(data: &Path, trace_wait: &str) -> Serve {
    Serve::start(
        data,
        &[
            "--sync",
            "always",
            "--otlp-http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--trace-wait",
            trace_wait,
            "--sample-rate",
            "0.5",
        ],
        &[],
    )
}

/// Request `n`: trace `n` with SPANS_PER_REQUEST spans over two services,
/// the last one failing with an `exception` event (one issue for all).
fn request(n: u64, t0: u64) -> Vec<u8> {
    common::failing_trace(n, t0, SPANS_PER_REQUEST, "payment", "PaymentError")
}

/// What the senders did: requests sent, and those answered 200.
#[derive(Default)]
struct Sent {
    sent: BTreeSet<u64>,
    acknowledged: BTreeSet<u64>,
}

/// Sends requests `first..` from SENDERS concurrent senders until the
/// server stops answering; kills it once `kill_after` requests were
/// acknowledged and `delay` more passed.
async fn load_and_kill(
    serve: Serve,
    token: &str,
    first: u64,
    kill_after: usize,
    delay: Duration,
) -> Sent {
    let sent = Arc::new(Mutex::new(Sent::default()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/v1/traces", serve.url);
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, url, token, sent) =
            (client.clone(), url.clone(), token.to_owned(), sent.clone());
        senders.push(tokio::spawn(async move {
            let t0 = omegi_server::api::now_ns() - 60_000_000_000;
            let mut n = first + sender;
            loop {
                sent.lock().unwrap().sent.insert(n);
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .bearer_auth(&token)
                    .body(request(n, t0 + n * 1_000_000))
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == 200 => {
                        sent.lock().unwrap().acknowledged.insert(n);
                    }
                    Ok(response) => panic!("request {n} answered {}", response.status()),
                    // The server is gone.
                    Err(_) => return,
                }
                n += SENDERS;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.lock().unwrap().acknowledged.len() < kill_after {
        assert!(
            Instant::now() < deadline,
            "the server acknowledged too little"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(delay).await;
    serve.kill();
    for sender in senders {
        tokio::time::timeout(Duration::from_secs(30), sender)
            .await
            .expect("every sender stops once the server is gone")
            .expect("no sender panicked");
    }
    let mut sent = sent.lock().unwrap();
    std::mem::take(&mut *sent)
}

/// Waits until the restarted server's settle window is empty (what the
/// log replayed has settled); returns how many log entries it replayed.
async fn settled(serve: &Serve) -> u64 {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Value = client
            .get(format!("{}/api/health", serve.url))
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("JSON");
        if health["settle"]["waiting_traces"] == 0 {
            return health["settle"]["wal"]["replayed"].as_u64().unwrap_or(0);
        }
        assert!(Instant::now() < deadline, "nothing settles: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a restarted server against what was sent: returns how many
/// requests it stored.
async fn check(serve: &Serve, user: &str, sent: &Sent) -> (u64, u64) {
    let replayed = settled(serve).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client
            .get(format!("{}{path}", serve.url))
            .bearer_auth(user)
            .send();
        async move {
            let response = request.await.expect("the API answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let mut stored = 0;
    for &n in &sent.sent {
        let (status, trace) = get(format!("/api/traces/{n:032x}?project=default")).await;
        let spans = match status {
            200 => trace["spans"].as_array().map_or(0, Vec::len) as u64,
            404 => 0,
            other => panic!("trace {n}: {other} {trace}"),
        };
        if sent.acknowledged.contains(&n) {
            assert_eq!(
                spans, SPANS_PER_REQUEST,
                "request {n} was answered 200 and lost"
            );
        }
        assert!(
            spans == 0 || spans == SPANS_PER_REQUEST,
            "request {n} is partly stored: {spans} spans"
        );
        stored += u64::from(spans == SPANS_PER_REQUEST);
    }
    let (status, issues) = get("/api/issues?project=default&status=all".into()).await;
    assert_eq!(status, 200);
    let count = issues[0]["count"].as_u64().expect("an issue count");
    assert!(
        count <= sent.sent.len() as u64,
        "{count} occurrences of {} requests",
        sent.sent.len()
    );
    assert_eq!(count, stored, "one occurrence per stored request");
    let (_, stats) = get("/api/stats?project=default".into()).await;
    assert_eq!(stats["summary"]["spans"], stored * SPANS_PER_REQUEST);
    (stored, replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_requests_survive_sigkill() {
    crash_twice("0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_requests_in_the_settle_window_survive_sigkill() {
    crash_twice("300ms").await;
}

/// Every request's trace fails, so every trace is stored whole whatever
/// the sampling rate.
async fn crash_twice(trace_wait: &str) {
    tokio::time::timeout(LIMIT, async {
        let seed = fastrand::u64(..);
        eprintln!("server crash test seed {seed}");
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().unwrap();
        let serve = start(dir.path(), trace_wait);
        let credentials = read_credentials(dir.path())
            .expect("readable credentials")
            .expect("created on first start");
        let ingest = credentials.project.expect("a project").token;
        let user = credentials.user.expect("a user").token;

        let mut all = Sent::default();
        let mut next = 1;
        let mut serve = Some(serve);
        for round in 0..2 {
            let kill_after = rng.usize(5..40);
            let delay = Duration::from_micros(rng.u64(0..20_000));
            let sent = load_and_kill(serve.take().unwrap(), &ingest, next, kill_after, delay).await;
            next = sent.sent.iter().max().copied().unwrap_or(next) + 1;
            all.sent.extend(&sent.sent);
            all.acknowledged.extend(&sent.acknowledged);
            let restarted = start(dir.path(), trace_wait);
            let (stored, replayed) = check(&restarted, &user, &all).await;
            eprintln!(
                "round {round}: {} sent, {} acknowledged, {stored} stored, {replayed} replayed",
                all.sent.len(),
                all.acknowledged.len()
            );
            if trace_wait != "0" {
                // Killed well within the window: the last acknowledged
                // traces were only in the log.
                assert!(replayed > 0, "nothing was replayed from the log");
            }
            serve = Some(restarted);
        }
    })
    .await
    .expect("the test finishes in time");
}
