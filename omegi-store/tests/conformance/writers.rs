//! Notes written by several writers at once, as several nodes (PostgreSQL:
//! separate pools of connections) or threads (sled) write them.

use std::collections::BTreeSet;

use super::Backend;
use omegi_core::Fingerprint;
use omegi_store::{Error, NewNote, NoteUpdate};

pub(crate) fn one_of_two_updates_of_a_revision_wins(store: Backend) {
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", "v1").public())
        .unwrap();
    let nodes = [store.node(), store.node()];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                s.spawn(move || {
                    node.notes().update(
                        note.id,
                        "kim",
                        NoteUpdate::new().body(format!("v2 by {i}")),
                        1,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(results.iter().any(|r| matches!(
        r,
        Err(Error::RevisionMismatch {
            expected: 1,
            actual: 2,
            ..
        })
    )));
    let stored = store.notes().get(note.id, "kim").unwrap().unwrap();
    assert_eq!((stored.revision, &stored.body), (2, &won[0].body));
}

pub(crate) fn concurrent_issue_links_are_all_kept(store: Backend) {
    let note = store
        .notes()
        .create(NewNote::new("kim", "Runbook", "").public())
        .unwrap();
    let nodes = [store.node(), store.node(), store.node()];
    std::thread::scope(|s| {
        for (i, node) in nodes.iter().enumerate() {
            s.spawn(move || {
                for j in 0..4 {
                    let fp = Fingerprint(format!("fp{i}{j}"));
                    node.notes().link_to_issue(note.id, "kim", &fp).unwrap();
                }
            });
        }
    });
    let stored = store.notes().get(note.id, "kim").unwrap().unwrap();
    let issues: BTreeSet<String> = stored.issues.into_iter().map(|f| f.0).collect();
    assert_eq!(issues.len(), 12, "{issues:?}");
    assert_eq!(stored.revision, 13);
    for fp in issues {
        let listed = store
            .notes()
            .for_issue(&Fingerprint(fp.clone()), "kim")
            .unwrap();
        assert_eq!(listed.len(), 1, "{fp}");
    }
}

pub(crate) fn a_rename_sees_a_link_written_meanwhile(store: Backend) {
    let target = store
        .notes()
        .create(NewNote::new("kim", "Runbook", "").public())
        .unwrap();
    let nodes = [store.node(), store.node()];
    std::thread::scope(|s| {
        let (a, b) = (&nodes[0], &nodes[1]);
        s.spawn(move || {
            for i in 0..5 {
                a.notes()
                    .create(
                        NewNote::new("kim", format!("Linking {i}"), "See [[Runbook]].").public(),
                    )
                    .unwrap();
            }
        });
        s.spawn(move || {
            b.notes().rename(target.id, "kim", "Playbook").unwrap();
        });
    });
    // Whichever came first, every link leads to the renamed note: rewritten,
    // or through the former title kept as an alias.
    let backlinks = store.notes().backlinks(target.id, "kim").unwrap();
    assert_eq!(backlinks.len(), 5);
}
