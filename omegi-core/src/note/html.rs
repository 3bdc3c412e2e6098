//! Rendering a note to HTML for one viewer.
//!
//! The note is read by the same walk over pulldown-cmark's events and the
//! same scan for Obsidian syntax as [`parse()`](super::parse()), and its
//! links resolve as they do in the graph, so what the page shows is what
//! the graph, the backlinks and a rename see:
//!
//! - `[[Note]]`, `[[Note|shown]]`, `[[Note#Heading]]` become links to the
//!   note the viewer's resolution names (`class="wikilink"`, with
//!   `data-note` holding its id), or to writing it (`class="wikilink
//!   unresolved"`) when it names no note the viewer may see;
//! - `[[Note#^id]]` links to a block (`data-block` holds its id); the
//!   `^id` marker at the end of a block becomes an empty
//!   `<span class="block-anchor" data-block="id">`;
//! - `![[Note]]`, `![[Note#Heading]]` and `![[Note#^id]]` embed the note,
//!   section or block (`<div class="embed">`), within the [`EmbedOptions`]
//!   budget, with the same markers as [`expand_embeds`](super::expand_embeds);
//! - a block quote whose first line is `[!type] Title` is a callout:
//!   `<div class="callout callout-type" data-callout="type">` (with
//!   `data-fold="+"` or `"-"` for a fold marker), its title in
//!   `<div class="callout-title">`, the rest in `<div class="callout-content">`;
//! - tables are tables, and `[[Note\|label]]` in a cell is a link;
//! - `#tag` and `#nested/tag`, in any script (`#결제`), become tag links
//!   (`class="tag"`);
//! - code spans and code blocks, fenced or indented, stay code; front
//!   matter is not shown.
//!
//! The output is safe by construction, so no sanitiser runs after it: text
//! is escaped by pulldown-cmark's HTML writer, raw HTML in a note is shown
//! as text (never passed through), a Markdown link or image whose URL has a
//! scheme other than `http`, `https` or `mailto` is dropped (its text
//! stays), and every attribute value Omegi writes is escaped. The links a
//! note writes out in all are at most as long as its own text, so that one
//! reference definition used many times cannot multiply the output.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::ops::Range;
use std::rc::Rc;

use pulldown_cmark::{CowStr, Event, Tag, TagEnd};
use pulldown_cmark_escape::{escape_href, escape_html};

use super::attachment::is_file_target;
use super::embed::{EmbedOptions, Embedder, Frame, Step};
use super::parse::{
    body_start, callout_at, scan_run, Callout, Fold, Link, Piece, Pieces, Run, Token,
};
use super::resolve::Resolver;
use super::{Note, NoteId};

/// Options of [`to_html`]: the embed budget and where the links Omegi
/// writes lead. Each `*_href` is a prefix to which the note id, the
/// percent-encoded title or the percent-encoded tag is appended; the
/// defaults are the routes of Omegi's web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HtmlOptions {
    /// How far embeds are expanded.
    pub embeds: EmbedOptions,
    /// Where a resolved `[[link]]` leads: this, then the note id.
    /// Default `#/note/`.
    pub note_href: String,
    /// Where an unresolved `[[link]]` leads: this, then its target.
    /// Default `#/notes/new?title=`.
    pub new_note_href: String,
    /// Where a `#tag` leads: this, then the tag. Default `#/search?q=%23`.
    pub tag_href: String,
    /// Where an attachment is fetched: this, then the id of the note it
    /// belongs to, `/attachments/` and its percent-encoded name. Default
    /// `/api/notes/` (the API's attachment route).
    pub attachment_href: String,
}

/// An attachment a `![[file.png]]` or `[[file.pdf]]` names, as the
/// attachment lookup of [`to_html_with_attachments`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRef {
    /// The note it belongs to.
    pub note: NoteId,
    /// Its file name.
    pub name: String,
    /// Whether it is an image shown inline (see
    /// [`ContentType::inline_image`](super::ContentType::inline_image)).
    pub inline_image: bool,
}

impl Default for HtmlOptions {
    fn default() -> Self {
        HtmlOptions {
            embeds: EmbedOptions::default(),
            note_href: "#/note/".into(),
            new_note_href: "#/notes/new?title=".into(),
            tag_href: "#/search?q=%23".into(),
            attachment_href: "/api/notes/".into(),
        }
    }
}

