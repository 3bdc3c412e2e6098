//! The `omegi` binary: see `omegi --help`.

#![forbid(unsafe_code)]

use clap::Parser;
use omegi_server::cli::{run, Cli};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The server allocates and frees many small records per request; glibc's
/// allocator spent as long freeing a batch of decoded spans as the store
/// spent writing it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Everything the binary creates (the store's files as the engine adds
    // them, exports, note exports, credentials) is private to its user:
    // files 0600, directories 0700.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMEGI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let mut stdout = std::io::stdout();
    match run(cli, &mut stdout).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("omegi: {}", omegi_core::ErrorChain(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
