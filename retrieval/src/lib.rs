//! Vector stores and hybrid search for 乐业助手.
//!
//! This crate will hold the `VectorStore` trait with its embedded default (`EdgeStore`, on
//! qdrant-edge) and scale-out (`ServerStore`, qdrant-client over gRPC) implementations, the
//! indexer (chunks to dense e5 vectors, BM25 sparse vectors and payload), and the hybrid query
//! with filters and RRF fusion (see DESIGN.md, "Qdrant"). The embedder it indexes with is
//! [`models::embed::Embedder`].
#![warn(missing_docs)]

pub use models::embed::DIM as DENSE_DIM;
