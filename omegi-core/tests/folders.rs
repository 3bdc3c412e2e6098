//! Notes in vault folders: `[[Folder/Note]]` links, colliding names
//! resolved as Obsidian resolves them, and renames and moves that keep the
//! links leading where they led.

use omegi_core::note::{
    normalize_folder, rename_edited_note, FolderError, NoteGraph, NoteLimitError, NoteLimits,
    Resolver,
};
use omegi_core::{Note, NoteId, Visibility};

fn id(n: u128) -> NoteId {
    NoteId(uuid::Uuid::from_u128(n))
}

/// A public note of kim, created at time `n`.
fn note(n: u128, folder: &str, title: &str, body: &str) -> Note {
    let mut note = Note::new(id(n), "kim", title, body, n as u64);
    note.folder = folder.to_owned();
    note.visibility = Visibility::Public;
    note
}

/// Three notes titled `Setup`: at the top (newest), in `Plugins` and in
/// `Plugins/Core` (oldest); and one linking note per folder.
fn collisions() -> Vec<Note> {
    vec![
        note(3, "", "Setup", "top"),
        note(2, "Plugins", "Setup", "plugins"),
        note(1, "Plugins/Core", "Setup", "core"),
        note(
            10,
            "",
            "Index",
            "[[Setup]] [[Plugins/Setup]] [[Core/Setup]]",
        ),
        note(11, "Plugins", "Guide", "[[Setup]] [[setup.md]]"),
        note(12, "Other", "Elsewhere", "[[Setup]] [[Missing/Setup]]"),
    ]
}

#[test]
fn plain_links_prefer_the_same_folder_then_the_shortest_path() {
    let notes = collisions();
    let r = Resolver::new(&notes);
    let to = |target: &str, from: &str| r.resolve_from(target, from).map(|r| r.note.id);
    // In the folder of the linking note.
    assert_eq!(to("Setup", "Plugins"), Some(id(2)));
    assert_eq!(to("setup.md", "plugins"), Some(id(2)));
    assert_eq!(to("Setup", "Plugins/Core"), Some(id(1)));
    // Elsewhere: the shortest path wins over the oldest note.
    assert_eq!(to("Setup", "Other"), Some(id(3)));
    assert_eq!(to("Setup", ""), Some(id(3)));
}

#[test]
fn the_oldest_note_wins_between_equal_paths() {
    let notes = vec![note(5, "A", "Setup", ""), note(4, "B", "Setup", "")];
    let r = Resolver::new(&notes);
    assert_eq!(r.resolve_from("Setup", "C").unwrap().note.id, id(4));
}

#[test]
fn links_with_a_folder_name_the_note_in_that_folder() {
    let notes = collisions();
    let r = Resolver::new(&notes);
    let to = |target: &str| r.resolve_from(target, "").map(|r| r.note.id);
    assert_eq!(to("Plugins/Setup"), Some(id(2)));
    assert_eq!(to("plugins/core/setup"), Some(id(1)));
    // A path names the end of a folder path too, as in Obsidian.
    assert_eq!(to("Core/Setup"), Some(id(1)));
    assert_eq!(to("/Plugins//Setup.md"), Some(id(2)));
    assert_eq!(to("Missing/Setup"), None);
    assert_eq!(to("ugins/Setup"), None);
}

#[test]
fn a_title_with_a_slash_still_resolves_whole() {
    let notes = vec![note(1, "", "CI/CD", "")];
    let r = Resolver::new(&notes);
    assert_eq!(r.resolve("CI/CD").unwrap().note.id, id(1));
}

#[test]
fn a_reader_never_resolves_to_a_note_they_cannot_see() {
    let mut notes = collisions();
    // The note in Plugins becomes lee's private note.
    notes[1].author = "lee".into();
    notes[1].visibility = Visibility::Private;
    let kim = Resolver::for_viewer(&notes, "kim");
    assert_eq!(kim.resolve_from("Setup", "Plugins").unwrap().note.id, id(3));
    assert!(kim.resolve_from("Plugins/Setup", "").is_none());
    let lee = Resolver::for_viewer(&notes, "lee");
    assert_eq!(
        lee.resolve_from("Plugins/Setup", "").unwrap().note.id,
        id(2)
    );
}

