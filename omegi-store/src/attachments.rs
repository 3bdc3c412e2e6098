//! Files attached to notes.
//!
//! An attachment belongs to one note: stored under the note's id and the
//! file name's key (how each backend keeps it: `notes::sled`,
//! `postgres::notes`), its bytes read only when asked for. Only the note's author adds or deletes files; anyone
//! who may see the note may read them, and nobody else learns that they
//! exist. A note's files go with the note, in the transaction that deletes
//! it. Adding a file is one write that checks the note's author, what the
//! note already holds and the limits, so that two writers cannot pass the
//! limits together. The content type is read from the bytes
//! ([`omegi_core::note::content_type`]), never taken from the sender.

use omegi_core::note::{attachment_key, attachment_name, content_type, AttachmentLimits};
use omegi_core::{Note, NoteId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::notes::{visible_note, NoteReads};
use crate::{now_ns, Notes};

/// A file attached to a note (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The note it belongs to.
    pub note: NoteId,
    /// Its file name, as `![[name]]` embeds it.
    pub name: String,
    /// The content type read from its bytes.
    pub content_type: String,
    /// Whether it is an image shown inline; every other file is served
    /// for download.
    pub inline_image: bool,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, in hex.
    pub sha256: String,
    /// When it was added, ns since the Unix epoch.
    pub created_ns: u64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(crate) use crate::notes::sled::{all_attachments, row_size};

/// The attachment a link target names for a link written in `from`, as
/// `viewer` sees it (see [`Notes::find_attachment`]).
pub(crate) fn find_in(
    r: &mut dyn NoteReads,
    target: &str,
    from: &Note,
    viewer: &str,
) -> Result<Option<Attachment>> {
    let name = target.trim().rsplit('/').next().unwrap_or_default();
    if attachment_name(name).is_err() {
        return Ok(None);
    }
    let key = attachment_key(name);
    if let Some(a) = r.attachment(from.id, &key)? {
        return Ok(Some(a));
    }
    let mut best: Option<Note> = None;
    for holder in r.attachment_holders(&key)? {
        if let Some(n) = r.note(holder)?.filter(|n| n.visible_to(viewer)) {
            if best
                .as_ref()
                .is_none_or(|b| (n.created_ns, n.id) < (b.created_ns, b.id))
            {
                best = Some(n);
            }
        }
    }
    match best {
        Some(owner) => r.attachment(owner.id, &key),
        None => Ok(None),
    }
}

/// What [`Notes::add_attachment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The attachment as stored.
    pub attachment: Attachment,
    /// Whether it is new (`false`: the note held these very bytes under
    /// this name already, and nothing changed).
    pub created: bool,
}

impl Notes<'_> {
    /// Attaches a file to note `id` of `author` in one write: the note
    /// exists and is theirs, the same bytes under the same name change
    /// nothing, other bytes under a name the note has are refused, then the
    /// limits, counted over what the note holds in that same write.
    fn attach(
        &self,
        id: NoteId,
        author: Option<&str>,
        name: &str,
        bytes: &[u8],
        created_ns: u64,
    ) -> Result<Attached> {
        let sha256 = sha256_hex(bytes);
        let key = attachment_key(name);
        let limits = self.attachment_limits();
        self.write(|tx| {
            match author {
                Some(author) => {
                    crate::notes::owned_note(tx, id, author)?;
                }
                None => {
                    if tx.note(id)?.is_none() {
                        return Err(Error::NoteNotFound { id });
                    }
                }
            }
            let held = tx.attachments(id)?;
            if let Some(same) = held.iter().find(|a| attachment_key(&a.name) == key) {
                if same.sha256 == sha256 && same.size == bytes.len() as u64 {
                    return Ok(Attached {
                        attachment: same.clone(),
                        created: false,
                    });
                }
                return Err(Error::AttachmentExists {
                    id,
                    name: same.name.clone(),
                });
            }
            let held_bytes: u64 = held.iter().map(|a| a.size).sum();
            limits.check(
                bytes.len(),
                held.len(),
                usize::try_from(held_bytes).unwrap_or(usize::MAX),
            )?;
            let kind = content_type(name, bytes);
            let attachment = Attachment {
                note: id,
                name: name.to_owned(),
                content_type: kind.mime.to_owned(),
                inline_image: kind.inline_image,
                size: bytes.len() as u64,
                sha256: sha256.clone(),
                created_ns,
            };
            tx.put_attachment(&attachment, bytes)?;
            Ok(Attached {
                attachment,
                created: true,
            })
        })
    }
}

