//! The verifier: every sentence of an answer that states a number, amount, date or condition
//! must be supported by a cited passage. Numbers must appear in the passage and most of the
//! sentence's key terms (Chinese character pairs) too; otherwise the sentence is replaced by the
//! closest quote from the evidence, or dropped when no passage is close.
//!
//! It works one sentence at a time so that answers can stream sentence by sentence.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// One passage given to the model as `[n]`.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// Its number in the prompt, from 1.
    pub n: usize,
    /// Document id.
    pub doc_id: String,
    /// Document title.
    pub title: String,
    /// 文号.
    pub doc_number: String,
    /// Section path.
    pub section: String,
    /// Article label.
    pub article: Option<String>,
    /// The passage.
    pub text: String,
}

/// A citation as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Citation {
    /// Evidence number.
    pub n: usize,
    /// Document id.
    pub doc_id: String,
    /// Document title.
    pub title: String,
    /// 文号.
    pub doc_number: String,
    /// Section path (and article).
    pub section: String,
    /// The quoted span that supports the answer.
    pub quote: String,
}

fn number_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"[0-9]+(?:[.,][0-9]+)*|[一二两三四五六七八九十百千万零〇]+(?:元|万|年|个月|月|日|天|岁|倍|次|人|小时|周|%|％|项|类)")
            .expect("static pattern")
    })
}

fn marker_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"[\[【]([0-9]{1,2})[\]】]").expect("static pattern"))
}

const CONDITION_WORDS: &[&str] = &[
    "须",
    "应当",
    "必须",
    "不超过",
    "不低于",
    "以上",
    "以下",
    "以内",
    "条件",
    "符合",
    "不得",
    "可申请",
    "可享受",
    "按照",
    "最高",
    "最长",
    "期限",
    "标准",
];

/// Whether a sentence states something that must be checked against the sources.
pub fn needs_support(sentence: &str) -> bool {
    number_re().is_match(&strip_markers(sentence))
        || CONDITION_WORDS.iter().any(|w| sentence.contains(w))
}

/// The sentence without its `[n]` markers.
pub fn strip_markers(s: &str) -> String {
    marker_re().replace_all(s, "").into_owned()
}

/// Numbers (Arabic, or Chinese with a unit) in the text, normalised (no thousands commas).
fn numbers(s: &str) -> Vec<String> {
    number_re()
        .find_iter(s)
        .map(|m| m.as_str().replace(',', ""))
        .collect()
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Pairs of adjacent Chinese characters: the key terms of a sentence, without a dictionary.
fn bigrams(s: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = s.chars().collect();
    chars
        .windows(2)
        .filter(|w| is_cjk(w[0]) && is_cjk(w[1]))
        .map(|w| (w[0], w[1]))
        .collect()
}

/// Share of the sentence's key terms found in the passage.
fn overlap(sentence: &str, passage: &str) -> f32 {
    let s = bigrams(sentence);
    if s.is_empty() {
        return 0.0;
    }
    let p = bigrams(passage);
    s.iter().filter(|b| p.contains(b)).count() as f32 / s.len() as f32
}

/// Whether `passage` supports `sentence`: all its numbers appear, and most of its terms.
fn supports(sentence: &str, passage: &str) -> bool {
    let passage_numbers = passage.replace(',', "");
    numbers(sentence)
        .iter()
        .all(|n| passage_numbers.contains(n.as_str()))
        && overlap(sentence, passage) >= 0.45
}

/// Splits text after sentence ends (。！？；, newline), keeping the terminators.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if matches!(c, '。' | '！' | '？' | '；' | '\n' | '!' | '?') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The sentence of `passage` closest to `sentence`, with its overlap.
fn best_quote(sentence: &str, passage: &str) -> (String, f32) {
    split_sentences(passage)
        .into_iter()
        .map(|q| {
            let o = overlap(sentence, &q);
            (q.trim().to_string(), o)
        })
        .filter(|(q, _)| !q.is_empty())
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default()
}

fn short(q: &str, max: usize) -> String {
    if q.chars().count() <= max {
        q.to_string()
    } else {
        format!("{}…", q.chars().take(max).collect::<String>())
    }
}

/// What happened to one sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Kept as written.
    Kept,
    /// Supported by the passage numbered.
    Supported(usize),
    /// Replaced by a quote of this passage.
    Quoted(usize),
    /// Dropped: nothing supports it.
    Dropped,
}

/// Verifies an answer sentence by sentence against the evidence.
#[derive(Debug)]
pub struct Verifier {
    evidence: Vec<Evidence>,
    /// Evidence number → the quote shown with its citation.
    used: BTreeMap<usize, String>,
    /// Verdicts so far (tests and logs).
    pub verdicts: Vec<Verdict>,
}

impl Verifier {
    /// A verifier over the evidence given to the model.
    pub fn new(evidence: Vec<Evidence>) -> Self {
        Self {
            evidence,
            used: BTreeMap::new(),
            verdicts: Vec::new(),
        }
    }

    fn cite(&mut self, n: usize, sentence: &str) {
        if let Some(e) = self.evidence.iter().find(|e| e.n == n) {
            let (q, _) = best_quote(sentence, &e.text);
            self.used.entry(n).or_insert_with(|| short(&q, 120));
        }
    }

