//! OTLP test receivers on 127.0.0.1 with ephemeral ports (HTTP and gRPC,
//! plain or TLS), and a test CA made with rcgen.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// What a receiver got: decoded requests and the `authorization` header of
/// each.
#[derive(Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub authorization: Vec<String>,
}

impl Received {
    /// Names of the spans received.
    pub fn span_names(&self) -> Vec<String> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    /// Bodies of the log records received.
    pub fn log_bodies(&self) -> Vec<String> {
        self.logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter_map(|l| match l.body.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// The string value of resource attribute `key` in every trace request.
    pub fn resource_attribute(&self, key: &str) -> Vec<String> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|r| r.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == key)
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

type Shared = Arc<Mutex<Received>>;

/// A receiver running on its own thread and runtime; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    received: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// `http://127.0.0.1:port` or `https://localhost:port`.
    pub fn url(&self, tls: bool) -> String {
        if tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn received(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received
            .lock()
            .expect("no panic while holding the lock")
    }

    /// An OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`, protobuf), with TLS
    /// when a server certificate and key (PEM) are given.
    pub fn http(tls: Option<&ServerCert>) -> Self {
        let tls = tls.map(|cert| cert.rustls_config());
        Self::start(move |listener, state, stop| {
            Box::pin(async move {
                let app = Router::new()
                    .route(
                        "/v1/traces",
                        post(
                            |State(s): State<Shared>, h: HeaderMap, b: Bytes| async move {
                                record(&s, &h, &b, false)
                            },
                        ),
                    )
                    .route(
                        "/v1/logs",
                        post(
                            |State(s): State<Shared>, h: HeaderMap, b: Bytes| async move {
                                record(&s, &h, &b, true)
                            },
                        ),
                    )
                    .with_state(state);
                let stop = async {
                    let _ = stop.await;
                };
                match tls {
                    None => axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .expect("the receiver serves"),
                    Some(config) => axum::serve(
                        TlsListener {
                            tcp: listener,
                            acceptor: tokio_rustls::TlsAcceptor::from(config),
                        },
                        app,
                    )
                    .with_graceful_shutdown(stop)
                    .await
                    .expect("the receiver serves"),
                }
            })
        })
    }

    /// An OTLP/gRPC receiver (traces and logs services), with TLS when a
    /// server certificate is given.
    pub fn grpc(tls: Option<&ServerCert>) -> Self {
        let identity =
            tls.map(|cert| tonic::transport::Identity::from_pem(&cert.cert_pem, &cert.key_pem));
        Self::start(move |listener, state, stop| {
            Box::pin(async move {
                let mut server = tonic::transport::Server::builder();
                if let Some(identity) = identity {
                    server = server
                        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                        .expect("a valid server certificate");
                }
                let service = GrpcReceiver(state);
                server
                    .add_service(TraceServiceServer::new(service.clone()))
                    .add_service(LogsServiceServer::new(service))
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        async {
                            let _ = stop.await;
                        },
                    )
                    .await
                    .expect("the receiver serves");
            })
        })
    }

    fn start(
        serve: impl FnOnce(
                tokio::net::TcpListener,
                Shared,
                tokio::sync::oneshot::Receiver<()>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
            + Send
            + 'static,
    ) -> Self {
        let received: Shared = Arc::default();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let state = received.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                addr_tx
                    .send(listener.local_addr().expect("a local address"))
                    .expect("the test waits for the address");
                serve(listener, state, stop_rx).await;
            });
        });
        let addr = addr_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the receiver starts");
        Receiver {
            addr,
            received,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn record(state: &Shared, headers: &HeaderMap, body: &[u8], logs: bool) -> StatusCode {
    let mut received = state.lock().expect("no panic while holding the lock");
    if logs {
        match ExportLogsServiceRequest::decode(body) {
            Ok(request) => received.logs.push(request),
            Err(_) => return StatusCode::BAD_REQUEST,
        }
    } else {
        match ExportTraceServiceRequest::decode(body) {
            Ok(request) => received.traces.push(request),
            Err(_) => return StatusCode::BAD_REQUEST,
        }
    }
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        received.authorization.push(auth.to_owned());
    }
    StatusCode::OK
}

#[derive(Clone)]
struct GrpcReceiver(Shared);

impl GrpcReceiver {
    fn authorization(&self, metadata: &tonic::metadata::MetadataMap) {
        if let Some(auth) = metadata.get("authorization").and_then(|v| v.to_str().ok()) {
            let mut received = self.0.lock().expect("no panic while holding the lock");
            received.authorization.push(auth.to_owned());
        }
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.authorization(request.metadata());
        let request = request.into_inner();
        self.0
            .lock()
            .expect("no panic while holding the lock")
            .traces
            .push(request);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.authorization(request.metadata());
        let request = request.into_inner();
        self.0
            .lock()
            .expect("no panic while holding the lock")
            .logs
            .push(request);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Accepts TCP connections and completes a TLS handshake on each; failed
/// handshakes (a client that does not trust the certificate) are skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A certificate authority made for one test.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate for `localhost` and `127.0.0.1`, signed by a
/// [`TestCa`].
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn server_cert(&self) -> ServerCert {
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl ServerCert {
    fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the server certificate");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server TLS config");
        Arc::new(config)
    }
}
