//! Traffic statistics of settled traces, counted from every trace before
//! sampling: requests per service and route (count, errors, durations),
//! calls per pair of services, and how many traces and spans were kept or
//! sampled out. Like the error counters, they live in minute, hour and day
//! buckets and outlive retention.
//!
//! Durations are counted in a fixed histogram ([`DURATION_BOUNDS_MS`]), so
//! percentiles are the upper bound of the bucket they fall in (capped at
//! the longest request seen).

use crate::error::Db;
use std::collections::BTreeMap;

use omegi_core::flow::ServiceEdge;
use serde::{Deserialize, Serialize};

use crate::codec::decode;
use crate::error::Result;
use crate::handles::At;
use crate::keys::{Key, KeyReader};
use crate::staging::Staging;
use crate::stats::Bucket;
use crate::writes::{Lookup, TreeId};
use crate::Stats;

/// The upper bounds of the duration histogram, in ms; a last bucket holds
/// everything longer.
pub const DURATION_BOUNDS_MS: [u64; 15] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// The route that requests of a service are counted under once the
/// service has [`crate::Config::max_routes_per_service`] routes.
pub const OTHER_ROUTE: &str = "(other routes)";

const ROUTE: u8 = b'r';
const EDGE: u8 = b'e';
const TOTALS: u8 = b't';
const ROUTE_NAME: u8 = b'n';
const ROUTE_COUNT: u8 = b'c';

/// What is counted per route and bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteCounts {
    requests: u64,
    errors: u64,
    duration_sum_ns: u64,
    max_ns: u64,
    /// One count per bucket of [`DURATION_BOUNDS_MS`], and the overflow.
    histogram: Vec<u64>,
}

impl RouteCounts {
    /// Adds `other`'s requests to these.
    pub(crate) fn add(&mut self, other: &RouteCounts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.duration_sum_ns = self.duration_sum_ns.saturating_add(other.duration_sum_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        if self.histogram.len() < other.histogram.len() {
            self.histogram.resize(other.histogram.len(), 0);
        }
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
    }

    fn request(duration_ns: u64, failed: bool) -> RouteCounts {
        let ms = duration_ns / 1_000_000;
        let bucket = DURATION_BOUNDS_MS
            .iter()
            .position(|&bound| ms < bound)
            .unwrap_or(DURATION_BOUNDS_MS.len());
        let mut histogram = vec![0; DURATION_BOUNDS_MS.len() + 1];
        histogram[bucket] = 1;
        RouteCounts {
            requests: 1,
            errors: u64::from(failed),
            duration_sum_ns: duration_ns,
            max_ns: duration_ns,
            histogram,
        }
    }

    /// The duration below which a share `q` of the requests fall: the
    /// upper bound of its bucket, capped at the longest one.
    fn percentile(&self, q: f64) -> u64 {
        let target = (self.requests as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.histogram.iter().enumerate() {
            seen += count;
            if seen >= target {
                return match DURATION_BOUNDS_MS.get(i) {
                    Some(ms) => (ms * 1_000_000).min(self.max_ns),
                    None => self.max_ns,
                };
            }
        }
        self.max_ns
    }
}

/// The traffic of one route of one service over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    /// The service.
    pub service: String,
    /// The route (`http.route`, an RPC method, or the span name without its
    /// numbers).
    pub route: String,
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Mean duration, ns.
    pub mean_ns: u64,
    /// Median duration (the upper bound of its histogram bucket), ns.
    pub p50_ns: u64,
    /// 95th percentile, as above.
    pub p95_ns: u64,
    /// 99th percentile, as above.
    pub p99_ns: u64,
    /// The longest request, ns.
    pub max_ns: u64,
}

/// How many traces and spans of a project settled, and how many of them
/// are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplingTotals {
    /// Traces settled.
    pub traces: u64,
    /// Traces stored whole (failed, slow or sampled).
    pub kept_traces: u64,
    /// Traces whose spans were not stored (only their statistics).
    pub sampled_out_traces: u64,
    /// Spans settled.
    pub spans: u64,
    /// Spans stored.
    pub kept_spans: u64,
    /// Spans that arrived after their trace had settled.
    pub late_spans: u64,
    /// Occurrences taken back because a later part of their trace showed
    /// them to be the consequence of another failure.
    pub retracted: u64,
}

