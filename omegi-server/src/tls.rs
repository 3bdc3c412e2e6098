//! TLS, with rustls: what `omegi serve --tls-cert --tls-key` serves, and
//! the extra CA that the CLI (`--ca-cert`) and webhooks
//! (`--webhook-ca-cert`) trust.
//!
//! Outgoing connections trust the Mozilla roots bundled into the binary
//! (webpki-roots): the same answer on every machine, also in minimal
//! containers without a system certificate store. A private CA (a company's
//! or a test's own) is added with a PEM file; it is trusted in addition to
//! the bundled roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate, key or CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{what} {path}: {message}")]
    File {
        /// Which file it is: `certificate`, `private key`, `CA certificate`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The certificate and key do not make a valid TLS configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate chain and private key a server presents, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The chain in `cert` and the key in `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// A TLS acceptor offering these credentials, with `alpn` protocols
    /// (`h2` for gRPC, `http/1.1` for the HTTP listeners).
    pub(crate) fn acceptor(&self, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let chain = read_certificates(&self.cert, "certificate")?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::File {
            what: "private key",
            path: self.key.clone(),
            message: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Every certificate of a PEM file; an error when it holds none.
fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::File {
        what,
        path: path.to_owned(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certificates.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

/// A reqwest client builder that also trusts the CA certificates of the PEM
/// file `ca` (when given), besides the bundled roots.
pub fn trust_ca(
    builder: reqwest::ClientBuilder,
    ca: Option<&Path>,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let Some(path) = ca else {
        return Ok(builder);
    };
    let mut builder = builder;
    for der in read_certificates(path, "CA certificate")? {
        let certificate =
            reqwest::Certificate::from_der(der.as_ref()).map_err(|e| TlsError::File {
                what: "CA certificate",
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}
