//! The evidence gate: retrieve passages for a question and decide whether they cover it.
//! Nothing relevant means "not covered" and a counselor offer — never a guess.

use knowledge::metadata::places_named;
use retrieval::hybrid::{PolicyHit, PolicyQuery, RERANK_CANDIDATES};
use retrieval::store::Mode;

use super::focus::key_terms;
use super::seam::Retrieve;
use super::verify::Evidence;
use super::{blocking, Assistant, DialogueConfig, Outcome, TurnError};
use serde_json::json;

/// What the gate looks at for one question.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GateFigures {
    /// Passages retrieved (reranked).
    pub hits: usize,
    /// The best e5 cosine between the question and any passage.
    pub best_dense: f32,
    /// The best share of the question's key terms held by one evidence sentence. One
    /// sentence, not the passages together: three passages hold most everyday words between
    /// them ("住房公积金贷款最高能贷多少？" found 住房, 贷款, 最高 in three laws), while the
    /// sentence that answers holds the question's topic together.
    pub coverage: f32,
    /// How many key terms that sentence holds.
    pub shared: usize,
    /// The question names only places outside Shandong, so only national documents remain:
    /// they answer only when one sentence holds most of its terms. A national law shares
    /// everyday words with any local question ("北京市的积分落户政策是怎么规定的？" and
    /// "……依法享受税收优惠等政策" share 政策, 规定), and what another province decided is
    /// in none of them.
    pub elsewhere: bool,
}

impl GateFigures {
    /// Whether the passages cover the question under `cfg`'s thresholds. A long message that
    /// tells a story ("干了两个月一分钱没拿到，……") holds many terms no document has; enough
    /// terms shared with one sentence count as coverage too.
    pub fn passes(&self, cfg: &DialogueConfig) -> bool {
        self.passes_at(cfg.min_dense_score, cfg.min_term_overlap, MIN_SHARED_TERMS)
    }

    /// [`Self::passes`] at explicit thresholds (the evaluation's sweep).
    pub fn passes_at(&self, min_dense: f32, min_overlap: f32, min_shared: usize) -> bool {
        let covered =
            self.coverage >= min_overlap || (!self.elsewhere && self.shared >= min_shared);
        self.hits > 0 && self.best_dense >= min_dense && covered
    }
}

/// Everyday short forms and words, and the words the documents use for them.
const SHORT_FORMS: &[(&str, &str)] = &[
    ("社保", "社会保险"),
    ("医保", "医疗保险"),
    ("失业金", "失业保险金"),
    ("养老金", "基本养老金"),
    ("残疾证", "残疾人证"),
    ("低保", "最低生活保障"),
    ("欠薪", "拖欠工资"),
    ("退伍", "退役"),
    ("续签", "续订"),
    ("辞退", "解除劳动合同"),
    ("开除", "解除劳动合同"),
    ("欠缴", "未按时足额缴纳"),
    ("国企", "国有企业"),
];

/// The question with the documents' words for its short forms added
/// ("单位欠缴社保会有什么后果？" + 社会保险): the law says 社会保险费, never 社保, and the
/// search and the gate would otherwise miss the article that answers.
pub fn with_document_words(query: &str) -> String {
    let mut out = query.to_string();
    for (short, full) in SHORT_FORMS {
        if query.contains(short) && !query.contains(full) {
            out.push(' ');
            out.push_str(full);
        }
    }
    out
}

/// Retrieves the `k` passages an answer would be given and the gate's figures for them.
pub fn retrieve(
    kb: &dyn Retrieve,
    query: &str,
    k: usize,
) -> Result<(Vec<PolicyHit>, GateFigures), retrieval::Error> {
    let expanded = with_document_words(query);
    let query = expanded.as_str();
    // A question about another place is not answered by a document that does not apply there
    // ("广东省的最低工资标准" by a Shandong regulation's 最低工资标准 article): the candidates
    // are read wider and those documents left out before the best `k` are kept.
    let places = places_named(query);
    let wide = if places.any() {
        k.max(RERANK_CANDIDATES)
    } else {
        k
    };
    let applies = |h: &PolicyHit| !places.excludes(&h.region);
    let mut hybrid = kb.search_policies(&PolicyQuery::new(query.to_string(), wide))?;
    hybrid.retain(applies);
    hybrid.truncate(k);
    let mut dq = PolicyQuery::new(query.to_string(), if places.any() { wide } else { 1 });
    dq.mode = Mode::Dense;
    let best_dense = kb
        .search_policies(&dq)?
        .into_iter()
        .find(applies)
        .map_or(0.0, |h| h.score);
    let (coverage, shared) = hybrid
        .iter()
        .flat_map(|h| super::verify::split_sentences(&h.text))
        .map(|s| term_coverage(query, &s))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, 0));
    let figures = GateFigures {
        hits: hybrid.len(),
        best_dense,
        coverage,
        shared,
        elsewhere: places.only_elsewhere(),
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
                "elsewhere": g.elsewhere,
                "passed": passed,
            }),
        );
        if !passed {
            return Ok(None);
        }
        Ok(Some(numbered(hybrid)))
    }
}

