//! The knowledge base: the configured vector store with the embedder and BM25 encoder, and
//! the operations `leye ingest` and `leye search` (and later the dialogue) use.

use std::path::{Path, PathBuf};

use knowledge::chunking::ChunkConfig;
use knowledge::jobs::LineError;
use models::embed::Embedder;
use retrieval::edge::EdgeStore;
use retrieval::hybrid::Retriever;
use retrieval::indexer::{Indexer, Outcome};
use retrieval::lexical::Bm25;
use retrieval::server::{ServerConfig, ServerStore};
use retrieval::store::VectorStore;

use crate::config::Config;

/// Errors of the knowledge base.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// Retrieval failed.
    #[error(transparent)]
    Retrieval(#[from] retrieval::Error),
    /// A model could not be fetched or loaded.
    #[error(transparent)]
    Model(#[from] models::Error),
    /// A document could not be read.
    #[error(transparent)]
    Knowledge(#[from] knowledge::Error),
    /// A path could not be walked or read.
    #[error("{}", .0.display())]
    Path(PathBuf, #[source] std::io::Error),
}

/// What happened to one input file.
#[derive(Debug)]
pub enum FileReport {
    /// A document was indexed (or found unchanged).
    Document {
        /// Its id.
        doc_id: String,
        /// What was done.
        outcome: Outcome,
    },
    /// A job-listing file was loaded.
    Jobs {
        /// Listings indexed (new or changed).
        indexed: usize,
        /// Listings already up to date.
        unchanged: usize,
        /// Bad lines, reported and skipped.
        errors: Vec<LineError>,
    },
    /// The file could not be used; the others still are.
    Failed(KbError),
}

/// The store, embedder and BM25 encoder together.
pub struct KnowledgeBase {
    store: Box<dyn VectorStore>,
    embedder: Embedder,
    bm25: Bm25,
    chunking: ChunkConfig,
}

impl KnowledgeBase {
    /// Opens the store (`qdrant.url`, else the embedded one under `<home>/qdrant`) and loads the embedder (fetching it if needed).
    pub fn open(
        cfg: &Config,
        progress: &mut dyn FnMut(models::catalog::FetchEvent),
    ) -> Result<Self, KbError> {
        let store = Self::open_store(cfg)?;
        let embedder = Embedder::load(&crate::model_store::embedder_path(cfg, progress)?)?;
        Self::with_store(store, embedder, ChunkConfig::default())
    }

    /// The configured store alone, its collections created when new: for reading what is
    /// ingested without loading the embedder.
    pub fn open_store(cfg: &Config) -> Result<Box<dyn VectorStore>, KbError> {
        let store: Box<dyn VectorStore> = match &cfg.qdrant.url {
            Some(url) => {
                let mut server = ServerConfig::new(url);
                server.api_key = cfg.qdrant.api_key.as_ref().map(|k| k.expose().to_string());
                if let Some(t) = cfg.qdrant.timeout_secs {
                    server.timeout = std::time::Duration::from_secs(t);
                }
                Box::new(ServerStore::connect(&server)?)
            }
            None => Box::new(EdgeStore::open(&cfg.home.join("qdrant"))?),
        };
        retrieval::indexer::ensure_collections(store.as_ref())?;
        Ok(store)
    }

    /// A knowledge base over any store (tests use this with a temporary or server store).
    pub fn with_store(
        store: Box<dyn VectorStore>,
        embedder: Embedder,
        chunking: ChunkConfig,
    ) -> Result<Self, KbError> {
        let kb = Self {
            store,
            embedder,
            bm25: Bm25::new()?,
            chunking,
        };
        kb.indexer().ensure_collections()?;
        Ok(kb)
    }

    fn indexer(&self) -> Indexer<'_> {
        Indexer {
            store: self.store.as_ref(),
            embedder: &self.embedder,
            bm25: &self.bm25,
            chunking: self.chunking,
        }
    }

    /// The retriever over this knowledge base.
    pub fn retriever(&self) -> Retriever<'_> {
        Retriever {
            store: self.store.as_ref(),
            embedder: &self.embedder,
            bm25: &self.bm25,
        }
    }

    /// The sentence embedder (queries for routing, passages for ingest).
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The vector store.
    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    /// The documents ingested now, as the benefit cards check them (see
    /// [`retrieval::indexer::stored_documents`]).
    pub fn documents(&self) -> Result<Vec<knowledge::benefits::check::DocText>, KbError> {
        Ok(retrieval::indexer::stored_documents(self.store.as_ref())?)
    }

    /// Every supported file under the given files or folders, sorted for a stable order.
    pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, KbError> {
        let mut out = Vec::new();
        for p in paths {
            walk(p, &mut out)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Ingests one file; `progress(done, total)` reports chunks or listings embedded.
    pub fn ingest_file(&self, path: &Path, progress: &mut dyn FnMut(usize, usize)) -> FileReport {
        match self.try_ingest_file(path, progress) {
            Ok(r) => r,
            Err(e) => FileReport::Failed(e),
        }
    }

    fn try_ingest_file(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FileReport, KbError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ext == "jsonl" || ext == "csv" {
            let text =
                std::fs::read_to_string(path).map_err(|e| KbError::Path(path.to_path_buf(), e))?;
            let report = if ext == "jsonl" {
                knowledge::jobs::load_jsonl(&text)
            } else {
                knowledge::jobs::load_csv(&text)
            };
            let (indexed, unchanged) = self.indexer().ingest_jobs(&report.listings, progress)?;
            return Ok(FileReport::Jobs {
                indexed,
                unchanged,
                errors: report.errors,
            });
        }
        let doc = knowledge::parse::parse_file(path)?;
        let doc_id = doc_id(path);
        let outcome = self.indexer().ingest_document(&doc_id, &doc, progress)?;
        Ok(FileReport::Document { doc_id, outcome })
    }

    /// Removes a document's chunks; returns how many were removed.
    pub fn remove(&self, doc_id: &str) -> Result<usize, KbError> {
        Ok(self.indexer().remove_document(doc_id)?)
    }
}

/// A document's id: its file name without extension.
pub fn doc_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn supported(p: &Path) -> bool {
    knowledge::parse::Format::from_path(p).is_some()
        || p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("csv"))
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), KbError> {
    let meta = std::fs::metadata(p).map_err(|e| KbError::Path(p.to_path_buf(), e))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p).map_err(|e| KbError::Path(p.to_path_buf(), e))? {
            let e = e.map_err(|e| KbError::Path(p.to_path_buf(), e))?;
            let path = e.path();
            // Skip hidden files and folders (editor droppings, .git).
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, out)?;
            } else if supported(&path) {
                out.push(path);
            }
        }
    } else {
        // A file named explicitly is attempted even with an odd extension: the parser says why
        // it cannot be read.
        out.push(p.to_path_buf());
    }
    Ok(())
}
