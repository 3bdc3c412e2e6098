//! Notes: parsing, resolution, rename, graph queries, embeds, export.

use omegi_core::note::{
    note_from_markdown_file, note_to_markdown_file, parse, rename_links, rename_note,
    render_embeds, to_dot, to_json, to_mermaid, Direction, EdgeKind, EmbedOptions,
    FrontMatterError, LocalGraphOptions, NodeKind, Note, NoteDefaults, NoteFileError, NoteGraph,
    NoteId, RenameError, Resolver, Via, Visibility, EMBED_CYCLE_MARKER, EMBED_DEPTH_MARKER,
};
use omegi_core::Fingerprint;
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

fn public(n: u128, title: &str, body: &str) -> Note {
    note(n, "kim", title, body, Visibility::Public)
}

fn targets(text: &str) -> Vec<String> {
    parse(text).links.into_iter().map(|l| l.target).collect()
}

// ---------------------------------------------------------------- parsing

#[test]
fn link_forms_and_their_ranges() {
    let text = "See [[A]], [[B|shown text]], [[C#Heading]], [[ D # Sub | x ]] and ![[E]].";
    let links = parse(text).links;
    assert_eq!(links.len(), 5);
    let a = &links[0];
    assert_eq!(
        (
            a.target.as_str(),
            a.heading.as_deref(),
            a.display.as_deref(),
            a.embed
        ),
        ("A", None, None, false)
    );
    assert_eq!(&text[a.range.clone()], "[[A]]");
    let b = &links[1];
    assert_eq!(
        (b.target.as_str(), b.display.as_deref()),
        ("B", Some("shown text"))
    );
    assert_eq!(&text[b.target_range.clone()], "B");
    let c = &links[2];
    assert_eq!(
        (c.target.as_str(), c.heading.as_deref()),
        ("C", Some("Heading"))
    );
    let d = &links[3];
    assert_eq!(
        (
            d.target.as_str(),
            d.heading.as_deref(),
            d.display.as_deref()
        ),
        ("D", Some("Sub"), Some(" x "))
    );
    assert_eq!(&text[d.target_range.clone()], "D");
    let e = &links[4];
    assert!(e.embed);
    assert_eq!(&text[e.range.clone()], "![[E]]");
}

#[test]
fn code_is_never_a_link_or_tag() {
    let text = "\
Inline `[[Span]] #spantag` code.

```rust
let x = \"[[Fenced]]\"; // #fencedtag
```

~~~
![[Tilde]]
~~~

    [[Indented]] #indentedtag

After [[Real]] #realtag
";
    let parsed = parse(text);
    assert_eq!(targets(text), ["Real"]);
    assert_eq!(parsed.tags, ["realtag"]);
}

#[test]
fn escaped_brackets_and_broken_links_are_not_links() {
    assert!(targets(r"\[\[Escaped]]").is_empty());
    assert!(targets("[[Not closed").is_empty());
    assert!(targets("[[across\nlines]]").is_empty());
    assert!(targets("[[]] and [[ ]]").is_empty());
    assert_eq!(targets("[[[Triple]]"), ["Triple"]);
    // A link in the same note: empty target, heading kept.
    let l = &parse("[[#Local heading]]").links[0];
    assert_eq!(
        (l.target.as_str(), l.heading.as_deref()),
        ("", Some("Local heading"))
    );
}

#[test]
fn links_inside_emphasis_lists_quotes_and_headings() {
    let text =
        "# About [[Heading link]]\n\n- item [[List]]\n\n> quote ![[Quoted]]\n\n*see [[Emph]]*\n";
    assert_eq!(targets(text), ["Heading link", "List", "Quoted", "Emph"]);
    let parsed = parse(text);
    assert_eq!(parsed.headings.len(), 1);
    assert_eq!(parsed.headings[0].text, "About [[Heading link]]");
    assert_eq!(parsed.headings[0].level, 1);
}

