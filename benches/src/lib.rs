//! Shared pieces of the benchmarks in `benches/` and the load generator in
//! `src/bin`.

use omegi_core::{Attribute, EventRecord, Level, SpanId, SpanKind, SpanRecord, TraceId};

/// The services of the store benchmarks' traces.
pub const SHOP_SERVICES: [&str; 3] = ["gateway", "inventory-service", "payment-service"];

/// Span `i` of trace `trace` as the store benchmarks write it: starting at
/// `t0` plus 1 ms per trace and 1 µs per span, the first span the root and
/// the others its children, over [`SHOP_SERVICES`] in turn; 4 attributes
/// (`http.status_code` is `status_code`) and 2 events.
pub fn shop_span(t0: u64, trace: u64, i: u64, status_code: i64) -> SpanRecord {
    let start = t0 + trace * 1_000_000 + i * 1_000;
    SpanRecord::new(
        TraceId(u128::from(trace) << 64 | 0xabcd),
        SpanId(trace << 8 | (i + 1)),
        format!("GET /orders/{{id}} step {i}"),
        start,
        start + 800,
    )
    .with_parent((i > 0).then_some(SpanId(trace << 8 | 1)))
    .with_service(SHOP_SERVICES[(i % 3) as usize])
    .with_target("shop::api")
    .with_kind(SpanKind::Server)
    .with_attributes(vec![
        Attribute::new("http.method", "GET"),
        Attribute::new("http.route", "/orders/{id}"),
        Attribute::new("http.status_code", status_code),
        Attribute::new("order.id", (trace * 7) as i64),
    ])
    .with_events(
        (0..2)
            .map(|e| {
                EventRecord::new(start + 100 * e, Level::Debug, "query done")
                    .with_target("shop::db")
                    .with_field("rows", e as i64)
            })
            .collect(),
    )
}

/// A deterministic pseudo-random generator (xorshift64*), so that every run
/// of a bench builds the same input from the same seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index in `0..n` (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The number after the command-line argument `name` (`--traces 20000`),
/// or `default` when it is not given; a value that is not a number stops
/// the bench with a message naming the argument.
pub fn arg_u64(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{name} N"))
        })
}
