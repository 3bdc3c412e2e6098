//! Outgoing requests with reqwest: a client span and injected trace context.

use std::future::Future;

use tracing::field::Empty;
use tracing::Instrument;

use super::{inject_context, span_context};

/// Trace context for reqwest request builders.
///
/// ```no_run
/// use omegi_layer::propagation::RequestBuilderExt;
/// # async fn run() -> Result<(), reqwest::Error> {
/// let client = reqwest::Client::new();
/// // Opens an `http.client` span, sends `traceparent`, records the status.
/// let response = client.get("http://127.0.0.1:7701/stock").send_traced().await?;
/// # Ok(()) }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Adds the current span's `traceparent` and `tracestate` headers.
    fn inject_context(self) -> Self;

    /// Sends the request inside a new client span (a child of the current
    /// span) whose context is injected into the request. The span records the
    /// method, URL and response status; a 4xx or 5xx status, a timeout or a
    /// connection error marks it as failed.
    fn send_traced(self) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn inject_context(self) -> Self {
        match super::current_context() {
            Some(context) => {
                let mut headers = http::HeaderMap::new();
                inject_context(&context, &mut headers);
                self.headers(headers)
            }
            None => self,
        }
    }

    fn send_traced(self) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send {
        let (client, request) = self.build_split();
        let span = match &request {
            Ok(request) => tracing::info_span!(
                "http.client",
                otel.name = %format!("{} {}", request.method(), request.url().path()),
                otel.kind = "client",
                http.request.method = %request.method(),
                url.full = %request.url(),
                server.address = request.url().host_str().unwrap_or(""),
                http.response.status_code = Empty,
                otel.status_code = Empty,
                otel.status_message = Empty,
            ),
            Err(_) => tracing::Span::none(),
        };
        let request = request.map(|mut request| {
            if let Some(context) = span_context(&span) {
                inject_context(&context, request.headers_mut());
            }
            request
        });
        async move {
            let response = client.execute(request?).instrument(span.clone()).await;
            match &response {
                Ok(response) => {
                    let status = response.status();
                    span.record("http.response.status_code", status.as_u16());
                    if status.is_client_error() || status.is_server_error() {
                        span.record("otel.status_code", "ERROR");
                        span.record("otel.status_message", format!("HTTP {status}"));
                    }
                }
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("otel.status_message", error.to_string());
                }
            }
            response
        }
    }
}
