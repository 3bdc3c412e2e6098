//! Layer overhead: a root span plus N children (two fields and one event
//! each), per arm, single-threaded and on all cores at once.
//!
//! Arms: the Registry alone (the floor); Registry + Omegi with a null sink,
//! with a sink that sleeps (queue full → drop and count), with the store and
//! OTLP sinks; Registry + tracing-opentelemetry with the SDK and no exporter,
//! and with a batch OTLP exporter to the same local receiver; Registry + fmt
//! writing to `io::sink`.
//!
//! `cargo run -p benches --bin report` prints the table from the results.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use omegi_core::{Record, Resource};
use omegi_layer::sink::{OtlpSink, StoreSink};
use omegi_layer::{NullSink, Sink, SinkError};
use opentelemetry::trace::TracerProvider as _;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

const SIZES: [u64; 4] = [1, 10, 100, 1000];

/// The measured work: one root span and `n` children, each with two fields
/// and one event.
fn workload(n: u64) {
    let root = tracing::info_span!("request", route = "/checkout");
    let _root = root.enter();
    for i in 0..n {
        let child = tracing::info_span!("step", index = i, item = "sku-1");
        let _child = child.enter();
        tracing::info!(attempt = 1, "step done");
    }
}

/// A sink that takes 10 ms per batch: the queue fills up and records are
/// dropped, which must not slow the application down.
struct SlowSink;

impl Sink for SlowSink {
    fn export(&mut self, _batch: Vec<Record>, _resource: &Resource) -> Result<(), SinkError> {
        std::thread::sleep(Duration::from_millis(10));
        Ok(())
    }
}

/// An OTLP/HTTP receiver on loopback that accepts and discards everything,
/// shared by the OTLP arms.
fn start_receiver() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                ""
            });
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("receiver address")
}

/// A subscriber per arm; the guards keep exporters alive during the bench.
struct Arm {
    name: &'static str,
    dispatch: Dispatch,
    _keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

fn omegi_arm(name: &'static str, sink: impl Sink) -> Arm {
    let (layer, guard) = omegi_layer::layer("bench").with_sink(sink).build();
    Arm {
        name,
        dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
        _keep: vec![Box::new(guard)],
    }
}

fn arms(receiver: SocketAddr) -> Vec<Arm> {
    let mut arms = vec![Arm {
        name: "registry",
        dispatch: Dispatch::new(tracing_subscriber::registry()),
        _keep: vec![],
    }];
    arms.push(omegi_arm("omegi-null", NullSink));
    arms.push(omegi_arm("omegi-slow-sink", SlowSink));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = omegi_store::Store::open(dir.path()).expect("store");
    let mut store_arm = omegi_arm("omegi-store", StoreSink::new(store, "bench"));
    store_arm._keep.push(Box::new(dir));
    arms.push(store_arm);
    let otlp = OtlpSink::builder()
        .endpoint(format!("http://{receiver}"))
        .build()
        .expect("otlp sink");
    arms.push(omegi_arm("omegi-otlp", otlp));

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("bench");
    arms.push(Arm {
        name: "otel-sdk",
        dispatch: Dispatch::new(
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
        ),
        _keep: vec![Box::new(provider)],
    });

    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("http://{receiver}/v1/traces"))
        .build()
        .expect("otlp exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("bench");
    arms.push(Arm {
        name: "otel-sdk-otlp",
        dispatch: Dispatch::new(
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
        ),
        _keep: vec![Box::new(provider)],
    });

    arms.push(Arm {
        name: "fmt",
        dispatch: Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
        ),
        _keep: vec![],
    });
    arms
}

fn bench_layers(c: &mut Criterion) {
    let receiver = start_receiver();
    let arms = arms(receiver);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    let mut group = c.benchmark_group("layer");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for n in SIZES {
        // Criterion divides by the element count: the results read as time per span.
        group.throughput(Throughput::Elements(n + 1));
        for arm in &arms {
            group.bench_with_input(
                BenchmarkId::new(format!("1-thread/{}", arm.name), n),
                &n,
                |b, &n| {
                    tracing::dispatcher::with_default(&arm.dispatch, || b.iter(|| workload(n)));
                },
            );
            // All cores at once: each thread runs the same work; the time per
            // span is the wall time divided by all spans of all threads.
            group.throughput(Throughput::Elements((n + 1) * threads as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{threads}-threads/{}", arm.name), n),
                &n,
                |b, &n| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        std::thread::scope(|scope| {
                            for _ in 0..threads {
                                scope.spawn(|| {
                                    tracing::dispatcher::with_default(&arm.dispatch, || {
                                        for _ in 0..iters {
                                            workload(n);
                                        }
                                    })
                                });
                            }
                        });
                        start.elapsed()
                    })
                },
            );
            group.throughput(Throughput::Elements(n + 1));
        }
    }
    group.finish();
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
