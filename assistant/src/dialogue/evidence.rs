//! The evidence gate: retrieve passages for a question and decide whether they cover it.
//! Nothing relevant means "not covered" and a counselor offer — never a guess.

use retrieval::hybrid::PolicyQuery;
use retrieval::store::Mode;

use super::focus::key_terms;
use super::verify::Evidence;
use super::{blocking, Assistant, Outcome, TurnError};
use serde_json::json;

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
        let (hybrid, dense) = blocking(move || {
            let hybrid = kb.search_policies(&PolicyQuery::new(q.clone(), k))?;
            let mut dq = PolicyQuery::new(q, 1);
            dq.mode = Mode::Dense;
            let dense = kb.search_policies(&dq)?;
            Ok::<_, retrieval::Error>((hybrid, dense))
        })
        .await?;
        let best_dense = dense.first().map_or(0.0, |h| h.score);
        let passages: String = hybrid.iter().map(|h| h.text.as_str()).collect();
        let (coverage, shared) = term_coverage(query, &passages);
        tracing::debug!(best_dense, coverage, shared, "evidence gate");
        // A long message that tells a story ("干了两个月一分钱没拿到，……") holds many terms no
        // document has; enough shared terms count as coverage too.
        let covered = coverage >= self.cfg.min_term_overlap || shared >= MIN_SHARED_TERMS;
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
                "best_dense": best_dense,
                "coverage": coverage,
                "shared_terms": shared,
                "passed": !hybrid.is_empty() && best_dense >= self.cfg.min_dense_score && covered,
            }),
        );
        if hybrid.is_empty() || best_dense < self.cfg.min_dense_score || !covered {
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
const MIN_SHARED_TERMS: usize = 5;

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
