//! Note graph queries on a large vault, and parsing a typical note.
//!
//! The graph has 100,000 notes and 500,000 links. Link sources follow a
//! skewed distribution (a few index notes link to many notes, most notes to
//! a handful); 80% of targets are uniform and 20% go to 1,000 popular notes,
//! so backlink counts are skewed too. The graph is built once, outside the
//! measured loops.

use std::hint::black_box;
use std::time::Instant;

use benches::Rng;
use criterion::{criterion_group, criterion_main, Criterion};
use omegi_core::note::{parse, LocalGraphOptions, Note, NoteGraph, NoteId, Visibility};

const NOTES: usize = 100_000;
const LINKS: usize = 500_000;
const POPULAR: usize = 1_000;

fn note_id(i: usize) -> NoteId {
    format!("{:032x}", i as u128 + 1)
        .parse()
        .expect("32 hex digits are a uuid")
}

fn vault() -> Vec<Note> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); NOTES];
    for _ in 0..LINKS {
        let u = rng.unit();
        let source = ((NOTES as f64) * u * u) as usize % NOTES;
        let target = if rng.index(5) == 0 {
            rng.index(POPULAR) * (NOTES / POPULAR)
        } else {
            rng.index(NOTES)
        };
        links[source].push(target);
    }
    links
        .into_iter()
        .enumerate()
        .map(|(i, targets)| {
            let mut body = format!("Error seen in service {} #svc/s{}\n\n", i % 50, i % 50);
            for t in targets {
                body.push_str(&format!("- related: [[Note {t}]]\n"));
            }
            let mut note = Note::new(note_id(i), "kim", format!("Note {i}"), body, i as u64);
            note.visibility = Visibility::Public;
            note
        })
        .collect()
}

const TYPICAL_NOTE: &str = r#"---
tags: [payments, db/postgres]
aliases: [PG pool exhausted]
---
# Checkout fails with 502

When the payment service times out, checkout answers **502**. See
[[Payment timeout#Fix|the timeout fix]] and [[DB pool]]; the incident
log is embedded below.

![[Incident 2024-03-02]]

## Cause

The connection pool (`max_connections = 10`) is exhausted under load:

```rust
let pool = PgPoolOptions::new().max_connections(10); // [[not a link]]
```

## Fix

1. Raise the pool size to 50 #config
2. Add a retry with backoff, as in [[Retry policy]]
3. Alert on pool wait time #alerting/pool

Related: [[Stripe 504]], [[결제 오류]], #결제
"#;

fn benches(c: &mut Criterion) {
    let notes = vault();
    let started = Instant::now();
    let graph = NoteGraph::build(&notes, "kim");
    eprintln!(
        "built a graph of {} notes and {} links in {:?}",
        graph.len(),
        LINKS,
        started.elapsed()
    );

    let mut rng = Rng(42);
    let centres: Vec<NoteId> = (0..256).map(|_| note_id(rng.index(NOTES))).collect();
    let options = LocalGraphOptions {
        depth: 2,
        ..Default::default()
    };
    let sizes: Vec<usize> = centres
        .iter()
        .filter_map(|&c| graph.local_graph(c, &options))
        .map(|g| g.nodes.len())
        .collect();
    eprintln!(
        "depth-2 local graphs: mean {} nodes, max {}",
        sizes.iter().sum::<usize>() / sizes.len().max(1),
        sizes.iter().max().copied().unwrap_or(0)
    );

    let mut group = c.benchmark_group("note_graph");
    let mut next = 0;
    group.bench_function("local_graph_depth2_random_note", |b| {
        b.iter(|| {
            next = (next + 1) % centres.len();
            black_box(graph.local_graph(centres[next], &options))
        })
    });
    let with_extras = LocalGraphOptions {
        depth: 2,
        show_tags: true,
        show_unresolved: true,
        ..Default::default()
    };
    group.bench_function("local_graph_depth2_random_note_with_tags", |b| {
        b.iter(|| {
            next = (next + 1) % centres.len();
            black_box(graph.local_graph(centres[next], &with_extras))
        })
    });
    let (hub, hub_links) = graph.most_linked(1)[0];
    eprintln!("most linked note has {hub_links} backlinks");
    group.bench_function("local_graph_depth1_most_linked_note", |b| {
        let depth1 = LocalGraphOptions::default();
        b.iter(|| black_box(graph.local_graph(hub, &depth1)))
    });
    group.bench_function("backlinks_random_note", |b| {
        b.iter(|| {
            next = (next + 1) % centres.len();
            black_box(graph.backlinks(centres[next]))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("note_parse");
    group.bench_function("typical_note", |b| {
        b.iter(|| black_box(parse(black_box(TYPICAL_NOTE))))
    });
    group.finish();
}

criterion_group!(graph, benches);
criterion_main!(graph);
