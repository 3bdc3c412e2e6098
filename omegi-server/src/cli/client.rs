//! A small client of the REST API, over HTTP or HTTPS (rustls, the bundled
//! Mozilla roots and an optional extra CA: [`crate::tls`]).

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::CliError;

/// Talks to one server with one token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the server at `base` (`http://127.0.0.1:7700`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// A client of the server at `base` that trusts the CA certificates of
    /// the PEM file `ca` besides the bundled roots (`--ca-cert`).
    pub fn with_ca(base: &str, token: Option<String>, ca: Option<&Path>) -> Result<Self, CliError> {
        let tls_error = |e: crate::tls::TlsError| CliError::Usage(format!("--ca-cert: {e}"));
        let http = crate::tls::trust_ca(reqwest::Client::builder(), ca)
            .map_err(tls_error)?
            .build()
            .map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// `GET path?query` as JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.send(Method::GET, path, query, None::<&()>).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CliError> {
        self.send(Method::POST, path, &[], body).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(Method::PUT, path, &[], Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(Method::DELETE, path, &[], None::<&()>).await
    }

    /// `GET path?query` as text.
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String, CliError> {
        let (url, bytes) = self.send_raw(Method::GET, path, query, None::<&()>).await?;
        String::from_utf8(bytes).map_err(|e| CliError::Response {
            url,
            message: e.to_string(),
        })
    }

    /// `GET path` as bytes.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, CliError> {
        Ok(self.send_raw(Method::GET, path, &[], None::<&()>).await?.1)
    }

    async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, CliError> {
        let (url, bytes) = self.send_raw(method, path, query, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::Response {
            url,
            message: e.to_string(),
        })
    }

    /// `POST path?query` with the file at `file` as the raw body, its
    /// length announced (so that a server refuses a file over its limit
    /// before it is sent), read as it is sent.
    pub async fn post_file<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        file: &Path,
    ) -> Result<T, CliError> {
        let opened = tokio::fs::File::open(file).await;
        let io = |e: std::io::Error| CliError::Usage(format!("{}: {e}", file.display()));
        let opened = opened.map_err(io)?;
        let length = opened.metadata().await.map_err(io)?.len();
        let url = format!("{}{}", self.base, path);
        let request = self
            .http
            .post(&url)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::from(opened));
        let (url, bytes) = self.dispatch(url, request).await?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::Response {
            url,
            message: e.to_string(),
        })
    }

    /// Sends a request; the URL and the body of a successful answer.
    async fn send_raw<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<(String, Vec<u8>), CliError> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method, &url).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.dispatch(url, request).await
    }

    /// Sends `request` to `url` with the token; the URL and the body of a
    /// successful answer, or the server's error.
    async fn dispatch(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<(String, Vec<u8>), CliError> {
        let token = self.token.as_deref().ok_or(CliError::NoToken)?;
        let response =
            request
                .bearer_auth(token)
                .send()
                .await
                .map_err(|source| CliError::Http {
                    url: url.clone(),
                    source,
                })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| CliError::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(CliError::Api {
                status: status.as_u16(),
                message: error_message(status, &bytes),
            });
        }
        Ok((url, bytes.to_vec()))
    }
}

fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            if text.is_empty() {
                status.to_string()
            } else {
                text
            }
        })
}
