//! Disk use around retention. sled 0.34 has no compaction call; space freed
//! by deletes is reclaimed when its log segments are rewritten. This test
//! fills a store, deletes everything with retention, fills it again, and
//! checks that the second fill reuses space instead of growing the
//! directory by as much again. Run with `--nocapture` to see the numbers.

mod common;

use common::*;
use omegi_core::{Record, TraceId};
use omegi_store::{Config, DiskUsage, Store};

const TRACES: u64 = 2_000;
const SPANS_PER_TRACE: u64 = 10;

fn fill(store: &Store, round: u64) {
    let base = round * TRACES;
    for chunk in 0..TRACES / 100 {
        let records: Vec<Record> = (0..100)
            .flat_map(|t| {
                let trace = u128::from(base + chunk * 100 + t + 1);
                (1..=SPANS_PER_TRACE).map(move |s| {
                    Record::Span(span(
                        trace,
                        s,
                        None,
                        "gateway",
                        T0 + round * 1_000 * SEC + s,
                    ))
                })
            })
            .collect();
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