impl HtmlOptions {
    /// Sets [`embeds`](Self::embeds).
    pub fn embeds(mut self, embeds: EmbedOptions) -> Self {
        self.embeds = embeds;
        self
    }

    /// Sets [`note_href`](Self::note_href).
    pub fn note_href(mut self, prefix: impl Into<String>) -> Self {
        self.note_href = prefix.into();
        self
    }

    /// Sets [`new_note_href`](Self::new_note_href).
    pub fn new_note_href(mut self, prefix: impl Into<String>) -> Self {
        self.new_note_href = prefix.into();
        self
    }

    /// Sets [`attachment_href`](Self::attachment_href).
    pub fn attachment_href(mut self, prefix: impl Into<String>) -> Self {
        self.attachment_href = prefix.into();
        self
    }

    /// Sets [`tag_href`](Self::tag_href).
    pub fn tag_href(mut self, prefix: impl Into<String>) -> Self {
        self.tag_href = prefix.into();
        self
    }
}

/// A note rendered to HTML: see [`to_html`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteHtml {
    /// The HTML (a fragment: block elements, no `<html>` or `<body>`).
    pub html: String,
    /// Whether the embeds ran out of their budget (the HTML then says
    /// `(embed limit reached)` where they stopped).
    pub limit_reached: bool,
}

/// `note` as HTML for `viewer`, its links resolved by `resolver` (build it
/// with [`Resolver::for_viewer`]; a note `viewer` may not see never
/// resolves nor embeds, whatever the resolver holds). See the module docs
/// for what becomes what.
///
/// ```
/// use omegi_core::note::{to_html, HtmlOptions, Note, NoteId, Resolver, Visibility};
///
/// let mut runbook = Note::new(NoteId::now_v7(), "kim", "Payment runbook", "Call the issuer.", 1);
/// runbook.aliases = vec!["runbook".into()];
/// runbook.visibility = Visibility::Public;
/// let note = Note::new(NoteId::now_v7(), "lee", "Declines", "See [[runbook]] #결제 <script>", 2);
/// let notes = [runbook, note];
/// let resolver = Resolver::for_viewer(&notes, "lee");
/// let html = to_html(&notes[1], &resolver, "lee", &HtmlOptions::default()).html;
/// assert!(html.contains(r##"<a class="wikilink" href="#/note/"##));
/// assert!(html.contains(r##"<a class="tag" href="#/search?q=%23%EA%B2%B0%EC%A0%9C">#결제</a>"##));
/// assert!(html.contains("&lt;script&gt;"));
/// ```
pub fn to_html(
    note: &Note,
    resolver: &Resolver<'_>,
    viewer: &str,
    options: &HtmlOptions,
) -> NoteHtml {
    let rendered = to_html_with(note, viewer, options, |target, from| {
        Ok::<_, Infallible>(resolver.resolve_from(target, from).map(|r| r.note.clone()))
    });
    match rendered {
        Ok(html) => html,
        Err(never) => match never {},
    }
}

/// [`to_html`] with the linked and embedded notes looked up on demand:
/// `resolve` gets a link target and the folder of the note holding the
/// link, and answers with the note it names for `viewer`, at most once per
/// distinct target and folder (as for
/// [`expand_embeds`](super::expand_embeds)). Its first error ends the
/// rendering.
pub fn to_html_with<E>(
    note: &Note,
    viewer: &str,
    options: &HtmlOptions,
    resolve: impl FnMut(&str, &str) -> Result<Option<Note>, E>,
) -> Result<NoteHtml, E> {
    to_html_with_attachments(note, viewer, options, resolve, |_, _| Ok(None))
}

