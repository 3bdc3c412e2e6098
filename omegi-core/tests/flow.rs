//! Flow reconstruction on hand-made multi-service traces: user-service calls
//! inventory-service, which calls payment-service, which declines the card.

use std::collections::{BTreeMap, BTreeSet};

use omegi_core::flow::{assemble, format_duration, service_dependencies, NodeId, Trace};
use omegi_core::{
    Attribute, ErrorRecord, EventRecord, Flow, FlowError, Level, SpanId, SpanKind, SpanRecord,
    Status, TraceId,
};

/// An arbitrary but fixed epoch for the hand-made traces.
const T0: u64 = 1_700_000_000_000_000_000;
const TRACE: TraceId = TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);

/// Milliseconds (with fractions) after `T0`, signed for skewed clocks.
fn at(ms: f64) -> u64 {
    let ns = (ms * 1_000_000.0).round() as i64;
    (T0 as i64 + ns) as u64
}

fn event(ms: f64, level: Level, message: &str, fields: Vec<Attribute>) -> EventRecord {
    EventRecord::new(at(ms), level, message)
        .with_target("app")
        .with_fields(fields)
}

#[allow(clippy::too_many_arguments)]
fn span(
    id: u64,
    parent: Option<u64>,
    service: &str,
    name: &str,
    kind: SpanKind,
    start_ms: f64,
    end_ms: f64,
    status: Status,
) -> SpanRecord {
    SpanRecord::new(TRACE, SpanId(id), name.to_owned(), at(start_ms), at(end_ms))
        .with_parent(parent.map(SpanId))
        .with_service(service)
        .with_target("app")
        .with_kind(kind)
        .with_status(status)
}

const USER: &str = "user-service";
const INVENTORY: &str = "inventory-service";
const PAYMENT: &str = "payment-service";

/// The checkout request, with every host's clock right. `inventory_ms` and
/// `payment_ms` shift those services' recorded times (a clock running ahead
/// or behind).
fn checkout(inventory_ms: f64, payment_ms: f64) -> Vec<SpanRecord> {
    use SpanKind::*;
    use Status::*;
    let (i, p) = (inventory_ms, payment_ms);
    let mut root = span(1, None, USER, "POST /checkout", Server, 0.0, 42.1, Error);
    root.events = vec![
        event(
            1.0,
            Level::Info,
            "checkout started",
            vec![Attribute::new("order_id", 42i64)],
        ),
        event(2.0, Level::Debug, "calling inventory", vec![]),
        event(
            41.0,
            Level::Error,
            "checkout failed",
            vec![Attribute::new("status", 502i64)],
        ),
    ];
    let mut reserve = span(
        4,
        Some(3),
        INVENTORY,
        "POST /reserve",
        Server,
        3.0 + i,
        37.0 + i,
        Error,
    );
    reserve.remote_parent = true;
    reserve.events = vec![event(
        4.0 + i,
        Level::Info,
        "reserving items",
        vec![Attribute::new("count", 3i64)],
    )];
    let mut db = span(
        5,
        Some(4),
        INVENTORY,
        "db.query",
        Client,
        4.0 + i,
        8.0 + i,
        Ok,
    );
    db.attributes = vec![Attribute::new("db.statement", "UPDATE stock SET n = n - 1")];
    let mut charge = span(
        7,
        Some(6),
        PAYMENT,
        "POST /charge",
        Server,
        10.0 + p,
        35.0 + p,
        Error,
    );
    charge.remote_parent = true;
    charge.events = vec![
        event(
            11.0 + p,
            Level::Info,
            "charging card",
            vec![Attribute::new("amount", "12.50 EUR")],
        ),
        event(31.0 + p, Level::Info, "releasing card lock", vec![]),
    ];
    let mut card = span(
        8,
        Some(7),
        PAYMENT,
        "charge_card",
        Internal,
        12.0 + p,
        30.0 + p,
        Error,
    );
    card.status_message = Some("card declined".into());
    card.events = vec![
        event(13.0 + p, Level::Debug, "gateway request sent", vec![]),
        event(29.0 + p, Level::Warn, "gateway answered 402", vec![]),
    ];
    vec![
        root,
        span(
            2,
            Some(1),
            USER,
            "reserve_and_pay",
            Internal,
            1.5,
            40.0,
            Error,
        ),
        span(
            3,
            Some(2),
            USER,
            "HTTP POST inventory",
            Client,
            2.0,
            38.0,
            Error,
        ),
        reserve,
        db,
        span(
            6,
            Some(4),
            INVENTORY,
            "HTTP POST payment",
            Client,
            9.0 + i,
            36.0 + i,
            Error,
        ),
        charge,
        card,
    ]
}