impl SamplingTotals {
    fn add(&mut self, o: &SamplingTotals) {
        self.traces += o.traces;
        self.kept_traces += o.kept_traces;
        self.sampled_out_traces += o.sampled_out_traces;
        self.spans += o.spans;
        self.kept_spans += o.kept_spans;
        self.late_spans += o.late_spans;
        self.retracted += o.retracted;
    }
}

/// The traffic an ingest of settled traces adds, gathered before it is
/// staged (one read and write per key and batch).
#[derive(Debug, Default)]
pub(crate) struct TrafficChanges {
    routes: BTreeMap<(Bucket, u64, String, String), RouteCounts>,
    edges: BTreeMap<(Bucket, u64, String, String), (u64, u64)>,
    pub(crate) totals: SamplingTotals,
    /// Traces that were sampled out and are now kept.
    pub(crate) now_kept: u64,
}

impl TrafficChanges {
    /// One request, at `start_ns`.
    pub(crate) fn request(
        &mut self,
        service: &str,
        route: &str,
        start_ns: u64,
        duration_ns: u64,
        failed: bool,
    ) {
        let one = RouteCounts::request(duration_ns, failed);
        for bucket in Bucket::ALL {
            self.routes
                .entry((
                    bucket,
                    bucket.start_of(start_ns),
                    service.to_owned(),
                    route.to_owned(),
                ))
                .or_default()
                .add(&one);
        }
    }

    /// One call from `caller` to `callee`, at `start_ns`.
    pub(crate) fn call(&mut self, caller: &str, callee: &str, start_ns: u64, failed: bool) {
        for bucket in Bucket::ALL {
            let counts = self
                .edges
                .entry((
                    bucket,
                    bucket.start_of(start_ns),
                    caller.to_owned(),
                    callee.to_owned(),
                ))
                .or_default();
            counts.0 += 1;
            counts.1 += u64::from(failed);
        }
    }

    /// Stages the changes: each counter added to once; routes past
    /// `max_routes` of a service are counted under [`OTHER_ROUTE`].
    pub(crate) fn stage(
        self,
        w: &mut impl Staging,
        project: &str,
        max_routes: usize,
    ) -> Result<()> {
        let mut known: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut merged: BTreeMap<(Bucket, u64, String, String), RouteCounts> = BTreeMap::new();
        // Every service's route list, in name order, before any is read.
        let services: std::collections::BTreeSet<&str> =
            self.routes.keys().map(|(_, _, s, _)| s.as_str()).collect();
        for service in services {
            w.lock_routes(project, service)?;
        }
        for ((bucket, start, service, route), counts) in self.routes {
            let route = match known.get(&(service.clone(), route.clone())) {
                Some(r) => r.clone(),
                None => {
                    let r = register_route(w, project, &service, &route, max_routes)?;
                    known.insert((service.clone(), route), r.clone());
                    r
                }
            };
            merged
                .entry((bucket, start, service, route))
                .or_default()
                .add(&counts);
        }
        if !merged.is_empty() {
            w.add_route_counts(project, &merged)?;
        }
        if !self.edges.is_empty() {
            w.add_edge_counts(project, &self.edges)?;
        }
        if self.totals != SamplingTotals::default() || self.now_kept > 0 {
            let mut totals = w.sampling_totals(project)?;
            totals.add(&self.totals);
            totals.sampled_out_traces = totals.sampled_out_traces.saturating_sub(self.now_kept);
            w.put_sampling_totals(project, &totals)?;
        }
        Ok(())
    }
}

/// The route `route` of `service` is counted under: itself when known or
/// when the service has fewer than `max` routes (then registered), else
/// [`OTHER_ROUTE`]. Call with the service's routes locked.
pub(crate) fn register_route(
    w: &mut impl Staging,
    project: &str,
    service: &str,
    route: &str,
    max: usize,
) -> Result<String> {
    if w.route_known(project, service, route)? {
        return Ok(route.to_owned());
    }
    if w.route_count(project, service)? >= max as u64 {
        return Ok(OTHER_ROUTE.to_owned());
    }
    w.add_route_name(project, service, route)?;
    Ok(route.to_owned())
}

