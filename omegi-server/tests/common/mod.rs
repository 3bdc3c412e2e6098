//! The in-process server that the end-to-end tests share: started on
//! 127.0.0.1:0 with a temporary data directory and the tokens its first
//! start creates, plus the CLI run against it.

// Each test file uses only part of this module.
#![allow(dead_code)]

pub mod grpc;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use omegi_core::flow::TailSampling;
use omegi_server::cli::{self, Cli};
use omegi_server::server::{ServeConfig, Server};
use omegi_server::settle::SettleConfig;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

pub struct TestServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
    /// The default project's ingest token.
    pub ingest: String,
    /// The admin user's API token.
    pub user: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(configure: impl FnOnce(ServeConfig) -> ServeConfig) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        // Requests settle on arrival and every trace is kept, unless a
        // test asks for a window or sampling.
        let settle = SettleConfig::default()
            .trace_wait(Duration::ZERO)
            .sampling(TailSampling::keep_all());
        let config = configure(ServeConfig::new(dir.path(), listen).settle(settle));
        let server = Server::start(config).await.expect("the server starts");
        let created = server
            .created_credentials()
            .cloned()
            .expect("first start creates credentials");
        TestServer {
            ingest: created.project.expect("a default project").token,
            user: created.user.expect("an admin user").token,
            server,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// Runs `omegi <args>` against this server and returns what it printed.
    pub async fn run_cli(&self, args: &[&str]) -> String {
        self.try_cli(args).await.expect("the command succeeds")
    }

    /// Runs the CLI in-process against this server; the error as its message.
    #[allow(dead_code)] // not every test binary needs it
    pub async fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let mut argv = vec![
            "omegi".to_owned(),
            "--server".into(),
            self.server.url(),
            "--data".into(),
            self.dir.path().display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let cli = Cli::try_parse_from(argv).expect("valid arguments");
        let mut out = Vec::new();
        cli::run(cli, &mut out)
            .await
            .map_err(|e| omegi_core::ErrorChain(&e).to_string())?;
        Ok(String::from_utf8(out).expect("UTF-8 output"))
    }
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}
