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

/// Runs `omegi --data <data> <args>` in-process with no server (nothing
/// listens at its `--server`: commands that can work offline do); the
/// error as its message.
pub async fn offline_cli(data: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let mut argv = vec![
        "omegi".to_owned(),
        "--server".into(),
        "http://127.0.0.1:9".into(),
        "--data".into(),
        data.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    cli::run(cli, &mut out)
        .await
        .map_err(|e| omegi_core::ErrorChain(&e).to_string())?;
    Ok(String::from_utf8(out).expect("UTF-8 output"))
}

/// What a webhook receiver got: each body as JSON.
#[derive(Clone, Default)]
pub struct Receiver {
    pub bodies: std::sync::Arc<tokio::sync::Mutex<Vec<serde_json::Value>>>,
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Receiver>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> axum::http::StatusCode {
    receiver.bodies.lock().await.push(body);
    axum::http::StatusCode::OK
}

/// A webhook receiver on loopback: its URL, what it received and its task.
pub async fn webhook_receiver() -> (String, Receiver, tokio::task::JoinHandle<()>) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, receiver, task)
}

/// `omegi serve` as a process of its own (the built binary), killed with
/// SIGKILL when dropped.
pub struct ServeProcess {
    child: std::process::Child,
    /// Where its API listens.
    pub url: String,
}

impl ServeProcess {
    /// `omegi --data <data> serve --listen 127.0.0.1:0 <args>` with the
    /// environment variables `envs`; returns once it says where it
    /// listens.
    pub fn start(data: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> ServeProcess {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_omegi"));
        command
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("OMEGI_SYNC")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("omegi serve starts");
        // Its first line names the address; the rest is drained by the
        // thread until the child is gone.
        let stdout = child.stdout.take().expect("stdout");
        let (lines, first) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = lines.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = first
                .recv_timeout(left)
                .expect("omegi serve says where it listens within a minute");
            if let Some((_, rest)) = line.split_once("listening on ") {
                break rest.split_whitespace().next().expect("a URL").to_owned();
            }
        };
        ServeProcess { child, url }
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the child is reaped");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OTLP/JSON of trace `n`: `spans` spans of `service` starting after `t0`,
/// children of the first; the last fails with an `exception` event of type
/// `error_type` (one issue for all such traces).
pub fn failing_trace(n: u64, t0: u64, spans: u64, service: &str, error_type: &str) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (1..=spans)
        .map(|id| {
            let start = t0 + id * 1_000;
            let mut span = serde_json::json!({
                "traceId": format!("{n:032x}"),
                "spanId": format!("{id:016x}"),
                "parentSpanId": if id == 1 { String::new() } else { format!("{:016x}", 1) },
                "name": format!("step {id}"),
                "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 500).to_string(),
            });
            if id == spans {
                span["status"] = serde_json::json!({ "code": 2, "message": "card declined" });
                span["events"] = serde_json::json!([{
                    "timeUnixNano": (start + 100).to_string(),
                    "name": "exception",
                    "attributes": [
                        { "key": "exception.type", "value": { "stringValue": error_type } },
                        { "key": "exception.message", "value": { "stringValue": "card declined" } },
                    ],
                }]);
            }
            span
        })
        .collect();
    serde_json::json!({ "resourceSpans": [{
        "resource": { "attributes": [
            { "key": "service.name", "value": { "stringValue": service } },
        ] },
        "scopeSpans": [{ "spans": records }],
    }] })
    .to_string()
    .into_bytes()
}
