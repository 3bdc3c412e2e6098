//! Notes written by other nodes reach this node's search index.
//!
//! A trigger (migration 4) announces every change of a note on the channel
//! `omegi_notes`, with the node that made it (the `omegi.node` setting of
//! the writer's connection) and the note's id. Each [`Database`] keeps one
//! connection that listens there, on a thread of its own: it reads the
//! notes that other nodes changed, as they are now, and puts them in its
//! index (a note gone from the database leaves it). Its own changes it has
//! indexed already. When the listening connection breaks, notifications
//! sent meanwhile are lost, so after connecting again the node rebuilds
//! its index from the database. The thread ends, with its connection,
//! within a second of the last clone of its [`Database`] being dropped.
//!
//! [`Database`]: super::Database

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use omegi_core::NoteId;
use r2d2_postgres::postgres::fallible_iterator::FallibleIterator;
use r2d2_postgres::postgres::{Client, Config};

use super::database;
use super::notes::PgNotes;
use super::tls::MakeTls;
use crate::error::Result;

/// The channel the trigger of migration 4 notifies.
const CHANNEL: &str = "omegi_notes";

/// How long the listener waits for a notification before it checks
/// whether its database is still open.
const POLL: Duration = Duration::from_millis(500);

/// How many changed notes are read and indexed at once.
const BATCH: usize = 1_000;

/// A connection listening on the channel.
pub(crate) fn subscribe(config: &Config, tls: &MakeTls) -> Result<Client> {
    let mut client = config.connect(tls.clone()).map_err(database)?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(database)?;
    Ok(client)
}

/// Starts the listening thread with `client`, subscribed before the index
/// was built, so that no change falls between the two.
pub(crate) fn start(
    notes: Weak<PgNotes>,
    node: String,
    client: Client,
    config: Config,
    tls: MakeTls,
) -> Result<()> {
    std::thread::Builder::new()
        .name("omegi-pg-notes".into())
        .spawn(move || run(&notes, &node, Some(client), &config, &tls))
        .map(|_| ())
        .map_err(crate::Error::Io)
}

fn run(
    notes: &Weak<PgNotes>,
    node: &str,
    mut client: Option<Client>,
    config: &Config,
    tls: &MakeTls,
) {
    loop {
        if notes.strong_count() == 0 {
            return;
        }
        let Some(listening) = client.as_mut() else {
            std::thread::sleep(Duration::from_secs(1));
            if let Ok(subscribed) = subscribe(config, tls) {
                // Changes made while no connection listened were missed.
                if let Some(notes) = notes.upgrade() {
                    if notes.rebuild_search().is_ok() {
                        client = Some(subscribed);
                    }
                }
            }
            continue;
        };
        let (changed, mut broken) = wait_for_changes(listening, node);
        if !changed.is_empty() {
            let ids: Vec<NoteId> = changed.into_iter().collect();
            let indexed = notes.upgrade().map(|notes| notes.reindex(&ids));
            // An index that could not take them is rebuilt after
            // connecting again.
            broken |= matches!(indexed, Some(Err(_)));
        }
        if broken {
            client = None;
        }
    }
}

/// The notes other nodes changed, as notified until none came for
/// [`POLL`] (at most [`BATCH`]), and whether the connection broke.
fn wait_for_changes(listening: &mut Client, node: &str) -> (BTreeSet<NoteId>, bool) {
    let mut changed = BTreeSet::new();
    if listening.is_closed() {
        return (changed, true);
    }
    let mut waiting = listening.notifications();
    let mut incoming = waiting.timeout_iter(POLL);
    while changed.len() < BATCH {
        match incoming.next() {
            Ok(Some(notification)) => {
                if let Some(id) = changed_by_another(notification.payload(), node) {
                    changed.insert(id);
                }
            }
            Err(_) => return (changed, true),
            Ok(None) => break,
        }
    }
    (changed, false)
}

/// The note a notification names, unless this node changed it.
fn changed_by_another(payload: &str, node: &str) -> Option<NoteId> {
    let (writer, id) = payload.split_once(' ')?;
    if writer == node {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_skips_its_own_changes() {
        let id = NoteId::now_v7();
        assert_eq!(changed_by_another(&format!("b {id}"), "a"), Some(id));
        assert_eq!(changed_by_another(&format!(" {id}"), "a"), Some(id));
        assert_eq!(changed_by_another(&format!("a {id}"), "a"), None);
        assert_eq!(changed_by_another("b not-an-id", "a"), None);
        assert_eq!(changed_by_another("", "a"), None);
    }
}
