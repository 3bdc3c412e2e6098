//! Dashboard statistics: error counters per project and per service in
//! minute, hour and day buckets, running totals, and the services seen.

use crate::error::Db;
use std::collections::BTreeMap;

use omegi_core::{Attribute, ErrorRecord, Resource};
use serde::{Deserialize, Serialize};

use crate::codec::{attrs_in, attrs_out, decode, encode, SAttribute};
use crate::error::Result;
use crate::handles::At;
use crate::issues::IssueStatus;
use crate::keys::{counter, Key, KeyReader};
use crate::staging::{ErrorCounts, Staging, TotalsDelta};
use crate::writes::{Lookup, TreeId, Writes};
use crate::{Embedded, Stats};

/// The width of a statistics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    /// Every bucket width, finest first.
    pub const ALL: [Bucket; 3] = [Bucket::Minute, Bucket::Hour, Bucket::Day];

    /// The width in ns.
    pub fn width_ns(self) -> u64 {
        const MINUTE: u64 = 60_000_000_000;
        match self {
            Bucket::Minute => MINUTE,
            Bucket::Hour => 60 * MINUTE,
            Bucket::Day => 24 * 60 * MINUTE,
        }
    }

    /// The start of the bucket that holds `time_ns`.
    pub fn start_of(self, time_ns: u64) -> u64 {
        time_ns - time_ns % self.width_ns()
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Bucket::Minute => b'm',
            Bucket::Hour => b'h',
            Bucket::Day => b'd',
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            b'm' => Some(Bucket::Minute),
            b'h' => Some(Bucket::Hour),
            b'd' => Some(Bucket::Day),
            _ => None,
        }
    }
}

/// A count in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCount {
    /// The bucket's start, ns.
    pub start_ns: u64,
    /// How many.
    pub count: u64,
}

/// Errors counted for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCount {
    /// The service.
    pub service: String,
    /// How many errors.
    pub count: u64,
}

/// A service that sent data to a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service name.
    pub service: String,
    /// The resource attributes it last sent.
    pub attributes: Vec<Attribute>,
    /// When it last sent data (wall clock of the ingest), ns.
    pub last_seen_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServiceRow {
    pub(crate) attributes: Vec<SAttribute>,
    pub(crate) last_seen_ns: u64,
}

/// Running totals of a project: what was ingested, not what is retained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) spans: u64,
    pub(crate) traces: u64,
    pub(crate) errors: u64,
}

/// One project on the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    /// The project.
    pub project: String,
    /// Spans ever ingested.
    pub spans: u64,
    /// Traces ever started.
    pub traces: u64,
    /// Errors ever ingested.
    pub errors: u64,
    /// Issues, any status.
    pub issues: u64,
    /// Issues unresolved.
    pub unresolved: u64,
    /// Issues regressed.
    pub regressed: u64,
    /// Issues resolved.
    pub resolved: u64,
    /// Issues ignored.
    pub ignored: u64,
    /// The latest error's time, ns.
    pub last_error_ns: Option<u64>,
}

/// The all-projects dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Per project, by project id.
    pub projects: Vec<ProjectSummary>,
    /// Spans ever ingested, all projects.
    pub spans: u64,
    /// Errors ever ingested, all projects.
    pub errors: u64,
    /// Issues, all projects.
    pub issues: u64,
    /// Open (unresolved or regressed) issues, all projects.
    pub open_issues: u64,
}

pub(crate) fn counter_key(project: &str, bucket: Bucket, start: u64) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u8(bucket.code())
        .u64(start)
        .into_vec())
}

pub(crate) fn service_counter_key(
    project: &str,
    service: &str,
    bucket: Bucket,
    start: u64,
) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .str("service", service)?
        .u8(bucket.code())
        .u64(start)
        .into_vec())
}

pub(crate) fn read_totals(r: &impl Lookup, project: &str) -> Result<Totals> {
    match r.lookup(TreeId::Totals, Key::new().str("project", project)?.as_ref())? {
        Some(v) => decode("totals", &v),
        None => Ok(Totals::default()),
    }
}

/// Stages a project's totals (import).
pub(crate) fn put_totals(w: &mut Writes<'_>, project: &str, totals: &Totals) -> Result<()> {
    w.insert(
        TreeId::Totals,
        Key::new().str("project", project)?.into_vec(),
        encode(totals)?,
    );
    Ok(())
}

