//! Prints the benchmark results as Markdown tables, from criterion's files
//! under `target/criterion`:
//!
//! - the layer overhead: ns per span for each arm, its ratio to the Registry
//!   floor, and how many times cheaper it is than tracing-opentelemetry with
//!   the SDK (same thread count, same N);
//! - every other benchmark: median time and throughput.
//!
//! Run `cargo bench -p benches` first, then `cargo run -p benches --bin report`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

struct Result {
    group: String,
    function: String,
    value: String,
    median_ns: f64,
    elements: Option<f64>,
    bytes: Option<f64>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Every `new/benchmark.json` below `dir`.
fn collect(dir: &Path, out: &mut Vec<Result>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let (Some(bench), Some(est)) = (
                read_json(&path.join("benchmark.json")),
                read_json(&path.join("estimates.json")),
            ) else {
                continue;
            };
            let text = |k: &str| bench[k].as_str().unwrap_or("").to_owned();
            out.push(Result {
                group: text("group_id"),
                function: text("function_id"),
                value: text("value_str"),
                median_ns: est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
                elements: bench["throughput"]["Elements"].as_f64(),
                bytes: bench["throughput"]["Bytes"].as_f64(),
            });
        } else {
            collect(&path, out);
        }
    }
}

fn human_time(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_owned());
            PathBuf::from(target).join("criterion")
        });
    let mut results = Vec::new();
    collect(&root, &mut results);
    if results.is_empty() {
        eprintln!(
            "no criterion results under {}: run `cargo bench -p benches` first",
            root.display()
        );
        std::process::exit(1);
    }

    // Layer overhead: function ids are "<threads>/<arm>", values are N.
    let mut layer: BTreeMap<(String, u64), BTreeMap<String, f64>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.group == "layer") {
        let Some((threads, arm)) = r.function.split_once('/') else {
            continue;
        };
        let (Ok(n), Some(elements)) = (r.value.parse::<u64>(), r.elements) else {
            continue;
        };
        layer
            .entry((threads.to_owned(), n))
            .or_default()
            .insert(arm.to_owned(), r.median_ns / elements);
    }
    if !layer.is_empty() {
        println!("| threads | N | arm | ns per span | × Registry | × cheaper than otel-sdk |");
        println!("|---|---:|---|---:|---:|---:|");
        for ((threads, n), arms) in &layer {
            let floor = arms.get("registry").copied();
            let otel = arms.get("otel-sdk").copied();
            for (arm, ns) in arms {
                let ratio = |base: Option<f64>, f: &dyn Fn(f64) -> f64| {
                    base.map_or("–".to_owned(), |b| format!("{:.2}", f(b)))
                };
                println!(
                    "| {threads} | {n} | {arm} | {ns:.0} | {} | {} |",
                    ratio(floor, &|b| ns / b),
                    ratio(otel, &|b| b / ns),
                );
            }
        }
        println!();
    }

    let mut others: Vec<&Result> = results.iter().filter(|r| r.group != "layer").collect();
    others
        .sort_by(|a, b| (&a.group, &a.function, &a.value).cmp(&(&b.group, &b.function, &b.value)));
    if !others.is_empty() {
        println!("| benchmark | median | throughput |");
        println!("|---|---:|---:|");
        for r in others {
            let id = [r.group.as_str(), r.function.as_str(), r.value.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            let secs = r.median_ns / 1e9;
            let throughput = match (r.elements, r.bytes) {
                (Some(e), _) => format!("{:.0} elem/s", e / secs),
                (_, Some(b)) => format!("{:.1} MiB/s", b / secs / 1_048_576.0),
                _ => "–".to_owned(),
            };
            println!("| {id} | {} | {throughput} |", human_time(r.median_ns));
        }
    }
}
