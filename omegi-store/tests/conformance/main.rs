//! One suite of store behaviour, run against every backend: the embedded
//! store on sled, and PostgreSQL (a throwaway cluster started for this
//! test process, or the one `OMEGI_TEST_DATABASE_URL` names, with a new
//! database for each test).
//!
//! Each behaviour is a function taking a fresh [`Backend`];
//! [`conformance!`] makes one test of it per backend.

mod accounts;
#[path = "../common/mod.rs"]
mod common;
mod issues;
mod model;
mod retention;
mod stats;
mod traces;

use omegi_store::postgres::{Database, Throwaway};
use omegi_store::{Accounts, Issues, RetentionReport, Stats, Store, Traces};

/// A fresh, empty store on one backend. Clones share its data, as two
/// handles of one process (sled) or two connections (PostgreSQL) do.
#[derive(Clone)]
pub(crate) enum Backend {
    Sled(Store),
    /// A database, and the URL it was reached by.
    Postgres(Database, String),
}

impl Backend {
    fn sled() -> Self {
        Backend::Sled(Store::temporary().unwrap())
    }

    fn postgres() -> Self {
        let cluster = Throwaway::shared().unwrap_or_else(|e| panic!("{e}"));
        let url = cluster
            .create_database()
            .unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)));
        let db =
            Database::connect(&url).unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)));
        Backend::Postgres(db, url)
    }

    /// A new, empty store on the same backend.
    pub(crate) fn fresh(&self) -> Self {
        match self {
            Backend::Sled(_) => Backend::sled(),
            Backend::Postgres(..) => Backend::postgres(),
        }
    }

    /// Another handle on the same data, as another node would have: a clone
    /// of the store (sled), or a new pool of connections (PostgreSQL).
    pub(crate) fn another_node(&self) -> Self {
        match self {
            Backend::Sled(store) => Backend::Sled(store.clone()),
            Backend::Postgres(_, url) => Backend::Postgres(
                Database::connect(url).unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e))),
                url.clone(),
            ),
        }
    }

    pub(crate) fn accounts(&self) -> &dyn Accounts {
        match self {
            Backend::Sled(store) => store.accounts(),
            Backend::Postgres(db, _) => db.accounts(),
        }
    }

    pub(crate) fn traces(&self) -> Traces<'_> {
        match self {
            Backend::Sled(store) => store.traces(),
            Backend::Postgres(db, _) => db.traces(),
        }
    }

    pub(crate) fn issues(&self) -> Issues<'_> {
        match self {
            Backend::Sled(store) => store.issues(),
            Backend::Postgres(db, _) => db.issues(),
        }
    }

    pub(crate) fn purge_before(&self, cutoff_ns: u64) -> RetentionReport {
        match self {
            Backend::Sled(store) => store.purge_before(cutoff_ns).unwrap(),
            Backend::Postgres(db, _) => db.purge_before(cutoff_ns).unwrap(),
        }
    }

    pub(crate) fn stats(&self) -> Stats<'_> {
        match self {
            Backend::Sled(store) => store.stats(),
            Backend::Postgres(db, _) => db.stats(),
        }
    }
}

/// One test per backend for each behaviour named: `sled::name` and
/// `postgres::name`.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sled {
            $(
                #[test]
                fn $name() {
                    crate::$module::$name(crate::Backend::sled());
                }
            )*
        }

        mod postgres {
            $(
                #[test]
                fn $name() {
                    crate::$module::$name(crate::Backend::postgres());
                }
            )*
        }
    };
}

conformance!(
    accounts::memberships_are_added_listed_and_removed,
    accounts::tokens_have_ids_labels_and_owners,
    accounts::last_use_is_recorded_coarsely_and_never_revives_a_revoked_token,
    accounts::finding_a_token_is_one_read_whether_it_exists_or_not,
    traces::one_call_stores_the_records_of_several_processes,
    traces::spans_are_kept_by_trace_and_listed_by_time_project_and_service,
    traces::a_late_root_moves_the_trace_in_time_without_duplicating_it,
    traces::the_same_request_three_times_is_stored_and_counted_once,
    traces::a_changed_copy_of_a_span_replaces_it_without_counting_again,
    traces::a_trace_id_sent_to_two_projects_is_two_traces,
    traces::a_refused_ingest_stores_nothing_and_the_store_goes_on,
    traces::settled_traces_are_stored_once_and_sampled_out_ones_keep_their_statistics,
    traces::a_late_part_of_a_trace_takes_back_an_occurrence_that_became_a_consequence,
    traces::a_new_error_seen_by_two_nodes_at_once_is_new_once,
    issues::errors_group_into_issues_that_resolve_regress_and_ignore,
    issues::latest_occurrences_come_newest_first_and_stop_at_the_limit,
    issues::summaries_carry_short_texts_whatever_was_stored,
    model::store_agrees_with_a_model,
    retention::retention_deletes_old_spans_and_occurrences_but_keeps_issues,
    stats::statistics_count_errors_per_bucket_service_and_project,
    stats::clones_share_one_database_across_threads,
);
