//! 乐业助手 (Leye Assistant): the library behind the `leye` binary.
//!
//! # Layout
//! - [`config`]: the one typed [`config::Config`], from defaults, `leye.toml` and `LEYE_` env.
//! - [`telemetry`]: tracing set-up and the start-up report of SIMD features.
//! - [`knowledge_base`]: the vector store with embedder and BM25: ingest and search.
//! - [`model_store`]: finding (and on demand fetching) the configured models.
//!
//! The HTTP service, dialogue and handoff arrive in later issues; the layout in DESIGN.md
//! (`http/`, `channels/`, `guard`, `dialogue`, `handoff`, `store`) is where they go.
#![warn(missing_docs)]

pub mod config;
pub mod knowledge_base;
pub mod model_store;
pub mod telemetry;

// The lower crates, re-exported so the eval runner and other users need only this library.
pub use knowledge;
pub use models;
pub use retrieval;
