//! [`ServerStore`]: a Qdrant server over gRPC (`qdrant-client`), the scale-out path. Chosen by
//! config `qdrant.url`; speaks the same [`VectorStore`] trait as the embedded store, so the
//! indexer, the retriever and the service do not know which one they use.
//!
//! The trait is blocking (qdrant-edge is), so the store owns a small tokio runtime and waits on
//! each call from the caller's thread. That works from plain threads and from
//! `spawn_blocking`, the two places stores are called from; it never blocks a runtime worker
//! of the caller's own runtime with a nested `block_on`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use qdrant_client::qdrant::{
    point_id::PointIdOptions, points_selector, r#match::MatchValue, Condition as QCondition,
    CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType as QFieldType, Filter as QFilter, Modifier,
    NamedVectors, PointId, PointStruct, PrefetchQueryBuilder, Query, QueryPointsBuilder, Range,
    RrfBuilder, ScrollPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    Value as QValue, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant};
use serde_json::{Map, Value};

use crate::store::{
    Condition, FieldType, Filter, Hit, Mode, Point, Search, VectorStore, DENSE, SPARSE,
};
use crate::{Error, Result};

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// gRPC address, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// API key, if the server wants one.
    pub api_key: Option<String>,
    /// Limit on each call.
    pub timeout: Duration,
}

impl ServerConfig {
    /// A config for `url` with no key and a 30 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Points per upsert request: keeps each gRPC message well under the server's 32 MB default.
const UPSERT_BATCH: usize = 256;

/// The server store.
pub struct ServerStore {
    client: Arc<Qdrant>,
    /// Always `Some` until dropped: `Drop` takes it out to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
    url: String,
}

impl Drop for ServerStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, and tokio panics when that happens
        // inside async code (the end of `leye ask`, server shutdown, error paths that drop the
        // knowledge base on a runtime worker). Shutting down in the background never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("url", &self.url)
            .finish()
    }
}

fn server_err(e: impl Into<crate::BoxError>) -> Error {
    Error::Server(e.into())
}

impl ServerStore {
    /// Connects to the server and checks that it answers (a health check), so that a wrong
    /// address fails at start-up rather than at the first question.
    pub fn connect(config: &ServerConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qdrant-client")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                action: "starting the runtime for",
                path: config.url.clone().into(),
                source,
            })?;
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // We check reachability ourselves below; the version check only logs.
            .skip_compatibility_check()
            .build()
            .map_err(server_err)?;
        let store = Self {
            client: Arc::new(client),
            runtime: Some(runtime),
            url: config.url.clone(),
        };
        store
            .call(|c| async move { c.health_check().await })
            .map_err(|e| server_err(format!("Qdrant at {} does not answer: {e}", store.url)))?;
        Ok(store)
    }

    /// Deletes a collection and its points (tests and re-indexing from scratch).
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let n = name.to_string();
        self.call(|c| async move { c.delete_collection(n).await })?;
        Ok(())
    }

    /// Runs one client call on the store's runtime and waits for it.
    fn call<F, Fut, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Arc<Qdrant>) -> Fut,
        Fut: Future<Output = std::result::Result<T, qdrant_client::QdrantError>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.client.clone());
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| server_err("the store is shutting down"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| server_err("the client task ended without an answer"))?
            .map_err(server_err)
    }
}

fn to_qfilter(f: &Filter) -> Option<QFilter> {
    if f.is_empty() {
        return None;
    }
    let must = f
        .must
        .iter()
        .map(|c| match c {
            // `Keywords` is "any of"; built directly because qdrant-client turns a single
            // string with a space into a full-text match.
            Condition::AnyOf { key, values } => QCondition::matches(
                key.clone(),
                MatchValue::Keywords(qdrant_client::qdrant::RepeatedStrings {
                    strings: values.clone(),
                }),
            ),
            Condition::Range { key, gte, lte } => QCondition::range(
                key.clone(),
                Range {
                    gte: *gte,
                    lte: *lte,
                    ..Default::default()
                },
            ),
        })
        .collect::<Vec<_>>();
    Some(QFilter::must(must))
}

fn point_id(id: Option<PointId>) -> u64 {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Num(n)) => n,
        // Our stores only write numeric ids; a UUID would come from someone else's writes.
        Some(PointIdOptions::Uuid(u)) => {
            let hex: String = u
                .chars()
                .filter(|c| c.is_ascii_hexdigit())
                .take(16)
                .collect();
            u64::from_str_radix(&hex, 16).unwrap_or(0)
        }
        None => 0,
    }
}

fn to_payload(map: HashMap<String, QValue>) -> Map<String, Value> {
    map.into_iter().map(|(k, v)| (k, v.into_json())).collect()
}

/// True when the value is a JSON object key Qdrant can index and filter (no dots or brackets
/// that would be read as a path).
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains(['.', '[', ']']) {
        return Err(Error::Invalid(format!("bad payload key {key:?}")));
    }
    Ok(())
}

