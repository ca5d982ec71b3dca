//! Answer quality on `eval/data/answers.jsonl`: questions on the bundled plan and the 16 laws
//! with the key facts a helpful answer states and the document it must cite, plus questions
//! the corpus does not answer. This module scores transcripts; `leye-eval answers` produces
//! them through the whole pipeline (router, retrieval, gate, model, verifier).
//!
//! Definitions (printed with the figures):
//! - **key-fact accuracy**: covered questions whose answer holds every key fact (a fact is a
//!   `|`-separated list of accepted spellings, e.g. `十二个月|12个月`); a not-covered reply
//!   counts as a miss;
//! - **citation accuracy**: covered questions answered (not refused) that cite the expected
//!   document;
//! - **invented numbers**: answers with a number that appears neither in their quotes nor in
//!   the text of a document they cite;
//! - **vacuous**: answers that add no key term (character pair) of their quotes beyond the
//!   question's own words;
//! - **false not-covered** / **false answered**: the gate's two errors, per question.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use assistant::retrieval::rerank::key_terms;

/// One question of the set.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Item {
    /// Stable id (`a…` covered, `u…` not covered).
    pub id: String,
    /// The question as a citizen would type it.
    pub question: String,
    /// The document that answers it (covered questions).
    #[serde(default)]
    pub doc_id: Option<String>,
    /// Key facts; each one a `|`-separated list of accepted spellings.
    #[serde(default)]
    pub facts: Vec<String>,
    /// Whether a document of the corpus answers it.
    #[serde(default = "covered_by_default")]
    pub covered: bool,
}

fn covered_by_default() -> bool {
    true
}

/// Reads the set and checks it: covered items name a document and at least one fact.
pub fn load(path: &Path) -> anyhow::Result<Vec<Item>> {
    let items: Vec<Item> = crate::load_jsonl(path)?;
    for it in &items {
        if it.covered {
            anyhow::ensure!(
                it.doc_id.is_some() && !it.facts.is_empty(),
                "{}: a covered question needs doc_id and facts",
                it.id
            );
        }
    }
    Ok(items)
}

/// What the pipeline produced for one question.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Transcript {
    /// The intent the router chose.
    pub intent: String,
    /// The answer text as stored.
    pub answer: String,
    /// Whether the answer refused: the not-covered reply, or the out-of-scope one.
    pub not_covered: bool,
    /// Documents cited.
    pub cited_docs: Vec<String>,
    /// Quotes of the citations.
    pub quotes: Vec<String>,
    /// Seconds to the first answer text.
    pub ttft_s: f64,
    /// Seconds for the whole turn.
    pub total_s: f64,
}

/// The verdicts on one question.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verdict {
    /// Every key fact present.
    pub facts_ok: bool,
    /// The expected document cited.
    pub cited_ok: bool,
    /// Numbers of the answer found in no quote and no cited document.
    pub invented: Vec<String>,
    /// The answer adds nothing from its evidence.
    pub vacuous: bool,
}

