//! The JSON shapes of the REST API, shared by the server and the CLI.

use omegi_core::flow::{Flow, ServiceEdge, Trace};
use omegi_core::{ErrorRecord, SpanId, SpanRecord, Status, TraceId};
use omegi_store::{BucketCount, Issue, Occurrence, ServiceCount, Summary, TraceSummary};
use serde::{Deserialize, Serialize};

/// The id of an issue in the API: `<project>:<fingerprint>`.
pub fn issue_id(project: &str, fingerprint: &str) -> String {
    format!("{project}:{fingerprint}")
}

/// Splits an issue id into project and fingerprint (at the last `:`, since
/// a fingerprint never holds one); a bare fingerprint takes
/// `default_project`.
pub fn split_issue_id<'a>(id: &'a str, default_project: &'a str) -> (&'a str, &'a str) {
    match id.rsplit_once(':') {
        Some((project, fp)) if !project.is_empty() => (project, fp),
        _ => (default_project, id.trim_start_matches(':')),
    }
}

/// An issue with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueView {
    /// `<project>:<fingerprint>`.
    pub id: String,
    /// The issue.
    #[serde(flatten)]
    pub issue: Issue,
}

impl From<Issue> for IssueView {
    fn from(issue: Issue) -> Self {
        IssueView {
            id: issue_id(&issue.project, &issue.fingerprint.0),
            issue,
        }
    }
}

/// One occurrence in a list (the error itself is in the flow view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccurrenceView {
    /// `<time_ns>-<seq>`: pass it as `occurrence` to the flow endpoint.
    pub id: String,
    /// When, ns.
    pub time_ns: u64,
    /// Its trace.
    pub trace_id: Option<TraceId>,
    /// Its innermost span.
    pub span_id: Option<SpanId>,
    /// The service.
    pub service: String,
    /// The message.
    pub message: String,
}

impl From<&Occurrence> for OccurrenceView {
    fn from(o: &Occurrence) -> Self {
        OccurrenceView {
            id: format!("{}-{}", o.time_ns, o.seq),
            time_ns: o.time_ns,
            trace_id: o.trace_id,
            span_id: o.span_id,
            service: o.service.clone(),
            message: o.error.message.clone(),
        }
    }
}

/// `GET /api/issues/{project}/{fingerprint}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueDetail {
    /// The issue.
    pub issue: IssueView,
    /// Its latest retained occurrences, newest first.
    pub occurrences: Vec<OccurrenceView>,
    /// Occurrences per hour over the last 24 hours.
    pub histogram: Vec<BucketCount>,
}

/// The path of an error through the services: the [`Flow`]'s fields and
/// its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowView {
    /// The flow.
    #[serde(flatten)]
    pub flow: Flow,
    /// [`Flow::summary`]: one line per hop, then the error.
    pub summary: String,
}

impl From<&Flow> for FlowView {
    fn from(f: &Flow) -> Self {
        FlowView {
            flow: f.clone(),
            summary: f.summary(),
        }
    }
}

/// `GET /api/issues/{project}/{fingerprint}/flow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFlowView {
    /// The issue.
    pub issue_id: String,
    /// The occurrence shown, `None` for the issue's latest error.
    pub occurrence: Option<String>,
    /// The error.
    pub error: ErrorRecord,
    /// Its flow, when its trace's spans are stored.
    pub flow: Option<FlowView>,
    /// Why there is no flow.
    pub flow_error: Option<String>,
    /// The trace's raw log ([`Trace::raw_log`]).
    pub raw_log: Option<String>,
    /// The trace's waterfall ([`Trace::waterfall`]).
    pub waterfall: Option<String>,
}

/// A span in a trace tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanNodeView {
    /// The span as stored (times as sent).
    pub span: SpanRecord,
    /// Depth in the tree, 0 for roots.
    pub depth: usize,
    /// Its parent in the tree (`None` for roots and orphans).
    pub parent: Option<SpanId>,
    /// Its children, by start.
    pub children: Vec<SpanId>,
    /// Clock-skew correction applied, ns.
    pub skew_ns: i64,
    /// Whether its parent is missing.
    pub orphan: bool,
}

/// A caller → callee edge between services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeView {
    /// The calling service.
    pub caller: String,
    /// The called service.
    pub callee: String,
    /// Calls seen.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
}

impl From<ServiceEdge> for EdgeView {
    fn from(e: ServiceEdge) -> Self {
        EdgeView {
            caller: e.caller,
            callee: e.callee,
            calls: e.calls,
            errors: e.errors,
        }
    }
}

/// `GET /api/traces/{trace_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    /// The trace id.
    pub trace_id: TraceId,
    /// The stored summary.
    pub summary: Option<TraceSummary>,
    /// The tree in depth-first order.
    pub spans: Vec<SpanNodeView>,
    /// The flow of every failing span without a failing child.
    pub flows: Vec<FlowView>,
    /// [`Trace::waterfall`].
    pub waterfall: String,
    /// [`Trace::raw_log`].
    pub raw_log: String,
    /// Service dependencies within the trace.
    pub dependencies: Vec<EdgeView>,
}

