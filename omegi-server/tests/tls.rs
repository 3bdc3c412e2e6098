//! TLS with a CA made in the test (rcgen): `omegi serve --tls-cert
//! --tls-key` serves HTTPS and gRPC over TLS; the layer's OTLP sink, the
//! CLI (`--ca-cert`), a tonic client and webhooks (`--webhook-ca-cert`, to
//! an HTTPS receiver served with tokio-rustls) reach what the CA signed, and
//! refuse it under another CA. Webhook URLs' secrets never reach the logs.

mod common;

use std::convert::Infallible;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use omegi_server::alerts::RetryPolicy;
use omegi_server::server::{ServeConfig, TlsFiles};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use common::grpc;
use common::{kv, TestServer};

/// The webhook URL's secret: it must never appear in a log line.
const SECRET: &str = "s3cret-webhook-token";

/// A CA, a server certificate it signed for `localhost` and `127.0.0.1`,
/// and another CA that signed nothing, as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key")).expect("a CA")
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let authority = ca("Omegi test CA");
    let other = ca("Someone else's CA");
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &authority)
        .expect("a signed certificate");
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("writes");
        path
    };
    Pki {
        ca: write("ca.pem", authority.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        _dir: dir,
    }
}

/// Log lines of every test of this binary (one global subscriber).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().expect("the log buffer")).into_owned()
}

