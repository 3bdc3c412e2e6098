use std::io::Write;

use omegi_core::{Attribute, ErrorKind, ErrorRecord, Level, SpanKind, SpanRecord, Status, Value};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1 as pt;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::*;

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn limits() -> Limits {
    Limits::default()
}

fn spans_of(decoded: &Decoded) -> Vec<SpanRecord> {
    decoded
        .records()
        .filter_map(|(_, r)| match r {
            Record::Span(s) => Some(s.clone()),
            Record::Error(_) => None,
        })
        .collect()
}

fn errors_of(decoded: &Decoded) -> Vec<ErrorRecord> {
    decoded
        .records()
        .filter_map(|(_, r)| match r {
            Record::Error(e) => Some(e.clone()),
            Record::Span(_) => None,
        })
        .collect()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn resource(service: &str, extra: Vec<KeyValue>) -> Option<PResource> {
    let mut attributes = vec![kv("service.name", s(service))];
    attributes.extend(extra);
    Some(PResource {
        attributes,
        ..Default::default()
    })
}

fn trace_bytes(n: u128) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn span_bytes(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn pspan(name: &str, id: u64, parent: Option<u64>, start: u64) -> pt::Span {
    pt::Span {
        trace_id: trace_bytes(0xaaaa),
        span_id: span_bytes(id),
        parent_span_id: parent.map(span_bytes).unwrap_or_default(),
        name: name.into(),
        kind: 1,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 100,
        ..Default::default()
    }
}

fn traces_request(resources: Vec<(Option<PResource>, Vec<pt::Span>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(resource, spans)| pt::ResourceSpans {
                resource,
                scope_spans: vec![pt::ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "checkout::http".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// The trace example of the OTLP specification, ids in upper case.
const SPEC_TRACE_JSON: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "kind": 2,
        "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
      }]
    }]
  }]
}"#;

#[test]
fn spec_trace_example_decodes_from_json() {
    let decoded = decode_traces(SPEC_TRACE_JSON.as_bytes(), JSON, None, &limits()).unwrap();
    assert_eq!(decoded.resources.len(), 1);
    assert_eq!(decoded.resources[0].resource.service, "my.service");
    let spans = spans_of(&decoded);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(
        span.trace_id.to_string(),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(span.span_id.to_string(), "eee19b7ec3c1b174");
    assert_eq!(
        span.parent_span_id.map(|p| p.to_string()).as_deref(),
        Some("eee19b7ec3c1b173")
    );
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_ns, 1_544_712_660_000_000_000);
    assert_eq!(span.end_ns, 1_544_712_661_000_000_000);
    assert_eq!(span.service, "my.service");
    assert_eq!(span.target, "my.library");
    assert_eq!(span.level, Level::Info);
    assert_eq!(
        span.attributes,
        vec![Attribute::new("my.span.attr", "some value")]
    );
    assert_eq!(span.status, Status::Unset);
    assert_eq!(decoded.error_count(), 0);
    assert_eq!(decoded.rejected, 0);
}

#[test]
fn json_and_protobuf_and_gzip_decode_to_the_same_records() {
    let mut span = pspan(
        "I'm a server span",
        0xEEE19B7EC3C1B174,
        None,
        1_544_712_660_000_000_000,
    );
    span.trace_id = trace_bytes(0x5B8EFFF798038103D269B633813FC60C);
    span.parent_span_id = span_bytes(0xEEE19B7EC3C1B173);
    span.end_time_unix_nano = 1_544_712_661_000_000_000;
    span.kind = 2;
    span.attributes = vec![kv("my.span.attr", s("some value"))];
    let body = ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: resource("my.service", vec![]),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    ..Default::default()
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec();
    let from_json = decode_traces(SPEC_TRACE_JSON.as_bytes(), JSON, None, &limits()).unwrap();
    let from_pb = decode_traces(&body, PB, None, &limits()).unwrap();
    let from_gzip = decode_traces(&gzip(&body), PB, Some("gzip"), &limits()).unwrap();
    let json_gzip = decode_traces(
        &gzip(SPEC_TRACE_JSON.as_bytes()),
        "application/json; charset=utf-8",
        Some("GZIP"),
        &limits(),
    )
    .unwrap();
    assert_eq!(from_pb, from_json);
    assert_eq!(from_gzip, from_json);
    assert_eq!(json_gzip, from_json);
}

