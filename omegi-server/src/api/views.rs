//! The JSON shapes of the REST API, shared by the server and the CLI.

use omegi_core::flow::{clip, Flow, ServiceEdge, Trace, ViewLimits};
use omegi_core::{CodeLocation, Consequence, ErrorRecord, SpanId, SpanRecord, TraceId};
use omegi_store::{
    title_line, BucketCount, Issue, OccurrenceSummary, RouteStats, SamplingTotals, ServiceCount,
    SettledSummary, Summary, TraceRoot, TraceSummary, TITLE_CHARS,
};
use serde::{Deserialize, Serialize};

use super::limits::ReadLimits;

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
///
/// Built with [`IssueView::brief`] for lists (and status changes), with
/// [`IssueView::detail`] for the issue's own page: a stored error can be
/// megabytes, an answer never is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueView {
    /// `<project>:<fingerprint>`.
    pub id: String,
    /// The issue.
    #[serde(flatten)]
    pub issue: Issue,
}

impl IssueView {
    /// An issue as lists show it: at most `limits.items` services, each
    /// cut to [`TITLE_CHARS`], and the latest error in brief: the first
    /// line of its message and its type, service, target, location and
    /// thread cut to [`TITLE_CHARS`], without fields, causes, span stack
    /// and breadcrumbs (the issue's page has them).
    pub fn brief(mut issue: Issue, limits: &ReadLimits) -> Self {
        issue.title = title_line(&issue.title);
        issue.services = brief_names(&issue.services, limits.items);
        issue.latest_error = brief_error(&issue.latest_error);
        IssueView {
            id: issue_id(&issue.project, &issue.fingerprint.0),
            issue,
        }
    }

    /// An issue as its page shows it: the latest error copied within
    /// `limits` ([`ViewLimits::clip_error`]); the flag says whether
    /// anything was cut.
    pub fn detail(issue: Issue, limits: &ReadLimits) -> (Self, bool) {
        let error = limits.view().clip_error(&issue.latest_error);
        let mut view = IssueView::brief(issue, limits);
        view.issue.latest_error = error.value;
        (view, error.truncated)
    }
}

/// At most `items` names, each cut to [`TITLE_CHARS`].
fn brief_names(names: &[String], items: usize) -> Vec<String> {
    names.iter().take(items).map(|n| title_line(n)).collect()
}

fn brief_location(location: &CodeLocation) -> CodeLocation {
    CodeLocation {
        file: location
            .file
            .as_deref()
            .map(|f| clip(f, TITLE_CHARS).into_owned().into()),
        line: location.line,
        module: location
            .module
            .as_deref()
            .map(|m| clip(m, TITLE_CHARS).into_owned().into()),
    }
}

/// An error as a list shows it (see [`IssueView::brief`]).
fn brief_error(e: &ErrorRecord) -> ErrorRecord {
    let mut error = ErrorRecord::new(title_line(&e.message), e.time_ns)
        .with_trace_id(e.trace_id)
        .with_span_id(e.span_id)
        .with_service(title_line(&e.service))
        .with_kind(e.kind)
        .with_target(title_line(&e.target))
        .with_location(brief_location(&e.location));
    error.error_type = e.error_type.as_deref().map(title_line);
    error.thread = e.thread.as_deref().map(title_line);
    error.fingerprint = e.fingerprint.as_deref().map(title_line);
    error
}

/// A trace as lists show it: the root's name and service, the services
/// and projects (at most `items` of each) cut to [`TITLE_CHARS`].
pub fn brief_trace(mut summary: TraceSummary, limits: &ReadLimits) -> TraceSummary {
    summary.root = summary.root.map(|r| TraceRoot {
        span_id: r.span_id,
        service: title_line(&r.service),
        name: title_line(&r.name),
    });
    summary.services = brief_names(&summary.services, limits.items);
    summary
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
    /// The first line of the message, cut to [`TITLE_CHARS`].
    pub message: String,
}

impl From<OccurrenceSummary> for OccurrenceView {
    fn from(o: OccurrenceSummary) -> Self {
        OccurrenceView {
            id: format!("{}-{}", o.time_ns, o.seq),
            time_ns: o.time_ns,
            trace_id: o.trace_id,
            span_id: o.span_id,
            service: o.service,
            message: o.message,
        }
    }
}

/// `GET /api/issues/{project}/{fingerprint}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueDetail {
    /// The issue, its latest error within the read limits.
    pub issue: IssueView,
    /// What the latest error caused in its trace: the failing spans above
    /// it, nearest first (each failed because of it); at most the read
    /// limit's items.
    #[serde(default)]
    pub consequences: Vec<Consequence>,
    /// Whether the latest error was cut to the read limits.
    #[serde(default)]
    pub truncated: bool,
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

impl FlowView {
    /// The view of `flow` within `limits`: the flow copied with
    /// [`ViewLimits::clip_flow`] and its summary rendered with
    /// [`Flow::summary_within`]; the flag says whether anything was cut.
    pub fn within(flow: &Flow, limits: &ViewLimits) -> (Self, bool) {
        let clipped = limits.clip_flow(flow);
        let summary = flow.summary_within(limits);
        (
            FlowView {
                flow: clipped.value,
                summary: summary.text,
            },
            clipped.truncated || summary.truncated,
        )
    }
}

