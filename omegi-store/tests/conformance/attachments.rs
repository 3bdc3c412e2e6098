//! Files attached to notes: who may add, read and delete them, the limits,
//! and that they go with their note.

use super::Backend;
use omegi_core::note::AttachmentLimits;
use omegi_store::{Error, NewNote};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

pub(crate) fn files_are_added_read_and_deleted_by_the_author_only(store: Backend) {
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", "![[graph.png]]").public())
        .unwrap();
    let added = store
        .notes()
        .add_attachment(note.id, "kim", "graph.png", PNG)
        .unwrap();
    assert!(added.created);
    assert_eq!(added.attachment.content_type, "image/png");
    assert!(added.attachment.inline_image);
    assert_eq!(added.attachment.size, PNG.len() as u64);
    // The same bytes again change nothing, whatever the name's case.
    let again = store
        .notes()
        .add_attachment(note.id, "kim", "Graph.PNG", PNG)
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.attachment, added.attachment);
    assert!(matches!(
        store
            .notes()
            .add_attachment(note.id, "kim", "graph.png", b"other bytes"),
        Err(Error::AttachmentExists { .. })
    ));
    assert!(matches!(
        store.notes().add_attachment(note.id, "lee", "x.txt", b"hi"),
        Err(Error::NotNoteAuthor { .. })
    ));
    store
        .notes()
        .add_attachment(note.id, "kim", "a.txt", b"plain words")
        .unwrap();

    // Anyone who may see the note reads them, in name order.
    let names: Vec<String> = store
        .notes()
        .attachments(note.id, "lee")
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["a.txt", "graph.png"]);
    let (a, bytes) = store
        .notes()
        .attachment(note.id, "lee", "GRAPH.png")
        .unwrap();
    assert_eq!((a.name.as_str(), bytes.as_slice()), ("graph.png", PNG));
    let html = store.notes().html(note.id, "lee").unwrap();
    assert!(html.html.contains("graph.png"), "{}", html.html);

    assert!(matches!(
        store.notes().delete_attachment(note.id, "lee", "a.txt"),
        Err(Error::NotNoteAuthor { .. })
    ));
    let deleted = store
        .notes()
        .delete_attachment(note.id, "kim", "a.txt")
        .unwrap();
    assert_eq!(deleted.name, "a.txt");
    assert!(matches!(
        store.notes().delete_attachment(note.id, "kim", "a.txt"),
        Err(Error::AttachmentNotFound { .. })
    ));
    assert!(matches!(
        store.notes().attachment(note.id, "kim", "a.txt"),
        Err(Error::AttachmentNotFound { .. })
    ));
}

pub(crate) fn files_of_a_private_note_stay_hidden(store: Backend) {
    let secret = store
        .notes()
        .create(NewNote::new("kim", "Secret", "![[key.png]]"))
        .unwrap();
    store
        .notes()
        .add_attachment(secret.id, "kim", "key.png", PNG)
        .unwrap();
    let other = store
        .notes()
        .create(NewNote::new("lee", "Mine", "![[key.png]]"))
        .unwrap();
    assert!(matches!(
        store.notes().attachments(secret.id, "lee"),
        Err(Error::NoteNotFound { .. })
    ));
    assert!(matches!(
        store.notes().attachment(secret.id, "lee", "key.png"),
        Err(Error::AttachmentNotFound { .. })
    ));
    assert!(store
        .notes()
        .find_attachment("key.png", &other, "lee")
        .unwrap()
        .is_none());
    // Its author finds it from their own other notes.
    let mine = store
        .notes()
        .create(NewNote::new("kim", "Other", "![[key.png]]"))
        .unwrap();
    let found = store
        .notes()
        .find_attachment("key.png", &mine, "kim")
        .unwrap()
        .unwrap();
    assert_eq!(found.note, secret.id);
}

pub(crate) fn a_link_finds_its_own_file_first_then_the_oldest(store: Backend) {
    let first = store
        .notes()
        .create(NewNote::new("kim", "First", "").public())
        .unwrap();
    let second = store
        .notes()
        .create(NewNote::new("lee", "Second", "").public())
        .unwrap();
    let reader = store
        .notes()
        .create(NewNote::new("park", "Reader", "![[shared.png]]").public())
        .unwrap();
    for (note, author) in [(&second, "lee"), (&first, "kim")] {
        store
            .notes()
            .add_attachment(note.id, author, "shared.png", PNG)
            .unwrap();
    }
    let find = |from| {
        store
            .notes()
            .find_attachment("shared.png", from, "park")
            .unwrap()
            .map(|a| a.note)
    };
    assert_eq!(find(&reader), Some(first.id), "the oldest note's file");
    assert_eq!(find(&second), Some(second.id), "its own file");
    assert!(store
        .notes()
        .find_attachment("nothing.png", &reader, "park")
        .unwrap()
        .is_none());
}

pub(crate) fn files_go_with_their_note(store: Backend) {
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", "").public())
        .unwrap();
    let reader = store
        .notes()
        .create(NewNote::new("lee", "Reader", "").public())
        .unwrap();
    store
        .notes()
        .add_attachment(note.id, "kim", "graph.png", PNG)
        .unwrap();
    store.notes().delete(note.id, "kim").unwrap();
    assert!(store
        .notes()
        .find_attachment("graph.png", &reader, "lee")
        .unwrap()
        .is_none());
    assert!(matches!(
        store
            .notes()
            .restore_attachments([(note.id, "graph.png".to_string(), 1, PNG.to_vec())]),
        Err(Error::NoteNotFound { .. })
    ));
}

pub(crate) fn limits_count_what_the_note_holds(store: Backend) {
    let store = store.with_attachment_limits(
        AttachmentLimits::default()
            .file_bytes(10)
            .note_bytes(15)
            .files_per_note(2),
    );
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", ""))
        .unwrap();
    let add = |name: &str, bytes: &[u8]| store.notes().add_attachment(note.id, "kim", name, bytes);
    assert!(matches!(
        add("big.txt", b"eleven byte"),
        Err(Error::AttachmentRefused(_))
    ));
    add("a.txt", b"0123456789").unwrap();
    assert!(
        matches!(add("b.txt", b"012345"), Err(Error::AttachmentRefused(_))),
        "16 bytes in all"
    );
    add("b.txt", b"01234").unwrap();
    store
        .notes()
        .delete_attachment(note.id, "kim", "b.txt")
        .unwrap();
    add("c.txt", b"0").unwrap();
    assert!(
        matches!(add("d.txt", b"1"), Err(Error::AttachmentRefused(_))),
        "three files"
    );
    assert_eq!(store.notes().attachments(note.id, "kim").unwrap().len(), 2);
}

pub(crate) fn restored_files_keep_their_times(store: Backend) {
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", ""))
        .unwrap();
    let files = vec![
        (note.id, "graph.png".to_string(), 42, PNG.to_vec()),
        (note.id, "a.txt".to_string(), 43, b"words".to_vec()),
    ];
    assert_eq!(store.notes().restore_attachments(files.clone()).unwrap(), 2);
    assert_eq!(store.notes().restore_attachments(files).unwrap(), 0);
    let times: Vec<(String, u64)> = store
        .notes()
        .attachments(note.id, "kim")
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.created_ns))
        .collect();
    assert_eq!(times, [("a.txt".into(), 43), ("graph.png".into(), 42)]);
}
