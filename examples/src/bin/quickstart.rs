//! The layer in one process: a failing instrumented call, captured with its
//! span stack and source chain, printed from an in-memory sink.

use std::time::Duration;

use omegi_layer::MemorySink;
use tracing_subscriber::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("payment declined for order {0}")]
struct Declined(u64, #[source] std::io::Error);

#[tracing::instrument]
fn charge(order: u64) -> Result<(), Declined> {
    tracing::info!("calling the card issuer");
    Err(Declined(order, std::io::Error::other("issuer timed out")))
}

#[tracing::instrument]
fn checkout(order: u64) {
    tracing::info!("reserving stock");
    if let Err(e) = charge(order) {
        tracing::error!(error = &e as &dyn std::error::Error, "checkout failed");
    }
}

fn main() {
    let sink = MemorySink::new();
    let (omegi, guard) = omegi_layer::layer("quickstart")
        .with_sink(sink.clone())
        .build();
    tracing_subscriber::registry().with(omegi).init();

    checkout(1234);

    guard.flush(Duration::from_secs(5));
    for span in sink.spans() {
        println!(
            "span  {} {:<10} trace={} status={:?} events={}",
            span.span_id,
            span.name,
            span.trace_id,
            span.status,
            span.events.len()
        );
    }
    for error in sink.errors() {
        println!("error {}", error.message);
        for cause in &error.causes {
            println!("      caused by: {cause}");
        }
        let stack: Vec<&str> = error.span_stack.iter().map(|f| f.name.as_str()).collect();
        println!("      in spans: {}", stack.join(" > "));
        for crumb in &error.breadcrumbs {
            println!("      after: {}", crumb.message);
        }
    }
}
