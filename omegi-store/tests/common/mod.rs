//! Record builders shared by the integration tests.
#![allow(dead_code)]

use omegi_core::{
    Attribute, CodeLocation, ErrorRecord, Record, Resource, SpanFrame, SpanId, SpanKind,
    SpanRecord, TraceId,
};

pub const T0: u64 = 1_700_000_000_000_000_000;
pub const SEC: u64 = 1_000_000_000;

pub fn resource(service: &str) -> Resource {
    Resource::new(service).with_attribute("host.name", "test-host")
}

pub fn span(trace: u128, id: u64, parent: Option<u64>, service: &str, start: u64) -> SpanRecord {
    SpanRecord::new(
        TraceId(trace),
        SpanId(id),
        format!("op-{id}"),
        start,
        start + 1_000_000,
    )
    .with_parent(parent.map(SpanId))
    .with_service(service)
    .with_target("svc::api")
    .with_kind(SpanKind::Server)
    .with_attributes(vec![
        Attribute::new("http.route", "/orders/{id}"),
        Attribute::new("order", 42i64),
        Attribute::new("big", u64::MAX),
        Attribute::new("ratio", 0.5),
        Attribute::new("ok", true),
    ])
    .with_location(CodeLocation {
        file: Some("src/api.rs".into()),
        line: Some(10),
        module: Some("svc::api".into()),
    })
}

pub fn error(service: &str, message: &str, time: u64, trace: Option<u128>) -> ErrorRecord {
    ErrorRecord::new(message, time)
        .with_trace_id(trace.map(TraceId))
        .with_span_id(trace.map(|_| SpanId(1)))
        .with_service(service)
        .with_causes(vec!["io error".into()])
        .with_error_type("AppError")
        .with_target("svc::api")
        .with_field("user", 7i64)
        .with_span_stack(vec![
            SpanFrame::new(SpanId(1), "handle").with_target("svc::api")
        ])
        .with_thread("main")
}

pub fn spans(records: Vec<SpanRecord>) -> Vec<Record> {
    records.into_iter().map(Record::Span).collect()
}