/// The passages as the model's evidence, numbered from 1 in their order.
pub fn numbered(hits: Vec<PolicyHit>) -> Vec<Evidence> {
    hits.into_iter()
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
        .collect()
}

/// Key terms shared with one evidence sentence that count as coverage whatever the question's
/// length. Chosen with `leye-eval gate` on 370 labelled questions (see README).
pub const MIN_SHARED_TERMS: usize = 3;

/// Share of the question's key terms (Chinese character pairs, minus question words) that
/// occur in the text, and how many do.
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
    use retrieval::hybrid::{JobHit, JobQuery};

    #[test]
    fn short_forms_get_the_documents_words() {
        assert_eq!(
            with_document_words("单位欠缴社保会有什么后果？"),
            "单位欠缴社保会有什么后果？ 社会保险 未按时足额缴纳"
        );
        assert_eq!(with_document_words("社会保险怎么交？"), "社会保险怎么交？");
        assert_eq!(
            with_document_words("国企拖欠货款合法吗？"),
            "国企拖欠货款合法吗？ 国有企业"
        );
        // "社保" inside "社会保险" is not a short form.
        assert_eq!(
            with_document_words("高校毕业生求职补贴"),
            "高校毕业生求职补贴"
        );
    }

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

    /// Two passages on the same subject: a Shandong regulation's, and a national law's.
    struct TwoRegions;

    impl Retrieve for TwoRegions {
        fn embed_queries(&self, _: &[&str]) -> Result<Vec<Vec<f32>>, models::Error> {
            Ok(vec![])
        }
        fn search_policies(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>, retrieval::Error> {
            let hit = |title: &str, region: &str, text: &str, score| PolicyHit {
                score,
                doc_id: title.into(),
                title: title.into(),
                doc_number: String::new(),
                region: region.into(),
                section: String::new(),
                article: None,
                text: text.into(),
            };
            let mut hits = vec![
                hit(
                    "山东省劳动合同条例",
                    "山东省",
                    "劳动者的工资不得低于本省最低工资标准。",
                    0.9,
                ),
                hit(
                    "中华人民共和国就业促进法",
                    "全国",
                    "最低工资的具体标准由省、自治区、直辖市人民政府规定。",
                    0.8,
                ),
            ];
            hits.truncate(q.limit);
            Ok(hits)
        }
        fn search_jobs(&self, _: &JobQuery) -> Result<Vec<JobHit>, retrieval::Error> {
            Ok(vec![])
        }
        fn districts(&self) -> Result<Vec<String>, retrieval::Error> {
            Ok(vec![])
        }
    }

    #[test]
    fn a_question_about_another_province_gets_no_shandong_document() {
        let (hits, g) = retrieve(&TwoRegions, "广东省的最低工资标准是多少？", 1).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].region, "全国");
        // The gate's dense score is the applicable passage's, not the excluded one's.
        assert!((g.best_dense - 0.8).abs() < 1e-6, "{g:?}");
        // Only the national law's sentence may answer, and it holds too few of the terms;
        // shared terms alone would let it through for a question about Shandong.
        assert!(g.elsewhere && !g.passes_at(0.0, 0.99, 1), "{g:?}");
        let mut here = g;
        here.elsewhere = false;
        assert!(here.passes_at(0.0, 0.99, 1), "{here:?}");
        // Without another place named, the best passage stays first.
        let (hits, _) = retrieve(&TwoRegions, "最低工资标准是多少？", 1).unwrap();
        assert_eq!(hits[0].region, "山东省");
        let (hits, _) = retrieve(&TwoRegions, "山东的最低工资标准是多少？", 1).unwrap();
        assert_eq!(hits[0].region, "山东省");
    }
}