/// The error counters that `errors` raise (`delta` 1) or lower (-1).
fn error_counts(errors: &[&ErrorRecord], delta: i64) -> ErrorCounts {
    let mut counts = ErrorCounts::default();
    for error in errors {
        for bucket in Bucket::ALL {
            let start = bucket.start_of(error.time_ns);
            *counts.project.entry((bucket, start)).or_default() += delta;
            *counts
                .service
                .entry((error.service.clone(), bucket, start))
                .or_default() += delta;
        }
    }
    counts
}

/// Stages what an ingest adds to the statistics: the new errors in the
/// counters, `add` in the totals, and `services` (those that sent something
/// new) with the attributes of the `resources` that name them.
pub(crate) fn stage_stats(
    w: &mut impl Staging,
    project: &str,
    resources: &[&Resource],
    services: &[&str],
    new_errors: &[&ErrorRecord],
    add: Totals,
    now: u64,
) -> Result<()> {
    w.add_error_counts(project, &error_counts(new_errors, 1))?;
    w.add_totals(project, TotalsDelta::from_totals(add))?;
    for service in services {
        // The attributes of the process that names the service, if one
        // does; else the ones known.
        let attributes = resources
            .iter()
            .find(|r| r.service == *service)
            .map(|resource| attrs_in(&resource.attributes));
        w.touch_service(project, service, attributes, now)?;
    }
    Ok(())
}

/// Stages the take-back of errors counted before (occurrences retracted):
/// each one less in its counters and in the project's error total.
pub(crate) fn unstage_errors(
    w: &mut impl Staging,
    project: &str,
    errors: &[ErrorRecord],
) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let refs: Vec<&ErrorRecord> = errors.iter().collect();
    w.add_error_counts(project, &error_counts(&refs, -1))?;
    w.add_totals(
        project,
        TotalsDelta {
            errors: -i64::try_from(errors.len()).unwrap_or(i64::MAX),
            ..TotalsDelta::default()
        },
    )
}

/// The dashboard of `projects`, with their `totals` and their issues
/// counted per status: (project, status) -> (issues, latest last seen).
pub(crate) fn summary_of(
    projects: Vec<crate::Project>,
    totals: Vec<(String, Totals)>,
    issues: BTreeMap<(String, IssueStatus), (u64, u64)>,
) -> Summary {
    let mut by_id: BTreeMap<String, ProjectSummary> = BTreeMap::new();
    fn entry(by_id: &mut BTreeMap<String, ProjectSummary>, project: String) -> &mut ProjectSummary {
        by_id
            .entry(project.clone())
            .or_insert_with(|| ProjectSummary {
                project,
                ..ProjectSummary::default()
            })
    }
    for project in projects {
        entry(&mut by_id, project.id);
    }
    for (project, totals) in totals {
        let p = entry(&mut by_id, project);
        p.spans = totals.spans;
        p.traces = totals.traces;
        p.errors = totals.errors;
    }
    for ((project, status), (count, last_seen)) in issues {
        let p = entry(&mut by_id, project);
        p.issues += count;
        match status {
            IssueStatus::Unresolved => p.unresolved += count,
            IssueStatus::Regressed => p.regressed += count,
            IssueStatus::Resolved => p.resolved += count,
            IssueStatus::Ignored => p.ignored += count,
        }
        if count > 0 {
            p.last_error_ns = Some(p.last_error_ns.unwrap_or(0).max(last_seen));
        }
    }
    let mut summary = Summary::default();
    for p in by_id.into_values() {
        summary.spans += p.spans;
        summary.errors += p.errors;
        summary.issues += p.issues;
        summary.open_issues += p.unresolved + p.regressed;
        summary.projects.push(p);
    }
    summary
}

/// Stages a service of a project (import).
pub(crate) fn put_service(w: &mut Writes<'_>, project: &str, info: &ServiceInfo) -> Result<()> {
    let key = Key::new()
        .str("project", project)?
        .str("service", &info.service)?
        .into_vec();
    let row = ServiceRow {
        attributes: attrs_in(&info.attributes),
        last_seen_ns: info.last_seen_ns,
    };
    w.insert(TreeId::Services, key, encode(&row)?);
    Ok(())
}

