//! A test Qdrant gRPC server built from qdrant-client's generated server traits
//! (`qdrant_server`, `collections_server`, `points_server`) and backed by `EdgeStore`.
//!
//! It serves every call `ServerStore` makes — health check, collection exists/create, field
//! index, upsert, delete by filter, query (dense, sparse, RRF hybrid), scroll, count — by
//! translating the request back into our store types. Anything else answers `unimplemented`,
//! and a request shaped differently from what it understands answers `invalid_argument`, so a
//! change in `ServerStore` that this server does not know fails the tests loudly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ::qdrant_client::qdrant::{
    collections_server::{Collections, CollectionsServer},
    condition::ConditionOneOf,
    points_selector::PointsSelectorOneOf,
    points_server::{Points, PointsServer},
    qdrant_server::{Qdrant, QdrantServer},
    query::Variant,
    r#match::MatchValue,
    vector, vector_input,
    vectors::VectorsOptions,
    vectors_config, *,
};
use retrieval::edge::EdgeStore;
use retrieval::store::{self, Condition, FieldType, Mode, VectorStore};
use tonic::{Request, Response, Status};

/// The running server; dropped at the end of the test (the runtime goes with it).
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _runtime: tokio::runtime::Runtime,
}

/// Starts the server on 127.0.0.1 with an ephemeral port, backed by `store`.
pub fn start(store: Arc<EdgeStore>) -> TestServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let svc = Backend { store };
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(QdrantServer::new(svc.clone()))
            .add_service(CollectionsServer::new(svc.clone()))
            .add_service(PointsServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("serve");
    });
    TestServer {
        url: format!("http://{addr}"),
        _runtime: runtime,
    }
}

#[derive(Clone)]
struct Backend {
    store: Arc<EdgeStore>,
}

fn bad(what: impl std::fmt::Display) -> Status {
    Status::invalid_argument(what.to_string())
}

fn store_err(e: retrieval::Error) -> Status {
    match e {
        retrieval::Error::NoCollection(c) => Status::not_found(format!("no collection {c}")),
        retrieval::Error::Invalid(m) => Status::invalid_argument(m),
        other => Status::internal(other.to_string()),
    }
}

/// Runs blocking store work off the async workers, like a real server's storage threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
}

