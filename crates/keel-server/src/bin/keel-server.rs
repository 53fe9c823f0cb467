//! The `keel-server` binary: configuration, logging, signals, then `keel_server::run`.

use std::process::ExitCode;

use keel_server::Config;
use tracing_subscriber::EnvFilter;

/// Every request allocates (argument buffers, batch records, replies); glibc's malloc
/// took a quarter of the server's instructions per SET, mimalloc a fraction of that
/// (entered as [`keel_server::alloc::KeelAlloc`] explains).
#[global_allocator]
static ALLOC: keel_server::alloc::KeelAlloc = keel_server::alloc::KeelAlloc;

fn main() -> ExitCode {
    keel_server::alloc::announce();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel-server: {e}");
            return ExitCode::from(2);
        }
    };
    // RUST_LOG, when set, refines the level from the configuration.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.log_directive()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        engine = %config.engine,
        port = config.port,
        bind = %config.bind,
        dir = %config.dir.display(),
        "keel-server starting"
    );
    if config.disable_thp {
        disable_transparent_huge_pages();
    }
    let workers = config.worker_threads();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("keel-net")
        .on_thread_park(keel_server::server::outbox::end_of_pass)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    // The handlers are installed before the server binds and reports ready, so a
    // SIGTERM sent right after "ready" is a clean shutdown, never the default action.
    let served = runtime.block_on(async {
        let signal = shutdown_signal();
        keel_server::run(config, signal).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "keel-server stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for the whole process (`disable-thp`, as Redis does
/// at start). With the kernel's THP `always`, the first touch of each 2 MiB region of a
/// growing heap zeroes all of it inside one page fault: under a pipelined LPUSH of a few
/// million elements such faults made funnel rounds of 6 ms instead of 1 (88% of their
/// samples in the kernel's page clearing), and the p99 latency 7-9 ms against Redis's
/// 1.5. The flag is inherited by children and kept across exec.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => tracing::debug!("transparent huge pages disabled for this process"),
        Err(e) => tracing::warn!(error = %e, "cannot disable transparent huge pages"),
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => {
                // Without signal handlers Ctrl-C still works through the default handler.
                std::future::pending::<()>().await;
            }
        }
    }
}
