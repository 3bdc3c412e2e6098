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

/// The bytes of the block marked `^id` in `body` (whose text starts at
/// `start`): from the blank line before the marker (or the start) to the
/// end of the marker's line.
fn block_range(body: &str, start: usize, id: &str) -> Option<Range<usize>> {
    let parsed = parse(body);
    let marker = parsed
        .blocks
        .iter()
        .find(|b| b.id.eq_ignore_ascii_case(id))?
        .marker
        .clone();
    if marker.start < start {
        return None;
    }
    let end = body[marker.end..]
        .find('\n')
        .map_or(body.len(), |i| marker.end + i);
    let from = body[start..marker.start]
        .rfind("\n\n")
        .map_or(start, |i| start + i + 2);
    Some(from..end)
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
    let expanded = expand_embeds(note, viewer, options, |target, from| {
        Ok::<_, Infallible>(resolver.resolve_from(target, from).map(|r| r.note.clone()))
    });
    match expanded {
        Ok(e) => e.markdown,
        Err(never) => match never {},
    }
}

/// [`render_embeds`] with the embedded notes looked up on demand:
/// `resolve` gets a link target and the folder of the note the link is in,
/// and answers with the note it names for `viewer` (as
/// [`Resolver::resolve_from`] does), at most once per distinct target and
/// folder. Its first error ends the rendering.
pub fn expand_embeds<E>(
    note: &Note,
    viewer: &str,
    options: EmbedOptions,
    resolve: impl FnMut(&str, &str) -> Result<Option<Note>, E>,
) -> Result<Expanded, E> {
    let mut ctx = Ctx {
        embedder: Embedder::new(viewer, options, resolve),
        links: HashMap::new(),
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
        limit_reached: ctx.embedder.limit_reached,
    })
}

/// A note or section being embedded: the note and the heading key.
pub(crate) type Frame = (NoteId, Option<String>);

/// What to do with one embed: see [`Embedder::step`].
pub(crate) enum Step {
    /// Leave it as written: it names no note the viewer may see, or no
    /// heading of it.
    AsWritten,
    /// Leave it as a plain link followed by this marker.
    Marker(&'static str),
    /// Expand it: `note.body[range]` is the text to embed; push `frame` while
    /// rendering it.
    Expand {
        /// The embedded note.
        note: Rc<Note>,
        /// The bytes of its body to embed.
        range: Range<usize>,
        /// Its frame on the rendering's stack.
        frame: Frame,
    },
}

/// One rendering's embeds: the notes looked up for its link targets, the
/// sections found in them and what is left of the budget. Expanding
/// Markdown ([`expand_embeds`]) and rendering HTML
/// ([`to_html`](super::to_html)) both decide each embed here.
pub(crate) struct Embedder<'v, F> {
    resolve: F,
    viewer: &'v str,
    options: EmbedOptions,
    /// (folder of the linking note, link target's name key) → the note
    /// they name.
    notes: HashMap<(String, String), Option<Rc<Note>>>,
    /// (note, heading key) → the bytes of its body to embed.
    sections: HashMap<Frame, Option<Range<usize>>>,
    pub(crate) embeds_left: usize,
    pub(crate) bytes_left: usize,
    pub(crate) limit_reached: bool,
}

