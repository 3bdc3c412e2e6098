//! A note as a Markdown file (the Obsidian vault form): YAML front matter
//! with the note's metadata, then the body. The file name's stem is the
//! title. Pure helpers: reading and writing files is the store's job.

use serde::Serialize;
use serde_norway::Value;

use super::parse::{parse, split_front_matter, FrontMatterError};
use super::{Note, NoteId, Visibility};
use crate::Fingerprint;

/// Why a Markdown file is not a note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteFileError {
    /// The front matter is malformed.
    #[error(transparent)]
    FrontMatter(#[from] FrontMatterError),
    /// A field has the wrong type or value.
    #[error("front matter field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither the file name nor the front matter gives a title.
    #[error("the note has no title")]
    NoTitle,
}

/// What a file without Omegi's own front matter fields gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteDefaults {
    /// Author when the file has no `author`.
    pub author: String,
    /// Visibility when the file has no `visibility`.
    pub visibility: Visibility,
    /// Creation and update time (ns since the Unix epoch) when absent.
    pub now_ns: u64,
}

#[derive(Serialize)]
struct FileMeta<'a> {
    id: String,
    title: &'a str,
    author: &'a str,
    visibility: Visibility,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    aliases: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    issues: &'a [Fingerprint],
    created: u64,
    updated: u64,
    revision: u64,
}

/// The note as a Markdown file: front matter with `id`, `title`, `author`,
/// `visibility`, `tags`, `aliases`, `issues`, `created`, `updated` and
/// `revision`, then the body unchanged. [`note_from_markdown_file`] reads it
/// back to an equal note.
pub fn note_to_markdown_file(note: &Note) -> String {
    let meta = FileMeta {
        id: note.id.to_string(),
        title: &note.title,
        author: &note.author,
        visibility: note.visibility,
        tags: &note.tags,
        aliases: &note.aliases,
        issues: &note.issues,
        created: note.created_ns,
        updated: note.updated_ns,
        revision: note.revision,
    };
    // Strings, integers and lists of strings: serialization cannot fail.
    let yaml = serde_norway::to_string(&meta).expect("note metadata always serializes to YAML");
    let mut out = String::with_capacity(yaml.len() + note.body.len() + 8);
    out.push_str("---\n");
    out.push_str(&yaml);
    if !yaml.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("---\n");
    out.push_str(&note.body);
    out
}

fn invalid(field: &'static str, reason: impl Into<String>) -> NoteFileError {
    NoteFileError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// Reads a Markdown file as a note. The title is the front matter's `title`
/// or else `path_stem` (the file name without `.md`); `tags` and `aliases`
/// follow the Obsidian forms (list or single string); Omegi's own fields
/// (see [`note_to_markdown_file`]) are read when present, `defaults` and a
/// fresh id fill the rest. The body is the text after the front matter.
///
/// Unlike [`parse()`](super::parse()), which ignores malformed front matter,
/// this fails on it, so that an import never drops metadata silently.
pub fn note_from_markdown_file(
    path_stem: &str,
    text: &str,
    defaults: &NoteDefaults,
) -> Result<Note, NoteFileError> {
    let (body, map) = match split_front_matter(text) {
        Some((yaml, start)) => {
            let parsed = parse(&text[..start]);
            if let Some(e) = parsed.front_matter_error {
                return Err(e.into());
            }
            let map = match serde_norway::from_str::<Value>(yaml) {
                Ok(Value::Mapping(map)) => Some((map, parsed.front_matter)),
                _ => None,
            };
            (&text[start..], map)
        }
        None => (text, None),
    };
    let mut note = Note::new(
        NoteId::now_v7(),
        defaults.author.clone(),
        path_stem.trim(),
        body,
        defaults.now_ns,
    );
    note.visibility = defaults.visibility;
    let Some((map, fm)) = map else {
        return finish(note);
    };
    note.tags = fm.tags;
    note.aliases = fm.aliases;
    let string = |field: &'static str| -> Result<Option<String>, NoteFileError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(field, "expected a string")),
        }
    };
    let number = |field: &'static str| -> Result<Option<u64>, NoteFileError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(field, "expected a non-negative integer")),
            Some(_) => Err(invalid(field, "expected a non-negative integer")),
        }
    };
    if let Some(id) = string("id")? {
        note.id = id
            .parse()
            .map_err(|e: uuid::Error| invalid("id", e.to_string()))?;
    }
    if let Some(title) = string("title")? {
        note.title = title.trim().to_string();
    }
    if let Some(author) = string("author")? {
        note.author = author;
    }
    if let Some(v) = string("visibility")? {
        note.visibility = match v.as_str() {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            _ => return Err(invalid("visibility", "expected `public` or `private`")),
        };
    }
    match map.get("issues") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::String(s) => note.issues.push(Fingerprint(s.clone())),
                    _ => return Err(invalid("issues", "expected a list of fingerprints")),
                }
            }
        }
        Some(Value::String(s)) => note.issues.push(Fingerprint(s.clone())),
        Some(_) => return Err(invalid("issues", "expected a list of fingerprints")),
    }
    if let Some(t) = number("created")? {
        note.created_ns = t;
        note.updated_ns = t;
    }
    if let Some(t) = number("updated")? {
        note.updated_ns = t;
    }
    if let Some(r) = number("revision")? {
        note.revision = r;
    }
    finish(note)
}

fn finish(note: Note) -> Result<Note, NoteFileError> {
    if note.title.is_empty() {
        Err(NoteFileError::NoTitle)
    } else {
        Ok(note)
    }
}

/// Longest file stem [`file_stem`] gives, in bytes.
pub const MAX_STEM: usize = 120;

/// A file name stem for a title (or an author, for a folder): characters
/// that file systems refuse become `-`, leading and trailing dots and
/// spaces go, names Windows reserves get a `_`, and the stem is cut to
/// [`MAX_STEM`] bytes.
pub fn file_stem(title: &str) -> String {
    let mut s: String = title
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '-'
            } else {
                c
            }
        })
        .collect();
    if s.len() > MAX_STEM {
        let mut cut = MAX_STEM;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    let s = s.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if s.is_empty() {
        return "untitled".into();
    }
    let upper = s.to_ascii_uppercase();
    let base = upper.split('.').next().unwrap_or("");
    let reserved = matches!(base, "CON" | "PRN" | "AUX" | "NUL")
        || ((base.starts_with("COM") || base.starts_with("LPT"))
            && base.len() == 4
            && base.as_bytes()[3].is_ascii_digit());
    if reserved {
        format!("{s}_")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_names() {
        assert_eq!(
            file_stem("Payment: timeout / retry?"),
            "Payment- timeout - retry-"
        );
        assert_eq!(file_stem("  ..  "), "untitled");
        assert_eq!(file_stem("con"), "con_");
        assert_eq!(file_stem("COM1.txt"), "COM1.txt_");
        assert_eq!(file_stem("결제 서비스"), "결제 서비스");
        let long = "가".repeat(100);
        assert!(file_stem(&long).len() <= MAX_STEM);
    }
}