fn ok_op() -> PointsOperationResponse {
    PointsOperationResponse {
        result: Some(UpdateResult {
            operation_id: Some(0),
            status: UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    }
}

fn id_of(id: Option<PointId>) -> Result<u64, Status> {
    match id.and_then(|p| p.point_id_options) {
        Some(point_id::PointIdOptions::Num(n)) => Ok(n),
        other => Err(bad(format!("point id {other:?}: only numeric ids"))),
    }
}

fn to_filter(f: Option<Filter>) -> Result<store::Filter, Status> {
    let Some(f) = f else {
        return Ok(store::Filter::default());
    };
    if !f.should.is_empty() || !f.must_not.is_empty() || f.min_should.is_some() {
        return Err(bad("only `must` filters are understood"));
    }
    let mut out = store::Filter::default();
    for c in f.must {
        let Some(ConditionOneOf::Field(fc)) = c.condition_one_of else {
            return Err(bad("only field conditions are understood"));
        };
        match (fc.r#match, fc.range) {
            (
                Some(Match {
                    match_value: Some(m),
                }),
                None,
            ) => {
                let values = match m {
                    MatchValue::Keyword(k) => vec![k],
                    MatchValue::Keywords(k) => k.strings,
                    other => return Err(bad(format!("match {other:?}"))),
                };
                out.must.push(Condition::AnyOf {
                    key: fc.key,
                    values,
                });
            }
            (None, Some(r)) => {
                if r.lt.is_some() || r.gt.is_some() {
                    return Err(bad("only inclusive ranges are understood"));
                }
                out.must.push(Condition::Range {
                    key: fc.key,
                    gte: r.gte,
                    lte: r.lte,
                });
            }
            _ => return Err(bad("a field condition needs one match or one range")),
        }
    }
    Ok(out)
}

#[allow(deprecated)]
fn vector_parts(v: Vector) -> Result<(Option<Vec<f32>>, Option<store::Sparse>), Status> {
    match v.vector {
        Some(vector::Vector::Dense(d)) => Ok((Some(d.data), None)),
        Some(vector::Vector::Sparse(s)) => Ok((
            None,
            Some(store::Sparse {
                indices: s.indices,
                values: s.values,
            }),
        )),
        Some(other) => Err(bad(format!("vector kind {other:?}"))),
        // Older clients send the deprecated fields.
        None => match v.indices {
            Some(ix) => Ok((
                None,
                Some(store::Sparse {
                    indices: ix.data,
                    values: v.data,
                }),
            )),
            None => Ok((Some(v.data), None)),
        },
    }
}

fn to_point(p: PointStruct) -> Result<store::Point, Status> {
    let id = id_of(p.id)?;
    let Some(Vectors {
        vectors_options: Some(VectorsOptions::Vectors(named)),
    }) = p.vectors
    else {
        return Err(bad("points need named vectors"));
    };
    let mut dense = None;
    let mut sparse = None;
    for (name, v) in named.vectors {
        let (d, s) = vector_parts(v)?;
        match name.as_str() {
            store::DENSE => dense = d,
            store::SPARSE => sparse = s,
            other => return Err(bad(format!("unknown vector {other:?}"))),
        }
    }
    Ok(store::Point {
        id,
        dense: dense.ok_or_else(|| bad("missing dense vector"))?,
        sparse: sparse.unwrap_or_default(),
        payload: p
            .payload
            .into_iter()
            .map(|(k, v)| (k, v.into_json()))
            .collect(),
    })
}

fn payload_out(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<HashMap<String, Value>, Status> {
    let payload =
        ::qdrant_client::Payload::try_from(serde_json::Value::Object(map)).map_err(bad)?;
    Ok(payload.into())
}

/// The query of a nearest search: its vector, and which named vector it runs on.
fn nearest(q: Option<Query>, using: Option<String>) -> Result<(String, VectorInput), Status> {
    match q.and_then(|q| q.variant) {
        Some(Variant::Nearest(v)) => Ok((using.ok_or_else(|| bad("`using` is required"))?, v)),
        other => Err(bad(format!("expected a nearest query, got {other:?}"))),
    }
}

fn put_vector(search: &mut store::Search, using: &str, v: VectorInput) -> Result<(), Status> {
    match (using, v.variant) {
        (store::DENSE, Some(vector_input::Variant::Dense(d))) => search.dense = d.data,
        (store::SPARSE, Some(vector_input::Variant::Sparse(s))) => {
            search.sparse = store::Sparse {
                indices: s.indices,
                values: s.values,
            }
        }
        (u, other) => return Err(bad(format!("vector {other:?} for {u:?}"))),
    }
    Ok(())
}

#[tonic::async_trait]
impl Qdrant for Backend {
    async fn health_check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckReply>, Status> {
        Ok(Response::new(HealthCheckReply {
            title: "leye test qdrant (EdgeStore)".into(),
            version: "1.16.0".into(),
            commit: None,
        }))
    }
}

macro_rules! unimplemented_rpcs {
    ($($name:ident: $req:ty => $resp:ty,)*) => {$(
        // Written as `#[async_trait]` expands an async fn: the attribute does not see inside
        // macro invocations.
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            _: Request<$req>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async {
                Err(Status::unimplemented(concat!(stringify!($name), " is not used by ServerStore")))
            })
        }
    )*};
}

#[tonic::async_trait]
impl Collections for Backend {
    async fn collection_exists(
        &self,
        r: Request<CollectionExistsRequest>,
    ) -> Result<Response<CollectionExistsResponse>, Status> {
        let exists = self.store.has_collection(&r.into_inner().collection_name);
        Ok(Response::new(CollectionExistsResponse {
            result: Some(CollectionExists { exists }),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        r: Request<CreateCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        let r = r.into_inner();
        // The store has one fixed layout; check that the request asks for exactly it.
        let dense_ok = match r.vectors_config.and_then(|v| v.config) {
            Some(vectors_config::Config::ParamsMap(m)) => {
                m.map.get(store::DENSE).is_some_and(|p| {
                    p.size == retrieval::DENSE_DIM as u64 && p.distance == Distance::Cosine as i32
                })
            }
            _ => false,
        };
        let sparse_ok = r.sparse_vectors_config.is_some_and(|s| {
            s.map
                .get(store::SPARSE)
                .is_some_and(|p| p.modifier == Some(Modifier::Idf as i32))
        });
        if !dense_ok || !sparse_ok {
            return Err(bad("expected dense 384 cosine + sparse bm25 with IDF"));
        }
        if self.store.has_collection(&r.collection_name) {
            return Err(Status::already_exists(r.collection_name));
        }
        let store = self.store.clone();
        blocking(move || {
            store
                .ensure_collection(&r.collection_name, &[])
                .map_err(store_err)
        })
        .await?;
        Ok(Response::new(CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn list(
        &self,
        _: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        Ok(Response::new(ListCollectionsResponse {
            collections: self
                .store
                .collections()
                .into_iter()
                .map(|name| CollectionDescription { name })
                .collect(),
            time: 0.0,
        }))
    }

    unimplemented_rpcs! {
        get: GetCollectionInfoRequest => GetCollectionInfoResponse,
        update: UpdateCollection => CollectionOperationResponse,
        delete: DeleteCollection => CollectionOperationResponse,
        update_aliases: ChangeAliases => CollectionOperationResponse,
        list_collection_aliases: ListCollectionAliasesRequest => ListAliasesResponse,
        list_aliases: ListAliasesRequest => ListAliasesResponse,
        collection_cluster_info: CollectionClusterInfoRequest => CollectionClusterInfoResponse,
        update_collection_cluster_setup: UpdateCollectionClusterSetupRequest => UpdateCollectionClusterSetupResponse,
        create_shard_key: CreateShardKeyRequest => CreateShardKeyResponse,
        delete_shard_key: DeleteShardKeyRequest => DeleteShardKeyResponse,
        list_shard_keys: ListShardKeysRequest => ListShardKeysResponse,
    }
}

#[tonic::async_trait]
impl Points for Backend {
    async fn create_field_index(
        &self,
        r: Request<CreateFieldIndexCollection>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = r.into_inner();
        let ty = match r
            .field_type
            .and_then(|t| ::qdrant_client::qdrant::FieldType::try_from(t).ok())
        {
            Some(::qdrant_client::qdrant::FieldType::Keyword) => FieldType::Keyword,
            Some(::qdrant_client::qdrant::FieldType::Integer) => FieldType::Integer,
            other => return Err(bad(format!("field type {other:?}"))),
        };
        let store = self.store.clone();
        blocking(move || {
            store
                .ensure_collection(&r.collection_name, &[(r.field_name.as_str(), ty)])
                .map_err(store_err)
        })
        .await?;
        Ok(Response::new(ok_op()))
    }

    async fn upsert(
        &self,
        r: Request<UpsertPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = r.into_inner();
        let points = r
            .points
            .into_iter()
            .map(to_point)
            .collect::<Result<Vec<_>, _>>()?;
        let store = self.store.clone();
        blocking(move || store.upsert(&r.collection_name, points).map_err(store_err)).await?;
        Ok(Response::new(ok_op()))
    }

    async fn delete(
        &self,
        r: Request<DeletePoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = r.into_inner();
        let Some(PointsSelector {
            points_selector_one_of: Some(PointsSelectorOneOf::Filter(f)),
        }) = r.points
        else {
            return Err(bad("only delete by filter is understood"));
        };
        let filter = to_filter(Some(f))?;
        let store = self.store.clone();
        blocking(move || store.delete(&r.collection_name, &filter).map_err(store_err)).await?;
        Ok(Response::new(ok_op()))
    }

    async fn query(&self, r: Request<QueryPoints>) -> Result<Response<QueryResponse>, Status> {
        let r = r.into_inner();
        let mut search = store::Search {
            dense: Vec::new(),
            sparse: store::Sparse::default(),
            filter: to_filter(r.filter)?,
            limit: r.limit.unwrap_or(10) as usize,
            mode: Mode::Dense,
            prefetch: 0,
        };
        if r.prefetch.is_empty() {
            let (using, v) = nearest(r.query, r.using)?;
            search.mode = if using == store::SPARSE {
                Mode::Sparse
            } else {
                Mode::Dense
            };
            put_vector(&mut search, &using, v)?;
        } else {
            match r.query.and_then(|q| q.variant) {
                Some(Variant::Rrf(rrf)) if rrf.k.unwrap_or(60) == 60 && rrf.weights.is_empty() => {}
                Some(Variant::Fusion(f)) if f == Fusion::Rrf as i32 => {}
                other => return Err(bad(format!("expected RRF fusion, got {other:?}"))),
            }
            search.mode = Mode::Hybrid;
            for p in r.prefetch {
                if !p.prefetch.is_empty() {
                    return Err(bad("nested prefetch"));
                }
                if to_filter(p.filter)? != search.filter {
                    return Err(bad("prefetch filter differs from the query filter"));
                }
                search.prefetch = search.prefetch.max(p.limit.unwrap_or(10) as usize);
                let (using, v) = nearest(p.query, p.using)?;
                put_vector(&mut search, &using, v)?;
            }
        }
        let collection = r.collection_name;
        let store = self.store.clone();
        let hits = blocking(move || store.search(&collection, &search).map_err(store_err)).await?;
        let result = hits
            .into_iter()
            .map(|h| {
                Ok(ScoredPoint {
                    id: Some(PointId::from(h.id)),
                    payload: payload_out(h.payload)?,
                    score: h.score,
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(QueryResponse {
            result,
            time: 0.0,
            usage: None,
        }))
    }

    async fn scroll(&self, r: Request<ScrollPoints>) -> Result<Response<ScrollResponse>, Status> {
        let r = r.into_inner();
        // EdgeStore's scroll pages internally; serve everything in one page (limit permitting)
        // unless an offset asks for a later page, which our client only sends after a
        // `next_page_offset` this server never gives.
        if r.offset.is_some() {
            return Err(bad("offset without a next_page_offset"));
        }
        let filter = to_filter(r.filter)?;
        let limit = r.limit.unwrap_or(10) as usize;
        let store = self.store.clone();
        let hits = blocking(move || {
            store
                .scroll(&r.collection_name, &filter, limit)
                .map_err(store_err)
        })
        .await?;
        let result = hits
            .into_iter()
            .map(|h| {
                Ok(RetrievedPoint {
                    id: Some(PointId::from(h.id)),
                    payload: payload_out(h.payload)?,
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(ScrollResponse {
            next_page_offset: None,
            result,
            time: 0.0,
            usage: None,
        }))
    }

    async fn count(&self, r: Request<CountPoints>) -> Result<Response<CountResponse>, Status> {
        let r = r.into_inner();
        let filter = to_filter(r.filter)?;
        let store = self.store.clone();
        let n =
            blocking(move || store.count(&r.collection_name, &filter).map_err(store_err)).await?;
        Ok(Response::new(CountResponse {
            result: Some(CountResult { count: n as u64 }),
            time: 0.0,
            usage: None,
        }))
    }

    unimplemented_rpcs! {
        get: GetPoints => GetResponse,
        update_vectors: UpdatePointVectors => PointsOperationResponse,
        delete_vectors: DeletePointVectors => PointsOperationResponse,
        set_payload: SetPayloadPoints => PointsOperationResponse,
        overwrite_payload: SetPayloadPoints => PointsOperationResponse,
        delete_payload: DeletePayloadPoints => PointsOperationResponse,
        clear_payload: ClearPayloadPoints => PointsOperationResponse,
        delete_field_index: DeleteFieldIndexCollection => PointsOperationResponse,
        create_vector_name: CreateVectorNameRequest => PointsOperationResponse,
        delete_vector_name: DeleteVectorNameRequest => PointsOperationResponse,
        search: SearchPoints => SearchResponse,
        search_batch: SearchBatchPoints => SearchBatchResponse,
        search_groups: SearchPointGroups => SearchGroupsResponse,
        recommend: RecommendPoints => RecommendResponse,
        recommend_batch: RecommendBatchPoints => RecommendBatchResponse,
        recommend_groups: RecommendPointGroups => RecommendGroupsResponse,
        discover: DiscoverPoints => DiscoverResponse,
        discover_batch: DiscoverBatchPoints => DiscoverBatchResponse,
        update_batch: UpdateBatchPoints => UpdateBatchResponse,
        query_batch: QueryBatchPoints => QueryBatchResponse,
        query_groups: QueryPointGroups => QueryGroupsResponse,
        facet: FacetCounts => FacetResponse,
        search_matrix_pairs: SearchMatrixPoints => SearchMatrixPairsResponse,
        search_matrix_offsets: SearchMatrixPoints => SearchMatrixOffsetsResponse,
    }
}
