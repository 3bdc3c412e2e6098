//! Tail sampling: once a trace is complete, whether it is stored whole.
//!
//! Traces with a failure and traces with a slow request are always kept;
//! of the others, a share given by the rate, chosen by the trace id alone
//! so that every node (and every replay) decides the same.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::TraceId;

use super::trace::Trace;

/// Why a settled trace is stored whole, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Something in it failed: kept whole.
    Failed,
    /// A request in it took longer than the threshold: kept whole.
    Slow,
    /// Healthy, and chosen by the sampling rate: kept whole.
    Sampled,
    /// Healthy and not chosen: only its statistics are kept.
    SampledOut,
}

impl Verdict {
    /// Whether the trace's spans are stored.
    pub fn keeps(self) -> bool {
        self != Verdict::SampledOut
    }
}

/// How settled traces are sampled: see the module docs.
///
/// ```
/// use std::time::Duration;
/// use omegi_core::flow::TailSampling;
/// use omegi_core::TraceId;
///
/// let policy = TailSampling::new(0.1).keep_slower_than(Some(Duration::from_secs(2)));
/// let kept = (1..=10_000u128).filter(|&t| policy.samples(TraceId(t))).count();
/// assert!((850..=1150).contains(&kept), "{kept}");
/// // The same trace id is decided the same way everywhere.
/// assert_eq!(policy.samples(TraceId(42)), TailSampling::new(0.1).samples(TraceId(42)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TailSampling {
    /// The share of healthy traces kept, from 0 (none) to 1 (all).
    pub rate: f64,
    /// A trace holding a request (see [`Trace::requests`]) that took
    /// longer than this is kept whole; `None`: no such rule.
    pub keep_slower_than: Option<Duration>,
}

impl Default for TailSampling {
    /// 10% of healthy traces, and those with a request slower than 2 s.
    fn default() -> Self {
        TailSampling {
            rate: 0.1,
            keep_slower_than: Some(Duration::from_secs(2)),
        }
    }
}

impl TailSampling {
    /// Keeps `rate` (clamped to 0..=1) of the healthy traces, and every slow
    /// one by the default threshold.
    pub fn new(rate: f64) -> Self {
        TailSampling {
            rate: if rate.is_nan() {
                1.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            ..TailSampling::default()
        }
    }

    /// Keeps all traces (a rate of 1).
    pub fn keep_all() -> Self {
        TailSampling::new(1.0)
    }

    /// Sets the slow-request threshold.
    pub fn keep_slower_than(mut self, threshold: Option<Duration>) -> Self {
        self.keep_slower_than = threshold;
        self
    }

    /// Whether the rate chooses this trace: a hash of the trace id against
    /// the rate, so that every node and every run agrees.
    pub fn samples(&self, trace_id: TraceId) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        // Both halves mixed (SplitMix64's finalizer): ids that differ in
        // any bit, sequential ones included, spread evenly.
        let lo = trace_id.0 as u64;
        let hi = (trace_id.0 >> 64) as u64;
        let mut x = lo ^ hi.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        // The top 53 bits as a fraction in [0, 1).
        ((x >> 11) as f64) / ((1u64 << 53) as f64) < self.rate
    }

    /// The verdict on a settled trace: [`Verdict::Failed`] when `failed`
    /// (the attribution found a failure), [`Verdict::Slow`] when one of its
    /// requests took longer than the threshold, else by the rate.
    pub fn decide(&self, trace: &Trace, failed: bool) -> Verdict {
        if failed {
            return Verdict::Failed;
        }
        if let Some(threshold) = self.keep_slower_than {
            let threshold = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
            let slow = trace
                .request_nodes()
                .any(|id| trace[id].duration_ns() > threshold);
            if slow {
                return Verdict::Slow;
            }
        }
        if self.samples(trace.trace_id()) {
            Verdict::Sampled
        } else {
            Verdict::SampledOut
        }
    }
}