pub(crate) fn route_name_key(project: &str, service: &str, route: &str) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u8(ROUTE_NAME)
        .str("service", service)?
        .str("route", route)?
        .into_vec())
}

pub(crate) fn route_count_key(project: &str, service: &str) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u8(ROUTE_COUNT)
        .str("service", service)?
        .into_vec())
}

pub(crate) fn route_key(
    project: &str,
    bucket: Bucket,
    start: u64,
    service: &str,
    route: &str,
) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u8(ROUTE)
        .u8(bucket.code())
        .u64(start)
        .str("service", service)?
        .str("route", route)?
        .into_vec())
}

pub(crate) fn edge_key(
    project: &str,
    bucket: Bucket,
    start: u64,
    caller: &str,
    callee: &str,
) -> Result<Vec<u8>> {
    Ok(Key::new()
        .str("project", project)?
        .u8(EDGE)
        .u8(bucket.code())
        .u64(start)
        .str("service", caller)?
        .str("service", callee)?
        .into_vec())
}

pub(crate) fn totals_key(project: &str) -> Result<Vec<u8>> {
    Ok(Key::new().str("project", project)?.u8(TOTALS).into_vec())
}

pub(crate) fn read_totals(r: &impl Lookup, project: &str) -> Result<SamplingTotals> {
    match r.lookup(TreeId::Traffic, &totals_key(project)?)? {
        Some(v) => decode("traffic", &v),
        None => Ok(SamplingTotals::default()),
    }
}

/// A record of the traffic statistics as an export carries it: route
/// names and their count per service are left out, they are registered
/// again as the routes are imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum TrafficRecord {
    /// The requests of a route in a bucket.
    Route {
        project: String,
        bucket: Bucket,
        start_ns: u64,
        service: String,
        route: String,
        counts: RouteCounts,
    },
    /// The calls from one service to another in a bucket.
    Call {
        project: String,
        bucket: Bucket,
        start_ns: u64,
        caller: String,
        callee: String,
        calls: u64,
        errors: u64,
    },
    /// A project's sampling totals.
    Sampling {
        project: String,
        totals: SamplingTotals,
    },
}

fn bucket_of(r: &mut KeyReader<'_>) -> Result<Bucket> {
    let code = r.u8()?;
    Bucket::from_code(code)
        .ok_or_else(|| crate::Error::corrupt("traffic", format!("unknown bucket {code}")))
}

/// Reads one entry of the traffic tree; `None` for the route names and
/// counts, which an import derives.
pub(crate) fn traffic_record(key: &[u8], value: &[u8]) -> Result<Option<TrafficRecord>> {
    let mut r = KeyReader::new("traffic", key);
    let project = r.str()?.to_owned();
    let record = match r.u8()? {
        ROUTE => {
            let bucket = bucket_of(&mut r)?;
            let start_ns = r.u64()?;
            let service = r.str()?.to_owned();
            let route = r.str()?.to_owned();
            TrafficRecord::Route {
                project,
                bucket,
                start_ns,
                service,
                route,
                counts: decode("traffic", value)?,
            }
        }
        EDGE => {
            let bucket = bucket_of(&mut r)?;
            let start_ns = r.u64()?;
            let caller = r.str()?.to_owned();
            let callee = r.str()?.to_owned();
            let (calls, errors) = decode("traffic", value)?;
            TrafficRecord::Call {
                project,
                bucket,
                start_ns,
                caller,
                callee,
                calls,
                errors,
            }
        }
        TOTALS => TrafficRecord::Sampling {
            project,
            totals: decode("traffic", value)?,
        },
        _ => return Ok(None),
    };
    r.end()?;
    Ok(Some(record))
}

/// The keys of one kind and bucket width of a project with a bucket start
/// in `[from_ns, to_ns)`: the key prefix and the range.
fn window(
    project: &str,
    kind: u8,
    bucket: Bucket,
    from_ns: u64,
    to_ns: u64,
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let prefix = Key::new()
        .str("project", project)?
        .u8(kind)
        .u8(bucket.code())
        .into_vec();
    let lo = [prefix.as_slice(), &from_ns.to_be_bytes()].concat();
    let hi = [prefix.as_slice(), &to_ns.to_be_bytes()].concat();
    Ok((prefix, lo, hi))
}