/// [`to_html_with`], and the attachments links name: for a target that
/// names a file ([`is_file_target`]), `attachment` gets the target and the
/// note the link is in, and answers with the attachment the viewer may
/// fetch, if any. An image is embedded as an `<img class="attachment">`,
/// any other file (or an image linked without `!`) is an
/// `<a class="attachment" download>`; both lead to
/// [`HtmlOptions::attachment_href`] and carry `data-note` and
/// `data-attachment`. A file target that names no attachment is a link to
/// a note as usual.
pub fn to_html_with_attachments<E>(
    note: &Note,
    viewer: &str,
    options: &HtmlOptions,
    resolve: impl FnMut(&str, &str) -> Result<Option<Note>, E>,
    attachment: impl FnMut(&str, &Note) -> Result<Option<AttachmentRef>, E>,
) -> Result<NoteHtml, E> {
    let mut renderer = Renderer {
        embedder: Embedder::new(viewer, options.embeds, resolve),
        attachment,
        options,
    };
    let top = Rc::new(note.clone());
    let mut html = String::with_capacity(note.body.len() + note.body.len() / 2);
    let mut stack = vec![(note.id, None)];
    let start = body_start(&note.body);
    renderer.document(&top, start..note.body.len(), &mut stack, &mut html)?;
    Ok(NoteHtml {
        html,
        limit_reached: renderer.embedder.limit_reached,
    })
}

/// Whether a Markdown link or image may lead to `url`: a URL without a
/// scheme (relative, `#fragment`, `//host`) or with `http`, `https` or
/// `mailto`. ASCII white space and control characters are left out before
/// the scheme is read, as browsers leave them out (`java\tscript:`).
pub(crate) fn safe_url(url: &str) -> bool {
    let cleaned: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect();
    let Some((scheme, _)) = cleaned.split_once(':') else {
        return true;
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        // `./a:b`, `a/b:c`, `?q=a:b`: a path, not a scheme.
        return true;
    }
    matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "mailto"
    )
}

/// Appends `s` percent-encoded for a URL's path or query: ASCII letters,
/// digits and `-._~` as they are, every other byte as `%XX`.
fn push_percent_encoded(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Appends `s` escaped for HTML text or a quoted attribute value.
fn push_escaped(out: &mut String, s: &str) {
    // Writing to a String cannot fail.
    let _ = escape_html(&mut *out, s);
}

/// Appends a link prefix from the options, escaped for an `href`.
fn push_href(out: &mut String, prefix: &str) {
    let _ = escape_href(&mut *out, prefix);
}

/// The opening of a callout: `<div class="callout callout-TYPE">` with its
/// type and fold marker as data, its title, and the opening of its
/// content (closed by `</div></div>`).
fn callout_open(callout: &Callout) -> String {
    let mut html = String::with_capacity(128);
    html.push_str("<div class=\"callout callout-");
    push_escaped(&mut html, &callout.kind);
    html.push_str("\" data-callout=\"");
    push_escaped(&mut html, &callout.kind);
    match callout.fold {
        Some(Fold::Open) => html.push_str("\" data-fold=\"+"),
        Some(Fold::Folded) => html.push_str("\" data-fold=\"-"),
        None => {}
    }
    html.push_str("\"><div class=\"callout-title\">");
    match &callout.title {
        Some(title) => push_escaped(&mut html, title),
        None => {
            let mut chars = callout.kind.chars();
            let kind: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            push_escaped(&mut html, &kind);
        }
    }
    html.push_str("</div><div class=\"callout-content\">\n");
    html
}

/// The text of an embed marker (`*(embed cycle)*` → `(embed cycle)`).
fn marker_text(marker: &str) -> &str {
    marker.trim_matches('*')
}

/// The events of one document (a note or an embedded part of one) on their
/// way to pulldown-cmark's HTML writer.
struct Doc<'a> {
    text: &'a str,
    events: Vec<Event<'a>>,
    /// Bytes of link and image URLs (and titles) still allowed.
    url_bytes_left: usize,
    /// For each open Markdown link or image: whether it was kept.
    open_links: Vec<bool>,
    /// Kept Markdown links and images open around the current text: wiki
    /// links and tags inside them stay text (no link in a link, no HTML in
    /// an image's `alt`).
    inside_link: usize,
    /// In a paragraph: the inline elements open in it, which an embed in
    /// the middle of the paragraph closes and opens again (a `<div>` may
    /// not stand in a `<p>`).
    paragraph: Option<Vec<Tag<'a>>>,
}