fn declined(payment_ms: f64) -> ErrorRecord {
    ErrorRecord::new("card declined", at(29.5 + payment_ms))
        .with_trace_id(TRACE)
        .with_span_id(SpanId(8))
        .with_service(PAYMENT)
        .with_causes(vec![
            "gateway answered 402".into(),
            "insufficient funds".into(),
        ])
        .with_error_type("CardError")
        .with_target("payment::card")
}

/// A compact, readable view of a reconstructed tree for snapshots.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Node {
    span: String,
    at: String,
    took: String,
    status: Status,
    flags: Vec<String>,
    children: Vec<Node>,
}

fn tree(trace: &Trace) -> Vec<Node> {
    fn node(trace: &Trace, id: NodeId, origin: u64) -> Node {
        let n = &trace[id];
        let mut flags = Vec::new();
        if n.skew_ns != 0 {
            flags.push(format!(
                "skew {}ns{}",
                n.skew_ns,
                if n.skew_corrected { " (here)" } else { "" }
            ));
        }
        if n.orphan {
            flags.push("orphan".into());
        }
        if n.cycle_broken {
            flags.push("cycle broken".into());
        }
        if n.duplicates > 0 {
            flags.push(format!("{} duplicates", n.duplicates));
        }
        Node {
            span: format!("{} {} #{}", n.span.service, n.span.name, n.span.span_id.0),
            at: format!("+{}", format_duration(n.start_ns() - origin)),
            took: format_duration(n.duration_ns()),
            status: n.span.status,
            flags,
            children: n.children.iter().map(|&c| node(trace, c, origin)).collect(),
        }
    }
    let origin = trace.start_ns();
    trace
        .roots()
        .iter()
        .map(|&r| node(trace, r, origin))
        .collect()
}

fn critical_text(trace: &Trace) -> String {
    let origin = trace.start_ns();
    trace
        .critical_path()
        .iter()
        .map(|s| {
            let n = &trace[s.node];
            format!(
                "+{:>7} .. +{:>7}  {} {}\n",
                format_duration(s.start_ns - origin),
                format_duration(s.end_ns - origin),
                n.span.service,
                n.span.name
            )
        })
        .collect()
}

#[test]
fn checkout_tree_flow_and_renderings() {
    let mut spans = checkout(0.0, 0.0);
    spans.reverse(); // arrival order does not matter
    let trace = Trace::from_spans(spans).unwrap();
    assert_eq!(trace.len(), 8);
    assert_eq!(trace.roots().len(), 1);
    assert_eq!(trace[trace.root()].span.span_id, SpanId(1));
    assert!(trace.nodes().iter().all(|n| n.skew_ns == 0));

    insta::assert_debug_snapshot!("checkout_tree", tree(&trace));
    insta::assert_snapshot!("checkout_waterfall", trace.waterfall(40));
    insta::assert_snapshot!("checkout_raw_log", trace.raw_log());
    insta::assert_snapshot!("checkout_critical_path", critical_text(&trace));

    let flow = Flow::for_error(&trace, &declined(0.0)).unwrap();
    let services: Vec<&str> = flow.hops.iter().map(|h| h.service.as_str()).collect();
    assert_eq!(services, [USER, INVENTORY, PAYMENT]);
    let last = flow.failing_hop().unwrap();
    assert_eq!(
        (last.span_name.as_str(), last.last_span_name.as_str()),
        ("POST /charge", "charge_card")
    );
    assert_eq!(last.span_ids, [SpanId(7), SpanId(8)]);
    // Only what was logged before the failure, in time order.
    let logged: Vec<&str> = last.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        logged,
        [
            "charging card",
            "gateway request sent",
            "gateway answered 402"
        ]
    );
    // The sibling db.query is not on the path; the root's late event is after the error.
    assert_eq!(flow.hops[0].span_ids, [SpanId(1), SpanId(2), SpanId(3)]);
    assert_eq!(flow.hops[0].events.len(), 2);
    assert_eq!(flow.hops[1].offset_ns, 3_000_000);
    insta::assert_debug_snapshot!("checkout_flow", flow);
    insta::assert_snapshot!("checkout_summary", flow.summary());

    let edges = trace.service_dependencies();
    insta::assert_debug_snapshot!("checkout_dependencies", edges);
}

