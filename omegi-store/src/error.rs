//! The store's one error type.

use std::path::PathBuf;

/// What can go wrong when opening, writing or reading a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine under the store failed: its database (I/O, a corrupt
    /// log, an unsupported setting) or its full-text index. The
    /// [`EngineError`]'s [`source`](std::error::Error::source) says how.
    #[error(transparent)]
    Storage(#[from] EngineError),
    /// Reading or writing a file or stream failed.
    #[error(transparent)]
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
    /// A PostgreSQL connection URL could not be read; the
    /// [`source`](std::error::Error::source) says why. The URL itself is
    /// not repeated, as it may hold a password.
    #[error("invalid database URL")]
    InvalidDatabaseUrl(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The PostgreSQL database was migrated by a newer version of Omegi.
    #[error(
        "the database has schema version {found}, newer than {supported}, the newest this \
         version of omegi-store knows; upgrade every node before it connects"
    )]
    DatabaseTooNew {
        /// The newest migration applied to the database.
        found: u32,
        /// The newest migration this build has.
        supported: u32,
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
    #[error(transparent)]
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
    #[error(transparent)]
    NoteOverLimit(#[from] omegi_core::note::NoteLimitError),
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
    /// Another process (or another log of this one) holds the
    /// write-ahead log in this directory.
    #[error(
        "the write-ahead log in {path} is in use by another process: each node needs a data \
         directory of its own"
    )]
    LogInUse {
        /// The log's directory.
        path: PathBuf,
    },
    /// A symbolic link lies on the way to a file a note export would write.
    #[error("{path} is a symbolic link: a note export does not follow links")]
    SymlinkInExport {
        /// The link.
        path: PathBuf,
    },
    /// Reading or writing a file or directory failed (of the data
    /// directory, a write-ahead log or a Markdown vault); the
    /// [`source`](std::error::Error::source) says how.
    #[error("cannot read or write {path}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of the engine under the store: its database or its full-text
/// index. It says which; its [`source`](std::error::Error::source) is the
/// engine's own error, whose type is not part of this crate's API.
#[derive(Debug)]
pub struct EngineError {
    part: EnginePart,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnginePart {
    Database,
    SearchIndex,
}

impl EngineError {
    /// A failure of the database.
    pub(crate) fn database(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        EngineError {
            part: EnginePart::Database,
            source: Box::new(source),
        }
    }

    /// A failure of the full-text index.
    pub(crate) fn search_index(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        EngineError {
            part: EnginePart::SearchIndex,
            source: Box::new(source),
        }
    }

    /// Whether the full-text index failed (rather than the database).
    pub fn is_search_index(&self) -> bool {
        self.part == EnginePart::SearchIndex
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.part {
            EnginePart::Database => "the storage engine failed",
            EnginePart::SearchIndex => "the search index failed",
        })
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Turns the database's errors into the store's (`tree.get(key).db()?`):
/// what a `From` impl would do for `?`, kept inside the crate because the
/// engine is not part of its API.
pub(crate) trait Db<T> {
    /// The result with a database error as the store's [`Error::Storage`].
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for std::result::Result<T, sled::Error> {
    fn db(self) -> Result<T> {
        self.map_err(Error::database)
    }
}

impl Error {
    /// A failure of the database.
    pub(crate) fn database(e: sled::Error) -> Self {
        Error::Storage(EngineError::database(e))
    }

    pub(crate) fn corrupt(tree: &'static str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            tree,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Every message of the chain, outermost first.
    fn chain(e: &Error) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut source = e.source();
        while let Some(cause) = source {
            out.push(cause.to_string());
            source = cause.source();
        }
        out
    }

    /// No message repeats the text of the one below it.
    fn each_cause_once(e: &Error) {
        let messages = chain(e);
        for pair in messages.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "{messages:?}");
        }
    }

    #[test]
    fn engine_errors_name_the_part_and_keep_the_engine_message_as_source() {
        let disk = || std::io::Error::other("disk on fire");
        let database = Error::database(sled::Error::Io(disk()));
        each_cause_once(&database);
        let messages = chain(&database);
        assert_eq!(messages[0], "the storage engine failed");
        assert!(
            messages[1..].iter().any(|m| m.contains("disk on fire")),
            "{messages:?}"
        );

        let index = Error::Storage(EngineError::search_index(disk()));
        each_cause_once(&index);
        assert_eq!(chain(&index), ["the search index failed", "disk on fire"]);
        assert!(matches!(&index, Error::Storage(e) if e.is_search_index()));
    }

    #[test]
    fn file_and_io_errors_print_each_cause_once() {
        let file = Error::File {
            path: PathBuf::from("/data/notes"),
            source: std::io::Error::other("permission denied"),
        };
        each_cause_once(&file);
        assert_eq!(
            chain(&file),
            ["cannot read or write /data/notes", "permission denied"]
        );
        let io = Error::from(std::io::Error::other("broken pipe"));
        each_cause_once(&io);
        assert_eq!(chain(&io)[0], "broken pipe");
    }
}
