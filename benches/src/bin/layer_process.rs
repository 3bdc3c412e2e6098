//! The layer's cost, one arm per process: what a span costs the thread
//! that records it, what it costs the whole process (exporter threads
//! included), and how many allocations it makes.
//!
//! ```text
//! cargo run --release -p benches --bin layer_process -- [--runs 3] [--spans 100000]
//!     [--interval-ms 100] [--backlog 2000] [--no-buffered]
//! ```
//!
//! The parent starts an OTLP/HTTP receiver on loopback (its CPU is the
//! parent's, not the measured process's), then runs every arm of every
//! workload in a child process of its own (`--child ARM WORKLOAD`), the arms
//! interleaved, `--runs` times, and prints the medians as a Markdown table,
//! each arm's figures next to the spans it exported and dropped.
//!
//! Arms:
//! - `registry`: `tracing_subscriber::Registry` alone, the floor;
//! - `registry-layer`: the Registry with a layer that does nothing
//!   (`Identity`): the floor of any layer, since the Registry frees a closed
//!   span's slot only when a layer drives the close (alone, it never does);
//! - `omegi-otlp`: Registry + Omegi with the OTLP sink (HTTP/protobuf) to
//!   the receiver;
//! - `omegi-store`: Registry + Omegi with the store sink (embedded mode,
//!   a temporary directory);
//! - `otel-otlp`: Registry + tracing-opentelemetry with the SDK's batch span
//!   processor and its OTLP/HTTP exporter to the same receiver, its queue
//!   set as Omegi's (16,384 spans) and both exporters on the same interval
//!   (`--interval-ms`).
//!
//! Workloads:
//! - `children`: a root span and 10 children, each with two fields and one
//!   event (the criterion bench's `workload(10)`), 11 spans;
//! - `request`: a root with 3 fields; 8 children with 4 fields, a later
//!   `record` and an event; 2 grandchildren per child with one field; 25
//!   spans.
//!
//! The measured loop runs the requests in bursts of about 1,000 spans with
//! a 20 ms pause between them; after a pause the application also waits,
//! off the CPU, while its exporter is more than `--backlog` spans behind
//! (Omegi's export counters; for the SDK, a wrapper around its exporter
//! that counts what it is handed). So every arm exports every span, and
//! the `exported / dropped` column shows it: an arm that drops spans skips
//! their export work and its process figure is not comparable. Per span,
//! each child process measures, over the measured loop (after a warm-up of
//! a tenth as many requests, exported before the loop starts):
//! - calling-thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) and wall time
//!   (the bursts only);
//! - whole-process CPU time (`getrusage`, user + system) from the start of
//!   the loop until the arm has exported everything (Omegi's guard flushed,
//!   the SDK's provider flushed), so exporter threads count;
//! - allocations, on the calling thread and in the whole process (a
//!   counting global allocator over the system allocator).
//!
//! `--profile ARM WORKLOAD` runs one arm alone, with the receiver on a
//! thread of the same process, for a profiler that counts per thread:
//!
//! ```text
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/layer_process --profile omegi-otlp request --spans 25000
//! ```
//!
//! (the calling thread is `main`, Omegi's exporter `omegi-exporter`).
//! `--serve SECONDS` runs the receiver alone and prints its address, for a
//! `--child ARM WORKLOAD --receiver ADDR` run under another tool.
//!
//! Then, unless `--no-buffered`, it measures memory per buffered span, in a
//! child per workload (`--buffered WORKLOAD`): Omegi with a sink that holds
//! its first batch until told, the spans of 1,000 requests
//! queued behind it, the live heap growth (the counting allocator's) and
//! the layer's own estimate (`held_bytes`) divided by the spans held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use omegi_core::{Record, Resource};
use omegi_layer::sink::{OtlpSink, StoreSink};
use omegi_layer::{Environment, Sink, SinkError};
use opentelemetry::trace::TracerProvider as _;
use tracing::Dispatch;
use tracing_subscriber::layer::Identity;
use tracing_subscriber::prelude::*;

/// Counts allocations (all threads, and the calling thread's own) and live
/// bytes, over the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to `System` as it is; the counters are
// atomics and a const-initialized thread-local without a destructor, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }
}

fn count(bytes: i64) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    let _ = THREAD_ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The pause between bursts of requests.
const PAUSE: Duration = Duration::from_millis(20);

