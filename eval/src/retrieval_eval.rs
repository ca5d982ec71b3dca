//! The retrieval evaluation: questions with known answers, run in every ranking mode.
//!
//! Policy items name the document and a phrase of the passage that answers them: a hit is
//! relevant when it comes from that document and contains the phrase. Job items name the
//! filters a citizen's question implies and the job title that answers it: with the filters
//! applied, a hit is relevant when it has that title. Job validity is judged on a fixed day
//! ([`EVAL_DAY`]) so results do not drift as the sample listings age.

use std::path::Path;
use std::time::{Duration, Instant};

use assistant::knowledge::jobs::{EmploymentType, Group};
use assistant::knowledge_base::KnowledgeBase;
use assistant::retrieval::hybrid::{JobQuery, PolicyQuery};
use assistant::retrieval::store::{Condition, Filter, Mode, POLICY_CHUNKS};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::metrics::{hit_at, mean, ndcg_at, reciprocal_rank, Ranked};

/// The day job validity is judged on.
pub const EVAL_DAY: (i32, u32, u32) = (2026, 11, 25);

/// Filters a job question implies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobFilters {
    /// Cities.
    pub cities: Vec<String>,
    /// Employment types (schema names).
    pub types: Vec<String>,
    /// Groups (schema names).
    pub groups: Vec<String>,
}

/// One evaluation item.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// A policy question.
    Policy {
        /// Item id.
        id: String,
        /// The question.
        question: String,
        /// Expected document (file stem).
        doc_id: String,
        /// A phrase of the answering passage.
        contains: String,
    },
    /// A job question.
    Job {
        /// Item id.
        id: String,
        /// The question.
        question: String,
        /// Expected job title.
        title: String,
        /// Implied filters.
        filters: JobFilters,
    },
}

/// Loads `eval/data/retrieval.jsonl` (or another file of the same shape).
pub fn load(path: &Path) -> anyhow::Result<Vec<Item>> {
    crate::load_jsonl(path)
}

/// Metrics for one mode and item kind.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scores {
    /// Ranking mode.
    pub mode: String,
    /// `policy`, `job` or `all`.
    pub kind: String,
    /// Queries.
    pub n: usize,
    /// Recall@1.
    pub recall_at_1: f64,
    /// Recall@5.
    pub recall_at_5: f64,
    /// Share with a relevant hit in the first three (what the answer is given).
    pub recall_at_3: f64,
    /// Mean reciprocal rank (top 10).
    pub mrr: f64,
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// Median query latency (embedding + search).
    pub p50_ms: f64,
    /// 95th percentile latency.
    pub p95_ms: f64,
}

fn scores(mode: &str, kind: &str, rs: &[Ranked], times: &[Duration]) -> Scores {
    Scores {
        mode: mode.into(),
        kind: kind.into(),
        n: rs.len(),
        recall_at_1: mean(rs, |r| hit_at(r, 1)),
        recall_at_5: mean(rs, |r| hit_at(r, 5)),
        recall_at_3: mean(rs, |r| hit_at(r, 3)),
        mrr: mean(rs, reciprocal_rank),
        ndcg_at_10: mean(rs, |r| ndcg_at(r, 10)),
        p50_ms: crate::latency::percentile(times, 50.0).as_secs_f64() * 1000.0,
        p95_ms: crate::latency::percentile(times, 95.0).as_secs_f64() * 1000.0,
    }
}

/// Runs every item in every mode against an ingested knowledge base.
pub fn run(kb: &KnowledgeBase, items: &[Item]) -> anyhow::Result<Vec<Scores>> {
    let day = NaiveDate::from_ymd_opt(EVAL_DAY.0, EVAL_DAY.1, EVAL_DAY.2)
        .ok_or_else(|| anyhow::anyhow!("bad eval day"))?;
    let mut out = Vec::new();
    // Relevant chunks in the index per policy item: the same for every mode, counted once.
    let totals = items
        .iter()
        .map(|i| match i {
            Item::Policy {
                doc_id, contains, ..
            } => relevant_chunks(kb, doc_id, contains),
            Item::Job { .. } => Ok(0),
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    // `rerank` is what the dialogue uses: hybrid and BM25 candidates, reranked.
    for (mode, name) in [
        (Mode::Dense, "dense"),
        (Mode::Sparse, "bm25"),
        (Mode::Hybrid, "hybrid"),
        (Mode::Hybrid, "rerank"),
    ] {
        let (mut pol, mut job, mut pol_t, mut job_t) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (item, &total) in items.iter().zip(&totals) {
            match item {
                Item::Policy {
                    question,
                    doc_id,
                    contains,
                    ..
                } => {
                    let t = Instant::now();
                    let q = PolicyQuery {
                        mode,
                        ..PolicyQuery::new(question.clone(), 10)
                    };
                    let hits = if name == "rerank" {
                        kb.retriever().search_policies_reranked(&q)?
                    } else {
                        kb.retriever().search_policies(&q)?
                    };
                    pol_t.push(t.elapsed());
                    let relevant = hits
                        .iter()
                        .map(|h| h.doc_id == *doc_id && h.text.contains(contains.as_str()))
                        .collect();
                    pol.push(Ranked {
                        relevant,
                        total_relevant: total,
                    });
                }
                Item::Job {
                    question,
                    title,
                    filters,
                    ..
                } => {
                    let types = filters
                        .types
                        .iter()
                        .filter_map(|t| EmploymentType::ALL.into_iter().find(|x| x.as_str() == t))
                        .collect();
                    let groups = filters
                        .groups
                        .iter()
                        .filter_map(|g| Group::ALL.into_iter().find(|x| x.as_str() == g))
                        .collect();
                    let q = JobQuery {
                        text: question.clone(),
                        cities: filters.cities.clone(),
                        districts: vec![],
                        types,
                        min_salary: None,
                        max_salary: None,
                        groups,
                        educations: Vec::new(),
                        today: day,
                        limit: 10,
                        mode,
                    };
                    let t = Instant::now();
                    let hits = kb.retriever().search_jobs(&q)?;
                    job_t.push(t.elapsed());
                    let relevant: Vec<bool> =
                        hits.iter().map(|h| h.listing.title == *title).collect();
                    let total = relevant.iter().filter(|&&x| x).count().max(1);
                    job.push(Ranked {
                        relevant,
                        total_relevant: total,
                    });
                }
            }
        }
        out.push(scores(name, "policy", &pol, &pol_t));
        out.push(scores(name, "job", &job, &job_t));
        let all: Vec<Ranked> = pol.iter().chain(&job).cloned().collect();
        let all_t: Vec<Duration> = pol_t.iter().chain(&job_t).copied().collect();
        out.push(scores(name, "all", &all, &all_t));
    }
    Ok(out)
}

/// Chunks of `doc_id` whose text contains `phrase`.
fn relevant_chunks(kb: &KnowledgeBase, doc_id: &str, phrase: &str) -> anyhow::Result<usize> {
    let doc = Filter::default().and(Condition::AnyOf {
        key: "doc_id".into(),
        values: vec![doc_id.to_string()],
    });
    Ok(kb
        .store()
        .scroll(POLICY_CHUNKS, &doc, 10_000)?
        .iter()
        .filter(|h| {
            h.payload
                .get("text")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.contains(phrase))
        })
        .count())
}
