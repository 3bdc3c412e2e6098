//! Disk use around retention. sled 0.34 has no compaction call; space freed
//! by deletes is reclaimed when its log segments are rewritten. This test
//! fills a store, deletes everything with retention, fills it again, and
//! checks that the second fill reuses space instead of growing the
//! directory by as much again. On PostgreSQL, it measures the bytes per
//! span and checks that retention drops a day's partition. Run with
//! `--nocapture` to see the numbers.

mod common;

use common::*;
use omegi_core::{Record, TraceId};
use omegi_store::postgres::{Database, Throwaway};
use omegi_store::{Config, DiskUsage, Store};

const TRACES: u64 = 2_000;
const SPANS_PER_TRACE: u64 = 10;

/// The spans of one fill as the requests that carry them: 100 traces of
/// [`SPANS_PER_TRACE`] spans each, starting at `start`.
fn requests(round: u64, start: u64) -> Vec<Vec<Record>> {
    let base = round * TRACES;
    (0..TRACES / 100)
        .map(|chunk| {
            (0..100)
                .flat_map(|t| {
                    let trace = u128::from(base + chunk * 100 + t + 1);
                    (1..=SPANS_PER_TRACE)
                        .map(move |s| Record::Span(span(trace, s, None, "gateway", start + s)))
                })
                .collect()
        })
        .collect()
}

fn fill(store: &Store, round: u64) {
    for records in requests(round, T0 + round * 1_000 * SEC) {
        store
            .traces()
            .ingest("shop", &resource("gateway"), &records)
            .unwrap();
    }
    store.flush().unwrap();
}

fn show(label: &str, u: DiskUsage) {
    let spans = (TRACES * SPANS_PER_TRACE) as f64;
    println!(
        "{label:<28} engine {:>10} B  dir {:>10} B  ({:.0} B/span of one fill)",
        u.engine_bytes,
        u.dir_bytes,
        u.dir_bytes as f64 / spans
    );
}

#[test]
fn space_freed_by_retention_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(Config::new(dir.path())).unwrap();
    fill(&store, 0);
    let first = store.disk_usage().unwrap();
    show("after first fill", first);
    let mut peak = first.dir_bytes;
    for round in 1..=4u64 {
        // Delete the previous round, then write a new one of the same size.
        let report = store.purge_before(T0 + round * 1_000 * SEC).unwrap();
        assert_eq!(report.traces, TRACES);
        show(&format!("round {round}: after retention"), report.after);
        fill(&store, round);
        let now = store.disk_usage().unwrap();
        show(&format!("round {round}: after refill"), now);
        peak = peak.max(now.dir_bytes);
        assert!(
            store
                .traces()
                .spans("shop", TraceId(u128::from(round * TRACES + 1)))
                .unwrap()
                .len()
                == SPANS_PER_TRACE as usize
        );
    }
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    show("after reopen", reopened.disk_usage().unwrap());
    // Five fills of which one is live: without reuse the directory would
    // hold about five times the first fill.
    assert!(
        peak < first.dir_bytes * 4,
        "the directory grew to {peak} B from {} B",
        first.dir_bytes
    );
}

/// Bytes of the tables (with their indexes and TOAST) whose names are
/// given, and of the partitions of those that are partitioned.
fn table_bytes(client: &mut postgres::Client, tables: &[&str]) -> u64 {
    let bytes: i64 = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
             WHERE c.relname = ANY($1) OR c.oid IN (
                 SELECT i.inhrelid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = ANY($1))",
            &[&tables],
        )
        .unwrap()
        .get(0);
    bytes as u64
}

#[test]
fn postgres_keeps_spans_compactly_and_retention_drops_their_days() {
    let url = Throwaway::shared().unwrap().create_database().unwrap();
    let db = Database::connect(&url).unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let day = 24 * 3600 * SEC;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // Two days ago: a day of its own, not today's.
    let start = now - now % day - 2 * day;
    for records in requests(0, start) {
        db.traces()
            .ingest("shop", &resource("gateway"), &records)
            .unwrap();
    }
    client.batch_execute("VACUUM ANALYZE").unwrap();
    let spans = (TRACES * SPANS_PER_TRACE) as f64;
    let chunks = table_bytes(&mut client, &["span_chunks"]);
    let with_summaries = table_bytes(&mut client, &["span_chunks", "traces"]);
    println!(
        "span_chunks {chunks} B ({:.0} B/span); with trace summaries {with_summaries} B ({:.0} B/span)",
        chunks as f64 / spans,
        with_summaries as f64 / spans,
    );
    // A span is a few dozen bytes of postcard in a chunk of its trace, not
    // a row of its own (a row costs more than 100 bytes before its data).
    assert!(
        (chunks as f64 / spans) < 250.0,
        "{chunks} B for {spans} spans"
    );

    let report = db.purge_before(start + day).unwrap();
    assert_eq!(report.traces, TRACES);
    assert_eq!(report.spans, TRACES * SPANS_PER_TRACE);
    let left = table_bytes(&mut client, &["span_chunks"]);
    println!("span_chunks after retention: {left} B");
    // The day's partition is gone with its bytes: what is left is the
    // empty default partition and parent.
    assert!(left < chunks / 10, "{left} B left of {chunks} B");
}
