//! What the web UI needs beyond the rest of the API.
//!
//! - `GET /api/me`: who the token belongs to, whether they are an admin and
//!   the projects they may read (the UI shows the signed-in user and tells
//!   the user's own notes from everyone's).
//!
//! The notes, search and graph routes the UI uses are in [`super::notes`].

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::views::MeView;
use super::{blocking, readable_projects, ApiError, ApiUser, SharedState};

pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/api/me", get(me))
}

async fn me(State(state): State<SharedState>, user: ApiUser) -> Result<Json<MeView>, ApiError> {
    blocking(&state, move |state| {
        let readable = readable_projects(state, &user)?;
        Ok(Json(MeView {
            admin: readable.is_admin(),
            projects: readable.ids(&state.store)?,
            login: user.0,
        }))
    })
    .await
}
