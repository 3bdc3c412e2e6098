//! Embedded mode for tool authors: one process, the layer writing straight
//! into an omegi-store database, and omegi-core's flow API used directly on
//! what was stored.
//!
//! ```text
//! cargo run -p examples --bin embedded
//! ```

use std::time::Duration;

use anyhow::Context;
use omegi_core::flow::{Flow, Trace};
use omegi_layer::sink::StoreSink;
use omegi_store::{IssueQuery, Store};
use tracing_subscriber::prelude::*;

#[derive(Debug, thiserror::Error)]
#[error("no stock for {sku}")]
struct OutOfStock {
    sku: String,
    #[source]
    source: std::io::Error,
}

#[tracing::instrument(err)]
fn reserve(sku: &str) -> Result<(), OutOfStock> {
    tracing::info!("reading warehouse table");
    Err(OutOfStock {
        sku: sku.to_owned(),
        source: std::io::Error::other("0 rows"),
    })
}

#[tracing::instrument]
fn place_order(order: u64, sku: &str) {
    tracing::info!("order received");
    if reserve(sku).is_err() {
        tracing::warn!("order rejected");
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (omegi, guard) = omegi_layer::layer("orders")
        .with_sink(StoreSink::new(store.clone(), "default"))
        .build();
    tracing_subscriber::registry().with(omegi).init();

    for (order, sku) in [(1, "mug"), (2, "lamp"), (3, "mug")] {
        place_order(order, sku);
    }
    guard.flush(Duration::from_secs(5));

    for issue in store.issues().list("default", &IssueQuery::all())? {
        println!(
            "{:>3}×  {}  [{}]",
            issue.count, issue.title, issue.fingerprint
        );
        let trace_id = issue.latest_trace.context("issue without a trace")?;
        let trace = Trace::from_spans(store.traces().spans("default", trace_id)?)?;
        let flow = Flow::for_error(&trace, &issue.latest_error)?;
        println!("{}", trace.waterfall(40));
        println!("{}", flow.summary());
    }
    Ok(())
}
