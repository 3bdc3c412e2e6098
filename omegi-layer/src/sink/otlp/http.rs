//! OTLP/HTTP with protobuf bodies, over a blocking client (ureq) with
//! rustls: no async runtime on the exporter thread.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

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
            agent: ureq::Agent::with_parts(
                config,
                DefaultConnector::default(),
                EndpointResolver::default(),
            ),
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

/// How long the addresses of an endpoint named by host name are reused
/// before it is looked up again.
const RESOLVED_FOR: Duration = Duration::from_secs(10);

/// Resolves the endpoint's address for each request without a thread per
/// request. The client looks the host up before every request, even when it
/// reuses a pooled connection, and bounds a lookup in time by running it on
/// a thread of its own: a thread created and joined per batch. Here an
/// address given as an IP needs no lookup, and a host name's addresses are
/// kept for [`RESOLVED_FOR`].
#[derive(Debug, Default)]
struct EndpointResolver {
    lookup: DefaultResolver,
    /// The last host name looked up (with its port), when, and its addresses.
    recent: Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for EndpointResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return self.lookup.resolve(uri, config, timeout);
        };
        // `[::1]` in a URL is the address `::1`.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            let port = authority
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((name, at, addrs)) = &*recent {
            if name == authority.as_str() && at.elapsed() < RESOLVED_FOR {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.lookup.resolve(uri, config, timeout)?;
        *recent = Some((authority.as_str().to_owned(), Instant::now(), addrs.clone()));
        Ok(addrs)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(resolver: &EndpointResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().expect("a URL");
        let config = Config::default();
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::Exact(Duration::from_secs(5)),
            ..NextTimeout::default()
        };
        let addrs = resolver.resolve(&uri, &config, timeout).expect("resolved");
        addrs.iter().copied().collect()
    }

    #[test]
    fn an_ip_endpoint_is_its_address_and_a_host_name_is_looked_up_once_per_period() {
        let resolver = EndpointResolver::default();
        let ip = |s: &str| s.parse::<SocketAddr>().expect("an address");
        assert_eq!(
            resolve(&resolver, "http://127.0.0.1:4318/v1/traces"),
            [ip("127.0.0.1:4318")]
        );
        assert_eq!(
            resolve(&resolver, "http://[::1]/v1/traces"),
            [ip("[::1]:80")]
        );
        assert_eq!(
            resolve(&resolver, "https://10.1.2.3/"),
            [ip("10.1.2.3:443")]
        );
        assert!(
            resolver.recent.lock().unwrap().is_none(),
            "no lookup for IPs"
        );

        let first = resolve(&resolver, "http://localhost:4318/v1/traces");
        assert!(!first.is_empty() && first.iter().all(|a| a.ip().is_loopback()));
        assert!(first.iter().all(|a| a.port() == 4318));
        let looked_up_at = match &*resolver.recent.lock().unwrap() {
            Some((name, at, _)) => {
                assert_eq!(name, "localhost:4318");
                *at
            }
            None => panic!("the lookup is kept"),
        };
        assert_eq!(resolve(&resolver, "http://localhost:4318/v1/logs"), first);
        let again = resolver.recent.lock().unwrap().as_ref().map(|r| r.1);
        assert_eq!(again, Some(looked_up_at), "kept addresses are reused");
    }
}