#[test]
fn clock_skew_is_corrected_across_services() {
    // inventory's clock runs 20 ms ahead, payment's 50 ms behind.
    let right = Trace::from_spans(checkout(0.0, 0.0)).unwrap();
    let skewed = Trace::from_spans(checkout(20.0, -50.0)).unwrap();
    // Symmetric latency was built in, so the correction restores every time.
    // (The arena is ordered by recorded start, so look spans up by id.)
    for a in right.nodes() {
        let b = &skewed[skewed.find(a.span.span_id).unwrap()];
        assert_eq!(
            (a.start_ns(), a.end_ns()),
            (b.start_ns(), b.end_ns()),
            "span {}",
            a.span.name
        );
        assert_eq!(a.span.events, b.span.events);
    }
    let skew: BTreeMap<u64, (i64, bool)> = skewed
        .nodes()
        .iter()
        .map(|n| (n.span.span_id.0, (n.skew_ns, n.skew_corrected)))
        .collect();
    assert_eq!(skew[&1], (0, false));
    assert_eq!(skew[&4], (-20_000_000, true));
    assert_eq!(skew[&5], (-20_000_000, false)); // same service: inherits
    assert_eq!(skew[&7], (50_000_000, true));
    assert_eq!(skew[&8], (50_000_000, false));

    // The error's own time is corrected like its span's.
    let flow = Flow::for_error(&skewed, &declined(-50.0)).unwrap();
    assert_eq!(flow, Flow::for_error(&right, &declined(0.0)).unwrap());

    insta::assert_debug_snapshot!("skewed_tree", tree(&skewed));
    insta::assert_snapshot!("skewed_waterfall", skewed.waterfall(40));
}

#[test]
fn child_longer_than_parent_aligns_starts_and_same_service_is_left_alone() {
    use SpanKind::*;
    let spans = vec![
        span(
            1,
            None,
            USER,
            "POST /notify",
            Server,
            10.0,
            12.0,
            Status::Ok,
        ),
        // Fire-and-forget: runs past its parent, and started "before" it.
        span(
            2,
            Some(1),
            "mail-service",
            "send",
            Consumer,
            5.0,
            30.0,
            Status::Ok,
        ),
        // Same service as its parent: never adjusted, however odd.
        span(3, Some(1), USER, "audit", Internal, 2.0, 50.0, Status::Ok),
    ];
    let trace = Trace::from_spans(spans).unwrap();
    let send = &trace[trace.find(SpanId(2)).unwrap()];
    assert_eq!((send.start_ns(), send.end_ns()), (at(10.0), at(35.0)));
    assert_eq!(send.skew_ns, 5_000_000);
    let audit = &trace[trace.find(SpanId(3)).unwrap()];
    assert_eq!((audit.start_ns(), audit.skew_ns), (at(2.0), 0));
    // Children are ordered by corrected start.
    let order: Vec<u64> = trace[trace.root()]
        .children
        .iter()
        .map(|&c| trace[c].span.span_id.0)
        .collect();
    assert_eq!(order, [3, 2]);
}

