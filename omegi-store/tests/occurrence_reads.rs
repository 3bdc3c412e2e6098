//! Reading an issue's occurrences newest first, bounded by the answer.

mod common;

use common::*;
use omegi_core::{fingerprint, Attribute, Record, TraceId};
use omegi_store::{Store, TITLE_CHARS};

#[test]
fn latest_occurrences_come_newest_first_and_stop_at_the_limit() {
    let store = Store::temporary().unwrap();
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

#[test]
fn summaries_carry_short_texts_whatever_was_stored() {
    let store = Store::temporary().unwrap();
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
