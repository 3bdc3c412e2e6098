//! Trace reconstruction and the critical path on traces of 10, 1,000 and
//! 100,000 spans.
//!
//! The traces look like real requests: a gateway root, fan-out of 1 to 8
//! children per span, a 30% chance that a child runs in another of eight
//! services, each service's host clock off by a few milliseconds (so skew
//! correction has work to do), three events per span, and the spans handed
//! over in shuffled order. Generating and cloning the input stays outside the
//! measured time.

use std::collections::VecDeque;
use std::hint::black_box;

use benches::Rng;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use omegi_core::flow::Trace;
use omegi_core::{EventRecord, Level, SpanId, SpanRecord, Status, TraceId};

const SIZES: [usize; 3] = [10, 1_000, 100_000];

const SERVICES: [&str; 8] = [
    "gateway",
    "user-service",
    "inventory-service",
    "payment-service",
    "shipping-service",
    "email-service",
    "search-service",
    "auth-service",
];
/// Each service's host clock error, in ns.
const CLOCK_ERROR: [i64; 8] = [
    0, 3_000_000, -2_000_000, 7_000_000, -5_000_000, 1_000_000, -1_000_000, 4_000_000,
];

fn record(id: u64, parent: Option<u64>, service: usize, start: u64, end: u64) -> SpanRecord {
    let recorded = |t: u64| (t as i64 + CLOCK_ERROR[service]) as u64;
    let (start, end) = (recorded(start), recorded(end));
    let step = (end - start) / 4;
    SpanRecord::new(
        TraceId(0xfeed),
        SpanId(id),
        format!("op {}", id % 50),
        start,
        end,
    )
    .with_parent(parent.map(SpanId))
    .with_service(SERVICES[service].to_owned())
    .with_target("bench")
    .with_events(
        (1..=3)
            .map(|k| {
                EventRecord::new(start + k * step, Level::Info, "step".to_owned())
                    .with_target("bench")
            })
            .collect(),
    )
    .with_status(if id.is_multiple_of(97) {
        Status::Error
    } else {
        Status::Unset
    })
}

/// A trace of `n` spans in shuffled order.
fn trace_of(n: usize) -> Vec<SpanRecord> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let t0 = 1_700_000_000_000_000_000u64;
    // (id, service, true start, true end)
    let mut spans = vec![record(1, None, 0, t0, t0 + 10_000_000_000)];
    let mut queue = VecDeque::from([(1u64, 0usize, t0, t0 + 10_000_000_000)]);
    let mut next_id = 2u64;
    while spans.len() < n {
        let Some((parent, service, start, end)) = queue.pop_front() else {
            break;
        };
        let fan_out = 1 + rng.below(8);
        let len = end - start;
        for _ in 0..fan_out {
            if spans.len() >= n {
                break;
            }
            let child_service = if rng.below(10) < 3 {
                rng.below(SERVICES.len() as u64) as usize
            } else {
                service
            };
            let s = start + rng.below(len / 2);
            let e = s + 1 + rng.below((end - s) / 2);
            spans.push(record(next_id, Some(parent), child_service, s, e));
            queue.push_back((next_id, child_service, s, e));
            next_id += 1;
        }
    }
    for i in (1..spans.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        spans.swap(i, j);
    }
    spans
}

fn bench_flow(c: &mut Criterion) {
    let mut assemble = c.benchmark_group("flow/assemble");
    for n in SIZES {
        let spans = trace_of(n);
        assemble.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            assemble.sample_size(10);
        }
        assemble.bench_with_input(BenchmarkId::from_parameter(n), &spans, |b, spans| {
            b.iter_batched(
                || spans.clone(),
                |spans| black_box(Trace::from_spans(spans)),
                BatchSize::LargeInput,
            );
        });
    }
    assemble.finish();

    let mut critical = c.benchmark_group("flow/critical_path");
    for n in SIZES {
        let trace = Trace::from_spans(trace_of(n)).expect("one trace id");
        critical.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            critical.sample_size(10);
        }
        critical.bench_with_input(BenchmarkId::from_parameter(n), &trace, |b, trace| {
            b.iter(|| black_box(trace.critical_path()));
        });
    }
    critical.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