impl<'v, F, E> Embedder<'v, F>
where
    F: FnMut(&str, &str) -> Result<Option<Note>, E>,
{
    pub(crate) fn new(viewer: &'v str, options: EmbedOptions, resolve: F) -> Self {
        Embedder {
            resolve,
            viewer,
            options,
            notes: HashMap::new(),
            sections: HashMap::new(),
            embeds_left: options.max_embeds,
            bytes_left: options.max_bytes,
            limit_reached: false,
        }
    }

    /// The note a link target names for the viewer, if they may see it;
    /// an empty target (`[[#Heading]]`) names `current`.
    pub(crate) fn visible(
        &mut self,
        current: &Rc<Note>,
        target: &str,
    ) -> Result<Option<Rc<Note>>, E> {
        let found = if target.is_empty() {
            Some(Rc::clone(current))
        } else {
            let key = (current.folder.to_lowercase(), name_key(target));
            match self.notes.get(&key) {
                Some(found) => found.clone(),
                None => {
                    let found = (self.resolve)(target, &current.folder)?.map(Rc::new);
                    self.notes.insert(key, found.clone());
                    found
                }
            }
        };
        Ok(found.filter(|n| n.visible_to(self.viewer)))
    }

    /// The bytes of `note`'s body to embed: the body without front matter,
    /// the section under `heading`, or the block marked `^id` (a heading
    /// `^id`).
    fn section(&mut self, note: &Note, heading: Option<&str>) -> Option<Range<usize>> {
        let key = (note.id, heading.map(name_key));
        if let Some(range) = self.sections.get(&key) {
            return range.clone();
        }
        let start = split_front_matter(&note.body).map_or(0, |(_, start)| start);
        let range = match heading {
            Some(h) => match h.strip_prefix('^') {
                Some(id) => block_range(&note.body, start, id),
                None => {
                    section_range(&note.body[start..], h).map(|r| r.start + start..r.end + start)
                }
            },
            None => Some(start..note.body.len()),
        };
        self.sections.insert(key, range.clone());
        range
    }

    /// Decides an embed `link` met in `current`, inside the embeds on
    /// `stack`: past the budget, a marker (and no lookup); a note the viewer
    /// may not see, or a missing heading, as written; a cycle or nesting
    /// past the depth, a marker; else expand, which counts against the
    /// embeds of the budget (the caller counts the bytes).
    pub(crate) fn step(
        &mut self,
        current: &Rc<Note>,
        link: &Link,
        stack: &[Frame],
    ) -> Result<Step, E> {
        if self.embeds_left == 0 || self.bytes_left == 0 {
            self.limit_reached = true;
            return Ok(Step::Marker(EMBED_LIMIT_MARKER));
        }
        let Some(target) = self.visible(current, &link.target)? else {
            return Ok(Step::AsWritten);
        };
        let block = link
            .block
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| format!("^{b}"));
        let heading = link
            .heading
            .as_deref()
            .filter(|h| !h.is_empty())
            .or(block.as_deref());
        let Some(range) = self.section(&target, heading) else {
            return Ok(Step::AsWritten);
        };
        let frame = (target.id, heading.map(name_key));
        if stack.contains(&frame) {
            return Ok(Step::Marker(EMBED_CYCLE_MARKER));
        }
        if stack.len() > self.options.max_depth {
            return Ok(Step::Marker(EMBED_DEPTH_MARKER));
        }
        self.embeds_left -= 1;
        Ok(Step::Expand {
            note: target,
            range,
            frame,
        })
    }

    /// Takes up to `len` bytes of the byte budget; returns how many it got
    /// (fewer when the budget runs out, which is then reached).
    pub(crate) fn take_bytes(&mut self, len: usize) -> usize {
        if len <= self.bytes_left {
            self.bytes_left -= len;
            return len;
        }
        let got = self.bytes_left;
        self.bytes_left = 0;
        self.limit_reached = true;
        got
    }
}

/// Expanding Markdown: the embedder and the embeds of each embedded text.
struct Ctx<'v, F> {
    embedder: Embedder<'v, F>,
    /// (note, heading key) → the embeds in the text to embed.
    links: HashMap<Frame, Rc<Vec<Link>>>,
}

impl<F, E> Ctx<'_, F>
where
    F: FnMut(&str, &str) -> Result<Option<Note>, E>,
{
    /// The embeds of `note.body[range]`, parsed once per rendering.
    fn links(&mut self, note: &Note, range: &Range<usize>, frame: &Frame) -> Rc<Vec<Link>> {
        if let Some(links) = self.links.get(frame) {
            return Rc::clone(links);
        }
        let links: Rc<Vec<Link>> = Rc::new(
            parse(&note.body[range.clone()])
                .links
                .into_iter()
                .filter(|l| l.embed)
                .collect(),
        );
        self.links.insert(frame.clone(), Rc::clone(&links));
        links
    }

    /// Copies text of the rendering: the top note's own in full, embedded
    /// text within the byte budget.
    fn copy(&mut self, out: &mut String, text: &str, nested: bool) {
        if !nested {
            out.push_str(text);
            return;
        }
        let budget = &mut self.embedder;
        if text.len() <= budget.bytes_left {
            budget.bytes_left -= text.len();
            out.push_str(text);
            return;
        }
        let mut end = budget.bytes_left;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[..end]);
        budget.bytes_left = 0;
        if !budget.limit_reached {
            out.push(' ');
            out.push_str(EMBED_LIMIT_MARKER);
        }
        budget.limit_reached = true;
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
        stack: &mut Vec<Frame>,
        out: &mut String,
        nested: bool,
    ) -> Result<(), E> {
        let mut copied = 0;
        for link in links {
            if nested && self.embedder.bytes_left == 0 {
                // The embedded text was cut where the bytes ran out.
                return Ok(());
            }
            let original = &markdown[link.range.clone()];
            self.copy(out, &markdown[copied..link.range.start], nested);
            copied = link.range.end;

            match self.embedder.step(current, link, stack)? {
                Step::AsWritten => self.copy(out, original, nested),
                Step::Marker(marker) => self.marker(out, original, marker, nested),
                Step::Expand { note, range, frame } => {
                    let inner_links = self.links(&note, &range, &frame);
                    stack.push(frame);
                    let mut inner = String::new();
                    let content = &note.body[range];
                    let result = self.render(&note, content, &inner_links, stack, &mut inner, true);
                    stack.pop();
                    result?;
                    out.push_str(inner.trim_end_matches(['\n', '\r']));
                }
            }
        }
        self.copy(out, &markdown[copied..], nested);
        Ok(())
    }
}