#[test]
fn json_accepts_what_protobuf_json_encoders_emit() {
    let body = r#"{"resourceSpans":[{"resource":null,"scopeSpans":[{"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
        "parentSpanId":"","name":"q","kind":"SPAN_KIND_CLIENT",
        "startTimeUnixNano":1000,"endTimeUnixNano":"2000","flags":768,
        "unknownField":{"ignored":[1,2]},
        "attributes":[
          {"key":"empty.array","value":{"arrayValue":{}}},
          {"key":"nan","value":{"doubleValue":"NaN"}},
          {"key":"int","value":{"intValue":-5}},
          {"key":"bytes","value":{"bytesValue":"AQID"}},
          {"key":"none","value":null},
          {"key":"map","value":{"kvlistValue":{"values":[{"key":"k","value":{"intValue":"1"}}]}}}
        ],
        "events":null,
        "status":{"code":"STATUS_CODE_OK"}}]}]}]}"#;
    let decoded = decode_traces(body.as_bytes(), JSON, None, &limits()).unwrap();
    let span = &spans_of(&decoded)[0];
    assert_eq!(decoded.resources[0].resource.service, "unknown_service");
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.parent_span_id, None);
    assert!(!span.remote_parent, "no parent, so not a remote parent");
    assert_eq!((span.start_ns, span.end_ns), (1000, 2000));
    assert_eq!(span.status, Status::Ok);
    assert_eq!(
        span.attribute("empty.array"),
        Some(&Value::Str("[]".into()))
    );
    assert!(matches!(span.attribute("nan"), Some(Value::F64(f)) if f.is_nan()));
    assert_eq!(span.attribute("int"), Some(&Value::I64(-5)));
    assert_eq!(
        span.attribute("bytes"),
        Some(&Value::Str("\"AQID\"".into()))
    );
    assert_eq!(span.attribute("none"), Some(&Value::Str(String::new())));
    assert_eq!(
        span.attribute("map"),
        Some(&Value::Str(r#"{"k":1}"#.into()))
    );
}

#[test]
fn remote_parent_comes_from_the_span_flags() {
    let mut span = pspan("server", 2, Some(1), 10);
    span.flags = 0x300;
    let mut local = pspan("local", 3, Some(2), 20);
    local.flags = 0x100;
    let body = traces_request(vec![(resource("a", vec![]), vec![span, local])]);
    let spans = spans_of(&decode_traces(&body, PB, None, &limits()).unwrap());
    assert!(spans[0].remote_parent);
    assert!(!spans[1].remote_parent);
}

#[test]
fn span_attributes_for_location_target_and_level_are_lifted() {
    let mut span = pspan("charge", 2, None, 10);
    span.attributes = vec![
        kv("order", any_value::Value::IntValue(7)),
        kv("code.filepath", s("src/pay.rs")),
        kv("code.lineno", any_value::Value::IntValue(42)),
        kv("code.namespace", s("pay")),
        kv("omegi.target", s("pay::api")),
        kv("omegi.level", s("DEBUG")),
    ];
    span.events = vec![pt::span::Event {
        time_unix_nano: 50,
        name: "retrying".into(),
        attributes: vec![
            kv("level", s("warn")),
            kv("attempt", any_value::Value::IntValue(2)),
        ],
        dropped_attributes_count: 0,
    }];
    let body = traces_request(vec![(resource("pay", vec![]), vec![span])]);
    let span = spans_of(&decode_traces(&body, PB, None, &limits()).unwrap()).remove(0);
    assert_eq!(span.attributes, vec![Attribute::new("order", 7i64)]);
    assert_eq!(span.target, "pay::api");
    assert_eq!(span.level, Level::Debug);
    assert_eq!(span.location.to_string(), "src/pay.rs:42");
    assert_eq!(span.location.module.as_deref(), Some("pay"));
    let event = &span.events[0];
    assert_eq!(event.message, "retrying");
    assert_eq!(event.level, Level::Warn);
    assert_eq!(event.target, "pay::api");
    assert_eq!(event.fields, vec![Attribute::new("attempt", 2i64)]);
}

#[test]
fn exception_event_becomes_an_error_with_its_span_stack_and_breadcrumbs() {
    let mut root = pspan("GET /checkout", 1, None, 100);
    root.events = vec![pt::span::Event {
        time_unix_nano: 110,
        name: "cart loaded".into(),
        ..Default::default()
    }];
    let child = pspan("reserve", 2, Some(1), 120);
    let mut leaf = pspan("charge", 3, Some(2), 130);
    leaf.status = Some(pt::Status {
        code: 2,
        message: "declined".into(),
    });
    leaf.events = vec![
        pt::span::Event {
            time_unix_nano: 140,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s("CardDeclined")),
                kv("exception.message", s("card declined")),
                kv("exception.stacktrace", s("at charge (pay.js:3)")),
                kv("thread.name", s("worker-1")),
            ],
            dropped_attributes_count: 0,
        },
        pt::span::Event {
            time_unix_nano: 150,
            name: "after".into(),
            ..Default::default()
        },
    ];
    // The leaf is in another service: the stack crosses resources.
    let body = traces_request(vec![
        (resource("gateway", vec![]), vec![root, child]),
        (resource("payment", vec![]), vec![leaf]),
    ]);
    let decoded = decode_traces(&body, PB, None, &limits()).unwrap();
    let errors = errors_of(&decoded);
    assert_eq!(
        errors.len(),
        1,
        "the exception event reports, not the status"
    );
    let error = &errors[0];
    assert!(matches!(
        decoded.resources[1].records.last(),
        Some(Record::Error(_))
    ));
    assert_eq!(error.kind, ErrorKind::Remote);
    assert_eq!(error.service, "payment");
    assert_eq!(error.message, "card declined");
    assert_eq!(error.error_type.as_deref(), Some("CardDeclined"));
    assert_eq!(error.time_ns, 140);
    assert_eq!(error.span_id, Some(omegi_core::SpanId(3)));
    assert_eq!(error.trace_id, Some(omegi_core::TraceId(0xaaaa)));
    assert_eq!(error.thread.as_deref(), Some("worker-1"));
    assert_eq!(
        error.fields,
        vec![Attribute::new(
            "exception.stacktrace",
            "at charge (pay.js:3)"
        )]
    );
    let stack: Vec<&str> = error.span_stack.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(stack, ["GET /checkout", "reserve", "charge"]);
    let crumbs: Vec<&str> = error
        .breadcrumbs
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        crumbs,
        ["cart loaded"],
        "later events and the exception itself are not breadcrumbs"
    );
}

