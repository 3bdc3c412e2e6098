//! The store's one error type.

use std::path::PathBuf;

/// What can go wrong when opening, writing or reading a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage engine failed (I/O, a corrupt log, an unsupported setting).
    #[error("storage engine error: {0}")]
    Storage(#[from] sled::Error),
    /// Reading or writing a file or stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value could not be decoded: the data is damaged or was
    /// written by something other than this store.
    #[error("corrupt value in tree `{tree}`: {reason}")]
    Corrupt {
        /// The tree holding the value.
        tree: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The data was written by a newer version of the store.
    #[error(
        "the store at {path} has schema version {found}, newer than {supported}, \
         the newest this version of omegi-store reads; upgrade omegi-store to open it"
    )]
    SchemaTooNew {
        /// The data directory.
        path: PathBuf,
        /// The schema version found on disk.
        found: u32,
        /// The newest schema version this build reads.
        supported: u32,
    },
    /// The data was written by an older version of the store, whose layout
    /// this one does not read.
    #[error(
        "the store at {path} has schema version {found}, older than {supported}, \
         the one this version of omegi-store reads; export it with the version \
         that wrote it (`omegi export` or `Store::export`) and import the file \
         into a new data directory"
    )]
    SchemaTooOld {
        /// The data directory.
        path: PathBuf,
        /// The schema version found on disk.
        found: u32,
        /// The schema version this build reads.
        supported: u32,
    },
    /// The directory holds a database that is not an Omegi store.
    #[error("{path} holds a database that is not an Omegi store")]
    Foreign {
        /// The data directory.
        path: PathBuf,
    },
    /// A project, service, user or fingerprint name cannot be stored.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name names ("project", "service", ...).
        what: &'static str,
        /// The rejected name (possibly shortened).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No user has this login.
    #[error("no user {login:?}")]
    UserNotFound {
        /// The login asked for.
        login: String,
    },
    /// No project has this id.
    #[error("no project {id:?}")]
    ProjectNotFound {
        /// The id asked for.
        id: String,
    },
    /// No token has this id.
    #[error("no token {id:?}")]
    TokenNotFound {
        /// The id asked for.
        id: String,
    },
    /// A token with this hash is stored already.
    #[error("a token with this hash exists already")]
    TokenExists,
    /// No issue has this fingerprint in this project.
    #[error("no issue {fingerprint} in project {project:?}")]
    IssueNotFound {
        /// The project.
        project: String,
        /// The fingerprint asked for.
        fingerprint: String,
    },
    /// A line of an import stream is not a valid export line.
    #[error("import line {line}: {reason}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// Encoding a value for export failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// An attachment was refused: its name, or a limit.
    #[error("{0}")]
    AttachmentRefused(#[from] omegi_core::note::AttachmentError),
    /// A note already has another file by this name.
    #[error("note {id} already has a different file named {name:?}; delete it first")]
    AttachmentExists {
        /// The note.
        id: omegi_core::NoteId,
        /// The name.
        name: String,
    },
    /// The note has no attachment by this name (or the viewer may not see
    /// the note).
    #[error("note {id} has no attachment {name:?}")]
    AttachmentNotFound {
        /// The note.
        id: omegi_core::NoteId,
        /// The name asked for.
        name: String,
    },
    /// No note has this id, or the viewer may not see it.
    #[error("no note {id}")]
    NoteNotFound {
        /// The id asked for.
        id: omegi_core::NoteId,
    },
    /// Only a note's author may change or delete it.
    #[error("note {id} belongs to {author:?}; {viewer:?} may not change it")]
    NotNoteAuthor {
        /// The note.
        id: omegi_core::NoteId,
        /// Its author.
        author: String,
        /// Who tried to change it.
        viewer: String,
    },
    /// The note changed since the caller read it (optimistic concurrency):
    /// read it again and reapply the change.
    #[error("note {id} is at revision {actual}, not the expected {expected}")]
    RevisionMismatch {
        /// The note.
        id: omegi_core::NoteId,
        /// The revision the caller based its change on.
        expected: u64,
        /// The note's current revision.
        actual: u64,
    },
    /// A note's title, alias or author cannot be stored.
    #[error("invalid note: {0}")]
    InvalidNote(String),
    /// A note is over one of the store's [note
    /// limits](crate::Config::note_limits).
    #[error("{0}")]
    NoteOverLimit(#[from] omegi_core::note::NoteLimitError),
    /// The full-text index failed.
    #[error("search index error: {0}")]
    Search(String),
    /// A note export would overwrite files it did not write, or that were
    /// changed since it wrote them.
    #[error(
        "the export would overwrite {} file(s) it did not write or that changed since: {}; \
         pass --force (VaultExportOptions::force) to overwrite them",
        files.len(),
        files.iter().take(5).map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ExportWouldOverwrite {
        /// The files, relative to the export folder.
        files: Vec<PathBuf>,
    },
    /// A symbolic link lies on the way to a file a note export would write.
    #[error("{path} is a symbolic link: a note export does not follow links")]
    SymlinkInExport {
        /// The link.
        path: PathBuf,
    },
    /// Reading or writing a file of a Markdown vault failed.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(tree: &'static str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            tree,
            reason: reason.into(),
        }
    }
}
