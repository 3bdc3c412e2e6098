//! Files attached to notes: their names, limits and content types.
//!
//! An attachment belongs to one note and is named by a file name
//! (`screenshot.png`), which `![[screenshot.png]]` embeds. Its content type
//! is never taken from the sender: it is read from the bytes
//! ([`content_type`]), checked against the name's extension, and only a
//! few image types whose bytes prove them are ever shown inline. Anything
//! else, an `.png` that is really HTML among them, is stored as
//! `application/octet-stream` (or `text/plain` for text) and served for
//! download only.

/// What the files of one note may hold; checked before anything is
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachmentLimits {
    /// Bytes of one file. Default 10 MiB.
    pub file_bytes: usize,
    /// Bytes of all files of one note together. Default 50 MiB.
    pub note_bytes: usize,
    /// Files per note. Default 100.
    pub files_per_note: usize,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            file_bytes: 10 * 1024 * 1024,
            note_bytes: 50 * 1024 * 1024,
            files_per_note: 100,
        }
    }
}

impl AttachmentLimits {
    /// Sets [`file_bytes`](Self::file_bytes).
    pub fn file_bytes(mut self, bytes: usize) -> Self {
        self.file_bytes = bytes;
        self
    }

    /// Sets [`note_bytes`](Self::note_bytes).
    pub fn note_bytes(mut self, bytes: usize) -> Self {
        self.note_bytes = bytes;
        self
    }

    /// Sets [`files_per_note`](Self::files_per_note).
    pub fn files_per_note(mut self, files: usize) -> Self {
        self.files_per_note = files;
        self
    }

    /// Checks one more file of `bytes` for a note that holds `files` files
    /// of `held_bytes` already.
    pub fn check(
        &self,
        bytes: usize,
        files: usize,
        held_bytes: usize,
    ) -> Result<(), AttachmentError> {
        if bytes > self.file_bytes {
            return Err(AttachmentError::FileTooLarge {
                bytes,
                limit: self.file_bytes,
            });
        }
        if files >= self.files_per_note {
            return Err(AttachmentError::TooManyFiles {
                limit: self.files_per_note,
            });
        }
        if held_bytes.saturating_add(bytes) > self.note_bytes {
            return Err(AttachmentError::NoteFull {
                bytes: held_bytes.saturating_add(bytes),
                limit: self.note_bytes,
            });
        }
        Ok(())
    }
}

/// Why an attachment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The name is no file name an `![[...]]` embed can hold.
    #[error("invalid attachment name {0:?}: it must be a file name of at most 255 bytes, without / \\ [ ] | # ^ or control characters")]
    InvalidName(String),
    /// One file is larger than the limit.
    #[error("the file is {bytes} bytes, more than the {limit} an attachment may have")]
    FileTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The note's files would be larger together than the limit.
    #[error(
        "the note's attachments would be {bytes} bytes, more than the {limit} a note may hold"
    )]
    NoteFull {
        /// Their size with the new file.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The note has as many files as it may.
    #[error("the note has {limit} attachments, as many as a note may hold")]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
}

impl AttachmentError {
    /// Whether the refusal is about size (an HTTP 413).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            AttachmentError::FileTooLarge { .. } | AttachmentError::NoteFull { .. }
        )
    }
}

/// Checks an attachment's file name and returns it trimmed.
///
/// ```
/// use omegi_core::note::attachment_name;
/// assert_eq!(attachment_name(" shot 1.png ").unwrap(), "shot 1.png");
/// assert!(attachment_name("../etc/passwd").is_err());
/// assert!(attachment_name("a]].png").is_err());
/// ```
pub fn attachment_name(name: &str) -> Result<String, AttachmentError> {
    let trimmed = name.trim();
    let bad = trimmed.is_empty()
        || trimmed.len() > 255
        || trimmed == "."
        || trimmed == ".."
        || trimmed.starts_with('.')
        || trimmed
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '[' | ']' | '|' | '#' | '^'));
    if bad {
        return Err(AttachmentError::InvalidName(
            name.chars().take(64).collect(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// The lookup key of an attachment name: trimmed and lowercase (names
/// match as Obsidian matches file names on a case-insensitive disk).
pub fn attachment_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Whether a link target names a file rather than a note: its last path
/// segment has an extension (1 to 8 letters or digits) other than `md`.
/// A target that names a note by its title is a link to that note first;
/// this decides only what an unresolved target is.
///
/// ```
/// use omegi_core::note::is_file_target;
/// assert!(is_file_target("screenshot.png"));
/// assert!(is_file_target("logs/app.LOG"));
/// assert!(!is_file_target("Runbook.md"));
/// assert!(!is_file_target("Payment timeout"));
/// ```
pub fn is_file_target(target: &str) -> bool {
    let name = target.trim().rsplit('/').next().unwrap_or_default();
    match name.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=8).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && !ext.eq_ignore_ascii_case("md")
        }
        None => false,
    }
}

/// Which note a file of a vault belongs to, when a vault is imported: the
/// notes that embed or link to the file by name (`![[shot.png]]`,
/// `[[logs/app.log]]`), and of those the one in the file's own folder, else
/// the first by folder and title. One rule for every importer (the store's
/// vault import and `omegi notes import` over the API).
///
/// ```
/// use omegi_core::note::AttachmentOwners;
/// use omegi_core::{Note, NoteId};
///
/// let mut a = Note::new(NoteId::now_v7(), "ana", "Checkout 502", "![[trace.png]]", 0);
/// a.folder = "incidents".into();
/// let b = Note::new(NoteId::now_v7(), "ana", "Runbook", "See [[Trace.PNG]].", 0);
/// let notes = [a.clone(), b.clone()];
/// let owners = AttachmentOwners::of(&notes);
/// assert_eq!(owners.owner("incidents", "trace.png").map(|n| n.id), Some(a.id));
/// assert_eq!(owners.owner("", "trace.png").map(|n| n.id), Some(b.id));
/// assert!(owners.owner("", "other.png").is_none());
/// ```
#[derive(Debug)]
pub struct AttachmentOwners<'a> {
    by_name: std::collections::HashMap<String, Vec<&'a super::Note>>,
}