impl Notes<'_> {
    /// What the files attached to one note may hold in this store.
    pub fn attachment_limits(&self) -> AttachmentLimits {
        self.settings.attachment_limits
    }

    /// Attaches `bytes` as file `name` to note `id`. Only the note's author
    /// may. The name is checked, then the limits, before anything is
    /// written; the content type is read from the bytes. Adding the same
    /// bytes under the same name again changes nothing; other bytes under
    /// a name the note already has are refused
    /// ([`Error::AttachmentExists`]).
    pub fn add_attachment(
        &self,
        id: NoteId,
        viewer: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<Attached> {
        let name = attachment_name(name)?;
        self.attachment_limits().check(bytes.len(), 0, 0)?;
        self.attach(id, Some(viewer), &name, bytes, now_ns())
    }

    /// The attachments of note `id`, in name order, if `viewer` may see it.
    pub fn attachments(&self, id: NoteId, viewer: &str) -> Result<Vec<Attachment>> {
        self.read(|r| {
            visible_note(r, id, viewer)?;
            r.attachments(id)
        })
    }

    /// An attachment and its bytes, if `viewer` may see its note.
    pub fn attachment(
        &self,
        id: NoteId,
        viewer: &str,
        name: &str,
    ) -> Result<(Attachment, Vec<u8>)> {
        let not_found = || Error::AttachmentNotFound {
            id,
            name: name.chars().take(64).collect(),
        };
        let key = attachment_key(name);
        self.read(|r| {
            visible_note(r, id, viewer).map_err(|_| not_found())?;
            let a = r.attachment(id, &key)?.ok_or_else(not_found)?;
            let data = r.attachment_bytes(id, &key)?.ok_or_else(not_found)?;
            Ok((a, data))
        })
    }

    /// Deletes an attachment of note `id`; only its author may.
    pub fn delete_attachment(&self, id: NoteId, viewer: &str, name: &str) -> Result<Attachment> {
        let key = attachment_key(name);
        self.write(|tx| {
            crate::notes::owned_note(tx, id, viewer)?;
            let Some(a) = tx.attachment(id, &key)? else {
                return Err(Error::AttachmentNotFound {
                    id,
                    name: name.chars().take(64).collect(),
                });
            };
            tx.remove_attachment(id, &key)?;
            Ok(a)
        })
    }

    /// The attachment a link target names for a link written in `from`,
    /// as `viewer` sees it: `from`'s own file by that name, else the file
    /// of that name of the oldest other note `viewer` may see (as a vault
    /// resolves a file name anywhere in it).
    pub fn find_attachment(
        &self,
        target: &str,
        from: &Note,
        viewer: &str,
    ) -> Result<Option<Attachment>> {
        self.read(|r| find_in(r, target, from, viewer))
    }

    /// Writes attachments exactly as given (names, times kept; the content
    /// type read again from the bytes) to notes that exist, for restores
    /// and imports; an attachment the note holds already with the same
    /// bytes is left alone. The limits apply. Returns how many were new.
    pub fn restore_attachments(
        &self,
        files: impl IntoIterator<Item = (NoteId, String, u64, Vec<u8>)>,
    ) -> Result<usize> {
        let mut created = 0;
        for (id, name, created_ns, bytes) in files {
            let name = attachment_name(&name)?;
            if self.attach(id, None, &name, &bytes, created_ns)?.created {
                created += 1;
            }
        }
        Ok(created)
    }
}
