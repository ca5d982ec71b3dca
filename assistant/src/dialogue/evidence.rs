//! The evidence gate: retrieve passages for a question and decide whether they cover it.
//! Nothing relevant means "not covered" and a counselor offer — never a guess.

use retrieval::hybrid::{PolicyHit, PolicyQuery};
use retrieval::store::Mode;

use super::focus::key_terms;
use super::seam::Retrieve;
use super::verify::Evidence;
use super::{blocking, Assistant, DialogueConfig, Outcome, TurnError};
use serde_json::json;

/// What the gate looks at for one question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateFigures {
    /// Passages retrieved (reranked).
    pub hits: usize,
    /// The best e5 cosine between the question and any passage.
    pub best_dense: f32,
    /// Share of the question's key terms found in the passages.
    pub coverage: f32,
    /// How many of them.
    pub shared: usize,
}

impl GateFigures {
    /// Whether the passages cover the question under `cfg`'s thresholds. A long message that
    /// tells a story ("干了两个月一分钱没拿到，……") holds many terms no document has; enough
    /// shared terms count as coverage too.
    pub fn passes(&self, cfg: &DialogueConfig) -> bool {
        let covered = self.coverage >= cfg.min_term_overlap || self.shared >= MIN_SHARED_TERMS;
        self.hits > 0 && self.best_dense >= cfg.min_dense_score && covered
    }
}

/// Retrieves the `k` passages an answer would be given and the gate's figures for them.
pub fn retrieve(
    kb: &dyn Retrieve,
    query: &str,
    k: usize,
) -> Result<(Vec<PolicyHit>, GateFigures), retrieval::Error> {
    let hybrid = kb.search_policies(&PolicyQuery::new(query.to_string(), k))?;
    let mut dq = PolicyQuery::new(query.to_string(), 1);
    dq.mode = Mode::Dense;
    let best_dense = kb.search_policies(&dq)?.first().map_or(0.0, |h| h.score);
    let passages: String = hybrid.iter().map(|h| h.text.as_str()).collect();
    let (coverage, shared) = term_coverage(query, &passages);
    let figures = GateFigures {
        hits: hybrid.len(),
        best_dense,
        coverage,
        shared,
    };
    Ok((hybrid, figures))
}

impl Assistant {
    /// Retrieves evidence; `None` when the gate finds nothing relevant.
    pub(super) async fn evidence(
        &self,
        query: &str,
        out: &mut Outcome,
    ) -> Result<Option<Vec<Evidence>>, TurnError> {
        let kb = self.kb.clone();
        let q = query.to_string();
        let k = self.cfg.evidence_k;
        let (hybrid, g) = blocking(move || retrieve(kb.as_ref(), &q, k)).await?;
        let passed = g.passes(&self.cfg);
        tracing::debug!(
            best_dense = g.best_dense,
            coverage = g.coverage,
            shared = g.shared,
            passed,
            "evidence gate"
        );
        let hits: Vec<serde_json::Value> = hybrid
            .iter()
            .map(|h| {
                json!({
                    "doc_id": h.doc_id,
                    "title": h.title,
                    "section": h.section,
                    "article": h.article,
                    "score": h.score,
                })
            })
            .collect();
        out.trace.insert("query".into(), json!(query));
        out.trace.insert("hits".into(), json!(hits));
        out.trace.insert(
            "gate".into(),
            json!({
                "best_dense": g.best_dense,
                "coverage": g.coverage,
                "shared_terms": g.shared,
                "passed": passed,
            }),
        );
        if !passed {
            return Ok(None);
        }
        Ok(Some(
            hybrid
                .into_iter()
                .enumerate()
                .map(|(i, h)| Evidence {
                    n: i + 1,
                    doc_id: h.doc_id,
                    title: h.title,
                    doc_number: h.doc_number,
                    section: h.section,
                    article: h.article,
                    text: h.text,
                })
                .collect(),
        ))
    }
}

/// Key terms shared with the passages that count as coverage whatever the question's length.
pub const MIN_SHARED_TERMS: usize = 5;

/// Share of the question's key terms (Chinese character pairs, minus question words) that
/// occur in the passages, and how many do.
fn term_coverage(question: &str, passages: &str) -> (f32, usize) {
    let terms = key_terms(question);
    if terms.is_empty() {
        return (0.0, 0);
    }
    let have = key_terms(passages);
    let shared = terms.iter().filter(|t| have.contains(t)).count();
    (shared as f32 / terms.len() as f32, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_question_terms_in_passages() {
        let (c, _) = term_coverage("高校毕业生有哪些求职补贴？", "对高校毕业生给予求职补贴");
        assert!(c > 0.8, "{c}");
        let (c, n) = term_coverage("美国签证怎么办理？", "对高校毕业生给予求职补贴");
        assert!(c < 0.2 && n == 0, "{c}");
        // A story around the question: a small share, but many shared terms.
        let (c, n) = term_coverage(
            "分包的老板跑了，干了两个月一分钱没拿到，施工总承包单位管不管？",
            "分包单位拖欠农民工工资的，由施工总承包单位先行清偿。",
        );
        assert!(c < 0.5 && n >= MIN_SHARED_TERMS, "{c} {n}");
    }
}