impl TraceView {
    /// The view of an assembled trace; `width` is the waterfall's bar width.
    pub fn new(trace: &Trace, summary: Option<TraceSummary>, width: usize) -> Self {
        let spans = trace
            .preorder()
            .iter()
            .map(|&id| {
                let node = &trace[id];
                SpanNodeView {
                    span: node.span.clone(),
                    depth: node.depth,
                    parent: node.parent.map(|p| trace[p].span_id()),
                    children: node.children.iter().map(|&c| trace[c].span_id()).collect(),
                    skew_ns: node.skew_ns,
                    orphan: node.orphan,
                }
            })
            .collect();
        TraceView {
            trace_id: trace.trace_id(),
            summary,
            spans,
            flows: failing_flows(trace).iter().map(FlowView::from).collect(),
            waterfall: trace.waterfall(width),
            raw_log: trace.raw_log(),
            dependencies: trace
                .service_dependencies()
                .into_iter()
                .map(EdgeView::from)
                .collect(),
        }
    }
}

/// The flows of the failing spans of a trace that have no failing child
/// (where the failures started).
pub fn failing_flows(trace: &Trace) -> Vec<Flow> {
    trace
        .preorder()
        .iter()
        .filter(|&&id| {
            let node = &trace[id];
            node.span.status == Status::Error
                && !node
                    .children
                    .iter()
                    .any(|&c| trace[c].span.status == Status::Error)
        })
        .filter_map(|&id| {
            let mut flow = Flow::for_span(trace, trace[id].span_id()).ok()?;
            // An OpenTelemetry `exception` event on the span says more than
            // its status.
            let exception = trace[id]
                .span
                .events
                .iter()
                .rev()
                .find(|e| e.message == "exception");
            if let Some(event) = exception {
                let field = |key: &str| {
                    omegi_core::attribute(&event.fields, key).map(|v| match v {
                        omegi_core::Value::Str(s) => s.clone(),
                        other => other.to_string(),
                    })
                };
                if let Some(message) = field("exception.message") {
                    flow.message = message;
                }
                flow.error_type = flow.error_type.or_else(|| field("exception.type"));
            }
            Some(flow)
        })
        .collect()
}

/// Dashboard numbers of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectStats {
    /// The project.
    pub project: String,
    /// Errors per bucket in the window, oldest first.
    pub error_counts: Vec<BucketCount>,
    /// Errors per service in the window, most first.
    pub services: Vec<ServiceCount>,
    /// Issues first seen in the window, oldest first.
    pub new_issues: Vec<IssueView>,
}

/// `GET /api/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsView {
    /// `minute`, `hour` or `day`.
    pub bucket: omegi_store::Bucket,
    /// Window start, ns.
    pub from_ns: u64,
    /// Window end, ns.
    pub to_ns: u64,
    /// Totals of all projects.
    pub summary: Summary,
    /// Per project.
    pub projects: Vec<ProjectStats>,
    /// Service dependencies seen in the window's latest traces.
    pub dependencies: Vec<EdgeView>,
}

/// A created project or user with its token (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedAccount {
    /// The project id or user login.
    pub name: String,
    /// The token.
    pub token: String,
}

/// A project as listed (no token hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Created, ns.
    pub created_ns: u64,
    /// Whether it has an ingest token.
    pub has_token: bool,
    /// How many ingest tokens it has.
    #[serde(default)]
    pub tokens: usize,
}

/// A user as listed (no token hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login.
    pub login: String,
    /// Display name.
    pub name: String,
    /// Created, ns.
    pub created_ns: u64,
    /// Whether the user may create projects and users.
    pub admin: bool,
    /// The projects the user is a member of (for a caller who is not an
    /// admin, only those the caller belongs to as well).
    #[serde(default)]
    pub projects: Vec<String>,
}

/// A member of a project, as `GET /api/projects/{id}/members` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Login.
    pub login: String,
    /// An admin: a member of every project, named or not.
    pub admin: bool,
    /// Whether the membership is by name (`false` for an admin who belongs
    /// only as an admin).
    pub named: bool,
}

/// A token as listed: never the token itself nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's id: name it to revoke or rotate the token.
    pub id: String,
    /// `ingest` (a project's) or `user` (a user's API token).
    pub kind: String,
    /// The project id or user login it belongs to.
    pub owner: String,
    /// What it is for.
    pub label: String,
    /// Created, ns.
    pub created_ns: u64,
    /// Last used, ns (recorded at most once a minute), if ever.
    pub last_used_ns: Option<u64>,
}

impl From<omegi_store::Token> for TokenView {
    fn from(t: omegi_store::Token) -> Self {
        let (kind, owner) = match t.owner {
            omegi_store::TokenOwner::Project(id) => ("ingest", id),
            omegi_store::TokenOwner::User(login) => ("user", login),
        };
        TokenView {
            id: t.id,
            kind: kind.to_owned(),
            owner,
            label: t.label,
            created_ns: t.created_ns,
            last_used_ns: t.last_used_ns,
        }
    }
}

/// A token just issued: its listing and the token itself, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token as listed.
    #[serde(flatten)]
    pub view: TokenView,
    /// The token: send it as `Authorization: Bearer <token>`. Only its hash
    /// is stored.
    pub token: String,
    /// The token this one replaced and revoked, when rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<TokenView>,
}

/// The answer of `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeView {
    /// The user's login.
    pub login: String,
    /// Whether the user is an admin (a member of every project).
    pub admin: bool,
    /// The projects the user may read: every project for an admin.
    pub projects: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_ids_split_at_the_last_colon() {
        assert_eq!(split_issue_id("shop:00ff", "default"), ("shop", "00ff"));
        assert_eq!(split_issue_id("a:b:00ff", "default"), ("a:b", "00ff"));
        assert_eq!(split_issue_id("00ff", "default"), ("default", "00ff"));
        assert_eq!(split_issue_id(":00ff", "x"), ("x", "00ff"));
        assert_eq!(issue_id("shop", "00ff"), "shop:00ff");
    }
}
