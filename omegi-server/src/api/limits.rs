//! The limits of the REST API that `omegi serve` takes as flags (and
//! environment variables), documented in the `## Limits` table of
//! `API.md`:
//!
//! - [`ReadLimits`] (`--read-*`): how much one read answer shows. What was
//!   stored can be anything a client sent; what is read back is cut to
//!   these limits, with a marker where it was cut: a text ends with `…`, a
//!   rendering ends with a line `… N more spans not shown`, and the
//!   answers of the trace and flow endpoints say `"truncated": true`.
//! - [`NoteLimitFlags`] (`--note-*`, `--embed-*`, `--attachment-*`): what
//!   one note and its attached files may hold, and how far its embeds are
//!   expanded.

use omegi_core::flow::ViewLimits;
use omegi_core::note::{AttachmentLimits, EmbedOptions, NoteLimits};

/// The read limits of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct ReadLimits {
    /// Lines of a waterfall, raw log or flow summary, and spans or hops
    /// listed in one trace or flow answer.
    #[arg(long = "read-lines", env = "OMEGI_READ_LINES", default_value_t = 500)]
    pub lines: usize,
    /// Characters of a name in a rendered column (service, span name,
    /// waterfall label).
    #[arg(
        long = "read-label-chars",
        env = "OMEGI_READ_LABEL_CHARS",
        default_value_t = 80
    )]
    pub label_chars: usize,
    /// Characters of one text in an answer: a message, an attribute value,
    /// a cause.
    #[arg(
        long = "read-text-chars",
        env = "OMEGI_READ_TEXT_CHARS",
        default_value_t = 1024
    )]
    pub text_chars: usize,
    /// Entries of one list inside a record: attributes, events, causes,
    /// span frames, breadcrumbs; services of an issue in a list.
    #[arg(long = "read-items", env = "OMEGI_READ_ITEMS", default_value_t = 32)]
    pub items: usize,
    /// Bytes of one part of a trace or flow answer: the waterfall, the raw
    /// log, the spans, the flows.
    #[arg(
        long = "read-bytes",
        env = "OMEGI_READ_BYTES",
        default_value_t = 1024 * 1024
    )]
    pub bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        let v = ViewLimits::default();
        ReadLimits {
            lines: v.lines,
            label_chars: v.label_chars,
            text_chars: v.text_chars,
            items: v.items,
            bytes: v.bytes,
        }
    }
}

impl ReadLimits {
    /// The same limits for the renderings of `omegi-core`.
    pub fn view(&self) -> ViewLimits {
        ViewLimits::default()
            .lines(self.lines)
            .label_chars(self.label_chars)
            .text_chars(self.text_chars)
            .items(self.items)
            .bytes(self.bytes)
    }
}