#[test]
fn orphans_duplicates_and_cycles() {
    use SpanKind::*;
    let mut spans = checkout(0.0, 0.0);
    // A partial early copy of db.query, and a second copy of the charge with
    // an extra attribute: merged into one span each.
    let mut partial = spans[4].clone();
    partial.end_ns = at(5.0);
    partial.status = Status::Unset;
    partial.attributes = vec![Attribute::new("db.rows", 1i64)];
    spans.insert(0, partial);
    let mut copy = spans[7].clone();
    copy.attributes.push(Attribute::new("retry", true));
    copy.events
        .push(event(33.0, Level::Info, "charge recorded", vec![]));
    spans.push(copy);
    // A mail span whose parent never arrived, with a child of its own.
    spans.push(span(
        40,
        Some(99),
        "mail-service",
        "send receipt",
        Consumer,
        20.0,
        26.0,
        Status::Ok,
    ));
    spans.push(span(
        41,
        Some(40),
        "mail-service",
        "smtp",
        Client,
        21.0,
        25.0,
        Status::Error,
    ));
    // A parent cycle 20 -> 21 -> 22 -> 20 and a span that is its own parent.
    spans.push(span(
        20,
        Some(22),
        "audit-service",
        "a",
        Internal,
        15.0,
        16.0,
        Status::Ok,
    ));
    spans.push(span(
        21,
        Some(20),
        "audit-service",
        "b",
        Internal,
        16.0,
        17.0,
        Status::Ok,
    ));
    spans.push(span(
        22,
        Some(21),
        "audit-service",
        "c",
        Internal,
        17.0,
        18.0,
        Status::Ok,
    ));
    spans.push(span(
        30,
        Some(30),
        "audit-service",
        "self",
        Internal,
        18.0,
        19.0,
        Status::Ok,
    ));
    // Bad times: ends before it starts.
    spans.push(span(
        50,
        Some(1),
        USER,
        "backwards",
        Internal,
        20.0,
        19.0,
        Status::Ok,
    ));

    let trace = Trace::from_spans(spans).unwrap();
    assert_eq!(trace.len(), 8 + 2 + 3 + 1 + 1);
    assert_eq!(trace[trace.root()].span.span_id, SpanId(1));
    let orphans: Vec<u64> = trace.orphans().map(|o| trace[o].span.span_id.0).collect();
    assert_eq!(orphans, [40]);
    let db = &trace[trace.find(SpanId(5)).unwrap()];
    assert_eq!(
        (db.duplicates, db.end_ns(), db.span.status),
        (1, at(8.0), Status::Ok)
    );
    let keys: Vec<&str> = db.span.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["db.statement", "db.rows"]);
    let charge = &trace[trace.find(SpanId(7)).unwrap()];
    assert_eq!(charge.duplicates, 1);
    assert_eq!(charge.span.events.len(), 3);
    // The cycle is cut at its earliest span, which becomes a root.
    let a = &trace[trace.find(SpanId(20)).unwrap()];
    assert!(a.cycle_broken && a.parent.is_none());
    assert_eq!(trace[trace.find(SpanId(22)).unwrap()].depth, 2);
    assert!(trace[trace.find(SpanId(30)).unwrap()].cycle_broken);
    assert_eq!(trace[trace.find(SpanId(50)).unwrap()].duration_ns(), 0);

    insta::assert_debug_snapshot!("messy_tree", tree(&trace));
    insta::assert_snapshot!("messy_waterfall", trace.waterfall(30));

    // The flow of a failure inside an orphan subtree starts at the orphan.
    let flow = Flow::for_span(&trace, SpanId(41)).unwrap();
    assert_eq!(flow.hops.len(), 1);
    assert_eq!(flow.hops[0].span_ids, [SpanId(40), SpanId(41)]);
    insta::assert_snapshot!("orphan_summary", flow.summary());
}

#[test]
fn flow_errors_are_precise() {
    let trace = Trace::from_spans(checkout(0.0, 0.0)).unwrap();
    let mut e = declined(0.0);
    e.span_id = None;
    assert_eq!(Flow::for_error(&trace, &e), Err(FlowError::NotInSpan));
    e.span_id = Some(SpanId(77));
    assert_eq!(
        Flow::for_error(&trace, &e),
        Err(FlowError::SpanNotFound {
            span_id: SpanId(77),
            trace_id: TRACE
        })
    );
    e.trace_id = Some(TraceId(5));
    assert_eq!(
        Flow::for_error(&trace, &e),
        Err(FlowError::TraceMismatch {
            error: TraceId(5),
            trace: TRACE
        })
    );
    assert_eq!(
        Trace::from_spans(Vec::new()).unwrap_err(),
        FlowError::NoSpans
    );
    let mut other = checkout(0.0, 0.0);
    other[3].trace_id = TraceId(5);
    assert_eq!(
        Trace::from_spans(other).unwrap_err(),
        FlowError::MixedTraces {
            first: TRACE,
            other: TraceId(5)
        }
    );
}