impl<'a> Doc<'a> {
    /// Whether a link or image to `url` with `title` is kept.
    fn keep_link(&mut self, url: &str, title: &str) -> bool {
        let cost = url.len() + title.len();
        if !safe_url(url) || cost > self.url_bytes_left {
            return false;
        }
        self.url_bytes_left -= cost;
        true
    }

    /// An event that is not prose text, made safe.
    fn event(&mut self, event: Event<'a>) {
        let event = match event {
            // Raw HTML is shown as the text it is.
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
            Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
            Event::Start(
                Tag::Link {
                    ref dest_url,
                    ref title,
                    ..
                }
                | Tag::Image {
                    ref dest_url,
                    ref title,
                    ..
                },
            ) => {
                let keep = self.keep_link(dest_url, title);
                self.open_links.push(keep);
                if !keep {
                    return;
                }
                self.inside_link += 1;
                event
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if self.open_links.pop() != Some(true) {
                    return;
                }
                self.inside_link = self.inside_link.saturating_sub(1);
                event
            }
            other => other,
        };
        if let Some(open) = self.paragraph.as_mut() {
            match &event {
                Event::Start(tag) => open.push(tag.clone()),
                Event::End(_) => {
                    open.pop();
                }
                _ => {}
            }
        }
        self.events.push(event);
    }

    /// Pushes block HTML where inline content may be open: the paragraph
    /// around it (and what is open in it) ends before and starts again
    /// after.
    fn block_html(&mut self, html: String) {
        let reopen = self.paragraph.take();
        if let Some(open) = &reopen {
            for tag in open.iter().rev() {
                self.events.push(Event::End(tag.to_end()));
            }
            self.events.push(Event::End(TagEnd::Paragraph));
        }
        self.events.push(Event::Html(html.into()));
        if let Some(open) = reopen {
            self.events.push(Event::Start(Tag::Paragraph));
            for tag in &open {
                self.events.push(Event::Start(tag.clone()));
            }
            self.paragraph = Some(open);
        }
    }
}

/// Whether the text of `run` outside `tokens` is only white space.
fn only_space_between(text: &str, run: &Run<'_>, tokens: &[Token]) -> bool {
    let mut at = run.range.start;
    for token in tokens {
        let range = token.range();
        if !text[at..range.start.max(at)].trim().is_empty() {
            return false;
        }
        at = range.end.max(at);
    }
    text[at..run.range.end.max(at)].trim().is_empty()
}

struct Renderer<'o, 'v, F, G> {
    embedder: Embedder<'v, F>,
    attachment: G,
    options: &'o HtmlOptions,
}