#[test]
fn failed_spans_report_once_at_the_deepest_level() {
    let failed = |mut span: pt::Span, message: &str| {
        span.status = Some(pt::Status {
            code: 2,
            message: message.into(),
        });
        span
    };
    let root = failed(pspan("GET /checkout", 1, None, 100), "upstream failed");
    let child = failed(pspan("reserve", 2, Some(1), 120), "out of stock");
    let sibling = pspan("log", 3, Some(1), 130);
    let body = traces_request(vec![(resource("shop", vec![]), vec![root, child, sibling])]);
    let errors = errors_of(&decode_traces(&body, PB, None, &limits()).unwrap());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "out of stock");
    assert_eq!(errors[0].error_type, None);
    assert_eq!(errors[0].innermost_span(), Some("reserve"));
    assert_eq!(errors[0].time_ns, 220);

    // Omegi's own layer reports errors as log records: no error from status.
    let omegi = vec![kv("telemetry.sdk.name", s("omegi"))];
    let body = traces_request(vec![(
        resource("shop", omegi),
        vec![failed(pspan("reserve", 2, None, 120), "out of stock")],
    )]);
    let decoded = decode_traces(&body, PB, None, &limits()).unwrap();
    assert_eq!((decoded.span_count(), decoded.error_count()), (1, 0));

    // Without a message, the span's name says what failed.
    let body = traces_request(vec![(
        resource("shop", vec![]),
        vec![failed(pspan("reserve", 2, None, 120), "")],
    )]);
    let errors = errors_of(&decode_traces(&body, PB, None, &limits()).unwrap());
    assert_eq!(errors[0].message, "span reserve failed");
}

