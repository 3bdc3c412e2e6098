//! Notes under hostile input: embed bombs stay within their budget, the
//! graph of many unresolved links builds in linear work, note limits refuse
//! what is too big, and renames are scoped to what each author sees.

use omegi_core::note::{
    expand_embeds, parse, rename_note, render_embeds, to_html, EmbedOptions, HtmlOptions, Note,
    NoteGraph, NoteId, NoteLimitError, NoteLimits, Resolver, Via, Visibility, EMBED_LIMIT_MARKER,
};
use proptest::prelude::*;
use uuid::Uuid;

fn id(n: u128) -> NoteId {
    NoteId(Uuid::from_u128(n))
}

fn note(n: u128, author: &str, title: &str, body: &str, visibility: Visibility) -> Note {
    let mut note = Note::new(id(n), author, title, body, n as u64);
    note.visibility = visibility;
    note
}

/// A note of `levels` sections, each embedding the next one `fan_out`
/// times: without a budget it renders `fan_out ^ levels` copies of the last.
fn embed_bomb(fan_out: usize, levels: usize) -> Note {
    let mut body = String::new();
    for level in 0..levels {
        body.push_str(&format!("# S{level}\n"));
        for _ in 0..fan_out {
            body.push_str(&format!("![[Bomb#S{}]]\n", level + 1));
        }
    }
    body.push_str(&format!("# S{levels}\npayload payload payload\n"));
    note(1, "mallory", "Bomb", &body, Visibility::Private)
}

#[test]
fn an_embed_bomb_stays_within_the_budget() {
    let options = EmbedOptions::default();
    let mut sizes = Vec::new();
    for fan_out in [15, 40] {
        let bomb = embed_bomb(fan_out, 4);
        let notes = [bomb];
        let resolver = Resolver::for_viewer(&notes, "mallory");
        let out = render_embeds(&notes[0], &resolver, "mallory", options);
        let bound = notes[0].body.len() * 3 + options.max_bytes;
        assert!(out.len() <= bound, "fan-out {fan_out}: {} bytes", out.len());
        assert!(out.contains(EMBED_LIMIT_MARKER));
        assert!(
            out.contains("payload"),
            "expansion happened up to the budget"
        );
        sizes.push(out.len());
    }
    // F = 40 would be (40/15)^4 = 50 times larger unbounded.
    assert!(sizes[1] < sizes[0] * 4, "{sizes:?}");
}

#[test]
fn the_budget_counts_embeds_and_bytes() {
    let notes = [
        note(
            1,
            "kim",
            "Top",
            "![[A]]\n![[A]]\n![[A]]\n",
            Visibility::Public,
        ),
        note(2, "kim", "A", "alpha", Visibility::Public),
    ];
    let resolver = Resolver::for_viewer(&notes, "kim");
    let render = |options| render_embeds(&notes[0], &resolver, "kim", options);
    assert_eq!(
        render(EmbedOptions::default()),
        "alpha\nalpha\nalpha\n",
        "within the budget, nothing is marked"
    );
    assert_eq!(
        render(EmbedOptions::default().max_embeds(2)),
        format!("alpha\nalpha\n[[A]] {EMBED_LIMIT_MARKER}\n")
    );
    let cut = render(EmbedOptions::default().max_bytes(7));
    assert!(cut.starts_with("alpha\nal"), "{cut:?}");
    assert!(cut.contains(EMBED_LIMIT_MARKER), "{cut:?}");

    // Lookups happen as the rendering reaches an embed, once per target.
    let mut lookups = Vec::new();
    let expanded = expand_embeds(
        &notes[0],
        "kim",
        EmbedOptions::default(),
        |target, _folder| {
            lookups.push(target.to_owned());
            Ok::<_, ()>(notes.iter().find(|n| n.title == target).cloned())
        },
    )
    .unwrap();
    assert!(!expanded.limit_reached);
    assert_eq!(lookups, ["A"]);
}

