//! Rendering a note with its embeds (`![[Note]]`, `![[Note#Heading]]`)
//! expanded inline, within a budget ([`EmbedOptions`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::ops::Range;
use std::rc::Rc;

use super::parse::{parse, split_front_matter, Link};
use super::resolve::{name_key, Resolver};
use super::{Note, NoteId};

/// Written after an embed that would include a note already being rendered
/// around it; the embed becomes a plain link followed by this marker.
pub const EMBED_CYCLE_MARKER: &str = "*(embed cycle)*";

/// Written after an embed nested deeper than [`EmbedOptions::max_depth`];
/// the embed becomes a plain link followed by this marker.
pub const EMBED_DEPTH_MARKER: &str = "*(embed depth limit)*";

/// Written where a rendering ran out of its budget
/// ([`EmbedOptions::max_embeds`], [`EmbedOptions::max_bytes`]): after an
/// embed left as a plain link, or where embedded text was cut.
pub const EMBED_LIMIT_MARKER: &str = "*(embed limit reached)*";

/// Options of [`render_embeds`] and [`expand_embeds`]: how deep, how many
/// and how many bytes of embeds one rendering expands.
///
/// Cycles stop at the first repeat and nesting at
/// [`max_depth`](Self::max_depth), but that alone does not bound the
/// output: a short note whose sections embed each other many times per
/// level grows as the fan-out to the power of the depth. So one rendering
/// also expands at most [`max_embeds`](Self::max_embeds) embeds and adds
/// at most [`max_bytes`](Self::max_bytes) bytes of embedded text; past
/// that, embeds stay links followed by [`EMBED_LIMIT_MARKER`]. Everything
/// written for an embed (embedded text, and the links and markers inside
/// it) counts against `max_bytes`, so the output is at most the note
/// itself, a marker per embed it holds, and `max_bytes`, whatever the
/// notes hold; each embedded note or section is parsed once per rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbedOptions {
    /// How many embeds deep to expand (0 expands none). Default 4.
    pub max_depth: usize,
    /// How many embeds one rendering expands in all. Default 64.
    pub max_embeds: usize,
    /// How many bytes of embedded text one rendering adds to the note's
    /// own. Default 1 MiB.
    pub max_bytes: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            max_depth: 4,
            max_embeds: 64,
            max_bytes: 1024 * 1024,
        }
    }
}

impl EmbedOptions {
    /// Sets [`max_depth`](Self::max_depth).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets [`max_embeds`](Self::max_embeds).
    pub fn max_embeds(mut self, embeds: usize) -> Self {
        self.max_embeds = embeds;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// A note's Markdown with its embeds expanded: see [`expand_embeds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// The Markdown.
    pub markdown: String,
    /// Whether the budget ran out ([`EMBED_LIMIT_MARKER`] is in the text).
    pub limit_reached: bool,
}

/// The section of `markdown` under the heading named `heading`
/// (case-insensitive): from that heading up to the next heading of the same
/// or a higher level. `None` if there is no such heading.
///
/// ```
/// let md = "# A\none\n## B\ntwo\n# C\nthree";
/// assert_eq!(omegi_core::note::section(md, "a"), Some("# A\none\n## B\ntwo\n"));
/// assert_eq!(omegi_core::note::section(md, "B"), Some("## B\ntwo\n"));
/// ```
pub fn section<'t>(markdown: &'t str, heading: &str) -> Option<&'t str> {
    section_range(markdown, heading).map(|r| &markdown[r])
}

fn section_range(markdown: &str, heading: &str) -> Option<Range<usize>> {
    let wanted = heading.trim().to_lowercase();
    let headings = parse(markdown).headings;
    let pos = headings
        .iter()
        .position(|h| h.text.to_lowercase() == wanted)?;
    let level = headings[pos].level;
    let start = headings[pos].range.start;
    let end = headings[pos + 1..]
        .iter()
        .find(|h| h.level <= level)
        .map_or(markdown.len(), |h| h.range.start);
    markdown.get(start..end).map(|_| start..end)
}

/// `note`'s Markdown with each `![[...]]` embed replaced by the embedded
/// note's body (front matter removed), or by only the named section for
/// `![[Note#Heading]]`, recursively.
///
/// - `resolver` should be built with [`Resolver::for_viewer`] for `viewer`.
///   A note that `viewer` may not see is never expanded whatever the
///   resolver holds: the embed is left as written, exactly like an embed of
///   a note that does not exist (or of a missing heading).
/// - An embed of a note (section) that is already being rendered around it
///   becomes a plain link followed by [`EMBED_CYCLE_MARKER`]; one nested
///   deeper than `options.max_depth` a plain link followed by
///   [`EMBED_DEPTH_MARKER`]; one past the budget a plain link followed by
///   [`EMBED_LIMIT_MARKER`] (see [`EmbedOptions`]).
/// - `![[#Heading]]` embeds a section of the same note.
///
/// Embeds are replaced in place: an embed alone on its line (the usual way
/// to write one) yields well-formed Markdown.
pub fn render_embeds(
    note: &Note,
    resolver: &Resolver<'_>,
    viewer: &str,
    options: EmbedOptions,
) -> String {
    let expanded = expand_embeds(note, viewer, options, |target| {
        Ok::<_, Infallible>(resolver.resolve(target).map(|r| r.note.clone()))
    });
    match expanded {
        Ok(e) => e.markdown,
        Err(never) => match never {},
    }
}