const ERROR_LOGS_JSON: &str = r#"{"resourceLogs":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},
  "scopeLogs":[{"scope":{"name":"my.library"},"logRecords":[
    {"timeUnixNano":"1544712660300000000","severityNumber":10,
     "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
     "body":{"stringValue":"Example log record"}},
    {"timeUnixNano":"1544712660400000000","severityNumber":17,"severityText":"ERROR",
     "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
     "body":{"stringValue":"payment failed"},
     "attributes":[
       {"key":"int.attribute","value":{"intValue":"10"}},
       {"key":"double.attribute","value":{"doubleValue":637.704}},
       {"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}},
       {"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"some.map.key","value":{"stringValue":"some value"}}]}}},
       {"key":"exception.type","value":{"stringValue":"IOError"}}]},
    {"observedTimeUnixNano":"1544712660500000000","severityNumber":21,
     "body":{"stringValue":"fatal, outside any trace"}},
    {"timeUnixNano":"1544712660600000000","severityNumber":18,
     "body":{"stringValue":"body is not the message"},
     "attributes":[{"key":"exception.message","value":{"stringValue":"disk full"}}]}
  ]}]}]}"#;

#[test]
fn error_log_records_become_errors() {
    let decoded = decode_logs(ERROR_LOGS_JSON.as_bytes(), JSON, None, &limits()).unwrap();
    assert_eq!(decoded.ignored, 1);
    let errors = errors_of(&decoded);
    assert_eq!(errors.len(), 3);
    let first = &errors[0];
    assert_eq!(first.message, "payment failed");
    assert_eq!(first.service, "my.service");
    assert_eq!(first.target, "my.library");
    assert_eq!(first.kind, ErrorKind::Remote);
    assert_eq!(first.error_type.as_deref(), Some("IOError"));
    assert_eq!(first.time_ns, 1_544_712_660_400_000_000);
    assert_eq!(
        first.span_id.map(|s| s.to_string()).as_deref(),
        Some("eee19b7ec3c1b174")
    );
    assert_eq!(
        first.fields,
        vec![
            Attribute::new("int.attribute", 10i64),
            Attribute::new("double.attribute", 637.704),
            Attribute::new("array.attribute", r#"["many","values"]"#),
            Attribute::new("map.attribute", r#"{"some.map.key":"some value"}"#),
        ]
    );
    let crumbs: Vec<&str> = first
        .breadcrumbs
        .iter()
        .map(|b| b.message.as_str())
        .collect();
    assert_eq!(crumbs, ["Example log record"]);
    assert_eq!(first.breadcrumbs[0].level, Level::Info);
    assert!(first.span_stack.is_empty());

    let second = &errors[1];
    assert_eq!((second.trace_id, second.span_id), (None, None));
    assert_eq!(
        second.time_ns, 1_544_712_660_500_000_000,
        "observed time when no time"
    );
    assert_eq!(second.message, "fatal, outside any trace");
    assert_eq!(errors[2].message, "disk full");
}

#[test]
fn omegi_attributes_restore_what_otlp_has_no_place_for() {
    let stack = r#"[{"span_id":"0000000000000003","name":"charge","target":"pay","fields":[{"key":"order","value":7}],"location":{"file":null,"line":null,"module":null}}]"#;
    let crumbs = r#"[{"time_ns":5,"level":"warn","target":"pay","message":"retry","fields":[],"location":{"file":"a.rs","line":1,"module":null}}]"#;
    let record = pl::LogRecord {
        time_unix_nano: 10,
        severity_number: 17,
        body: Some(AnyValue {
            value: Some(s("charge failed")),
        }),
        trace_id: trace_bytes(0xaaaa),
        span_id: span_bytes(3),
        attributes: vec![
            kv("exception.type", s("pay::Error")),
            kv("exception.message", s("charge failed")),
            kv("exception.stacktrace", s("caused by: declined")),
            kv("omegi.error.kind", s("panic")),
            kv("omegi.fingerprint", s("pay-declined")),
            kv(
                "omegi.causes",
                any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s("declined")),
                    }],
                }),
            ),
            kv("omegi.span_stack", s(stack)),
            kv("omegi.breadcrumbs", s(crumbs)),
            kv("omegi.target", s("pay::api")),
            kv("code.filepath", s("src/pay.rs")),
            kv("code.lineno", any_value::Value::IntValue(9)),
            kv("order", any_value::Value::IntValue(7)),
        ],
        ..Default::default()
    };
    let body = ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource("pay", vec![]),
            scope_logs: vec![pl::ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec();
    let error = errors_of(&decode_logs(&body, PB, None, &limits()).unwrap()).remove(0);
    assert_eq!(error.kind, ErrorKind::Panic);
    assert_eq!(error.fingerprint.as_deref(), Some("pay-declined"));
    assert_eq!(error.causes, ["declined"]);
    assert_eq!(error.target, "pay::api");
    assert_eq!(error.location.to_string(), "src/pay.rs:9");
    assert_eq!(error.fields, vec![Attribute::new("order", 7i64)]);
    assert_eq!(error.innermost_span(), Some("charge"));
    assert_eq!(
        error.span_stack[0].fields,
        vec![Attribute::new("order", 7i64)]
    );
    assert_eq!(error.breadcrumbs[0].message, "retry");
    assert_eq!(error.breadcrumbs[0].level, Level::Warn);
}

