//! BM25 sparse vectors for Chinese: qdrant-edge's `EdgeBm25` with the multilingual tokenizer,
//! which segments Chinese text (jieba, through charabia) and passes Latin words through.
//! Term weights are BM25 term frequencies; the collection's IDF modifier supplies the inverse
//! document frequency at query time, so weights stay valid as the corpus grows.

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::TokenizerType;

use crate::store::Sparse;
use crate::{Error, Result};

/// The BM25 encoder.
pub struct Bm25 {
    inner: EdgeBm25,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bm25")
    }
}

fn convert(v: qdrant_edge::SparseVector) -> Sparse {
    Sparse {
        indices: v.indices,
        values: v.values,
    }
}

impl Bm25 {
    /// The encoder used for every collection.
    pub fn new() -> Result<Self> {
        let inner = EdgeBm25::new(EdgeBm25Config {
            tokenizer: TokenizerType::Multilingual,
            lowercase: Some(true),
            ..Default::default()
        })
        .map_err(|e| Error::Edge(e.into()))?;
        Ok(Self { inner })
    }

    /// The sparse vector of a document (passage) to index.
    pub fn document(&self, text: &str) -> Sparse {
        convert(self.inner.embed_document(text))
    }

    /// The sparse vector of a query.
    pub fn query(&self, text: &str) -> Sparse {
        convert(self.inner.embed_query(text))
    }
}
