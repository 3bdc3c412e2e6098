//! No side channel through search: another user's private notes never
//! change what a viewer's search answers — not the hits, not their scores
//! or order, not the snippets, not the suggestions. (Without the visible
//! statistics, the scores below differ in their first digits.)

mod common;

use std::collections::BTreeMap;

use omegi_core::Record;
use omegi_store::{NewNote, NoteQuery, Store, SuggestFor, SuggestReason};

/// Public notes of kim's, the same in both stores.
fn public_notes(store: &Store) {
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
fn private_notes(store: &Store) {
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
fn answer(store: &Store, text: &str) -> (usize, BTreeMap<String, (i64, String)>) {
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

#[test]
fn private_notes_of_others_change_nothing_a_viewer_sees() {
    let without = Store::temporary().unwrap();
    public_notes(&without);
    let with = Store::temporary().unwrap();
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
    let r = common::resource("payment");
    let mut error = common::error("payment", "gateway timeout on checkout", common::T0, None);
    error.error_type = Some("PaymentError".into());
    for store in [&without, &with] {
        store
            .traces()
            .ingest("shop", &r, &[Record::Error(error.clone())])
            .unwrap();
    }
    let suggested = |store: &Store| -> Vec<(String, Option<i64>)> {
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

#[test]
fn deleted_and_private_notes_do_not_count_either() {
    let a = Store::temporary().unwrap();
    public_notes(&a);
    let b = Store::temporary().unwrap();
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
