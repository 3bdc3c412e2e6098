//! [`Store`]: the store a server opens, on either backend.
//!
//! An enum rather than a trait object: every call dispatches on which
//! backend holds the data, and the handles themselves are one concrete
//! type over either (see the `handles` module).

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::postgres::{Database, PgConfig};
use crate::retention::{LastRetention, Worker};
use crate::{
    now_ns, Accounts, Config, DiskUsage, Embedded, ImportOptions, Issues, Notes, RetentionReport,
    Search, Stats, Traces, TransferStats,
};

/// An open Omegi store: the embedded store on sled ([`Store::open`]), or a
/// PostgreSQL database shared by several nodes ([`Store::connect`]).
/// Cheap to clone; clones share one store.
///
/// Its handles ([`Store::traces`], [`Store::issues`], [`Store::stats`],
/// [`Store::notes`], [`Store::search`], [`Store::accounts`]) are the same
/// types on both backends, with the same rules; what differs is upkeep:
///
/// | | embedded (sled) | PostgreSQL |
/// |---|---|---|
/// | durable when | [`Store::sync`] or [`Store::flush`] returns | the call returns (each write is a committed transaction) |
/// | retention | a background thread, [`Config::retention`] | a background thread, [`PgConfig::retention`]; drops whole days |
/// | disk use | the data directory | `pg_database_size` |
/// | [`Store::path`] | the data directory | `None` |
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Embedded(Embedded),
    Postgres(Arc<Postgres>),
}

/// A PostgreSQL database with the upkeep a store runs on it.
struct Postgres {
    /// Always `Some` but while the store is dropped.
    database: Option<Database>,
    last_retention: Arc<LastRetention>,
    // Dropped with the last clone: stops and joins the retention thread.
    _worker: Option<Worker>,
}

