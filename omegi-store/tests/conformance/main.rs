//! One suite of store behaviour, run against every backend: the embedded
//! store on sled, and PostgreSQL (a throwaway cluster started for this
//! test process, or the one `OMEGI_TEST_DATABASE_URL` names, with a new
//! database for each test).
//!
//! Each behaviour is a function taking a fresh [`Backend`];
//! [`conformance!`] makes one test of it per backend.

mod accounts;

use omegi_store::postgres::{Database, Throwaway};
use omegi_store::{Accounts, Store};

/// A fresh, empty store on one backend. Clones share its data, as two
/// handles of one process (sled) or two connections (PostgreSQL) do.
#[derive(Clone)]
pub(crate) enum Backend {
    Sled(Store),
    Postgres(Database),
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
        Backend::Postgres(
            Database::connect(&url).unwrap_or_else(|e| panic!("{}", omegi_core::ErrorChain(&e))),
        )
    }

    pub(crate) fn accounts(&self) -> &dyn Accounts {
        match self {
            Backend::Sled(store) => store.accounts(),
            Backend::Postgres(db) => db.accounts(),
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
);
