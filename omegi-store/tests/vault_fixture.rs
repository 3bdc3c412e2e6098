//! The vault in `tests/fixtures/vault`, made for these tests: notes with
//! colliding names in folders, links in tables with escaped pipes, block
//! references, callouts, section embeds and files. Imported, its link
//! graph is exactly the one Obsidian shows; exported and imported again, it
//! comes back byte for byte.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use omegi_core::note::{LocalGraphOptions, NodeKind};
use omegi_store::{NoteFilter, Store, VaultExportOptions, VaultImportOptions};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault")
}

/// Every file under `dir` (the export's manifest aside), by relative path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().unwrap() != ".omegi-export.json" {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The note-to-note edges of the store's graph, as (source, target) vault
/// paths.
fn edges(store: &Store) -> BTreeSet<(String, String)> {
    let notes = store.notes().list("kim", &NoteFilter::all()).unwrap();
    let path = |key: &str| {
        notes
            .iter()
            .find(|n| n.id.to_string() == key)
            .map(|n| n.path())
            .unwrap()
    };
    let graph = store
        .notes()
        .graph("kim")
        .unwrap()
        .full(&LocalGraphOptions::default());
    graph
        .edges
        .iter()
        .map(|e| (path(&graph.nodes[e.from].key), path(&graph.nodes[e.to].key)))
        .collect()
}

fn expected_edges() -> BTreeSet<(String, String)> {
    [
        // [[Setup]] at the top: the top note, not Plugins/Setup.
        ("Index", "Setup"),
        // [[Plugins/Setup|setup]]: by path.
        ("Index", "Plugins/Setup"),
        // [[Runbook#Restart\|restart]] in a table, [[Runbook#^fix]], and
        // the section embed ![[Runbook#Restart]].
        ("Index", "Ops/Runbook"),
        // [[Plugins/Templates\|templates]] in a table, and [[Templates]] in
        // a callout: the shortest path, not Core/Plugins/Templates.
        ("Index", "Plugins/Templates"),
        ("Plugins/Setup", "Plugins/Guide"),
        // [[Setup]] and [[Templates]] in Plugins: the notes of that folder.
        ("Plugins/Guide", "Plugins/Setup"),
        ("Plugins/Guide", "Plugins/Templates"),
        // [[Setup]] in Core/Plugins, which has none: the shortest path.
        ("Core/Plugins/Templates", "Setup"),
        // [[Core/Plugins/Templates]] inside a callout.
        ("Ops/Runbook", "Core/Plugins/Templates"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

#[test]
fn the_fixture_imports_with_exactly_the_expected_links() {
    let store = Store::temporary().unwrap();
    let report = store
        .notes()
        .import_vault(fixture(), "kim", &VaultImportOptions::default())
        .unwrap();
    assert_eq!(report.created.len(), 7, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(edges(&store), expected_edges());

    // The files belong to the note beside them that embeds them, and are
    // graph nodes only when asked, never unresolved notes.
    let runbook = store
        .notes()
        .resolve_link("Ops/Runbook", "kim")
        .unwrap()
        .expect("the runbook");
    let names: Vec<String> = store
        .notes()
        .attachments(runbook, "kim")
        .unwrap()
        .into_iter()
        .map(|a| format!("{} {}", a.name, a.content_type))
        .collect();
    assert_eq!(
        names,
        [
            "dashboard.png image/png",
            "log-excerpt.txt text/plain; charset=utf-8"
        ]
    );
    let graph = store.notes().graph("kim").unwrap();
    let plain = graph.full(&LocalGraphOptions {
        show_unresolved: true,
        ..LocalGraphOptions::default()
    });
    assert!(plain.nodes.iter().all(|n| n.kind == NodeKind::Note));
    let with_files = graph.full(&LocalGraphOptions {
        show_unresolved: true,
        show_attachments: true,
        ..LocalGraphOptions::default()
    });
    let files: BTreeSet<&str> = with_files
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Attachment)
        .map(|n| n.label.as_str())
        .collect();
    assert_eq!(files, BTreeSet::from(["dashboard.png", "log-excerpt.txt"]));

    // The rendered index shows the table link, the callout and the embed.
    let index = store.notes().resolve_link("Index", "kim").unwrap().unwrap();
    let html = store.notes().html(index, "kim").unwrap().html;
    assert!(html.contains("<table>"), "{html}");
    assert!(html.contains(">restart</a>"), "{html}");
    assert!(
        html.contains("class=\"callout callout-tip\" data-callout=\"tip\" data-fold=\"+\""),
        "{html}"
    );
    assert!(html.contains("never twice."), "the section embed: {html}");
    assert!(!html.contains("## Logs"), "only the section: {html}");
    // The runbook's image is inline.
    let html = store.notes().html(runbook, "kim").unwrap().html;
    assert!(
        html.contains(&format!(
            "<img class=\"attachment\" src=\"/api/notes/{runbook}/attachments/dashboard.png\""
        )),
        "{html}"
    );
}

#[test]
fn export_then_import_round_trips_byte_for_byte() {
    let store = Store::temporary().unwrap();
    store
        .notes()
        .import_vault(fixture(), "kim", &VaultImportOptions::default())
        .unwrap();
    let first = tempfile::tempdir().unwrap();
    let export = store
        .notes()
        .export_vault(
            first.path(),
            "kim",
            &NoteFilter::all(),
            &VaultExportOptions::default(),
        )
        .unwrap();
    assert_eq!(export.files.len(), 7);
    assert_eq!(export.attachments.len(), 2);

    // The files come out where they were, with the same bytes; the notes
    // in their folders.
    let original: Vec<(String, Vec<u8>)> = files(&fixture());
    let exported = files(first.path());
    let names: Vec<&str> = exported.iter().map(|(p, _)| p.as_str()).collect();
    let original_names: Vec<&str> = original.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, original_names);
    for (path, bytes) in &original {
        if !path.ends_with(".md") {
            let out = &exported.iter().find(|(p, _)| p == path).unwrap().1;
            assert_eq!(out, bytes, "{path}");
        }
    }

    // Into a fresh store and out again: the same bytes, the same graph.
    let copy = Store::temporary().unwrap();
    let report = copy
        .notes()
        .import_vault(first.path(), "kim", &VaultImportOptions::default())
        .unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(edges(&copy), expected_edges());
    let second = tempfile::tempdir().unwrap();
    copy.notes()
        .export_vault(
            second.path(),
            "kim",
            &NoteFilter::all(),
            &VaultExportOptions::default(),
        )
        .unwrap();
    assert_eq!(files(second.path()), exported);

    // And through `omegi export`/`import` (the store's own format).
    let mut dump = Vec::new();
    let stats = store.export(&mut dump).unwrap();
    assert_eq!((stats.notes, stats.attachments), (7, 2));
    let restored = Store::temporary().unwrap();
    restored.import(&dump[..]).unwrap();
    assert_eq!(edges(&restored), expected_edges());
    let third = tempfile::tempdir().unwrap();
    restored
        .notes()
        .export_vault(
            third.path(),
            "kim",
            &NoteFilter::all(),
            &VaultExportOptions::default(),
        )
        .unwrap();
    assert_eq!(files(third.path()), exported);
}