const ARMS: [&str; 5] = [
    "registry",
    "registry-layer",
    "omegi-otlp",
    "omegi-store",
    "otel-otlp",
];
const WORKLOADS: [&str; 2] = ["children", "request"];

/// A root span and 10 children with two fields and one event each (never
/// inlined, so that a profile can count what runs inside it).
#[inline(never)]
fn children() {
    let root = tracing::info_span!("request", route = "/checkout");
    let _root = root.enter();
    for i in 0..10u64 {
        let child = tracing::info_span!("step", index = i, item = "sku-1");
        let _child = child.enter();
        tracing::info!(attempt = 1, "step done");
    }
}

/// The request-shaped workload: 25 spans (never inlined, as `children`).
#[inline(never)]
fn request() {
    let root = tracing::info_span!(
        "POST /checkout",
        http.method = "POST",
        http.route = "/checkout",
        user.id = 4242u64
    );
    let _root = root.enter();
    for i in 0..8u64 {
        let child = tracing::info_span!(
            "step",
            index = i,
            item = "sku-1",
            quantity = 2u64,
            outcome = tracing::field::Empty
        );
        let _child = child.enter();
        for j in 0..2u64 {
            let grandchild = tracing::info_span!("query", row = j);
            let _grandchild = grandchild.enter();
        }
        child.record("outcome", "reserved");
        tracing::info!(attempt = 1, "step done");
    }
}

fn spans_per_request(workload: &str) -> u64 {
    match workload {
        "children" => 11,
        _ => 25,
    }
}

fn run_workload(workload: &str) {
    match workload {
        "children" => children(),
        _ => request(),
    }
}

fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// User + system CPU time of the whole process.
fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data, for which all zero bytes are a value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What an arm needs to finish its exports, run after the loop.
type Finish = Box<dyn FnOnce() -> String>;

/// How many spans an arm's exporter has finished with so far: handed to
/// the sink and accepted, or lost (dropped at its queue or failed). The
/// Registry alone reports none.
type Progress = Box<dyn Fn() -> Exported>;

/// Spans an arm's exporter delivered and lost, as far as it knows.
#[derive(Debug, Clone, Copy, Default)]
struct Exported {
    delivered: u64,
    lost: u64,
}

/// The SDK's OTLP exporter, counting the spans it is handed: the SDK does
/// not say how many its batch processor dropped, so the bench counts what
/// reached the exporter (and the rest was dropped).
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl opentelemetry_sdk::trace::SpanExporter for CountingExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

fn arm(name: &str, receiver: SocketAddr, interval: Duration) -> (Dispatch, Progress, Finish) {
    // No OTEL_* variable of the machine leaks into an arm.
    let env = Environment::from_vars(std::iter::empty::<(String, String)>());
    match name {
        "registry" => (
            Dispatch::new(tracing_subscriber::registry()),
            Box::new(Exported::default),
            Box::new(String::new),
        ),
        // Only a layer makes the Registry free a closed span's slot (its
        // `Layered` drives the close): the floor of any layer.
        "registry-layer" => (
            Dispatch::new(tracing_subscriber::registry().with(Identity::new())),
            Box::new(Exported::default),
            Box::new(String::new),
        ),
        "omegi-otlp" | "omegi-store" => {
            let sink: Box<dyn Sink> = if name == "omegi-otlp" {
                Box::new(
                    OtlpSink::builder()
                        .endpoint(format!("http://{receiver}"))
                        .environment(env.clone())
                        .build()
                        .expect("an OTLP sink"),
                )
            } else {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = omegi_store::Store::open(dir.path()).expect("a store");
                // The directory lives as long as the process.
                std::mem::forget(dir);
                Box::new(StoreSink::new(store, "bench"))
            };
            let (layer, guard) = omegi_layer::layer("bench")
                .environment(env)
                .with_sink(sink)
                .export_interval(interval)
                .build();
            let guard = Arc::new(guard);
            let progress = guard.clone();
            (
                Dispatch::new(tracing_subscriber::registry().with(layer)),
                Box::new(move || {
                    let stats = progress.stats();
                    Exported {
                        delivered: stats.exported,
                        lost: stats.dropped + stats.failed,
                    }
                }),
                Box::new(move || {
                    guard.flush(Duration::from_secs(60));
                    String::new()
                }),
            )
        }
        "otel-otlp" => {
            use opentelemetry_otlp::WithExportConfig as _;
            let delivered = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let exporter = CountingExporter {
                inner: opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("http://{receiver}/v1/traces"))
                    .build()
                    .expect("an OTLP exporter"),
                delivered: delivered.clone(),
                failed: failed.clone(),
            };
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    opentelemetry_sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size(16_384)
                        .with_scheduled_delay(interval)
                        .build(),
                )
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(processor)
                .build();
            let tracer = provider.tracer("bench");
            (
                Dispatch::new(
                    tracing_subscriber::registry()
                        .with(tracing_opentelemetry::layer().with_tracer(tracer)),
                ),
                Box::new(move || Exported {
                    delivered: delivered.load(Ordering::Relaxed),
                    // What the batch processor dropped never reaches the
                    // exporter: the child counts it from what was made.
                    lost: failed.load(Ordering::Relaxed),
                }),
                Box::new(move || {
                    let _ = provider.force_flush();
                    let _ = provider.shutdown();
                    String::new()
                }),
            )
        }
        other => panic!("unknown arm {other}"),
    }
}

