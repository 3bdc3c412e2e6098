//! Issues and their occurrences.

use omegi_core::{fingerprint, Attribute, Record, TraceId};
use omegi_store::{Bucket, Error, IssueQuery, IssueSort, IssueStatus, TITLE_CHARS};

use crate::common::*;
use crate::Backend;

pub(crate) fn errors_group_into_issues_that_resolve_regress_and_ignore(store: Backend) {
    let r = resource("payment");
    let e1 = error("payment", "card declined", T0, Some(1));
    let e2 = error("payment", "card declined", T0 + SEC, Some(2));
    let other = error("inventory", "out of stock", T0 + 2 * SEC, None);
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[
                Record::Error(e1.clone()),
                Record::Error(e2.clone()),
                Record::Error(other.clone()),
            ],
        )
        .unwrap();
    assert_eq!(report.created.len(), 2);
    assert!(report.regressed.is_empty());
    let fp = fingerprint(&e1);
    let issue = store.issues().get("shop", &fp).unwrap().unwrap();
    assert_eq!(issue.count, 2);
    assert_eq!(issue.title, "AppError: card declined");
    assert_eq!((issue.first_seen_ns, issue.last_seen_ns), (T0, T0 + SEC));
    assert_eq!(issue.latest_trace, Some(TraceId(2)));
    assert_eq!(issue.latest_error, e2);
    assert_eq!(issue.services, ["payment"]);
    assert_eq!(issue.status, IssueStatus::Unresolved);

    // Sorted by last seen: "out of stock" is newer; by count: "card declined" wins.
    let by_last = store.issues().list("shop", &IssueQuery::all()).unwrap();
    assert_eq!(by_last[0].fingerprint, fingerprint(&other));
    let by_count = store
        .issues()
        .list("shop", &IssueQuery::all().sort(IssueSort::Count))
        .unwrap();
    assert_eq!(by_count[0].fingerprint, fp);

    store
        .issues()
        .set_status("shop", &fp, IssueStatus::Resolved)
        .unwrap();
    store
        .issues()
        .set_status("shop", &fingerprint(&other), IssueStatus::Ignored)
        .unwrap();
    assert!(store
        .issues()
        .list("shop", &IssueQuery::open())
        .unwrap()
        .is_empty());

    let again = error("payment", "card declined", T0 + 3 * SEC, Some(3));
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[
                Record::Error(again),
                Record::Error(error("inventory", "out of stock", T0 + 4 * SEC, None)),
            ],
        )
        .unwrap();
    assert!(report.created.is_empty());
    assert_eq!(report.regressed.len(), 1, "only the resolved one regresses");
    assert_eq!(report.regressed[0].status, IssueStatus::Regressed);
    assert_eq!(report.regressed[0].count, 3);
    let ignored = store
        .issues()
        .get("shop", &fingerprint(&other))
        .unwrap()
        .unwrap();
    assert_eq!((ignored.status, ignored.count), (IssueStatus::Ignored, 2));

    // A second occurrence while regressed is not reported again.
    let report = store
        .traces()
        .ingest(
            "shop",
            &r,
            &[Record::Error(error(
                "payment",
                "card declined",
                T0,
                Some(4),
            ))],
        )
        .unwrap();
    assert!(report.regressed.is_empty());
    assert_eq!(report.errors, 1);

    let occurrences = store
        .issues()
        .occurrences("shop", &fp, 0, u64::MAX, 100)
        .unwrap();
    assert_eq!(
        occurrences.iter().map(|o| o.time_ns).collect::<Vec<_>>(),
        [T0, T0, T0 + SEC, T0 + 3 * SEC]
    );
    assert_eq!(occurrences[2].error, e2);
    assert_eq!(occurrences[2].trace_id, Some(TraceId(2)));
    let histogram = store
        .issues()
        .histogram("shop", &fp, Bucket::Minute, 0, u64::MAX)
        .unwrap();
    assert_eq!(histogram.iter().map(|b| b.count).sum::<u64>(), 4);
    // A window counts the buckets that overlap it; one sent again counts once.
    store
        .traces()
        .ingest(
            "shop",
            &r,
            &[Record::Error(error(
                "payment",
                "card declined",
                T0,
                Some(4),
            ))],
        )
        .unwrap();
    let window = store
        .issues()
        .histogram("shop", &fp, Bucket::Minute, T0 + 1, T0 + 2)
        .unwrap();
    assert_eq!(
        window
            .iter()
            .map(|b| (b.start_ns, b.count))
            .collect::<Vec<_>>(),
        [(Bucket::Minute.start_of(T0), 4)]
    );

    // Issues are per project.
    assert!(store.issues().get("blog", &fp).unwrap().is_none());
    assert!(matches!(
        store
            .issues()
            .set_status("blog", &fp, IssueStatus::Resolved),
        Err(Error::IssueNotFound { .. })
    ));
}