/// `GET /api/issues/{project}/{fingerprint}/flow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFlowView {
    /// The issue.
    pub issue_id: String,
    /// The occurrence shown, `None` for the issue's latest error.
    pub occurrence: Option<String>,
    /// The error, within the read limits.
    pub error: ErrorRecord,
    /// Its flow, when its trace's spans are stored.
    pub flow: Option<FlowView>,
    /// Why there is no flow.
    pub flow_error: Option<String>,
    /// The trace's raw log ([`Trace::raw_log_within`]).
    pub raw_log: Option<String>,
    /// The trace's waterfall ([`Trace::waterfall_within`]).
    pub waterfall: Option<String>,
    /// Whether anything above was cut to the read limits (the texts say
    /// where: `…` ends a cut text, `… N more … not shown` a cut rendering).
    #[serde(default)]
    pub truncated: bool,
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

/// A service dependency as lists show it: its service names cut to
/// [`TITLE_CHARS`].
pub fn brief_edge(e: ServiceEdge) -> ServiceEdge {
    ServiceEdge {
        caller: title_line(&e.caller),
        callee: title_line(&e.callee),
        ..e
    }
}

/// `GET /api/traces/{trace_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    /// The trace id.
    pub trace_id: TraceId,
    /// The stored summary, as lists show it ([`brief_trace`]).
    pub summary: Option<TraceSummary>,
    /// The tree in depth-first order: at most the read limit's lines,
    /// and as many as fit its bytes; each span copied within the limits.
    pub spans: Vec<SpanNodeView>,
    /// The flow of every failing span without a failing child, as many as
    /// fit the read limit's bytes.
    pub flows: Vec<FlowView>,
    /// [`Trace::waterfall_within`].
    pub waterfall: String,
    /// [`Trace::raw_log_within`].
    pub raw_log: String,
    /// Service dependencies within the trace.
    pub dependencies: Vec<ServiceEdge>,
    /// Whether anything above was cut to the read limits.
    #[serde(default)]
    pub truncated: bool,
    /// How the trace settled: kept, or sampled out (then there are no
    /// spans, only its statistics were kept); `None` for a trace stored
    /// before it could settle.
    #[serde(default)]
    pub settlement: Option<SettledSummary>,
}

/// Counts the bytes of JSON a value serializes to, without keeping them.
struct JsonSize(usize);

impl std::io::Write for JsonSize {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of `value` as JSON.
fn json_size(value: &impl Serialize) -> usize {
    let mut size = JsonSize(0);
    // Writing to a counter cannot fail; a value that cannot serialize
    // counts as nothing and fails the answer later, where it is reported.
    let _ = serde_json::to_writer(&mut size, value);
    size.0
}

impl TraceView {
    /// The view of an assembled trace within `limits`; `width` is the
    /// waterfall's bar width.
    pub fn new(
        trace: &Trace,
        summary: Option<TraceSummary>,
        width: usize,
        limits: &ReadLimits,
    ) -> Self {
        let view = limits.view();
        let mut truncated = false;
        let mut spans = Vec::new();
        let mut bytes = 0;
        for &id in trace.preorder().iter().take(view.lines) {
            let node = &trace[id];
            let span = view.clip_span(&node.span);
            truncated |= span.truncated;
            let children = node.children.len().min(view.lines);
            truncated |= children < node.children.len();
            let item = SpanNodeView {
                span: span.value,
                depth: node.depth,
                parent: node.parent.map(|p| trace[p].span_id()),
                children: node.children[..children]
                    .iter()
                    .map(|&c| trace[c].span_id())
                    .collect(),
                skew_ns: node.skew_ns,
                orphan: node.orphan,
            };
            bytes += json_size(&item);
            if bytes > view.bytes {
                truncated = true;
                break;
            }
            spans.push(item);
        }
        truncated |= spans.len() < trace.len();
        let mut flows = Vec::new();
        let mut bytes = 0;
        for flow in trace.failing_flows() {
            let (flow, cut) = FlowView::within(&flow, &view);
            truncated |= cut;
            bytes += json_size(&flow);
            if bytes > view.bytes {
                truncated = true;
                break;
            }
            flows.push(flow);
        }
        let waterfall = trace.waterfall_within(width, &view);
        let raw_log = trace.raw_log_within(&view);
        let edges = trace.service_dependencies();
        truncated |= waterfall.truncated || raw_log.truncated || edges.len() > view.lines;
        TraceView {
            trace_id: trace.trace_id(),
            summary: summary.map(|s| brief_trace(s, limits)),
            spans,
            flows,
            waterfall: waterfall.text,
            raw_log: raw_log.text,
            dependencies: edges.into_iter().take(view.lines).map(brief_edge).collect(),
            truncated,
            settlement: None,
        }
    }
}

/// Dashboard numbers of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectStats {
    /// The project.
    pub project: String,
    /// Errors per bucket in the window, oldest first.
    pub error_counts: Vec<BucketCount>,
    /// Errors per service in the window, most first (at most the read
    /// limit's lines).
    pub services: Vec<ServiceCount>,
    /// The latest issues first seen in the window (at most 100), oldest
    /// first.
    pub new_issues: Vec<IssueView>,
    /// How many issues were first seen in the window in all.
    #[serde(default)]
    pub new_issue_count: u64,
    /// Requests per service and route in the window, from every settled
    /// trace (kept or sampled out), most first (at most the read limit's
    /// lines).
    #[serde(default)]
    pub routes: Vec<RouteStats>,
    /// How many traces and spans settled, and how many are stored.
    #[serde(default)]
    pub sampling: SamplingTotals,
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
    /// Calls between services in the window, counted from every settled
    /// trace (for data stored before traces settled: seen in the window's
    /// latest traces).
    pub dependencies: Vec<ServiceEdge>,
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