impl<F, G, E> Renderer<'_, '_, F, G>
where
    F: FnMut(&str, &str) -> Result<Option<Note>, E>,
    G: FnMut(&str, &Note) -> Result<Option<AttachmentRef>, E>,
{
    /// The attachment a file target names, if any.
    fn attachment_of(&mut self, current: &Note, link: &Link) -> Result<Option<AttachmentRef>, E> {
        if !is_file_target(&link.target) {
            return Ok(None);
        }
        (self.attachment)(&link.target, current)
    }

    /// An attachment as an `<img>` (an embedded image) or a download link.
    fn attachment_html(&self, link: &Link, found: &AttachmentRef, out: &mut String) {
        let mut href = String::new();
        push_href(&mut href, &self.options.attachment_href);
        href.push_str(&found.note.to_string());
        href.push_str("/attachments/");
        push_percent_encoded(&mut href, &found.name);
        let shown = link
            .display
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&found.name);
        if link.embed && found.inline_image {
            out.push_str("<img class=\"attachment\" src=\"");
            out.push_str(&href);
            out.push_str("\" alt=\"");
            push_escaped(out, shown);
        } else {
            out.push_str("<a class=\"attachment\" download href=\"");
            out.push_str(&href);
        }
        out.push_str("\" data-note=\"");
        out.push_str(&found.note.to_string());
        out.push_str("\" data-attachment=\"");
        push_escaped(out, &found.name);
        if link.embed && found.inline_image {
            out.push_str("\">");
        } else {
            out.push_str("\">");
            push_escaped(out, shown);
            out.push_str("</a>");
        }
    }

    /// Renders `note.body[range]` into `out`, inside the embeds on `stack`.
    fn document(
        &mut self,
        note: &Rc<Note>,
        range: Range<usize>,
        stack: &mut Vec<Frame>,
        out: &mut String,
    ) -> Result<(), E> {
        let text: &str = &note.body;
        let mut doc = Doc {
            text,
            events: Vec::new(),
            url_bytes_left: range.len(),
            open_links: Vec::new(),
            inside_link: 0,
            paragraph: None,
        };
        let mut pieces = Pieces::new(text, range);
        // For each open block quote: whether it is a callout.
        let mut quotes: Vec<bool> = Vec::new();
        // A callout just opened: its first line (the `[!type] Title` line,
        // shown as its title) is left out of its first paragraph.
        let mut callout_line = false;
        while let Some(piece) = pieces.next() {
            match piece {
                Piece::Event(Event::Start(Tag::BlockQuote(kind)), quote) => {
                    match callout_at(text, quote) {
                        Some(callout) => {
                            quotes.push(true);
                            callout_line = true;
                            doc.events.push(Event::Html(callout_open(&callout).into()));
                        }
                        None => {
                            quotes.push(false);
                            doc.event(Event::Start(Tag::BlockQuote(kind)));
                        }
                    }
                }
                Piece::Event(Event::End(TagEnd::BlockQuote(kind)), _) => {
                    if quotes.pop() == Some(true) {
                        doc.events.push(Event::Html("</div></div>\n".into()));
                    } else {
                        doc.event(Event::End(TagEnd::BlockQuote(kind)));
                    }
                }
                Piece::Event(Event::Start(Tag::Paragraph), _) => {
                    let mut inner = Vec::new();
                    for piece in pieces.by_ref() {
                        if matches!(piece, Piece::Event(Event::End(TagEnd::Paragraph), _)) {
                            break;
                        }
                        inner.push(piece);
                    }
                    if std::mem::take(&mut callout_line) {
                        let line_end = inner.iter().position(|p| {
                            matches!(p, Piece::Event(Event::SoftBreak | Event::HardBreak, _))
                        });
                        match line_end {
                            Some(end) => drop(inner.drain(..=end)),
                            None => continue,
                        }
                    }
                    self.paragraph(note, inner, &mut doc, stack)?;
                }
                Piece::Event(event, _) => doc.event(event),
                Piece::Run(run) => {
                    let tokens = scan_run(text, run.range.clone(), &mut 0);
                    self.run(note, run, tokens, &mut doc, stack)?;
                }
            }
        }
        pulldown_cmark::html::push_html(out, doc.events.into_iter());
        Ok(())
    }

    /// A paragraph: one that holds only embeds (each on its line, the usual
    /// way to write them) becomes the embeds; any other, a `<p>`.
    fn paragraph<'a>(
        &mut self,
        note: &Rc<Note>,
        pieces: Vec<Piece<'a>>,
        doc: &mut Doc<'a>,
        stack: &mut Vec<Frame>,
    ) -> Result<(), E> {
        let scanned: Vec<(Piece<'a>, Vec<Token>)> = pieces
            .into_iter()
            .map(|piece| {
                let tokens = match &piece {
                    Piece::Run(run) => scan_run(doc.text, run.range.clone(), &mut 0),
                    Piece::Event(..) => Vec::new(),
                };
                (piece, tokens)
            })
            .collect();
        let only_embeds = doc.inside_link == 0
            && scanned.iter().any(|(_, tokens)| !tokens.is_empty())
            && scanned.iter().all(|(piece, tokens)| match piece {
                Piece::Run(run) => {
                    tokens
                        .iter()
                        .all(|t| matches!(t, Token::Link(link) if link.embed))
                        && only_space_between(doc.text, run, tokens)
                }
                Piece::Event(Event::SoftBreak | Event::HardBreak, _) => true,
                Piece::Event(..) => false,
            });
        if only_embeds {
            for (_, tokens) in scanned {
                for token in tokens {
                    if let Token::Link(link) = token {
                        self.embed(note, &link, doc, stack, true)?;
                    }
                }
            }
            return Ok(());
        }
        doc.events.push(Event::Start(Tag::Paragraph));
        doc.paragraph = Some(Vec::new());
        for (piece, tokens) in scanned {
            match piece {
                Piece::Run(run) => self.run(note, run, tokens, doc, stack)?,
                Piece::Event(event, _) => doc.event(event),
            }
        }
        doc.paragraph = None;
        doc.events.push(Event::End(TagEnd::Paragraph));
        Ok(())
    }

    /// A run of prose: its text as text, its tokens as links, tags and
    /// embeds. The tokens are found in the source; text that pulldown-cmark
    /// decoded (an entity, an escape) is shown decoded unless a token
    /// covers part of it.
    fn run<'a>(
        &mut self,
        note: &Rc<Note>,
        run: Run<'a>,
        tokens: Vec<Token>,
        doc: &mut Doc<'a>,
        stack: &mut Vec<Frame>,
    ) -> Result<(), E> {
        let text = doc.text;
        let mut tokens = tokens.into_iter().peekable();
        let mut pos = run.range.start;
        for (decoded, r) in run.texts {
            let verbatim = text.get(r.clone()) == Some(&*decoded);
            let mut decoded = Some(decoded);
            while pos < r.end {
                let next_start = tokens.peek().map(|t| t.range().start);
                match next_start {
                    Some(start) if start <= pos => {
                        let Some(token) = tokens.next() else { break };
                        pos = token.range().end;
                        self.token(note, token, doc, stack)?;
                    }
                    _ => {
                        let from = pos.max(r.start);
                        let to = next_start.map_or(r.end, |s| s.min(r.end));
                        if verbatim {
                            doc.events
                                .push(Event::Text(CowStr::Borrowed(&text[from..to])));
                        } else if from == r.start && to == r.end {
                            if let Some(decoded) = decoded.take() {
                                doc.events.push(Event::Text(decoded));
                            }
                        }
                        pos = to;
                    }
                }
            }
        }
        for token in tokens {
            self.token(note, token, doc, stack)?;
        }
        Ok(())
    }

    fn token<'a>(
        &mut self,
        note: &Rc<Note>,
        token: Token,
        doc: &mut Doc<'a>,
        stack: &mut Vec<Frame>,
    ) -> Result<(), E> {
        if doc.inside_link > 0 {
            let source = &doc.text[token.range()];
            doc.events.push(Event::Text(CowStr::Borrowed(source)));
            return Ok(());
        }
        match token {
            Token::Tag(name, _) => {
                let mut html = String::with_capacity(32 + 3 * name.len());
                html.push_str("<a class=\"tag\" href=\"");
                push_href(&mut html, &self.options.tag_href);
                push_percent_encoded(&mut html, &name);
                html.push_str("\">#");
                push_escaped(&mut html, &name);
                html.push_str("</a>");
                doc.events.push(Event::InlineHtml(html.into()));
            }
            Token::Block(id, _) => {
                // The marker itself is not shown: an anchor takes its place.
                let mut html = String::with_capacity(48 + id.len());
                html.push_str("<span class=\"block-anchor\" data-block=\"");
                push_escaped(&mut html, &id);
                html.push_str("\"></span>");
                doc.events.push(Event::InlineHtml(html.into()));
            }
            Token::Link(link) if link.embed => self.embed(note, &link, doc, stack, false)?,
            Token::Link(link) => {
                let mut html = String::new();
                match self.attachment_of(note, &link)? {
                    Some(found) => self.attachment_html(&link, &found, &mut html),
                    None => self.wikilink(note, &link, &mut html)?,
                }
                doc.events.push(Event::InlineHtml(html.into()));
            }
        }
        Ok(())
    }

    /// A wiki link (or an embed's title) as an `<a>`, resolved for the
    /// viewer.
    fn wikilink(&mut self, current: &Rc<Note>, link: &Link, out: &mut String) -> Result<(), E> {
        let block = link.block.as_deref().filter(|b| !b.is_empty());
        let anchor = block.map(|b| format!("^{b}"));
        let heading = link
            .heading
            .as_deref()
            .filter(|h| !h.is_empty())
            .or(anchor.as_deref());
        let label = match (link.display.as_deref().map(str::trim), heading) {
            (Some(shown), _) if !shown.is_empty() => shown.to_owned(),
            (_, Some(h)) if link.target.is_empty() => h.to_owned(),
            (_, Some(h)) => format!("{} › {h}", link.target),
            _ => link.target.clone(),
        };
        match self.embedder.visible(current, &link.target)? {
            Some(target) => {
                let id = target.id.to_string();
                out.push_str("<a class=\"wikilink\" href=\"");
                push_href(out, &self.options.note_href);
                out.push_str(&id);
                out.push_str("\" data-note=\"");
                out.push_str(&id);
                if let Some(b) = block {
                    out.push_str("\" data-block=\"");
                    push_escaped(out, b);
                }
                out.push_str("\" title=\"");
                push_escaped(out, &target.title);
                if let Some(h) = heading {
                    push_escaped(out, &format!(" › {h}"));
                }
            }
            None => {
                out.push_str("<a class=\"wikilink unresolved\" href=\"");
                push_href(out, &self.options.new_note_href);
                push_percent_encoded(out, &link.target);
                out.push_str("\" title=\"");
                push_escaped(out, &format!("No note named {}", link.target));
            }
        }
        out.push_str("\">");
        push_escaped(out, &label);
        out.push_str("</a>");
        Ok(())
    }

    /// An embed: the embedded note or section in a `<div class="embed">`
    /// under a link to it, or a link (with a marker) where it is not
    /// expanded, in a paragraph of its own where the embed stands for a
    /// paragraph (`block`).
    fn embed<'a>(
        &mut self,
        current: &Rc<Note>,
        link: &Link,
        doc: &mut Doc<'a>,
        stack: &mut Vec<Frame>,
        block: bool,
    ) -> Result<(), E> {
        let mut html = String::new();
        let (open, close) = if block { ("<p>", "</p>\n") } else { ("", "") };
        if let Some(found) = self.attachment_of(current, link)? {
            html.push_str(open);
            self.attachment_html(link, &found, &mut html);
            html.push_str(close);
            doc.events.push(Event::Html(html.into()));
            return Ok(());
        }
        match self.embedder.step(current, link, stack)? {
            Step::AsWritten => {
                html.push_str(open);
                self.wikilink(current, link, &mut html)?;
                html.push_str(close);
            }
            Step::Marker(marker) => {
                html.push_str(open);
                self.wikilink(current, link, &mut html)?;
                html.push_str(" <em class=\"embed-marker\">");
                push_escaped(&mut html, marker_text(marker));
                html.push_str("</em>");
                html.push_str(close);
            }
            Step::Expand { note, range, frame } => {
                let got = self.embedder.take_bytes(range.len());
                let mut end = range.start + got;
                while !note.body.is_char_boundary(end) {
                    end -= 1;
                }
                html.push_str("<div class=\"embed\" data-note=\"");
                html.push_str(&note.id.to_string());
                html.push_str("\"><div class=\"embed-title\">");
                self.wikilink(current, link, &mut html)?;
                html.push_str("</div>\n");
                stack.push(frame);
                let result = self.document(&note, range.start..end, stack, &mut html);
                stack.pop();
                result?;
                if got < range.len() {
                    html.push_str("<p><em class=\"embed-marker\">");
                    push_escaped(&mut html, marker_text(super::EMBED_LIMIT_MARKER));
                    html.push_str("</em></p>\n");
                }
                html.push_str("</div>\n");
                doc.block_html(html);
                return Ok(());
            }
        }
        doc.events.push(Event::Html(html.into()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_other_schemes_are_not_safe() {
        for url in [
            "https://example.com/a?b=c:d",
            "HTTP://example.com",
            "mailto:kim@example.com",
            "kim@example.com",
            "/api/notes",
            "./runbook.md",
            "../a:b",
            "a/b:c",
            "#/note/1",
            "?q=a:b",
            "//example.com",
            "",
        ] {
            assert!(safe_url(url), "{url:?} is safe");
        }
        for url in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{1}javascript:alert(1)",
            "vbscript:x",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "c:\\windows",
        ] {
            assert!(!safe_url(url), "{url:?} is not safe");
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes() {
        let mut out = String::new();
        push_percent_encoded(&mut out, "결제/a b\"<");
        assert_eq!(out, "%EA%B2%B0%EC%A0%9C%2Fa%20b%22%3C");
    }
}
