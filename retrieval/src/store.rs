//! The store abstraction: what retrieval needs from Qdrant, in our own types.

use serde_json::{Map, Value};

use crate::Result;

/// The name of the dense vector in every collection.
pub const DENSE: &str = "dense";
/// The name of the BM25 sparse vector in every collection.
pub const SPARSE: &str = "bm25";
/// Collection of policy chunks.
pub const POLICY_CHUNKS: &str = "policy_chunks";
/// Collection of job listings.
pub const JOBS: &str = "jobs";

/// A sparse vector (indices strictly by token hash, any order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    /// Dimension ids.
    pub indices: Vec<u32>,
    /// Weights.
    pub values: Vec<f32>,
}

/// A point to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Stable numeric id.
    pub id: u64,
    /// e5 vector (384, cosine).
    pub dense: Vec<f32>,
    /// BM25 vector.
    pub sparse: Sparse,
    /// Payload (a JSON object).
    pub payload: Map<String, Value>,
}

impl Point {
    /// Checks the vectors' shapes before a store sends them anywhere.
    pub fn validate(&self) -> crate::Result<()> {
        if self.dense.len() != crate::DENSE_DIM {
            return Err(crate::Error::Invalid(format!(
                "dense vector of {} dims, want {}",
                self.dense.len(),
                crate::DENSE_DIM
            )));
        }
        if self.sparse.indices.len() != self.sparse.values.len() {
            return Err(crate::Error::Invalid(
                "sparse indices and values differ in length".into(),
            ));
        }
        Ok(())
    }
}

/// The type of a payload field with an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Exact string match.
    Keyword,
    /// Numbers (ranges).
    Integer,
}

/// One filter condition. A [`Filter`] is the conjunction of its conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The field (or one element of an array field) equals one of these strings.
    AnyOf {
        /// Payload key.
        key: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// The numeric field lies in `[gte, lte]` (either bound optional).
    Range {
        /// Payload key.
        key: String,
        /// Lower bound, inclusive.
        gte: Option<f64>,
        /// Upper bound, inclusive.
        lte: Option<f64>,
    },
}

/// A conjunction of conditions; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// All must hold.
    pub must: Vec<Condition>,
}

impl Filter {
    /// Adds a condition.
    pub fn and(mut self, c: Condition) -> Self {
        self.must.push(c);
        self
    }
    /// Whether the filter has no conditions.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty()
    }
}

/// Which vectors rank the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// e5 only.
    Dense,
    /// BM25 only.
    Sparse,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

/// A search.
#[derive(Debug, Clone)]
pub struct Search {
    /// Query vector (e5 `query:`).
    pub dense: Vec<f32>,
    /// Query BM25 vector.
    pub sparse: Sparse,
    /// Restriction.
    pub filter: Filter,
    /// Results wanted.
    pub limit: usize,
    /// Ranking.
    pub mode: Mode,
    /// Candidates each side contributes to the fusion.
    pub prefetch: usize,
}

/// A scored result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Point id.
    pub id: u64,
    /// Score (cosine, BM25 or RRF, by mode).
    pub score: f32,
    /// Payload.
    pub payload: Map<String, Value>,
}

/// A vector store. Blocking: call from `spawn_blocking` in async code.
pub trait VectorStore: Send + Sync {
    /// Creates the collection (dense 384 cosine + sparse BM25 with IDF) if missing, and
    /// payload indexes for `indexed` fields.
    fn ensure_collection(&self, name: &str, indexed: &[(&str, FieldType)]) -> Result<()>;
    /// Inserts or replaces points.
    fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()>;
    /// Deletes every point matching `filter`.
    fn delete(&self, collection: &str, filter: &Filter) -> Result<()>;
    /// Runs a search.
    fn search(&self, collection: &str, search: &Search) -> Result<Vec<Hit>>;
    /// Payloads of up to `limit` points matching `filter` (any order).
    fn scroll(&self, collection: &str, filter: &Filter, limit: usize) -> Result<Vec<Hit>>;
    /// Number of points matching `filter`.
    fn count(&self, collection: &str, filter: &Filter) -> Result<usize>;
    /// Makes every acknowledged write durable.
    fn flush(&self) -> Result<()>;
}