#[test]
fn span_without_start_time_is_rejected_as_partial_success() {
    let ok = pspan("ok", 1, None, 10);
    let bad = pspan("bad", 2, None, 0);
    let body = traces_request(vec![(resource("a", vec![]), vec![ok, bad])]);
    let decoded = decode_traces(&body, PB, None, &limits()).unwrap();
    assert_eq!(decoded.span_count(), 1);
    assert_eq!(decoded.rejected, 1);
    let message = decoded.rejection_message.clone().unwrap();
    assert!(
        message.contains("\"bad\"") && message.contains("no start time"),
        "{message}"
    );

    let (ct, body) = traces_response(&decoded, PB);
    assert_eq!(ct, PB);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(partial.error_message, message);

    let (ct, body) = traces_response(&decoded, JSON);
    assert_eq!(ct, JSON);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedSpans"], "1");

    let (_, body) = logs_response(&Decoded::default(), JSON);
    assert_eq!(body, b"{}");
    let (_, body) = logs_response(&Decoded::default(), PB);
    assert!(body.is_empty(), "a full success is an empty message");
}

// ---------------------------------------------------------------- bad input

#[test]
fn wrong_content_type_or_encoding_is_refused() {
    let err = decode_traces(b"{}", "text/plain", None, &limits()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedContentType("text/plain".into())
    );
    assert_eq!(err.http_status(), 415);
    let err = decode_logs(b"{}", "", None, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::UnsupportedContentType(_)));
    let err = decode_traces(b"{}", JSON, Some("br"), &limits()).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedEncoding("br".into()));
}

#[test]
fn malformed_protobuf_is_a_protobuf_error() {
    // Field 1 (resource_spans), length-delimited, claiming 100 bytes of 2.
    let err = decode_traces(&[0x0a, 100, 1, 2], PB, None, &limits()).unwrap_err();
    let DecodeError::Protobuf(message) = &err else {
        panic!("expected a protobuf error, got {err:?}");
    };
    assert!(!message.is_empty());
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().starts_with("invalid protobuf: "));
}