fn sum_range(
    tree: &sled::Tree,
    prefix: &[u8],
    from_ns: u64,
    to_ns: u64,
) -> Result<Vec<BucketCount>> {
    let mut out = Vec::new();
    if from_ns >= to_ns {
        return Ok(out);
    }
    let lo = [prefix, &from_ns.to_be_bytes()].concat();
    let hi = [prefix, &to_ns.to_be_bytes()].concat();
    for item in tree.range(lo..hi) {
        let (key, value) = item.db()?;
        let mut r = KeyReader::new("counters", &key[prefix.len()..]);
        let start_ns = r.u64()?;
        r.end()?;
        out.push(BucketCount {
            start_ns,
            count: counter("counters", &value)?,
        });
    }
    Ok(out)
}

impl Embedded {
    /// Every (project, service) pair (export).
    pub(crate) fn all_services(&self) -> Result<Vec<(String, ServiceInfo)>> {
        let mut out = Vec::new();
        for item in self.core().t.services.iter() {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("services", &key);
            let project = r.str()?.to_owned();
            let service = r.str()?.to_owned();
            r.end()?;
            let row: ServiceRow = decode("services", &value)?;
            out.push((
                project,
                ServiceInfo {
                    service,
                    attributes: attrs_out(row.attributes),
                    last_seen_ns: row.last_seen_ns,
                },
            ));
        }
        Ok(out)
    }
}

impl Stats<'_> {
    /// Errors of a project per bucket whose start is in `[from_ns, to_ns)`,
    /// oldest first; empty buckets are left out. Counters are kept when
    /// retention deletes occurrences.
    pub fn error_counts(
        &self,
        project: &str,
        bucket: Bucket,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<BucketCount>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::stats::error_counts(db, project, bucket, from_ns, to_ns)
            }
        };
        let prefix = Key::new()
            .str("project", project)?
            .u8(bucket.code())
            .into_vec();
        sum_range(&store.core().t.counters, &prefix, from_ns, to_ns)
    }

    /// Errors of a project per service, summed over the buckets whose start
    /// is in `[from_ns, to_ns)`, most errors first.
    pub fn service_error_counts(
        &self,
        project: &str,
        bucket: Bucket,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<ServiceCount>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::stats::service_error_counts(
                    db, project, bucket, from_ns, to_ns,
                )
            }
        };
        let t = &store.core().t;
        let mut out = Vec::new();
        for service in self.services(project)? {
            let prefix = Key::new()
                .str("project", project)?
                .str("service", &service.service)?
                .u8(bucket.code())
                .into_vec();
            let count: u64 = sum_range(&t.service_counters, &prefix, from_ns, to_ns)?
                .iter()
                .map(|b| b.count)
                .sum();
            if count > 0 {
                out.push(ServiceCount {
                    service: service.service,
                    count,
                });
            }
        }
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.service.cmp(&b.service))
        });
        Ok(out)
    }

    /// The services that sent data to a project, by name.
    pub fn services(&self, project: &str) -> Result<Vec<ServiceInfo>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::stats::services(db, project),
        };
        let prefix = Key::new().str("project", project)?.into_vec();
        let mut out = Vec::new();
        for item in store.core().t.services.scan_prefix(&prefix) {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("services", &key[prefix.len()..]);
            let service = r.str()?.to_owned();
            r.end()?;
            let row: ServiceRow = decode("services", &value)?;
            out.push(ServiceInfo {
                service,
                attributes: attrs_out(row.attributes),
                last_seen_ns: row.last_seen_ns,
            });
        }
        Ok(out)
    }

    /// The all-projects dashboard: totals and issue counts per project.
    pub fn summary(&self) -> Result<Summary> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::stats::summary(db),
        };
        let t = &store.core().t;
        let mut totals = Vec::new();
        for item in t.totals.iter() {
            let (key, value) = item.db()?;
            let mut r = KeyReader::new("totals", &key);
            let project = r.str()?.to_owned();
            r.end()?;
            totals.push((project, decode("totals", &value)?));
        }
        let mut groups: BTreeMap<(String, IssueStatus), (u64, u64)> = BTreeMap::new();
        for issue in store.all_issues() {
            let issue = issue?;
            let group = groups.entry((issue.project, issue.status)).or_default();
            group.0 += 1;
            group.1 = group.1.max(issue.last_seen_ns);
        }
        Ok(summary_of(store.accounts().projects()?, totals, groups))
    }
}
