//! The distributed demo: an `omegi serve` collector on the embedded store and
//! three services as separate processes — user-service → inventory-service →
//! payment-service — with traffic that fails for real.
//!
//! ```text
//! cargo run --release -p examples --bin shop            # run the demo and exit
//! cargo run --release -p examples --bin shop -- --serve # keep the collector and UI running
//! ```

mod services;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use omegi_server::alerts::{utc_minute, Alert, AlertKind};
use omegi_server::server::{ServeConfig, Server};
use omegi_server::settle::SettleConfig;
use serde_json::{json, Value};

use services::Order;

const PROJECT: &str = "default";

struct Options {
    orders: u64,
    serve: bool,
    data: Option<PathBuf>,
    listen: String,
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        orders: 40,
        serve: false,
        data: None,
        listen: "127.0.0.1:0".to_owned(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--short" => options.orders = 16,
            "--serve" => {
                options.serve = true;
                options.listen = "127.0.0.1:7700".to_owned();
            }
            "--orders" => {
                options.orders = args.next().context("--orders needs a number")?.parse()?;
            }
            "--data" => options.data = Some(args.next().context("--data needs a path")?.into()),
            "--listen" => {
                options.listen = args.next().context("--listen needs an address")?.clone()
            }
            "-h" | "--help" => {
                println!(
                    "usage: shop [--short] [--orders N] [--serve] [--data DIR] [--listen ADDR]\n\
                     \n  --short   fewer orders (for tests)\
                     \n  --serve   keep the collector, API and web UI running after the demo\
                     \n  --data    data directory (default: a fresh temporary one)\
                     \n  --listen  collector address (default 127.0.0.1:7700 with --serve)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `shop service <name> <collector> <token> [next]` runs one service process.
    if args.first().map(String::as_str) == Some("service") {
        let [_, name, collector, token, rest @ ..] = args.as_slice() else {
            bail!("usage: shop service NAME COLLECTOR TOKEN [NEXT_URL]");
        };
        return services::run(name, collector, token, rest.first().cloned());
    }
    let options = parse_options(&args)?;
    tokio::runtime::Runtime::new()?.block_on(demo(options))
}

/// A service process and the pipe whose closing stops it.
struct ServiceProcess {
    name: &'static str,
    url: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ServiceProcess {
    fn start(
        name: &'static str,
        collector: &str,
        token: &str,
        next: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["service", name, collector, token]);
        if let Some(next) = next {
            command.arg(next);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("service stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("{name} did not start: {line:?}"))?;
        Ok(ServiceProcess {
            name,
            url: format!("http://{addr}"),
            stdin: child.stdin.take(),
            child,
        })
    }

    /// Closes its standard input and waits: the service flushes and exits.
    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status}", self.name);
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("{} did not stop in time", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A small client of the collector's REST API.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {answer}");
        }
        Ok(answer)
    }

    async fn issues(&self) -> anyhow::Result<Vec<Value>> {
        let list = self
            .get(&format!(
                "/api/issues?project={PROJECT}&status=all&sort=count"
            ))
            .await?;
        Ok(list
            .get("issues")
            .and_then(Value::as_array)
            .or_else(|| list.as_array())
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until the issues' total count reaches `total`.
    async fn wait_for_errors(&self, total: u64) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let issues = self.issues().await?;
            let seen: u64 = issues.iter().filter_map(|i| i["count"].as_u64()).sum();
            if seen >= total {
                return Ok(issues);
            }
            if Instant::now() > deadline {
                bail!("expected {total} errors to arrive, saw {seen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Which order fails how: the same rules the services apply.
fn order(id: u64) -> Order {
    Order {
        id,
        sku: if id.is_multiple_of(5) {
            "sku-slow"
        } else {
            "sku-blue-mug"
        }
        .to_owned(),
        amount: 1_200 + id * 10,
        currency: if id == 13 { "XXX" } else { "EUR" }.to_owned(),
    }
}

/// Issues' occurrences the traffic of orders `1..=n` produces: declines
/// (payment), timeouts (inventory), and the panic (the failed call it
/// causes upstream is its consequence, not an occurrence of its own).
fn expected_errors(ids: impl Iterator<Item = u64>) -> u64 {
    ids.map(|id| match id {
        13 => 1,
        id if id.is_multiple_of(5) => 1,
        id if id.is_multiple_of(7) => 1,
        _ => 0,
    })
    .sum()
}

/// Reads server-sent events until an alert of `kind` about `issue_id`.
async fn next_alert(
    stream: &mut reqwest::Response,
    kind: AlertKind,
    issue_id: &str,
) -> anyhow::Result<Alert> {
    let mut buffer = String::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            if event
                .lines()
                .any(|l| l == format!("event: {}", kind.as_str()))
            {
                let alert: Alert = serde_json::from_str(data)?;
                if alert.issue_id == issue_id {
                    return Ok(alert);
                }
            }
        }
        let chunk = stream.chunk().await?.context("the alert stream ended")?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn rule(width: usize) -> String {
    "─".repeat(width)
}

async fn demo(options: Options) -> anyhow::Result<()> {
    let temp;
    let data = match &options.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    println!("Omegi shop demo");
    println!("{}", rule(72));
    // A trace settles one second after its last span: then its failures
    // are attributed across the three processes (one issue per cause).
    let settle = SettleConfig::default().trace_wait(Duration::from_secs(1));
    let server =
        Server::start(ServeConfig::new(&data, options.listen.parse()?).settle(settle)).await?;
    let base = server.url();
    let credentials = omegi_server::auth::read_credentials(&data)?
        .context("the collector wrote no credentials")?;
    let ingest_token = credentials.project.context("no ingest token")?.token;
    let api_token = credentials.user.context("no admin token")?.token;
    println!(
        "collector   omegi serve on {base} (data in {})",
        data.display()
    );

    let payment = ServiceProcess::start("payment-service", &base, &ingest_token, None)?;
    let inventory = ServiceProcess::start(
        "inventory-service",
        &base,
        &ingest_token,
        Some(&payment.url),
    )?;
    let user = ServiceProcess::start("user-service", &base, &ingest_token, Some(&inventory.url))?;
    for s in [&user, &inventory, &payment] {
        println!(
            "service     {:<18} {} (pid {})",
            s.name,
            s.url,
            s.child.id()
        );
    }

    // Traffic: every order enters at user-service.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    println!("{}", rule(72));
    println!("sending {} orders to user-service…", options.orders);
    let mut failed = 0;
    for id in 1..=options.orders {
        let status = http
            .post(format!("{}/checkout", user.url))
            .json(&order(id))
            .send()
            .await?
            .status();
        if !status.is_success() {
            failed += 1;
        }
    }
    println!(
        "{} orders confirmed, {failed} failed",
        options.orders - failed
    );

    let api = Api {
        base: base.clone(),
        token: api_token.clone(),
        http: http.clone(),
    };
    let expected = expected_errors(1..=options.orders);
    let issues = api.wait_for_errors(expected).await?;

    println!("{}", rule(72));
    println!("ISSUES (grouped by fingerprint)");
    println!(" count  service             title");
    for issue in &issues {
        println!(
            "{:>6}  {:<18}  {}",
            issue["count"].as_u64().unwrap_or(0),
            issue["services"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default(),
            issue["title"].as_str().unwrap_or("")
        );
        // What this failure caused upstream, in other spans and processes.
        let id = issue["id"]
            .as_str()
            .unwrap_or_default()
            .replacen(':', "/", 1);
        let detail = api.get(&format!("/api/issues/{id}")).await?;
        for c in detail["consequences"].as_array().into_iter().flatten() {
            println!(
                "        caused: {} {}: {}",
                c["service"].as_str().unwrap_or("?"),
                c["span_name"].as_str().unwrap_or("?"),
                c["message"]
                    .as_str()
                    .or(c["status_message"].as_str())
                    .unwrap_or("failed")
            );
        }
    }

    // The flow of one declined payment across the three processes.
    let declined = issues
        .iter()
        .find(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.contains("card payment failed"))
        })
        .context("no declined-payment issue")?
        .clone();
    let id = declined["id"].as_str().context("issue id")?.to_owned();
    let path = id.replacen(':', "/", 1);
    let flow = api.get(&format!("/api/issues/{path}/flow")).await?;
    let trace_id = flow["flow"]["trace_id"].as_str().unwrap_or("?");
    let services: Vec<&str> = flow["flow"]["hops"]
        .as_array()
        .map(|hops| hops.iter().filter_map(|h| h["service"].as_str()).collect())
        .unwrap_or_default();
    println!("{}", rule(72));
    println!("FLOW of issue {id}");
    println!("trace {trace_id} across {}", services.join(" → "));
    println!();
    print!(
        "{}",
        flow["waterfall"].as_str().unwrap_or("(no waterfall)\n")
    );
    println!();
    print!(
        "{}",
        flow["flow"]["summary"].as_str().unwrap_or("(no summary)\n")
    );
    let distinct: BTreeSet<&str> = services.iter().copied().collect();
    println!("services in this trace: {}", distinct.len());

    // Someone solves it once and writes it down.
    println!("{}", rule(72));
    let fingerprint = declined["fingerprint"].as_str().context("fingerprint")?;
    let note = api
        .post(
            "/api/notes",
            &json!({
                "title": "Card declined: insufficient funds",
                "body": "The issuer refuses cards without funds; payment-service answers 402 \
                         and inventory releases the stock.\n\n\
                         Fix: show the customer the decline reason and offer another card. \
                         See [[Payment runbook]]. #payments #on-call",
                "visibility": "public",
                "issues": [fingerprint],
            }),
        )
        .await?;
    println!(
        "wrote note {:?} linked to {id}",
        note["title"].as_str().unwrap_or("")
    );

    // It is marked resolved; the same error again regresses it, and the
    // alert that says so brings the note.
    api.post(&format!("/api/issues/{path}/resolve"), &json!({}))
        .await?;
    let mut alerts = http
        .get(format!("{base}/api/alerts/stream?project={PROJECT}"))
        .bearer_auth(&api_token)
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .error_for_status()?;
    let before = declined["count"].as_u64().unwrap_or(0);
    let again = (options.orders + 1..)
        .find(|id| id % 7 == 0 && id % 5 != 0 && *id != 13)
        .unwrap_or(49);
    http.post(format!("{}/checkout", user.url))
        .json(&order(again))
        .send()
        .await?;
    let alert = tokio::time::timeout(
        Duration::from_secs(20),
        next_alert(&mut alerts, AlertKind::Regressed, &id),
    )
    .await
    .context("no regression alert within 20 s")??;
    drop(alerts);
    let detail = api.get(&format!("/api/issues/{path}")).await?;
    let count = detail["issue"]["count"].as_u64().unwrap_or(0);
    println!("order {again} failed the same way: {id} now has {count} occurrences (was {before})");
    println!("ALERT       {}", alert.headline());
    println!("            {}", alert.issue_url);
    match alert.notes.first() {
        Some(note) if alert.solved_before => {
            println!(
                "            solved before → note {:?} by {}, last edited {}",
                note.title,
                note.author,
                utc_minute(note.updated_ns)
            );
            println!("            {}", note.url);
            println!("            > {}", note.excerpt);
        }
        _ => bail!("the regression alert did not bring the note"),
    }

    for service in [user, inventory, payment] {
        service.stop()?;
    }

    println!("{}", rule(72));
    if options.serve {
        println!("web UI      {base}/   (sign in with the admin token)");
        println!("admin token {api_token}");
        println!("CLI         export OMEGI_SERVER={base} OMEGI_TOKEN={api_token}");
        println!("            cargo run -p omegi-server --bin omegi -- issues");
        println!("            cargo run -p omegi-server --bin omegi -- flow {trace_id}");
        println!("            cargo run -p omegi-server --bin omegi -- search declined");
    } else {
        println!(
            "next        run again with `-- --serve` to keep the collector running, then open"
        );
        println!("            the web UI at http://127.0.0.1:7700/ or query it with the CLI:");
        println!("            cargo run -p omegi-server --bin omegi -- issues");
        println!("            cargo run -p omegi-server --bin omegi -- flow <trace-id>");
        println!("            cargo run -p omegi-server --bin omegi -- search declined");
    }
    if options.serve {
        println!("serving until Ctrl-C…");
        tokio::signal::ctrl_c().await?;
    }
    server.shutdown().await?;
    Ok(())
}
