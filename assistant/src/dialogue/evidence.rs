//! The evidence gate: retrieve passages for a question and decide whether they cover it.
//! Nothing relevant means "not covered" and a counselor offer — never a guess.

use retrieval::hybrid::PolicyQuery;
use retrieval::store::Mode;

use super::verify::Evidence;
use super::{blocking, Assistant, TurnError};

impl Assistant {
    /// Retrieves evidence; `None` when the gate finds nothing relevant.
    pub(super) async fn evidence(&self, query: &str) -> Result<Option<Vec<Evidence>>, TurnError> {
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
        let coverage = term_coverage(query, &passages);
        tracing::debug!(best_dense, coverage, "evidence gate");
        if hybrid.is_empty()
            || best_dense < self.cfg.min_dense_score
            || coverage < self.cfg.min_term_overlap
        {
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

/// Share of the question's key terms (Chinese character pairs, minus question words) that
/// occur in the passages.
fn term_coverage(question: &str, passages: &str) -> f32 {
    const FILLER: &[&str] = &[
        "什么", "哪些", "怎么", "如何", "可以", "是否", "多少", "请问", "我想", "我是", "有没",
        "没有", "能不", "不能", "需要", "的话", "一下", "吗", "呢",
    ];
    let mut q = question.to_string();
    for f in FILLER {
        q = q.replace(f, " ");
    }
    let chars: Vec<char> = q.chars().collect();
    let pairs: Vec<String> = chars
        .windows(2)
        .filter(|w| w.iter().all(|c| ('\u{4e00}'..='\u{9fff}').contains(c)))
        .map(|w| w.iter().collect())
        .collect();
    if pairs.is_empty() {
        return 0.0;
    }
    pairs
        .iter()
        .filter(|p| passages.contains(p.as_str()))
        .count() as f32
        / pairs.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_question_terms_in_passages() {
        let c = term_coverage("高校毕业生有哪些求职补贴？", "对高校毕业生给予求职补贴");
        assert!(c > 0.8, "{c}");
        let c = term_coverage("美国签证怎么办理？", "对高校毕业生给予求职补贴");
        assert!(c < 0.2, "{c}");
    }
}
