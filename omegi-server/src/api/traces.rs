//! `/api/traces`: recent traces and one trace with its tree, flows,
//! waterfall and raw log.

use axum::extract::State;
use axum::Json;
use omegi_core::flow::Trace;
use omegi_core::TraceId;
use omegi_store::{TraceQuery, TraceSummary};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::views::{brief_trace, TraceView};
use super::{
    blocking, check_project, readable_projects, window, ApiError, ApiUser, AppState,
    ReadableProjects, SharedState,
};

/// Query of `GET /api/traces`.
#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    project: Option<String>,
    service: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    since: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(state): State<SharedState>,
    user: ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<TraceSummary>>, ApiError> {
    let (from, to) = window(params.from, params.to, params.since.as_deref(), None)?;
    let limit = params.limit.unwrap_or(50).min(1000);
    blocking(&state, move |state| {
        let readable = readable_projects(state, &user)?;
        let query = match &params.project {
            Some(p) => {
                check_project(&state.store, &readable, p)?;
                TraceQuery::project(p.clone())
            }
            None => TraceQuery::all(),
        };
        let query = match params.service {
            Some(s) => query.service(s),
            None => query,
        };
        let query = query.between(from, to).limit(limit);
        Ok(Json(
            readable_traces(state, &readable, params.project, query)?
                .into_iter()
                .map(|t| brief_trace(t, &state.read_limits))
                .collect(),
        ))
    })
    .await
}

/// The traces of `query` that the user may read: for a user who is not an
/// admin and named no project, the latest of each of their projects,
/// merged newest first.
pub(super) fn readable_traces(
    state: &AppState,
    readable: &ReadableProjects,
    project: Option<String>,
    query: TraceQuery,
) -> Result<Vec<TraceSummary>, ApiError> {
    if project.is_some() || readable.is_admin() {
        return Ok(state.store.traces(&query)?);
    }
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut out: Vec<TraceSummary> = Vec::new();
    for p in readable.ids(&state.store)? {
        let mut one = query.clone();
        one.project = Some(p);
        out.extend(state.store.traces(&one)?);
    }
    out.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then_with(|| b.trace_id.cmp(&a.trace_id))
    });
    out.dedup_by_key(|t| t.trace_id);
    out.truncate(limit);
    Ok(out)
}

/// Query of `GET /api/traces/{trace_id}`.
#[derive(Debug, Deserialize)]
pub(super) struct DetailParams {
    /// Width of the waterfall bar (default 40).
    width: Option<usize>,
}

pub(super) async fn detail(
    State(state): State<SharedState>,
    user: ApiUser,
    Path(trace_id): Path<String>,
    Query(params): Query<DetailParams>,
) -> Result<Json<TraceView>, ApiError> {
    let id: TraceId = trace_id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("invalid trace id {trace_id:?}: {e}")))?;
    let width = params.width.unwrap_or(40).clamp(10, 400);
    blocking(&state, move |state| {
        let readable = readable_projects(state, &user)?;
        let not_found = || ApiError::NotFound(format!("no trace {id}"));
        // A trace of projects the user does not belong to is not revealed.
        let summary = state.store.trace(id)?;
        if !summary
            .as_ref()
            .is_some_and(|s| s.projects.iter().any(|p| readable.contains(p)))
        {
            return Err(not_found());
        }
        let spans = state.store.trace_spans(id)?;
        if spans.is_empty() {
            return Err(not_found());
        }
        let trace =
            Trace::from_spans(spans).map_err(|e| ApiError::Internal(format!("trace {id}: {e}")))?;
        Ok(Json(TraceView::new(
            &trace,
            summary,
            width,
            &state.read_limits,
        )))
    })
    .await
}