#[test]
fn malformed_json_reports_line_and_column() {
    let body = "{\"resourceSpans\": [\n  {\"scopeSpans\": [}\n]}";
    let err = decode_traces(body.as_bytes(), JSON, None, &limits()).unwrap_err();
    let DecodeError::Json { line, column, .. } = err else {
        panic!("expected a JSON error, got {err:?}");
    };
    assert_eq!((line, column), (2, 19), "the stray closing brace");

    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#;
    let err = decode_logs(body.as_bytes(), JSON, None, &limits()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Json { line: 1, message, .. } if message.contains("\"soon\"")),
        "{err}"
    );

    let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#;
    let err = decode_traces(body.as_bytes(), JSON, None, &limits()).unwrap_err();
    assert!(err.to_string().contains("not a hex string"), "{err}");
}

#[test]
fn invalid_gzip_is_refused() {
    let err = decode_traces(b"not gzip at all", PB, Some("gzip"), &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidGzip(_)), "{err:?}");
    let truncated = &gzip(SPEC_TRACE_JSON.as_bytes())[..20];
    let err = decode_traces(truncated, JSON, Some("gzip"), &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidGzip(_)), "{err:?}");
}

#[test]
fn decompressed_size_is_bounded() {
    let small = Limits {
        max_decompressed_bytes: 64 * 1024,
        ..Limits::default()
    };
    // A 4 MiB body of zeros compresses to a few KiB: a small gzip bomb.
    let bomb = gzip(&vec![0u8; 4 * 1024 * 1024]);
    assert!(bomb.len() < small.max_decompressed_bytes);
    let err = decode_traces(&bomb, PB, Some("gzip"), &small).unwrap_err();
    assert_eq!(err, DecodeError::BodyTooLarge { limit: 64 * 1024 });
    assert_eq!(err.http_status(), 413);
    // The limit applies to plain bodies too, and exactly at the limit passes
    // the size check (and then fails as protobuf).
    let err = decode_traces(&vec![0u8; 64 * 1024 + 1], PB, None, &small).unwrap_err();
    assert_eq!(err, DecodeError::BodyTooLarge { limit: 64 * 1024 });
    let at_limit = gzip(&vec![0u8; 64 * 1024]);
    let err = decode_traces(&at_limit, PB, Some("gzip"), &small).unwrap_err();
    assert!(matches!(err, DecodeError::Protobuf(_)), "{err:?}");
}

fn json_span(trace_id: &str, span_id: &str, parent: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[
            {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"fine","startTimeUnixNano":"1"}},
            {{"traceId":"{trace_id}","spanId":"{span_id}","parentSpanId":"{parent}","name":"broken","startTimeUnixNano":"1"}}
        ]}}]}}]}}"#
    )
}

#[test]
fn invalid_ids_reject_the_whole_request() {
    let ok_trace = "5b8efff798038103d269b633813fc60c";
    let ok_span = "eee19b7ec3c1b174";
    let cases = [
        (
            json_span("abcd", ok_span, ""),
            "trace",
            IdProblem::Length {
                got: 2,
                expected: 16,
            },
        ),
        (
            json_span(&"0".repeat(32), ok_span, ""),
            "trace",
            IdProblem::AllZero,
        ),
        (
            json_span(ok_trace, "", ""),
            "span",
            IdProblem::Length {
                got: 0,
                expected: 8,
            },
        ),
        (
            json_span(ok_trace, &"0".repeat(16), ""),
            "span",
            IdProblem::AllZero,
        ),
        (
            json_span(ok_trace, ok_span, "0102"),
            "span",
            IdProblem::Length {
                got: 2,
                expected: 8,
            },
        ),
    ];
    for (body, which, expected) in cases {
        let err = decode_traces(body.as_bytes(), JSON, None, &limits()).unwrap_err();
        let (problem, context) = match (&err, which) {
            (
                DecodeError::InvalidTraceId {
                    problem, context, ..
                },
                "trace",
            ) => (problem, context),
            (
                DecodeError::InvalidSpanId {
                    problem, context, ..
                },
                "span",
            ) => (problem, context),
            _ => panic!("expected an invalid {which} id, got {err:?}"),
        };
        assert_eq!(*problem, expected, "{err}");
        assert!(context.contains("\"broken\""), "{err}");
        assert_eq!(err.http_status(), 400);
    }
    let err = decode_traces(
        json_span(ok_trace, ok_span, "0102").as_bytes(),
        JSON,
        None,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid span id \"0102\" of span \"broken\" (#1 of resource #0) (parent_span_id): 2 bytes, expected 8"
    );
}

