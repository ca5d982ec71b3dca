//! Reranking of policy passages. Candidates come from the hybrid ranking *and* the BM25
//! ranking, so that fusion never loses a passage BM25 alone finds; each is rescored by how
//! much of the question's key terms it holds, in its best sentence (where the fact is), in the
//! whole passage, and in its title and section (the most specific document wins), with the
//! first-stage ranks as a prior. Character bigrams need no dictionary and cost microseconds;
//! an LLM scorer over 20 passages would cost ~5k prompt tokens (~25 s) per question.

use std::collections::{HashMap, HashSet};

use crate::hybrid::PolicyHit;

/// Question words and fillers: they say what is asked, not what about.
const FILLER: &[&str] = &[
    "什么", "哪些", "哪个", "哪里", "怎么", "如何", "可以", "是否", "多少", "请问", "我想", "我是",
    "有没", "没有", "能不", "不能", "需要", "的话", "一下", "多久", "多长", "时间", "条件", "吗",
    "呢", "吧", "有专", "专门",
];

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// The key terms of a text: pairs of adjacent Chinese characters, question words removed.
pub fn key_terms(text: &str) -> HashSet<(char, char)> {
    let mut t = text.to_string();
    for f in FILLER {
        t = t.replace(f, " ");
    }
    let chars: Vec<char> = t.chars().collect();
    chars
        .windows(2)
        .filter(|w| is_cjk(w[0]) && is_cjk(w[1]))
        .map(|w| (w[0], w[1]))
        .collect()
}

fn share(q: &HashSet<(char, char)>, text: &str) -> f32 {
    if q.is_empty() {
        return 0.0;
    }
    let t = key_terms(text);
    q.iter().filter(|b| t.contains(b)).count() as f32 / q.len() as f32
}

fn best_sentence_share(q: &HashSet<(char, char)>, text: &str) -> f32 {
    text.split(['。', '；', '！', '？', '\n'])
        .map(|s| share(q, s))
        .fold(0.0, f32::max)
}

/// The prefecture-level cities of Shandong: a city's own regulation answers for that city.
const CITIES: &[&str] = &[
    "济南", "青岛", "淄博", "枣庄", "东营", "烟台", "潍坊", "济宁", "泰安", "威海", "日照", "临沂",
    "德州", "聊城", "滨州", "菏泽",
];
/// Added when the passage's document is of the city the question names…
const SAME_CITY: f32 = 0.15;
/// …and taken when it is of another city ("济南重度残疾人…" must not be answered from
/// Qingdao's regulation, however alike the two articles are).
const OTHER_CITY: f32 = 0.3;

/// The locality adjustment of a passage for a question.
fn locality(question: &str, title: &str) -> f32 {
    let asked: Vec<&str> = CITIES
        .iter()
        .copied()
        .filter(|c| question.contains(c))
        .collect();
    if asked.is_empty() {
        return 0.0;
    }
    match CITIES.iter().find(|c| title.contains(*c)) {
        Some(c) if asked.contains(c) => SAME_CITY,
        Some(_) => -OTHER_CITY,
        None => 0.0,
    }
}

/// Raised for a passage that states when its document takes effect ("本法自……起施行") when the
/// question asks when it does: that article is a short line of the last chapter, and the
/// document's name, which the question repeats, is in every passage of it.
const EFFECTIVE_DATE: f32 = 0.3;

/// Whether the question asks when a document takes (or took) effect.
fn asks_effective_date(question: &str) -> bool {
    const WHEN: &[&str] = &[
        "什么时候",
        "何时",
        "哪天",
        "哪一天",
        "哪年",
        "哪一年",
        "几号",
        "日期",
        "啥时候",
        "多会儿",
        "时间",
    ];
    (question.contains("施行") || question.contains("生效"))
        && WHEN.iter().any(|w| question.contains(w))
}

/// Whether the question names the document: most of the title's key terms (without the
/// country's name, which every national law carries) are among the question's. Only the
/// named document's 施行 article is raised; every law has one, and raising them all would
/// push the named law's other passages out.
fn names_title(q: &HashSet<(char, char)>, title: &str) -> bool {
    let t = key_terms(title.trim_start_matches("中华人民共和国"));
    !t.is_empty() && t.iter().filter(|b| q.contains(b)).count() * 2 >= t.len()
}

/// Weights of the reranker's parts (sum 1).
const W_SENTENCE: f32 = 0.4;
const W_PASSAGE: f32 = 0.3;
const W_TITLE: f32 = 0.1;
const W_RANK: f32 = 0.2;

