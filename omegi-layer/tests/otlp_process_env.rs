//! The default sink reads the process environment. This binary holds a
//! single test, so nothing else in its process reads or writes the
//! environment meanwhile.

mod common;

use std::time::Duration;

use common::Receiver;
use tracing::{error, info_span};
use tracing_subscriber::prelude::*;

#[test]
fn the_layer_reads_otel_variables_from_the_process_environment() {
    let receiver = Receiver::http(None);
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url(false));
    std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20env");
    std::env::set_var("OTEL_SERVICE_NAME", "from-env");
    let (layer, guard) = omegi_layer::builder()
        .export_interval(Duration::from_millis(50))
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _span = info_span!("checkout").entered();
        error!("card declined");
    });
    guard.flush(Duration::from_secs(20));
    assert_eq!(guard.stats().exported, 2);
    let received = receiver.received();
    assert_eq!(received.span_names(), ["checkout"]);
    assert_eq!(received.resource_attribute("service.name"), ["from-env"]);
    assert_eq!(received.authorization, ["Bearer env", "Bearer env"]);
    drop(received);

    // OTEL_SDK_DISABLED=true, read from the process too.
    std::env::set_var("OTEL_SDK_DISABLED", "true");
    let (layer, guard) = omegi_layer::builder().build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _span = info_span!("ignored").entered();
        error!("not sent");
    });
    guard.flush(Duration::from_secs(20));
    assert_eq!(guard.stats().exported, 0);
    assert_eq!(receiver.received().span_names(), ["checkout"]);
}
