//! Files attached to notes.
//!
//! An attachment belongs to one note: stored under the note's id and the
//! file name's key, its bytes apart from its description so that listings
//! never read them. Only the note's author adds or deletes files; anyone
//! who may see the note may read them, and nobody else learns that they
//! exist. A note's files go with the note, in the transaction that deletes
//! it. The content type is read from the bytes
//! ([`omegi_core::note::content_type`]), never taken from the sender.

use crate::error::Db;
use omegi_core::note::{attachment_key, attachment_name, content_type, AttachmentLimits};
use omegi_core::{Note, NoteId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{decode, encode};
use crate::error::{Error, Result};
use crate::notes::{
    id_key, read_note, Op, T_ATTACHMENTS, T_ATTACHMENTS_BY_NAME, T_ATTACHMENT_DATA,
};
use crate::{now_ns, Notes, Store, Trees};

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

/// The stored description of an attachment (postcard).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttachmentRow {
    name: String,
    content_type: String,
    inline_image: bool,
    size: u64,
    sha256: String,
    created_ns: u64,
}

impl AttachmentRow {
    fn into_attachment(self, note: NoteId) -> Attachment {
        Attachment {
            note,
            name: self.name,
            content_type: self.content_type,
            inline_image: self.inline_image,
            size: self.size,
            sha256: self.sha256,
            created_ns: self.created_ns,
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The key of a note's attachment: the note's id, then the name key.
fn file_key(note: NoteId, name: &str) -> Vec<u8> {
    let mut k = id_key(note).into_vec();
    k.extend_from_slice(attachment_key(name).as_bytes());
    k
}

/// The key of the by-name index: the name key, a 0 byte, the note's id.
fn name_index_key(name: &str, note: NoteId) -> Vec<u8> {
    let mut k = attachment_key(name).into_bytes();
    k.push(0);
    k.extend_from_slice(id_key(note).as_ref());
    k
}

/// Applies writes to the attachment trees in one transaction (the notes
/// themselves, and so their generation and search index, do not change).
fn apply(t: &Trees, ops: &[Op]) -> Result<()> {
    use sled::Transactional;
    let trees = [&t.attachments, &t.attachment_data, &t.attachments_by_name];
    trees[..]
        .transaction(|tx| {
            for (tree, key, value) in ops {
                let tx = &tx[*tree - T_ATTACHMENTS];
                match value {
                    Some(v) => {
                        tx.insert(key.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx.remove(key.as_slice())?;
                    }
                }
            }
            Ok(())
        })
        .map_err(|e: sled::transaction::TransactionError<()>| match e {
            sled::transaction::TransactionError::Storage(e) => Error::database(e),
            sled::transaction::TransactionError::Abort(()) => {
                Error::corrupt("attachments", "transaction aborted")
            }
        })
}

/// The attachments of a note, in name order.
fn rows(t: &Trees, note: NoteId) -> Result<Vec<Attachment>> {
    let mut out = Vec::new();
    for item in t.attachments.scan_prefix(id_key(note)) {
        let (_, v) = item.db()?;
        out.push(decode::<AttachmentRow>("attachments", &v)?.into_attachment(note));
    }
    Ok(out)
}

/// The size of the file an attachment row describes (for the disk
/// report).
pub(crate) fn row_size(row: &[u8]) -> Result<u64> {
    Ok(decode::<AttachmentRow>("attachments", row)?.size)
}

/// The writes that remove every attachment of `note`.
pub(crate) fn removal_ops(t: &Trees, note: NoteId) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for a in rows(t, note)? {
        let key = file_key(note, &a.name);
        ops.push((T_ATTACHMENTS, key.clone(), None));
        ops.push((T_ATTACHMENT_DATA, key, None));
        ops.push((T_ATTACHMENTS_BY_NAME, name_index_key(&a.name, note), None));
    }
    Ok(ops)
}

/// The bytes of every attachment, in (note, name) order: what an export
/// carries.
pub(crate) fn all_attachments(
    t: &Trees,
) -> impl Iterator<Item = Result<(Attachment, Vec<u8>)>> + '_ {
    t.attachments.iter().map(move |item| {
        let (k, v) = item.db()?;
        let id = crate::notes::leading_id("attachments", &k)?;
        let a = decode::<AttachmentRow>("attachments", &v)?.into_attachment(id);
        let data = t
            .attachment_data
            .get(&k)
            .db()?
            .ok_or_else(|| Error::corrupt("attachment_data", "an attachment without bytes"))?;
        Ok((a, data.to_vec()))
    })
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

impl Store {
    /// Attaches a file to a note whose author was checked (the notes lock
    /// held).
    fn attach_locked(
        &self,
        id: NoteId,
        name: &str,
        bytes: &[u8],
        created_ns: u64,
    ) -> Result<Attached> {
        let t = &self.core().t;
        let held = rows(t, id)?;
        let sha256 = sha256_hex(bytes);
        let key = attachment_key(name);
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
        self.notes().attachment_limits().check(
            bytes.len(),
            held.len(),
            usize::try_from(held_bytes).unwrap_or(usize::MAX),
        )?;
        let kind = content_type(name, bytes);
        let row = AttachmentRow {
            name: name.to_owned(),
            content_type: kind.mime.to_owned(),
            inline_image: kind.inline_image,
            size: bytes.len() as u64,
            sha256,
            created_ns,
        };
        let k = file_key(id, name);
        let ops = vec![
            (T_ATTACHMENTS, k.clone(), Some(encode(&row)?)),
            (T_ATTACHMENT_DATA, k, Some(bytes.to_vec())),
            (
                T_ATTACHMENTS_BY_NAME,
                name_index_key(name, id),
                Some(Vec::new()),
            ),
        ];
        apply(t, &ops)?;
        Ok(Attached {
            attachment: row.into_attachment(id),
            created: true,
        })
    }
}

impl Notes<'_> {
    /// What the files attached to one note may hold in this store.
    pub fn attachment_limits(&self) -> AttachmentLimits {
        self.core().config.attachment_limits
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
        let limits = self.attachment_limits();
        limits.check(bytes.len(), 0, 0)?;
        let _guard = self.store.notes_lock();
        self.store.owned_note(id, viewer)?;
        self.store.attach_locked(id, &name, bytes, now_ns())
    }

    /// The attachments of note `id`, in name order, if `viewer` may see it.
    pub fn attachments(&self, id: NoteId, viewer: &str) -> Result<Vec<Attachment>> {
        self.store.visible_note(id, viewer)?;
        rows(&self.core().t, id)
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
        self.store
            .visible_note(id, viewer)
            .map_err(|_| not_found())?;
        let t = &self.core().t;
        let k = file_key(id, name);
        let row = t.attachments.get(&k).db()?.ok_or_else(not_found)?;
        let data = t.attachment_data.get(&k).db()?.ok_or_else(not_found)?;
        Ok((
            decode::<AttachmentRow>("attachments", &row)?.into_attachment(id),
            data.to_vec(),
        ))
    }

    /// Deletes an attachment of note `id`; only its author may.
    pub fn delete_attachment(&self, id: NoteId, viewer: &str, name: &str) -> Result<Attachment> {
        let _guard = self.store.notes_lock();
        self.store.owned_note(id, viewer)?;
        let t = &self.core().t;
        let k = file_key(id, name);
        let Some(row) = t.attachments.get(&k).db()? else {
            return Err(Error::AttachmentNotFound {
                id,
                name: name.chars().take(64).collect(),
            });
        };
        let a = decode::<AttachmentRow>("attachments", &row)?.into_attachment(id);
        apply(
            t,
            &[
                (T_ATTACHMENTS, k.clone(), None),
                (T_ATTACHMENT_DATA, k, None),
                (T_ATTACHMENTS_BY_NAME, name_index_key(&a.name, id), None),
            ],
        )?;
        Ok(a)
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
        let name = target.trim().rsplit('/').next().unwrap_or_default();
        if attachment_name(name).is_err() {
            return Ok(None);
        }
        let t = &self.core().t;
        if let Some(row) = t.attachments.get(file_key(from.id, name)).db()? {
            return Ok(Some(
                decode::<AttachmentRow>("attachments", &row)?.into_attachment(from.id),
            ));
        }
        let mut prefix = attachment_key(name).into_bytes();
        prefix.push(0);
        let mut best: Option<Note> = None;
        for item in t.attachments_by_name.scan_prefix(&prefix) {
            let (k, _) = item.db()?;
            let owner = crate::notes::trailing_note_id("attachments_by_name", &k)?;
            if let Some(n) = read_note(t, owner)?.filter(|n| n.visible_to(viewer)) {
                if best
                    .as_ref()
                    .is_none_or(|b| (n.created_ns, n.id) < (b.created_ns, b.id))
                {
                    best = Some(n);
                }
            }
        }
        let Some(owner) = best else {
            return Ok(None);
        };
        match t.attachments.get(file_key(owner.id, name)).db()? {
            Some(row) => Ok(Some(
                decode::<AttachmentRow>("attachments", &row)?.into_attachment(owner.id),
            )),
            None => Ok(None),
        }
    }

    /// Writes attachments exactly as given (names, times kept; the content
    /// type read again from the bytes) to notes that exist, for restores
    /// and imports; an attachment the note holds already with the same
    /// bytes is left alone. The limits apply. Returns how many were new.
    pub fn restore_attachments(
        &self,
        files: impl IntoIterator<Item = (NoteId, String, u64, Vec<u8>)>,
    ) -> Result<usize> {
        let _guard = self.store.notes_lock();
        let t = &self.core().t;
        let mut created = 0;
        for (id, name, created_ns, bytes) in files {
            let name = attachment_name(&name)?;
            if read_note(t, id)?.is_none() {
                return Err(Error::NoteNotFound { id });
            }
            if self
                .store
                .attach_locked(id, &name, &bytes, created_ns)?
                .created
            {
                created += 1;
            }
        }
        Ok(created)
    }
}
