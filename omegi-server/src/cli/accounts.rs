//! `omegi project add-member|remove-member|members` and `omegi token
//! list|add|revoke|rotate`: memberships and tokens, through the API.
//!
//! `omegi token add` with `--user` or `--project` also works without a
//! server, on the data directory directly (while no server holds it): the
//! way back in when every admin token is lost.

use std::io::Write;

use clap::Subcommand;
use omegi_store::TokenOwner;
use serde::Serialize;

use super::{blocking, print_json, render, Cli, CliError};
use crate::api::now_ns;
use crate::api::views::{IssuedToken, MemberView, TokenView};
use crate::auth;

/// `omegi token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List tokens (ids, labels, when created and last used; never the
    /// tokens): your own, a user's or a project's (admins), or all (admins).
    List {
        /// A project's ingest tokens.
        #[arg(long, conflicts_with_all = ["user", "all"])]
        project: Option<String>,
        /// A user's API tokens.
        #[arg(long, conflicts_with = "all")]
        user: Option<String>,
        /// Every token.
        #[arg(long)]
        all: bool,
    },
    /// Issue a new token and print it (shown once): for you, a user or a
    /// project (admins).
    Add {
        /// An ingest token of this project (one per service, say).
        #[arg(long, conflicts_with = "user")]
        project: Option<String>,
        /// An API token of this user.
        #[arg(long)]
        user: Option<String>,
        /// What it is for: a service, a machine.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token: it is refused at once, everywhere.
    Revoke {
        /// The token's id (from `omegi token list`).
        id: String,
    },
    /// Issue a new token with the same owner and label and revoke the old
    /// one (unless --keep-old).
    Rotate {
        /// The token's id.
        id: String,
        /// Keep the old token valid, to revoke it once every client has the
        /// new one.
        #[arg(long)]
        keep_old: bool,
    },
}

/// Membership commands of `omegi project`.
#[derive(Debug, Clone)]
pub enum MembershipCommand {
    /// Make a user a member of a project.
    Add {
        /// The project.
        project: String,
        /// The user.
        login: String,
    },
    /// End a user's membership of a project.
    Remove {
        /// The project.
        project: String,
        /// The user.
        login: String,
    },
    /// List a project's members.
    List {
        /// The project.
        project: String,
    },
}

fn member_path(project: &str, login: &str) -> String {
    format!("/api/projects/{project}/members/{login}")
}

/// Runs a membership command.
pub(super) async fn membership(
    cli: &Cli,
    command: &MembershipCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = cli.client()?;
    let (project, members): (&str, Vec<MemberView>) = match command {
        MembershipCommand::Add { project, login } => (
            project,
            client
                .post(&member_path(project, login), None::<&()>)
                .await?,
        ),
        MembershipCommand::Remove { project, login } => {
            (project, client.delete(&member_path(project, login)).await?)
        }
        MembershipCommand::List { project } => (
            project,
            client
                .get(&format!("/api/projects/{project}/members"), &[])
                .await?,
        ),
    };
    if cli.json {
        return print_json(out, &members);
    }
    match command {
        MembershipCommand::Add { login, .. } => writeln!(out, "{login} is a member of {project}")?,
        MembershipCommand::Remove { login, .. } => {
            writeln!(out, "{login} is no longer a member of {project}")?
        }
        MembershipCommand::List { .. } => write!(out, "{}", render::members(project, &members))?,
    }
    Ok(())
}

/// Runs `omegi token …`.
pub(super) async fn token(
    cli: &Cli,
    command: &TokenCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        TokenCommand::List { project, user, all } => {
            let mut query = Vec::new();
            if let Some(p) = project {
                query.push(("project", p.clone()));
            }
            if let Some(u) = user {
                query.push(("user", u.clone()));
            }
            if *all {
                query.push(("all", "true".to_owned()));
            }
            let list: Vec<TokenView> = cli.client()?.get("/api/tokens", &query).await?;
            if cli.json {
                return print_json(out, &list);
            }
            write!(out, "{}", render::tokens(&list, now_ns()))?;
            Ok(())
        }
        TokenCommand::Add {
            project,
            user,
            label,
        } => {
            let issued = add_token(cli, project.clone(), user.clone(), label).await?;
            print_issued(cli, out, &issued)
        }
        TokenCommand::Revoke { id } => {
            let revoked: TokenView = cli.client()?.delete(&format!("/api/tokens/{id}")).await?;
            if cli.json {
                return print_json(out, &revoked);
            }
            writeln!(
                out,
                "revoked {} token {} of {} ({})",
                revoked.kind,
                revoked.id,
                revoked.owner,
                shown_label(&revoked.label)
            )?;
            Ok(())
        }
        TokenCommand::Rotate { id, keep_old } => {
            let path = if *keep_old {
                format!("/api/tokens/{id}/rotate?keep_old=true")
            } else {
                format!("/api/tokens/{id}/rotate")
            };
            let issued: IssuedToken = cli.client()?.post(&path, None::<&()>).await?;
            print_issued(cli, out, &issued)
        }
    }
}

fn shown_label(label: &str) -> &str {
    if label.is_empty() {
        "no label"
    } else {
        label
    }
}

fn print_issued(cli: &Cli, out: &mut dyn Write, issued: &IssuedToken) -> Result<(), CliError> {
    if cli.json {
        return print_json(out, issued);
    }
    let t = &issued.view;
    writeln!(
        out,
        "new {} token {} of {} ({})",
        t.kind,
        t.id,
        t.owner,
        shown_label(&t.label)
    )?;
    writeln!(out, "token: {}", issued.token)?;
    writeln!(out, "(shown once: only its hash is stored)")?;
    if let Some(old) = &issued.revoked {
        writeln!(out, "revoked the old token {}", old.id)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct NewToken<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    label: &'a str,
}

/// Issues a token through the API, or, when no server answers and the
/// owner is named, directly in the data directory.
async fn add_token(
    cli: &Cli,
    project: Option<String>,
    user: Option<String>,
    label: &str,
) -> Result<IssuedToken, CliError> {
    let body = NewToken {
        project: project.clone(),
        user: user.clone(),
        label,
    };
    let token = cli.resolve_token()?;
    let owner = match (project, user) {
        (Some(p), _) => Some(TokenOwner::Project(p)),
        (None, Some(u)) => Some(TokenOwner::User(u)),
        (None, None) => None,
    };
    if token.is_some() || owner.is_none() {
        match cli
            .client_with(token)?
            .post("/api/tokens", Some(&body))
            .await
        {
            Ok(issued) => return Ok(issued),
            Err(CliError::Http { source, .. }) if source.is_connect() && owner.is_some() => {}
            Err(other) => return Err(other),
        }
    }
    let Some(owner) = owner else {
        return Err(CliError::NoToken);
    };
    let local = cli.local();
    let label = label.trim().to_owned();
    blocking(move || {
        let store = local.open_existing(" and no server at the given address")?;
        let (token, secret) = auth::issue_token(&store, owner, &label, auth::DEFAULT_MAX_TOKENS)?;
        store.flush().map_err(local.error())?;
        Ok(IssuedToken {
            view: token.into(),
            token: secret,
            revoked: None,
        })
    })
    .await
}