/// How a child runs its arm.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// Spans made in the measured loop (rounded up to whole requests).
    spans: u64,
    /// The exporters' interval (Omegi's `export_interval`, the SDK's
    /// `scheduled_delay`).
    interval: Duration,
    /// Spans made but not yet exported above which the application pauses
    /// after a burst until its exporter catches up.
    backlog: u64,
}

/// Sleeps until the arm's exporter has finished with all but `backlog` of
/// the `made` spans, or a minute has passed (what it then still lacks shows
/// as dropped).
fn catch_up(progress: &Progress, made: u64, backlog: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = progress();
        if made.saturating_sub(done.delivered + done.lost) <= backlog || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Pacing {
    /// The options that pass these settings on to a child.
    fn args(&self) -> Vec<String> {
        vec![
            "--spans".to_owned(),
            self.spans.to_string(),
            "--interval-ms".to_owned(),
            self.interval.as_millis().to_string(),
            "--backlog".to_owned(),
            self.backlog.to_string(),
        ]
    }
}

/// Runs one arm of one workload and prints its measures as one JSON line.
fn child(arm_name: &str, workload: &str, pacing: Pacing, receiver: SocketAddr) {
    let per_request = spans_per_request(workload);
    let requests = pacing.spans.div_ceil(per_request);
    let warm_up = requests / 10;
    let (dispatch, progress, finish) = arm(arm_name, receiver, pacing.interval);
    let exports = !arm_name.starts_with("registry");
    let line = tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..warm_up {
            run_workload(workload);
        }
        // Let the warm-up's exports finish before measuring.
        if exports {
            catch_up(&progress, warm_up * per_request, 0);
        }
        let before = progress();
        let allocations = ALLOCATIONS.load(Ordering::Relaxed);
        let thread_allocations = THREAD_ALLOCATIONS.with(Cell::get);
        let process = process_cpu();
        let thread = thread_cpu();
        let mut wall = Duration::ZERO;
        let mut done = 0;
        while done < requests {
            // Requests come in bursts of about 1,000 spans with a pause
            // between them, as on a busy service. Between bursts the
            // application waits, off the CPU, while its exporter is more than
            // `backlog` spans behind: every arm exports every span it makes,
            // so no arm is cheaper for dropping work.
            let burst = (1_000 / per_request).max(1).min(requests - done);
            let start = Instant::now();
            for _ in 0..burst {
                run_workload(workload);
            }
            wall += start.elapsed();
            done += burst;
            std::thread::sleep(PAUSE);
            if exports {
                catch_up(&progress, (warm_up + done) * per_request, pacing.backlog);
            }
        }
        let thread = thread_cpu() - thread;
        let thread_allocations = THREAD_ALLOCATIONS.with(Cell::get) - thread_allocations;
        let extra = finish();
        let process = process_cpu() - process;
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
        let made = requests * per_request;
        let n = made as f64;
        let mut line = format!(
            "{{\"arm\":\"{arm_name}\",\"workload\":\"{workload}\",\"spans\":{made},\
             \"thread_ns\":{:.1},\"wall_ns\":{:.1},\"process_ns\":{:.1},\
             \"thread_allocs\":{:.2},\"process_allocs\":{:.2}",
            thread.as_nanos() as f64 / n,
            wall.as_nanos() as f64 / n,
            process.as_nanos() as f64 / n,
            thread_allocations as f64 / n,
            allocations as f64 / n,
        );
        if exports {
            let after = progress();
            let delivered = after.delivered - before.delivered;
            // Spans lost at a queue that counts them, or never delivered.
            let lost = made.saturating_sub(delivered).max(after.lost - before.lost);
            line.push_str(&format!(",\"exported\":{delivered},\"dropped\":{lost}"));
        }
        if !extra.is_empty() {
            line.push(',');
            line.push_str(&extra);
        }
        line.push('}');
        line
    });
    drop(dispatch);
    println!("{line}");
}

