//! Accounts: `/api/projects` with their members, `/api/users`, and
//! `/api/tokens`.
//!
//! Who may do what:
//! - every user lists the projects they belong to (an admin: all), the
//!   members of those projects, and the users (with the memberships the
//!   caller shares); a project the caller does not belong to answers 404,
//!   like one that does not exist;
//! - only admins create projects and users and change memberships (403 for
//!   anyone else, whatever the project);
//! - every user lists, issues, revokes and rotates their own API tokens;
//!   only admins do so for project (ingest) tokens and other users' tokens
//!   (403 for a request naming them; a token id that is not the caller's
//!   answers 404, like one that does not exist).

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use omegi_store::{Token, TokenOwner};
use serde::Deserialize;

use super::extract::{JsonBody, Path, Query};
use super::views::{CreatedAccount, IssuedToken, MemberView, ProjectView, TokenView, UserView};
use super::{blocking, readable_projects, ApiError, ApiUser, AppState, SharedState};
use crate::auth::{self, AccountError};

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Exists { .. } | AccountError::TooManyTokens { .. } => {
                ApiError::Conflict(e.to_string())
            }
            AccountError::InvalidName { .. } => ApiError::BadRequest(e.to_string()),
            AccountError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            AccountError::Store(s) => ApiError::Store(s),
        }
    }
}

/// 403 unless `login` is an admin; `what` says what only an admin may do.
fn require_admin(state: &AppState, login: &str, what: &str) -> Result<(), ApiError> {
    if state.store.accounts().is_admin(login)? {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only an admin may {what}; {login:?} is not one"
        )))
    }
}

pub(super) async fn list_projects(
    State(state): State<SharedState>,
    user: ApiUser,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    blocking(&state, move |state| {
        let readable = readable_projects(state, &user)?;
        let mut tokens: BTreeMap<String, usize> = BTreeMap::new();
        for token in state.store.accounts().tokens(None)? {
            if let TokenOwner::Project(id) = token.owner {
                *tokens.entry(id).or_default() += 1;
            }
        }
        Ok(Json(
            state
                .store
                .accounts()
                .projects()?
                .into_iter()
                .filter(|p| readable.contains(&p.id))
                .map(|p| {
                    let count = tokens.get(&p.id).copied().unwrap_or(0);
                    ProjectView {
                        has_token: count > 0,
                        tokens: count,
                        id: p.id,
                        name: p.name,
                        created_ns: p.created_ns,
                    }
                })
                .collect(),
        ))
    })
    .await
}

/// Body of `POST /api/projects`.
#[derive(Debug, Deserialize)]
pub(super) struct NewProject {
    id: String,
    name: Option<String>,
}

pub(super) async fn create_project(
    State(state): State<SharedState>,
    ApiUser(login): ApiUser,
    JsonBody(body): JsonBody<NewProject>,
) -> Result<(StatusCode, Json<CreatedAccount>), ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &login, "create projects")?;
        let (mut project, token) = auth::create_project(&state.store, &body.id)?;
        if let Some(name) = body.name {
            project.name = name;
            state.store.accounts().put_project(&project)?;
        }
        Ok((
            StatusCode::CREATED,
            Json(CreatedAccount {
                name: project.id,
                token,
            }),
        ))
    })
    .await
}

/// The members of `project`: those named, and the admins.
fn members(state: &AppState, project: &str) -> Result<Vec<MemberView>, ApiError> {
    let admins: HashSet<String> = state.store.accounts().admins()?.into_iter().collect();
    let mut out: Vec<MemberView> = state
        .store
        .accounts()
        .users()?
        .into_iter()
        .filter_map(|u| {
            let admin = admins.contains(&u.login);
            let named = u.is_member(project);
            (admin || named).then_some(MemberView {
                login: u.login,
                admin,
                named,
            })
        })
        .collect();
    out.sort_by(|a, b| a.login.cmp(&b.login));
    Ok(out)
}

/// 404 for a project that does not exist.
fn existing_project(state: &AppState, project: &str) -> Result<(), ApiError> {
    match state.store.accounts().project(project)? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no project {project:?}"))),
    }
}

pub(super) async fn list_members(
    State(state): State<SharedState>,
    user: ApiUser,
    Path(project): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    blocking(&state, move |state| {
        readable_projects(state, &user)?.require(&project)?;
        existing_project(state, &project)?;
        Ok(Json(members(state, &project)?))
    })
    .await
}

pub(super) async fn add_member(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    Path((project, login)): Path<(String, String)>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &caller, "change memberships")?;
        state.store.accounts().add_member(&project, &login)?;
        Ok(Json(members(state, &project)?))
    })
    .await
}

pub(super) async fn remove_member(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    Path((project, login)): Path<(String, String)>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &caller, "change memberships")?;
        if !state.store.accounts().remove_member(&project, &login)? {
            return Err(ApiError::NotFound(format!(
                "{login:?} is not a member of {project:?} by name"
            )));
        }
        Ok(Json(members(state, &project)?))
    })
    .await
}

