//! Evaluation and benchmarks for 乐业助手, through the assistant's public library API.
//!
//! # Layout
//! - [`metrics`]: recall@k, MRR and nDCG over ranked relevance lists.
//! - [`retrieval_eval`]: the retrieval evaluation set (`eval/data/retrieval.jsonl`) run in
//!   dense, BM25 and hybrid mode.
//! - [`answers_eval`]: answer quality (key facts, citations, invented numbers, vacuous
//!   answers, gate errors) on `eval/data/answers.jsonl`.
//! - [`evidence_eval`]: whether the key facts reach the retrieved passages, the prompt and
//!   the extractive answer (no model).
//! - [`gate_eval`]: the evidence gate on covered / not-covered questions, with a sweep.
//! - [`jobs_eval`]: job search on labelled questions: constraint precision, top-5 hits.
//! - [`latency`]: percentiles of timing samples.
//! - [`router_eval`]: the router's labelled set, precision and recall per intent.
//! - [`claims_eval`]: 政策申领 scenarios: qualified precision/recall per benefit card.
#![warn(missing_docs)]

pub mod answers_eval;
pub mod claims_eval;
pub mod evidence_eval;
pub mod gate_eval;
pub mod jobs_eval;
pub mod latency;
pub mod metrics;
pub mod retrieval_eval;
pub mod router_eval;

/// Reads a JSON-lines evaluation set: one item per non-empty line; errors name file and line.
pub fn load_jsonl<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> anyhow::Result<Vec<T>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
