//! A stock OpenTelemetry SDK reaches `omegi serve` with nothing but the
//! token: the Python SDK from PyPI (installed by `cargo xtask test` into a
//! virtualenv, or `OMEGI_OTEL_PYTHON`), its gRPC exporter and its
//! http/protobuf exporter, each sending a span that failed with an
//! exception, configured only by `OTEL_*` variables. The endpoint is set
//! because the test listens on free ports; the SDKs' default endpoints
//! (`localhost:4317`, `localhost:4318`) are `omegi serve`'s defaults.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

/// The service: one span that raises, exported by the exporter of
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (gRPC by default, as the SDK's own
/// default), then a clean shutdown that flushes it.
const APP: &str = r#"
import os, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

class PaymentDeclined(Exception):
    pass

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
try:
    with trace.get_tracer("checkout").start_as_current_span("charge"):
        raise PaymentDeclined(sys.argv[1])
except PaymentDeclined:
    pass
provider.shutdown()
"#;

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("OMEGI_OTEL_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/otel-python/bin/python");
    assert!(
        venv.is_file(),
        "this test needs the OpenTelemetry Python SDK, and {} is missing: `cargo xtask test` \
         installs it (or point OMEGI_OTEL_PYTHON at a Python that has opentelemetry-sdk and \
         the otlp-proto-grpc and otlp-proto-http exporters)",
        venv.display()
    );
    venv
}

/// Runs the app with only these variables (and `PATH`); its output, or a
/// panic when it fails or takes more than a minute.
fn run_app(script: &std::path::Path, vars: &[(&str, String)], message: &str) -> String {
    let mut command = Command::new(python());
    command
        .arg(script)
        .arg(message)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("python starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("waits").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SDK app took more than a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the SDK app failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_python_sdk_reaches_omegi_over_grpc_and_http() {
    let server = TestServer::start_with(|config| {
        config
            .grpc_listen(Some("127.0.0.1:0".parse().expect("an address")))
            .otlp_http_listen(Some("127.0.0.1:0".parse().expect("an address")))
    })
    .await;
    let grpc = server.server.grpc_addr().expect("a gRPC listener");
    let http = server
        .server
        .otlp_http_addr()
        .expect("an OTLP/HTTP listener");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("app.py");
    std::fs::write(&script, APP).expect("writes");
    let headers = format!("authorization=Bearer {}", server.ingest);

    let over_grpc = script.clone();
    let grpc_vars = vec![
        ("OTEL_EXPORTER_OTLP_HEADERS", headers.clone()),
        ("OTEL_SERVICE_NAME", "python-grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{grpc}")),
    ];
    let http_vars = vec![
        ("OTEL_EXPORTER_OTLP_HEADERS", headers),
        ("OTEL_SERVICE_NAME", "python-http".to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{http}")),
    ];
    let outputs = tokio::task::spawn_blocking(move || {
        let grpc = run_app(&over_grpc, &grpc_vars, "declined over grpc");
        let http = run_app(&over_grpc, &http_vars, "declined over http");
        (grpc, http)
    })
    .await
    .expect("the apps ran");
    // A failed export is logged by the SDK, not raised.
    for output in [&outputs.0, &outputs.1] {
        assert!(!output.contains("Failed to export"), "{output}");
    }

    let issues = server.run_cli(&["issues"]).await;
    for (service, message) in [
        ("python-grpc", "PaymentDeclined: declined over grpc"),
        ("python-http", "PaymentDeclined: declined over http"),
    ] {
        let line = issues
            .lines()
            .find(|line| line.contains(message))
            .unwrap_or_else(|| panic!("no issue {message:?} in:\n{issues}"));
        assert!(line.contains(service), "{line}");
    }
    server.server.shutdown().await.expect("a clean shutdown");
}
