//! Vector stores and hybrid search for 乐业助手.
//!
//! # Layout
//! - [`store`]: the [`store::VectorStore`] trait and the types it speaks (points, sparse
//!   vectors, filters, hits), independent of any Qdrant crate so that the embedded and the
//!   server store are interchangeable.
//! - [`edge`]: [`edge::EdgeStore`], the default: qdrant-edge in process, on disk.
//! - [`server`]: [`server::ServerStore`], a Qdrant server over gRPC (`qdrant-client`), chosen
//!   by config `qdrant.url`.
//! - [`lexical`]: BM25 sparse vectors with Chinese segmentation (qdrant-edge's `EdgeBm25` with
//!   the multilingual tokenizer, which segments Chinese with jieba).
//! - [`indexer`]: documents and job listings to points (e5 passage vector, BM25 vector,
//!   payload), idempotent by content hash.
//! - [`hybrid`]: queries: dense and sparse prefetch fused with RRF, plus filters.
//!
//! Stores are blocking: call them from `spawn_blocking` (qdrant-edge itself is blocking).
#![warn(missing_docs)]

pub mod edge;
pub mod hybrid;
pub mod indexer;
pub mod lexical;
pub mod rerank;
pub mod server;
pub mod store;

pub use models::embed::DIM as DENSE_DIM;

/// A boxed error from a store library (or a message of ours where there is none).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the retrieval crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded Qdrant failed; the source is qdrant-edge's own error.
    #[error("qdrant-edge failed")]
    Edge(#[source] BoxError),
    /// The Qdrant server failed or could not be reached; the source says how.
    #[error("qdrant server failed")]
    Server(#[source] BoxError),
    /// Embedding failed.
    #[error("embedding")]
    Model(#[from] models::Error),
    /// A document could not be read.
    #[error(transparent)]
    Knowledge(#[from] knowledge::Error),
    /// A file or folder could not be used.
    #[error("{action} {path}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The embedded store's files are held by another process (a running `leye serve`): it
    /// allows one process at a time.
    #[error("the knowledge base in {0} is in use by another process (a running `leye serve`?); the embedded store allows one process at a time — stop it first, or use a Qdrant server (`qdrant.url`)")]
    InUse(std::path::PathBuf),
    /// A collection that does not exist was used.
    #[error("no collection {0:?}")]
    NoCollection(String),
    /// Bad input to a store call.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