#[test]
fn tag_rules() {
    let text = "#start tag, #nested/deep/tag, #y2024 #2024 #_under #with-dash \
                foo#notatag (#paren) #tag. http://x.io/#anchor #결제/오류 #CaseTag #casetag";
    assert_eq!(
        parse(text).tags,
        [
            "start",
            "nested/deep/tag",
            "y2024",
            "_under",
            "with-dash",
            "tag",
            "결제/오류",
            "CaseTag"
        ]
    );
}

#[test]
fn headings_are_not_tags() {
    let text = "# Title\n\n## Second #real\n\n#Glued is a tag, not a heading\n";
    let parsed = parse(text);
    assert_eq!(parsed.tags, ["real", "Glued"]);
    let titles: Vec<_> = parsed
        .headings
        .iter()
        .map(|h| (h.level, h.text.as_str()))
        .collect();
    assert_eq!(titles, [(1, "Title"), (2, "Second #real")]);
}

#[test]
fn front_matter_list_and_scalar_forms() {
    let list = "---\ntags: [payments, '#db/postgres', 2024]\naliases:\n  - Pay timeout\n  - 결제 시간 초과\n---\nBody [[Link]] #inline\n";
    let parsed = parse(list);
    assert_eq!(parsed.front_matter_error, None);
    assert_eq!(parsed.front_matter.tags, ["payments", "db/postgres"]);
    assert_eq!(
        parsed.front_matter.aliases,
        ["Pay timeout", "결제 시간 초과"]
    );
    assert_eq!(
        parsed.front_matter.range,
        Some(0..list.find("Body").unwrap())
    );
    assert_eq!(parsed.tags, ["inline"]);
    assert_eq!(targets(list), ["Link"]);
    // The link's range is in the whole text.
    let link = &parsed.links[0];
    assert_eq!(&list[link.range.clone()], "[[Link]]");

    let scalar = "---\ntags: rust, tokio\nalias: The one\n---\ntext";
    let parsed = parse(scalar);
    assert_eq!(parsed.front_matter.tags, ["rust", "tokio"]);
    assert_eq!(parsed.front_matter.aliases, ["The one"]);
}

#[test]
fn front_matter_is_only_at_the_very_start() {
    let text = "text\n---\ntags: [x]\n---\n";
    let parsed = parse(text);
    assert!(parsed.front_matter.tags.is_empty());
    assert_eq!(parsed.front_matter.range, None);
    // Links inside the front matter are not links.
    assert!(targets("---\ntitle: \"[[Nope]]\"\n---\nbody").is_empty());
}

#[test]
fn malformed_front_matter_is_reported_and_the_body_still_parsed() {
    let text = "---\ntags: [unclosed\n---\nStill [[Parsed]] #here\n";
    let parsed = parse(text);
    assert!(matches!(
        parsed.front_matter_error,
        Some(FrontMatterError::Yaml(_))
    ));
    assert!(parsed.front_matter.tags.is_empty());
    assert_eq!(targets(text), ["Parsed"]);
    assert_eq!(parsed.tags, ["here"]);

    let parsed = parse("---\n- a\n- b\n---\nx");
    assert_eq!(
        parsed.front_matter_error,
        Some(FrontMatterError::NotAMapping)
    );
    let parsed = parse("---\ntags: {a: 1}\n---\nx");
    assert_eq!(
        parsed.front_matter_error,
        Some(FrontMatterError::InvalidField("tags"))
    );
}

#[test]
fn korean_titles_and_tags() {
    let text = "결제 실패는 [[결제 오류|여기]] 참고. #결제 #장애/DB";
    let parsed = parse(text);
    assert_eq!(parsed.links[0].target, "결제 오류");
    assert_eq!(&text[parsed.links[0].target_range.clone()], "결제 오류");
    assert_eq!(parsed.tags, ["결제", "장애/DB"]);

    let a = public(1, "결제 오류", "PG사 타임아웃");
    let b = public(2, "주문", "[[결제 오류]]");
    let notes = [a, b];
    let graph = NoteGraph::build(&notes, "kim");
    assert_eq!(graph.backlinks(id(1)), [id(2)]);
}

// ---------------------------------------------------------------- resolution and rename

