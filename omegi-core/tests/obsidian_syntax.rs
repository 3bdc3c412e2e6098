//! The rest of Obsidian's syntax: links in tables with an escaped pipe,
//! block references and their markers, section and block embeds, callouts;
//! parsed by core and rendered by its HTML.

use omegi_core::note::{
    parse, rename_links, to_html, Fold, HtmlOptions, Note, NoteGraph, NoteId, Resolver, Visibility,
};

fn note(n: u128, title: &str, body: &str) -> Note {
    let mut note = Note::new(
        NoteId(uuid::Uuid::from_u128(n)),
        "kim",
        title,
        body,
        n as u64,
    );
    note.visibility = Visibility::Public;
    note
}

fn html(notes: &[Note], i: usize) -> String {
    let resolver = Resolver::for_viewer(notes, "kim");
    to_html(&notes[i], &resolver, "kim", &HtmlOptions::default()).html
}

const TABLE: &str =
    "| where | what |\n|---|---|\n| [[Runbook#Restart\\|restart it]] | [[Plain]] |\n";

#[test]
fn links_in_tables_with_an_escaped_pipe() {
    let parsed = parse(TABLE);
    let links: Vec<_> = parsed
        .links
        .iter()
        .map(|l| {
            (
                l.target.as_str(),
                l.heading.as_deref(),
                l.display.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("Runbook", Some("Restart"), Some("restart it")),
            ("Plain", None, None)
        ]
    );
    // Outside a table too, as Obsidian reads it.
    let link = &parse("[[A\\|b]]").links[0];
    assert_eq!(
        (link.target.as_str(), link.display.as_deref()),
        ("A", Some("b"))
    );

    let notes = [
        note(1, "Index", TABLE),
        note(2, "Runbook", "# Restart\n"),
        note(3, "Plain", ""),
    ];
    let out = html(&notes, 0);
    assert!(out.contains("<table>"), "{out}");
    let cell = out.split("<td>").nth(1).expect("a cell with the link");
    assert!(cell.starts_with("<a class=\"wikilink\""), "{cell}");
    assert!(cell.contains(">restart it</a></td>"), "{cell}");
    let graph = NoteGraph::build(&notes, "kim");
    assert_eq!(graph.outgoing(notes[0].id), [notes[1].id, notes[2].id]);
    // A rename rewrites the target and keeps the escaped pipe.
    assert_eq!(
        rename_links(TABLE, "Runbook", "Ops runbook").unwrap(),
        TABLE.replace("[[Runbook#", "[[Ops runbook#")
    );
}

#[test]
fn block_references_and_markers() {
    let body = "First paragraph.\n\nThe fix is to retry. ^fix-1\n\nLast.\n";
    let parsed = parse(body);
    assert_eq!(parsed.blocks.len(), 1);
    assert_eq!(parsed.blocks[0].id, "fix-1");
    assert_eq!(&body[parsed.blocks[0].marker.clone()], "^fix-1");
    // A caret inside a line marks nothing.
    assert!(parse("2^10 is ^not a marker here").blocks.is_empty());

    let link = &parse("See [[Payment#^fix-1|the fix]].").links[0];
    assert_eq!(link.target, "Payment");
    assert_eq!(link.block.as_deref(), Some("fix-1"));
    assert_eq!(link.heading, None);

    let notes = [
        note(1, "Payment", body),
        note(
            2,
            "Index",
            "See [[Payment#^fix-1]].\n\n![[Payment#^fix-1]]\n",
        ),
    ];
    let target = html(&notes, 0);
    assert!(
        target.contains("retry. <span class=\"block-anchor\" data-block=\"fix-1\"></span>"),
        "{target}"
    );
    assert!(!target.contains("^fix-1"), "{target}");
    let index = html(&notes, 1);
    assert!(
        index.contains("data-block=\"fix-1\" title=\"Payment › ^fix-1\""),
        "{index}"
    );
    // The embed holds that block only.
    let embed = index
        .split("<div class=\"embed\"")
        .nth(1)
        .expect("an embed");
    assert!(embed.contains("The fix is to retry."), "{embed}");
    assert!(!embed.contains("First paragraph"), "{embed}");
    assert!(!embed.contains("Last."), "{embed}");
}

#[test]
fn section_embeds_hold_only_their_section() {
    let notes = [
        note(
            1,
            "Runbook",
            "# Runbook\nintro\n## Restart\nrestart steps\n### Detail\ndetail\n## Escalate\ncall lee\n",
        ),
        note(2, "Index", "![[Runbook#Restart]]\n"),
    ];
    let out = html(&notes, 1);
    assert!(out.contains("restart steps"), "{out}");
    assert!(out.contains("detail"), "{out}");
    assert!(!out.contains("intro"), "{out}");
    assert!(!out.contains("call lee"), "{out}");
}

#[test]
fn callouts_are_parsed_and_rendered_with_their_type() {
    let body = "> [!warning]- Do not restart twice\n> It **double-charges**.\n> See [[Runbook]].\n\n> [!TIP]\n> plain\n\n> a plain quote\n";
    let parsed = parse(body);
    assert_eq!(parsed.callouts.len(), 2);
    assert_eq!(parsed.callouts[0].kind, "warning");
    assert_eq!(
        parsed.callouts[0].title.as_deref(),
        Some("Do not restart twice")
    );
    assert_eq!(parsed.callouts[0].fold, Some(Fold::Folded));
    assert_eq!(parsed.callouts[1].kind, "tip");
    assert_eq!(parsed.callouts[1].title, None);
    assert_eq!(parsed.links.len(), 1);

    let notes = [note(1, "Index", body), note(2, "Runbook", "")];
    let out = html(&notes, 0);
    assert!(
        out.contains(
            "<div class=\"callout callout-warning\" data-callout=\"warning\" data-fold=\"-\"><div class=\"callout-title\">Do not restart twice</div><div class=\"callout-content\">"
        ),
        "{out}"
    );
    assert!(out.contains("<strong>double-charges</strong>"), "{out}");
    assert!(out.contains("class=\"wikilink\""), "{out}");
    assert!(!out.contains("[!warning]"), "{out}");
    assert!(
        out.contains("<div class=\"callout-title\">Tip</div>"),
        "{out}"
    );
    assert!(
        out.contains("<blockquote>"),
        "a plain quote stays a quote: {out}"
    );
    // Exactly as many closings as openings.
    assert_eq!(
        out.matches("<div").count(),
        out.matches("</div>").count(),
        "{out}"
    );
}

#[test]
fn callout_titles_are_escaped() {
    let notes = [note(
        1,
        "X",
        "> [!note\"><script>] x\n> [!x] <img src=x onerror=alert(1)>\n",
    )];
    let out = html(&notes, 0);
    assert!(!out.contains("<script"), "{out}");
    assert!(!out.contains("<img"), "{out}");
}
