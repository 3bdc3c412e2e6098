//! The store's handles: borrowed views of a [`Store`], one per concern.
//!
//! Each is returned by a method of [`Store`] ([`Store::traces`],
//! [`Store::issues`], [`Store::stats`]) and by [`Database`], costs nothing
//! to make and holds nothing but the reference; the methods of each are
//! written in the module of what they keep. [`Traces`], [`Issues`] and
//! [`Stats`] are one concrete type over either backend rather than a trait
//! per backend, because their writes share one implementation of the rules
//! (the crate's `staging` module) and only the storage underneath differs;
//! a trait would invite a second copy of them. The other concerns are
//! their own types: [`Store::accounts`] is a trait object, [`Store::notes`]
//! and [`Store::search`] the same [`Notes`](crate::Notes) and
//! [`Search`](crate::Search) over either backend.

use crate::postgres::Database;
use crate::Embedded;
#[cfg(doc)]
use crate::Store;

/// A handle on the data path: the same type whichever backend holds the
/// data, so that callers of the embedded store and of PostgreSQL write the
/// same code. The rules (how an issue is derived, when it regresses, what
/// counts once) are written once, over the crate-private
/// [`Staging`](crate::staging::Staging) interface; each backend only stores
/// and fetches.
macro_rules! data_handle {
    ($(#[$doc:meta])* $name:ident, $accessor:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a> {
            pub(crate) at: At<'a>,
        }

        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.at {
                    At::Sled(store) => f.debug_tuple(stringify!($name)).field(store).finish(),
                    At::Pg(db) => f.debug_tuple(stringify!($name)).field(db).finish(),
                }
            }
        }

        impl Embedded {
            #[doc = concat!("The store's ", $what, " (see [`", stringify!($name), "`]).")]
            pub fn $accessor(&self) -> $name<'_> {
                $name { at: At::Sled(self) }
            }
        }

        impl Database {
            #[doc = concat!("The database's ", $what, " (see [`", stringify!($name), "`]).")]
            pub fn $accessor(&self) -> $name<'_> {
                $name { at: At::Pg(self) }
            }
        }
    };
}

/// Which backend a data handle reads and writes.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    /// The embedded store.
    Sled(&'a Embedded),
    /// A PostgreSQL database.
    Pg(&'a Database),
}

data_handle!(
    /// Spans and traces: what is ingested ([`Traces::ingest`],
    /// [`Traces::ingest_resources`], [`Traces::ingest_settled`]) and read
    /// back ([`Traces::list`], [`Traces::get`], [`Traces::spans`],
    /// [`Traces::span`]), and what is known of a settled trace
    /// ([`Traces::settled`], [`Traces::settlement`]).
    Traces,
    traces,
    "spans and traces"
);

data_handle!(
    /// Issues, the errors grouped by fingerprint, and their occurrences:
    /// [`Issues::get`], [`Issues::list`], [`Issues::set_status`],
    /// [`Issues::occurrences`], [`Issues::latest_occurrences`],
    /// [`Issues::histogram`], [`Issues::new_issues`]...
    Issues,
    issues,
    "issues and their occurrences"
);

data_handle!(
    /// Counts for a dashboard: errors per bucket ([`Stats::error_counts`],
    /// [`Stats::service_error_counts`]), the services seen
    /// ([`Stats::services`]), the totals ([`Stats::summary`]), and the
    /// traffic counted from every settled trace ([`Stats::route_stats`],
    /// [`Stats::service_edges`], [`Stats::sampling_totals`]).
    Stats,
    stats,
    "statistics"
);
