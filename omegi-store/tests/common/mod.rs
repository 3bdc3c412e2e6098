//! Record builders shared by the integration tests.
#![allow(dead_code)]

use omegi_core::{
    Attribute, CodeLocation, ErrorKind, ErrorRecord, Level, Record, Resource, SpanFrame, SpanId,
    SpanKind, SpanRecord, Status, TraceId,
};

pub const T0: u64 = 1_700_000_000_000_000_000;
pub const SEC: u64 = 1_000_000_000;

pub fn resource(service: &str) -> Resource {
    Resource {
        service: service.into(),
        attributes: vec![Attribute::new("host.name", "test-host")],
    }
}

pub fn span(trace: u128, id: u64, parent: Option<u64>, service: &str, start: u64) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId(trace),
        span_id: SpanId(id),
        parent_span_id: parent.map(SpanId),
        remote_parent: false,
        service: service.into(),
        name: format!("op-{id}").into(),
        target: "svc::api".into(),
        level: Level::Info,
        kind: SpanKind::Server,
        start_ns: start,
        end_ns: start + 1_000_000,
        attributes: vec![
            Attribute::new("http.route", "/orders/{id}"),
            Attribute::new("order", 42i64),
            Attribute::new("big", u64::MAX),
            Attribute::new("ratio", 0.5),
            Attribute::new("ok", true),
        ],
        events: vec![],
        dropped_events: 0,
        status: Status::Unset,
        status_message: None,
        location: CodeLocation {
            file: Some("src/api.rs".into()),
            line: Some(10),
            module: Some("svc::api".into()),
        },
    }
}

pub fn error(service: &str, message: &str, time: u64, trace: Option<u128>) -> ErrorRecord {
    ErrorRecord {
        trace_id: trace.map(TraceId),
        span_id: trace.map(|_| SpanId(1)),
        service: service.into(),
        time_ns: time,
        kind: ErrorKind::Event,
        message: message.into(),
        causes: vec!["io error".into()],
        error_type: Some("AppError".into()),
        target: "svc::api".into(),
        fields: vec![Attribute::new("user", 7i64)],
        span_stack: vec![SpanFrame {
            span_id: SpanId(1),
            name: "handle".into(),
            target: "svc::api".into(),
            fields: vec![],
            location: CodeLocation::default(),
        }],
        breadcrumbs: vec![],
        location: CodeLocation::default(),
        thread: Some("main".into()),
        fingerprint: None,
    }
}

pub fn spans(records: Vec<SpanRecord>) -> Vec<Record> {
    records.into_iter().map(Record::Span).collect()
}