impl VectorStore for ServerStore {
    fn ensure_collection(&self, name: &str, indexed: &[(&str, FieldType)]) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Invalid(format!("collection name {name:?}")));
        }
        let n = name.to_string();
        let exists = self.call(|c| async move { c.collection_exists(n).await })?;
        if !exists {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                DENSE,
                VectorParamsBuilder::new(crate::DENSE_DIM as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                SPARSE,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let req = CreateCollectionBuilder::new(name)
                .vectors_config(vectors)
                .sparse_vectors_config(sparse)
                .build();
            self.call(|c| async move { c.create_collection(req).await })?;
        }
        for (field, ty) in indexed {
            check_key(field)?;
            let ty = match ty {
                FieldType::Keyword => QFieldType::Keyword,
                FieldType::Integer => QFieldType::Integer,
            };
            // Creating an index that exists is a no-op on the server.
            let req = CreateFieldIndexCollectionBuilder::new(name, *field, ty)
                .wait(true)
                .build();
            self.call(|c| async move { c.create_field_index(req).await })?;
        }
        Ok(())
    }

    fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            p.validate()?;
            let vectors = NamedVectors::default()
                .add_vector(DENSE, Vector::new_dense(p.dense))
                .add_vector(
                    SPARSE,
                    Vector::new_sparse(p.sparse.indices, p.sparse.values),
                );
            let payload = Payload::try_from(Value::Object(p.payload)).map_err(server_err)?;
            structs.push(PointStruct::new(p.id, vectors, payload));
        }
        for batch in structs.chunks(UPSERT_BATCH) {
            let req = qdrant_client::qdrant::UpsertPointsBuilder::new(collection, batch.to_vec())
                .wait(true)
                .build();
            self.call(|c| async move { c.upsert_points(req).await })?;
        }
        Ok(())
    }

    fn delete(&self, collection: &str, filter: &Filter) -> Result<()> {
        let f = to_qfilter(filter)
            .ok_or_else(|| Error::Invalid("refusing to delete with an empty filter".into()))?;
        let req = DeletePointsBuilder::new(collection)
            .points(points_selector::PointsSelectorOneOf::Filter(f))
            .wait(true)
            .build();
        self.call(|c| async move { c.delete_points(req).await })?;
        Ok(())
    }

    fn search(&self, collection: &str, s: &Search) -> Result<Vec<Hit>> {
        let filter = to_qfilter(&s.filter);
        let dense = || Query::new_nearest(VectorInput::new_dense(s.dense.clone()));
        let sparse = || {
            Query::new_nearest(VectorInput::new_sparse(
                s.sparse.indices.clone(),
                s.sparse.values.clone(),
            ))
        };
        let mut req = QueryPointsBuilder::new(collection)
            .limit(s.limit as u64)
            .with_payload(true);
        if let Some(f) = &filter {
            req = req.filter(f.clone());
        }
        let prefetch = |q: Query, using: &str| {
            let mut p = PrefetchQueryBuilder::default()
                .query(q)
                .using(using)
                .limit(s.prefetch.max(s.limit) as u64);
            if let Some(f) = &filter {
                p = p.filter(f.clone());
            }
            p
        };
        req = match s.mode {
            Mode::Dense => req.query(dense()).using(DENSE),
            Mode::Sparse => {
                if s.sparse.indices.is_empty() {
                    return Ok(Vec::new());
                }
                req.query(sparse()).using(SPARSE)
            }
            Mode::Hybrid => {
                let mut r = req.add_prefetch(prefetch(dense(), DENSE));
                if !s.sparse.indices.is_empty() {
                    r = r.add_prefetch(prefetch(sparse(), SPARSE));
                }
                r.query(Query::new_rrf(RrfBuilder::with_k(60)))
            }
        };
        let req = req.build();
        let res = self.call(|c| async move { c.query(req).await })?;
        Ok(res
            .result
            .into_iter()
            .map(|p| Hit {
                id: point_id(p.id),
                score: p.score,
                payload: to_payload(p.payload),
            })
            .collect())
    }

    fn scroll(&self, collection: &str, filter: &Filter, limit: usize) -> Result<Vec<Hit>> {
        let filter = to_qfilter(filter);
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        while out.len() < limit {
            let mut req = ScrollPointsBuilder::new(collection)
                .limit((limit - out.len()).min(1000) as u32)
                .with_payload(true)
                .with_vectors(false);
            if let Some(f) = &filter {
                req = req.filter(f.clone());
            }
            if let Some(o) = offset.take() {
                req = req.offset(o);
            }
            let req = req.build();
            let res = self.call(|c| async move { c.scroll(req).await })?;
            out.extend(res.result.into_iter().map(|r| Hit {
                id: point_id(r.id),
                score: 0.0,
                payload: to_payload(r.payload),
            }));
            match res.next_page_offset {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<usize> {
        let mut req = CountPointsBuilder::new(collection).exact(true);
        if let Some(f) = to_qfilter(filter) {
            req = req.filter(f);
        }
        let req = req.build();
        let res = self.call(|c| async move { c.count(req).await })?;
        Ok(res.result.map(|r| r.count as usize).unwrap_or(0))
    }

    fn flush(&self) -> Result<()> {
        // Every write above waits for the server's acknowledgement (`wait: true`); the server
        // owns durability (its WAL), there is nothing for the client to flush.
        Ok(())
    }
}
