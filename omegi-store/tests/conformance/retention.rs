//! Retention: old spans, settled traces and occurrences go; issues and
//! counters stay.

use omegi_core::flow::Verdict;
use omegi_core::{fingerprint, Record, TraceId};
use omegi_store::{Bucket, SettledTrace, TraceQuery};

use crate::common::*;
use crate::Backend;

const HOUR: u64 = 3600 * SEC;
const DAY: u64 = 24 * HOUR;

/// The start of today (UTC), ns.
fn today() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    now - now % DAY
}

/// The tables of one day of the database, if they exist.
fn day_tables(store: &Backend, day_ns: u64) -> Vec<String> {
    let Backend::Postgres(_, url) = store else {
        return Vec::new();
    };
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let day = day_ns / DAY;
    client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname IN ($1, $2) ORDER BY relname",
            &[
                &format!("occurrences_d{day}"),
                &format!("span_chunks_d{day}"),
            ],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub(crate) fn retention_deletes_old_spans_and_occurrences_but_keeps_issues(store: Backend) {
    let r = resource("a");
    let old = today() - 3 * DAY + HOUR;
    let cutoff = today() - 2 * DAY + HOUR;
    let new = today() - HOUR;
    let boom = |time, trace| Record::Error(error("a", "boom", time, trace));
    store
        .traces()
        .ingest(
            "p",
            &r,
            &[
                Record::Span(span(1, 1, None, "a", old)),
                Record::Span(span(1, 2, Some(1), "a", old + 1)),
                boom(old, Some(1)),
            ],
        )
        .unwrap();
    store
        .traces()
        .ingest(
            "p",
            &r,
            &[
                Record::Span(span(2, 3, None, "a", new)),
                boom(new, Some(2)),
                // A late span of the old trace.
                Record::Span(span(1, 4, Some(1), "a", old + 2)),
                // The day of the cutoff: one before it, one after.
                boom(cutoff - 10 * 60 * SEC, None),
                boom(cutoff + 10 * 60 * SEC, None),
            ],
        )
        .unwrap();
    let settled = |trace: u128, start: u64| {
        SettledTrace::new(
            TraceId(trace),
            vec![span(trace, 1, None, "a", start)],
            Verdict::SampledOut,
        )
    };
    store
        .traces()
        .ingest_settled(
            "p",
            std::slice::from_ref(&r),
            &[settled(3, old), settled(4, new)],
            &[],
        )
        .unwrap();
    let old_day = today() - 3 * DAY;
    if matches!(store, Backend::Postgres(..)) {
        // Data of recent days is in partitions of its day.
        assert_eq!(
            day_tables(&store, old_day),
            [
                format!("occurrences_d{}", old_day / DAY),
                format!("span_chunks_d{}", old_day / DAY)
            ]
        );
    }

    let report = store.purge_before(cutoff);
    assert_eq!((report.traces, report.spans, report.occurrences), (1, 3, 2));
    assert!(store.traces().spans("p", TraceId(1)).unwrap().is_empty());
    assert!(store.traces().get("p", TraceId(1)).unwrap().is_none());
    assert_eq!(store.traces().spans("p", TraceId(2)).unwrap().len(), 1);
    assert_eq!(
        store
            .traces()
            .list(&TraceQuery::project("p"))
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .traces()
        .settlement("p", TraceId(3))
        .unwrap()
        .is_none());
    assert!(store
        .traces()
        .settlement("p", TraceId(4))
        .unwrap()
        .is_some());
    let fp = fingerprint(&error("a", "boom", 0, None));
    let issue = store.issues().get("p", &fp).unwrap().unwrap();
    assert_eq!(issue.count, 4, "issues keep their count");
    // The histogram counts what is retained.
    for bucket in [Bucket::Minute, Bucket::Hour, Bucket::Day] {
        let counts = store
            .issues()
            .histogram("p", &fp, bucket, 0, u64::MAX)
            .unwrap();
        assert_eq!(
            counts
                .iter()
                .map(|b| (b.start_ns, b.count))
                .collect::<Vec<_>>(),
            [
                (bucket.start_of(cutoff + 10 * 60 * SEC), 1),
                (bucket.start_of(new), 1)
            ],
            "{bucket:?}"
        );
    }
    let left = store
        .issues()
        .occurrences("p", &fp, 0, u64::MAX, 10)
        .unwrap();
    assert_eq!(
        left.iter().map(|o| o.time_ns).collect::<Vec<_>>(),
        [cutoff + 10 * 60 * SEC, new]
    );
    // Error counters and totals are kept.
    let summary = &store.stats().summary().unwrap().projects[0];
    assert_eq!((summary.errors, summary.issues), (4, 1));
    // A second pass finds nothing more.
    let again = store.purge_before(cutoff);
    assert_eq!((again.traces, again.spans, again.occurrences), (0, 0, 0));
    // The old day's partitions were dropped, not emptied.
    assert!(day_tables(&store, old_day).is_empty());

    // A trace id sent again after its trace went starts afresh.
    store
        .traces()
        .ingest("p", &r, &[Record::Span(span(1, 9, None, "a", new))])
        .unwrap();
    let spans = store.traces().spans("p", TraceId(1)).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        store
            .traces()
            .get("p", TraceId(1))
            .unwrap()
            .unwrap()
            .span_count,
        1
    );
}
