//! The OTLP/gRPC receiver: `TraceService/Export` and `LogsService/Export`
//! (`opentelemetry.proto.collector.{trace,logs}.v1`), on its own listener
//! (`127.0.0.1:4317` by default).
//!
//! It is the OTLP/HTTP receiver ([`crate::api`]) over another transport,
//! and shares its ingest path (`api::ingest::accept`): the same
//! token (the `authorization: Bearer …` metadata, which OpenTelemetry SDKs
//! send from `OTEL_EXPORTER_OTLP_HEADERS`), the same budget of bodies in
//! flight (the message is read whole before its turn), the same slots of
//! the project and the server, the same body limit and minimum rate (on the
//! message as sent), gzip with the same decompressed limit, the same decode budget
//! scanned on the wire before anything is decoded, the same store
//! transaction and the same partial-success answers. Refusals map to gRPC
//! codes as the OTLP specification says:
//!
//! | refusal | code | retry |
//! |---|---|---|
//! | no token, unknown token | `UNAUTHENTICATED` | no |
//! | a user token | `PERMISSION_DENIED` | no |
//! | malformed message, invalid id, name the store cannot keep | `INVALID_ARGUMENT` | no |
//! | over a size or object cap | `RESOURCE_EXHAUSTED` | no (no `RetryInfo`) |
//! | no free slot, or no room for the body, within the wait | `RESOURCE_EXHAUSTED` | `RetryInfo` |
//! | the store failed | `UNAVAILABLE` | `RetryInfo` |
//! | the body arrived too slowly | `DEADLINE_EXCEEDED` | no |
//!
//! Messages stay bytes until the budget scan (`grpc::codec`), and the request
//! body is held to the size and rate limits as it arrives (`grpc::wire`).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::server::Grpc;
use tonic::{Code, Status};

use crate::api::body::{read_body, BodyError, BodyRate, ReadRules};
use crate::api::ingest::{accept, take_turn, Refusal, RpcCode, Signal, USER_TOKEN_REFUSED};
use crate::api::{principal, ApiError, SharedState};
use crate::auth::Principal;
use crate::otlp::{DecodeError, Format};

mod codec;
mod wire;

use codec::RawCodec;
use wire::WireBudget;

/// The path of the traces export method.
pub const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The path of the logs export method.
pub const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// How long a refusal that may be retried asks the client to wait.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Answers one gRPC request (an HTTP/2 request with its body as it
/// arrives): an OTLP export, or `UNIMPLEMENTED` for any other method.
pub(crate) async fn answer<B>(
    state: SharedState,
    request: http::Request<B>,
) -> http::Response<tonic::body::Body>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let signal = match request.uri().path() {
        TRACES_EXPORT => Signal::Traces,
        LOGS_EXPORT => Signal::Logs,
        path => {
            return Status::unimplemented(format!(
                "no method {path}: this server receives {TRACES_EXPORT} and {LOGS_EXPORT}"
            ))
            .into_http()
        }
    };
    let project = match principal(&state, request.headers()).await {
        Ok(Principal::Project(project)) => project,
        Ok(Principal::User(_)) => return Status::permission_denied(USER_TOKEN_REFUSED).into_http(),
        Err(error) => return api_error_status(&error).into_http(),
    };
    // The message is read only with a turn, as over HTTP: a burst of
    // requests holds at most `ingest_slots` messages in memory.
    // The message is read whole before the turn, within the budget of
    // bodies in flight, so that a slow sender holds no turn.
    let (parts, body) = request.into_parts();
    let body = WireBudget::new(body, state.body_limit, state.body_rate);
    let mut room = state.body_budget.reserve(&project);
    let rules = ReadRules {
        limit: state.body_limit.saturating_add(wire::FRAME_HEADER),
        // WireBudget holds the body to the rate, with its own status.
        rate: BodyRate::NONE,
        wait: state.ingest_wait,
    };
    let message = match read_body(body, rules, None, &mut room).await {
        Ok(message) => message,
        Err(BodyError::Read(status)) => return status.into_http(),
        Err(BodyError::Busy) => return busy().into_http(),
        Err(BodyError::TooLarge | BodyError::TooSlow { .. }) => {
            return status_of(&Refusal::decode(&DecodeError::RequestTooLarge {
                limit: state.body_limit,
            }))
            .into_http()
        }
    };
    let request = http::Request::from_parts(parts, Full::new(Bytes::from(message)));
    let Some(turn) = take_turn(&state, &project).await else {
        return busy().into_http();
    };
    let mut grpc = Grpc::new(RawCodec)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(state.limits.max_decompressed_bytes)
        .max_encoding_message_size(usize::MAX);
    let export = Export {
        state: Arc::clone(&state),
        project,
        signal,
    };
    let response = grpc.unary(export, request).await;
    drop(turn);
    drop(room);
    response
}

