//! The embedded store: span-batch ingest with every index, error ingest,
//! the issue list query and a trace fetch, on a store in a temporary
//! directory with the default configuration (periodic flush every 500 ms).
//!
//! Runs on mimalloc, the `omegi` binary's allocator, unless built with
//! `--features system-alloc`. The caller's records are built outside the
//! measured time and dropped inside it, as a collector would.
//!
//! Spans look like a layer's output: 10 spans per trace across 3 services,
//! 4 attributes and 2 events each. Building the input stays outside the
//! measured time. The setup also prints disk bytes per span after
//! 100,000 spans.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use omegi_core::{
    CodeLocation, ErrorRecord, Record, Resource, SpanFrame, SpanId, SpanRecord, TraceId,
};
use omegi_store::{Config, IssueQuery, IssueSort, Store};

/// The allocator of the `omegi` binary, which runs the store and the
/// collector; `--features system-alloc` measures with the system's instead.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_700_000_000_000_000_000;
const SPANS_PER_TRACE: u64 = 10;
const BATCH: u64 = 1_000;

fn span(trace: u64, i: u64) -> SpanRecord {
    benches::shop_span(T0, trace, i, 200).with_location(CodeLocation {
        file: Some("src/api.rs".into()),
        line: Some(42),
        module: Some("shop::api".into()),
    })
}

/// `BATCH` spans: traces `first..first + BATCH / SPANS_PER_TRACE`.
fn span_batch(first_trace: u64) -> Vec<Record> {
    (first_trace..first_trace + BATCH / SPANS_PER_TRACE)
        .flat_map(|t| (0..SPANS_PER_TRACE).map(move |i| Record::Span(span(t, i))))
        .collect()
}

fn error(n: u64, kinds: u64) -> ErrorRecord {
    ErrorRecord::new(
        format!("card declined (reason {})", n % kinds),
        T0 + n * 1_000_000,
    )
    .with_trace_id(TraceId(u128::from(n) + 1))
    .with_span_id(SpanId(1))
    .with_service("payment-service")
    .with_causes(vec!["gateway said no".into()])
    .with_error_type("PaymentError")
    .with_target("payment::api")
    .with_field("order.id", n as i64)
    .with_span_stack(vec![
        SpanFrame::new(SpanId(1), "charge").with_target("payment::api")
    ])
    .with_thread("tokio-runtime-worker")
    // Explicit, so that the grouping does not depend on message normalization.
    .with_fingerprint(format!("declined-{}", n % kinds))
}

fn resource() -> Resource {
    Resource::new("gateway").with_attribute("host.name", "bench")
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_with(Config::new(dir.path())).expect("open store")
}

fn disk_bytes_per_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let spans = 100_000u64;
    let traces_per_batch = BATCH / SPANS_PER_TRACE;
    for b in 0..spans / BATCH {
        store
            .traces()
            .ingest("shop", &resource(), &span_batch(b * traces_per_batch))
            .expect("ingest");
    }
    store.flush().expect("flush");
    let usage = store.disk_usage().expect("disk usage");
    println!(
        "store/disk: {spans} spans -> engine {} B ({:.0} B/span), directory {} B ({:.0} B/span)",
        usage.engine_bytes,
        usage.engine_bytes as f64 / spans as f64,
        usage.dir_bytes,
        usage.dir_bytes as f64 / spans as f64,
    );
}

fn ingest(c: &mut Criterion) {
    disk_bytes_per_span();
    let mut group = c.benchmark_group("store/ingest");
    group.throughput(Throughput::Elements(BATCH));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let mut next_trace = 0u64;
    group.bench_function("spans_batch_1000", |b| {
        b.iter_batched(
            || {
                let batch = span_batch(next_trace);
                next_trace += BATCH / SPANS_PER_TRACE;
                batch
            },
            |batch| {
                store
                    .traces()
                    .ingest("shop", &resource(), &batch)
                    .expect("ingest")
            },
            BatchSize::SmallInput,
        )
    });
    let errors_per_batch = 100u64;
    group.throughput(Throughput::Elements(errors_per_batch));
    let mut next_error = 0u64;
    group.bench_function("errors_batch_100_of_20_issues", |b| {
        b.iter_batched(
            || {
                let batch: Vec<Record> = (next_error..next_error + errors_per_batch)
                    .map(|n| Record::Error(error(n, 20)))
                    .collect();
                next_error += errors_per_batch;
                batch
            },
            |batch| {
                store
                    .traces()
                    .ingest("shop", &resource(), &batch)
                    .expect("ingest")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    // 1,000 issues with 5 occurrences each, 10,000 traces of 10 spans.
    for round in 0..5u64 {
        let batch: Vec<Record> = (0..1_000u64)
            .map(|n| Record::Error(error(round * 1_000 + n, 1_000)))
            .collect();
        store
            .traces()
            .ingest("shop", &resource(), &batch)
            .expect("ingest");
    }
    for b in 0..100u64 {
        store
            .traces()
            .ingest("shop", &resource(), &span_batch(b * 100))
            .expect("ingest");
    }
    let mut group = c.benchmark_group("store/query");
    group.bench_function("issues_open_by_last_seen_limit_50", |b| {
        let query = IssueQuery::open().limit(50);
        b.iter(|| black_box(store.issues().list("shop", &query).expect("query")))
    });
    group.bench_function("issues_all_by_count_of_1000_limit_50", |b| {
        let query = IssueQuery::all().sort(IssueSort::Count).limit(50);
        b.iter(|| black_box(store.issues().list("shop", &query).expect("query")))
    });
    let mut t = 0u64;
    group.bench_function("trace_fetch_10_spans", |b| {
        b.iter(|| {
            t = (t + 7_919) % 10_000;
            let spans = store
                .traces()
                .spans("shop", TraceId(u128::from(t) << 64 | 0xabcd))
                .expect("fetch");
            assert_eq!(spans.len(), 10);
            black_box(spans)
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
