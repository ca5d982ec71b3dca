//! Turning documents and job listings into points: e5 passage vectors, BM25 vectors and
//! payloads. Idempotent: each point carries the content hash of its source, an unchanged
//! document or listing is skipped, and a changed one replaces its old points.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use knowledge::chunking::{chunk, ChunkConfig};
use knowledge::document::Document;
use knowledge::jobs::JobListing;
use models::embed::Embedder;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::lexical::Bm25;
use crate::store::{Condition, FieldType, Filter, Point, VectorStore, JOBS, POLICY_CHUNKS};
use crate::Result;

/// Payload fields with indexes in `policy_chunks`.
pub const POLICY_INDEXES: &[(&str, FieldType)] = &[
    ("doc_id", FieldType::Keyword),
    ("region", FieldType::Keyword),
    ("topics", FieldType::Keyword),
    ("groups", FieldType::Keyword),
    ("content_hash", FieldType::Keyword),
];
/// Payload fields with indexes in `jobs`.
pub const JOB_INDEXES: &[(&str, FieldType)] = &[
    ("city", FieldType::Keyword),
    ("district", FieldType::Keyword),
    ("employment_type", FieldType::Keyword),
    ("salary_unit", FieldType::Keyword),
    ("groups", FieldType::Keyword),
    ("education", FieldType::Keyword),
    ("salary_min", FieldType::Integer),
    ("salary_max", FieldType::Integer),
    ("posted_day", FieldType::Integer),
    ("expires_day", FieldType::Integer),
];

/// What ingesting one document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New document: this many chunks.
    Added(usize),
    /// Changed document: old chunks replaced by this many.
    Replaced(usize),
    /// Same content as stored: nothing done.
    Unchanged,
}

/// A day as an integer (days since 0001-01-01), so validity filters are numeric ranges.
pub fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

/// A stable point id from a key.
pub fn point_id(key: &str) -> u64 {
    let h = Sha256::digest(key.as_bytes());
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & ((1 << 63) - 1)
}

/// Group names from a document's topics (front matter uses Chinese topic words).
pub fn groups_of_topics(topics: &[String]) -> Vec<&'static str> {
    let map: [(&str, &str); 9] = [
        ("高校毕业生", "graduate"),
        ("农民工", "migrant"),
        ("农村务工", "migrant"),
        ("灵活就业", "flexible"),
        ("零工", "flexible"),
        ("退役军人", "veteran"),
        ("残疾人", "disabled"),
        ("妇女", "women"),
        ("老年", "elderly"),
    ];
    let mut out: Vec<&str> = Vec::new();
    for t in topics {
        for (k, g) in map {
            if t.contains(k) && !out.contains(&g) {
                out.push(g);
            }
        }
    }
    out
}

/// Indexes into a store with the embedder and BM25 encoder.
pub struct Indexer<'a> {
    /// Where points go.
    pub store: &'a dyn VectorStore,
    /// Dense vectors.
    pub embedder: &'a Embedder,
    /// Sparse vectors.
    pub bm25: &'a Bm25,
    /// Chunk sizes.
    pub chunking: ChunkConfig,
}