/// Removes what does not change a fact: whitespace, source markers, thousands separators.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '[' {
            // `[12]` source markers.
            let rest: String = chars.clone().take(3).collect();
            if let Some(end) = rest.find(']') {
                if end > 0 && rest[..end].chars().all(|d| d.is_ascii_digit()) {
                    for _ in 0..=rest[..end].chars().count() {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        if c.is_whitespace() || c == ',' {
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether `answer` states `fact` in one of its accepted spellings.
pub fn has_fact(answer: &str, fact: &str) -> bool {
    let a = normalize(answer);
    fact.split('|')
        .map(normalize)
        .filter(|f| !f.is_empty())
        .any(|f| a.contains(&f))
}

/// The numbers of a text: runs of Arabic digits, and Chinese numerals with the unit after
/// them (`二十四个月` → `二十四个`, enough to tell it from `十二个`).
pub fn numbers(text: &str) -> Vec<String> {
    const NUMERALS: &str = "零〇一二两三四五六七八九十百千万";
    const UNITS: &str = "元年个月日天岁周倍人小%％";
    let chars: Vec<char> = normalize(text).chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i].is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            out.push(n.trim_end_matches('.').to_string());
        } else if NUMERALS.contains(chars[i]) {
            while i < chars.len() && NUMERALS.contains(chars[i]) {
                i += 1;
            }
            if i < chars.len() && UNITS.contains(chars[i]) {
                out.push(chars[start..=i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Scores one transcript against its item. `documents` maps document ids to their text.
pub fn judge(item: &Item, t: &Transcript, documents: &BTreeMap<String, String>) -> Verdict {
    let facts_ok =
        !t.not_covered && item.covered && item.facts.iter().all(|f| has_fact(&t.answer, f));
    let cited_ok = item
        .doc_id
        .as_ref()
        .is_some_and(|d| t.cited_docs.iter().any(|c| c == d));
    if t.not_covered {
        return Verdict {
            facts_ok,
            cited_ok,
            ..Verdict::default()
        };
    }
    let evidence: String = t
        .quotes
        .iter()
        .map(|q| normalize(q))
        .chain(
            t.cited_docs
                .iter()
                .filter_map(|d| documents.get(d))
                .map(|d| normalize(d)),
        )
        .collect::<Vec<_>>()
        .join("\n");
    let invented = numbers(&t.answer)
        .into_iter()
        .filter(|n| !evidence.contains(n.as_str()))
        .collect();
    let question = key_terms(&item.question);
    let quoted: HashSet<(char, char)> = t.quotes.iter().flat_map(|q| key_terms(q)).collect();
    let vacuous = !key_terms(&t.answer)
        .iter()
        .any(|k| !question.contains(k) && quoted.contains(k));
    Verdict {
        facts_ok,
        cited_ok,
        invented,
        vacuous,
    }
}

/// The figures over the whole set.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    /// Covered questions.
    pub covered: usize,
    /// Not-covered questions.
    pub uncovered: usize,
    /// Covered questions answered (not refused).
    pub answered_covered: usize,
    /// Key-fact accuracy over covered questions.
    pub key_fact_accuracy: f64,
    /// Citation accuracy over answered covered questions.
    pub citation_accuracy: f64,
    /// Answers with an invented number.
    pub invented_numbers: usize,
    /// Share of answers (covered and not) that are vacuous.
    pub vacuous_rate: f64,
    /// Covered questions refused.
    pub false_not_covered: f64,
    /// Not-covered questions answered.
    pub false_answered: f64,
    /// Median time to first answer text, seconds.
    pub ttft_p50_s: f64,
    /// Median turn, seconds.
    pub turn_p50_s: f64,
}

/// Adds up the verdicts.
pub fn figures(items: &[Item], transcripts: &[Transcript], verdicts: &[Verdict]) -> Figures {
    let mut f = Figures::default();
    let (mut facts, mut cited, mut vacuous, mut answered, mut fnc, mut fa) = (0, 0, 0, 0, 0, 0);
    for ((it, t), v) in items.iter().zip(transcripts).zip(verdicts) {
        if it.covered {
            f.covered += 1;
            facts += usize::from(v.facts_ok);
            if t.not_covered {
                fnc += 1;
            } else {
                f.answered_covered += 1;
                cited += usize::from(v.cited_ok);
            }
        } else {
            f.uncovered += 1;
            fa += usize::from(!t.not_covered);
        }
        if !t.not_covered {
            answered += 1;
            vacuous += usize::from(v.vacuous);
            f.invented_numbers += usize::from(!v.invented.is_empty());
        }
    }
    let ratio = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    f.key_fact_accuracy = ratio(facts, f.covered);
    f.citation_accuracy = ratio(cited, f.answered_covered);
    f.vacuous_rate = ratio(vacuous, answered);
    f.false_not_covered = ratio(fnc, f.covered);
    f.false_answered = ratio(fa, f.uncovered);
    let ttft: Vec<f64> = transcripts.iter().map(|t| t.ttft_s).collect();
    let turn: Vec<f64> = transcripts.iter().map(|t| t.total_s).collect();
    f.ttft_p50_s = median(ttft);
    f.turn_p50_s = median(turn);
    f
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `n` items spread evenly over the set (covered and not in their proportion): the fixed
/// subset for slow models.
pub fn sample(items: &[Item], n: usize) -> Vec<Item> {
    if n == 0 || n >= items.len() {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(facts: &[&str]) -> Item {
        Item {
            id: "a1".into(),
            question: "失业保险交了三年，失业金最多能领多久？".into(),
            doc_id: Some("law".into()),
            facts: facts.iter().map(|s| s.to_string()).collect(),
            covered: true,
        }
    }

    fn docs() -> BTreeMap<String, String> {
        BTreeMap::from([(
            "law".to_string(),
            "累计缴费满一年不足五年的，领取失业保险金的期限最长为十二个月。".to_string(),
        )])
    }

    #[test]
    fn facts_accept_any_spelling_and_ignore_markers() {
        assert!(has_fact("最长可领12个月[1]。", "十二个月|12个月"));
        assert!(has_fact("最长为十二[1]个月", "十二个月"));
        assert!(!has_fact("最长为十八个月[1]。", "十二个月|12个月"));
    }

    #[test]
    fn a_right_answer_passes_and_a_refusal_fails() {
        let it = item(&["十二个月|12个月"]);
        let good = Transcript {
            answer: "缴费满一年不足五年的，最长领十二个月[1]。".into(),
            cited_docs: vec!["law".into()],
            quotes: vec!["领取失业保险金的期限最长为十二个月".into()],
            ..Transcript::default()
        };
        let v = judge(&it, &good, &docs());
        assert!(v.facts_ok && v.cited_ok && !v.vacuous && v.invented.is_empty());
        let refused = Transcript {
            answer: "抱歉，没有找到".into(),
            not_covered: true,
            ..Transcript::default()
        };
        let v = judge(&it, &refused, &docs());
        assert!(!v.facts_ok && !v.cited_ok);
    }

    #[test]
    fn numbers_outside_the_cited_evidence_are_invented() {
        let it = item(&["十二个月"]);
        let t = Transcript {
            answer: "最长领取二十四个月，每月发放1800元，满一年即可[1]。".into(),
            cited_docs: vec!["law".into()],
            quotes: vec!["领取失业保险金的期限最长为十二个月".into()],
            ..Transcript::default()
        };
        let v = judge(&it, &t, &docs());
        assert_eq!(v.invented, vec!["二十四个".to_string(), "1800".to_string()]);
    }

    #[test]
    fn an_echo_of_the_question_is_vacuous() {
        let it = item(&["十二个月"]);
        let t = Transcript {
            answer: "失业保险交了三年可以领失业金[1]。".into(),
            cited_docs: vec!["law".into()],
            quotes: vec!["领取失业保险金的期限最长为十二个月".into()],
            ..Transcript::default()
        };
        assert!(judge(&it, &t, &docs()).vacuous);
    }

    #[test]
    fn figures_count_both_gate_errors() {
        let covered = item(&["十二个月"]);
        let uncovered = Item {
            covered: false,
            doc_id: None,
            facts: vec![],
            ..covered.clone()
        };
        let items = vec![covered.clone(), covered, uncovered];
        let ts = vec![
            Transcript {
                not_covered: true,
                ..Transcript::default()
            },
            Transcript {
                answer: "最长十二个月[1]".into(),
                cited_docs: vec!["law".into()],
                quotes: vec!["期限最长为十二个月".into()],
                ..Transcript::default()
            },
            Transcript {
                answer: "x".into(),
                ..Transcript::default()
            },
        ];
        let vs: Vec<Verdict> = items
            .iter()
            .zip(&ts)
            .map(|(i, t)| judge(i, t, &docs()))
            .collect();
        let f = figures(&items, &ts, &vs);
        assert_eq!((f.covered, f.uncovered, f.answered_covered), (2, 1, 1));
        assert!((f.key_fact_accuracy - 0.5).abs() < 1e-9);
        assert!((f.false_not_covered - 0.5).abs() < 1e-9);
        assert!((f.false_answered - 1.0).abs() < 1e-9);
        assert!((f.citation_accuracy - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_sample_is_spread_and_fixed() {
        let items: Vec<Item> = (0..10)
            .map(|i| Item {
                id: format!("a{i}"),
                ..item(&["x"])
            })
            .collect();
        let s = sample(&items, 4);
        let ids: Vec<&str> = s.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a0", "a2", "a5", "a7"]);
    }

    #[test]
    fn the_bundled_set_is_large_enough_and_its_facts_are_in_its_documents() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let items = load(&root.join("data/answers.jsonl")).expect("set");
        let covered = items.iter().filter(|i| i.covered).count();
        assert!(covered >= 150, "{covered} covered questions");
        assert!(items.len() - covered >= 30);
        let mut texts = BTreeMap::new();
        for dir in [
            root.join("data/laws"),
            root.join("../knowledge/data/policies"),
        ] {
            for e in std::fs::read_dir(dir).expect("corpus").flatten() {
                let p = e.path();
                if let (Some(stem), Ok(t)) = (p.file_stem(), std::fs::read_to_string(&p)) {
                    texts.insert(stem.to_string_lossy().to_string(), normalize(&t));
                }
            }
        }
        for it in items.iter().filter(|i| i.covered) {
            let doc = it.doc_id.as_deref().unwrap_or_default();
            let text = texts
                .get(doc)
                .unwrap_or_else(|| panic!("{}: no {doc}", it.id));
            for f in &it.facts {
                assert!(
                    f.split('|').any(|a| text.contains(&normalize(a))),
                    "{}: fact {f} is not in {doc}",
                    it.id
                );
            }
        }
    }
}
