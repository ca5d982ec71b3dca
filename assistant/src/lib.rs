//! 乐业助手 (Leye Assistant): the library behind the `leye` binary.
//!
//! # Layout
//! - [`config`]: the one typed [`config::Config`], from defaults, `leye.toml` and `LEYE_` env.
//! - [`telemetry`]: tracing set-up and the start-up report of SIMD features.
//! - [`knowledge_base`]: the vector store with embedder and BM25: ingest and search.
//! - [`model_store`]: finding (and on demand fetching) the configured models.
//!
//! - [`domain`]: session ids and tokens, caller, channel, rating: parsed once at the edge.
//! - [`guard`]: PII masking, input hygiene, rate and in-flight limits, client address.
//! - [`handoff`]: escalation to counselors and what the citizen is told.
//! - [`console`]: the counselor workspace: accounts, sign-in, queue, claim, reply, audit.
//! - [`bus`]: the event bus between counselors and citizens' streams; [`clock`]: injectable time.
//! - [`turns`]: numbered, resumable turn events; turns nobody listens to are abandoned.
//! - [`dialogue`]: router, memory, job search, evidence gate, prompt, verifier: one turn.
//! - [`store`]: conversations in SQLite or PostgreSQL (sqlx), one set of migrations.
//! - [`http`]: the axum service (v1 API, SSE, health, metrics, the web widget).
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`app`]: the wiring: config -> storage -> knowledge -> models -> router -> HTTP state.
//! - [`serve`]: the transport: accept loop, graceful shutdown, retention purge.
//! - [`wechat`]: the Official Account server's logic, WeChat's API client, the outbox.
#![warn(missing_docs)]

pub mod app;
pub mod bus;
pub mod clock;
pub mod config;
pub mod console;
pub mod dialogue;
pub mod domain;
pub mod guard;
pub mod handoff;
pub mod http;
pub mod knowledge_base;
pub mod metrics;
pub mod model_store;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod turns;
pub mod wechat;

// The lower crates, re-exported so the eval runner and other users need only this library.
pub use knowledge;
pub use models;
pub use retrieval;
