//! Logging set-up and start-up facts.
//!
//! Logs go to stderr so that `leye ask` can print the answer alone on stdout. The filter is
//! `LEYE_LOG` (tracing's env-filter syntax), default `info` for our crates and `error` for
//! qdrant-edge, whose routine messages (WAL opened, feature flags) are not for operators.

/// Installs the global subscriber; calling it twice is harmless.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEYE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,qdrant_edge=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Logs which SIMD features the build uses and the CPU offers, warning when the build leaves
/// speed on the table (see `.cargo/config.toml`).
pub fn log_simd() {
    let r = models::cpu::simd_report();
    tracing::info!(compiled = %r.compiled.join(","), available = %r.available.join(","), "SIMD");
    let unused = r.unused();
    if !unused.is_empty() {
        tracing::warn!(unused = %unused.join(","), "this build does not use all CPU features; rebuild with RUSTFLAGS=\"-C target-cpu=native\" for a faster LLM");
    }
}
