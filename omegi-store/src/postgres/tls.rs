//! TLS to PostgreSQL, over rustls.
//!
//! The client reads `sslmode` itself (`disable`, `prefer`, `require`);
//! libpq's `verify-ca` and `verify-full`, and `sslrootcert` (the CA file to
//! trust), are read here. Whenever TLS is used, the server's certificate
//! and its name are verified, as libpq's `verify-full` does: against the
//! CA file given (`sslrootcert=/path/ca.pem` in the URL, or
//! [`PgConfig::root_cert`](super::PgConfig::root_cert)), else against
//! Mozilla's roots. `require`, `verify-ca` and `verify-full` all mean
//! that; `prefer` (the client's default) uses TLS when the server offers
//! it and connects without it otherwise. Client certificates are not
//! supported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};

/// The connector the pool's connections use.
pub(crate) type MakeTls = tokio_postgres_rustls::MakeRustlsConnect;

/// The URL with the TLS settings this module reads taken out (the client
/// refuses settings it does not know), and the CA file it named.
pub(crate) fn split_url(url: &str) -> Result<(String, Option<PathBuf>)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut parsed =
            url::Url::parse(url).map_err(|e| Error::InvalidDatabaseUrl(Box::new(e)))?;
        let mut root_cert = None;
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(key, value)| match (&*key, &*value) {
                ("sslrootcert", path) => {
                    root_cert = Some(PathBuf::from(path));
                    None
                }
                ("sslmode", "verify-ca" | "verify-full") => {
                    Some(("sslmode".to_owned(), "require".to_owned()))
                }
                _ => Some((key.into_owned(), value.into_owned())),
            })
            .collect();
        if pairs.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return Ok((parsed.into(), root_cert));
    }
    // PostgreSQL's `key=value` form; values in quotes are left to the
    // client, which reads them.
    if url.contains('\'') {
        return Ok((url.to_owned(), None));
    }
    let mut root_cert = None;
    let words: Vec<&str> = url
        .split_whitespace()
        .filter_map(|word| match word.split_once('=') {
            Some(("sslrootcert", path)) => {
                root_cert = Some(PathBuf::from(path));
                None
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => Some("sslmode=require"),
            _ => Some(word),
        })
        .collect();
    Ok((words.join(" "), root_cert))
}

/// A connector that trusts the certificates of `root_cert`, or Mozilla's
/// roots without one.
pub(crate) fn connector(root_cert: Option<&Path>) -> Result<MakeTls> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let file_error = |source: std::io::Error| Error::File {
                path: path.to_owned(),
                source,
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| file_error(std::io::Error::other(e)))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(std::io::Error::other(e)))?;
            if certificates.is_empty() {
                return Err(file_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no PEM certificate in the file",
                )));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| file_error(std::io::Error::other(e)))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Storage(crate::error::EngineError::database(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_settings_are_read_and_taken_out_of_the_url() {
        let (url, ca) = split_url(
            "postgres://omegi:pw@db:5432/omegi?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=n1",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://omegi:pw@db:5432/omegi?sslmode=require&application_name=n1"
        );
        assert_eq!(ca, Some(PathBuf::from("/etc/ca.pem")));
        let (url, ca) = split_url("postgresql://db/omegi?sslrootcert=ca.pem").unwrap();
        assert_eq!(
            (url.as_str(), ca),
            ("postgresql://db/omegi", Some("ca.pem".into()))
        );
        let (url, ca) =
            split_url("host=db dbname=omegi sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            (url.as_str(), ca),
            (
                "host=db dbname=omegi sslmode=require",
                Some("/ca.pem".into())
            )
        );
        let plain = "postgres://db/omegi";
        assert_eq!(split_url(plain).unwrap(), (plain.to_owned(), None));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("omegi-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let refused = connector(Some(&empty));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(refused, Err(Error::File { .. })));
        assert!(matches!(
            connector(Some(Path::new("/nonexistent/ca.pem"))),
            Err(Error::File { .. })
        ));
    }
}