#[test]
fn resolution_by_title_and_alias_case_insensitive() {
    let mut a = public(1, "Payment Timeout", "");
    a.aliases = vec!["PG timeout".into()];
    let b = public(2, "Other", "---\naliases: [Stripe 504]\n---\n");
    let notes = [a, b];
    let resolver = Resolver::new(&notes);
    let r = resolver.resolve("payment timeout").unwrap();
    assert_eq!((r.note.id, r.via), (id(1), Via::Title));
    let r = resolver.resolve("  pg TIMEOUT ").unwrap();
    assert_eq!((r.note.id, r.via), (id(1), Via::Alias));
    assert_eq!(resolver.resolve("stripe 504").unwrap().note.id, id(2));
    assert_eq!(resolver.resolve("Other.md").unwrap().note.id, id(2));
    assert!(resolver.resolve("Nothing").is_none());
}

#[test]
fn a_title_wins_over_an_alias_and_the_older_note_over_the_newer() {
    let mut old = public(1, "Dup", "");
    old.aliases = vec!["Shared".into()];
    let newer = public(2, "dup", "");
    let shared = public(3, "Shared", "");
    let notes = [newer, shared, old];
    let resolver = Resolver::new(&notes);
    assert_eq!(resolver.resolve("DUP").unwrap().note.id, id(1));
    let r = resolver.resolve("shared").unwrap();
    assert_eq!((r.note.id, r.via), (id(3), Via::Title));
}

#[test]
fn rename_rewrites_title_links_only() {
    let mut target = public(1, "Old title", "Self: [[Old title#Top]]");
    target.aliases = vec!["Oldie".into()];
    let linker = public(
        2,
        "Linker",
        "[[Old title]] [[old title#H|shown]] ![[OLD TITLE]] [[Oldie]] `[[Old title]]`\n\n    [[Old title]]\n",
    );
    let other = public(3, "Other", "[[Unrelated]]");
    let notes = vec![target, linker, other];
    let plan = rename_note(&notes, id(1), "New title").unwrap();
    assert_eq!(plan.former_title_alias.as_deref(), Some("Old title"));
    let changes = plan.bodies;
    assert_eq!(
        changes,
        [
            (id(1), "Self: [[New title#Top]]".to_string()),
            (
                id(2),
                "[[New title]] [[New title#H|shown]] ![[New title]] [[Oldie]] `[[Old title]]`\n\n    [[Old title]]\n"
                    .to_string()
            ),
        ]
    );

    // After applying the rename, the graph is the same as before.
    let before = NoteGraph::build(&notes, "kim");
    let mut renamed = notes.clone();
    renamed[0].title = "New title".into();
    for (nid, body) in changes {
        renamed.iter_mut().find(|n| n.id == nid).unwrap().body = body;
    }
    let after = NoteGraph::build(&renamed, "kim");
    assert_eq!(before.backlinks(id(1)), [id(2)]);
    assert_eq!(after.backlinks(id(1)), [id(2)]);
    assert!(after.unresolved(id(2)).is_empty());
    assert!(after.unresolved(id(1)).is_empty());
}

#[test]
fn rename_leaves_links_that_resolve_elsewhere() {
    let older = public(1, "Dup", "");
    let newer = public(2, "Dup", "");
    let linker = public(3, "L", "[[Dup]]");
    let notes = [older, newer, linker];
    assert_eq!(rename_note(&notes, id(2), "Fresh").unwrap().bodies, []);
    assert_eq!(
        rename_note(&notes, id(1), "Fresh").unwrap().bodies,
        [(id(3), "[[Fresh]]".into())]
    );
}

#[test]
fn rename_refuses_bad_titles_and_unknown_notes() {
    let notes = [public(1, "A", "")];
    for bad in ["", "  ", "a|b", "a#b", "[x]", "line\nbreak"] {
        assert_eq!(
            rename_note(&notes, id(1), bad),
            Err(RenameError::InvalidTitle(bad.to_string()))
        );
    }
    assert_eq!(
        rename_note(&notes, id(9), "B"),
        Err(RenameError::UnknownNote(id(9)))
    );
}

