//! Settled-trace ingest on the embedded store and on PostgreSQL, side by
//! side in one run: spans stored per second and bytes per span on disk.
//!
//! ```text
//! cargo run --release -p benches --bin store_backends -- [--traces 20000] [--batch 200] [--runs 3]
//! ```
//!
//! Each arm stores the same traces, in batches of `--batch` traces (what
//! one settle step of `omegi serve` writes at once), each batch durable
//! before the next: the embedded store syncs after each batch, as `omegi
//! serve --sync always` does; PostgreSQL commits it (a throwaway cluster
//! with PostgreSQL's default durability, fsync on, started by the bench).
//! Arms:
//! - `sled`: one writer on the embedded store;
//! - `postgres`: one writer on one `Database` (one node);
//! - `postgres-2`: two `Database`s on the same database (two nodes), one
//!   writer each, the batches split between them.
//!
//! A trace has 10 spans over 3 services, 4 attributes and 2 events each;
//! one trace in 50 has a failed span with an error (one issue per service
//! and kind), as a settled trace brings them. Disk per span: the data
//! directory for sled (after a flush); for PostgreSQL, the growth of
//! `pg_database_size` (tables and indexes, without the write-ahead log).
//! Each run uses a new store and a new database; the medians are printed.

use std::time::Instant;

use omegi_core::flow::{Trace, Verdict};
use omegi_core::{ErrorRecord, Resource, SpanRecord, Status};
use omegi_store::postgres::{Database, Throwaway};
use omegi_store::{Config, SettledCause, SettledTrace, Store};

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_790_000_000_000_000_000;
const SPANS_PER_TRACE: u64 = 10;
const PROJECT: &str = "shop";

fn span(trace: u64, i: u64, failed: bool) -> SpanRecord {
    if failed {
        benches::shop_span(T0, trace, i, 500)
            .with_status(Status::Error)
            .with_status_message("card declined")
    } else {
        benches::shop_span(T0, trace, i, 200)
    }
}

/// Trace `n` as the settle step would hand it to the store.
fn settled(n: u64) -> SettledTrace {
    let failing = n.is_multiple_of(50);
    let spans: Vec<SpanRecord> = (0..SPANS_PER_TRACE)
        .map(|i| span(n, i, failing && i == SPANS_PER_TRACE - 1))
        .collect();
    let trace = Trace::from_spans(spans.clone()).expect("a trace");
    let failed: Vec<bool> = (0..spans.len())
        .map(|i| failing && i == spans.len() - 1)
        .collect();
    let verdict = if failing {
        Verdict::Failed
    } else {
        Verdict::Sampled
    };
    let mut settled = SettledTrace::new(spans[0].trace_id, spans.clone(), verdict);
    settled.requests = trace.requests(&failed);
    settled.calls = trace.calls(&failed);
    if failing {
        let last = &spans[spans.len() - 1];
        settled.failing = vec![last.span_id];
        settled.causes = vec![SettledCause {
            error: ErrorRecord::new("card declined", last.end_ns)
                .with_service(&last.service)
                .with_trace_id(last.trace_id)
                .with_span_id(last.span_id)
                .with_error_type(format!("PaymentError::Declined{}", n % 7)),
            consequences: Vec::new(),
        }];
    }
    settled
}

struct Options {
    traces: u64,
    batch: u64,
    runs: usize,
}

fn options() -> Options {
    let value = benches::arg_u64;
    Options {
        traces: value("--traces", 20_000),
        batch: value("--batch", 200).max(1),
        runs: value("--runs", 3).max(1) as usize,
    }
}

/// The batches, built before the clock starts.
fn batches(options: &Options) -> Vec<Vec<SettledTrace>> {
    (0..options.traces)
        .collect::<Vec<_>>()
        .chunks(options.batch as usize)
        .map(|chunk| chunk.iter().map(|&n| settled(n)).collect())
        .collect()
}

fn resources() -> Vec<Resource> {
    benches::SHOP_SERVICES
        .iter()
        .map(|s| Resource::new(*s))
        .collect()
}

/// Spans per second and bytes per span of one arm's run.
struct Measured {
    spans_per_s: f64,
    bytes_per_span: f64,
}

fn sled(batches: &[Vec<SettledTrace>], spans: u64) -> Measured {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open_with(Config::new(dir.path())).expect("a store");
    let resources = resources();
    let started = Instant::now();
    for batch in batches {
        store
            .traces()
            .ingest_settled(PROJECT, &resources, batch, &[])
            .expect("ingest");
        store.sync().expect("sync");
    }
    let elapsed = started.elapsed().as_secs_f64();
    store.flush().expect("flush");
    let usage = store.disk_usage().expect("disk usage");
    Measured {
        spans_per_s: spans as f64 / elapsed,
        bytes_per_span: usage.dir_bytes as f64 / spans as f64,
    }
}

fn database_size(url: &str) -> u64 {
    let mut client =
        postgres::Client::connect(url, postgres::NoTls).expect("a connection to measure");
    let bytes: i64 = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .expect("the database's size")
        .get(0);
    u64::try_from(bytes).unwrap_or(0)
}

fn postgres(
    cluster: &Throwaway,
    nodes: usize,
    batches: &[Vec<SettledTrace>],
    spans: u64,
) -> Measured {
    let url = cluster.create_database().expect("a database");
    let databases: Vec<Database> = (0..nodes)
        .map(|_| Database::connect(&url).expect("connects"))
        .collect();
    let before = database_size(&url);
    let resources = resources();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (node, db) in databases.iter().enumerate() {
            let resources = &resources;
            scope.spawn(move || {
                for batch in batches.iter().skip(node).step_by(nodes) {
                    db.traces()
                        .ingest_settled(PROJECT, resources, batch, &[])
                        .expect("ingest");
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let after = database_size(&url);
    Measured {
        spans_per_s: spans as f64 / elapsed,
        bytes_per_span: after.saturating_sub(before) as f64 / spans as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = options();
    let batches = batches(&options);
    let spans = options.traces * SPANS_PER_TRACE;
    let cluster =
        Throwaway::start_with(true).unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)));
    let arms = ["sled", "postgres", "postgres-2"];
    let mut results: Vec<Vec<Measured>> = arms.iter().map(|_| Vec::new()).collect();
    for run in 0..options.runs {
        // Interleaved, so that the machine's moods fall on every arm.
        for (arm, out) in arms.iter().zip(results.iter_mut()) {
            let measured = match *arm {
                "sled" => sled(&batches, spans),
                "postgres" => postgres(&cluster, 1, &batches, spans),
                _ => postgres(&cluster, 2, &batches, spans),
            };
            eprintln!(
                "run {run}: {arm}: {:.0} spans/s, {:.0} bytes/span",
                measured.spans_per_s, measured.bytes_per_span
            );
            out.push(measured);
        }
    }
    println!(
        "{} runs, {} traces of {SPANS_PER_TRACE} spans, batches of {} traces, medians",
        options.runs, options.traces, options.batch
    );
    println!();
    println!("| arm | spans/s | ÷ sled | bytes per span on disk |");
    println!("|---|---:|---:|---:|");
    let sled_rate = median(results[0].iter().map(|m| m.spans_per_s).collect());
    for (arm, measured) in arms.iter().zip(&results) {
        let rate = median(measured.iter().map(|m| m.spans_per_s).collect());
        let bytes = median(measured.iter().map(|m| m.bytes_per_span).collect());
        println!(
            "| {arm} | {rate:.0} | {:.2} | {bytes:.0} |",
            rate / sled_rate
        );
    }
}
