//! Link resolution and rename.
//!
//! A link target names a note by its title or one of its aliases, compared
//! case-insensitively after trimming (a trailing `.md` is ignored, as in a
//! link to a file). Titles win over aliases; when two notes share a name the
//! older one (by creation time, then id) wins, so resolution is
//! deterministic. A target that names no note stays an unresolved link.

use std::collections::HashMap;

use super::{parse, Note, NoteId};

/// How a link target matched its note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// The note's title.
    Title,
    /// One of the note's aliases.
    Alias,
}

/// A resolved link target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution<'a> {
    /// The note the target names.
    pub note: &'a Note,
    /// Whether it matched the title or an alias.
    pub via: Via,
}

/// Why a rename was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenameError {
    /// The new title is empty or has a character that would break `[[...]]`
    /// links (`[`, `]`, `|`, `#`, `^` or a line break).
    #[error("invalid note title {0:?}: it must be non-empty and contain none of [ ] | # ^ or line breaks")]
    InvalidTitle(String),
    /// No note has the given id.
    #[error("no note with id {0}")]
    UnknownNote(NoteId),
}

/// Resolves link targets against a set of notes.
#[derive(Debug, Clone)]
pub struct Resolver<'a> {
    notes: Vec<&'a Note>,
    by_id: HashMap<NoteId, u32>,
    names: HashMap<String, (u32, Via)>,
}

/// The lookup key of a note name or link target: trimmed, lowercase, without
/// a trailing `.md`. Two names match when their keys are equal.
pub fn name_key(name: &str) -> String {
    let name = name.trim();
    let name = match name.len().checked_sub(3) {
        Some(cut) if name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(".md") => {
            &name[..cut]
        }
        _ => name,
    };
    name.trim().to_lowercase()
}

impl<'a> Resolver<'a> {
    /// A resolver over all of `notes` (aliases include those in each body's
    /// front matter).
    pub fn new(notes: impl IntoIterator<Item = &'a Note>) -> Resolver<'a> {
        let notes: Vec<&'a Note> = notes.into_iter().collect();
        let aliases: Vec<Vec<String>> = notes.iter().map(|n| n.all_aliases()).collect();
        Resolver::with_aliases(notes, &aliases)
    }

    /// A resolver over the notes `viewer` may see: links to anything else
    /// stay unresolved for them.
    pub fn for_viewer(notes: impl IntoIterator<Item = &'a Note>, viewer: &str) -> Resolver<'a> {
        Resolver::new(notes.into_iter().filter(|n| n.visible_to(viewer)))
    }

    /// Builds from notes and their already known aliases (same order).
    pub(crate) fn with_aliases(notes: Vec<&'a Note>, aliases: &[Vec<String>]) -> Resolver<'a> {
        let mut order: Vec<u32> = (0..notes.len() as u32).collect();
        order.sort_by_key(|&i| (notes[i as usize].created_ns, notes[i as usize].id));
        let mut names = HashMap::with_capacity(notes.len() * 2);
        for &i in &order {
            let key = name_key(&notes[i as usize].title);
            if !key.is_empty() {
                names.entry(key).or_insert((i, Via::Title));
            }
        }
        for &i in &order {
            for alias in aliases.get(i as usize).into_iter().flatten() {
                let key = name_key(alias);
                if !key.is_empty() {
                    names.entry(key).or_insert((i, Via::Alias));
                }
            }
        }
        let by_id = notes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id, i as u32))
            .collect();
        Resolver {
            notes,
            by_id,
            names,
        }
    }

    /// The note a link target names, if any.
    pub fn resolve(&self, target: &str) -> Option<Resolution<'a>> {
        self.resolve_index(target).map(|(i, via)| Resolution {
            note: self.notes[i as usize],
            via,
        })
    }

    /// Index (in [`Resolver::notes`]) of the note a target names.
    pub(crate) fn resolve_index(&self, target: &str) -> Option<(u32, Via)> {
        self.names.get(&name_key(target)).copied()
    }

    /// The note with this id, if the resolver knows it.
    pub fn get(&self, id: NoteId) -> Option<&'a Note> {
        self.by_id.get(&id).map(|&i| self.notes[i as usize])
    }

    /// The notes this resolver covers.
    pub fn notes(&self) -> &[&'a Note] {
        &self.notes
    }
}

/// Rewrites the links in `body` whose target is `old_name`
/// (case-insensitively) to point to `new_name`, keeping `#heading`, `|shown`
/// and the embed `!`. Links in code are untouched. Returns `None` when no
/// link changed.
///
/// ```
/// let body = "See [[Old]], [[old#Fix|the fix]], ![[OLD]] and `[[Old]]`.";
/// let out = omegi_core::note::rename_links(body, "Old", "New").unwrap();
/// assert_eq!(out, "See [[New]], [[New#Fix|the fix]], ![[New]] and `[[Old]]`.");
/// ```
pub fn rename_links(body: &str, old_name: &str, new_name: &str) -> Option<String> {
    let old = name_key(old_name);
    let parsed = parse::parse(body);
    rewrite(
        body,
        parsed
            .links
            .iter()
            .filter(|l| name_key(&l.target) == old)
            .map(|l| l.target_range.clone()),
        new_name,
    )
}

fn rewrite(
    body: &str,
    ranges: impl Iterator<Item = std::ops::Range<usize>>,
    new_name: &str,
) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut copied = 0;
    let mut changed = false;
    for range in ranges {
        if range.start < copied || range.end > body.len() {
            continue;
        }
        out.push_str(&body[copied..range.start]);
        out.push_str(new_name);
        copied = range.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

/// Whether `title` can be the target of a `[[...]]` link.
pub(crate) fn valid_title(title: &str) -> bool {
    !title.trim().is_empty() && !title.contains(['[', ']', '|', '#', '^', '\n', '\r'])
}

/// Plans the rename of note `id` to `new_title`: returns the new bodies of
/// every note (including the renamed one) whose links named it by its
/// title. Links that reach it through an alias stay as they are, and links
/// whose name resolves to another note are left alone. The caller stores the
/// bodies and the new title.
///
/// Resolution runs over all `notes` regardless of visibility, so that no
/// link anywhere is left dangling.
pub fn rename_note(
    notes: &[Note],
    id: NoteId,
    new_title: &str,
) -> Result<Vec<(NoteId, String)>, RenameError> {
    if !valid_title(new_title) {
        return Err(RenameError::InvalidTitle(new_title.to_string()));
    }
    let resolver = Resolver::new(notes);
    if resolver.get(id).is_none() {
        return Err(RenameError::UnknownNote(id));
    }
    let new_title = new_title.trim();
    let mut changes = Vec::new();
    for note in notes {
        let parsed = parse::parse(&note.body);
        let ranges = parsed.links.iter().filter_map(|link| {
            let r = resolver.resolve(&link.target)?;
            (r.note.id == id && r.via == Via::Title).then(|| link.target_range.clone())
        });
        if let Some(body) = rewrite(&note.body, ranges, new_title) {
            changes.push((note.id, body));
        }
    }
    Ok(changes)
}
