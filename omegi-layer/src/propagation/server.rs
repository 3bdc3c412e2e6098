//! Incoming requests with tower (axum, hyper): extract the trace context and
//! open a server span.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::field::Empty;
use tracing::Instrument;

use super::{extract, set_remote_parent};

/// A tower layer that opens an `http.server` span for every request, as a
/// child of the caller's span when the request carries W3C trace context.
///
/// The span records method, path and status code; a 5xx response marks it as
/// failed.
///
/// ```
/// use axum::{routing::get, Router};
/// use omegi_layer::propagation::ServerTraceLayer;
///
/// let app: Router = Router::new()
///     .route("/stock", get(|| async { "ok" }))
///     .layer(ServerTraceLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTraceLayer;

impl ServerTraceLayer {
    /// The layer.
    pub fn new() -> Self {
        ServerTraceLayer
    }
}

impl<S> tower::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTrace { inner }
    }
}

/// The service made by [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for ServerTrace<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "http.server",
            otel.name = %format!("{method} {path}"),
            otel.kind = "server",
            http.request.method = %method,
            url.path = %path,
            http.response.status_code = Empty,
            otel.status_code = Empty,
            otel.status_message = Empty,
        );
        if let Some(remote) = extract(request.headers()) {
            set_remote_parent(&span, &remote);
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(async move {
            let result = future.instrument(span.clone()).await;
            match &result {
                Ok(response) => {
                    let status = response.status();
                    span.record("http.response.status_code", status.as_u16());
                    if status.is_server_error() {
                        span.record("otel.status_code", "ERROR");
                        span.record("otel.status_message", format!("HTTP {status}"));
                    }
                }
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("otel.status_message", error.to_string());
                }
            }
            result
        })
    }
}
