//! `/api/projects` and `/api/users`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::extract::JsonBody;
use super::views::{CreatedAccount, ProjectView, UserView};
use super::{blocking, ApiError, ApiUser, AppState, SharedState};
use crate::auth::{self, AccountError};

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Exists { .. } => ApiError::Conflict(e.to_string()),
            AccountError::InvalidName { .. } => ApiError::BadRequest(e.to_string()),
            AccountError::Store(s) => ApiError::Store(s),
        }
    }
}

pub(super) async fn list_projects(
    State(state): State<SharedState>,
    _user: ApiUser,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    blocking(&state, |state| {
        Ok(Json(
            state
                .store
                .projects()?
                .into_iter()
                .map(|p| ProjectView {
                    has_token: p.token_hash.is_some(),
                    id: p.id,
                    name: p.name,
                    created_ns: p.created_ns,
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

/// Only admins create projects and users.
fn require_admin(state: &AppState, login: &str, what: &str) -> Result<(), ApiError> {
    if state.store.is_admin(login)? {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only an admin may create {what}; {login:?} is not one"
        )))
    }
}

pub(super) async fn create_project(
    State(state): State<SharedState>,
    ApiUser(login): ApiUser,
    JsonBody(body): JsonBody<NewProject>,
) -> Result<(StatusCode, Json<CreatedAccount>), ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &login, "projects")?;
        let (mut project, token) = auth::create_project(&state.store, &body.id)?;
        if let Some(name) = body.name {
            project.name = name;
            state.store.put_project(&project)?;
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

pub(super) async fn list_users(
    State(state): State<SharedState>,
    _user: ApiUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    blocking(&state, |state| {
        let admins: std::collections::HashSet<String> = state.store.admins()?.into_iter().collect();
        Ok(Json(
            state
                .store
                .users()?
                .into_iter()
                .map(|u| UserView {
                    admin: admins.contains(&u.login),
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
}

pub(super) async fn create_user(
    State(state): State<SharedState>,
    ApiUser(login): ApiUser,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<CreatedAccount>), ApiError> {
    blocking(&state, move |state| {
        require_admin(state, &login, "users")?;
        let (mut user, token) = auth::create_user(&state.store, &body.login, body.admin)?;
        if let Some(name) = body.name {
            user.name = name;
            state.store.put_user(&user)?;
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
