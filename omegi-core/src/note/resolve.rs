//! Link resolution and rename.
//!
//! A link target names a note by its title or one of its aliases, compared
//! case-insensitively after trimming (a trailing `.md` is ignored, as in a
//! link to a file). Titles win over aliases; when two notes share a name the
//! older one (by creation time, then id) wins, so resolution is
//! deterministic. A target that names no note stays an unresolved link.

use std::collections::HashMap;

use super::{merge_names, parse, Note, NoteId, Visibility};

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

/// What renaming a note changes: see [`rename_note`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenamePlan {
    /// The new bodies of the notes whose links are rewritten (the renamed
    /// note's own included), in the order of the notes given.
    pub bodies: Vec<(NoteId, String)>,
    /// The former title, for the renamed note to keep as an alias: set
    /// when the note is public, so that links to it in notes its author
    /// cannot see, and so does not rewrite, keep leading to it.
    pub former_title_alias: Option<String>,
}

/// Plans the rename of note `id` to `new_title`, scoped to what its
/// author may see and to what each link means for the author of the note
/// holding it:
///
/// - only notes the renamed note's author may see are rewritten (their own
///   and public ones); a rename never changes anyone's private note;
/// - in each of them, a link is rewritten only when it resolves to the
///   renamed note *for that note's author* (by title; links through an
///   alias stay as they are), and only when the new name leads that author
///   to the renamed note too, so that no link anywhere starts pointing at
///   another note;
/// - a public note keeps its former title as an alias
///   ([`RenamePlan::former_title_alias`]) for the links the rename may not
///   rewrite.
///
/// `notes` must hold the renamed note, every note that may link to it and
/// every note that has the new name (their titles and aliases decide what
/// links resolve to). The caller stores the bodies, the new title and the
/// alias.
pub fn rename_note(notes: &[Note], id: NoteId, new_title: &str) -> Result<RenamePlan, RenameError> {
    let renamed = notes
        .iter()
        .find(|n| n.id == id)
        .ok_or(RenameError::UnknownNote(id))?;
    rename_edited_note(notes, renamed, new_title)
}

/// [`rename_note`] for a note that changes more than its title at once:
/// `edited` is the note with its other changes made (body, aliases,
/// visibility), `notes` holds it as it was. Links mean what they resolved
/// to before the change; the new name must lead to the note as it is after.
pub fn rename_edited_note(
    notes: &[Note],
    edited: &Note,
    new_title: &str,
) -> Result<RenamePlan, RenameError> {
    if !valid_title(new_title) {
        return Err(RenameError::InvalidTitle(new_title.to_string()));
    }
    let id = edited.id;
    let new_title = new_title.trim();
    let pos = notes
        .iter()
        .position(|n| n.id == id)
        .ok_or(RenameError::UnknownNote(id))?;
    let former_title_alias = (edited.visibility == Visibility::Public
        && name_key(&notes[pos].title) != name_key(new_title))
    .then(|| notes[pos].title.clone());
    let aliases_of = |n: &Note, p: &parse::ParsedNote| {
        merge_names(n.aliases.iter().chain(&p.front_matter.aliases))
    };
    let parsed: Vec<parse::ParsedNote> = notes.iter().map(Note::parse).collect();
    let aliases: Vec<Vec<String>> = notes
        .iter()
        .zip(&parsed)
        .map(|(n, p)| aliases_of(n, p))
        .collect();
    // The renamed note as it will be, for the resolvers after the rename.
    let mut after = edited.clone();
    after.title = new_title.to_owned();
    let edited_parsed = edited.parse();
    let mut after_aliases = aliases.clone();
    after_aliases[pos] = aliases_of(edited, &edited_parsed);
    after_aliases[pos].extend(former_title_alias.clone());
    let before_notes: Vec<&Note> = notes.iter().collect();
    let mut after_notes = before_notes.clone();
    after_notes[pos] = &after;

    // Links mean what they resolve to for the author of their note: one
    // pair of resolvers (before, after) per author.
    let resolvers_for = |author: &str| {
        let visible = |all: &[&Note]| -> Vec<usize> {
            (0..all.len())
                .filter(|&i| all[i].visible_to(author))
                .collect()
        };
        (
            resolver_of(&before_notes, &aliases, &visible(&before_notes)),
            resolver_of(&after_notes, &after_aliases, &visible(&after_notes)),
        )
    };
    let mut resolvers: HashMap<&str, (Resolver<'_>, Resolver<'_>)> = HashMap::new();
    let mut bodies = Vec::new();
    for (i, note) in notes.iter().enumerate() {
        // The renamed note is rewritten as edited.
        let (note, parsed) = if i == pos {
            (edited, &edited_parsed)
        } else {
            (note, &parsed[i])
        };
        if !note.visible_to(&edited.author) {
            continue;
        }
        let (before, after) = resolvers
            .entry(note.author.as_str())
            .or_insert_with(|| resolvers_for(&note.author));
        let follows = after.resolve(new_title).is_some_and(|r| r.note.id == id);
        let ranges = parsed.links.iter().filter_map(|link| {
            let r = before.resolve(&link.target)?;
            (follows && r.note.id == id && r.via == Via::Title).then(|| link.target_range.clone())
        });
        if let Some(body) = rewrite(&note.body, ranges, new_title) {
            bodies.push((note.id, body));
        }
    }
    Ok(RenamePlan {
        bodies,
        former_title_alias,
    })
}

/// A resolver over the notes at positions `visible` of `notes`, whose
/// aliases are `aliases` (same positions).
fn resolver_of<'a>(notes: &[&'a Note], aliases: &[Vec<String>], visible: &[usize]) -> Resolver<'a> {
    Resolver::with_aliases(
        visible.iter().map(|&i| notes[i]).collect(),
        &visible
            .iter()
            .map(|&i| aliases[i].clone())
            .collect::<Vec<_>>(),
    )
}