#[test]
fn rename_links_on_plain_text() {
    assert_eq!(rename_links("no links", "A", "B"), None);
    assert_eq!(
        rename_links("[[a|x]] [[ab]]", "A", "B").as_deref(),
        Some("[[B|x]] [[ab]]")
    );
}

// ---------------------------------------------------------------- graph

const FP1: &str = "00000000000000f1";

/// A(Payment timeout) → B(DB pool), C(Retry policy), Missing note
/// B → A#Fix;  D → B via alias;  G (kim, private) → B;  E (lee, private) → A
/// H → I;  F alone (mentions B's alias);  C mentions A's title.
fn fixture() -> Vec<Note> {
    let mut a = public(
        1,
        "Payment timeout",
        "Caused by [[DB pool]]. See [[Retry policy|retries]] and [[Missing note]].",
    );
    a.tags = vec!["payments".into()];
    a.issues = vec![Fingerprint(FP1.into())];
    let mut b = note(
        2,
        "lee",
        "DB pool",
        "Pool exhausted; see [[Payment timeout#Fix]]. #db/postgres",
        Visibility::Public,
    );
    b.aliases = vec!["connection pool".into()];
    let c = public(
        3,
        "Retry policy",
        "Backoff after a payment timeout, `DB pool` in code.",
    );
    let d = note(
        4,
        "lee",
        "Checkout 502",
        "See [[connection pool]]. The DB pool is fine.",
        Visibility::Public,
    );
    let e = note(
        5,
        "lee",
        "Secret",
        "[[Payment timeout]] and DB pool",
        Visibility::Private,
    );
    let f = public(6, "Orphan note", "The connection pool is fine.");
    let g = note(7, "kim", "Kim private", "[[DB pool]]", Visibility::Private);
    let h = public(8, "Island 1", "[[Island 2]]");
    let i = public(9, "Island 2", "");
    vec![a, b, c, d, e, f, g, h, i]
}

#[test]
fn outgoing_and_unresolved() {
    let notes = fixture();
    let g = NoteGraph::build(&notes, "kim");
    assert_eq!(g.len(), 8);
    assert_eq!(g.outgoing(id(1)), [id(2), id(3)]);
    assert_eq!(g.unresolved(id(1)), ["Missing note"]);
    assert_eq!(g.outgoing(id(4)), [id(2)]);
    assert!(g.outgoing(id(9)).is_empty());
}

#[test]
fn backlinks_respect_visibility() {
    let notes = fixture();
    let kim = NoteGraph::build(&notes, "kim");
    assert_eq!(kim.backlinks(id(2)), [id(4), id(7), id(1)]);
    assert_eq!(kim.backlinks(id(1)), [id(2)]);
    let lee = NoteGraph::build(&notes, "lee");
    assert_eq!(lee.backlinks(id(1)), [id(2), id(5)]);
    assert_eq!(lee.backlinks(id(2)), [id(4), id(1)]);
    // A note the viewer may not see is not in their graph at all.
    assert!(!kim.contains(id(5)));
    assert!(kim.backlinks(id(5)).is_empty());
    assert!(kim
        .local_graph(id(5), &LocalGraphOptions::default())
        .is_none());
    // A link to a note the viewer may not see is unresolved for them.
    let notes2 = [
        public(1, "Pub", "[[Secret]]"),
        note(2, "lee", "Secret", "", Visibility::Private),
    ];
    assert_eq!(
        NoteGraph::build(&notes2, "kim").unresolved(id(1)),
        ["Secret"]
    );
    assert_eq!(NoteGraph::build(&notes2, "lee").outgoing(id(1)), [id(2)]);
}

