//! OTLP/HTTP with protobuf bodies, over a blocking client (ureq) with
//! rustls: no async runtime on the exporter thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::{retry, Attempt, SignalConfig};

/// Longest response body read (a partial-success answer or an error text).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Posts encoded requests to the traces and logs URLs.
pub(crate) struct HttpTransport {
    agent: ureq::Agent,
}

impl HttpTransport {
    /// A client trusting `ca_pem` (PEM certificates) when given, else the
    /// bundled Mozilla roots.
    pub(crate) fn new(ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut tls = TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let certs = ca_certificates(pem)?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build();
        Ok(HttpTransport {
            agent: config.into(),
        })
    }

    /// Posts `body` to the signal's URL, retrying what is worth retrying
    /// within the signal's timeout.
    pub(crate) fn post(&self, signal: &SignalConfig, body: &[u8]) -> Result<(), String> {
        let deadline = Instant::now() + signal.timeout;
        retry(deadline, |remaining| self.attempt(signal, body, remaining))
    }

    fn attempt(&self, signal: &SignalConfig, body: &[u8], remaining: Duration) -> Attempt {
        let mut request = self
            .agent
            .post(&signal.url)
            .content_type("application/x-protobuf");
        for (name, value) in &signal.headers {
            request = request.header(name, value);
        }
        let response = request
            .config()
            .timeout_global(Some(remaining))
            .build()
            .send(body);
        let mut response = match response {
            Ok(response) => response,
            Err(err) => {
                let retryable = matches!(
                    err,
                    ureq::Error::Io(_)
                        | ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                        | ureq::Error::Timeout(_)
                );
                let message = err.to_string();
                return if retryable {
                    Attempt::Retry {
                        error: message,
                        after: None,
                    }
                } else {
                    Attempt::Fail(message)
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the answer so that the connection can be reused; what it says
        // beyond the status is not needed.
        let _ = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec();
        match status {
            200..=299 => Attempt::Done,
            429 | 502 | 503 | 504 => Attempt::Retry {
                error: format!("HTTP {status}"),
                after: retry_after,
            },
            _ => Attempt::Fail(format!("HTTP {status}")),
        }
    }
}

/// The certificates of a PEM bundle; an error when it holds none.
pub(crate) fn ca_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(err) => return Err(format!("invalid CA certificate PEM: {err}")),
        }
    }
    if certs.is_empty() {
        return Err("the CA certificate PEM holds no certificate".to_owned());
    }
    Ok(certs)
}
