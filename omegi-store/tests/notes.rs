//! Notes on the embedded store with its search index: suggestions for an
//! error. Export and import are in the conformance suite
//! (`tests/conformance/transfer.rs`); the notes' own behaviour (links, renames,
//! revisions, visibility) is in the conformance suite
//! (`tests/conformance/notes.rs`).

mod common;

use std::collections::BTreeSet;

use omegi_core::{Note, NoteId, Record};
use omegi_store::{NewNote, Store, SuggestReason};

fn ids(notes: &[Note]) -> Vec<NoteId> {
    notes.iter().map(|n| n.id).collect()
}

fn public(store: &Store, author: &str, title: &str, body: &str) -> Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).public())
        .unwrap()
}

#[test]
fn suggestions_put_linked_notes_first_then_matches() {
    let store = Store::temporary().unwrap();
    let r = common::resource("payment");
    let mut e = common::error(
        "payment",
        "card declined for order 1234",
        common::T0,
        Some(1),
    );
    e.error_type = Some("PaymentError".into());
    let report = store
        .traces()
        .ingest("shop", &r, &[Record::Error(e.clone())])
        .unwrap();
    let fp = report.created[0].fingerprint.clone();

    let linked = store
        .notes()
        .create(
            NewNote::new(
                "kim",
                "Stripe outage 2024",
                "Nothing in common with the text.",
            )
            .issues([fp.clone()])
            .public(),
        )
        .unwrap();
    let matching = public(
        &store,
        "lee",
        "Card declined",
        "PaymentError card declined: ask for another card.",
    );
    let _other = public(&store, "lee", "Redis down", "connection refused");
    // One telling word in common (`order`; `for` tells nothing): not enough.
    let _one_word = public(
        &store,
        "lee",
        "Order export",
        "export for the order history",
    );
    let mine = store
        .notes()
        .create(NewNote::new(
            "park",
            "My card declined notes",
            "card declined again",
        ))
        .unwrap();

    let got = store.search().suggest("shop", &fp, "park", 10).unwrap();
    assert_eq!(got[0].note.id, linked.id);
    assert_eq!(got[0].reason, SuggestReason::Linked);
    let rest: BTreeSet<NoteId> = got[1..].iter().map(|s| s.note.id).collect();
    assert_eq!(rest, BTreeSet::from([matching.id, mine.id]));
    assert!(matches!(got[1].reason, SuggestReason::Matches(s) if s > 0.0));

    // The same from the error record, and for another viewer without
    // park's private note; the limit holds.
    let got = store.search().suggest("shop", &e, "kim", 10).unwrap();
    assert_eq!(
        ids(&got.iter().map(|s| s.note.clone()).collect::<Vec<_>>()),
        [linked.id, matching.id]
    );
    assert_eq!(
        store.search().suggest("shop", &e, "kim", 1).unwrap().len(),
        1
    );
}