impl Indexer<'_> {
    /// Creates both collections and their payload indexes.
    pub fn ensure_collections(&self) -> Result<()> {
        ensure_collections(self.store)
    }

    fn stored_hash(&self, collection: &str, key: &str, value: &str) -> Result<Option<String>> {
        let hits = self.store.scroll(
            collection,
            &Filter::default().and(Condition::AnyOf {
                key: key.into(),
                values: vec![value.into()],
            }),
            1,
        )?;
        Ok(hits
            .first()
            .and_then(|h| h.payload.get("content_hash"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Indexes a document under `doc_id`; `progress(done, total)` is called per batch.
    pub fn ingest_document(
        &self,
        doc_id: &str,
        doc: &Document,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Outcome> {
        let cfg = serde_json::to_string(&self.chunking).unwrap_or_default();
        // The rules that cut the chunks count as much as their sizes.
        let hash = hex_hash(&format!(
            "{}|{cfg}|chunking {}",
            doc.content_hash(),
            knowledge::chunking::VERSION
        ));
        let old = self.stored_hash(POLICY_CHUNKS, "doc_id", doc_id)?;
        if old.as_deref() == Some(hash.as_str()) {
            return Ok(Outcome::Unchanged);
        }
        let chunks = chunk(doc, &self.chunking);
        let m = &doc.metadata;
        let groups = groups_of_topics(&m.topics);
        let mut done = 0;
        for batch in chunks.chunks(32) {
            // The title and section go into the embedded text: they carry much of a chunk's
            // meaning (a bare article often never names its subject).
            let texts: Vec<String> = batch
                .iter()
                .map(|c| format!("{}｜{}\n{}", m.title, c.section(), c.text))
                .collect();
            let dense = self.embedder.embed_passages(&texts)?;
            let points = batch
                .iter()
                .zip(dense)
                .zip(&texts)
                .map(|((c, d), t)| {
                    let payload = json!({
                        "doc_id": doc_id, "title": m.title, "doc_number": m.doc_number, "issuer": m.issuer,
                        "date": m.date, "region": m.region, "topics": m.topics, "groups": groups,
                        "section": c.section(), "section_path": c.section_path, "article": c.article,
                        "text": c.text, "chunk_index": c.index, "content_hash": hash,
                    });
                    Point { id: point_id(&format!("{doc_id}#{}", c.index)), dense: d, sparse: self.bm25.document(t), payload: as_map(payload) }
                })
                .collect();
            self.store.upsert(POLICY_CHUNKS, points)?;
            done += batch.len();
            progress(done, chunks.len());
        }
        // New chunks are in; now drop the old version's (its chunk count may have differed).
        if let Some(old) = &old {
            self.store.delete(
                POLICY_CHUNKS,
                &Filter::default()
                    .and(Condition::AnyOf {
                        key: "doc_id".into(),
                        values: vec![doc_id.into()],
                    })
                    .and(Condition::AnyOf {
                        key: "content_hash".into(),
                        values: vec![old.clone()],
                    }),
            )?;
        }
        self.store.flush()?;
        Ok(if old.is_some() {
            Outcome::Replaced(chunks.len())
        } else {
            Outcome::Added(chunks.len())
        })
    }

    /// Removes a document's chunks; returns how many there were.
    pub fn remove_document(&self, doc_id: &str) -> Result<usize> {
        let f = Filter::default().and(Condition::AnyOf {
            key: "doc_id".into(),
            values: vec![doc_id.into()],
        });
        let n = self.store.count(POLICY_CHUNKS, &f)?;
        if n > 0 {
            self.store.delete(POLICY_CHUNKS, &f)?;
            self.store.flush()?;
        }
        Ok(n)
    }

    /// Indexes job listings; unchanged ones (same content hash) are skipped. Returns
    /// `(indexed, unchanged)`.
    pub fn ingest_jobs(
        &self,
        listings: &[JobListing],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(usize, usize)> {
        let stored: HashMap<String, String> = self
            .store
            .scroll(JOBS, &Filter::default(), usize::MAX / 2)?
            .into_iter()
            .filter_map(|h| {
                Some((
                    h.payload.get("id")?.as_str()?.to_string(),
                    h.payload.get("content_hash")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let todo: Vec<(&JobListing, String)> = listings
            .iter()
            .map(|l| (l, hex_hash(&serde_json::to_string(l).unwrap_or_default())))
            .filter(|(l, h)| stored.get(&l.id) != Some(h))
            .collect();
        let mut done = 0;
        for batch in todo.chunks(32) {
            let texts: Vec<String> = batch.iter().map(|(l, _)| l.search_text()).collect();
            let dense = self.embedder.embed_passages(&texts)?;
            let points = batch
                .iter()
                .zip(dense)
                .zip(&texts)
                .map(|(((l, h), d), t)| {
                    let mut payload = as_map(serde_json::to_value(l).unwrap_or(Value::Null));
                    payload.insert("posted_day".into(), json!(day_number(l.posted_at)));
                    payload.insert("expires_day".into(), json!(day_number(l.expires_at)));
                    payload.insert("content_hash".into(), json!(h));
                    Point {
                        id: point_id(&format!("job#{}", l.id)),
                        dense: d,
                        sparse: self.bm25.document(t),
                        payload,
                    }
                })
                .collect();
            self.store.upsert(JOBS, points)?;
            done += batch.len();
            progress(done, todo.len());
        }
        self.store.flush()?;
        Ok((todo.len(), listings.len() - todo.len()))
    }
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn hex_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates both collections and their payload indexes (idempotent).
pub fn ensure_collections(store: &dyn VectorStore) -> Result<()> {
    store.ensure_collection(POLICY_CHUNKS, POLICY_INDEXES)?;
    store.ensure_collection(JOBS, JOB_INDEXES)
}

/// The documents of the knowledge base as their stored chunks spell them (title, 文号 and the
/// chunk texts in order), for checks that must follow what is ingested now — a document
/// removed with `leye ingest --remove` is gone from here too. Reads every chunk's payload once.
pub fn stored_documents(
    store: &dyn VectorStore,
) -> Result<Vec<knowledge::benefits::check::DocText>> {
    struct Parts {
        title: String,
        doc_number: String,
        chunks: Vec<(u64, String)>,
    }
    let hits = store.scroll(POLICY_CHUNKS, &Filter::default(), usize::MAX)?;
    let mut docs: std::collections::BTreeMap<String, Parts> = Default::default();
    let text = |p: &Map<String, Value>, k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for h in hits {
        let p = &h.payload;
        let entry = docs.entry(text(p, "doc_id")).or_insert_with(|| Parts {
            title: text(p, "title"),
            doc_number: text(p, "doc_number"),
            chunks: Vec::new(),
        });
        let index = p.get("chunk_index").and_then(Value::as_u64).unwrap_or(0);
        entry.chunks.push((index, text(p, "text")));
    }
    Ok(docs
        .into_values()
        .map(|mut d| {
            d.chunks.sort_by_key(|c| c.0);
            knowledge::benefits::check::DocText::from_chunks(
                &d.title,
                &d.doc_number,
                d.chunks.iter().map(|c| c.1.as_str()),
            )
        })
        .collect())
}