#[test]
fn many_unresolved_links_build_one_entry_each() {
    // One note linking to 20,000 distinct missing notes, 20,000 notes
    // linking to the same missing one, and repeats.
    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!("[[missing {i}]] [[MISSING {i}]] "));
    }
    let mut notes = vec![note(1, "kim", "Hub", &body, Visibility::Public)];
    for i in 2..20_002u128 {
        notes.push(note(
            i,
            "kim",
            &format!("n{i}"),
            "[[Nowhere]] [[nowhere]]",
            Visibility::Public,
        ));
    }
    let graph = NoteGraph::build(&notes, "kim");
    let hub = graph.unresolved(id(1));
    assert_eq!(hub.len(), 20_000, "case-insensitive duplicates count once");
    assert_eq!(hub[0], "missing 0");
    assert_eq!(graph.unresolved(id(2)), ["Nowhere"]);
}

#[test]
fn note_limits_refuse_what_is_too_big() {
    let limits = NoteLimits::default()
        .body_bytes(100)
        .title_chars(10)
        .links(2)
        .tags(2)
        .aliases(1);
    let ok = note(1, "kim", "Runbook", "[[A]] #one", Visibility::Public);
    assert_eq!(limits.check(&ok), Ok(()));
    let big = note(1, "kim", "Runbook", &"x".repeat(101), Visibility::Public);
    let err = limits.check(&big).unwrap_err();
    assert!(err.is_too_large());
    assert_eq!(
        err,
        NoteLimitError::TooLarge {
            bytes: 101,
            limit: 100
        }
    );
    let long_title = note(1, "kim", "Runbook 12345", "", Visibility::Public);
    assert!(matches!(
        limits.check(&long_title),
        Err(NoteLimitError::TitleTooLong {
            chars: 13,
            limit: 10
        })
    ));
    let links = note(1, "kim", "R", "[[a]] ![[b]] [[c]]", Visibility::Public);
    assert!(matches!(
        limits.check(&links),
        Err(NoteLimitError::TooMany {
            what: "links",
            count: 3,
            ..
        })
    ));
    let tags = note(
        1,
        "kim",
        "R",
        "---\ntags: [a, b]\n---\n#c",
        Visibility::Public,
    );
    assert!(matches!(
        limits.check(&tags),
        Err(NoteLimitError::TooMany {
            what: "tags",
            count: 3,
            ..
        })
    ));
    let mut aliases = note(
        1,
        "kim",
        "R",
        "---\naliases: [x]\n---\n",
        Visibility::Public,
    );
    aliases.aliases = vec!["y".into()];
    assert!(matches!(
        limits.check(&aliases),
        Err(NoteLimitError::TooMany {
            what: "aliases",
            count: 2,
            ..
        })
    ));
    assert!(!limits.check(&aliases).unwrap_err().is_too_large());
}

/// The body of `id` once `plan` is applied.
fn body_after(notes: &[Note], plan: &[(NoteId, String)], n: u128) -> String {
    plan.iter()
        .find(|(i, _)| *i == id(n))
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| notes.iter().find(|x| x.id == id(n)).unwrap().body.clone())
}

#[test]
fn a_rename_never_touches_what_its_author_cannot_see() {
    use Visibility::*;
    let notes = [
        // Mallory's private Runbook is the oldest note of that name.
        note(1, "mallory", "Runbook", "mine", Private),
        note(2, "bob", "Runbook", "restart it", Public),
        note(
            3,
            "bob",
            "Incident",
            "![[Runbook]] [[runbook#Steps|steps]]",
            Private,
        ),
        note(4, "mallory", "Mine", "[[Runbook]]", Private),
        note(5, "bob", "Public incident", "[[Runbook]]", Public),
    ];
    let plan = rename_note(&notes, id(1), "Evil").unwrap();
    // Only mallory's own note, whose link meant her Runbook, is rewritten;
    // bob's links meant bob's Runbook and stay as they are.
    assert_eq!(plan.bodies, [(id(4), "[[Evil]]".to_string())]);
    assert_eq!(
        plan.former_title_alias, None,
        "a private note keeps no alias"
    );
}