/// A sink that holds its first batch until `release` fires.
struct HeldSink {
    release: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Sink for HeldSink {
    fn export(&mut self, _batch: Vec<Record>, _resource: &Resource) -> Result<(), SinkError> {
        if let Some(rx) = self.release.lock().expect("not poisoned").take() {
            let _ = rx.recv_timeout(Duration::from_secs(120));
        }
        Ok(())
    }
}

/// Memory per buffered span: live heap growth and the layer's estimate.
fn buffered(workload: &str) {
    let (tx, rx) = mpsc::channel();
    let sink = HeldSink {
        release: Arc::new(Mutex::new(Some(rx))),
    };
    let (layer, guard) = omegi_layer::layer("bench")
        .environment(Environment::from_vars(
            std::iter::empty::<(String, String)>(),
        ))
        .with_sink(sink)
        .queue_capacity(1 << 20)
        .queue_bytes(1 << 30)
        .batch_size(1)
        .build();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let requests = 1_000;
    let line = tracing::dispatcher::with_default(&dispatch, || {
        // The first span goes to the sink and holds it.
        tracing::info_span!("first").in_scope(|| {});
        std::thread::sleep(Duration::from_millis(700));
        let live = LIVE_BYTES.load(Ordering::Relaxed);
        for _ in 0..requests {
            run_workload(workload);
        }
        let grown = LIVE_BYTES.load(Ordering::Relaxed) - live;
        let stats = guard.stats();
        let n = (requests * spans_per_request(workload)) as f64;
        format!(
            "{{\"arm\":\"omegi-buffered\",\"workload\":\"{workload}\",\"spans\":{n},\
             \"live_bytes_per_span\":{:.0},\"held_bytes_per_span\":{:.0},\"dropped\":{}}}",
            grown as f64 / n,
            stats.held_bytes as f64 / n,
            stats.dropped
        )
    });
    let _ = tx.send(());
    drop(dispatch);
    drop(guard);
    println!("{line}");
}

/// An OTLP/HTTP receiver on loopback that reads and discards every body.
fn start_receiver() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            tx.send(listener.local_addr().expect("an address"))
                .expect("the parent waits");
            let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                ""
            });
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the receiver starts")
}

