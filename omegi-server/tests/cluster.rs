//! Two `omegi serve` processes on one PostgreSQL database (`--database`),
//! as behind a load balancer: spans sent to either are read the same from
//! either; a new issue that both nodes see at once raises one alert; a
//! note written on one node is found by search on the other; and when one
//! node is killed mid-load (SIGKILL), the other keeps serving, and once the
//! killed node restarts on its data directory (its write-ahead log),
//! nothing that either acknowledged is lost or counted twice.
//!
//! The database is a throwaway PostgreSQL cluster that the test starts
//! (or the one `OMEGI_TEST_DATABASE_URL` names), a new database per test.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omegi_core::flow::TailSampling;
use omegi_server::auth::read_credentials;
use omegi_server::server::{ServeConfig, Server};
use omegi_server::settle::SettleConfig;
use omegi_store::postgres::{PgConfig, Throwaway};
use serde_json::{json, Value};

mod common;

use common::{offline_cli, webhook_receiver, ServeProcess};

/// Every test is bounded in time.
const LIMIT: Duration = Duration::from_secs(240);
const SPANS_PER_REQUEST: u64 = 12;

/// A new, empty database on the test cluster (made on a blocking thread:
/// the synchronous client runs its own runtime).
async fn database() -> String {
    tokio::task::spawn_blocking(|| {
        Throwaway::shared()
            .expect("a PostgreSQL cluster for the tests")
            .create_database()
            .expect("a new database")
    })
    .await
    .expect("the cluster starts")
}

/// Request `n`: trace `n` with SPANS_PER_REQUEST spans of `service`; its
/// last span fails with an `exception` of type `error_type`.
fn request(n: u64, t0: u64, service: &str, error_type: &str) -> Vec<u8> {
    common::failing_trace(n, t0, SPANS_PER_REQUEST, service, error_type)
}

/// A node as its own process (the built binary), on the database `url`,
/// alerting `hook`, keeping every trace.
fn alerting_node(data: &Path, url: &str, hook: &str) -> ServeProcess {
    ServeProcess::start(
        data,
        &[
            "--otlp-http-listen",
            "off",
            "--grpc-listen",
            "off",
            "--trace-wait",
            "100ms",
            "--sample-rate",
            "1",
            "--webhook",
            hook,
        ],
        &[("OMEGI_DATABASE_URL", url)],
    )
}

/// GET `path` from `base` as `token`: the answer's JSON.
async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let response = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

