//! `omegi export` and `omegi import`: the whole store as JSON lines, for
//! backups and for moving data to a new data directory (also across
//! on-disk schema versions), or between the embedded store and PostgreSQL
//! (`--database`). Both open the data directory directly, so the server
//! must not be running on it; an import into PostgreSQL takes an empty
//! database.
//!
//! The export file holds the accounts with their token hashes: it is
//! written readable by its owner only (0600). An import says what accounts
//! the file brings and takes them only with `--accounts`: a file alone must
//! not create admins or let its tokens in.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use omegi_store::{ImportOptions, Store, TransferStats};
use serde::Serialize;

use super::{blocking, print_json, Cli, CliError, Local};
use crate::auth::credentials_path;

/// `omegi export FILE`.
#[derive(Debug, Args)]
pub struct DataFileArgs {
    /// The JSON-lines file.
    pub file: PathBuf,
}

/// `omegi import FILE [--accounts]`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON-lines file.
    pub file: PathBuf,
    /// Import the accounts too: projects, users with their memberships,
    /// admins and tokens. Without it they are counted and skipped.
    #[arg(long)]
    pub accounts: bool,
}

/// Creates (or truncates) `file` readable and writable by its owner only
/// (0600 on Unix), also when it existed with a wider mode.
fn create_private(file: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let handle = options.open(file)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        handle.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(handle)
}

#[derive(Serialize)]
struct Moved {
    file: PathBuf,
    #[serde(flatten)]
    stats: TransferStats,
}

fn file_error(action: &str, file: &Path, e: std::io::Error) -> CliError {
    CliError::Usage(format!("cannot {action} {}: {e}", file.display()))
}

/// `omegi export FILE`: writes the store of the data directory to `FILE`.
pub async fn export(cli: &Cli, args: &DataFileArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let local = cli.local();
    let file = args.file.clone();
    let moved = blocking(move || {
        let store = local.open_existing(": nothing to export")?;
        let target = create_private(&file).map_err(|e| file_error("create", &file, e))?;
        let mut writer = BufWriter::new(target);
        let stats = store.export(&mut writer).map_err(local.error())?;
        writer
            .into_inner()
            .map_err(|e| file_error("write", &file, e.into_error()))?
            .sync_all()
            .map_err(|e| file_error("write", &file, e))?;
        Ok(Moved { file, stats })
    })
    .await?;
    report(cli, out, "exported", "to", &moved)
}

/// `omegi import FILE`: reads an export into a new data directory, its
/// accounts only with `--accounts`.
pub async fn import(cli: &Cli, args: &ImportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let local = cli.local();
    let file = args.file.clone();
    let options = ImportOptions::data_only().accounts(args.accounts);
    let moved = blocking(move || {
        if let Local::Dir(path) = &local {
            if path.exists() {
                return Err(CliError::Usage(format!(
                    "{} already holds a store: import into a new data directory (--data)",
                    path.display()
                )));
            }
        }
        let source = File::open(&file).map_err(|e| file_error("open", &file, e))?;
        let store = local.open()?;
        if matches!(local, Local::Database(_)) && !is_empty(&store).map_err(local.error())? {
            return Err(CliError::Usage(
                "the database (--database) already holds data: import into a new, empty database"
                    .into(),
            ));
        }
        let imported = store
            .import_with(BufReader::new(source), options)
            .and_then(|stats| store.flush().map(|_| stats));
        let stats = match imported {
            Ok(stats) => stats,
            Err(e) => {
                // Leave no half-imported store behind to be mistaken for a
                // whole one (a database is the operator's to drop).
                drop(store);
                if let Local::Dir(path) = &local {
                    let _ = std::fs::remove_dir_all(path);
                }
                return Err(local.error()(e));
            }
        };
        Ok(Moved { file, stats })
    })
    .await?;
    report(cli, out, "imported", "from", &moved)?;
    if cli.json {
        return Ok(());
    }
    let s = &moved.stats;
    let brought = format!(
        "{} projects, {} users, {} admins, {} tokens",
        s.projects, s.users, s.admins, s.tokens
    );
    if s.accounts {
        writeln!(out, "accounts imported: {brought}")?;
        if s.legacy_members > 0 {
            writeln!(
                out,
                "the file is from before memberships: {} users who are not admins became \
                 members of every project, as they could read every project before",
                s.legacy_members
            )?;
        }
        writeln!(
            out,
            "tokens are kept; copy credentials.json from the old data directory to {} \
             for the CLI to find them",
            credentials_path(&cli.data).display()
        )?;
    } else {
        writeln!(out, "the file brings accounts: {brought}")?;
        writeln!(
            out,
            "accounts skipped: pass --accounts to import them (its admins would be admins \
             here and its tokens valid); the first `omegi serve` creates the project \
             {:?} and the admin {:?}, and admins create the others (`omegi project add`)",
            crate::auth::DEFAULT_PROJECT,
            crate::auth::ADMIN_USER
        )?;
    }
    Ok(())
}

/// Prints what moved, for people or as JSON.
fn report(
    cli: &Cli,
    out: &mut dyn Write,
    done: &str,
    preposition: &str,
    moved: &Moved,
) -> Result<(), CliError> {
    if cli.json {
        return print_json(out, moved);
    }
    writeln!(
        out,
        "{done} {} lines {preposition} {}: {} spans, {} settled traces, {} issues, {} occurrences, {} notes",
        moved.stats.lines,
        moved.file.display(),
        moved.stats.spans,
        moved.stats.settled,
        moved.stats.issues,
        moved.stats.occurrences,
        moved.stats.notes
    )?;
    Ok(())
}

/// Whether a store holds nothing an import could collide with: no project,
/// user or note.
fn is_empty(store: &Store) -> omegi_store::Result<bool> {
    Ok(store.accounts().projects()?.is_empty()
        && store.accounts().users()?.is_empty()
        && store.notes().count()? == 0)
}