#[test]
fn unlinked_mentions_are_word_bounded_and_skip_linkers() {
    let notes = fixture();
    let kim = NoteGraph::build(&notes, "kim");
    // C names "payment timeout" without linking it; E does too but kim can't see E.
    assert_eq!(kim.unlinked_mentions(id(1)), [id(3)]);
    // D links B through its alias, so it is not an unlinked mention; F names
    // the alias; C names it only in code.
    assert_eq!(kim.unlinked_mentions(id(2)), [id(6)]);
    let lee = NoteGraph::build(&notes, "lee");
    // E mentions "DB pool" in prose; lee sees it.
    assert_eq!(lee.unlinked_mentions(id(2)), [id(6), id(5)]);
    let notes = [
        public(1, "Pool", ""),
        public(2, "x", "Pools and poolside, spool"),
        public(3, "y", "the POOL."),
    ];
    assert_eq!(
        NoteGraph::build(&notes, "kim").unlinked_mentions(id(1)),
        [id(3)]
    );
}

#[test]
fn local_graph_depths_and_edges() {
    let notes = fixture();
    let g = NoteGraph::build(&notes, "kim");
    let opts = |depth| LocalGraphOptions {
        depth,
        ..Default::default()
    };
    assert_eq!(g.local_graph(id(1), &opts(0)).unwrap().note_ids(), [id(1)]);
    let one = g.local_graph(id(1), &opts(1)).unwrap();
    assert_eq!(one.note_ids(), [id(1), id(2), id(3)]);
    let edges: Vec<_> = one.edges.iter().map(|e| (e.from, e.to, e.kind)).collect();
    assert_eq!(
        edges,
        [
            (0, 1, EdgeKind::Link),
            (0, 2, EdgeKind::Link),
            (1, 0, EdgeKind::Link)
        ]
    );
    let two = g.local_graph(id(1), &opts(2)).unwrap();
    assert_eq!(two.note_ids(), [id(1), id(2), id(3), id(4), id(7)]);
    let depths: Vec<_> = two.nodes.iter().map(|n| n.depth).collect();
    assert_eq!(depths, [Some(0), Some(1), Some(1), Some(2), Some(2)]);
    assert_eq!(two.edges.len(), 5);

    let outgoing = LocalGraphOptions {
        depth: 2,
        direction: Direction::Outgoing,
        ..Default::default()
    };
    assert_eq!(
        g.local_graph(id(4), &outgoing).unwrap().note_ids(),
        [id(4), id(2), id(1)]
    );
    let incoming = LocalGraphOptions {
        depth: 5,
        direction: Direction::Incoming,
        ..Default::default()
    };
    assert_eq!(
        g.local_graph(id(3), &incoming).unwrap().note_ids(),
        [id(3), id(1), id(2), id(4), id(7)]
    );
}

