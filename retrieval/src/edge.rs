//! [`EdgeStore`]: qdrant-edge in process, one on-disk shard per collection under
//! `<home>/qdrant/<collection>`. The default store: no server to run.
//!
//! Note: qdrant-edge also flushes when a shard is dropped, and panics there if the folder is
//! gone; keep the store folder alive for as long as the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::serde_json::Value as EdgeValue;
use qdrant_edge::JsonPath;
use qdrant_edge::{
    Condition as QCondition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter as QFilter, Fusion, Match,
    Modifier, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest, Range, ScoringQuery,
    ScrollRequest, SparseVector, UpdateOperation, ValueVariants, VectorInternal, Vectors,
    WithPayloadInterface, WithVector,
};

use crate::store::{
    Condition, FieldType, Filter, Hit, Mode, Point, Search, VectorStore, DENSE, SPARSE,
};
use crate::{Error, Result};

fn edge_err(e: impl Into<crate::BoxError>) -> Error {
    Error::Edge(e.into())
}

/// The embedded store.
pub struct EdgeStore {
    root: PathBuf,
    shards: RwLock<HashMap<String, Arc<EdgeShard>>>,
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore")
            .field("root", &self.root)
            .finish()
    }
}

fn config() -> EdgeConfig {
    EdgeConfig {
        vectors: HashMap::from([(
            DENSE.to_string(),
            EdgeVectorParams {
                size: crate::DENSE_DIM,
                distance: Distance::Cosine,
                quantization_config: None,
                multivector_config: None,
                datatype: None,
                on_disk: None,
                hnsw_config: None,
            },
        )]),
        sparse_vectors: HashMap::from([(
            SPARSE.to_string(),
            EdgeSparseVectorParams {
                modifier: Some(Modifier::Idf),
                ..Default::default()
            },
        )]),
        ..Default::default()
    }
}

impl EdgeStore {
    /// Opens (or creates) the store rooted at `root`; existing collections are loaded.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io {
            action: "creating",
            path: root.to_path_buf(),
            source,
        })?;
        let store = Self {
            root: root.to_path_buf(),
            shards: RwLock::new(HashMap::new()),
        };
        let entries = std::fs::read_dir(root).map_err(|source| Error::Io {
            action: "listing",
            path: root.to_path_buf(),
            source,
        })?;
        for e in entries.flatten() {
            if e.path().is_dir() {
                let name = e.file_name().to_string_lossy().into_owned();
                let shard = EdgeShard::load(&e.path(), None).map_err(|err| {
                    // qdrant-edge locks its write-ahead log; a second process gets WouldBlock.
                    if format!("{err:?}").contains("WouldBlock") {
                        Error::InUse(root.to_path_buf())
                    } else {
                        edge_err(err)
                    }
                })?;
                store
                    .shards
                    .write()
                    .map_err(|_| edge_err("lock poisoned"))?
                    .insert(name, Arc::new(shard));
            }
        }
        Ok(store)
    }

    /// Whether the collection exists.
    pub fn has_collection(&self, name: &str) -> bool {
        self.shard(name).is_ok()
    }

    /// Names of the collections, sorted.
    pub fn collections(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shards
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn shard(&self, name: &str) -> Result<Arc<EdgeShard>> {
        self.shards
            .read()
            .map_err(|_| edge_err("lock poisoned"))?
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoCollection(name.to_string()))
    }
}

fn payload_key(key: &str) -> Result<JsonPath> {
    key.try_into()
        .map_err(|_| Error::Invalid(format!("bad payload key {key:?}")))
}

fn to_qfilter(f: &Filter) -> Result<Option<QFilter>> {
    if f.is_empty() {
        return Ok(None);
    }
    let mut must = Vec::new();
    for c in &f.must {
        match c {
            Condition::AnyOf { key, values } => {
                let key = payload_key(key)?;
                // An OR of exact matches: one nested filter of `should` conditions.
                let should: Vec<QCondition> = values
                    .iter()
                    .map(|v| {
                        QCondition::Field(FieldCondition::new_match(
                            Clone::clone(&key),
                            Match::new_value(ValueVariants::String(v.clone())),
                        ))
                    })
                    .collect();
                must.push(QCondition::Filter(QFilter {
                    should: Some(should),
                    min_should: None,
                    must: None,
                    must_not: None,
                }));
            }
            Condition::Range { key, gte, lte } => {
                let key = payload_key(key)?;
                let range = Range {
                    lt: None,
                    gt: None,
                    gte: gte.map(OrderedFloat),
                    lte: lte.map(OrderedFloat),
                };
                must.push(QCondition::Field(FieldCondition::new_range(key, range)));
            }
        }
    }
    Ok(Some(QFilter {
        should: None,
        min_should: None,
        must: Some(must),
        must_not: None,
    }))
}

fn to_hit(id: PointId, score: f32, payload: Option<qdrant_edge::Payload>) -> Hit {
    let id = match id {
        PointId::NumId(n) => n,
        PointId::Uuid(u) => u.as_u64_pair().0,
    };
    Hit {
        id,
        score,
        payload: payload
            .map(|p| p.0.into_iter().collect())
            .unwrap_or_default(),
    }
}

