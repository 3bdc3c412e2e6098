//! `GET /api/stats`: the dashboard.

use axum::extract::State;
use axum::Json;
use std::collections::BTreeMap;

use omegi_core::flow::{service_dependencies, ServiceEdge, Trace};
use omegi_store::{title_line, Bucket, Summary, TraceQuery};
use serde::Deserialize;

use super::extract::Query;
use super::views::{brief_edge, IssueView, ProjectStats, StatsView};
use super::{blocking, check_project, readable_projects, window, ApiError, ApiUser, SharedState};

/// Traces read at most to compute the dependency edges.
const DEPENDENCY_TRACES: usize = 200;

/// Spans read at most to compute the dependency edges: the traces are read
/// newest first until this many spans are in.
const DEPENDENCY_SPANS: usize = 20_000;

/// New issues listed per project (the latest); `new_issue_count` has them
/// all.
const NEW_ISSUES: usize = 100;

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
    user: ApiUser,
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
        let readable = readable_projects(state, &user)?;
        let summary = readable_summary(store.stats().summary()?, |p| readable.contains(p));
        let projects: Vec<String> = match &params.project {
            Some(p) => {
                check_project(store, &readable, p)?;
                vec![p.clone()]
            }
            None => summary.projects.iter().map(|p| p.project.clone()).collect(),
        };
        // Counters are per bucket: start at the bucket holding `from`.
        let bucket_from = bucket.start_of(from);
        let limits = &state.read_limits;
        let mut per_project = Vec::new();
        // Calls between services counted from every settled trace.
        let mut counted_edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for project in &projects {
            let (new_issues, new_issue_count) = store
                .issues()
                .latest_new_issues(project, from, to, NEW_ISSUES)?;
            let mut services =
                store
                    .stats()
                    .service_error_counts(project, bucket, bucket_from, to)?;
            services.truncate(limits.lines);
            for s in &mut services {
                s.service = title_line(&s.service);
            }
            let mut routes = store
                .stats()
                .route_stats(project, bucket, bucket_from, to)?;
            routes.truncate(limits.lines);
            for r in &mut routes {
                r.service = title_line(&r.service);
                r.route = title_line(&r.route);
            }
            for edge in store
                .stats()
                .service_edges(project, bucket, bucket_from, to)?
            {
                let sum = counted_edges
                    .entry((edge.caller.clone(), edge.callee.clone()))
                    .or_insert((0, 0));
                sum.0 += edge.calls;
                sum.1 += edge.errors;
            }
            per_project.push(ProjectStats {
                routes,
                sampling: store.stats().sampling_totals(project)?,
                project: project.clone(),
                error_counts: store
                    .stats()
                    .error_counts(project, bucket, bucket_from, to)?,
                services,
                new_issues: new_issues
                    .into_iter()
                    .map(|i| IssueView::brief(i, limits))
                    .collect(),
                new_issue_count,
            });
        }
        let dependencies = if counted_edges.is_empty() {
            traced_dependencies(store, &projects, from, to)?
        } else {
            counted_edges
                .into_iter()
                .map(|((caller, callee), (calls, errors))| ServiceEdge {
                    caller,
                    callee,
                    calls,
                    errors,
                })
                .collect()
        };
        let dependencies = dependencies
            .into_iter()
            .take(limits.lines)
            .map(brief_edge)
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

/// The dependencies seen in the window's latest stored traces: for data
/// stored before traces settled (no counters).
fn traced_dependencies(
    store: &omegi_store::Store,
    projects: &[String],
    from: u64,
    to: u64,
) -> Result<Vec<ServiceEdge>, ApiError> {
    let query = TraceQuery::projects(projects.iter().cloned())
        .between(from, to)
        .limit(DEPENDENCY_TRACES);
    // Trace by trace: the same trace id in two projects is two traces.
    let mut traces = Vec::new();
    let mut span_count = 0;
    for trace in store.traces().list(&query)? {
        if span_count >= DEPENDENCY_SPANS {
            break;
        }
        let spans = store.traces().spans(&trace.project, trace.trace_id)?;
        span_count += spans.len();
        if let Ok(trace) = Trace::from_spans(spans) {
            traces.push(trace);
        }
    }
    Ok(service_dependencies(&traces))
}

/// The summary of the projects `readable` admits, its totals counted over
/// them only.
fn readable_summary(summary: Summary, readable: impl Fn(&str) -> bool) -> Summary {
    let mut out = Summary::default();
    for p in summary.projects {
        if !readable(&p.project) {
            continue;
        }
        out.spans += p.spans;
        out.errors += p.errors;
        out.issues += p.issues;
        out.open_issues += p.unresolved + p.regressed;
        out.projects.push(p);
    }
    out
}