/// [`render_embeds`] with the embedded notes looked up on demand:
/// `resolve` gets a link target and answers with the note it names for
/// `viewer` (by title, then alias, as [`Resolver`] does), at most once per
/// distinct target. Its first error ends the rendering.
pub fn expand_embeds<E>(
    note: &Note,
    viewer: &str,
    options: EmbedOptions,
    resolve: impl FnMut(&str) -> Result<Option<Note>, E>,
) -> Result<Expanded, E> {
    let mut ctx = Ctx {
        resolve,
        viewer,
        options,
        notes: HashMap::new(),
        contents: HashMap::new(),
        embeds_left: options.max_embeds,
        bytes_left: options.max_bytes,
        limit_reached: false,
    };
    let top = Rc::new(note.clone());
    let links: Vec<Link> = parse(&note.body)
        .links
        .into_iter()
        .filter(|l| l.embed)
        .collect();
    let mut out = String::with_capacity(note.body.len());
    let mut stack = vec![(note.id, None)];
    ctx.render(&top, &note.body, &links, &mut stack, &mut out, false)?;
    Ok(Expanded {
        markdown: out,
        limit_reached: ctx.limit_reached,
    })
}

/// A note or section to embed: where it is in its note's body, and its own
/// embeds (ranges relative to it).
type Content = Option<(Range<usize>, Rc<Vec<Link>>)>;

struct Ctx<'v, F> {
    resolve: F,
    viewer: &'v str,
    options: EmbedOptions,
    /// Link targets (name keys) → the note they name.
    notes: HashMap<String, Option<Rc<Note>>>,
    /// (note, heading key) → the content to embed.
    contents: HashMap<(NoteId, Option<String>), Content>,
    embeds_left: usize,
    bytes_left: usize,
    limit_reached: bool,
}

impl<F, E> Ctx<'_, F>
where
    F: FnMut(&str) -> Result<Option<Note>, E>,
{
    fn note(&mut self, target: &str) -> Result<Option<Rc<Note>>, E> {
        let key = name_key(target);
        if let Some(found) = self.notes.get(&key) {
            return Ok(found.clone());
        }
        let found = (self.resolve)(target)?.map(Rc::new);
        self.notes.insert(key, found.clone());
        Ok(found)
    }

    fn content(&mut self, note: &Note, heading: Option<&str>) -> Content {
        let key = (note.id, heading.map(name_key));
        if let Some(c) = self.contents.get(&key) {
            return c.clone();
        }
        let start = split_front_matter(&note.body).map_or(0, |(_, start)| start);
        let body = &note.body[start..];
        let range = match heading {
            Some(h) => section_range(body, h).map(|r| r.start + start..r.end + start),
            None => Some(start..note.body.len()),
        };
        let content = range.map(|range| {
            let links = parse(&note.body[range.clone()])
                .links
                .into_iter()
                .filter(|l| l.embed)
                .collect();
            (range, Rc::new(links))
        });
        self.contents.insert(key, content.clone());
        content
    }

    /// Copies text of the rendering: the top note's own in full, embedded
    /// text within the byte budget.
    fn copy(&mut self, out: &mut String, text: &str, nested: bool) {
        if !nested {
            out.push_str(text);
            return;
        }
        if text.len() <= self.bytes_left {
            self.bytes_left -= text.len();
            out.push_str(text);
            return;
        }
        let mut end = self.bytes_left;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[..end]);
        self.bytes_left = 0;
        if !self.limit_reached {
            out.push(' ');
            out.push_str(EMBED_LIMIT_MARKER);
        }
        self.limit_reached = true;
    }

    /// An embed left as a plain link (without its `!`), then `marker`;
    /// inside an embedded text, within the byte budget like the text.
    fn marker(&mut self, out: &mut String, original: &str, marker: &str, nested: bool) {
        let text = format!("{} {marker}", &original[1..]);
        self.copy(out, &text, nested);
    }

    fn render(
        &mut self,
        current: &Rc<Note>,
        markdown: &str,
        links: &[Link],
        stack: &mut Vec<(NoteId, Option<String>)>,
        out: &mut String,
        nested: bool,
    ) -> Result<(), E> {
        let mut copied = 0;
        for link in links {
            if nested && self.bytes_left == 0 {
                // The embedded text was cut where the bytes ran out.
                return Ok(());
            }
            let original = &markdown[link.range.clone()];
            self.copy(out, &markdown[copied..link.range.start], nested);
            copied = link.range.end;

            if self.embeds_left == 0 || self.bytes_left == 0 {
                // Spent: no more lookups or parsing, whatever the link.
                self.limit_reached = true;
                self.marker(out, original, EMBED_LIMIT_MARKER, nested);
                continue;
            }
            let target = if link.target.is_empty() {
                Some(Rc::clone(current))
            } else {
                self.note(&link.target)?
            };
            let Some(target) = target.filter(|t| t.visible_to(self.viewer)) else {
                self.copy(out, original, nested);
                continue;
            };
            let heading = link.heading.as_deref().filter(|h| !h.is_empty());
            let Some((range, inner_links)) = self.content(&target, heading) else {
                self.copy(out, original, nested);
                continue;
            };
            let key = (target.id, heading.map(name_key));
            let marker = if stack.contains(&key) {
                Some(EMBED_CYCLE_MARKER)
            } else if stack.len() > self.options.max_depth {
                Some(EMBED_DEPTH_MARKER)
            } else {
                None
            };
            if let Some(marker) = marker {
                self.marker(out, original, marker, nested);
                continue;
            }
            self.embeds_left -= 1;
            stack.push(key);
            let mut inner = String::new();
            let content = &target.body[range];
            let result = self.render(&target, content, &inner_links, stack, &mut inner, true);
            stack.pop();
            result?;
            out.push_str(inner.trim_end_matches(['\n', '\r']));
        }
        self.copy(out, &markdown[copied..], nested);
        Ok(())
    }
}
