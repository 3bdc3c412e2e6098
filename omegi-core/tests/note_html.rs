//! Notes rendered to HTML: what each construct becomes (snapshots), who
//! sees which links and embeds, and that no text makes the HTML unsafe.

use std::collections::BTreeSet;

use omegi_core::note::{
    parse, to_html, EmbedOptions, HtmlOptions, Note, NoteId, Resolver, Visibility,
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

/// `notes[index]` as `viewer` sees it.
fn html_with(notes: &[Note], index: usize, viewer: &str, options: &HtmlOptions) -> String {
    let resolver = Resolver::for_viewer(notes, viewer);
    to_html(&notes[index], &resolver, viewer, options).html
}

fn html(notes: &[Note], index: usize, viewer: &str) -> String {
    html_with(notes, index, viewer, &HtmlOptions::default())
}

/// A runbook with an alias in its front matter, and two sections.
fn runbook() -> Note {
    note(
        1,
        "kim",
        "Payment runbook",
        "---\naliases: [runbook]\n---\n# Steps\nCall the *issuer*.\n\n## Retry\nNever retry a decline.\n",
        Visibility::Public,
    )
}

#[test]
fn links_tags_code_and_front_matter() {
    let body = "\
---
tags: [payments]
...
# Declines #결제

See [[runbook]] (an alias), [[Payment runbook#Retry|the retry rules]],
[[payment RUNBOOK.md]], [[#Cause]] and [[Nowhere yet]]. Tagged #결제/카드 and
#payments/stripe, not #123 nor a#b.

## Cause

Use `[[runbook]]` and `#notatag` in code:

    [[runbook]] #indented

```text
[[runbook]] #fenced
```

- [ ] call the issuer #todo
- [x] **refund** [[runbook]]
";
    let notes = [
        runbook(),
        note(2, "lee", "Declines", body, Visibility::Private),
    ];
    insta::assert_snapshot!("links_tags_code_and_front_matter", html(&notes, 1, "lee"));
}

#[test]
fn embeds_sections_cycles_and_hidden_notes() {
    let notes = [
        runbook(),
        note(
            2,
            "lee",
            "Incident",
            "Before.\n\n![[runbook#Retry]]\n\n![[Secret fix]]\n\n![[Payment runbook#No such heading]]\n\n![[Loop]]\n\nInline *and ![[runbook#Retry]] emphasised* embed.\n",
            Visibility::Public,
        ),
        note(3, "park", "Secret fix", "zebra", Visibility::Private),
        note(4, "lee", "Loop", "Loop body.\n\n![[Incident]]\n", Visibility::Public),
    ];
    insta::assert_snapshot!("embeds_as_lee", html(&notes, 1, "lee"));
    // park sees their private note: linked and embedded.
    let park = html(&notes, 1, "park");
    assert!(park.contains("<p>zebra</p>"), "{park}");
}

#[test]
fn raw_html_and_unsafe_links_are_text() {
    let body = r#"<script>alert(1)</script>

<div onclick="alert(1)">[[runbook]]</div>

Inline <img src=x onerror=alert(1)> and <b>bold</b>.

[click](javascript:alert(1)) [encoded](&#106;avascript:alert(1)) [spaced](<java script:alert(1)>)
[data](data:text/html,x) ![pic](javascript:alert(1)) <javascript:alert(1)> <vbscript:x>

[web](https://example.com/a?b=1&c=2 "a \"title\"") [mail](mailto:kim@example.com) <kim@example.com>
[relative](/api/notes) ![logo](/logo.png "Logo") [ref] [ref]

[ref]: https://example.com/ref
"#;
    let notes = [
        runbook(),
        note(2, "lee", "Unsafe", body, Visibility::Private),
    ];
    insta::assert_snapshot!("raw_html_and_unsafe_links", html(&notes, 1, "lee"));
}

#[test]
fn the_embed_budget_holds() {
    let notes = [
        runbook(),
        note(
            2,
            "lee",
            "Many",
            "![[runbook]]\n\n![[runbook#Retry]]\n\n![[runbook#Steps]]\n",
            Visibility::Public,
        ),
    ];
    let two = HtmlOptions::default().embeds(EmbedOptions::default().max_embeds(2));
    let rendered = to_html(&notes[1], &Resolver::for_viewer(&notes, "lee"), "lee", &two);
    assert!(rendered.limit_reached);
    insta::assert_snapshot!("embed_count_limit", rendered.html);

    let few_bytes = HtmlOptions::default().embeds(EmbedOptions::default().max_bytes(20));
    let rendered = to_html(
        &notes[1],
        &Resolver::for_viewer(&notes, "lee"),
        "lee",
        &few_bytes,
    );
    assert!(rendered.limit_reached);
    insta::assert_snapshot!("embed_byte_limit", rendered.html);

    let none = HtmlOptions::default().embeds(EmbedOptions::default().max_depth(0));
    let html = html_with(&notes, 1, "lee", &none);
    assert_eq!(html.matches("(embed depth limit)").count(), 3, "{html}");
    assert!(!html.contains("class=\"embed\""), "{html}");
}

#[test]
fn a_private_note_of_another_user_neither_resolves_nor_embeds() {
    let secret = note(
        1,
        "park",
        "Secret fix",
        "zebra **stripes**",
        Visibility::Private,
    );
    let page = note(
        2,
        "lee",
        "Page",
        "See [[Secret fix]].\n\n![[Secret fix]]\n",
        Visibility::Public,
    );
    let notes = [secret, page];
    let lee = html(&notes, 1, "lee");
    assert!(!lee.contains("zebra"), "{lee}");
    assert!(!lee.contains(&id(1).to_string()), "{lee}");
    assert_eq!(lee.matches("wikilink unresolved").count(), 2, "{lee}");
    // Even a resolver that holds the note does not show it to lee.
    let everyone = Resolver::new(&notes);
    let leaked = to_html(&notes[1], &everyone, "lee", &HtmlOptions::default()).html;
    assert!(!leaked.contains("zebra"), "{leaked}");
    assert!(!leaked.contains(&id(1).to_string()), "{leaked}");
    // Its author sees both.
    let park = html(&notes, 1, "park");
    assert!(park.contains("<strong>stripes</strong>"), "{park}");
    assert_eq!(park.matches("class=\"wikilink\"").count(), 2, "{park}");
}

#[test]
fn the_links_options_lead_where_they_say() {
    let notes = [
        runbook(),
        note(
            2,
            "lee",
            "Page",
            "[[runbook]] [[Missing]] #ops",
            Visibility::Public,
        ),
    ];
    let options = HtmlOptions::default()
        .note_href("/notes/")
        .new_note_href("/new?t=")
        .tag_href("/tags/");
    let html = html_with(&notes, 1, "lee", &options);
    assert!(
        html.contains(&format!("href=\"/notes/{}\"", id(1))),
        "{html}"
    );
    assert!(html.contains("href=\"/new?t=Missing\""), "{html}");
    assert!(html.contains("href=\"/tags/ops\""), "{html}");
}

#[test]
fn one_reference_used_many_times_does_not_multiply_the_output() {
    let url = format!("https://example.com/{}", "a".repeat(10_000));
    let body = format!("[r]: {url}\n\n{}", "[r] ".repeat(5_000));
    let notes = [note(1, "kim", "Refs", &body, Visibility::Private)];
    let html = html(&notes, 0, "kim");
    // 30 KB of text: the links keep at most as many URL bytes as it has.
    assert!(html.len() < 8 * body.len(), "{} bytes", html.len());
    assert!(html.contains(&format!("<a href=\"{url}\">r</a>")));
}

// ---------------------------------------------------------------- safety

/// The tag names the renderer may write.
const ELEMENTS: &[&str] = &[
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "input",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Checks the HTML as a browser would read its tags: every `<` opens an
/// element of [`ELEMENTS`] (text never holds a raw `<`), no attribute is
/// an event handler, and every `href`/`src` leads to an allowed scheme.
fn check_safe(html: &str) -> Result<(), String> {
    if html.to_ascii_lowercase().contains("<script") {
        return Err("<script".into());
    }
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let tag = &rest[open + 1..];
        let close = tag.find('>').ok_or("a tag that does not end")?;
        let inside = &tag[..close];
        rest = &tag[close + 1..];
        let inside = inside.trim_start_matches('/').trim_end_matches('/');
        let name_end = inside
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inside.len());
        let name = &inside[..name_end];
        if !ELEMENTS.contains(&name) {
            return Err(format!("element <{name}>"));
        }
        let mut attrs = inside[name_end..].trim();
        while !attrs.is_empty() {
            let eq = attrs
                .find('=')
                .ok_or(format!("attribute without value in <{inside}>"))?;
            let attr = attrs[..eq].trim().to_ascii_lowercase();
            let value_part = &attrs[eq + 1..];
            if !value_part.starts_with('"') {
                return Err(format!("unquoted attribute in <{inside}>"));
            }
            let end = value_part[1..].find('"').ok_or("an unterminated value")?;
            let value = &value_part[1..1 + end];
            attrs = value_part[end + 2..].trim_start();
            if attr.starts_with("on") {
                return Err(format!("event handler {attr} in <{inside}>"));
            }
            if !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("attribute name {attr:?}"));
            }
            if attr == "href" || attr == "src" {
                let decoded = value
                    .replace("&#x27;", "'")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&");
                let cleaned: String = decoded
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if cleaned.contains("javascript:") || cleaned.contains("vbscript:") {
                    return Err(format!("{attr}={value:?}"));
                }
                if let Some((scheme, _)) = cleaned.split_once(':') {
                    let is_scheme = scheme.chars().all(|c| c.is_ascii_alphanumeric());
                    if is_scheme && !["http", "https", "mailto"].contains(&scheme) {
                        return Err(format!("{attr}={value:?}"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<script>alert(1)</script>".to_owned()),
        Just("<SCRIPT src=x>".to_owned()),
        Just("<img src=x onerror=alert(1)>".to_owned()),
        Just("<a href=\"javascript:alert(1)\">x</a>".to_owned()),
        Just("[x](javascript:alert(1))".to_owned()),
        Just("[x](JAVASCRIPT:alert(1) \"t\")".to_owned()),
        Just("![x](javascript:alert(1))".to_owned()),
        Just("[x](&#106;avascript:alert(1))".to_owned()),
        Just("[x](<java\tscript:x>)".to_owned()),
        Just("<javascript:alert(1)>".to_owned()),
        Just("[r]: javascript:alert(1)\n".to_owned()),
        Just("[r]".to_owned()),
        Just("\" onmouseover=\"alert(1)".to_owned()),
        Just("[[".to_owned()),
        Just("]]".to_owned()),
        Just("![[".to_owned()),
        Just("[[A]]".to_owned()),
        Just("![[A#H]]".to_owned()),
        Just("[[x\" onclick=\"y|z]]".to_owned()),
        Just("#tag".to_owned()),
        Just("#결제".to_owned()),
        Just(" #a\"b".to_owned()),
        Just("`".to_owned()),
        Just("```\n".to_owned()),
        Just("\n    ".to_owned()),
        Just("\n---\n".to_owned()),
        Just("\n...\n".to_owned()),
        Just("\n> ".to_owned()),
        Just("\n- [ ] ".to_owned()),
        Just("\n\n".to_owned()),
        Just("&amp;".to_owned()),
        Just("\\".to_owned()),
        Just("*".to_owned()),
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_text_renders_to_safe_html(body in text(), embedded in text()) {
        let notes = [
            note(1, "kim", "A", &embedded, Visibility::Public),
            note(2, "kim", "Page", &body, Visibility::Private),
        ];
        for index in [0, 1] {
            let html = html(&notes, index, "kim");
            if let Err(e) = check_safe(&html) {
                return Err(TestCaseError::fail(format!("{e}\nin {html}")));
            }
        }
    }

    /// The links and tags the page shows are the ones parsing finds (with
    /// no Markdown link around them: no `](`, no reference definition).
    #[test]
    fn the_page_shows_what_parsing_finds(
        body in text().prop_map(|b| b.replace("](", "] (").replace("]:", "] :"))
    ) {
        let notes = [note(1, "kim", "Page", &body, Visibility::Private)];
        let no_embeds = HtmlOptions::default().embeds(EmbedOptions::default().max_embeds(0));
        let html = html_with(&notes, 0, "kim", &no_embeds);
        let parsed = parse(&body);
        prop_assert_eq!(html.matches("<a class=\"wikilink").count(), parsed.links.len(), "{}", html);
        let shown: BTreeSet<String> = html
            .split("<a class=\"tag\" href=\"")
            .skip(1)
            .filter_map(|s| s.split_once("\">#").and_then(|(_, t)| t.split_once("</a>")))
            .map(|(t, _)| t.replace("&amp;", "&").to_lowercase())
            .collect();
        let found: BTreeSet<String> = parsed.tags.iter().map(|t| t.to_lowercase()).collect();
        prop_assert_eq!(shown, found, "{}", html);
    }
}

#[test]
fn the_safety_check_catches_unsafe_html() {
    for unsafe_html in [
        "<p>x</p><script>alert(1)</script>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\"java&#x27;script:x\">x</a><a href=\" JAVASCRIPT:x\">y</a>",
        "<img src=\"data:image/png,x\" alt=\"\" />",
        "<img src=\"x\" onerror=\"alert(1)\" />",
        "<iframe src=\"/x\"></iframe>",
        "<a href=x>unquoted</a>",
    ] {
        assert!(check_safe(unsafe_html).is_err(), "{unsafe_html}");
    }
    check_safe("<p><a class=\"tag\" href=\"#/search?q=%23a\">#a</a> &lt;script&gt;</p>\n<hr />")
        .expect("safe HTML passes");
}