#[test]
fn failing_span_without_an_error_record() {
    let trace = Trace::from_spans(checkout(0.0, 0.0)).unwrap();
    let flow = Flow::for_span(&trace, SpanId(8)).unwrap();
    assert_eq!(flow.message, "card declined");
    assert_eq!(flow.error_time_ns, at(30.0));
    assert_eq!(flow.hops.len(), 3);
    // A failure in the root itself is a one-hop flow.
    let root = Flow::for_span(&trace, SpanId(1)).unwrap();
    assert_eq!(root.hops.len(), 1);
    assert_eq!(root.message, "checkout failed");
    assert_eq!(root.error_time_ns, at(41.0));
}

#[test]
fn several_traces_assemble_separately() {
    let mut spans = checkout(0.0, 0.0);
    let mut second = checkout(0.0, 0.0);
    for s in &mut second {
        s.trace_id = TraceId(1);
        s.start_ns -= 1_000;
        s.end_ns -= 1_000;
    }
    spans.extend(second);
    let traces = assemble(spans);
    assert_eq!(traces.len(), 2);
    // Ordered by root start: the second trace started first.
    assert_eq!(traces[0].trace_id(), TraceId(1));
    assert!(traces.iter().all(|t| t.len() == 8 && t.roots().len() == 1));
    let edges = service_dependencies(&traces);
    let summary: Vec<(&str, &str, u64, u64)> = edges
        .iter()
        .map(|e| (e.caller.as_str(), e.callee.as_str(), e.calls, e.errors))
        .collect();
    assert_eq!(
        summary,
        [(INVENTORY, PAYMENT, 2, 2), (USER, INVENTORY, 2, 2)]
    );
}

