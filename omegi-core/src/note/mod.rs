//! Error notes: Markdown in the Obsidian dialect that developers write about
//! errors, the links between them and the graph those links form.
//!
//! - [`Note`]: one note with its metadata (author, visibility, linked issues).
//! - [`parse()`] → [`ParsedNote`]: wiki links (in tables too, with `\|`),
//!   embeds, tags, block markers (`^id`) and references (`[[Note#^id]]`),
//!   callouts (`> [!type] Title`) and front matter, read from the
//!   pulldown-cmark event stream so that code spans and code blocks never
//!   yield links.
//! - [`Resolver`]: link targets → notes (title or alias, case-insensitive,
//!   `[[Folder/Note]]` by the note's vault folder; colliding names resolve
//!   as Obsidian resolves them, by [`best_match`]); [`rename_note`] rewrites
//!   the links to a renamed or moved note, as far as its author may see and
//!   as each link's own author resolves it.
//! - [`NoteGraph`]: backlinks, unlinked mentions, local graphs, paths,
//!   components, orphans; exported as JSON, Graphviz DOT or Mermaid.
//! - [`render_embeds`] and [`expand_embeds`]: a note's Markdown with its
//!   `![[...]]` embeds expanded, within a budget ([`EmbedOptions`]).
//! - [`to_html`] and [`to_html_with`] → [`NoteHtml`]: a note as safe HTML for
//!   one viewer, from the same parse, resolution and embed budget: wiki
//!   links to the notes they resolve to, tags as tag links, embeds
//!   expanded, code left alone, raw HTML and unsafe URLs never passed on
//!   ([`HtmlOptions`]).
//! - [`MentionNames`]: the names by which a note's prose mentions another
//!   (its unlinked mentions).
//! - [`AttachmentLimits`], [`attachment_name`], [`content_type`]: files
//!   attached to a note, their names and the content type read from their
//!   bytes (only proven PNG, JPEG, GIF and WebP images are ever inline).
//! - [`NoteLimits`]: what one note may hold (size, title, links, tags,
//!   aliases), checked before a note is stored.
//!
//! Everything here is visibility-aware: a viewer sees public notes and their
//! own private notes, and nothing else leaks through links, embeds or mentions.
//!
//! ```
//! use omegi_core::note::{parse, Note, NoteGraph, NoteId, Visibility};
//!
//! let parsed = parse("See [[Payment timeout|the timeout note]] #payments/stripe");
//! assert_eq!(parsed.links[0].target, "Payment timeout");
//! assert_eq!(parsed.tags, ["payments/stripe"]);
//!
//! let a = Note::new(NoteId::now_v7(), "kim", "Payment timeout", "Retry with backoff.", 1);
//! let mut b = Note::new(NoteId::now_v7(), "lee", "Checkout 502", "Caused by [[payment timeout]].", 2);
//! b.visibility = Visibility::Public; // new notes are private
//! let graph = NoteGraph::build([&a, &b], "kim");
//! assert_eq!(graph.backlinks(a.id), vec![b.id]);
//! assert_eq!(NoteGraph::build([&a, &b], "park").len(), 1); // a is kim's, private
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Fingerprint;

mod attachment;
mod embed;
mod export;
mod file;
mod graph;
mod html;
mod limits;
mod parse;
mod resolve;

pub use attachment::{
    attachment_key, attachment_name, content_type, is_file_target, AttachmentError,
    AttachmentLimits, AttachmentOwners, ContentType,
};
pub use embed::{
    expand_embeds, render_embeds, section, EmbedOptions, Expanded, EMBED_CYCLE_MARKER,
    EMBED_DEPTH_MARKER, EMBED_LIMIT_MARKER,
};
pub use export::{to_dot, to_json, to_mermaid};
pub use file::{
    file_stem, note_from_markdown_file, note_to_markdown_file, NoteDefaults, NoteFileError,
    MAX_STEM,
};
pub use graph::{
    Direction, Edge, EdgeKind, LocalGraphOptions, MentionNames, Node, NodeKind, NoteGraph, Subgraph,
};
pub use html::{
    to_html, to_html_with, to_html_with_attachments, AttachmentRef, HtmlOptions, NoteHtml,
};
pub use limits::{NoteLimitError, NoteLimits};
pub use parse::{
    parse, split_front_matter, Block, Callout, Fold, FrontMatter, FrontMatterError, Heading, Link,
    ParsedNote,
};
pub use resolve::{
    best_match, name_key, normalize_folder, rename_edited_note, rename_links, rename_note,
    FolderError, LinkPath, NameMatch, RenameError, RenamePlan, Resolution, Resolver, Via,
};