fn nearest(vector: VectorInternal, using: &str) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: vector,
        using: Some(using.to_string()),
    }))
}

impl VectorStore for EdgeStore {
    fn ensure_collection(&self, name: &str, indexed: &[(&str, FieldType)]) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Invalid(format!("collection name {name:?}")));
        }
        let shard = match self.shard(name) {
            Ok(s) => s,
            Err(_) => {
                let dir = self.root.join(name);
                // EdgeShard::new needs its directory to exist.
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    action: "creating",
                    path: dir.clone(),
                    source,
                })?;
                let shard = Arc::new(EdgeShard::new(&dir, config()).map_err(edge_err)?);
                self.shards
                    .write()
                    .map_err(|_| edge_err("lock poisoned"))?
                    .insert(name.to_string(), shard.clone());
                shard
            }
        };
        for (field, ty) in indexed {
            let schema = match ty {
                FieldType::Keyword => PayloadSchemaType::Keyword,
                FieldType::Integer => PayloadSchemaType::Integer,
            };
            let field_name = payload_key(field)?;
            shard
                .update(UpdateOperation::FieldIndexOperation(
                    FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name,
                        field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                    }),
                ))
                .map_err(edge_err)?;
        }
        Ok(())
    }

    fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let shard = self.shard(collection)?;
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            p.validate()?;
            let sparse = SparseVector::new(p.sparse.indices, p.sparse.values).map_err(edge_err)?;
            let vectors = Vectors::new_named([
                (DENSE, qdrant_edge::Vector::from(p.dense)),
                (SPARSE, qdrant_edge::Vector::from(sparse)),
            ]);
            let payload: serde_json::Map<String, serde_json::Value> = p.payload;
            let payload = EdgeValue::Object(payload.into_iter().collect());
            list.push(PointStruct::new(p.id, vectors, payload).into());
        }
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
            ))
            .map_err(edge_err)
    }

    fn delete(&self, collection: &str, filter: &Filter) -> Result<()> {
        let shard = self.shard(collection)?;
        let f = to_qfilter(filter)?
            .ok_or_else(|| Error::Invalid("refusing to delete with an empty filter".into()))?;
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(f),
            ))
            .map_err(edge_err)
    }

    fn search(&self, collection: &str, s: &Search) -> Result<Vec<Hit>> {
        let shard = self.shard(collection)?;
        let filter = to_qfilter(&s.filter)?;
        let dense = || nearest(VectorInternal::from(s.dense.clone()), DENSE);
        let sparse = || -> Result<ScoringQuery> {
            let v = SparseVector::new(s.sparse.indices.clone(), s.sparse.values.clone())
                .map_err(edge_err)?;
            Ok(nearest(VectorInternal::from(v), SPARSE))
        };
        let prefetch = |q: ScoringQuery| Prefetch {
            prefetches: vec![],
            query: Some(q),
            limit: s.prefetch.max(s.limit),
            params: None,
            filter: filter.clone(),
            score_threshold: None,
        };
        let (prefetches, query) = match s.mode {
            Mode::Dense => (vec![], dense()),
            Mode::Sparse => {
                if s.sparse.indices.is_empty() {
                    return Ok(Vec::new());
                }
                (vec![], sparse()?)
            }
            Mode::Hybrid => {
                let mut p = vec![prefetch(dense())];
                if !s.sparse.indices.is_empty() {
                    p.push(prefetch(sparse()?));
                }
                (
                    p,
                    ScoringQuery::Fusion(Fusion::Rrf {
                        k: 60,
                        weights: None,
                    }),
                )
            }
        };
        let req = QueryRequest {
            prefetches,
            query: Some(query),
            filter,
            score_threshold: None,
            limit: s.limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = shard.query(req).map_err(edge_err)?;
        Ok(points
            .into_iter()
            .map(|p| to_hit(p.id, p.score, p.payload))
            .collect())
    }

    fn scroll(&self, collection: &str, filter: &Filter, limit: usize) -> Result<Vec<Hit>> {
        let shard = self.shard(collection)?;
        let mut out = Vec::new();
        let mut offset = None;
        let filter = to_qfilter(filter)?;
        while out.len() < limit {
            let req = ScrollRequest {
                offset,
                limit: Some((limit - out.len()).min(1000)),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (records, next) = shard.scroll(req).map_err(edge_err)?;
            out.extend(records.into_iter().map(|r| to_hit(r.id, 0.0, r.payload)));
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<usize> {
        let shard = self.shard(collection)?;
        shard
            .count(qdrant_edge::CountRequest {
                filter: to_qfilter(filter)?,
                exact: true,
            })
            .map_err(edge_err)
    }

    fn flush(&self) -> Result<()> {
        for shard in self
            .shards
            .read()
            .map_err(|_| edge_err("lock poisoned"))?
            .values()
        {
            // qdrant-edge 0.7 panics (expect) when flushing hits an I/O error, e.g. a full disk
            // or a removed folder: turn that into an error instead of taking the process down.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.flush())).map_err(
                |_| {
                    edge_err(format!(
                        "flushing {} failed (disk full or folder removed?)",
                        shard.path().display()
                    ))
                },
            )?;
        }
        Ok(())
    }
}