#[test]
fn local_graph_filters_and_extra_nodes() {
    let notes = fixture();
    let g = NoteGraph::build(&notes, "kim");
    let tagged = LocalGraphOptions {
        depth: 2,
        tags: vec!["#DB".into()],
        ..Default::default()
    };
    assert_eq!(
        g.local_graph(id(1), &tagged).unwrap().note_ids(),
        [id(1), id(2)]
    );
    let none = LocalGraphOptions {
        depth: 2,
        tags: vec!["d".into()],
        ..Default::default()
    };
    assert_eq!(g.local_graph(id(1), &none).unwrap().note_ids(), [id(1)]);

    let all = LocalGraphOptions {
        depth: 1,
        show_tags: true,
        show_issues: true,
        show_unresolved: true,
        ..Default::default()
    };
    let sub = g.local_graph(id(1), &all).unwrap();
    let nodes: Vec<_> = sub
        .nodes
        .iter()
        .map(|n| (n.kind, n.label.as_str()))
        .collect();
    assert_eq!(
        nodes,
        [
            (NodeKind::Note, "Payment timeout"),
            (NodeKind::Note, "DB pool"),
            (NodeKind::Note, "Retry policy"),
            (NodeKind::Unresolved, "Missing note"),
            (NodeKind::Tag, "#payments"),
            (NodeKind::Issue, FP1),
            (NodeKind::Tag, "#db/postgres"),
        ]
    );
    let extra: Vec<_> = sub.edges[3..]
        .iter()
        .map(|e| (e.from, e.to, e.kind))
        .collect();
    assert_eq!(
        extra,
        [
            (0, 3, EdgeKind::Link),
            (0, 4, EdgeKind::Tag),
            (0, 5, EdgeKind::Issue),
            (1, 6, EdgeKind::Tag)
        ]
    );
    let plain = g
        .local_graph(
            id(1),
            &LocalGraphOptions {
                depth: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(plain.nodes.iter().all(|n| n.kind == NodeKind::Note));
}

#[test]
fn shortest_paths() {
    let notes = fixture();
    let g = NoteGraph::build(&notes, "kim");
    assert_eq!(
        g.shortest_path(id(4), id(3), Direction::Both),
        Some(vec![id(4), id(2), id(1), id(3)])
    );
    assert_eq!(
        g.shortest_path(id(3), id(4), Direction::Both),
        Some(vec![id(3), id(1), id(2), id(4)])
    );
    assert_eq!(
        g.shortest_path(id(4), id(3), Direction::Outgoing),
        Some(vec![id(4), id(2), id(1), id(3)])
    );
    assert_eq!(g.shortest_path(id(3), id(4), Direction::Outgoing), None);
    assert_eq!(
        g.shortest_path(id(1), id(1), Direction::Both),
        Some(vec![id(1)])
    );
    assert_eq!(g.shortest_path(id(1), id(6), Direction::Both), None);
    assert_eq!(
        g.shortest_path(id(1), id(5), Direction::Both),
        None,
        "invisible note"
    );
    // E would be a shortcut for lee, not for kim.
    let lee = NoteGraph::build(&notes, "lee");
    assert_eq!(
        lee.shortest_path(id(5), id(3), Direction::Outgoing),
        Some(vec![id(5), id(1), id(3)])
    );
}

#[test]
fn components_orphans_most_linked() {
    let notes = fixture();
    let g = NoteGraph::build(&notes, "kim");
    assert_eq!(
        g.components(),
        [
            vec![id(4), id(2), id(7), id(1), id(3)],
            vec![id(8), id(9)],
            vec![id(6)]
        ]
    );
    assert_eq!(g.orphans(), [id(6)]);
    assert_eq!(g.most_linked(2), [(id(2), 3), (id(9), 1)]);
    assert_eq!(g.most_linked(10).len(), 4);
    let self_link = [public(1, "Me", "[[Me]] [[Nowhere]]")];
    let g = NoteGraph::build(&self_link, "kim");
    assert_eq!(g.orphans(), [id(1)]);
    assert!(g.most_linked(5).is_empty());
}

// ---------------------------------------------------------------- embeds

#[test]
fn embeds_expand_sections_and_stop_at_cycles() {
    let notes = vec![
        public(1, "Parent", "Top\n\n![[Child]]\n\nEnd"),
        public(
            2,
            "Child",
            "---\ntags: [x]\n---\nChild text\n\n![[Parent]]\n",
        ),
        public(
            3,
            "Doc",
            "# Intro\nhello\n## Fix\nrestart pool\n### Detail\nmore\n## Other\nno\n",
        ),
        public(
            4,
            "Uses section",
            "Fix:\n\n![[doc#fix]]\n\n![[Doc#Missing]]\n",
        ),
        note(5, "lee", "Secret", "secret text", Visibility::Private),
        public(6, "Embeds secret", "![[Secret]] ![[Nope]]"),
        public(7, "Self", "# A\nalpha\n# B\n![[#A]]\n"),
    ];
    let resolver = Resolver::for_viewer(&notes, "kim");
    let render = |n: usize| render_embeds(&notes[n], &resolver, "kim", EmbedOptions::default());
    assert_eq!(
        render(0),
        format!("Top\n\nChild text\n\n[[Parent]] {EMBED_CYCLE_MARKER}\n\nEnd")
    );
    assert_eq!(
        render(3),
        "Fix:\n\n## Fix\nrestart pool\n### Detail\nmore\n\n![[Doc#Missing]]\n"
    );
    assert_eq!(render(5), "![[Secret]] ![[Nope]]");
    assert_eq!(render(6), "# A\nalpha\n# B\n# A\nalpha\n");

    // Even a resolver that holds the private note does not expand it for kim.
    let everything = Resolver::new(&notes);
    assert_eq!(
        render_embeds(&notes[5], &everything, "kim", EmbedOptions::default()),
        "![[Secret]] ![[Nope]]"
    );
    assert_eq!(
        render_embeds(&notes[5], &everything, "lee", EmbedOptions::default()),
        "secret text ![[Nope]]"
    );
}

#[test]
fn embeds_are_depth_limited() {
    let notes = vec![
        public(1, "L1", "one ![[L2]]"),
        public(2, "L2", "two ![[L3]]"),
        public(3, "L3", "three"),
    ];
    let resolver = Resolver::for_viewer(&notes, "kim");
    let at = |max_depth| {
        render_embeds(
            &notes[0],
            &resolver,
            "kim",
            EmbedOptions::default().max_depth(max_depth),
        )
    };
    assert_eq!(at(0), format!("one [[L2]] {EMBED_DEPTH_MARKER}"));
    assert_eq!(at(1), format!("one two [[L3]] {EMBED_DEPTH_MARKER}"));
    assert_eq!(at(2), "one two three");
}

// ---------------------------------------------------------------- export

fn small_graph() -> Subgraph0 {
    let mut a = public(1, "Say \"hi\" #1 <b>", "[[B; c]]");
    a.tags = vec!["t".into()];
    let b = public(2, "B; c", "back\\slash");
    let notes = vec![a, b];
    let g = NoteGraph::build(&notes, "kim");
    let opts = LocalGraphOptions {
        depth: 1,
        show_tags: true,
        ..Default::default()
    };
    g.local_graph(id(1), &opts).unwrap()
}
type Subgraph0 = omegi_core::note::Subgraph;

#[test]
fn json_export() {
    let json: serde_json::Value = serde_json::from_str(&to_json(&small_graph())).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "nodes": [
                {"kind": "note", "key": id(1).to_string(), "label": "Say \"hi\" #1 <b>", "folder": "", "depth": 0},
                {"kind": "note", "key": id(2).to_string(), "label": "B; c", "folder": "", "depth": 1},
                {"kind": "tag", "key": "tag:t", "label": "#t", "folder": ""},
            ],
            "edges": [
                {"from": 0, "to": 1, "kind": "link"},
                {"from": 0, "to": 2, "kind": "tag"},
            ],
        })
    );
}