impl<'a> AttachmentOwners<'a> {
    /// The file names `notes` embed or link to, with the notes that name
    /// each (in order of folder and title).
    pub fn of(notes: &'a [super::Note]) -> Self {
        let mut by_path: Vec<&super::Note> = notes.iter().collect();
        by_path.sort_by(|a, b| (&a.folder, &a.title).cmp(&(&b.folder, &b.title)));
        let mut by_name: std::collections::HashMap<String, Vec<&super::Note>> =
            std::collections::HashMap::new();
        for note in by_path {
            for link in note.parse().links {
                if is_file_target(&link.target) {
                    let name = link.target.rsplit('/').next().unwrap_or_default();
                    let list = by_name.entry(attachment_key(name)).or_default();
                    if !list.iter().any(|n| n.id == note.id) {
                        list.push(note);
                    }
                }
            }
        }
        AttachmentOwners { by_name }
    }

    /// The note a file named `name` in the vault folder `folder` belongs
    /// to; `None` when no note names it.
    pub fn owner(&self, folder: &str, name: &str) -> Option<&'a super::Note> {
        let owners = self.by_name.get(&attachment_key(name))?;
        owners
            .iter()
            .find(|n| n.folder == folder)
            .or(owners.first())
            .copied()
    }
}

/// The content type an attachment is stored and served with, and whether
/// it may be shown inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType {
    /// The MIME type.
    pub mime: &'static str,
    /// Whether it is an image whose bytes prove its type (PNG, JPEG, GIF,
    /// WebP): the only files shown inline (`<img>`); every other file is
    /// served for download.
    pub inline_image: bool,
}

/// The content type of a file named `name` holding `bytes`: read from its
/// first bytes and checked against the name's extension. An image
/// extension whose bytes are no such image (HTML named `.png`), and any
/// HTML, SVG or other active content, is `application/octet-stream`;
/// `text/html` and `image/svg+xml` are never answered.
///
/// ```
/// use omegi_core::note::content_type;
/// let png = b"\x89PNG\r\n\x1a\n....";
/// assert_eq!(content_type("a.png", png).mime, "image/png");
/// assert!(content_type("a.png", png).inline_image);
/// let html = b"<html><script>alert(1)</script>";
/// assert_eq!(content_type("a.png", html).mime, "application/octet-stream");
/// assert!(!content_type("a.png", html).inline_image);
/// assert_eq!(content_type("run.log", b"ok\n").mime, "text/plain; charset=utf-8");
/// assert_eq!(content_type("a.svg", b"<svg/>").mime, "application/octet-stream");
/// ```
pub fn content_type(name: &str, bytes: &[u8]) -> ContentType {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let sniffed = sniff(bytes);
    let image = |mime| ContentType {
        mime,
        inline_image: true,
    };
    let download = |mime| ContentType {
        mime,
        inline_image: false,
    };
    match (ext.as_str(), sniffed) {
        ("png", Some(Sniffed::Png)) => image("image/png"),
        ("jpg" | "jpeg", Some(Sniffed::Jpeg)) => image("image/jpeg"),
        ("gif", Some(Sniffed::Gif)) => image("image/gif"),
        ("webp", Some(Sniffed::Webp)) => image("image/webp"),
        ("pdf", Some(Sniffed::Pdf)) => download("application/pdf"),
        ("txt" | "log" | "csv" | "json" | "md" | "yaml" | "yml" | "toml", None)
            if std::str::from_utf8(bytes).is_ok() && !looks_like_markup(bytes) =>
        {
            download("text/plain; charset=utf-8")
        }
        _ => download("application/octet-stream"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
}

/// The type the first bytes prove, by their signatures.
fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Sniffed::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Sniffed::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Sniffed::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Sniffed::Webp)
    } else if bytes.starts_with(b"%PDF-") {
        Some(Sniffed::Pdf)
    } else {
        None
    }
}

/// Whether text starts, after white space and a byte order mark, with `<`
/// (HTML, SVG, XML): such text is never served as text.
fn looks_like_markup(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disguised_files_are_never_images() {
        for (name, bytes) in [
            ("x.png", &b"<!doctype html><script>alert(1)</script>"[..]),
            ("x.jpg", b"\x89PNG\r\n\x1a\n"),
            ("x.gif", b"GIF8"),
            ("x.html", b"<html></html>"),
            ("x.svg", b"<svg onload=alert(1)>"),
            ("x.txt", b"  <html>"),
            ("x.txt", b"\xff\xfe"),
            ("noext", b"\x89PNG\r\n\x1a\n"),
        ] {
            let t = content_type(name, bytes);
            assert!(!t.inline_image, "{name}");
            assert!(
                !t.mime.contains("html") && !t.mime.contains("svg"),
                "{name}"
            );
        }
    }

    #[test]
    fn limits_count_files_and_bytes() {
        let l = AttachmentLimits::default()
            .file_bytes(10)
            .note_bytes(15)
            .files_per_note(2);
        assert!(l.check(10, 0, 0).is_ok());
        assert!(l.check(11, 0, 0).unwrap_err().is_too_large());
        assert!(l.check(6, 1, 10).unwrap_err().is_too_large());
        assert!(!l.check(1, 2, 0).unwrap_err().is_too_large());
    }
}