/// What one note may hold and how far its embeds are expanded, as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct NoteLimitFlags {
    /// Bytes of a note's body; a larger note is refused with 413.
    #[arg(
        long = "note-max-bytes",
        env = "OMEGI_NOTE_MAX_BYTES",
        default_value_t = NoteLimits::default().body_bytes
    )]
    pub body_bytes: usize,
    /// Characters of a note's title.
    #[arg(
        long = "note-max-title-chars",
        env = "OMEGI_NOTE_MAX_TITLE_CHARS",
        default_value_t = NoteLimits::default().title_chars
    )]
    pub title_chars: usize,
    /// Links and embeds in one note.
    #[arg(
        long = "note-max-links",
        env = "OMEGI_NOTE_MAX_LINKS",
        default_value_t = NoteLimits::default().links
    )]
    pub links: usize,
    /// Tags of one note (its own, front matter and inline together).
    #[arg(
        long = "note-max-tags",
        env = "OMEGI_NOTE_MAX_TAGS",
        default_value_t = NoteLimits::default().tags
    )]
    pub tags: usize,
    /// Aliases of one note (its own and front matter together).
    #[arg(
        long = "note-max-aliases",
        env = "OMEGI_NOTE_MAX_ALIASES",
        default_value_t = NoteLimits::default().aliases
    )]
    pub aliases: usize,
    /// Bytes of a note's folder path.
    #[arg(
        long = "note-max-folder-bytes",
        env = "OMEGI_NOTE_MAX_FOLDER_BYTES",
        default_value_t = NoteLimits::default().folder_bytes
    )]
    pub folder_bytes: usize,
    /// Bytes of one file attached to a note; a larger upload is refused
    /// with 413 before its body is read.
    #[arg(
        long = "attachment-max-bytes",
        env = "OMEGI_ATTACHMENT_MAX_BYTES",
        default_value_t = AttachmentLimits::default().file_bytes
    )]
    pub attachment_bytes: usize,
    /// Bytes of all files attached to one note.
    #[arg(
        long = "attachment-max-note-bytes",
        env = "OMEGI_ATTACHMENT_MAX_NOTE_BYTES",
        default_value_t = AttachmentLimits::default().note_bytes
    )]
    pub attachment_note_bytes: usize,
    /// Files attached to one note.
    #[arg(
        long = "attachment-max-files",
        env = "OMEGI_ATTACHMENT_MAX_FILES",
        default_value_t = AttachmentLimits::default().files_per_note
    )]
    pub attachment_files: usize,
    /// Embeds one rendering of a note expands in all.
    #[arg(
        long = "embed-max-count",
        env = "OMEGI_EMBED_MAX_COUNT",
        default_value_t = EmbedOptions::default().max_embeds
    )]
    pub embeds: usize,
    /// Bytes of embedded text one rendering adds to the note's own.
    #[arg(
        long = "embed-max-bytes",
        env = "OMEGI_EMBED_MAX_BYTES",
        default_value_t = EmbedOptions::default().max_bytes
    )]
    pub embed_bytes: usize,
}

impl Default for NoteLimitFlags {
    fn default() -> Self {
        NoteLimitFlags::from_limits(NoteLimits::default(), EmbedOptions::default())
            .with_attachments(AttachmentLimits::default())
    }
}

impl NoteLimitFlags {
    /// Flags holding these limits.
    pub fn from_limits(notes: NoteLimits, embeds: EmbedOptions) -> Self {
        NoteLimitFlags {
            body_bytes: notes.body_bytes,
            title_chars: notes.title_chars,
            links: notes.links,
            tags: notes.tags,
            aliases: notes.aliases,
            folder_bytes: notes.folder_bytes,
            attachment_bytes: AttachmentLimits::default().file_bytes,
            attachment_note_bytes: AttachmentLimits::default().note_bytes,
            attachment_files: AttachmentLimits::default().files_per_note,
            embeds: embeds.max_embeds,
            embed_bytes: embeds.max_bytes,
        }
    }

    /// These flags with these attachment limits.
    pub fn with_attachments(mut self, limits: AttachmentLimits) -> Self {
        self.attachment_bytes = limits.file_bytes;
        self.attachment_note_bytes = limits.note_bytes;
        self.attachment_files = limits.files_per_note;
        self
    }

    /// The attachment limits of the store.
    pub fn attachments(&self) -> AttachmentLimits {
        AttachmentLimits::default()
            .file_bytes(self.attachment_bytes)
            .note_bytes(self.attachment_note_bytes)
            .files_per_note(self.attachment_files)
    }

    /// The note limits of the store.
    pub fn notes(&self) -> NoteLimits {
        NoteLimits::default()
            .body_bytes(self.body_bytes)
            .title_chars(self.title_chars)
            .links(self.links)
            .tags(self.tags)
            .aliases(self.aliases)
            .folder_bytes(self.folder_bytes)
    }

    /// The embed options of the store.
    pub fn embeds(&self) -> EmbedOptions {
        EmbedOptions::default()
            .max_embeds(self.embeds)
            .max_bytes(self.embed_bytes)
    }
}