pub(crate) fn latest_occurrences_come_newest_first_and_stop_at_the_limit(store: Backend) {
    let r = resource("api");
    // Two at the same time: paging by occurrence keeps both.
    let twin = {
        let mut e = error("api", "order failed", T0 + 150 * SEC, Some(1_000));
        e.fingerprint = Some("orders".into());
        Record::Error(e)
    };
    store.traces().ingest("p", &r, &[twin]).unwrap();
    let records: Vec<Record> = (0..300u64)
        .map(|i| {
            let mut e = error("api", "order failed", T0 + i * SEC, Some(u128::from(i) + 1));
            e.fingerprint = Some("orders".into());
            Record::Error(e)
        })
        .collect();
    store.traces().ingest("p", &r, &records).unwrap();
    let Record::Error(first) = &records[0] else {
        unreachable!()
    };
    let fp = fingerprint(first);

    let all = store
        .issues()
        .latest_occurrences("p", &fp, None, 1_000)
        .unwrap();
    assert_eq!(all.len(), 301);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .issues()
            .latest_occurrences("p", &fp, before, 7)
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some((last.time_ns, last.seq));
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages of 7 add up to the whole list");
    let latest = store
        .issues()
        .latest_occurrences("p", &fp, None, 20)
        .unwrap();
    let times: Vec<u64> = latest.iter().map(|o| o.time_ns).collect();
    let want: Vec<u64> = (280..300u64).rev().map(|i| T0 + i * SEC).collect();
    assert_eq!(times, want);
    assert_eq!(latest[0].trace_id, Some(TraceId(300)));
    assert_eq!(latest[0].message, "order failed");
    assert_eq!(latest[0].service, "api");

    // Paging on: the 20 before the oldest one shown.
    let last = latest.last().unwrap();
    let page = store
        .issues()
        .latest_occurrences("p", &fp, Some((last.time_ns, last.seq)), 20)
        .unwrap();
    assert_eq!(page[0].time_ns, T0 + 279 * SEC);
    assert_eq!(page.len(), 20);
    assert!(store
        .issues()
        .latest_occurrences("p", &fp, Some((T0, 0)), 20)
        .unwrap()
        .is_empty());
    assert!(store
        .issues()
        .latest_occurrences("p", &fp, None, 0)
        .unwrap()
        .is_empty());

    // One occurrence by its id, in full.
    let one = store
        .issues()
        .occurrence("p", &fp, latest[3].time_ns, latest[3].seq)
        .unwrap()
        .unwrap();
    assert_eq!(one.time_ns, latest[3].time_ns);
    assert_eq!(one.error.causes, ["io error"]);
    assert!(store
        .issues()
        .occurrence("p", &fp, latest[3].time_ns, latest[3].seq + 100_000)
        .unwrap()
        .is_none());
}

pub(crate) fn summaries_carry_short_texts_whatever_was_stored(store: Backend) {
    let mut e = error(
        "api",
        &format!("{}\nsecond line", "m".repeat(100_000)),
        T0,
        Some(1),
    );
    e.fields = vec![Attribute::new("blob", "x".repeat(1_000_000))];
    store
        .traces()
        .ingest("p", &resource("api"), &[Record::Error(e.clone())])
        .unwrap();
    let fp = fingerprint(&e);
    let latest = store
        .issues()
        .latest_occurrences("p", &fp, None, 10)
        .unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].message.chars().count(), TITLE_CHARS);
    assert!(latest[0].message.ends_with('…'));
    let issue = store.issues().get("p", &fp).unwrap().unwrap();
    assert_eq!(issue.title.chars().count(), TITLE_CHARS);
    assert!(issue.title.starts_with("AppError: mmm"));
}
