//! The layer's default sink: OTLP configured by the OpenTelemetry variables
//! alone, over HTTP and gRPC, plain and with TLS; `OTEL_SDK_DISABLED`; and
//! discarding only when chosen. The variables are given through
//! `Environment::from_vars`, so these tests do not race on the process
//! environment.

mod common;

use std::time::Duration;

use common::{Receiver, TestCa};
use omegi_layer::sink::{NullSink, OtlpProtocol, OtlpSink};
use omegi_layer::{Environment, MemorySink, OmegiBuilder, OmegiGuard};
use tracing::{error, info_span};
use tracing_subscriber::prelude::*;

/// Runs a span with an error inside under a layer from `builder`, then
/// flushes; returns the guard (for its stats).
fn run(builder: OmegiBuilder) -> OmegiGuard {
    let (layer, guard) = builder.export_interval(Duration::from_millis(50)).build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = info_span!("checkout", order = 7);
        let _entered = span.enter();
        error!("card declined");
    });
    guard.flush(Duration::from_secs(20));
    guard
}

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().copied())
}

#[test]
fn only_otel_variables_send_over_http() {
    let receiver = Receiver::http(None);
    let endpoint = receiver.url(false);
    let guard = run(omegi_layer::builder().environment(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken"),
        ("OTEL_SERVICE_NAME", "shop"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
    ])));
    let stats = guard.stats();
    assert_eq!(
        (stats.exported, stats.failed, stats.dropped),
        (2, 0, 0),
        "{stats:?}"
    );
    let received = receiver.received();
    assert_eq!(received.span_names(), ["checkout"]);
    assert_eq!(received.log_bodies(), ["card declined"]);
    assert_eq!(received.resource_attribute("service.name"), ["shop"]);
    assert_eq!(
        received.resource_attribute("deployment.environment"),
        ["test"]
    );
    assert_eq!(received.authorization, ["Bearer t0ken", "Bearer t0ken"]);
}

#[test]
fn only_otel_variables_send_over_grpc() {
    let receiver = Receiver::grpc(None);
    let endpoint = receiver.url(false);
    let guard = run(omegi_layer::builder().environment(env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken"),
        ("OTEL_SERVICE_NAME", "shop"),
    ])));
    let stats = guard.stats();
    assert_eq!((stats.exported, stats.failed), (2, 0), "{stats:?}");
    let received = receiver.received();
    assert_eq!(received.span_names(), ["checkout"]);
    assert_eq!(received.log_bodies(), ["card declined"]);
    assert_eq!(received.resource_attribute("service.name"), ["shop"]);
    assert_eq!(received.authorization, ["Bearer t0ken", "Bearer t0ken"]);
}

#[test]
fn signal_endpoints_are_used_as_they_are() {
    let receiver = Receiver::http(None);
    let base = receiver.url(false);
    let guard = run(omegi_layer::layer("shop").environment(env(&[
        // The general endpoint leads nowhere; the signals' own win.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("{base}/v1/traces"),
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            &format!("{base}/v1/logs"),
        ),
    ])));
    assert_eq!(guard.stats().exported, 2);
    assert_eq!(receiver.received().span_names(), ["checkout"]);
}

#[test]
fn sdk_disabled_captures_and_sends_nothing() {
    let receiver = Receiver::http(None);
    let endpoint = receiver.url(false);
    let vars = [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
    ];
    let guard = run(omegi_layer::layer("shop").environment(env(&vars)));
    let stats = guard.stats();
    assert_eq!((stats.exported, stats.failed, stats.dropped), (0, 0, 0));
    // Even a sink given by the code gets nothing.
    let sink = MemorySink::new();
    let guard = run(omegi_layer::layer("shop")
        .environment(env(&vars))
        .with_sink(sink.clone()));
    assert_eq!(guard.stats().exported, 0);
    assert!(sink.records().is_empty());
    assert!(receiver.received().traces.is_empty() && receiver.received().logs.is_empty());
}

#[test]
fn discarding_is_an_explicit_choice() {
    let receiver = Receiver::http(None);
    let endpoint = receiver.url(false);
    let guard = run(omegi_layer::layer("shop")
        .environment(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]))
        .with_sink(NullSink));
    assert_eq!(guard.stats().exported, 2);
    assert!(receiver.received().traces.is_empty());
}

#[test]
fn a_default_sink_that_cannot_be_configured_is_an_error_not_silence() {
    let vars = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")];
    let Err(err) = omegi_layer::layer("shop")
        .environment(env(&vars))
        .try_build::<tracing_subscriber::Registry>()
    else {
        panic!("an unsupported protocol is refused");
    };
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "{err}"
    );
    // `build` keeps the application running and counts every record as failed.
    let guard = run(omegi_layer::layer("shop").environment(env(&vars)));
    let stats = guard.stats();
    assert_eq!((stats.exported, stats.failed), (0, 2), "{stats:?}");
}

/// Sends one batch through a sink built from `vars` (plus the CA file, if
/// any) and says whether the receiver accepted it.
fn tls_case(receiver: &Receiver, protocol: &str, ca_pem: &str) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA file");
    let guard = run(omegi_layer::layer("shop").environment(env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url(true)),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ca_file.to_str().expect("a UTF-8 path"),
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
    ])));
    let stats = guard.stats();
    (stats.exported, stats.failed)
}

#[test]
fn https_with_the_right_ca_works_and_a_wrong_one_is_refused() {
    let ca = TestCa::new("omegi test CA");
    let receiver = Receiver::http(Some(&ca.server_cert()));
    assert_eq!(tls_case(&receiver, "http/protobuf", &ca.cert_pem), (2, 0));
    assert_eq!(receiver.received().span_names(), ["checkout"]);

    let other = TestCa::new("another CA");
    assert_eq!(
        tls_case(&receiver, "http/protobuf", &other.cert_pem),
        (0, 2)
    );
    // The bundled roots do not trust a private CA either.
    let sink = OtlpSink::builder()
        .endpoint(receiver.url(true))
        .timeout(Duration::from_secs(3))
        .environment(env(&[]))
        .build()
        .expect("a valid endpoint");
    let guard = run(omegi_layer::layer("shop").with_sink(sink));
    assert_eq!(guard.stats().failed, 2);
    assert_eq!(receiver.received().span_names(), ["checkout"]);
}

#[test]
fn grpc_over_tls_with_the_right_ca_works_and_a_wrong_one_is_refused() {
    let ca = TestCa::new("omegi test CA");
    let receiver = Receiver::grpc(Some(&ca.server_cert()));
    assert_eq!(tls_case(&receiver, "grpc", &ca.cert_pem), (2, 0));
    assert_eq!(receiver.received().log_bodies(), ["card declined"]);
    let other = TestCa::new("another CA");
    assert_eq!(tls_case(&receiver, "grpc", &other.cert_pem), (0, 2));
    assert_eq!(receiver.received().log_bodies(), ["card declined"]);
}

#[test]
fn the_builder_sets_a_ca_without_the_environment() {
    let ca = TestCa::new("omegi test CA");
    let receiver = Receiver::http(Some(&ca.server_cert()));
    let sink = OtlpSink::builder()
        .endpoint(receiver.url(true))
        .ca_certificate_pem(ca.cert_pem.as_bytes())
        .environment(env(&[]))
        .build()
        .expect("a valid CA");
    assert_eq!(sink.protocol(), OtlpProtocol::HttpProtobuf);
    let guard = run(omegi_layer::layer("shop").with_sink(sink));
    assert_eq!(guard.stats().exported, 2);
    assert_eq!(receiver.received().log_bodies(), ["card declined"]);
}
