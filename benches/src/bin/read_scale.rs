//! The issue page and search of `omegi serve` over a large store, on the
//! embedded store and on PostgreSQL, side by side in one run.
//!
//! ```text
//! cargo run --release -p benches --bin read_scale -- [--occurrences 1000000] [--issues 1000] [--notes 2000] [--requests 50]
//! ```
//!
//! The embedded store is filled with `--occurrences` error occurrences over
//! `--issues` issues of one project, spread over the last 7 days: the first
//! issue (the hot one) has a tenth of them, the others share the rest. The
//! latest 200 occurrences have their trace's spans, so that the flow of the
//! latest occurrence exists. `--notes` public notes name the issues'
//! error types; then the same data is moved to PostgreSQL (a throwaway
//! cluster started by the bench, fsync on) with export and import, as
//! `omegi export` and `omegi import` move it, and the time is reported. On
//! each, `omegi serve` starts in-process (with `--database` on
//! PostgreSQL), and one client asks, `--requests` times each, one after
//! another:
//! - the issue page of the hot issue and of a cold one, as the web UI
//!   loads it: the issue (`GET /api/issues/{project}/{fingerprint}`), the
//!   flow of its latest occurrence (`…/flow`) and the notes suggested for it
//!   (`…/suggestions`), one after the other;
//! - a full-text search (`GET /api/search?q=…`).
//!
//! It prints the median and 95th percentile of each, per arm.

use std::time::{Duration, Instant};

use omegi_core::Visibility;
use omegi_core::{ErrorRecord, Record, Resource, SpanId, SpanRecord, Status, TraceId};
use omegi_server::server::{ServeConfig, Server, STORE_DIR};
use omegi_store::postgres::{PgConfig, Throwaway};
use omegi_store::{ImportOptions, Store, VaultImportOptions};

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROJECT: &str = "shop";
const DAY_NS: u64 = 86_400_000_000_000;
/// Errors per ingest call while filling.
const BATCH: u64 = 2_000;
/// Threads that fill the store at once.
const FILLERS: usize = 4;
/// The latest occurrences whose traces have spans.
const WITH_SPANS: u64 = 200;

struct Options {
    occurrences: u64,
    issues: u64,
    notes: u64,
    requests: usize,
}

fn options() -> Options {
    let value = benches::arg_u64;
    Options {
        occurrences: value("--occurrences", 1_000_000),
        issues: value("--issues", 1_000).max(2),
        notes: value("--notes", 2_000),
        requests: value("--requests", 50).max(1) as usize,
    }
}

/// The issue of occurrence `n`: a tenth go to issue 0.
fn issue_of(n: u64, issues: u64) -> u64 {
    if n.is_multiple_of(10) {
        0
    } else {
        1 + n % (issues - 1)
    }
}

fn error_type(issue: u64) -> String {
    format!("CheckoutError{issue}")
}

/// Occurrences `n..end` (and the spans of the latest ones' traces).
fn batch(n: u64, end: u64, o: &Options, start: u64, step: u64) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::with_capacity((end - n) as usize);
    for i in n..end {
        let time = start + i * step;
        let issue = issue_of(i, o.issues);
        let trace = TraceId(u128::from(i) + 1);
        let span = SpanId(i + 1);
        records.push(Record::Error(
            ErrorRecord::new(format!("order {i} failed at checkout"), time)
                .with_trace_id(trace)
                .with_span_id(span)
                .with_error_type(error_type(issue))
                .with_target("payment::checkout"),
        ));
        if i + WITH_SPANS >= o.occurrences {
            records.push(Record::Span(
                SpanRecord::new(trace, span, "POST /checkout", time - 2_000_000, time)
                    .with_service("payment")
                    .with_status(Status::Error)
                    .with_status_message("checkout failed"),
            ));
        }
    }
    records
}

/// Fills `store`: occurrences, the latest ones' spans, notes.
fn fill(store: &Store, o: &Options, now: u64) {
    let resource = Resource::new("payment");
    let start = now - 7 * DAY_NS;
    let step = (7 * DAY_NS) / o.occurrences.max(1);
    let started = Instant::now();
    // Batches go in from FILLERS threads at once, as from several requests.
    let batches: Vec<u64> = (0..o.occurrences).step_by(BATCH as usize).collect();
    std::thread::scope(|scope| {
        for filler in 0..FILLERS {
            let (batches, resource) = (&batches, &resource);
            scope.spawn(move || {
                for &n in batches.iter().skip(filler).step_by(FILLERS) {
                    let end = (n + BATCH).min(o.occurrences);
                    let records = batch(n, end, o, start, step);
                    store
                        .traces()
                        .ingest(PROJECT, resource, &records)
                        .expect("ingest");
                }
            });
        }
    });
    store.sync().expect("sync");
    let occurrences_s = started.elapsed().as_secs_f64();
    // The notes come as a team's vault: one Markdown file each, imported
    // at once.
    let vault = tempfile::tempdir().expect("a temporary directory");
    for i in 0..o.notes {
        let issue = i % o.issues;
        let text = format!(
            "When {} happens at checkout, retry the payment with the backup acquirer \
             (case {i}). See the dashboard of the payment service.\n",
            error_type(issue)
        );
        std::fs::write(
            vault
                .path()
                .join(format!("Runbook {i} {}.md", error_type(issue))),
            text,
        )
        .expect("a note file");
    }
    let options = VaultImportOptions::default().visibility(Visibility::Public);
    let imported = store
        .notes()
        .import_vault(vault.path(), "kim", &options)
        .expect("the vault");
    assert_eq!(
        imported.created.len() as u64,
        o.notes,
        "{:?}",
        imported.skipped
    );
    store.sync().expect("sync");
    eprintln!(
        "  filled: {} occurrences in {occurrences_s:.0} s, {} notes in {:.0} s",
        o.occurrences,
        o.notes,
        started.elapsed().as_secs_f64() - occurrences_s
    );
}

