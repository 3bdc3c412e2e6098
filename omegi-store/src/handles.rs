//! The store's handles: borrowed views of a [`Store`], one per concern.
//!
//! Each is returned by a method of [`Store`] ([`Store::traces`],
//! [`Store::issues`], [`Store::stats`]), costs nothing to
//! make and holds nothing but the reference; the methods of each are
//! written in the module of what they keep. The concerns shared with the
//! PostgreSQL backend are their own types: [`Store::accounts`] is a trait
//! object, [`Store::notes`] and [`Store::search`] the same
//! [`Notes`](crate::Notes) and [`Search`](crate::Search) over either backend.

use crate::{Core, Store};

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $accessor:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'a> {
            pub(crate) store: &'a Store,
        }

        impl<'a> $name<'a> {
            pub(crate) fn core(&self) -> &'a Core {
                self.store.core()
            }
        }

        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(self.store).finish()
            }
        }

        impl Store {
            #[doc = concat!("The store's ", $what, " (see [`", stringify!($name), "`]).")]
            pub fn $accessor(&self) -> $name<'_> {
                $name { store: self }
            }
        }
    };
}

handle!(
    /// Spans and traces: what is ingested ([`Traces::ingest`],
    /// [`Traces::ingest_resources`], [`Traces::ingest_settled`]) and read
    /// back ([`Traces::list`], [`Traces::get`], [`Traces::spans`],
    /// [`Traces::span`]), and what is known of a settled trace
    /// ([`Traces::settled`], [`Traces::settlement`]).
    Traces,
    traces,
    "spans and traces"
);

handle!(
    /// Issues, the errors grouped by fingerprint, and their occurrences:
    /// [`Issues::get`], [`Issues::list`], [`Issues::set_status`],
    /// [`Issues::occurrences`], [`Issues::latest_occurrences`],
    /// [`Issues::histogram`], [`Issues::new_issues`]...
    Issues,
    issues,
    "issues and their occurrences"
);

handle!(
    /// Counts for a dashboard: errors per bucket ([`Stats::error_counts`],
    /// [`Stats::service_error_counts`]), the services seen
    /// ([`Stats::services`]), the totals ([`Stats::summary`]), and the
    /// traffic counted from every settled trace ([`Stats::route_stats`],
    /// [`Stats::service_edges`], [`Stats::sampling_totals`]).
    Stats,
    stats,
    "statistics"
);