    /// Checks one sentence; returns the text to show (possibly a quote), or `None` to drop it.
    pub fn sentence(&mut self, sentence: &str) -> Option<String> {
        let plain = strip_markers(sentence);
        if plain.trim().is_empty() {
            // A bare marker or blank line: nothing to show (support is checked per sentence).
            return sentence.contains('\n').then(|| "\n".to_string());
        }
        let cited: Vec<usize> = marker_re()
            .captures_iter(sentence)
            .filter_map(|c| c[1].parse().ok())
            .filter(|n| self.evidence.iter().any(|e| e.n == *n))
            .collect();
        if !needs_support(&plain) {
            for n in &cited {
                self.cite(*n, &plain);
            }
            self.verdicts.push(Verdict::Kept);
            return Some(sentence.to_string());
        }
        // The cited passages first, then any passage (the model often forgets the marker).
        let order: Vec<usize> = cited
            .iter()
            .copied()
            .chain(self.evidence.iter().map(|e| e.n))
            .collect();
        if let Some(n) = order.into_iter().find(|n| {
            self.evidence
                .iter()
                .find(|e| e.n == *n)
                .is_some_and(|e| supports(&plain, &e.text))
        }) {
            self.cite(n, &plain);
            self.verdicts.push(Verdict::Supported(n));
            let mut out = sentence.to_string();
            if !cited.contains(&n) {
                // Put the marker before the sentence end so the reader sees the source.
                let end = out
                    .trim_end()
                    .chars()
                    .last()
                    .filter(|c| "。！？；".contains(*c));
                match end {
                    Some(c) => {
                        let cut = out.trim_end().len() - c.len_utf8();
                        out = format!("{}[{n}]{}", &out[..cut], &out[cut..]);
                    }
                    None => out.push_str(&format!("[{n}]")),
                }
            }
            return Some(out);
        }
        // Unsupported: the closest quote, when a passage is close enough, else nothing.
        let best = self
            .evidence
            .iter()
            .map(|e| {
                let (q, o) = best_quote(&plain, &e.text);
                (e.n, e.title.clone(), q, o)
            })
            .max_by(|a, b| a.3.total_cmp(&b.3));
        match best {
            Some((n, title, quote, o)) if o >= 0.3 && !quote.is_empty() => {
                self.used.entry(n).or_insert_with(|| short(&quote, 120));
                self.verdicts.push(Verdict::Quoted(n));
                Some(format!(
                    "据《{title}》原文：“{}”[{n}]\n",
                    short(&quote, 160)
                ))
            }
            _ => {
                self.verdicts.push(Verdict::Dropped);
                None
            }
        }
    }

    /// The citations of every passage the answer used, in evidence order.
    pub fn citations(&self) -> Vec<Citation> {
        self.used
            .iter()
            .filter_map(|(n, quote)| {
                let e = self.evidence.iter().find(|e| e.n == *n)?;
                let section = match &e.article {
                    Some(a) if !e.section.contains(a.as_str()) => {
                        if e.section.is_empty() {
                            a.clone()
                        } else {
                            format!("{} > {a}", e.section)
                        }
                    }
                    _ => e.section.clone(),
                };
                Some(Citation {
                    n: *n,
                    doc_id: e.doc_id.clone(),
                    title: e.title.clone(),
                    doc_number: e.doc_number.clone(),
                    section,
                    quote: quote.clone(),
                })
            })
            .collect()
    }

    /// Whether no sentence was checked against a source (the answer then cites nothing).
    pub fn cited_nothing(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Vec<Evidence> {
        vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "关于做好就业服务的通知".into(),
            doc_number: "鲁人社发〔2025〕9号".into(),
            section: "一、总体要求".into(),
            article: None,
            text: "到2028年底，全省建成就业服务平台不少于100个。对符合条件的高校毕业生给予一次性求职补贴1000元。".into(),
        }]
    }

    #[test]
    fn supported_numbers_stay_and_get_a_marker() {
        let mut v = Verifier::new(ev());
        let out = v.sentence("符合条件的高校毕业生可以获得一次性求职补贴1000元。");
        assert_eq!(
            out.as_deref(),
            Some("符合条件的高校毕业生可以获得一次性求职补贴1000元[1]。")
        );
        assert_eq!(v.verdicts, vec![Verdict::Supported(1)]);
        let c = v.citations();
        assert_eq!(c.len(), 1);
        assert!(c[0].quote.contains("1000元"), "{:?}", c[0]);
    }

    #[test]
    fn a_wrong_number_is_replaced_by_the_quote() {
        let mut v = Verifier::new(ev());
        let out = v
            .sentence("高校毕业生可以获得一次性求职补贴3000元[1]。")
            .expect("quoted");
        assert!(
            out.contains("“对符合条件的高校毕业生给予一次性求职补贴1000元。”"),
            "{out}"
        );
        assert!(!out.contains("3000"));
        let out = v.sentence("到2025年底建成平台。").expect("quoted");
        assert!(out.contains("2028年底") && !out.contains("2025"), "{out}");
    }

    #[test]
    fn unrelated_unsupported_sentences_are_dropped_and_plain_ones_kept() {
        let mut v = Verifier::new(ev());
        assert_eq!(v.sentence("养老金每月上涨八百元。"), None);
        assert_eq!(v.verdicts, vec![Verdict::Dropped]);
        assert_eq!(
            v.sentence("建议您咨询当地人社部门。").as_deref(),
            Some("建议您咨询当地人社部门。")
        );
        assert!(v.cited_nothing());
    }

    #[test]
    fn sentences_split_on_chinese_punctuation() {
        assert_eq!(
            split_sentences("第一句。第二句！第三"),
            vec!["第一句。", "第二句！", "第三"]
        );
    }
}