#[test]
fn log_record_ids_are_optional_but_must_be_well_formed() {
    let body = |span_id: &str| {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[
                {{"timeUnixNano":"1","severityNumber":17,"body":{{"stringValue":"x"}},
                  "traceId":"5b8efff798038103d269b633813fc60c","spanId":"{span_id}"}}]}}]}}]}}"#
        )
    };
    let decoded = decode_logs(body("0000000000000000").as_bytes(), JSON, None, &limits()).unwrap();
    assert_eq!(errors_of(&decoded)[0].span_id, None);
    let err = decode_logs(body("abcdef").as_bytes(), JSON, None, &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::InvalidSpanId {
                problem: IdProblem::Length {
                    got: 3,
                    expected: 8
                },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn error_response_is_a_status_in_the_request_format() {
    let err = DecodeError::UnsupportedEncoding("br".into());
    let (ct, body) = error_response(&err, JSON);
    assert_eq!(ct, JSON);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], 3);
    assert_eq!(json["message"], err.to_string());
    let (ct, body) = error_response(&err, "text/plain");
    assert_eq!(ct, PB);
    let status = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(status.message, err.to_string());
}

// ---------------------------------------------------------------- budget

fn budget_limits() -> Limits {
    Limits {
        budget: DecodeBudget {
            max_spans: 2,
            max_events: 2,
            max_attributes: 6,
            max_attributes_per_item: 3,
            max_value_depth: 2,
            ..DecodeBudget::default()
        },
        ..Limits::default()
    }
}

