//! `leye-eval bench`: ingest throughput and query latency on the real corpus, then on a
//! synthetic store of many chunks (random unit vectors and BM25 vectors of sampled corpus
//! sentences: the store's cost at scale, with embedding time excluded and reported apart).

use std::time::{Duration, Instant};

use assistant::config::Config;
use assistant::knowledge_base::KnowledgeBase;
use assistant::retrieval::edge::EdgeStore;
use assistant::retrieval::hybrid::PolicyQuery;
use assistant::retrieval::lexical::Bm25;
use assistant::retrieval::store::{Filter, Mode, Point, Search, VectorStore, POLICY_CHUNKS};
use serde_json::json;

use eval::latency::percentile;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|_| (self.next() % 20_000) as f32 / 10_000.0 - 1.0)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

pub fn run(cfg: &Config, synthetic: usize, queries: usize) -> anyhow::Result<()> {
    let embedder = assistant::models::embed::Embedder::load(
        &assistant::model_store::embedder_path(cfg, &mut |_| {})?,
    )?;
    let items = eval::retrieval_eval::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/retrieval.jsonl"
    )))?;
    let questions: Vec<String> = items
        .iter()
        .map(|i| match i {
            eval::retrieval_eval::Item::Policy { question, .. }
            | eval::retrieval_eval::Item::Job { question, .. } => question.clone(),
        })
        .cycle()
        .take(queries.max(1))
        .collect();

    // 1. The real corpus, from scratch.
    let dir = tempfile_dir()?;
    let kb = KnowledgeBase::with_store(
        Box::new(EdgeStore::open(&dir.join("corpus"))?),
        embedder,
        Default::default(),
    )?;
    let files = KnowledgeBase::collect_files(&super::default_corpus())?;
    let t = Instant::now();
    let mut units = 0usize;
    for f in &files {
        let mut last = 0;
        kb.ingest_file(f, &mut |done, _| last = done);
        units += last;
    }
    let took = t.elapsed();
    println!("corpus: {} files, {units} chunks+listings ingested in {:.1} s = {:.1} per s (parse, chunk, e5 embed, BM25, upsert)", files.len(), took.as_secs_f64(), units as f64 / took.as_secs_f64());
    let mut full = Vec::new();
    for q in &questions {
        let t = Instant::now();
        kb.retriever()
            .search_policies(&PolicyQuery::new(q.clone(), 5))?;
        full.push(t.elapsed());
    }
    println!("corpus query (e5 query embedding + hybrid search): p50 {:.1} ms, p95 {:.1} ms over {} queries", ms(percentile(&full, 50.0)), ms(percentile(&full, 95.0)), full.len());

    // 2. Synthetic store.
    let bm25 = Bm25::new()?;
    let sentences: Vec<String> = kb
        .store()
        .scroll(POLICY_CHUNKS, &Filter::default(), 100_000)?
        .iter()
        .filter_map(|h| {
            h.payload
                .get("text")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .flat_map(|t| t.split('。').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| s.chars().count() > 8)
        .collect();
    anyhow::ensure!(!sentences.is_empty(), "no corpus sentences to sample");
    let sparse: Vec<_> = sentences.iter().map(|s| bm25.document(s)).collect();
    let store = EdgeStore::open(&dir.join("synthetic"))?;
    store.ensure_collection(
        "synthetic",
        &[("doc_id", assistant::retrieval::store::FieldType::Keyword)],
    )?;
    let mut rng = Lcg(42);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..synthetic {
        let s = (rng.next() as usize) % sentences.len();
        batch.push(Point {
            id: i as u64,
            dense: rng.unit(assistant::retrieval::DENSE_DIM),
            sparse: sparse[s].clone(),
            payload: json!({"doc_id": format!("d{}", i % 500), "text": sentences[s]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        });
        if batch.len() == 1000 {
            store.upsert("synthetic", std::mem::take(&mut batch))?;
        }
        if i % 20_000 == 19_999 {
            eprintln!("  {} points…", i + 1);
        }
    }
    store.upsert("synthetic", batch)?;
    store.flush()?;
    let took = t.elapsed();
    println!("synthetic: {synthetic} points upserted in {:.1} s = {:.0} points/s (store only; embedding excluded)", took.as_secs_f64(), synthetic as f64 / took.as_secs_f64());
    let (mut search_only, mut with_embed) = (Vec::new(), Vec::new());
    for q in &questions {
        let t0 = Instant::now();
        let dense = kb.retriever().embedder.embed_query(q)?;
        let s = Search {
            dense,
            sparse: bm25.query(q),
            filter: Filter::default(),
            limit: 5,
            mode: Mode::Hybrid,
            prefetch: 40,
        };
        let t1 = Instant::now();
        store.search("synthetic", &s)?;
        search_only.push(t1.elapsed());
        with_embed.push(t0.elapsed());
    }
    println!(
        "synthetic query over {synthetic} points: hybrid search p50 {:.1} ms, p95 {:.1} ms; with e5 query embedding p50 {:.1} ms, p95 {:.1} ms",
        ms(percentile(&search_only, 50.0)),
        ms(percentile(&search_only, 95.0)),
        ms(percentile(&with_embed, 50.0)),
        ms(percentile(&with_embed, 95.0))
    );
    // Shards flush on drop: drop them before their folders go.
    drop(store);
    drop(kb);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("leye-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