#[test]
fn dot_export_escapes() {
    assert_eq!(
        to_dot(&small_graph()),
        "digraph notes {\n  node [shape=box];\n  n0 [label=\"Say \\\"hi\\\" #1 <b>\"];\n  n1 [label=\"B; c\"];\n  n2 [label=\"#t\", shape=ellipse];\n  n0 -> n1;\n  n0 -> n2 [style=dotted];\n}\n"
    );
}

#[test]
fn mermaid_export_escapes() {
    assert_eq!(
        to_mermaid(&small_graph()),
        "flowchart LR\n  n0[\"Say #quot;hi#quot; #35;1 #lt;b#gt;\"]\n  n1[\"B#59; c\"]\n  n2([\"#35;t\"])\n  n0 --> n1\n  n0 -.-> n2\n"
    );
}

// ---------------------------------------------------------------- files

fn defaults() -> NoteDefaults {
    NoteDefaults {
        author: "kim".into(),
        visibility: Visibility::Private,
        now_ns: 42,
    }
}

#[test]
fn markdown_file_round_trip() {
    let mut n = note(
        7,
        "lee",
        "Title: with \"quotes\"",
        "Body [[X]]\n\n---\nnot front matter\n",
        Visibility::Public,
    );
    n.tags = vec!["a/b".into(), "결제".into()];
    n.aliases = vec!["Other name".into()];
    n.issues = vec![Fingerprint(FP1.into())];
    n.revision = 3;
    n.updated_ns = 99;
    let file = note_to_markdown_file(&n);
    assert!(file.starts_with("---\n"));
    assert!(file.ends_with("---\nBody [[X]]\n\n---\nnot front matter\n"));
    assert_eq!(
        note_from_markdown_file("ignored stem", &file, &defaults()).unwrap(),
        n
    );
}