/// Median and 95th percentile, in ms.
fn quantiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() - 1) as f64 * q).round() as usize;
        times[i].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.95))
}

/// What one arm measured: (median, p95) ms of each request.
struct Measured {
    hot_page: (f64, f64),
    cold_page: (f64, f64),
    search: (f64, f64),
}

async fn measure(server: &Server, token: &str, o: &Options) -> Measured {
    let http = reqwest::Client::new();
    let base = server.url();
    let get = |path: String| {
        let request = http.get(format!("{base}{path}")).bearer_auth(token).send();
        async move {
            let response = request.await.expect("the server answers");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await.expect("a body")
        }
    };
    let issues: serde_json::Value = serde_json::from_slice(
        &get(format!(
            "/api/issues?project={PROJECT}&status=all&limit=1000"
        ))
        .await,
    )
    .expect("JSON");
    let fingerprint = |issue: u64| {
        let wanted = format!("{}: ", error_type(issue));
        issues
            .as_array()
            .expect("a list")
            .iter()
            .find(|i| i["title"].as_str().is_some_and(|t| t.starts_with(&wanted)))
            .and_then(|i| i["fingerprint"].as_str())
            .unwrap_or_else(|| panic!("issue {issue} is listed"))
            .to_owned()
    };
    let (hot, cold) = (fingerprint(0), fingerprint(o.issues / 2));
    let page = |fp: String| {
        let get = &get;
        async move {
            let started = Instant::now();
            let path = format!("/api/issues/{PROJECT}/{fp}");
            get(path.clone()).await;
            get(format!("{path}/flow")).await;
            get(format!("{path}/suggestions")).await;
            started.elapsed()
        }
    };
    let mut times = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..o.requests {
        times.0.push(page(hot.clone()).await);
        times.1.push(page(cold.clone()).await);
        let started = Instant::now();
        let query = error_type(i as u64 % o.issues);
        get(format!("/api/search?q={query}%20acquirer&limit=10")).await;
        times.2.push(started.elapsed());
    }
    Measured {
        hot_page: quantiles(times.0),
        cold_page: quantiles(times.1),
        search: quantiles(times.2),
    }
}

async fn serve_and_measure(config: ServeConfig, o: &Options) -> Measured {
    let server = Server::start(config).await.expect("the server starts");
    let token = server
        .created_credentials()
        .and_then(|c| c.user.clone())
        .expect("an admin made on first start")
        .token;
    let measured = measure(&server, &token, o).await;
    server.shutdown().await.expect("shutdown");
    measured
}

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("an address")
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let now = omegi_server::api::now_ns();
    let mut rows = Vec::new();

    eprintln!("sled:");
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let store = Store::open(dir.path().join(STORE_DIR)).expect("a store");
        fill(&store, &o, now);
    }
    rows.push((
        "sled",
        runtime.block_on(serve_and_measure(
            ServeConfig::new(dir.path(), listen()),
            &o,
        )),
    ));

    eprintln!("postgres:");
    let cluster = Throwaway::start_with(true).expect("a PostgreSQL cluster");
    let url = cluster.create_database().expect("a database");
    {
        // The same data, moved as `omegi export` and `omegi import` move it
        // (the accounts stay behind: the node makes its own).
        let export = dir.path().join("export.jsonl");
        let started = Instant::now();
        let sled = Store::open(dir.path().join(STORE_DIR)).expect("the store");
        let file = std::fs::File::create(&export).expect("an export file");
        sled.export(std::io::BufWriter::new(file)).expect("export");
        drop(sled);
        let exported = started.elapsed().as_secs_f64();
        let store = Store::connect(PgConfig::new(url.as_str())).expect("the database");
        let file = std::fs::File::open(&export).expect("the export file");
        let stats = store
            .import_with(std::io::BufReader::new(file), ImportOptions::data_only())
            .expect("import");
        eprintln!(
            "  moved: exported in {exported:.0} s, imported {} occurrences, {} notes in {:.0} s",
            stats.occurrences,
            stats.notes,
            started.elapsed().as_secs_f64() - exported
        );
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = ServeConfig::new(dir.path(), listen()).database(Some(PgConfig::new(url)));
    rows.push(("postgres", runtime.block_on(serve_and_measure(config, &o))));

    println!(
        "read_scale: {} occurrences over {} issues (the hot one {}), {} notes, {} requests each",
        o.occurrences,
        o.issues,
        o.occurrences.div_ceil(10),
        o.notes,
        o.requests
    );
    println!("| arm | issue page, hot issue | issue page, cold issue | search |");
    println!("|---|---:|---:|---:|");
    for (arm, m) in rows {
        let cell = |(p50, p95): (f64, f64)| format!("{p50:.1} ms (p95 {p95:.1})");
        println!(
            "| {arm} | {} | {} | {} |",
            cell(m.hot_page),
            cell(m.cold_page),
            cell(m.search)
        );
    }
}
