//! Full-text search follows the notes written through it, sees only what
//! its viewer may see (and its scores, snippets and suggestions count only
//! that), and is rebuilt from the notes.

use std::collections::{BTreeMap, BTreeSet};

use super::Backend;
use omegi_core::{ErrorRecord, NoteId, Record};
use omegi_store::{NewNote, NoteQuery, NoteUpdate, SuggestFor, SuggestReason};

fn titles(store: &Backend, viewer: &str, text: &str) -> Vec<String> {
    store
        .search()
        .notes(viewer, &NoteQuery::new(text))
        .unwrap()
        .into_iter()
        .map(|h| h.note.title)
        .collect()
}

pub(crate) fn search_follows_writes_and_is_rebuilt_from_the_notes(store: Backend) {
    let timeout = store
        .notes()
        .create(
            NewNote::new(
                "kim",
                "Payment timeout",
                "결제 게이트웨이가 느리면 backoff 로 재시도.",
            )
            .public(),
        )
        .unwrap();
    store
        .notes()
        .create(NewNote::new("kim", "Private diary", "backoff thoughts"))
        .unwrap();
    assert_eq!(titles(&store, "park", "결제"), ["Payment timeout"]);
    assert_eq!(titles(&store, "park", "backoff"), ["Payment timeout"]);
    assert_eq!(titles(&store, "kim", "backoff").len(), 2);
    let hit = &store
        .search()
        .notes("park", &NoteQuery::new("결제"))
        .unwrap()[0];
    assert!(!hit.snippet.highlights.is_empty(), "{hit:?}");

    store
        .notes()
        .update(
            timeout.id,
            "kim",
            NoteUpdate::new().body("Raise the gateway timeout."),
            1,
        )
        .unwrap();
    assert!(titles(&store, "park", "결제").is_empty());
    assert_eq!(titles(&store, "park", "gateway"), ["Payment timeout"]);
    store.notes().delete(timeout.id, "kim").unwrap();
    assert!(titles(&store, "park", "gateway").is_empty());

    // A node that starts later builds its index from the notes, and a
    // rebuild finds them all.
    let other = store.node();
    other
        .notes()
        .create(NewNote::new("lee", "Checkout 502", "gateway returns 502").public())
        .unwrap();
    assert_eq!(titles(&store.node(), "park", "gateway"), ["Checkout 502"]);
    assert_eq!(store.search().rebuild().unwrap(), 2);
    assert_eq!(titles(&store, "park", "gateway"), ["Checkout 502"]);
}