#[test]
fn plain_obsidian_file_import() {
    let text = "---\ntags: ops\naliases: [Ops]\n---\n# Runbook\n";
    let n = note_from_markdown_file("On call", text, &defaults()).unwrap();
    assert_eq!(n.title, "On call");
    assert_eq!(n.author, "kim");
    assert_eq!(n.tags, ["ops"]);
    assert_eq!(n.aliases, ["Ops"]);
    assert_eq!(n.body, "# Runbook\n");
    assert_eq!(
        (n.created_ns, n.revision, n.visibility),
        (42, 1, Visibility::Private)
    );
    let n = note_from_markdown_file("Plain", "no front matter", &defaults()).unwrap();
    assert_eq!(n.body, "no front matter");
}

#[test]
fn bad_markdown_files_are_refused() {
    let err = note_from_markdown_file("x", "---\ntags: [\n---\n", &defaults()).unwrap_err();
    assert!(matches!(
        err,
        NoteFileError::FrontMatter(FrontMatterError::Yaml(_))
    ));
    let err =
        note_from_markdown_file("x", "---\nvisibility: everyone\n---\n", &defaults()).unwrap_err();
    assert!(matches!(
        err,
        NoteFileError::InvalidField {
            field: "visibility",
            ..
        }
    ));
    let err = note_from_markdown_file("x", "---\nid: nope\n---\n", &defaults()).unwrap_err();
    assert!(matches!(
        err,
        NoteFileError::InvalidField { field: "id", .. }
    ));
    let err = note_from_markdown_file("x", "---\nrevision: -1\n---\n", &defaults()).unwrap_err();
    assert!(matches!(
        err,
        NoteFileError::InvalidField {
            field: "revision",
            ..
        }
    ));
    assert_eq!(
        note_from_markdown_file(" ", "body", &defaults()),
        Err(NoteFileError::NoTitle)
    );
}

#[test]
fn note_serde_round_trip_and_all_tags() {
    let mut n = public(1, "T", "---\ntags: [fm]\naliases: [Al]\n---\n#inline #FM");
    n.tags = vec!["own".into()];
    assert_eq!(n.all_tags(), ["own", "fm", "inline"]);
    assert_eq!(n.all_aliases(), ["Al"]);
    let json = serde_json::to_string(&n).unwrap();
    assert!(json.contains("\"visibility\":\"public\""));
    assert_eq!(serde_json::from_str::<Note>(&json).unwrap(), n);
}

// ---------------------------------------------------------------- properties

fn markdownish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "[[",
        "]]",
        "![[",
        "|",
        "#",
        "# ",
        "\n",
        "\n\n",
        "`",
        "```\n",
        "    ",
        "---\n",
        "...\n",
        "tags: [a]\n",
        "a",
        "결제",
        "\\",
        "*",
        "> ",
        "- ",
        "&amp;",
        "<b>",
        "[",
        "]",
        "(",
        ")",
        " ",
        "\r\n",
        "~~~\n",
        "é",
    ]);
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parser_never_panics_on_any_text(text in any::<String>()) {
        let parsed = parse(&text);
        for link in parsed.links {
            prop_assert!(text.get(link.range.clone()).is_some());
        }
    }

    #[test]
    fn link_ranges_point_at_the_links(text in markdownish()) {
        let parsed = parse(&text);
        for link in &parsed.links {
            let whole = &text[link.range.clone()];
            let opener = if link.embed { "![[" } else { "[[" };
            prop_assert!(whole.starts_with(opener), "{:?}", whole);
            prop_assert!(whole.ends_with("]]"));
            prop_assert_eq!(&text[link.target_range.clone()], link.target.as_str());
        }
        // Rendering and renaming never panic either.
        let n = public(1, "a", &text);
        let notes = [n];
        let resolver = Resolver::new(&notes);
        let _ = render_embeds(&notes[0], &resolver, "kim", EmbedOptions::default());
        let _ = rename_links(&text, "a", "b");
        let _ = NoteGraph::build(&notes, "kim").unlinked_mentions(id(1));
    }
}