impl Postgres {
    fn db(&self) -> &Database {
        match &self.database {
            Some(db) => db,
            None => unreachable!("the database is taken only when the store is dropped"),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The synchronous client closes a connection by blocking on a
        // runtime of its own, which panics on a thread that drives async
        // tasks (where a server may drop its last clone of the store): the
        // connections are closed on a thread of their own.
        if let Some(db) = self.database.take() {
            if let Ok(closing) = std::thread::Builder::new()
                .name("omegi-store-close".into())
                .spawn(move || drop(db))
            {
                let _ = closing.join();
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Embedded(e) => f
                .debug_struct("Store")
                .field("path", &e.path())
                .finish_non_exhaustive(),
            Backend::Postgres(pg) => f
                .debug_struct("Store")
                .field("database", pg.db())
                .finish_non_exhaustive(),
        }
    }
}

impl Store {
    /// Opens (or creates) the embedded store in `path` with the default
    /// [`Config`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Embedded::open(path).map(Self::embedded)
    }

    /// Opens an embedded store that is deleted when the last clone is
    /// dropped.
    pub fn temporary() -> Result<Self> {
        Embedded::temporary().map(Self::embedded)
    }

    /// Opens (or creates) the embedded store as `config` says.
    pub fn open_with(config: Config) -> Result<Self> {
        Embedded::open_with(config).map(Self::embedded)
    }

    /// Connects to PostgreSQL as `config` says (migrating its schema, see
    /// [`Database::connect_with`]) and runs retention in the background
    /// when [`PgConfig::retention`] is set.
    pub fn connect(config: PgConfig) -> Result<Self> {
        let (retention, every) = config.upkeep();
        let db = Database::connect_with(config)?;
        let last_retention: Arc<LastRetention> = Arc::new(Mutex::new(None));
        let worker = match retention {
            Some(_) => {
                let (db, last) = (db.clone(), Arc::clone(&last_retention));
                Some(Worker::start(every, move || {
                    let outcome = db.run_retention(now_ns()).map_err(|e| e.to_string());
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                })?)
            }
            None => None,
        };
        Ok(Store {
            backend: Backend::Postgres(Arc::new(Postgres {
                database: Some(db),
                last_retention,
                _worker: worker,
            })),
        })
    }

    fn embedded(store: Embedded) -> Self {
        Store {
            backend: Backend::Embedded(store),
        }
    }

    /// The PostgreSQL database, when the store is one.
    pub fn database(&self) -> Option<&Database> {
        match &self.backend {
            Backend::Embedded(_) => None,
            Backend::Postgres(pg) => Some(pg.db()),
        }
    }

    /// Whether the store is the embedded one (sled), not PostgreSQL.
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded(_))
    }

    /// The embedded store, for what only it has (the crate's tests).
    #[cfg(test)]
    pub(crate) fn as_embedded(&self) -> Option<&Embedded> {
        match &self.backend {
            Backend::Embedded(e) => Some(e),
            Backend::Postgres(_) => None,
        }
    }

    /// The store's projects, users, memberships and tokens (see
    /// [`Accounts`]).
    pub fn accounts(&self) -> &dyn Accounts {
        match &self.backend {
            Backend::Embedded(e) => e.accounts(),
            Backend::Postgres(pg) => pg.db().accounts(),
        }
    }

    /// The store's spans and traces (see [`Traces`]).
    pub fn traces(&self) -> Traces<'_> {
        match &self.backend {
            Backend::Embedded(e) => e.traces(),
            Backend::Postgres(pg) => pg.db().traces(),
        }
    }

    /// The store's issues and their occurrences (see [`Issues`]).
    pub fn issues(&self) -> Issues<'_> {
        match &self.backend {
            Backend::Embedded(e) => e.issues(),
            Backend::Postgres(pg) => pg.db().issues(),
        }
    }

    /// The store's statistics (see [`Stats`]).
    pub fn stats(&self) -> Stats<'_> {
        match &self.backend {
            Backend::Embedded(e) => e.stats(),
            Backend::Postgres(pg) => pg.db().stats(),
        }
    }

    /// The store's notes (see [`Notes`]).
    pub fn notes(&self) -> Notes<'_> {
        match &self.backend {
            Backend::Embedded(e) => e.notes(),
            Backend::Postgres(pg) => pg.db().notes(),
        }
    }

    /// The store's full-text search over notes (see [`Search`]).
    pub fn search(&self) -> Search<'_> {
        match &self.backend {
            Backend::Embedded(e) => e.search(),
            Backend::Postgres(pg) => pg.db().search(),
        }
    }

    /// Waits until every write that returned before this call is durable;
    /// returns the number of bytes written. Each call flushes on its own:
    /// concurrent callers share flushes with [`Store::sync`]. On
    /// PostgreSQL every write is durable when it returns: this returns 0
    /// at once.
    pub fn flush(&self) -> Result<usize> {
        match &self.backend {
            Backend::Embedded(e) => e.flush(),
            Backend::Postgres(_) => Ok(0),
        }
    }

    /// [`Store::flush`] as a future, for async callers.
    pub async fn flush_async(&self) -> Result<usize> {
        match &self.backend {
            Backend::Embedded(e) => e.flush_async().await,
            Backend::Postgres(_) => Ok(0),
        }
    }

    /// Waits until every write that returned before this call is durable,
    /// like [`Store::flush`], but shares the flush with concurrent callers
    /// (group commit): one caller flushes at a time, and every caller that
    /// arrives meanwhile waits for the next flush, which serves them all.
    /// A server that answers each request only once its writes are durable
    /// calls this after each request's [`Traces::ingest`]: with many requests
    /// at once, they cost a few flushes, not one each. On PostgreSQL it
    /// returns at once: a write is durable when it returns.
    ///
    /// It blocks: async callers run it on a blocking thread, as they run
    /// the ingest itself.
    pub fn sync(&self) -> Result<()> {
        match &self.backend {
            Backend::Embedded(e) => e.sync(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// The data directory of the embedded store, unless it is temporary
    /// without one; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Embedded(e) => e.path(),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether the embedded store's engine recovered existing data when it
    /// opened (false on PostgreSQL).
    pub fn was_recovered(&self) -> bool {
        match &self.backend {
            Backend::Embedded(e) => e.was_recovered(),
            Backend::Postgres(_) => false,
        }
    }

    /// The store's disk use now: the data directory, or the database's
    /// size (`pg_database_size`, in [`DiskUsage::engine_bytes`]).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        match &self.backend {
            Backend::Embedded(e) => e.disk_usage(),
            Backend::Postgres(pg) => pg.db().disk_usage(),
        }
    }

    /// Deletes spans and occurrences older than the configured retention
    /// ([`Config::retention`], [`PgConfig::retention`]) as of `now_ns`.
    /// Does nothing (but measure) without a configured retention.
    pub fn run_retention(&self, now_ns: u64) -> Result<RetentionReport> {
        match &self.backend {
            Backend::Embedded(e) => e.run_retention(now_ns),
            Backend::Postgres(pg) => pg.db().run_retention(now_ns),
        }
    }

    /// Deletes traces started before `cutoff_ns` and occurrences before it
    /// (see [`crate::retention`](crate#durability) and
    /// [`Database::purge_before`]).
    pub fn purge_before(&self, cutoff_ns: u64) -> Result<RetentionReport> {
        match &self.backend {
            Backend::Embedded(e) => e.purge_before(cutoff_ns),
            Backend::Postgres(pg) => pg.db().purge_before(cutoff_ns),
        }
    }

    /// The outcome of the last background retention pass, if one ran.
    pub fn last_retention(&self) -> Option<std::result::Result<RetentionReport, String>> {
        match &self.backend {
            Backend::Embedded(e) => e.last_retention(),
            Backend::Postgres(pg) => pg
                .last_retention
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Writes the whole store as JSON lines (see the `export` module).
    /// Writes made during the export may or may not be included.
    pub fn export(&self, out: impl Write) -> Result<TransferStats> {
        match &self.backend {
            Backend::Embedded(e) => e.export(out),
            Backend::Postgres(pg) => pg.db().export(out),
        }
    }

    /// Reads a whole export into this store, accounts included (a restore):
    /// [`Store::import_with`] and [`ImportOptions::everything`].
    pub fn import(&self, input: impl BufRead) -> Result<TransferStats> {
        self.import_with(input, ImportOptions::everything())
    }

    /// Reads an export into this store, meant to be empty: records with the
    /// same keys are replaced, counters are overwritten. Trace summaries and
    /// indexes are rebuilt. Accounts are imported only if `options` say so;
    /// they are counted either way. Call [`Store::flush`] afterwards for
    /// durability.
    pub fn import_with(
        &self,
        input: impl BufRead,
        options: ImportOptions,
    ) -> Result<TransferStats> {
        match &self.backend {
            Backend::Embedded(e) => e.import_with(input, options),
            Backend::Postgres(pg) => pg.db().import_with(input, options),
        }
    }
}
