//! What one note may hold: its size, title length, and how many links,
//! tags and aliases. A store checks a note against its [`NoteLimits`]
//! before it writes it (create, update, import), so that every later read
//! of the note (parse, graph, embeds, search) works on bounded input.

use super::parse::parse;
use super::{merge_names, Note};

/// The bounds of one note; [`NoteLimits::default`] and the setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoteLimits {
    /// Bytes of the body (Markdown, front matter included). Default 1 MiB.
    pub body_bytes: usize,
    /// Characters of the title. Default 256.
    pub title_chars: usize,
    /// Links and embeds in the body. Default 1,000.
    pub links: usize,
    /// Distinct tags: the note's own, its front matter's and the body's
    /// inline tags together. Default 100.
    pub tags: usize,
    /// Distinct aliases: the note's own and its front matter's. Default 50.
    pub aliases: usize,
    /// Bytes of the folder path. Default 512.
    pub folder_bytes: usize,
}

impl Default for NoteLimits {
    fn default() -> Self {
        NoteLimits {
            body_bytes: 1024 * 1024,
            title_chars: 256,
            links: 1000,
            tags: 100,
            aliases: 50,
            folder_bytes: 512,
        }
    }
}

/// A note over one of its [`NoteLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteLimitError {
    /// The body is larger than [`NoteLimits::body_bytes`].
    #[error("the note is {bytes} bytes, more than the {limit} a note may have")]
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The title is longer than [`NoteLimits::title_chars`].
    #[error("the title is {chars} characters, more than the {limit} a title may have")]
    TitleTooLong {
        /// The title's length.
        chars: usize,
        /// The limit.
        limit: usize,
    },
    /// A folder path longer than the limit.
    #[error("the folder is {bytes} bytes, more than the {limit} a folder may have")]
    FolderTooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// More links, tags or aliases than the limits allow.
    #[error("the note has {count} {what}, more than the {limit} a note may have")]
    TooMany {
        /// `links`, `tags` or `aliases`.
        what: &'static str,
        /// How many the note has.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl NoteLimitError {
    /// Whether the note is refused for its size (HTTP 413) rather than for
    /// what it holds (400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, NoteLimitError::TooLarge { .. })
    }
}

impl NoteLimits {
    /// Sets [`body_bytes`](Self::body_bytes).
    pub fn body_bytes(mut self, bytes: usize) -> Self {
        self.body_bytes = bytes;
        self
    }

    /// Sets [`title_chars`](Self::title_chars).
    pub fn title_chars(mut self, chars: usize) -> Self {
        self.title_chars = chars;
        self
    }

    /// Sets [`links`](Self::links).
    pub fn links(mut self, links: usize) -> Self {
        self.links = links;
        self
    }

    /// Sets [`tags`](Self::tags).
    pub fn tags(mut self, tags: usize) -> Self {
        self.tags = tags;
        self
    }

    /// Sets [`folder_bytes`](Self::folder_bytes).
    pub fn folder_bytes(mut self, bytes: usize) -> Self {
        self.folder_bytes = bytes;
        self
    }

    /// Sets [`aliases`](Self::aliases).
    pub fn aliases(mut self, aliases: usize) -> Self {
        self.aliases = aliases;
        self
    }

    /// Checks `note` against the limits: the sizes first, so that an
    /// oversized body is refused before it is parsed.
    ///
    /// ```
    /// use omegi_core::note::{Note, NoteId, NoteLimits, NoteLimitError};
    ///
    /// let limits = NoteLimits::default().links(2);
    /// let ok = Note::new(NoteId::now_v7(), "kim", "Runbook", "[[A]] and [[B]]", 1);
    /// assert_eq!(limits.check(&ok), Ok(()));
    /// let over = Note::new(NoteId::now_v7(), "kim", "Runbook", "[[A]] [[B]] ![[C]]", 1);
    /// assert!(matches!(limits.check(&over), Err(NoteLimitError::TooMany { what: "links", count: 3, .. })));
    /// ```
    pub fn check(&self, note: &Note) -> Result<(), NoteLimitError> {
        if note.body.len() > self.body_bytes {
            return Err(NoteLimitError::TooLarge {
                bytes: note.body.len(),
                limit: self.body_bytes,
            });
        }
        if note.title.chars().nth(self.title_chars).is_some() {
            return Err(NoteLimitError::TitleTooLong {
                chars: note.title.chars().count(),
                limit: self.title_chars,
            });
        }
        // Lists given with the note are counted before any parsing.
        if note.folder.len() > self.folder_bytes {
            return Err(NoteLimitError::FolderTooLong {
                bytes: note.folder.len(),
                limit: self.folder_bytes,
            });
        }
        let many = |what, count, limit| {
            if count > limit {
                Err(NoteLimitError::TooMany { what, count, limit })
            } else {
                Ok(())
            }
        };
        many("tags", note.tags.len(), self.tags)?;
        many("aliases", note.aliases.len(), self.aliases)?;
        let parsed = parse(&note.body);
        many("links", parsed.links.len(), self.links)?;
        let tags = merge_names(
            note.tags
                .iter()
                .chain(&parsed.front_matter.tags)
                .chain(&parsed.tags),
        );
        many("tags", tags.len(), self.tags)?;
        let aliases = merge_names(note.aliases.iter().chain(&parsed.front_matter.aliases));
        many("aliases", aliases.len(), self.aliases)
    }
}
