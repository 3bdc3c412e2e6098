//! A crash test: a child process (this same test binary) ingests and
//! flushes, printing how many batches are durable after each flush; the
//! parent SIGKILLs it at a random moment, reopens the data and checks that
//! every acknowledged batch is there.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use omegi_core::{fingerprint, Record, TraceId};
use omegi_store::{Config, IssueQuery, Store, TraceQuery};

const CHILD_ENV: &str = "OMEGI_STORE_CRASH_CHILD_DIR";
const TEST_NAME: &str = "kill_during_ingest_keeps_flushed_writes";
const SPANS_PER_BATCH: u64 = 50;
const MAX_BATCHES: u64 = 3_000;

fn batch(n: u64) -> Vec<Record> {
    let trace = u128::from(n);
    let mut records: Vec<Record> = (1..=SPANS_PER_BATCH)
        .map(|s| {
            let parent = (s > 1).then_some(1);
            Record::Span(span(trace, s, parent, "gateway", T0 + n * SEC + s))
        })
        .collect();
    records.push(Record::Error(error(
        "gateway",
        "boom",
        T0 + n * SEC,
        Some(trace),
    )));
    records
}

/// The child: writes until killed (or until MAX_BATCHES).
fn child(dir: &str) {
    // No periodic flush: only acknowledged flushes make data durable.
    let store = Store::open_with(Config::new(dir).flush_every_ms(None)).expect("open");
    let resource = resource("gateway");
    let mut out = std::io::stdout().lock();
    for n in 1..=MAX_BATCHES {
        store.ingest("shop", &resource, &batch(n)).expect("ingest");
        store.flush().expect("flush");
        writeln!(out, "durable {n}").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn run_once(kill_after: u64, extra_delay_us: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("durable ") {
            acknowledged = n.trim().parse::<u64>().unwrap();
            if acknowledged >= kill_after {
                break;
            }
        }
    }
    assert!(
        acknowledged >= kill_after,
        "the child stopped after {acknowledged} batches"
    );
    // Let the child get into the middle of the next ingest, then kill it.
    std::thread::sleep(Duration::from_micros(extra_delay_us));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    let store = Store::open(dir.path()).expect("the store opens cleanly after a crash");
    for n in 1..=acknowledged {
        let spans = store.trace_spans(TraceId(u128::from(n))).unwrap();
        assert_eq!(spans.len() as u64, SPANS_PER_BATCH, "batch {n} lost");
        assert!(store.trace(TraceId(u128::from(n))).unwrap().is_some());
    }
    let fp = fingerprint(&error("gateway", "boom", 0, None));
    let issue = store.issue("shop", &fp).unwrap().expect("issue kept");
    assert!(issue.count >= acknowledged);
    let listed = store.traces(&TraceQuery::project("shop")).unwrap();
    assert!(listed.len() as u64 >= acknowledged);
    store.issues("shop", &IssueQuery::all()).unwrap();
    store.summary().unwrap();
    // And it takes writes again.
    store
        .ingest("shop", &resource("gateway"), &batch(MAX_BATCHES + 1))
        .unwrap();
    store.flush().unwrap();
}

#[test]
fn kill_during_ingest_keeps_flushed_writes() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let seed = fastrand::u64(..);
    eprintln!("crash test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..3 {
        run_once(rng.u64(1..60), rng.u64(0..3_000));
    }
}