pub(super) async fn list_users(
    State(state): State<SharedState>,
    user: ApiUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    blocking(&state, move |state| {
        let readable = readable_projects(state, &user)?;
        let admins: HashSet<String> = state.store.accounts().admins()?.into_iter().collect();
        Ok(Json(
            state
                .store
                .accounts()
                .users()?
                .into_iter()
                .map(|u| UserView {
                    admin: admins.contains(&u.login),
                    // Memberships of projects the caller does not belong
                    // to are not revealed.
                    projects: u
                        .projects
                        .into_iter()
                        .filter(|p| readable.contains(p))
                        .collect(),
                    login: u.login,
                    name: u.name,
                    created_ns: u.created_ns,
                })
                .collect(),
        ))
    })
    .await
}

/// Body of `POST /api/users`.
#[derive(Debug, Deserialize)]
pub(super) struct NewUser {
    login: String,
    name: Option<String>,
    /// Whether the new user may create projects and users.
    #[serde(default)]
    admin: bool,
    /// Projects the new user is a member of.
    #[serde(default)]
    projects: Vec<String>,
}

pub(super) async fn create_user(
    State(state): State<SharedState>,
    ApiUser(login): ApiUser,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<CreatedAccount>), ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &login, "create users")?;
        let (mut user, token) =
            auth::create_user(&state.store, &body.login, body.admin, &body.projects)?;
        if let Some(name) = body.name {
            user.name = name;
            state.store.accounts().put_user(&user)?;
        }
        Ok((
            StatusCode::CREATED,
            Json(CreatedAccount {
                name: user.login,
                token,
            }),
        ))
    })
    .await
}

/// Whose tokens a request is about: `user` or `project`, else the caller.
fn token_owner(
    state: &AppState,
    caller: &str,
    user: Option<String>,
    project: Option<String>,
) -> Result<TokenOwner, ApiError> {
    match (user, project) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "name a user or a project, not both".into(),
        )),
        (None, Some(project)) => {
            require_admin(state, caller, "manage a project's tokens")?;
            existing_project(state, &project)?;
            Ok(TokenOwner::Project(project))
        }
        (Some(login), None) if login != caller => {
            require_admin(state, caller, "manage another user's tokens")?;
            if state.store.accounts().user(&login)?.is_none() {
                return Err(ApiError::NotFound(format!("no user {login:?}")));
            }
            Ok(TokenOwner::User(login))
        }
        _ => Ok(TokenOwner::User(caller.to_owned())),
    }
}

/// The token `id`, if the caller may manage it: their own, or any for an
/// admin. Anyone else's answers 404, like a token that does not exist.
fn manageable_token(state: &AppState, caller: &str, id: &str) -> Result<Token, ApiError> {
    let not_found = || ApiError::NotFound(format!("no token {id:?}"));
    let token = state.store.accounts().token(id)?.ok_or_else(not_found)?;
    if token.owner == TokenOwner::User(caller.to_owned())
        || state.store.accounts().is_admin(caller)?
    {
        Ok(token)
    } else {
        Err(not_found())
    }
}

/// Query of `GET /api/tokens`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenListParams {
    /// This user's tokens (the caller's own by default).
    user: Option<String>,
    /// This project's ingest tokens (admins).
    project: Option<String>,
    /// Every token (admins).
    #[serde(default)]
    all: bool,
}

pub(super) async fn list_tokens(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    Query(params): Query<TokenListParams>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    blocking(&state, move |state| {
        let tokens = if params.all {
            if params.user.is_some() || params.project.is_some() {
                return Err(ApiError::BadRequest(
                    "all=true lists every token: name no user or project".into(),
                ));
            }
            require_admin(state, &caller, "list every token")?;
            state.store.accounts().tokens(None)?
        } else {
            let owner = token_owner(state, &caller, params.user, params.project)?;
            state.store.accounts().tokens(Some(&owner))?
        };
        Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
    })
    .await
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct NewToken {
    /// For this user (the caller by default).
    user: Option<String>,
    /// For this project (admins).
    project: Option<String>,
    /// What it is for: a service, a machine (at most 128 characters).
    #[serde(default)]
    label: String,
}

pub(super) async fn create_token(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    blocking(&state, move |state| {
        let owner = token_owner(state, &caller, body.user, body.project)?;
        let (token, secret) =
            auth::issue_token(&state.store, owner, body.label.trim(), state.max_tokens)?;
        Ok((
            StatusCode::CREATED,
            Json(IssuedToken {
                view: token.into(),
                token: secret,
                revoked: None,
            }),
        ))
    })
    .await
}

pub(super) async fn revoke_token(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    blocking(&state, move |state| {
        manageable_token(state, &caller, &id)?;
        let revoked = state
            .store
            .accounts()
            .revoke_token(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("no token {id:?}")))?;
        Ok(Json(revoked.into()))
    })
    .await
}

/// Query of `POST /api/tokens/{id}/rotate`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RotateParams {
    /// Keep the old token valid (revoke it later yourself).
    #[serde(default)]
    keep_old: bool,
}

pub(super) async fn rotate_token(
    State(state): State<SharedState>,
    ApiUser(caller): ApiUser,
    Path(id): Path<String>,
    Query(params): Query<RotateParams>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    blocking(&state, move |state| {
        manageable_token(state, &caller, &id)?;
        let (token, secret, revoked) =
            auth::rotate_token(&state.store, &id, params.keep_old, state.max_tokens)?;
        Ok((
            StatusCode::CREATED,
            Json(IssuedToken {
                view: token.into(),
                token: secret,
                revoked: revoked.map(TokenView::from),
            }),
        ))
    })
    .await
}