#[test]
fn protobuf_and_json_count_the_same_against_the_budget() {
    let t0 = super::now_ns();
    let nested = |depth: usize| {
        let mut v = s("leaf");
        for _ in 0..depth {
            v = any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue { value: Some(v) }],
            });
        }
        kv("deep", v)
    };
    let with = |spans: Vec<pt::Span>| traces_request(vec![(resource("svc", vec![]), spans)]);
    let cases: Vec<(Vec<u8>, Option<Cap>)> = vec![
        (
            with(vec![pspan("a", 1, None, t0), pspan("b", 2, None, t0)]),
            None,
        ),
        (
            with((1..=3).map(|i| pspan("a", i, None, t0)).collect()),
            Some(Cap::Spans),
        ),
        (
            with(vec![pt::Span {
                attributes: (0..4).map(|i| kv(&format!("k{i}"), s("v"))).collect(),
                ..pspan("a", 1, None, t0)
            }]),
            Some(Cap::AttributesPerItem),
        ),
        (
            with(vec![pt::Span {
                attributes: vec![nested(2)],
                ..pspan("a", 1, None, t0)
            }]),
            None,
        ),
        (
            with(vec![pt::Span {
                attributes: vec![nested(3)],
                ..pspan("a", 1, None, t0)
            }]),
            Some(Cap::ValueDepth),
        ),
        (
            with(vec![pt::Span {
                events: (0..3)
                    .map(|_| pt::span::Event {
                        time_unix_nano: t0,
                        name: "e".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..pspan("a", 1, None, t0)
            }]),
            Some(Cap::Events),
        ),
    ];
    for (body, cap) in cases {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let json = serde_json::to_vec(&to_json(&request)).unwrap();
        for (content_type, body) in [(PB, &body), (JSON, &json)] {
            let result = decode_traces(body, content_type, None, &budget_limits());
            match cap {
                None => assert!(result.is_ok(), "{content_type}: {result:?}"),
                Some(cap) => assert!(
                    matches!(result, Err(DecodeError::OverBudget { cap: c, .. }) if c == cap),
                    "{content_type}: expected {cap:?}, got {result:?}"
                ),
            }
        }
    }
}

/// A trace request as OTLP/JSON.
fn to_json(request: &ExportTraceServiceRequest) -> serde_json::Value {
    fn value(v: &AnyValue) -> serde_json::Value {
        match &v.value {
            Some(any_value::Value::StringValue(s)) => serde_json::json!({ "stringValue": s }),
            Some(any_value::Value::ArrayValue(a)) => serde_json::json!({
                "arrayValue": { "values": a.values.iter().map(value).collect::<Vec<_>>() }
            }),
            _ => serde_json::json!({}),
        }
    }
    let kvs = |attributes: &[KeyValue]| -> Vec<serde_json::Value> {
        attributes
            .iter()
            .map(|a| serde_json::json!({"key": a.key, "value": a.value.as_ref().map(value)}))
            .collect()
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    serde_json::json!({ "resourceSpans": request.resource_spans.iter().map(|rs| serde_json::json!({
        "resource": { "attributes": kvs(&rs.resource.clone().unwrap_or_default().attributes) },
        "scopeSpans": rs.scope_spans.iter().map(|ss| serde_json::json!({
            "spans": ss.spans.iter().map(|sp| serde_json::json!({
                "traceId": hex(&sp.trace_id),
                "spanId": hex(&sp.span_id),
                "parentSpanId": hex(&sp.parent_span_id),
                "name": sp.name,
                "startTimeUnixNano": sp.start_time_unix_nano.to_string(),
                "endTimeUnixNano": sp.end_time_unix_nano.to_string(),
                "attributes": kvs(&sp.attributes),
                "events": sp.events.iter().map(|e| serde_json::json!({
                    "timeUnixNano": e.time_unix_nano.to_string(),
                    "name": e.name,
                    "attributes": kvs(&e.attributes),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()
        })).collect::<Vec<_>>()
    })).collect::<Vec<_>>() })
}

#[test]
fn the_wire_scan_skips_unknown_fields_and_refuses_broken_ones() {
    let t0 = super::now_ns();
    let valid = traces_request(vec![(
        resource("svc", vec![]),
        vec![pspan("a", 1, None, t0)],
    )]);
    // Unknown fields of every wire type, a group among them, before the
    // known ones: ignored, as protobuf says.
    let mut with_unknown = vec![
        0x78, 0x05, // field 15, varint
        0x7d, 1, 2, 3, 4, // field 15, fixed32
        0x79, 1, 2, 3, 4, 5, 6, 7, 8, // field 15, fixed64
        0x7a, 0x02, 0xaa, 0xbb, // field 15, bytes
        0x7b, 0x08, 0x01, 0x7c, // field 15, a group holding field 1
    ];
    with_unknown.extend_from_slice(&valid);
    let tally = scan_traces(&with_unknown, &DecodeBudget::default()).unwrap();
    assert_eq!((tally.resources, tally.scopes, tally.spans), (1, 1, 1));
    assert_eq!(tally.attributes, 1);
    let decoded = decode_traces(&with_unknown, PB, None, &limits()).unwrap();
    assert_eq!(spans_of(&decoded).len(), 1);
    // Broken wire data is a protobuf error, never a panic.
    for broken in [
        &valid[..valid.len() - 1],           // a length past the end
        &[0x0a, 0xff, 0xff, 0xff, 0x0f][..], // a huge length
        &[0x0a][..],                         // a tag without its length
        &[0x7b, 0x08][..],                   // a group never closed
        &[0x7c][..],                         // an end without a start
        &[0x0f][..],                         // wire type 7
        &[0x80; 11][..],                     // a varint of 11 bytes
    ] {
        let err = scan_traces(broken, &DecodeBudget::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Protobuf(_)),
            "{broken:?}: {err:?}"
        );
    }
}