/// Polls `found` for up to ten seconds.
fn eventually(what: &str, mut found: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !found() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub(crate) fn notes_written_on_another_node_reach_this_node_s_search(store: Backend) {
    let other = store.node();
    let note = other
        .notes()
        .create(NewNote::new("lee", "Checkout 502", "gateway returns 502").public())
        .unwrap();
    eventually("a note created on another node", || {
        titles(&store, "park", "gateway") == ["Checkout 502"]
    });
    other
        .notes()
        .update(
            note.id,
            "lee",
            NoteUpdate::new().body("the upstream answers 502"),
            1,
        )
        .unwrap();
    eventually("a note changed on another node", || {
        titles(&store, "park", "gateway").is_empty()
            && titles(&store, "park", "upstream") == ["Checkout 502"]
    });
    other.notes().delete(note.id, "lee").unwrap();
    eventually("a note deleted on another node", || {
        titles(&store, "park", "upstream").is_empty()
    });
    // This node's own writes are in its index at once, as before.
    store
        .notes()
        .create(NewNote::new("kim", "Card declined", "issuer says no").public())
        .unwrap();
    assert_eq!(titles(&store, "park", "issuer"), ["Card declined"]);
}

// What follows comes from the embedded store's search privacy tests: no
// side channel through search. Another user's private notes never change
// what a viewer's search answers — not the hits, not their scores or
// order, not the snippets, not the suggestions. (Without the visible
// statistics, the scores below differ in their first digits.)

/// Public notes of kim's, the same in both stores.
fn public_notes(store: &Backend) {
    let notes = [
        (
            "Payment timeout",
            "The gateway times out after 30 s. Retry with backoff; the timeout is in pg.toml.",
        ),
        (
            "Checkout 502",
            "Checkout answers 502 when the payment timeout fires. See the gateway dashboard.",
        ),
        (
            "Card declined",
            "Declined cards are not errors of ours: show the issuer's message.",
        ),
        (
            "Zebra rollout",
            "Rolled out behind a flag; the timeout was raised once.",
        ),
    ];
    for (title, body) in notes {
        store
            .notes()
            .create(NewNote::new("kim", title, body).public())
            .unwrap();
    }
}

/// Lee's private notes: rare words, common words, long bodies.
fn private_notes(store: &Backend) {
    for i in 0..30 {
        let body = format!(
            "zebra quagga okapi {i}. timeout timeout timeout gateway payment checkout. {}",
            "filler words to make this note long. ".repeat(i)
        );
        store
            .notes()
            .create(NewNote::new("lee", format!("Lee secret {i}"), body))
            .unwrap();
    }
}

/// A score as compared: the same statistics give the same score, up to
/// the order in which the index adds the parts of a multi-word score
/// (which follows how its segments happen to be laid out).
fn rounded(score: f32) -> i64 {
    (f64::from(score) * 1e4).round() as i64
}

/// What kim's search answers, by title: score, snippet.
fn answer(store: &Backend, text: &str) -> (usize, BTreeMap<String, (i64, String)>) {
    let hits = store.search().notes("kim", &NoteQuery::new(text)).unwrap();
    let by_title = hits
        .iter()
        .map(|h| {
            (
                h.note.title.clone(),
                (rounded(h.score), h.snippet.html.clone()),
            )
        })
        .collect();
    (hits.len(), by_title)
}

pub(crate) fn private_notes_of_others_change_nothing_a_viewer_sees(store: Backend) {
    let without = store.another();
    public_notes(&without);
    let with = store;
    // Private notes before and after the public ones, so that they share
    // segments and positions with them.
    private_notes(&with);
    public_notes(&with);
    private_notes(&with);

    for text in [
        "timeout",
        "zebra",
        "payment timeout",
        "gateway",
        "okapi",
        "",
        "checkout 502",
    ] {
        let (a, b) = (answer(&without, text), answer(&with, text));
        assert_eq!(
            a, b,
            "kim's search for {text:?} changed with lee's private notes"
        );
    }
    assert_eq!(answer(&with, "okapi").0, 0);
    // Lee sees their own notes, of course.
    let lee = with
        .search()
        .notes("lee", &NoteQuery::new("okapi"))
        .unwrap();
    assert_eq!(lee.len(), 20, "the default limit");

    // Suggestions rank by the same statistics.
    let error = ErrorRecord::new("gateway timeout on checkout", 1)
        .with_service("payment")
        .with_causes(vec!["io error".into()])
        .with_error_type("PaymentError");
    let suggested = |store: &Backend| -> Vec<(String, Option<i64>)> {
        store
            .search()
            .suggest("shop", SuggestFor::Error(&error), "kim", 10)
            .unwrap()
            .into_iter()
            .map(|s| {
                let score = match s.reason {
                    SuggestReason::Matches(score) => Some(rounded(score)),
                    _ => None,
                };
                (s.note.title, score)
            })
            .collect()
    };
    assert_eq!(suggested(&without), suggested(&with));
    assert!(!suggested(&with).is_empty());
}

pub(crate) fn deleted_and_private_notes_do_not_count_either(store: Backend) {
    let a = store.another();
    public_notes(&a);
    let b = store;
    public_notes(&b);
    // A public note that is deleted again, and one made private.
    let gone = b
        .notes()
        .create(NewNote::new("lee", "Gone", "timeout timeout zebra").public())
        .unwrap();
    b.notes().delete(gone.id, "lee").unwrap();
    let hidden = b
        .notes()
        .create(NewNote::new("lee", "Hidden", "timeout zebra gateway").public())
        .unwrap();
    b.notes()
        .update(
            hidden.id,
            "lee",
            omegi_store::NoteUpdate::new().visibility(omegi_core::Visibility::Private),
            1,
        )
        .unwrap();
    for text in ["timeout", "zebra", "gateway"] {
        assert_eq!(answer(&a, text), answer(&b, text), "{text:?}");
    }
}

fn public_note(store: &Backend, author: &str, title: &str, body: &str) -> omegi_core::Note {
    store
        .notes()
        .create(NewNote::new(author, title, body).public())
        .unwrap()
}

pub(crate) fn suggestions_put_linked_notes_first_then_matches(store: Backend) {
    let r = crate::common::resource("payment");
    let mut e = crate::common::error(
        "payment",
        "card declined for order 1234",
        crate::common::T0,
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
    let matching = public_note(
        &store,
        "lee",
        "Card declined",
        "PaymentError card declined: ask for another card.",
    );
    let _other = public_note(&store, "lee", "Redis down", "connection refused");
    // One telling word in common (`order`; `for` tells nothing): not enough.
    let _one_word = public_note(
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
        got.iter().map(|s| s.note.id).collect::<Vec<_>>(),
        [linked.id, matching.id]
    );
    assert_eq!(
        store.search().suggest("shop", &e, "kim", 1).unwrap().len(),
        1
    );
}
