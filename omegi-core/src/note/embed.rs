//! Rendering a note with its embeds (`![[Note]]`, `![[Note#Heading]]`)
//! expanded inline.

use super::parse::{parse, split_front_matter};
use super::resolve::{name_key, Resolver};
use super::{Note, NoteId};

/// Written after an embed that would include a note already being rendered
/// around it; the embed becomes a plain link followed by this marker.
pub const EMBED_CYCLE_MARKER: &str = "*(embed cycle)*";

/// Written after an embed nested deeper than [`EmbedOptions::max_depth`];
/// the embed becomes a plain link followed by this marker.
pub const EMBED_DEPTH_MARKER: &str = "*(embed depth limit)*";

/// Options of [`render_embeds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// How many embeds deep to expand (0 expands none).
    pub max_depth: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions { max_depth: 4 }
    }
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
    markdown.get(start..end)
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
///   [`EMBED_DEPTH_MARKER`].
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
    let mut out = String::with_capacity(note.body.len());
    let mut stack = vec![(note.id, None)];
    let ctx = Ctx {
        resolver,
        viewer,
        options,
    };
    ctx.render(note, &note.body, &mut stack, &mut out);
    out
}

struct Ctx<'r, 'a> {
    resolver: &'r Resolver<'a>,
    viewer: &'r str,
    options: EmbedOptions,
}

impl<'a> Ctx<'_, 'a> {
    fn render(
        &self,
        current: &Note,
        markdown: &str,
        stack: &mut Vec<(NoteId, Option<String>)>,
        out: &mut String,
    ) {
        let parsed = parse(markdown);
        let mut copied = 0;
        for link in parsed.links.iter().filter(|l| l.embed) {
            let original = &markdown[link.range.clone()];
            out.push_str(&markdown[copied..link.range.start]);
            copied = link.range.end;

            let target: Option<&Note> = if link.target.is_empty() {
                Some(current)
            } else {
                self.resolver.resolve(&link.target).map(|r| r.note)
            };
            let Some(target) = target.filter(|t| t.visible_to(self.viewer)) else {
                out.push_str(original);
                continue;
            };
            let body = match split_front_matter(&target.body) {
                Some((_, start)) => &target.body[start..],
                None => &target.body[..],
            };
            let content = match &link.heading {
                Some(h) if !h.is_empty() => match section(body, h) {
                    Some(s) => s,
                    None => {
                        out.push_str(original);
                        continue;
                    }
                },
                _ => body,
            };
            let key = (
                target.id,
                link.heading
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(name_key),
            );
            let marker = if stack.contains(&key) {
                Some(EMBED_CYCLE_MARKER)
            } else if stack.len() > self.options.max_depth {
                Some(EMBED_DEPTH_MARKER)
            } else {
                None
            };
            if let Some(marker) = marker {
                out.push_str(&original[1..]);
                out.push(' ');
                out.push_str(marker);
                continue;
            }
            stack.push(key);
            let mut inner = String::with_capacity(content.len());
            self.render(target, content, stack, &mut inner);
            stack.pop();
            out.push_str(inner.trim_end_matches(['\n', '\r']));
        }
        out.push_str(&markdown[copied..]);
    }
}