#[test]
fn critical_path_follows_the_last_finishing_children() {
    use SpanKind::*;
    use Status::Ok;
    // root 0..100: a 10..40 and b 40..90 back to back (b's child b1 50..95 runs
    // past b and is clipped to it), c 20..30 overlaps a and is off the path.
    let spans = vec![
        span(1, None, USER, "root", Server, 0.0, 100.0, Ok),
        span(2, Some(1), USER, "a", Internal, 10.0, 40.0, Ok),
        span(3, Some(1), INVENTORY, "b", Server, 40.0, 90.0, Ok),
        span(4, Some(1), USER, "c", Internal, 20.0, 30.0, Ok),
        span(5, Some(3), INVENTORY, "b1", Internal, 50.0, 95.0, Ok),
    ];
    let trace = Trace::from_spans(spans).unwrap();
    let path: Vec<(u64, u64, u64)> = trace
        .critical_path()
        .iter()
        .map(|s| {
            (
                s.span_id.0,
                (s.start_ns - T0) / 1_000_000,
                (s.end_ns - T0) / 1_000_000,
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            (1, 0, 10),
            (2, 10, 40),
            (3, 40, 50),
            (5, 50, 90),
            (1, 90, 100)
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Span ids 1..=12 in two traces; parents anywhere in 0..=14 (so missing,
    /// self and cyclic parents all happen); times in any order.
    fn arb_span() -> impl Strategy<Value = SpanRecord> {
        (
            1u128..=2,
            1u64..=12,
            proptest::option::of(0u64..=14),
            0usize..3,
            0u64..1_000,
            0u64..1_000,
            proptest::bool::ANY,
            0u64..1_000,
        )
            .prop_map(|(trace, id, parent, service, start, end, failed, ev)| {
                let mut s = span(
                    id,
                    parent,
                    ["a", "b", "c"][service],
                    "op",
                    SpanKind::Internal,
                    0.0,
                    0.0,
                    if failed { Status::Error } else { Status::Unset },
                );
                s.trace_id = TraceId(trace);
                s.start_ns = start;
                s.end_ns = end;
                s.events = vec![EventRecord::new(ev, Level::Info, "e").with_target("app")];
                s
            })
    }

    proptest! {
        #[test]
        fn reconstruction_keeps_every_span_once(spans in proptest::collection::vec(arb_span(), 0..80)) {
            let distinct: BTreeSet<(u128, u64)> =
                spans.iter().map(|s| (s.trace_id.0, s.span_id.0)).collect();
            let traces = assemble(spans.clone());
            let mut seen = BTreeSet::new();
            for trace in &traces {
                prop_assert!(!trace.is_empty());
                // The tree is a forest: every node reached once from the roots.
                let mut reached = vec![0u32; trace.len()];
                for &id in trace.preorder() {
                    reached[id.index()] += 1;
                }
                prop_assert!(reached.iter().all(|&r| r == 1));
                for (i, node) in trace.nodes().iter().enumerate() {
                    prop_assert!(seen.insert((trace.trace_id().0, node.span.span_id.0)));
                    prop_assert!(node.start_ns() <= node.end_ns());
                    for &c in &node.children {
                        prop_assert_eq!(trace[c].parent.map(NodeId::index), Some(i));
                        prop_assert_eq!(trace[c].depth, node.depth + 1);
                    }
                    // A child from another service ends up inside its parent
                    // unless it is longer.
                    if let Some(p) = node.parent {
                        let parent = &trace[p];
                        if parent.span.service != node.span.service
                            && node.duration_ns() <= parent.duration_ns()
                        {
                            prop_assert!(node.start_ns() >= parent.start_ns());
                            prop_assert!(node.end_ns() <= parent.end_ns());
                        }
                    }
                }
                // The critical path tiles the root's time without overlap.
                let root = &trace[trace.root()];
                let path = trace.critical_path();
                let mut t = root.start_ns();
                for s in &path {
                    prop_assert_eq!(s.start_ns, t);
                    prop_assert!(s.end_ns > s.start_ns);
                    t = s.end_ns;
                }
                prop_assert_eq!(t, root.end_ns());
                // Renderings and flows never panic.
                let _ = trace.waterfall(20);
                let _ = trace.raw_log();
                for node in trace.nodes() {
                    let flow = Flow::for_span(trace, node.span.span_id).unwrap();
                    prop_assert!(!flow.hops.is_empty());
                    let _ = flow.summary();
                }
                let _ = trace.service_dependencies();
            }
            prop_assert_eq!(seen, distinct);
        }

        #[test]
        fn arrival_order_does_not_change_the_tree(
            spans in proptest::collection::vec(arb_span(), 1..40),
            seed in 0u64..1_000,
        ) {
            // Distinct ids only: merging duplicates keeps the first on ties.
            let mut unique = BTreeMap::new();
            for s in spans {
                unique.entry((s.trace_id.0, s.span_id.0)).or_insert(s);
            }
            let spans: Vec<SpanRecord> = unique.into_values().collect();
            let mut shuffled = spans.clone();
            let len = shuffled.len();
            shuffled.rotate_left(seed as usize % len);
            shuffled.reverse();
            let render = |spans: Vec<SpanRecord>| {
                assemble(spans).iter().map(|t| t.waterfall(16)).collect::<Vec<_>>()
            };
            prop_assert_eq!(render(spans), render(shuffled));
        }
    }
}

#[test]
fn the_waterfall_aligns_wide_text_by_terminal_columns() {
    let spans = vec![
        span(
            1,
            None,
            "결제-서비스",
            "주문 처리",
            SpanKind::Server,
            0.0,
            40.0,
            Status::Ok,
        ),
        span(
            2,
            Some(1),
            "payment",
            "charge",
            SpanKind::Internal,
            5.0,
            20.0,
            Status::Ok,
        ),
    ];
    let trace = Trace::from_spans(spans).unwrap();
    let waterfall = trace.waterfall(20);
    let bars: Vec<usize> = waterfall
        .lines()
        .skip(1)
        .map(|line| {
            let label = &line[..line.find('|').expect("a bar")];
            unicode_width::UnicodeWidthStr::width(label)
        })
        .collect();
    assert_eq!(bars.len(), 2, "{waterfall}");
    assert_eq!(
        bars[0], bars[1],
        "bars start in the same column:\n{waterfall}"
    );
}