#[test]
fn a_public_rename_rewrites_public_links_and_keeps_private_ones_resolving() {
    use Visibility::*;
    let notes = vec![
        note(1, "alice", "Runbook", "# Steps\nrestart", Public),
        note(
            2,
            "carol",
            "Ops",
            "[[Runbook#Steps|the steps]] ![[runbook]] [[Runbook|label]]",
            Public,
        ),
        note(3, "carol", "Private ops", "[[Runbook]]", Private),
        note(4, "dave", "Other", "[[Runbook]]", Public),
    ];
    let plan = rename_note(&notes, id(1), "Playbook").unwrap();
    assert_eq!(
        body_after(&notes, &plan.bodies, 2),
        "[[Playbook#Steps|the steps]] ![[Playbook]] [[Playbook|label]]"
    );
    assert_eq!(body_after(&notes, &plan.bodies, 4), "[[Playbook]]");
    assert!(
        !plan.bodies.iter().any(|(i, _)| *i == id(3)),
        "carol's private note is not alice's to change"
    );
    assert_eq!(plan.former_title_alias.as_deref(), Some("Runbook"));
    // With the alias kept, carol's private link still leads to the note.
    let mut after = notes.clone();
    after[0].title = "Playbook".into();
    after[0].aliases.push("Runbook".into());
    let carol = Resolver::for_viewer(&after, "carol");
    let r = carol.resolve("Runbook").unwrap();
    assert_eq!((r.note.id, r.via), (id(1), Via::Alias));
}

#[test]
fn a_rename_never_redirects_a_link_to_another_note() {
    use Visibility::*;
    let notes = [
        // Bob's own older private "Evil".
        note(1, "bob", "Evil", "bob's", Private),
        note(2, "alice", "Runbook", "", Public),
        note(3, "bob", "Links", "[[Runbook]]", Public),
        note(4, "alice", "Hers", "[[Runbook]]", Public),
    ];
    let plan = rename_note(&notes, id(2), "Evil").unwrap();
    // For bob, [[Evil]] would mean his own note: his link is left as is
    // (and keeps resolving through the former title); alice's follows.
    assert_eq!(plan.bodies, [(id(4), "[[Evil]]".to_string())]);
    // Links through an alias are not rewritten either.
    let mut aliased = notes.to_vec();
    aliased[1].aliases = vec!["rb".into()];
    aliased[3].body = "[[rb]]".into();
    assert_eq!(
        rename_note(&aliased, id(2), "Fresh").unwrap().bodies,
        [(id(3), "[[Fresh]]".to_string())]
    );
}

fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "[[",
        "]]",
        "![[",
        "[",
        "]",
        "|",
        "#",
        "#tag ",
        "\n",
        "# H\n",
        "## H\n",
        "A",
        "B",
        "![[A]]",
        "![[B#H]]",
        "![[#H]]",
        "[[A|x]]",
        "---\n",
        "aliases: [A]\n",
        "`",
        "```\n",
        " ",
        "é",
        "\\|",
        "[[A#H\\|x]]",
        "| a | b |\n",
        "|---|---|\n",
        "^id",
        " ^b1\n",
        "[[A#^b1]]",
        "![[B#^b1]]",
        "> ",
        "> [!note]",
        "> [!tip]- T\n",
        "[!",
    ]);
    prop::collection::vec(piece, 0..200).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn any_text_parses_and_renders_within_the_budget(
        a in hostile_text(),
        b in hostile_text(),
        raw in any::<String>(),
    ) {
        for text in [&a, &b, &raw] {
            let parsed = parse(text);
            for link in &parsed.links {
                prop_assert!(text.get(link.range.clone()).is_some());
            }
        }
        let notes = [
            note(1, "kim", "A", &a, Visibility::Public),
            note(2, "kim", "B", &b, Visibility::Public),
            note(3, "kim", "C", &raw, Visibility::Public),
        ];
        let resolver = Resolver::for_viewer(&notes, "kim");
        let options = EmbedOptions::default().max_embeds(8).max_bytes(2_000);
        for n in &notes {
            // The HTML renders whatever the text (callouts, tables, block
            // markers included) without a panic.
            let _ = to_html(n, &resolver, "kim", &HtmlOptions::default().embeds(options));
            let out = render_embeds(n, &resolver, "kim", options);
            // The note itself, a marker per embed it holds, the budget and
            // one last marker where it ran out.
            let markers = parse(&n.body).links.len() * 32;
            prop_assert!(
                out.len() <= n.body.len() + markers + 2_000 + 32,
                "{} bytes out of {}", out.len(), n.body.len()
            );
        }
    }
}
