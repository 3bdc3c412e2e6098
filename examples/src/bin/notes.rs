//! A small tool embedding omegi-core's note parsing and graph queries: reads
//! a folder of Markdown notes (an Obsidian-style vault), or a built-in sample
//! when no folder is given, and prints each note's links and backlinks, the
//! orphans, the most-linked notes, and the local graph of one note as
//! Mermaid.
//!
//! ```text
//! cargo run -p examples --bin notes -- [VAULT_DIR] [NOTE_TITLE]
//! ```

use std::path::Path;

use anyhow::Context;
use omegi_core::note::{
    note_from_markdown_file, to_mermaid, LocalGraphOptions, NoteDefaults, Resolver,
};
use omegi_core::{Note, NoteGraph, NoteId, Visibility};

const SAMPLE: &[(&str, &str)] = &[
    (
        "Payment runbook",
        "---\ntags: [payments, runbook]\naliases: [payments]\n---\n\
         Start with [[Card declined]] and [[Issuer timeout]].\n\
         ![[Issuer timeout#Fix]]\n",
    ),
    (
        "Card declined",
        "The issuer refuses the card. See [[Payment runbook|the runbook]]. #payments/declines\n\
         `[[not a link]]` in code stays text.\n",
    ),
    (
        "Issuer timeout",
        "# Cause\nThe issuer is slow under load.\n# Fix\nRetry once with a 2 s timeout. #payments\n",
    ),
    (
        "Inventory cache",
        "Unrelated to payments, but mentions the card declined case without a link.\n",
    ),
];

fn load(dir: Option<&Path>) -> anyhow::Result<Vec<Note>> {
    let defaults = NoteDefaults {
        author: "me".into(),
        visibility: Visibility::Public,
        now_ns: 0,
    };
    let Some(dir) = dir else {
        return SAMPLE
            .iter()
            .map(|(title, text)| Ok(note_from_markdown_file(title, text, &defaults)?))
            .collect();
    };
    let mut notes = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&path)?;
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let note = note_from_markdown_file(&stem, &text, &defaults)
                    .with_context(|| format!("parsing {}", path.display()))?;
                notes.push(note);
            }
        }
    }
    Ok(notes)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let notes = load(args.first().map(Path::new))?;
    let graph = NoteGraph::build(&notes, "me");
    let title = |id: NoteId| graph.title(id).unwrap_or("?").to_owned();

    for note in &notes {
        let parsed = note.parse();
        let tags: Vec<String> = note.all_tags().iter().map(|t| format!("#{t}")).collect();
        println!("{}  {}", note.title, tags.join(" "));
        for link in &parsed.links {
            let kind = if link.embed { "embeds" } else { "links to" };
            println!("  {kind} [[{}]]", link.target);
        }
        let back: Vec<String> = graph.backlinks(note.id).into_iter().map(title).collect();
        if !back.is_empty() {
            println!("  linked from: {}", back.join(", "));
        }
        let mentions: Vec<String> = graph
            .unlinked_mentions(note.id)
            .into_iter()
            .map(title)
            .collect();
        if !mentions.is_empty() {
            println!("  mentioned without a link in: {}", mentions.join(", "));
        }
    }

    let orphans: Vec<String> = graph.orphans().into_iter().map(title).collect();
    println!(
        "\norphans: {}",
        if orphans.is_empty() {
            "none".into()
        } else {
            orphans.join(", ")
        }
    );
    println!("most linked:");
    for (id, count) in graph.most_linked(3) {
        println!("  {count}  {}", title(id));
    }

    let resolver = Resolver::new(&notes);
    let centre_name = args.get(1).map(String::as_str).unwrap_or("Payment runbook");
    let centre = resolver
        .resolve(centre_name)
        .with_context(|| format!("no note named {centre_name:?}"))?
        .note
        .id;
    let options = LocalGraphOptions {
        depth: 2,
        show_tags: true,
        ..LocalGraphOptions::default()
    };
    if let Some(local) = graph.local_graph(centre, &options) {
        println!(
            "\nlocal graph of {centre_name:?} (depth 2), as Mermaid:\n{}",
            to_mermaid(&local)
        );
    }
    Ok(())
}
