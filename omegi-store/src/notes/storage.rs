//! What a backend does for the notes: store and fetch, nothing more.
//!
//! [`NoteStorage`] is the narrow, crate-private interface the rules of
//! [`Notes`](crate::Notes) are written over, once for every backend: reads
//! ([`NoteReads`]: a note, the notes a name may mean, the notes linking to
//! a name, listings, attachments) and writes ([`NoteTx`]: a set of
//! [`Change`]s and attachment writes made at once). A backend keeps the
//! indexes it needs (names, links, authors, issues) in step with the notes
//! it stores, all derived from [`Derived`](super::derive) so that both
//! index the same names and links.
//!
//! A write is a closure run by [`NoteStorage::write`]: it reads what it
//! needs through the transaction and records its changes there; the backend
//! makes them all at once, and only if what the closure read is still true
//! (the sled store runs writers one at a time; PostgreSQL runs the closure in
//! a serializable transaction and checks each changed note's revision,
//! running the closure again when another writer came first). The closure
//! may therefore run more than once, and must decide from what it reads.

use omegi_core::note::Via;
use omegi_core::{Note, NoteId};

use crate::attachments::Attachment;
use crate::error::Result;

/// A change of one note: what it was and what it becomes (`None`: absent).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) old: Option<Note>,
    pub(crate) new: Option<Note>,
}

/// A note that has a name (its title or an alias), as the name index holds
/// it: enough to decide visibility and resolution without reading the note.
#[derive(Debug, Clone)]
pub(crate) struct NameEntry {
    /// The name's key ([`omegi_core::note::name_key`]).
    pub(crate) key: String,
    /// Whether the name is the title or an alias.
    pub(crate) via: Via,
    pub(crate) id: NoteId,
    pub(crate) created_ns: u64,
    pub(crate) public: bool,
    pub(crate) author: String,
    pub(crate) folder: String,
}

/// A note whose body links to a name, as the link index holds it.
#[derive(Debug, Clone)]
pub(crate) struct LinkEntry {
    pub(crate) id: NoteId,
    pub(crate) public: bool,
    pub(crate) author: String,
}

/// The reads the notes' rules need.
pub(crate) trait NoteReads {
    /// A note by id.
    fn note(&mut self, id: NoteId) -> Result<Option<Note>>;
    /// The notes that have a name with this key.
    fn named(&mut self, key: &str) -> Result<Vec<NameEntry>>;
    /// The notes whose links are indexed under this key
    /// ([`omegi_core::note::LinkPath::keys`]).
    fn linking(&mut self, key: &str) -> Result<Vec<LinkEntry>>;
    /// The notes of an author, by id.
    fn by_author(&mut self, author: &str) -> Result<Vec<Note>>;
    /// The notes linked to an issue, by id.
    fn by_issue(&mut self, fingerprint: &str) -> Result<Vec<Note>>;
    /// Every note, by id.
    fn all(&mut self) -> Result<Vec<Note>>;
    /// How many notes there are.
    fn count(&mut self) -> Result<usize>;
    /// The attachments of a note, in the order of their name keys.
    fn attachments(&mut self, note: NoteId) -> Result<Vec<Attachment>>;
    /// The attachment of a note whose name has this key
    /// ([`omegi_core::note::attachment_key`]).
    fn attachment(&mut self, note: NoteId, key: &str) -> Result<Option<Attachment>>;
    /// The bytes of that attachment.
    fn attachment_bytes(&mut self, note: NoteId, key: &str) -> Result<Option<Vec<u8>>>;
    /// The notes holding an attachment whose name has this key.
    fn attachment_holders(&mut self, key: &str) -> Result<Vec<NoteId>>;
}

/// The writes of one transaction, after its reads.
pub(crate) trait NoteTx: NoteReads {
    /// Makes the changes: each stored note must still be its `old` (same
    /// revision; absent when `old` is `None`), else the whole write is
    /// refused. A note's attachments go when it is deleted.
    fn put(&mut self, changes: &[Change]) -> Result<()>;
    /// Stores an attachment of a stored note (none by that name key yet).
    fn put_attachment(&mut self, attachment: &Attachment, bytes: &[u8]) -> Result<()>;
    /// Removes an attachment.
    fn remove_attachment(&mut self, note: NoteId, key: &str) -> Result<()>;
}

/// A backend of the notes.
pub(crate) trait NoteStorage: Send + Sync {
    /// Runs `f` over a consistent view of the notes.
    fn read(&self, f: &mut dyn FnMut(&mut dyn NoteReads) -> Result<()>) -> Result<()>;
    /// Runs `f` and makes the writes it records, all or none (see the
    /// module docs: `f` may run more than once).
    fn write(&self, f: &mut dyn FnMut(&mut dyn NoteTx) -> Result<()>) -> Result<()>;
}