/// The id of a note: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NoteId(pub Uuid);

impl NoteId {
    /// A fresh UUID v7 from the system clock and random bits.
    pub fn now_v7() -> NoteId {
        NoteId(Uuid::now_v7())
    }
}

impl fmt::Display for NoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for NoteId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(NoteId)
    }
}

/// Who may see a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only its author.
    #[default]
    Private,
    /// Everyone.
    Public,
}

/// An error note.
///
/// `tags` and `aliases` are the note's own metadata (what front matter holds
/// in a Markdown file); tags written inline in the body (`#tag`) are found by
/// [`parse()`] and merged by [`Note::all_tags`]. The body is Markdown; it may
/// itself start with front matter, whose tags and aliases then count too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Unique id (UUID v7).
    pub id: NoteId,
    /// User name or id of the author.
    pub author: String,
    /// Title; `[[Title]]` links resolve to it.
    pub title: String,
    /// The vault folder the note lives in: `/`-separated, without leading
    /// or trailing `/`; `""` at the top (see [`normalize_folder`]).
    /// `[[Folder/Title]]` links name the note by it, and it decides which
    /// note a plain `[[Title]]` resolves to when titles collide.
    #[serde(default)]
    pub folder: String,
    /// Markdown body.
    pub body: String,
    /// Tags without the leading `#`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Other names that `[[...]]` links resolve by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Who may see the note.
    #[serde(default)]
    pub visibility: Visibility,
    /// Issues (error fingerprints) the note is about.
    #[serde(default)]
    pub issues: Vec<Fingerprint>,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Last update time, nanoseconds since the Unix epoch.
    pub updated_ns: u64,
    /// Revision, incremented by every update (1 for a new note).
    pub revision: u64,
}

impl Note {
    /// A new private note at revision 1, created and updated at `now_ns`.
    pub fn new(
        id: NoteId,
        author: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
        now_ns: u64,
    ) -> Note {
        Note {
            id,
            author: author.into(),
            title: title.into(),
            folder: String::new(),
            body: body.into(),
            tags: Vec::new(),
            aliases: Vec::new(),
            visibility: Visibility::Private,
            issues: Vec::new(),
            created_ns: now_ns,
            updated_ns: now_ns,
            revision: 1,
        }
    }

    /// Whether `viewer` may see this note: it is public, or `viewer` wrote it.
    pub fn visible_to(&self, viewer: &str) -> bool {
        self.visibility == Visibility::Public || self.author == viewer
    }

    /// The note's path in a vault, without `.md`: `folder/title`, or the
    /// title at the top.
    pub fn path(&self) -> String {
        if self.folder.is_empty() {
            self.title.clone()
        } else {
            format!("{}/{}", self.folder, self.title)
        }
    }

    /// Parses the body (see [`parse()`]).
    pub fn parse(&self) -> ParsedNote {
        parse::parse(&self.body)
    }

    /// The note's tags, the body's front-matter tags and its inline tags,
    /// without duplicates (compared case-insensitively), first spelling kept.
    pub fn all_tags(&self) -> Vec<String> {
        let parsed = self.parse();
        merge_names(
            self.tags
                .iter()
                .chain(&parsed.front_matter.tags)
                .chain(&parsed.tags),
        )
    }

    /// The note's aliases and its body's front-matter aliases, without
    /// duplicates (case-insensitive).
    pub fn all_aliases(&self) -> Vec<String> {
        let parsed = self.parse();
        merge_names(self.aliases.iter().chain(&parsed.front_matter.aliases))
    }
}

/// Deduplicates names case-insensitively, keeping the first spelling and order.
pub(crate) fn merge_names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        if seen.insert(name.to_lowercase()) {
            out.push(name.clone());
        }
    }
    out
}