/// Merges the two rankings and returns the best `k` by the reranker's score (stored in
/// `score`).
pub fn rerank(
    question: &str,
    hybrid: Vec<PolicyHit>,
    bm25: Vec<PolicyHit>,
    k: usize,
) -> Vec<PolicyHit> {
    let q = key_terms(question);
    let mut prior: HashMap<(String, String, String), f32> = HashMap::new();
    let mut pool: Vec<PolicyHit> = Vec::new();
    for list in [hybrid, bm25] {
        for (rank, h) in list.into_iter().enumerate() {
            let key = (h.doc_id.clone(), h.section.clone(), h.text.clone());
            let p = 1.0 / (10.0 + rank as f32);
            match prior.get_mut(&key) {
                Some(v) => *v += p,
                None => {
                    prior.insert(key, p);
                    pool.push(h);
                }
            }
        }
    }
    let when_effective = asks_effective_date(question);
    let max_prior = prior.values().copied().fold(f32::MIN_POSITIVE, f32::max);
    for h in &mut pool {
        let key = (h.doc_id.clone(), h.section.clone(), h.text.clone());
        let p = prior.get(&key).copied().unwrap_or(0.0) / max_prior;
        let heading = format!(
            "{}{}{}",
            h.title,
            h.section,
            h.article.as_deref().unwrap_or("")
        );
        h.score = W_SENTENCE * best_sentence_share(&q, &h.text)
            + W_PASSAGE * share(&q, &h.text)
            + W_TITLE * share(&q, &heading)
            + W_RANK * p
            + locality(question, &h.title)
            + if when_effective
                && names_title(&q, &h.title)
                && (h.text.contains("起施行") || h.text.contains("起生效"))
            {
                EFFECTIVE_DATE
            } else {
                0.0
            };
    }
    pool.sort_by(|a, b| b.score.total_cmp(&a.score));
    pool.truncate(k);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, title: &str, text: &str) -> PolicyHit {
        PolicyHit {
            score: 0.0,
            doc_id: doc.into(),
            title: title.into(),
            doc_number: String::new(),
            region: String::new(),
            section: String::new(),
            article: None,
            text: text.into(),
        }
    }

    #[test]
    fn the_city_named_gets_its_own_regulation() {
        let jinan = hit(
            "jn",
            "济南市残疾人保障若干规定",
            "为重度残疾人代缴最低档次养老保险费。",
        );
        let qingdao = hit(
            "qd",
            "青岛市残疾人保障条例",
            "重度残疾人由政府代缴养老保险费。",
        );
        let out = rerank(
            "济南重度残疾人参加养老保险，政府帮交吗？",
            vec![qingdao.clone(), jinan.clone()],
            vec![qingdao.clone()],
            2,
        );
        assert_eq!(out[0].doc_id, "jn", "{out:?}");
        // Without a city in the question, nothing changes for either.
        assert_eq!(
            locality("重度残疾人养老保险政府帮交吗？", &qingdao.title),
            0.0
        );
    }

    #[test]
    fn a_question_about_the_effective_date_gets_the_article_that_states_it() {
        let first = hit(
            "law",
            "中华人民共和国职业教育法",
            "第一条 为了推动职业教育高质量发展，提高劳动者素质和技术技能水平，制定本法。",
        );
        let last = hit(
            "law",
            "中华人民共和国职业教育法",
            "第六十八条 境外的组织和个人在境内举办职业学校，适用本法。第六十九条 本法自2022年5月1日起施行。",
        );
        let out = rerank(
            "职业教育法是什么时候开始施行的？",
            vec![first.clone(), last.clone()],
            vec![first.clone()],
            1,
        );
        assert!(out[0].text.contains("起施行"), "{out:?}");
        // Another law's 施行 article is not raised: the question names this one.
        let other = hit(
            "other",
            "中华人民共和国社会保险法",
            "第九十八条 本法自2011年7月1日起施行。",
        );
        let out = rerank(
            "职业教育法是什么时候开始施行的？",
            vec![first.clone(), other, last.clone()],
            vec![first.clone()],
            2,
        );
        assert!(out.iter().all(|h| h.doc_id == "law"), "{out:?}");
        // Only a question about when: 施行 alone ("怎么施行") changes nothing.
        assert!(!asks_effective_date("职业教育法怎么施行？"));
        assert!(asks_effective_date("社会保险法哪年生效的？"));
    }

    #[test]
    fn what_bm25_alone_found_can_win_and_duplicates_merge() {
        let general = hit(
            "law",
            "社会保险法",
            "国家建立基本养老保险、医疗保险、工伤保险等社会保险制度。",
        );
        let answer = hit(
            "reg",
            "失业保险条例",
            "失业人员领取失业保险金的期限最长为24个月。",
        );
        let out = rerank(
            "失业保险金最长能领多久？",
            vec![general.clone(), hit("x", "其他", "无关内容。")],
            vec![answer.clone(), general.clone()],
            2,
        );
        assert_eq!(out[0].doc_id, "reg", "{out:?}");
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].text, out[1].text, "one entry per passage");
    }

    #[test]
    fn the_document_named_by_the_question_wins_a_tie() {
        let a = hit(
            "a",
            "山东省就业促进条例",
            "县级以上人民政府应当加强就业服务。",
        );
        let b = hit(
            "b",
            "山东省人才发展促进条例",
            "县级以上人民政府应当加强人才服务。",
        );
        let out = rerank(
            "人才发展促进条例对人才服务有什么规定？",
            vec![a, b],
            vec![],
            2,
        );
        assert_eq!(out[0].doc_id, "b", "{out:?}");
    }
}