fn field(line: &str, name: &str) -> Option<f64> {
    let start = line.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn parent(runs: usize, pacing: Pacing, with_buffered: bool) {
    let spans = pacing.spans;
    let receiver = start_receiver();
    let exe = std::env::current_exe().expect("the bench's own path");
    let load_before = load();
    let mut results: Vec<String> = Vec::new();
    for run in 0..runs {
        for workload in WORKLOADS {
            for arm in ARMS {
                let output = Command::new(&exe)
                    .args(["--child", arm, workload])
                    .args(pacing.args())
                    .args(["--receiver", &receiver.to_string()])
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run a child");
                assert!(output.status.success(), "{arm} {workload} failed");
                let line = output
                    .stdout
                    .lines()
                    .map_while(Result::ok)
                    .find(|l| l.starts_with('{'))
                    .expect("a result line");
                eprintln!("run {run}: {line}");
                results.push(line);
            }
        }
    }
    let load_after = load();
    let metric = |arm: &str, workload: &str, name: &str| {
        median(
            results
                .iter()
                .filter(|l| {
                    l.contains(&format!("\"arm\":\"{arm}\""))
                        && l.contains(&format!("\"workload\":\"{workload}\""))
                })
                .filter_map(|l| field(l, name))
                .collect(),
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{runs} runs per arm, {spans} spans each, medians; exporters' interval {} ms, \
         backlog at most {} spans; load average {load_before} before, {load_after} after\n",
        pacing.interval.as_millis(),
        pacing.backlog,
    );
    // Every figure stands next to what its arm exported and dropped, summed
    // over the runs: an arm that drops spans skips their export work.
    let total = |arm: &str, workload: &str, name: &str| -> Option<u64> {
        results
            .iter()
            .filter(|l| {
                l.contains(&format!("\"arm\":\"{arm}\""))
                    && l.contains(&format!("\"workload\":\"{workload}\""))
            })
            .map(|l| field(l, name).map(|v| v as u64))
            .sum()
    };
    let _ = writeln!(
        out,
        "| workload | arm | calling thread CPU ns/span | × floor | × layer floor | wall ns/span | process CPU ns/span | × floor | × layer floor | allocations/span (thread / process) | exported / dropped (all runs) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for workload in WORKLOADS {
        let floor_thread = metric("registry", workload, "thread_ns");
        let floor_process = metric("registry", workload, "process_ns");
        let layer_thread = metric("registry-layer", workload, "thread_ns");
        let layer_process = metric("registry-layer", workload, "process_ns");
        for arm in ARMS {
            let thread = metric(arm, workload, "thread_ns");
            let process = metric(arm, workload, "process_ns");
            let exported = match (
                total(arm, workload, "exported"),
                total(arm, workload, "dropped"),
            ) {
                (Some(exported), Some(dropped)) => format!("{exported} / {dropped}"),
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {workload} | {arm} | {thread:.0} | {:.2} | {:.2} | {:.0} | {process:.0} | {:.2} | {:.2} | {:.1} / {:.1} | {} |",
                thread / floor_thread,
                thread / layer_thread,
                metric(arm, workload, "wall_ns"),
                process / floor_process,
                process / layer_process,
                metric(arm, workload, "thread_allocs"),
                metric(arm, workload, "process_allocs"),
                exported,
            );
        }
        let ratio = metric("otel-otlp", workload, "process_ns")
            / metric("omegi-otlp", workload, "process_ns");
        let _ = writeln!(
            out,
            "| {workload} | otel-otlp ÷ omegi-otlp, process CPU | | | | | {ratio:.2} | | | | |"
        );
    }
    if with_buffered {
        let _ = writeln!(out, "\n| workload | live heap bytes per buffered span | layer's estimate (held_bytes) per span |");
        let _ = writeln!(out, "|---|---|---|");
        for workload in WORKLOADS {
            let output = Command::new(&exe)
                .args(["--buffered", workload])
                .stderr(Stdio::inherit())
                .output()
                .expect("run a child");
            let line = String::from_utf8_lossy(&output.stdout).into_owned();
            let _ = writeln!(
                out,
                "| {workload} | {:.0} | {:.0} |",
                field(&line, "live_bytes_per_span").unwrap_or(f64::NAN),
                field(&line, "held_bytes_per_span").unwrap_or(f64::NAN)
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let pacing = Pacing {
        spans: value("--spans").map_or(100_000, |s| s.parse().expect("--spans N")),
        interval: Duration::from_millis(
            value("--interval-ms").map_or(100, |s| s.parse().expect("--interval-ms MS")),
        ),
        backlog: value("--backlog").map_or(2_000, |s| s.parse().expect("--backlog SPANS")),
    };
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let arm = args.get(i + 1).expect("--child ARM WORKLOAD");
        let workload = args.get(i + 2).expect("--child ARM WORKLOAD");
        let receiver = value("--receiver")
            .expect("--receiver ADDR")
            .parse()
            .expect("--receiver ADDR");
        child(arm, workload, pacing, receiver);
    } else if let Some(i) = args.iter().position(|a| a == "--profile") {
        // One arm with its receiver in the same process, on a thread of its
        // own, for a profiler that counts per thread (callgrind's
        // `--separate-threads=yes`).
        let arm = args.get(i + 1).expect("--profile ARM WORKLOAD");
        let workload = args.get(i + 2).expect("--profile ARM WORKLOAD");
        child(arm, workload, pacing, start_receiver());
    } else if let Some(seconds) = value("--serve") {
        // A receiver alone, for profiling a child under valgrind or perf.
        println!("{}", start_receiver());
        std::thread::sleep(Duration::from_secs(
            seconds.parse().expect("--serve SECONDS"),
        ));
    } else if let Some(workload) = value("--buffered") {
        buffered(&workload);
    } else {
        let runs = value("--runs").map_or(3, |s| s.parse().expect("--runs N"));
        parent(runs, pacing, !args.iter().any(|a| a == "--no-buffered"));
    }
}
