//! `GET /api/stats`: the dashboard.

use axum::extract::State;
use axum::Json;
use omegi_core::flow::{service_dependencies, Trace};
use omegi_store::{Bucket, TraceQuery};
use serde::Deserialize;

use super::extract::Query;
use super::views::{EdgeView, IssueView, ProjectStats, StatsView};
use super::{blocking, check_project, window, ApiError, ApiUser, SharedState};

/// Traces read at most to compute the dependency edges.
const DEPENDENCY_TRACES: usize = 200;

/// Query of `GET /api/stats`.
#[derive(Debug, Deserialize)]
pub(super) struct Params {
    project: Option<String>,
    /// `minute`, `hour` (default) or `day`.
    bucket: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    /// Default `24h`.
    since: Option<String>,
}

pub(super) async fn dashboard(
    State(state): State<SharedState>,
    _user: ApiUser,
    Query(params): Query<Params>,
) -> Result<Json<StatsView>, ApiError> {
    let bucket = match params.bucket.as_deref().unwrap_or("hour") {
        "minute" => Bucket::Minute,
        "hour" => Bucket::Hour,
        "day" => Bucket::Day,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown bucket {other:?}: expected minute, hour or day"
            )))
        }
    };
    let (from, to) = window(
        params.from,
        params.to,
        params.since.as_deref(),
        Some(24 * Bucket::Hour.width_ns()),
    )?;
    blocking(&state, move |state| {
        let store = &state.store;
        let summary = store.summary()?;
        let projects: Vec<String> = match &params.project {
            Some(p) => {
                check_project(store, p)?;
                vec![p.clone()]
            }
            None => summary.projects.iter().map(|p| p.project.clone()).collect(),
        };
        // Counters are per bucket: start at the bucket holding `from`.
        let bucket_from = bucket.start_of(from);
        let mut per_project = Vec::new();
        for project in &projects {
            per_project.push(ProjectStats {
                project: project.clone(),
                error_counts: store.error_counts(project, bucket, bucket_from, to)?,
                services: store.service_error_counts(project, bucket, bucket_from, to)?,
                new_issues: store
                    .new_issues(project, from, to)?
                    .into_iter()
                    .map(IssueView::from)
                    .collect(),
            });
        }
        let query = TraceQuery::projects(projects.iter().cloned())
            .between(from, to)
            .limit(DEPENDENCY_TRACES);
        // Trace by trace: the same trace id in two projects is two traces.
        let mut traces = Vec::new();
        for trace in store.traces(&query)? {
            let spans = store.trace_spans(&trace.project, trace.trace_id)?;
            if let Ok(trace) = Trace::from_spans(spans) {
                traces.push(trace);
            }
        }
        let dependencies = service_dependencies(&traces)
            .into_iter()
            .map(EdgeView::from)
            .collect();
        Ok(Json(StatsView {
            bucket,
            from_ns: from,
            to_ns: to,
            summary,
            projects: per_project,
            dependencies,
        }))
    })
    .await
}