/// Waits until `base`'s settle window is empty; returns how many entries
/// of its write-ahead log it replayed when it started.
async fn settled(http: &reqwest::Client, base: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Value = http
            .get(format!("{base}/api/health"))
            .send()
            .await
            .expect("the node answers")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_agree_and_alert_once_per_new_issue() {
    tokio::time::timeout(LIMIT, async {
        let url = database().await;
        let (hook, received, _hook_task) = webhook_receiver().await;
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = alerting_node(dir_a.path(), &url, &hook);
        let b = alerting_node(dir_b.path(), &url, &hook);
        // The first node made the accounts; the second found them.
        let created = read_credentials(dir_a.path())
            .expect("readable credentials")
            .expect("made on first start");
        assert!(
            read_credentials(dir_b.path()).expect("readable").is_none(),
            "accounts made twice"
        );
        let ingest = created.project.expect("a project").token;
        let user = created.user.expect("a user").token;
        let http = reqwest::Client::new();
        let (url_a, url_b) = (a.url.clone(), b.url.clone());

        // Each new error reaches both nodes at once, in two traces.
        const ERRORS: u64 = 6;
        let t0 = omegi_server::api::now_ns() - 60_000_000_000;
        for e in 0..ERRORS {
            let error_type = format!("PaymentError{e}");
            let send = |base: String, n: u64| {
                let (http, ingest) = (http.clone(), ingest.clone());
                let body = request(n, t0 + n * 1_000_000, "payment", &error_type);
                async move {
                    let response = http
                        .post(format!("{base}/v1/traces"))
                        .header("content-type", "application/json")
                        .bearer_auth(&ingest)
                        .body(body)
                        .send()
                        .await
                        .expect("the node answers");
                    assert_eq!(response.status(), 200);
                }
            };
            tokio::join!(
                send(url_a.clone(), 2 * e + 1),
                send(url_b.clone(), 2 * e + 2)
            );
        }
        settled(&http, &url_a).await;
        settled(&http, &url_b).await;

        // One new-issue alert per error, from one node or the other.
        let deadline = Instant::now() + Duration::from_secs(30);
        while (received.bodies.lock().await.len() as u64) < ERRORS {
            assert!(Instant::now() < deadline, "the alerts did not arrive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A duplicate would be queued by now: give it time to arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bodies = received.bodies.lock().await.clone();
        let new: Vec<&Value> = bodies.iter().filter(|b| b["kind"] == "new_issue").collect();
        let fingerprints: BTreeSet<&str> = new
            .iter()
            .map(|b| b["fingerprint"].as_str().expect("a fingerprint"))
            .collect();
        assert_eq!(
            new.len() as u64,
            ERRORS,
            "one alert per new issue: {bodies:#?}"
        );
        assert_eq!(fingerprints.len() as u64, ERRORS);

        // Either node answers any read, the same.
        for path in [
            "/api/issues?project=default&status=all".to_owned(),
            "/api/stats?project=default".to_owned(),
            "/api/traces?project=default".to_owned(),
            format!("/api/traces/{:032x}?project=default", 1),
            format!("/api/traces/{:032x}?project=default", 2 * ERRORS),
        ] {
            let (mut from_a, mut from_b) = (
                get(&http, &url_a, &user, &path).await,
                get(&http, &url_b, &user, &path).await,
            );
            // The statistics' window starts a day before each answer.
            for answer in [&mut from_a, &mut from_b] {
                answer.as_object_mut().map(|o| o.remove("from_ns"));
            }
            assert_eq!(from_a, from_b, "{path}");
        }
        let issues = get(
            &http,
            &url_a,
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        let issues = issues.as_array().expect("a list");
        assert_eq!(issues.len() as u64, ERRORS);
        assert!(issues.iter().all(|i| i["count"] == 2), "{issues:#?}");

        // A trace whose spans reach both nodes (a balancer that moved it):
        // what reaches the second node after the first settled the trace
        // settles there as late spans of the same trace, and its failure
        // is an issue.
        let late_trace = 1_000u64;
        let root = json!({ "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "gateway" } }] },
            "scopeSpans": [{ "spans": [{
                "traceId": format!("{late_trace:032x}"), "spanId": format!("{:016x}", 1),
                "name": "GET /checkout", "kind": 2,
                "startTimeUnixNano": t0.to_string(), "endTimeUnixNano": (t0 + 9_000).to_string(),
            }] }],
        }] });
        let mut child: Value =
            serde_json::from_slice(&request(late_trace, t0, "billing", "LateError")).expect("JSON");
        let spans = child["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .expect("spans");
        spans.retain(|s| s["spanId"] == format!("{SPANS_PER_REQUEST:016x}"));
        spans[0]["spanId"] = json!(format!("{:016x}", 2));
        spans[0]["parentSpanId"] = json!(format!("{:016x}", 1));
        for (base, body) in [(&url_a, root), (&url_b, child)] {
            let response = http
                .post(format!("{base}/v1/traces"))
                .bearer_auth(&ingest)
                .json(&body)
                .send()
                .await
                .expect("the node answers");
            assert_eq!(response.status(), 200);
            settled(&http, base).await;
        }
        let path = format!("/api/traces/{late_trace:032x}?project=default");
        for base in [&url_a, &url_b] {
            let trace = get(&http, base, &user, &path).await;
            assert_eq!(
                trace["spans"].as_array().map(Vec::len),
                Some(2),
                "{trace:#}"
            );
        }
        let stats = get(&http, &url_a, &user, "/api/stats?project=default").await;
        assert_eq!(
            stats["projects"][0]["sampling"]["late_spans"], 1,
            "{stats:#}"
        );
        let issues = get(
            &http,
            &url_b,
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        let late: Vec<&Value> = issues
            .as_array()
            .expect("a list")
            .iter()
            .filter(|i| {
                i["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("LateError"))
            })
            .collect();
        assert_eq!(late.len(), 1, "{issues:#}");
        assert_eq!(late[0]["count"], 1);

        // A note written on one node is found on the other.
        let response = http
            .post(format!("{url_a}/api/notes"))
            .bearer_auth(&user)
            .json(
                &json!({"title": "Declined cards", "body": "Retry with the backup acquirer.",
                          "visibility": "public"}),
            )
            .send()
            .await
            .expect("the API answers");
        assert!(response.status().is_success(), "{}", response.status());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let hits = get(&http, &url_b, &user, "/api/search?q=acquirer").await;
            if hits.as_array().is_some_and(|h| h.len() == 1) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the note is not found on the other node: {hits}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.kill();
        b.kill();
    })
    .await
    .expect("the test finishes in time");
}

/// A node as its own process (the built binary), on `database`.
fn start(data: &Path, database: &str) -> ServeProcess {
    ServeProcess::start(
        data,
        &[
            "--sync",
            "always",
            "--otlp-http-listen",
            "off",
            "--grpc-listen",
            "off",
            "--trace-wait",
            "300ms",
            "--sample-rate",
            "0.5",
        ],
        &[("OMEGI_DATABASE_URL", database)],
    )
}

/// What the senders of one node did: requests sent, and those answered
/// 200.
#[derive(Default)]
struct Sent {
    sent: BTreeSet<u64>,
    acknowledged: BTreeSet<u64>,
}

/// Sends requests `first, first + step, …` to `base` until it stops
/// answering or `stop` is set.
fn sender(
    base: String,
    token: String,
    first: u64,
    step: u64,
    sent: Arc<Mutex<Sent>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    tokio::spawn(async move {
        let t0 = omegi_server::api::now_ns() - 60_000_000_000;
        let mut n = first;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            sent.lock().unwrap().sent.insert(n);
            let answer = client
                .post(format!("{base}/v1/traces"))
                .header("content-type", "application/json")
                .bearer_auth(&token)
                .body(request(n, t0 + n * 1_000_000, "payment", "PaymentError"))
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 200 => {
                    sent.lock().unwrap().acknowledged.insert(n);
                }
                Ok(response) => panic!("request {n} answered {}", response.status()),
                // The node is gone.
                Err(_) => return,
            }
            n += step;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing_acknowledged() {
    tokio::time::timeout(LIMIT, async {
        let database = database().await;
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = start(dir_a.path(), &database);
        let credentials = read_credentials(dir_a.path())
            .expect("readable credentials")
            .expect("created on first start");
        let b = start(dir_b.path(), &database);
        let ingest = credentials.project.expect("a project").token;
        let user = credentials.user.expect("a user").token;

        // Two senders per node: node a's send 1, 2, 5, 6…, node b's 3, 4, 7, 8….
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sent_a, sent_b) = (Arc::default(), Arc::default());
        let mut senders = Vec::new();
        for s in 0..2 {
            senders.push(sender(
                a.url.clone(),
                ingest.clone(),
                s + 1,
                4,
                Arc::clone(&sent_a),
                stop.clone(),
            ));
            senders.push(sender(
                b.url.clone(),
                ingest.clone(),
                s + 3,
                4,
                Arc::clone(&sent_b),
                stop.clone(),
            ));
        }
        let acknowledged = |sent: &Arc<Mutex<Sent>>| sent.lock().unwrap().acknowledged.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        let kill_after = fastrand::usize(10..40);
        while acknowledged(&sent_a) < kill_after {
            assert!(Instant::now() < deadline, "node a acknowledged too little");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..20_000))).await;
        a.kill();
        // Node b keeps serving: 30 more requests acknowledged after the kill.
        let before = acknowledged(&sent_b);
        while acknowledged(&sent_b) < before + 30 {
            assert!(
                Instant::now() < deadline,
                "node b stopped serving when node a died"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for sender in senders {
            tokio::time::timeout(Duration::from_secs(30), sender)
                .await
                .expect("every sender stops")
                .expect("no sender panicked");
        }

        // Node a restarts on its data directory and settles what its log
        // holds; then both nodes read everything either acknowledged.
        let a = start(dir_a.path(), &database);
        let http = reqwest::Client::new();
        // Killed well within its window: its last acknowledged traces were
        // only in its log.
        let replayed = settled(&http, &a.url).await;
        assert!(replayed > 0, "node a replayed nothing from its log");
        settled(&http, &b.url).await;
        let mut stored = 0;
        for sent in [&sent_a, &sent_b] {
            let (all, acknowledged) = {
                let sent = sent.lock().unwrap();
                (sent.sent.clone(), sent.acknowledged.clone())
            };
            for n in all {
                let path = format!("/api/traces/{n:032x}?project=default");
                let mut spans = Vec::new();
                for base in [&a.url, &b.url] {
                    let response = http
                        .get(format!("{base}{path}"))
                        .bearer_auth(&user)
                        .send()
                        .await
                        .expect("the API answers");
                    let status = response.status().as_u16();
                    let trace: Value = response.json().await.expect("JSON");
                    spans.push(match status {
                        200 => trace["spans"].as_array().map_or(0, Vec::len) as u64,
                        404 => 0,
                        other => panic!("trace {n}: {other} {trace}"),
                    });
                }
                assert_eq!(spans[0], spans[1], "the nodes disagree on trace {n}");
                if acknowledged.contains(&n) {
                    assert_eq!(
                        spans[0], SPANS_PER_REQUEST,
                        "request {n} was answered 200 and lost"
                    );
                }
                assert!(
                    spans[0] == 0 || spans[0] == SPANS_PER_REQUEST,
                    "request {n} is partly stored: {} spans",
                    spans[0]
                );
                stored += u64::from(spans[0] == SPANS_PER_REQUEST);
            }
        }
        let issues_a = get(
            &http,
            &a.url,
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        let issues_b = get(
            &http,
            &b.url,
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        assert_eq!(issues_a, issues_b);
        assert_eq!(issues_a.as_array().map(Vec::len), Some(1), "{issues_a:#}");
        assert_eq!(
            issues_a[0]["count"], stored,
            "one occurrence per stored request"
        );
        let stats = get(&http, &b.url, &user, "/api/stats?project=default").await;
        assert_eq!(stats["summary"]["spans"], stored * SPANS_PER_REQUEST);
        eprintln!(
            "killed node a after {kill_after} acknowledged; {stored} requests stored, \
             {} and {} acknowledged by a and b, {replayed} replayed by a",
            sent_a.lock().unwrap().acknowledged.len(),
            sent_b.lock().unwrap().acknowledged.len()
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_postgresql_and_back_keeps_everything() {
    tokio::time::timeout(LIMIT, async {
        // An embedded store with spans, issues, a note and accounts.
        let sled_dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let settle = SettleConfig::default()
            .trace_wait(Duration::ZERO)
            .sampling(TailSampling::keep_all());
        let server = Server::start(ServeConfig::new(sled_dir.path(), listen).settle(settle))
            .await
            .expect("the server starts");
        let created = server.created_credentials().cloned().expect("first start");
        let ingest = created.project.expect("a project").token;
        let user = created.user.expect("a user").token;
        let http = reqwest::Client::new();
        let base = server.url();
        let t0 = omegi_server::api::now_ns() - 60_000_000_000;
        for n in 1..=3 {
            let response = http
                .post(format!("{base}/v1/traces"))
                .header("content-type", "application/json")
                .bearer_auth(&ingest)
                .body(request(n, t0 + n * 1_000_000, "payment", "PaymentError"))
                .send()
                .await
                .expect("the server answers");
            assert_eq!(response.status(), 200);
        }
        let response = http
            .post(format!("{base}/api/notes"))
            .bearer_auth(&user)
            .json(
                &json!({"title": "Declined cards", "body": "Use the backup acquirer.",
                          "visibility": "public"}),
            )
            .send()
            .await
            .expect("the API answers");
        assert!(response.status().is_success());
        let issues_before = get(
            &http,
            &base,
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        server.shutdown().await.expect("a clean shutdown");

        // Embedded store → PostgreSQL.
        let from_sled = sled_dir.path().join("from-sled.jsonl");
        offline_cli(
            sled_dir.path(),
            &["export", &from_sled.display().to_string()],
        )
        .await
        .expect("export from the embedded store");
        let url = database().await;
        let node_dir = tempfile::tempdir().unwrap();
        let said = offline_cli(
            node_dir.path(),
            &[
                "--database",
                &url,
                "import",
                &from_sled.display().to_string(),
                "--accounts",
            ],
        )
        .await
        .expect("import into PostgreSQL");
        assert!(
            said.contains("36 spans, 3 settled traces, 1 issues, 3 occurrences"),
            "{said}"
        );
        // The database now holds data: a second import is refused.
        let again = offline_cli(
            node_dir.path(),
            &[
                "--database",
                &url,
                "import",
                &from_sled.display().to_string(),
            ],
        )
        .await;
        assert!(again.is_err_and(|e| e.contains("already holds data")));
        let from_pg = node_dir.path().join("from-pg.jsonl");
        offline_cli(
            node_dir.path(),
            &["--database", &url, "export", &from_pg.display().to_string()],
        )
        .await
        .expect("export from PostgreSQL");
        assert_eq!(
            std::fs::read_to_string(&from_sled).unwrap(),
            std::fs::read_to_string(&from_pg).unwrap(),
            "PostgreSQL holds what the embedded store held"
        );

        // A node on the database serves it, to the same tokens.
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let node = Server::start(
            ServeConfig::new(node_dir.path(), listen).database(Some(PgConfig::new(url.as_str()))),
        )
        .await
        .expect("the node starts");
        assert!(
            node.created_credentials().is_none(),
            "the imported accounts are used"
        );
        let issues_after = get(
            &http,
            &node.url(),
            &user,
            "/api/issues?project=default&status=all",
        )
        .await;
        assert_eq!(issues_before, issues_after);
        let hits = get(&http, &node.url(), &user, "/api/search?q=acquirer").await;
        assert_eq!(hits.as_array().map(Vec::len), Some(1), "{hits}");
        node.shutdown().await.expect("a clean shutdown");

        // And back: PostgreSQL → a new embedded store.
        let back = tempfile::tempdir().unwrap();
        offline_cli(
            back.path(),
            &["import", &from_pg.display().to_string(), "--accounts"],
        )
        .await
        .expect("import into a new embedded store");
        let round_trip = back.path().join("round-trip.jsonl");
        offline_cli(back.path(), &["export", &round_trip.display().to_string()])
            .await
            .expect("export of the copy");
        assert_eq!(
            std::fs::read_to_string(&from_sled).unwrap(),
            std::fs::read_to_string(&round_trip).unwrap()
        );
    })
    .await
    .expect("the test finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_cannot_share_a_data_directory() {
    tokio::time::timeout(LIMIT, async {
        let url = database().await;
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let config =
            || ServeConfig::new(dir.path(), listen).database(Some(PgConfig::new(url.as_str())));
        let first = Server::start(config())
            .await
            .expect("the first node starts");
        let Err(refused) = Server::start(config()).await else {
            panic!("a second node started on the same data directory");
        };
        let message = omegi_core::ErrorChain(&refused).to_string();
        assert!(message.contains("in use by another process"), "{message}");
        first.shutdown().await.expect("a clean shutdown");
        // Once the first is gone, the directory is free again.
        let again = Server::start(config()).await.expect("a node starts again");
        again.shutdown().await.expect("a clean shutdown");
    })
    .await
    .expect("the test finishes in time");
}
