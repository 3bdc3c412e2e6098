//! OTLP/gRPC (feature `grpc`): tonic clients driven by a single-threaded
//! Tokio runtime that the sink owns, so the exporter thread stays the only
//! thread that sends.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::{retry, Attempt, SignalConfig};

/// The gRPC clients of the traces and logs services, each on its own
/// (lazily connected) channel, since their endpoints may differ.
pub(crate) struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    traces_metadata: MetadataMap,
    logs_metadata: MetadataMap,
}

impl GrpcTransport {
    pub(crate) fn new(traces: &SignalConfig, logs: &SignalConfig) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the gRPC client's runtime: {e}"))?;
        // Channels spawn their connection tasks on the runtime they are made in.
        let _entered = runtime.enter();
        let traces_client = TraceServiceClient::new(channel(traces)?);
        let logs_client = LogsServiceClient::new(channel(logs)?);
        Ok(GrpcTransport {
            traces: traces_client,
            logs: logs_client,
            traces_metadata: metadata(&traces.headers)?,
            logs_metadata: metadata(&logs.headers)?,
            runtime,
        })
    }

    pub(crate) fn export_traces(
        &mut self,
        signal: &SignalConfig,
        request: &ExportTraceServiceRequest,
    ) -> Result<(), String> {
        let deadline = Instant::now() + signal.timeout;
        let (runtime, client, metadata) = (&self.runtime, &mut self.traces, &self.traces_metadata);
        retry(deadline, |remaining| {
            let call = client.export(grpc_request(request.clone(), metadata, remaining));
            outcome(runtime.block_on(call).map(|_| ()))
        })
    }

    pub(crate) fn export_logs(
        &mut self,
        signal: &SignalConfig,
        request: &ExportLogsServiceRequest,
    ) -> Result<(), String> {
        let deadline = Instant::now() + signal.timeout;
        let (runtime, client, metadata) = (&self.runtime, &mut self.logs, &self.logs_metadata);
        retry(deadline, |remaining| {
            let call = client.export(grpc_request(request.clone(), metadata, remaining));
            outcome(runtime.block_on(call).map(|_| ()))
        })
    }
}

fn grpc_request<T>(message: T, metadata: &MetadataMap, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata.clone();
    request.set_timeout(timeout);
    request
}

/// What a call's status means for the next attempt: the codes the OTLP
/// specification calls retryable are retried.
fn outcome(result: Result<(), tonic::Status>) -> Attempt {
    let status = match result {
        Ok(()) => return Attempt::Done,
        Err(status) => status,
    };
    let error = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::ResourceExhausted => Attempt::Retry { error, after: None },
        _ => Attempt::Fail(error),
    }
}

fn channel(signal: &SignalConfig) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(signal.url.clone())
        .map_err(|e| format!("invalid gRPC endpoint: {e}"))?
        .connect_timeout(signal.timeout);
    if signal.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match &signal.ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_webpki_roots(),
        };
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("invalid gRPC TLS settings: {e}"))?;
    }
    Ok(endpoint.connect_lazy())
}

fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, String> {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{name}` is not a valid gRPC metadata name"))?;
        let value = AsciiMetadataValue::try_from(value.as_str())
            .map_err(|_| format!("the value of `{name}` is not valid gRPC metadata"))?;
        map.insert(key, value);
    }
    Ok(map)
}