/// One export request of one project, once its message is in hand.
struct Export {
    state: SharedState,
    project: String,
    signal: Signal,
}

impl tower::Service<tonic::Request<Bytes>> for Export {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let project = self.project.clone();
        let signal = self.signal;
        Box::pin(async move {
            // tonic has undone the compression, within the decompressed limit.
            let message = request.into_inner();
            match accept(state, project, signal, message, Format::Protobuf, None).await {
                Ok(accepted) => {
                    let (_, body) = accepted.response(Format::Protobuf);
                    Ok(tonic::Response::new(Bytes::from(body)))
                }
                Err(refusal) => Err(status_of(&refusal)),
            }
        })
    }
}

/// No free slot within the wait: worth a retry.
fn busy() -> Status {
    status_of(&Refusal {
        code: RpcCode::ResourceExhausted,
        message: "the server is busy with other requests: retry later".into(),
        retry_after: Some(RETRY_DELAY),
        http_status: 503,
    })
}

/// A token refused or a store that failed while checking it.
fn api_error_status(error: &ApiError) -> Status {
    let message = error.to_string();
    match error {
        ApiError::Unauthorized(_) => Status::unauthenticated(message),
        ApiError::Forbidden(_) => Status::permission_denied(message),
        _ => {
            tracing::error!(error = %omegi_core::ErrorChain(error), "checking an ingest token failed");
            with_retry(Code::Unavailable, message, RETRY_DELAY)
        }
    }
}

/// A refusal of the ingest path as a gRPC status, with `RetryInfo` in its
/// details when a retry may succeed.
pub(crate) fn status_of(refusal: &Refusal) -> Status {
    let code = match refusal.code {
        RpcCode::InvalidArgument => Code::InvalidArgument,
        RpcCode::DeadlineExceeded => Code::DeadlineExceeded,
        RpcCode::ResourceExhausted => Code::ResourceExhausted,
        RpcCode::Internal => Code::Internal,
        RpcCode::Unavailable => Code::Unavailable,
    };
    match refusal.retry_after {
        Some(delay) => with_retry(code, refusal.message.clone(), delay),
        None => Status::new(code, refusal.message.clone()),
    }
}

/// A status whose details (`grpc-status-details-bin`) carry a
/// `google.rpc.RetryInfo`: OTLP exporters retry after its delay.
fn with_retry(code: Code, message: String, delay: Duration) -> Status {
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
                }),
            }
            .encode_to_vec(),
        }],
    };
    Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

/// `google.rpc.Status` with its details.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
    #[prost(message, repeated, tag = "3")]
    pub(crate) details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Any {
    #[prost(string, tag = "1")]
    pub(crate) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub(crate) retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

/// The hyper service of a gRPC listener.
pub(crate) fn service(
    state: SharedState,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future = BoxFuture<'static, Result<http::Response<tonic::body::Body>, Infallible>>,
> + Clone {
    hyper::service::service_fn(move |request| {
        let state = Arc::clone(&state);
        Box::pin(async move { Ok(answer(state, request).await) }) as BoxFuture<'static, _>
    })
}