#[test]
fn the_graph_follows_the_same_rule_and_carries_folders() {
    let notes = collisions();
    let g = NoteGraph::build(&notes, "kim");
    assert_eq!(g.outgoing(id(10)), vec![id(3), id(2), id(1)]);
    assert_eq!(g.outgoing(id(11)), vec![id(2)]);
    assert_eq!(g.outgoing(id(12)), vec![id(3)]);
    assert_eq!(g.unresolved(id(12)), vec!["Missing/Setup".to_string()]);
    let full = g.full(&Default::default());
    let folder_of = |n: u128| {
        full.nodes
            .iter()
            .find(|node| node.key == id(n).to_string())
            .map(|node| node.folder.clone())
    };
    assert_eq!(folder_of(1).as_deref(), Some("Plugins/Core"));
    assert_eq!(folder_of(3).as_deref(), Some(""));
}

#[test]
fn moving_a_note_rewrites_the_links_that_would_lose_it() {
    let notes = vec![
        note(1, "Plugins", "Setup", ""),
        note(2, "", "Index", "[[Plugins/Setup]] and [[Setup]]"),
        note(3, "Plugins", "Guide", "[[Setup]]"),
        note(4, "Docs", "Setup", "another"),
    ];
    let mut moved = notes[0].clone();
    moved.folder = "Docs/Old".into();
    let plan = rename_edited_note(&notes, &moved, "Setup").unwrap();
    let body = |n: u128| {
        plan.bodies
            .iter()
            .find(|(i, _)| *i == id(n))
            .map(|(_, b)| b.as_str())
    };
    // The path link follows the move; the plain link already led to it
    // (shortest path) and still does.
    assert_eq!(body(2), Some("[[Docs/Old/Setup]] and [[Setup]]"));
    // From Plugins, `Setup` would now lead to Docs/Setup (shortest path):
    // the link gets the path.
    assert_eq!(body(3), Some("[[Docs/Old/Setup]]"));
    assert_eq!(body(4), None);
    // Every rewritten link leads to the moved note afterwards.
    let mut after = notes.clone();
    after[0] = moved;
    for (nid, b) in &plan.bodies {
        let holder = after.iter_mut().find(|n| n.id == *nid).unwrap();
        holder.body = b.clone();
    }
    let g = NoteGraph::build(&after, "kim");
    assert!(g.outgoing(id(2)).contains(&id(1)));
    assert_eq!(g.outgoing(id(3)), vec![id(1)]);
}

#[test]
fn renaming_in_a_folder_keeps_path_links_as_paths() {
    let notes = vec![
        note(1, "Plugins", "Setup", ""),
        note(2, "", "Index", "[[Plugins/Setup#Steps|setup]] [[Setup]]"),
    ];
    let plan = rename_edited_note(&notes, &notes[0], "Install").unwrap();
    assert_eq!(
        plan.bodies,
        vec![(
            id(2),
            "[[Plugins/Install#Steps|setup]] [[Install]]".to_string()
        )]
    );
}

#[test]
fn folders_are_normalized_and_checked() {
    assert_eq!(normalize_folder("a/ b /c/").unwrap(), "a/b/c");
    assert_eq!(normalize_folder("///").unwrap(), "");
    assert!(matches!(
        normalize_folder("../etc"),
        Err(FolderError::DotSegment(_))
    ));
    assert!(matches!(
        normalize_folder("a\\b"),
        Err(FolderError::InvalidCharacter(_))
    ));
    assert!(matches!(
        normalize_folder("a[1]"),
        Err(FolderError::InvalidCharacter(_))
    ));
    let long = note(1, &"x".repeat(600), "T", "");
    assert!(matches!(
        NoteLimits::default().check(&long),
        Err(NoteLimitError::FolderTooLong { bytes: 600, .. })
    ));
    assert!(NoteLimits::default().folder_bytes(600).check(&long).is_ok());
}
