//! One suite of store behaviour, run against every backend: the embedded
//! store on sled, and PostgreSQL (a throwaway cluster started for this
//! test process, or the one `OMEGI_TEST_DATABASE_URL` names, with a new
//! database for each test).
//!
//! Each behaviour is a function taking a fresh [`Backend`];
//! [`conformance!`] makes one test of it per backend.

mod accounts;
mod attachments;
#[path = "../common/mod.rs"]
mod common;
mod folders;
mod issues;
mod model;
mod notes;
mod retention;
mod search;
mod stats;
mod traces;
mod transfer;
mod vault;
mod writers;

use omegi_core::note::AttachmentLimits;
use omegi_store::postgres::{Database, PgConfig, Throwaway};
use omegi_store::{
    Accounts, Config, ImportOptions, Issues, Notes, RetentionReport, Search, Stats, Store, Traces,
    TransferStats,
};

/// A fresh, empty store on one backend. Clones share its data, as two
/// handles of one process (sled) or two connections (PostgreSQL) do.
#[derive(Clone)]
pub(crate) enum Backend {
    Sled(Store),
    /// The database, and the URL it was opened with.
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
        Backend::Postgres(Self::connect(PgConfig::new(&url)), url)
    }

    fn connect(config: PgConfig) -> Database {
        Database::connect_with(config).unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e)))
    }

    /// Another node on the same data: on PostgreSQL a database opened
    /// again (its own pool of connections), on sled the same store.
    pub(crate) fn node(&self) -> Backend {
        match self {
            Backend::Sled(store) => Backend::Sled(store.clone()),
            Backend::Postgres(_, url) => {
                Backend::Postgres(Self::connect(PgConfig::new(url)), url.clone())
            }
        }
    }

    /// This backend's data, opened again with other attachment limits.
    pub(crate) fn with_attachment_limits(&self, limits: AttachmentLimits) -> Backend {
        match self {
            Backend::Sled(_) => {
                let mut config = Config::temporary();
                config.attachment_limits = limits;
                Backend::Sled(Store::open_with(config).unwrap())
            }
            Backend::Postgres(_, url) => Backend::Postgres(
                Self::connect(PgConfig::new(url).attachment_limits(limits)),
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

    pub(crate) fn notes(&self) -> Notes<'_> {
        match self {
            Backend::Sled(store) => store.notes(),
            Backend::Postgres(db, _) => db.notes(),
        }
    }

    /// A fresh, empty store on the same backend.
    pub(crate) fn another(&self) -> Backend {
        match self {
            Backend::Sled(_) => Backend::sled(),
            Backend::Postgres(..) => Backend::postgres(),
        }
    }

    pub(crate) fn search(&self) -> Search<'_> {
        match self {
            Backend::Sled(store) => store.search(),
            Backend::Postgres(db, _) => db.search(),
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

    pub(crate) fn export(&self, out: impl std::io::Write) -> omegi_store::Result<TransferStats> {
        match self {
            Backend::Sled(store) => store.export(out),
            Backend::Postgres(db, _) => db.export(out),
        }
    }

    pub(crate) fn import_with(
        &self,
        input: impl std::io::BufRead,
        options: ImportOptions,
    ) -> omegi_store::Result<TransferStats> {
        match self {
            Backend::Sled(store) => store.import_with(input, options),
            Backend::Postgres(db, _) => db.import_with(input, options),
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
    search::suggestions_put_linked_notes_first_then_matches,
    accounts::memberships_are_added_listed_and_removed,
    accounts::tokens_have_ids_labels_and_owners,
    accounts::last_use_is_recorded_coarsely_and_never_revives_a_revoked_token,
    accounts::finding_a_token_is_one_read_whether_it_exists_or_not,
    notes::links_and_backlinks_follow_edits_renames_and_deletes,
    notes::rename_keeps_alias_links_and_links_in_code,
    notes::updates_are_optimistic_and_only_for_the_author,
    notes::an_update_with_a_new_title_renames_in_one_checked_revision,
    notes::a_private_note_is_invisible_to_others_on_every_path,
    notes::same_title_resolves_per_viewer,
    notes::embeds_render_for_the_viewer,
    notes::notes_listing_filters,
    notes::graph_of_the_store_matches_the_core_graph,
    folders::colliding_names_resolve_by_folder_in_the_index,
    folders::a_private_note_in_a_folder_is_never_resolved_for_others,
    folders::moving_a_note_updates_the_links_to_it,
    folders::renaming_keeps_path_links_as_paths,
    folders::folders_are_normalized_and_bad_ones_refused,
    vault::a_vault_imports_with_subfolders_front_matter_and_links,
    vault::export_then_import_keeps_titles_bodies_tags_and_links,
    attachments::files_are_added_read_and_deleted_by_the_author_only,
    attachments::files_of_a_private_note_stay_hidden,
    attachments::a_link_finds_its_own_file_first_then_the_oldest,
    attachments::files_go_with_their_note,
    attachments::limits_count_what_the_note_holds,
    attachments::restored_files_keep_their_times,
    search::search_follows_writes_and_is_rebuilt_from_the_notes,
    search::notes_written_on_another_node_reach_this_node_s_search,
    search::private_notes_of_others_change_nothing_a_viewer_sees,
    search::deleted_and_private_notes_do_not_count_either,
    writers::one_of_two_updates_of_a_revision_wins,
    writers::concurrent_issue_links_are_all_kept,
    writers::a_rename_sees_a_link_written_meanwhile,
    traces::one_call_stores_the_records_of_several_processes,
    traces::spans_are_kept_by_trace_and_listed_by_time_project_and_service,
    traces::a_late_root_moves_the_trace_in_time_without_duplicating_it,
    traces::a_trace_lists_under_services_of_any_name,
    traces::the_same_request_three_times_is_stored_and_counted_once,
    traces::a_changed_copy_of_a_span_replaces_it_without_counting_again,
    traces::a_trace_id_sent_to_two_projects_is_two_traces,
    traces::a_refused_ingest_stores_nothing_and_the_store_goes_on,
    traces::settled_traces_are_stored_once_and_sampled_out_ones_keep_their_statistics,
    traces::settled_many_answers_as_settled_does_for_each_trace,
    traces::a_late_part_of_a_trace_takes_back_an_occurrence_that_became_a_consequence,
    traces::a_new_error_seen_by_two_nodes_at_once_is_new_once,
    issues::errors_group_into_issues_that_resolve_regress_and_ignore,
    issues::latest_occurrences_come_newest_first_and_stop_at_the_limit,
    issues::summaries_carry_short_texts_whatever_was_stored,
    model::store_agrees_with_a_model,
    retention::retention_deletes_old_spans_and_occurrences_but_keeps_issues,
    stats::statistics_count_errors_per_bucket_service_and_project,
    stats::clones_share_one_database_across_threads,
    transfer::an_export_imported_into_an_empty_store_exports_the_same_text,
    transfer::an_export_moves_to_the_other_backend_and_back_unchanged,
    transfer::notes_of_an_import_reach_the_search_of_every_node,
    transfer::exports_of_older_versions_are_read,
    transfer::an_import_takes_accounts_only_when_asked_and_always_counts_them,
    transfer::an_export_larger_than_a_batch_reads_back_the_same,
);