fn failed_trace(trace: u8, service: &str) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![pt::Span {
                    trace_id: vec![trace; 16],
                    span_id: vec![1; 8],
                    name: "charge".into(),
                    start_time_unix_nano: now - 1_000_000,
                    end_time_unix_nano: now,
                    status: Some(pt::Status {
                        code: 2,
                        message: format!("{service} failed"),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn https_server(pki: &Pki, configure: impl FnOnce(ServeConfig) -> ServeConfig) -> TestServer {
    let files = TlsFiles::new(&pki.cert, &pki.key);
    TestServer::start_with(|config| {
        configure(
            config
                .tls(Some(files))
                .grpc_listen(Some("127.0.0.1:0".parse().expect("an address"))),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_an_https_server_that_its_ca_signed() {
    let pki = pki();
    let server = https_server(&pki, |c| c).await;
    assert!(
        server.server.url().starts_with("https://"),
        "{}",
        server.server.url()
    );
    let ca = pki.ca.display().to_string();
    let projects = server
        .try_cli(&["--ca-cert", &ca, "projects"])
        .await
        .expect("the CLI trusts the server with --ca-cert");
    assert!(projects.contains("default"), "{projects}");
    // Without the CA (the bundled roots only), and with another CA: refused.
    let error = server
        .try_cli(&["projects"])
        .await
        .expect_err("an unknown issuer");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    let other = pki.other_ca.display().to_string();
    let error = server
        .try_cli(&["--ca-cert", &other, "projects"])
        .await
        .expect_err("another CA");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Plain HTTP on a TLS listener gets nothing.
    let plain = format!("http://{}/api/health", server.server.local_addr());
    assert!(reqwest::get(&plain).await.is_err());
    server.server.shutdown().await.expect("a clean shutdown");
}

async fn tls_channel(
    addr: std::net::SocketAddr,
    ca: &PathBuf,
) -> Result<Channel, tonic::transport::Error> {
    let pem = std::fs::read(ca).expect("the CA file");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name("localhost");
    Channel::from_shared(format!("https://{addr}"))
        .expect("a URI")
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_the_right_ca_only() {
    let pki = pki();
    let server = https_server(&pki, |c| c).await;
    let addr = server.server.grpc_addr().expect("a gRPC listener");
    let channel = tls_channel(addr, &pki.ca).await.expect("a TLS connection");
    let answer = grpc::export(
        channel,
        grpc::TRACES,
        Some(&server.ingest),
        failed_trace(1, "payment"),
        false,
    )
    .await;
    assert!(answer.is_ok(), "{answer:?}");
    let issues = server
        .run_cli(&["--ca-cert", &pki.ca.display().to_string(), "issues"])
        .await;
    assert!(issues.contains("payment failed"), "{issues}");
    // Another CA: the handshake fails, nothing is sent.
    let refused = match tls_channel(addr, &pki.other_ca).await {
        Err(error) => Err(error.to_string()),
        Ok(channel) => grpc::export(
            channel,
            grpc::TRACES,
            Some(&server.ingest),
            failed_trace(2, "inventory"),
            false,
        )
        .await
        .map_err(|status| status.to_string()),
    };
    assert!(refused.is_err(), "{refused:?}");
    server.server.shutdown().await.expect("a clean shutdown");
}

/// An HTTPS webhook receiver (tokio-rustls and hyper) that passes every
/// request body it gets to the channel.
async fn webhook_receiver(pki: &Pki) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Bytes>) {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(&pki.cert)
        .expect("the certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&pki.key).expect("the key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("a TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("an address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let body = request.into_body().collect().await.map(|b| b.to_bytes());
                            if let Ok(body) = body {
                                let _ = tx.send(body);
                            }
                            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                                Bytes::new(),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        queue: 16,
    }
}

async fn send_error(server: &TestServer, trace: u8, service: &str) {
    let response = server
        .http
        .post(format!("{}/v1/traces", server.server.url()))
        .bearer_auth(&server.ingest)
        .header("content-type", "application/x-protobuf")
        .body(failed_trace(trace, service))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_an_https_receiver_under_the_given_ca_and_keep_their_secret() {
    let logs = logs();
    let pki = pki();
    let (addr, mut received) = webhook_receiver(&pki).await;
    let hook = format!(
        "https://localhost:{}/hooks/{SECRET}?token={SECRET}",
        addr.port()
    );

    // Trusting the CA: the alert of a new issue arrives.
    let trusting = TestServer::start_with(|config| {
        config
            .webhooks([hook.clone()])
            .webhook_ca(Some(pki.ca.clone()))
            .retry(quick_retries())
    })
    .await;
    send_error(&trusting, 1, "payment").await;
    let alert = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("the alert arrives within 30 s")
        .expect("a body");
    let alert: serde_json::Value = serde_json::from_slice(&alert).expect("JSON");
    assert_eq!(alert["kind"], "new_issue", "{alert}");
    trusting.server.shutdown().await.expect("a clean shutdown");

    // Not trusting it (the bundled roots only): delivery fails, and the
    // log says so without the secret.
    let refusing =
        TestServer::start_with(|config| config.webhooks([hook.clone()]).retry(quick_retries()))
            .await;
    send_error(&refusing, 2, "inventory").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !log_text().contains("webhook delivery failed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure logged:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refusing.server.shutdown().await.expect("a clean shutdown");
    assert!(
        received.try_recv().is_err(),
        "an alert went through an untrusted connection"
    );
    let text = log_text();
    assert!(
        text.contains("https://localhost"),
        "the webhook is named:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("certificate"),
        "the cause is named:\n{text}"
    );
    assert!(
        !text.contains(SECRET),
        "a webhook secret reached the logs:\n{text}"
    );
    drop(logs);
}

#[test]
fn a_missing_or_empty_certificate_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let empty = dir.path().join("empty.pem");
    std::fs::File::create(&empty)
        .and_then(|mut f| f.write_all(b"not PEM\n"))
        .expect("writes");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    for (cert, key) in [
        (dir.path().join("missing.pem"), empty.clone()),
        (empty.clone(), empty.clone()),
    ] {
        let config = ServeConfig::new(
            dir.path().join("data"),
            "127.0.0.1:0".parse().expect("an address"),
        )
        .tls(Some(TlsFiles::new(&cert, &key)));
        let error = runtime
            .block_on(omegi_server::server::Server::start(config))
            .expect_err("no server without a usable certificate");
        let error = omegi_core::ErrorChain(&error).to_string();
        assert!(error.contains(&cert.display().to_string()), "{error}");
    }
}

/// The layer's OTLP sink reaches an HTTPS `omegi serve` with the CA that
/// signed it, and fails (counted, never blocking) under another CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_exports_to_an_https_server_that_its_ca_signed() {
    use omegi_layer::sink::OtlpSink;
    use tracing_subscriber::layer::SubscriberExt as _;

    let pki = pki();
    let server = https_server(&pki, |c| c).await;
    let url = server.server.url();
    let token = server.ingest.clone();
    let export = move |ca: PathBuf, service: &'static str| {
        let url = url.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            let sink = OtlpSink::builder()
                .endpoint(url)
                .bearer_token(&token)
                .ca_certificate_file(&ca)
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a valid sink");
            let (layer, guard) = omegi_layer::layer(service).with_sink(sink).build();
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!("charge");
                let _entered = span.enter();
                tracing::error!("card declined in {service}");
            });
            assert!(guard.flush(Duration::from_secs(20)), "flushed in time");
            guard.stats()
        })
    };
    let trusted = export(pki.ca.clone(), "tls-checkout")
        .await
        .expect("the export thread");
    assert!(trusted.exported > 0 && trusted.failed == 0, "{trusted:?}");
    let refused = export(pki.other_ca.clone(), "tls-refused")
        .await
        .expect("the export thread");
    assert!(refused.exported == 0 && refused.failed > 0, "{refused:?}");
    let ca = pki.ca.display().to_string();
    let issues = server
        .try_cli(&["--ca-cert", &ca, "issues"])
        .await
        .expect("the CLI lists the issues");
    assert!(issues.contains("card declined in tls-checkout"), "{issues}");
    assert!(!issues.contains("tls-refused"), "{issues}");
    server.server.shutdown().await.expect("a clean shutdown");
}
