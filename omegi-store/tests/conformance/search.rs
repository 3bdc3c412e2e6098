//! Full-text search follows the notes written through it, sees only what
//! its viewer may see, and is rebuilt from the notes.

use super::Backend;
use omegi_store::{NewNote, NoteQuery, NoteUpdate};

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

    // Another node writes: the index learns of it when it is rebuilt, and
    // a node that starts later builds its index from the notes.
    let other = store.node();
    other
        .notes()
        .create(NewNote::new("lee", "Checkout 502", "gateway returns 502").public())
        .unwrap();
    assert_eq!(store.search().rebuild().unwrap(), 2);
    assert_eq!(titles(&store, "park", "gateway"), ["Checkout 502"]);
    assert_eq!(titles(&store.node(), "park", "gateway"), ["Checkout 502"]);
}
