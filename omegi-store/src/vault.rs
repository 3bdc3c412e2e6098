//! A folder of Markdown files (an Obsidian vault) in and out.
//!
//! Import walks the folder and its subfolders, skipping hidden entries
//! (`.obsidian`, `.git`, `.trash`), and reads every `.md` file as a note of
//! one user: the title comes from the front matter or else the file name,
//! tags and aliases from the front matter (Obsidian's forms), Omegi's own
//! fields (`id`, `visibility`, `issues`, times, revision) when present. A
//! file whose `id` is a stored note of the same user updates that note.
//!
//! Export writes one file per note, named after its sanitized title (made
//! unique, ignoring case), with Omegi's front matter, so that importing the
//! folder again gives back the same titles, bodies, tags, aliases and links.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use omegi_core::note::{file_stem, note_from_markdown_file, note_to_markdown_file, NoteDefaults};
use omegi_core::{Note, NoteId, Visibility};

use crate::error::{Error, Result};
use crate::notes::{read_note, Change, NoteFilter};
use crate::{now_ns, Store};

/// How to import a vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultImportOptions {
    /// Visibility of notes whose file does not say (private by default).
    pub visibility: Visibility,
}

impl VaultImportOptions {
    /// Files without a `visibility` field become notes with this one.
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultImport {
    /// Notes created, in file order.
    pub created: Vec<NoteId>,
    /// Stored notes changed by a file with their id.
    pub updated: Vec<NoteId>,
    /// Stored notes that a file matched exactly.
    pub unchanged: Vec<NoteId>,
    /// Files that were not imported, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Where exported notes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subfolders {
    /// All files in the folder itself.
    #[default]
    None,
    /// In a subfolder named after the note's first tag (a nested tag
    /// `a/b` gives `a/b/`); untagged notes at the top.
    FirstTag,
    /// In a subfolder per author.
    Author,
}

/// How to export a vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultExportOptions {
    /// Folder layout.
    pub subfolders: Subfolders,
}

impl VaultExportOptions {
    /// Sets the folder layout.
    pub fn subfolders(mut self, subfolders: Subfolders) -> Self {
        self.subfolders = subfolders;
        self
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultExport {
    /// Each note and its file, relative to the folder.
    pub files: Vec<(NoteId, PathBuf)>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

/// The `.md` files under `dir` and its subfolders, sorted by path, skipping
/// hidden entries (`.obsidian`, `.git`) and not following symbolic links:
/// the files [`Store::import_vault`] reads.
pub fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(io_err(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("md"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Imports every Markdown file under `dir` as a note of `author` (see
    /// the module docs). Files that cannot be read as notes are listed in
    /// [`VaultImport::skipped`], as are files whose id belongs to another
    /// user's note; the rest are written at once.
    pub fn import_vault(
        &self,
        dir: impl AsRef<Path>,
        author: &str,
        options: &VaultImportOptions,
    ) -> Result<VaultImport> {
        let dir = dir.as_ref();
        crate::keys::check_name("user", author)?;
        let now = now_ns();
        let defaults = NoteDefaults {
            author: author.to_owned(),
            visibility: options.visibility,
            now_ns: now,
        };
        let mut report = VaultImport::default();
        let mut notes: Vec<(PathBuf, Note)> = Vec::new();
        let mut ids = HashSet::new();
        for path in markdown_files(dir)? {
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_owned();
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let Ok(text) = String::from_utf8(bytes) else {
                report.skipped.push((relative, "not UTF-8 text".into()));
                continue;
            };
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut note = match note_from_markdown_file(&stem, &text, &defaults) {
                Ok(n) => n,
                Err(e) => {
                    report.skipped.push((relative, e.to_string()));
                    continue;
                }
            };
            note.author = author.to_owned();
            if !ids.insert(note.id) {
                report
                    .skipped
                    .push((relative, format!("another file has id {}", note.id)));
                continue;
            }
            notes.push((relative, note));
        }

        let _guard = self.core().notes.lock();
        let t = &self.core().t;
        let mut changes = Vec::new();
        for (relative, mut note) in notes {
            if let Err(e) = self.check_new_note(&note) {
                report.skipped.push((relative, e.to_string()));
                continue;
            }
            match read_note(t, note.id)? {
                None => {
                    report.created.push(note.id);
                    changes.push(Change {
                        old: None,
                        new: Some(note),
                    });
                }
                Some(old) if old.author != author => {
                    report.skipped.push((
                        relative,
                        format!("note {} belongs to {:?}", old.id, old.author),
                    ));
                }
                Some(old) => {
                    let same = old.title == note.title
                        && old.body == note.body
                        && old.tags == note.tags
                        && old.aliases == note.aliases
                        && old.visibility == note.visibility
                        && old.issues == note.issues;
                    if same {
                        report.unchanged.push(old.id);
                        continue;
                    }
                    note.created_ns = old.created_ns;
                    note.revision = old.revision + 1;
                    note.updated_ns = now.max(old.updated_ns);
                    report.updated.push(note.id);
                    changes.push(Change {
                        old: Some(old),
                        new: Some(note),
                    });
                }
            }
        }
        self.commit_changes(&changes)?;
        Ok(report)
    }

    /// Writes the notes `viewer` may see that pass `filter` to `dir` (created
    /// if missing), one Markdown file per note; existing files of the same
    /// names are replaced, others are left alone.
    pub fn export_vault(
        &self,
        dir: impl AsRef<Path>,
        viewer: &str,
        filter: &NoteFilter,
        options: &VaultExportOptions,
    ) -> Result<VaultExport> {
        let dir = dir.as_ref();
        let mut notes = self.notes(viewer, filter)?;
        // Oldest first, so that the oldest note of a title keeps the plain
        // file name, whatever the listing order.
        notes.sort_by_key(|n| (n.created_ns, n.id));
        let mut taken: HashSet<String> = HashSet::new();
        let mut files = BTreeMap::new();
        for note in &notes {
            let folder: PathBuf = match options.subfolders {
                Subfolders::None => PathBuf::new(),
                Subfolders::FirstTag => note
                    .all_tags()
                    .first()
                    .map(|t| t.split('/').map(file_stem).collect())
                    .unwrap_or_default(),
                Subfolders::Author => PathBuf::from(file_stem(&note.author)),
            };
            let stem = file_stem(&note.title);
            let mut n = 1;
            let relative = loop {
                let name = if n == 1 {
                    format!("{stem}.md")
                } else {
                    format!("{stem} ({n}).md")
                };
                let candidate = folder.join(name);
                if taken.insert(candidate.to_string_lossy().to_lowercase()) {
                    break candidate;
                }
                n += 1;
            };
            let path = dir.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            std::fs::write(&path, note_to_markdown_file(note)).map_err(io_err(&path))?;
            files.insert(relative, note.id);
        }
        let mut out = VaultExport {
            files: files.into_iter().map(|(p, id)| (id, p)).collect(),
        };
        out.files.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }
}