/// The traffic of each route from its counts summed over a window, most
/// requests first (ties by service, then route).
pub(crate) fn route_stats_of(sums: BTreeMap<(String, String), RouteCounts>) -> Vec<RouteStats> {
    let mut out: Vec<RouteStats> = sums
        .into_iter()
        .map(|((service, route), c)| RouteStats {
            mean_ns: c.duration_sum_ns.checked_div(c.requests).unwrap_or(0),
            p50_ns: c.percentile(0.5),
            p95_ns: c.percentile(0.95),
            p99_ns: c.percentile(0.99),
            max_ns: c.max_ns,
            requests: c.requests,
            errors: c.errors,
            service,
            route,
        })
        .collect();
    out.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.route.cmp(&b.route))
    });
    out
}

impl Stats<'_> {
    /// The traffic of each route of a project summed over the buckets
    /// whose start is in `[from_ns, to_ns)`, most requests first (ties by
    /// service, then route): from every settled trace, kept or sampled
    /// out.
    pub fn route_stats(
        &self,
        project: &str,
        bucket: Bucket,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<RouteStats>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::stats::route_stats(db, project, bucket, from_ns, to_ns)
            }
        };
        let mut sums: BTreeMap<(String, String), RouteCounts> = BTreeMap::new();
        if from_ns < to_ns {
            let (prefix, lo, hi) = window(project, ROUTE, bucket, from_ns, to_ns)?;
            for item in store.core().t.traffic.range(lo..hi) {
                let (key, value) = item.db()?;
                let mut r = KeyReader::new("traffic", &key[prefix.len()..]);
                let _start = r.u64()?;
                let service = r.str()?.to_owned();
                let route = r.str()?.to_owned();
                r.end()?;
                let counts: RouteCounts = decode("traffic", &value)?;
                sums.entry((service, route)).or_default().add(&counts);
            }
        }
        Ok(route_stats_of(sums))
    }

    /// The calls between the services of a project summed over the buckets
    /// whose start is in `[from_ns, to_ns)`, by caller then callee: from
    /// every settled trace, kept or sampled out.
    pub fn service_edges(
        &self,
        project: &str,
        bucket: Bucket,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<ServiceEdge>> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => {
                return crate::postgres::stats::service_edges(db, project, bucket, from_ns, to_ns)
            }
        };
        let mut sums: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        if from_ns < to_ns {
            let (prefix, lo, hi) = window(project, EDGE, bucket, from_ns, to_ns)?;
            for item in store.core().t.traffic.range(lo..hi) {
                let (key, value) = item.db()?;
                let mut r = KeyReader::new("traffic", &key[prefix.len()..]);
                let _start = r.u64()?;
                let caller = r.str()?.to_owned();
                let callee = r.str()?.to_owned();
                r.end()?;
                let (calls, errors): (u64, u64) = decode("traffic", &value)?;
                let sum = sums.entry((caller, callee)).or_default();
                sum.0 += calls;
                sum.1 += errors;
            }
        }
        Ok(sums
            .into_iter()
            .map(|((caller, callee), (calls, errors))| ServiceEdge {
                caller,
                callee,
                calls,
                errors,
            })
            .collect())
    }

    /// How many traces and spans of a project settled, and how many are
    /// stored.
    pub fn sampling_totals(&self, project: &str) -> Result<SamplingTotals> {
        let store = match self.at {
            At::Sled(store) => store,
            At::Pg(db) => return crate::postgres::stats::sampling_totals(db, project),
        };
        read_totals(&store.core().t, project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_bounds_capped_at_the_longest() {
        let mut c = RouteCounts::default();
        for ms in [3u64, 3, 3, 40, 2_000] {
            c.add(&RouteCounts::request(ms * 1_000_000, false));
        }
        assert_eq!(c.requests, 5);
        assert_eq!(c.percentile(0.5), 5_000_000);
        assert_eq!(c.percentile(0.8), 50_000_000);
        assert_eq!(c.percentile(0.99), 2_000_000_000);
        let mut one = RouteCounts::default();
        one.add(&RouteCounts::request(7_000_000, true));
        assert_eq!(one.percentile(0.5), 7_000_000);
        assert_eq!(one.errors, 1);
    }
}
