//! A crash test: a child process (this same test binary) ingests from
//! several threads, each making its batches durable with `Store::sync` (the
//! threads share flushes) and printing each batch it acknowledges; the
//! parent SIGKILLs it at a random moment, reopens the data and checks that
//! every acknowledged batch is there, and that every batch is there whole or
//! not at all.

mod common;

use std::collections::BTreeSet;
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

const THREADS: u64 = 3;

/// The child: writes until killed (or until MAX_BATCHES), from THREADS
/// threads.
fn child(dir: &str) {
    // No periodic flush: only acknowledged flushes make data durable.
    let store = Store::open_with(Config::new(dir).flush_every_ms(None)).expect("open");
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let resource = resource("gateway");
                let say = |line: String| {
                    let mut out = out.lock().expect("stdout");
                    writeln!(out, "{line}").expect("stdout");
                    out.flush().expect("stdout");
                };
                for n in (1..=MAX_BATCHES).filter(|n| n % THREADS == thread) {
                    say(format!("sending {n}"));
                    store
                        .traces()
                        .ingest("shop", &resource, &batch(n))
                        .expect("ingest");
                    store.sync().expect("sync");
                    say(format!("durable {n}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
}

fn run_once(kill_after: usize, extra_delay_us: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = BTreeSet::new();
    let mut sent = BTreeSet::new();
    // The test harness's own "test … " may start the child's first line.
    let mut note = |line: &str, acknowledged: &mut BTreeSet<u64>| {
        if let Some((_, n)) = line.split_once("durable ") {
            acknowledged.insert(n.trim().parse::<u64>().unwrap());
        } else if let Some((_, n)) = line.split_once("sending ") {
            sent.insert(n.trim().parse::<u64>().unwrap());
        }
    };
    for line in lines.by_ref() {
        note(&line.unwrap(), &mut acknowledged);
        if acknowledged.len() >= kill_after {
            break;
        }
    }
    assert!(
        acknowledged.len() >= kill_after,
        "the child stopped after {} batches",
        acknowledged.len()
    );
    // Let the child get into the middle of the next ingests, then kill it.
    std::thread::sleep(Duration::from_micros(extra_delay_us));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // What the child printed before it died.
    for line in lines {
        let Ok(line) = line else { break };
        note(&line, &mut acknowledged);
    }

    let store = Store::open(dir.path()).expect("the store opens cleanly after a crash");
    let fp = fingerprint(&error("gateway", "boom", 0, None));
    let mut stored = 0;
    for &n in &sent {
        let spans = store
            .traces()
            .spans("shop", TraceId(u128::from(n)))
            .unwrap();
        let occurrences = store
            .issues()
            .occurrences("shop", &fp, T0 + n * SEC, T0 + n * SEC + 1, 10)
            .unwrap();
        if acknowledged.contains(&n) {
            assert_eq!(spans.len() as u64, SPANS_PER_BATCH, "batch {n} lost");
        }
        // Whole or not at all: its spans, its summary and its occurrence.
        let whole = spans.len() as u64 == SPANS_PER_BATCH && occurrences.len() == 1;
        let none = spans.is_empty() && occurrences.is_empty();
        assert!(
            whole || none,
            "batch {n} is partly stored: {} spans, {} occurrences",
            spans.len(),
            occurrences.len()
        );
        assert_eq!(
            store
                .traces()
                .get("shop", TraceId(u128::from(n)))
                .unwrap()
                .is_some(),
            whole
        );
        stored += u64::from(whole);
    }
    let issue = store
        .issues()
        .get("shop", &fp)
        .unwrap()
        .expect("issue kept");
    assert_eq!(issue.count, stored, "the count is what is stored");
    assert!(issue.count >= acknowledged.len() as u64);
    let summary = store.stats().summary().unwrap();
    assert_eq!(summary.projects[0].spans, stored * SPANS_PER_BATCH);
    let listed = store.traces().list(&TraceQuery::project("shop")).unwrap();
    assert_eq!(listed.len() as u64, stored);
    store.issues().list("shop", &IssueQuery::all()).unwrap();
    // And it takes writes again.
    store
        .traces()
        .ingest("shop", &resource("gateway"), &batch(MAX_BATCHES + 1))
        .unwrap();
    store.sync().unwrap();
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
        run_once(rng.usize(1..60), rng.u64(0..3_000));
    }
}
