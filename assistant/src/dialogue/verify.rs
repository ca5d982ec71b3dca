//! The verifier: every sentence of an answer must be supported by one sentence of the
//! evidence. Its numbers must appear there and most of its key terms (Chinese character pairs)
//! too; it must add something the question did not say (an echo is dropped); and it must not
//! borrow terms from another sentence of the evidence (two measures joined into one false
//! claim). A sentence that fails is dropped; the quotes live in the citations, never pasted into
//! the answer. When nothing survives, the answer is the best evidence sentence itself
//! ([`Verifier::extract`]).
//!
//! It works one sentence at a time so that answers can stream sentence by sentence.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use super::focus::key_terms;
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
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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

/// The sentence without its `[n]` markers.
pub fn strip_markers(s: &str) -> String {
    marker_re().replace_all(s, "").into_owned()
}

/// A list item's leading ordinal ("1. ", "2、", "（3）", "4)", "一、"), split off: `(ordinal,
/// rest)`, the ordinal with the space after it; `None` when the text does not open with one.
/// The ordinal is the answer's layout, not a claim: its digits are in no evidence sentence,
/// and counting them as numbers dropped every item of a numbered list. "1.5倍" opens with a
/// number, not an ordinal.
fn split_ordinal(s: &str) -> Option<(&str, &str)> {
    let body = s.trim_start();
    let lead = s.len() - body.len();
    let is_num = |c: char| c.is_ascii_digit() || "一二三四五六七八九十".contains(c);
    let mut chars = body.char_indices().peekable();
    let open = matches!(chars.peek(), Some((_, '(' | '（')));
    if open {
        chars.next();
    }
    let mut digits = 0;
    let mut arabic = false;
    while let Some(&(_, c)) = chars.peek() {
        if !is_num(c) {
            break;
        }
        arabic |= c.is_ascii_digit();
        digits += 1;
        chars.next();
    }
    if digits == 0 || digits > 3 {
        return None;
    }
    let (i, close) = chars.next()?;
    let closes = if open {
        matches!(close, ')' | '）')
    } else if arabic {
        matches!(close, '.' | '．' | '、' | ')' | '）')
    } else {
        matches!(close, '、' | '．' | '.')
    };
    if !closes {
        return None;
    }
    let mut end = i + close.len_utf8();
    // "1.5" is a number.
    if close == '.' && body[end..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    end += body[end..].len() - body[end..].trim_start_matches([' ', '\u{3000}']).len();
    Some((&s[..lead + end], &s[lead + end..]))
}

/// `ordinal` ("3. ", "（三）") with its number replaced by `n`, in the same numerals.
fn renumber(ordinal: &str, n: usize) -> String {
    const CJK: [&str; 10] = ["", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    let chinese = |n: usize| match n {
        1..=9 => CJK[n].to_string(),
        10 => "十".to_string(),
        11..=19 => format!("十{}", CJK[n - 10]),
        _ => format!("{}十{}", CJK[(n / 10).min(9)], CJK[n % 10]),
    };
    let arabic = ordinal.chars().any(|c| c.is_ascii_digit());
    let mut out = String::new();
    let mut done = false;
    for c in ordinal.chars() {
        let numeral = if arabic {
            c.is_ascii_digit()
        } else {
            "一二三四五六七八九十".contains(c)
        };
        if numeral {
            if !done {
                out.push_str(&if arabic { n.to_string() } else { chinese(n) });
                done = true;
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a sentence of the answer claims: without its `[n]` markers and its list ordinal.
pub fn claim(s: &str) -> String {
    let plain = strip_markers(s);
    match split_ordinal(&plain) {
        Some((_, rest)) => rest.to_string(),
        None => plain,
    }
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

fn short(q: &str, max: usize) -> String {
    if q.chars().count() <= max {
        q.to_string()
    } else {
        format!("{}…", q.chars().take(max).collect::<String>())
    }
}

/// The best-ranked evidence sentence always counts as answering the question…
const RELEVANT_TOP: usize = 1;
/// …and so does any sentence scoring at least this share of the best one's score…
const RELEVANT_SHARE: f32 = 0.6;
/// …when the best one matches the question this well ([`super::focus::rank_sentences`];
/// `leye-eval evidence` on the answer set's 176 covered questions: from 0.15 up the best
/// sentence holds the key facts for 0.89 of them (0.83 between 0.15 and 0.2), below 0.1 for
/// 0.38).
const STRONG_MATCH: f32 = 0.15;

/// Longest extractive answer, characters.
const EXTRACT_CHARS: usize = 160;

/// The sentence (to its `。`) that holds `clause` in `text`, when it fits in `max` characters;
/// else the clause.
fn whole_sentence(text: &str, clause: &str, max: usize) -> String {
    let clause = clause.trim();
    let Some(at) = text.find(clause) else {
        return clause.to_string();
    };
    let stops = ['。', '！', '？', '\n'];
    let start = text[..at].rfind(stops).map_or(0, |i| {
        i + text[i..].chars().next().map_or(1, char::len_utf8)
    });
    let end = text[at..].find(stops).map_or(text.len(), |i| {
        at + i + text[at + i..].chars().next().map_or(0, char::len_utf8)
    });
    let whole = text[start..end].trim();
    if whole.chars().count() <= max {
        whole.to_string()
    } else {
        clause.to_string()
    }
}

/// `text` with the marker of passage `n` before its closing stop (`。！？；`), where the reader
/// sees it with the sentence; at the end when there is none.
fn cite(text: &str, n: usize) -> String {
    match text.chars().last().filter(|c| "。！？；".contains(*c)) {
        Some(c) => {
            let cut = text.len() - c.len_utf8();
            format!("{}[{n}]{}", &text[..cut], &text[cut..])
        }
        None => format!("{text}[{n}]"),
    }
}

/// Splits a leading article label ("第四十六条 ……") from a sentence.
fn split_article(sentence: &str) -> (Option<String>, String) {
    let s = sentence.trim();
    if let Some(rest) = s.strip_prefix('第') {
        if let Some(end) = rest.find('条') {
            let num = &rest[..end];
            if !num.is_empty()
                && num
                    .chars()
                    .all(|c| "零〇一二两三四五六七八九十百千".contains(c))
            {
                let body = rest[end + '条'.len_utf8()..].trim_start();
                if !body.is_empty() {
                    return (Some(format!("第{num}条")), body.to_string());
                }
            }
        }
    }
    (None, s.to_string())
}

/// What happened to one sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Supported by the passage numbered.
    Supported(usize),
    /// The answer is this passage's best sentence (said first when it matches the question
    /// strongly, else because nothing the model wrote survived).
    Extracted(usize),
    /// Dropped: supported, but by a sentence the extractive answer already said.
    Restated(usize),
    /// Dropped: nothing supports it.
    Dropped,
}

/// Verifies an answer sentence by sentence against the evidence.
#[derive(Debug)]
pub struct Verifier {
    evidence: Vec<Evidence>,
    /// The key terms of the question: a sentence must add to them.
    question: HashSet<(char, char)>,
    /// Every sentence of the evidence: (evidence number, sentence).
    sentences: Vec<(usize, String)>,
    /// The evidence sentences that answer the question (see [`RELEVANT_SHARE`]): a model
    /// sentence copied from a neighbouring article is true but not an answer.
    relevant: HashSet<(usize, String)>,
    /// The best-ranked evidence sentence (what the extractive answer quotes).
    best: Option<(usize, String)>,
    /// Whether `best` matches the question strongly ([`STRONG_MATCH`]).
    strong_match: bool,
    /// The names that sentence gives the thing a name question asks about
    /// ([`super::focus::names_asked`]).
    asked_names: Vec<String>,
    /// The question, kept when `asked_names` is not empty: a sentence of the answer that
    /// gives the asked-about thing another name is checked with it.
    name_question: Option<String>,
    /// Evidence sentences that supported a sentence of the answer.
    supporting: HashSet<(usize, String)>,
    /// Evidence number → the quote shown with its citation.
    used: BTreeMap<usize, String>,
    /// Verdicts so far (tests and logs).
    pub verdicts: Vec<Verdict>,
    /// List items of the model's own numbering shown so far (their ordinals are renumbered).
    items: usize,
    /// The text of the extractive answer once it was given (it is given at most once).
    extracted: Option<String>,
}

impl Verifier {
    /// A verifier over the evidence given to the model for `question`.
    pub fn new(evidence: Vec<Evidence>, question: &str) -> Self {
        let sentences = evidence
            .iter()
            .flat_map(|e| {
                split_sentences(&e.text)
                    .into_iter()
                    .map(|s| (e.n, s.trim().to_string()))
                    .filter(|(_, s)| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        let ranked = super::focus::rank_sentences(question, &evidence);
        let best_score = ranked.first().map_or(0.0, |s| s.score);
        let strong_match = best_score >= STRONG_MATCH;
        let best = ranked.first().map(|s| (s.n, s.text.clone()));
        let asked_names = best
            .as_ref()
            .filter(|_| strong_match)
            .map(|(_, best)| super::focus::names_asked(question, best))
            .unwrap_or_default();
        let name_question = (!asked_names.is_empty()).then(|| question.to_string());
        // A broad question ("有哪些就业服务？") matches no sentence well, and every measure
        // of the passages may belong to its answer: then no sentence is ruled out.
        let floor = if strong_match {
            RELEVANT_SHARE * best_score
        } else {
            f32::MIN
        };
        let relevant = ranked
            .into_iter()
            .enumerate()
            .filter(|(i, s)| *i < RELEVANT_TOP || s.score >= floor)
            .map(|(_, s)| (s.n, s.text))
            .collect();
        Self {
            evidence,
            question: key_terms(question),
            sentences,
            relevant,
            best,
            strong_match,
            asked_names,
            name_question,
            supporting: HashSet::new(),
            used: BTreeMap::new(),
            verdicts: Vec::new(),
            items: 0,
            extracted: None,
        }
    }

    /// The evidence sentence that supports `plain`, if one does: a sentence that answers the
    /// question, holding every number of `plain` and at least half its key terms, including one
    /// the question did not say; and `plain` borrows no term that only other evidence
    /// sentences have.
    fn support(&self, plain: &str, cited: &[usize]) -> Option<(usize, String)> {
        let terms = key_terms(plain);
        let new: Vec<&(char, char)> = terms
            .iter()
            .filter(|t| !self.question.contains(t))
            .collect();
        if terms.is_empty() || new.is_empty() {
            return None;
        }
        let sentence_numbers = numbers(plain);
        // The cited passages first, then any (the model often forgets the marker).
        let mut order: Vec<&(usize, String)> = self
            .sentences
            .iter()
            .filter(|(n, _)| cited.contains(n))
            .collect();
        order.extend(self.sentences.iter().filter(|(n, _)| !cited.contains(n)));
        order.retain(|s| self.relevant.contains(*s));
        order.into_iter().find_map(|(n, ev)| {
            let ev_terms = bigrams(ev);
            let ev_numbers = ev.replace(',', "");
            if !sentence_numbers
                .iter()
                .all(|x| ev_numbers.contains(x.as_str()))
            {
                return None;
            }
            let held = terms.iter().filter(|t| ev_terms.contains(t)).count();
            if (held as f32) < 0.5 * terms.len() as f32 || !new.iter().any(|t| ev_terms.contains(t))
            {
                return None;
            }
            // Terms from another sentence of the evidence, not from this one or the question:
            // two measures joined into one claim.
            let borrowed = new
                .iter()
                .filter(|t| !ev_terms.contains(t))
                .filter(|t| {
                    self.sentences
                        .iter()
                        .any(|(_, other)| other != ev && bigrams(other).contains(t))
                })
                .count();
            (borrowed < 2).then(|| (*n, ev.clone()))
        })
    }

    /// Checks one sentence; returns the text to show (with its source marker), or `None` to
    /// drop it.
    pub fn sentence(&mut self, sentence: &str) -> Option<String> {
        let marked = strip_markers(sentence);
        let (ordinal, plain) = match split_ordinal(&marked) {
            Some((o, rest)) => (Some(o), rest.to_string()),
            None => (None, marked.clone()),
        };
        if plain.trim().is_empty() {
            // A bare marker or blank line: nothing to show (support is checked per sentence).
            return sentence.contains('\n').then(|| "\n".to_string());
        }
        let cited: Vec<usize> = marker_re()
            .captures_iter(sentence)
            .filter_map(|c| c[1].parse().ok())
            .filter(|n| self.evidence.iter().any(|e| e.n == *n))
            .collect();
        if self.misnames(&plain) {
            self.verdicts.push(Verdict::Dropped);
            return None;
        }
        let Some((n, quote)) = self.support(&plain, &cited) else {
            self.verdicts.push(Verdict::Dropped);
            return None;
        };
        if self.restates(&quote) {
            // The citizen already read this sentence, with its document and article.
            self.verdicts.push(Verdict::Restated(n));
            return None;
        }
        self.used.entry(n).or_insert_with(|| short(&quote, 120));
        // A label the supporting sentence carries is the source's own ("（二）" of an article).
        let quoted = ordinal.is_some_and(|o| quote.contains(o.trim()));
        self.supporting.insert((n, quote));
        self.verdicts.push(Verdict::Supported(n));
        // The marker of the passage that supports it, and only that one, before the sentence
        // end so the reader sees the source.
        let mut out = plain.trim_end().to_string();
        // A list item keeps its ordinal. The source's own item label ("（二）有不少于
        // 十万元的开办资金" quotes item (二) of the article) stays as it is; the model's
        // own numbering is counted over the items shown, so a dropped item leaves no gap.
        if let Some(o) = ordinal {
            let shown = if quoted {
                o.to_string()
            } else {
                self.items += 1;
                renumber(o, self.items)
            };
            out = format!("{shown}{out}");
        }
        out = cite(&out, n);
        if sentence.ends_with('\n') {
            out.push('\n');
        }
        Some(out)
    }

    /// The answer's opening when one evidence sentence matches the question strongly: that
    /// sentence as [`Self::extract`] gives it, before the model writes anything. It holds the
    /// key facts for most such questions (see [`STRONG_MATCH`]) and needs no generation, so
    /// the citizen reads it as soon as the evidence is retrieved; the model's sentences then
    /// count only where they add to it (a sentence resting on what it said is dropped as
    /// [`Verdict::Restated`]). `None` when no sentence matches strongly.
    pub fn lead(&mut self) -> Option<String> {
        let strong = self.strong()?.clone();
        let x = self.extract("")?;
        self.supporting.insert(strong);
        Some(x)
    }

    /// The best-ranked evidence sentence when it matches the question strongly.
    fn strong(&self) -> Option<&(usize, String)> {
        self.best.as_ref().filter(|_| self.strong_match)
    }

    /// Whether the lead was given and holds every evidence sentence that answers the question:
    /// then no sentence the model could write would be shown ([`Self::sentence`] shows only
    /// sentences resting on one of those, and drops any resting on what the lead said).
    pub fn leaves_nothing_to_add(&self) -> bool {
        self.extracted.is_some() && self.relevant.iter().all(|(_, s)| self.restates(s))
    }

    /// Whether the evidence sentence `quote` is part of the extractive answer already given.
    fn restates(&self, quote: &str) -> bool {
        let Some(said) = &self.extracted else {
            return false;
        };
        let (_, body) = split_article(quote);
        let body = body.trim_end_matches(['。', '；', '！', '？']).trim();
        !body.is_empty() && said.contains(body)
    }

    /// The extractive answer when nothing the model wrote survived, or when what survived
    /// lacks the kind of fact asked for: the evidence sentence that best answers the question,
    /// with its document and article ("根据《…》第N条：……"). `None` when that sentence is
    /// already in `shown`, or the extractive answer was already given.
    pub fn extract(&mut self, shown: &str) -> Option<String> {
        if self.extracted.is_some() {
            return None;
        }
        let (n, best) = self.best.clone()?;
        if shown.contains(best.trim_end_matches(['。', '；'])) {
            return None;
        }
        let e = self.evidence.iter().find(|e| e.n == n)?;
        // A clause ("……的，期限最长为十二个月；") is read with the rest of its sentence, whose
        // other clauses hold the cases next to it (满五年, 十年以上), when that stays short.
        let sentence = whole_sentence(&e.text, &best, EXTRACT_CHARS);
        // A sentence that introduces a list is read with its items (what was asked for).
        let sentence = super::focus::with_list_items(&e.text, &sentence);
        // A measure's title is read with what the measure does.
        let sentence = super::focus::with_title_body(&e.text, &sentence, EXTRACT_CHARS);
        // The article the sentence opens with names the place better than the chunk's range.
        let (article, sentence) = split_article(&sentence);
        let place = match (article, &e.article) {
            (Some(a), _) => a,
            (None, Some(a)) => a.clone(),
            // A section heading names the place; a list item the chunker took for a heading
            // ("（六）扣押求职者的居民身份证……") would repeat the quote.
            (None, None) => e
                .section
                .rsplit(" > ")
                .next()
                .filter(|h| !h.starts_with(['（', '(']) && h.chars().count() <= 20)
                .unwrap_or_default()
                .to_string(),
        };
        let quote = short(&sentence, EXTRACT_CHARS);
        self.used.entry(n).or_insert_with(|| short(&best, 120));
        self.verdicts.push(Verdict::Extracted(n));
        self.extracted = Some(quote.clone());
        // A clause's semicolon ends the answer as a full stop.
        let cited = match quote.strip_suffix('；') {
            Some(clause) => cite(&format!("{clause}。"), n),
            None => cite(&quote, n),
        };
        Some(if place.is_empty() {
            format!("根据《{}》：{cited}", e.title)
        } else {
            format!("根据《{}》{place}：{cited}", e.title)
        })
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

    /// Whether one evidence sentence answers the question strongly and no sentence of the
    /// answer so far rests on it.
    pub fn missed_strong_answer(&self) -> bool {
        self.strong().is_some_and(|s| !self.supporting.contains(s))
    }

    /// Whether the question asks for a name, the best-ranked evidence sentence gives the thing
    /// asked about one or more names, and `answer` says none of them: the model named
    /// something else from the sentence ("数智就业"服务区 for the 平台 asked about).
    pub fn missed_asked_name(&self, answer: &str) -> bool {
        !self.asked_names.is_empty()
            && !self.asked_names.iter().any(|n| answer.contains(n.as_str()))
    }

    /// Whether `plain` gives the thing a name question asks about a name the answering sentence
    /// does not give it ("可以使用“数智就业”平台" where that sentence says “军岗在线”平台 and
    /// “数智就业”服务区): every term of such a sentence is in the evidence, so the term check
    /// passes it, but the name belongs to the neighbouring noun.
    fn misnames(&self, plain: &str) -> bool {
        let Some(question) = &self.name_question else {
            return false;
        };
        let given = super::focus::names_asked(question, plain);
        !given.is_empty() && !given.iter().any(|n| self.asked_names.contains(n))
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

    const Q: &str = "高校毕业生求职补贴是多少？";

    fn veterans() -> Vec<Evidence> {
        vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "实施意见".into(),
            doc_number: String::new(),
            section: "（四）打造退役军人就业创业服务平台".into(),
            article: None,
            text: "实施退役军人就业服务专项行动,协同开展就业跟踪、稳岗扩容、就业攻坚、专项招聘、专场招聘等就业服务活动,推动退役军人服务省市重大项目人力资源对接。".into(),
        }]
    }

    #[test]
    fn numbered_list_items_are_checked_without_their_ordinals_and_renumbered() {
        let q = "退役军人就业服务专项行动包括哪些活动？";
        let mut v = Verifier::new(veterans(), q);
        // The ordinals' digits are in no evidence sentence; the items' claims are.
        let first = v.sentence("1. 协同开展就业跟踪、稳岗扩容、专项招聘等就业服务活动[1]。");
        assert_eq!(
            first.as_deref(),
            Some("1. 协同开展就业跟踪、稳岗扩容、专项招聘等就业服务活动[1]。")
        );
        // An item with a number the evidence lacks is still dropped...
        assert_eq!(v.sentence("2. 每人发放补贴5000元[1]。"), None);
        // ...and the next one shown takes its place in the numbering.
        let third = v.sentence("3、推动退役军人服务省市重大项目人力资源对接[1]。\n");
        assert_eq!(
            third.as_deref(),
            Some("2、推动退役军人服务省市重大项目人力资源对接[1]。\n")
        );
        assert_eq!(
            v.verdicts,
            vec![
                Verdict::Supported(1),
                Verdict::Dropped,
                Verdict::Supported(1)
            ]
        );
        // Other ordinal forms, renumbered in their own numerals.
        let mut v = Verifier::new(veterans(), q);
        let item = v.sentence("（三）推动退役军人服务省市重大项目人力资源对接。");
        assert_eq!(
            item.as_deref(),
            Some("（一）推动退役军人服务省市重大项目人力资源对接[1]。")
        );
        let mut v = Verifier::new(veterans(), q);
        let item = v.sentence("二、协同开展专项招聘、专场招聘等就业服务活动。");
        assert_eq!(
            item.as_deref(),
            Some("一、协同开展专项招聘、专场招聘等就业服务活动[1]。")
        );
        // A bare ordinal is no sentence.
        assert_eq!(Verifier::new(veterans(), q).sentence("4. "), None);
        // The source's own item label is kept as it is: it names the article's item.
        let items = vec![Evidence {
            text: "（一）有明确的章程和管理制度；（二）有不少于十万元的开办资金；".into(),
            ..veterans().remove(0)
        }];
        let mut v = Verifier::new(items, "开职业中介需要多少开办资金？");
        let item = v.sentence("（二）有不少于十万元的开办资金；");
        assert_eq!(item.as_deref(), Some("（二）有不少于十万元的开办资金[1]；"));
    }

    #[test]
    fn a_leading_number_that_is_no_ordinal_is_still_checked() {
        let q = "退役军人就业服务专项行动包括哪些活动？";
        // "1.5倍" is a quantity the evidence does not hold.
        let mut v = Verifier::new(veterans(), q);
        assert_eq!(
            v.sentence("1.5倍开展专项招聘、专场招聘等就业服务活动[1]。"),
            None
        );
        // "3个月" too: no ordinal closes it.
        assert_eq!(
            v.sentence("3个月内开展专项招聘、专场招聘等就业服务活动[1]。"),
            None
        );
        assert_eq!(split_ordinal("2025年起实施"), None);
        assert_eq!(split_ordinal("12. 项目"), Some(("12. ", "项目")));
        assert_eq!(split_ordinal(" 2）项目"), Some((" 2）", "项目")));
        assert_eq!(split_ordinal("十二、项目"), Some(("十二、", "项目")));
        assert_eq!(renumber("十二、", 11), "十一、");
        assert_eq!(renumber("(7) ", 3), "(3) ");
        // The claim a fact check reads has neither markers nor ordinal.
        assert_eq!(claim("3. 最长领取6个月[2]。"), "最长领取6个月。");
    }

    /// One sentence that names two things: the 平台 and the 服务区.
    fn two_names() -> Vec<Evidence> {
        vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "关于打造退役军人就业创业服务平台的意见".into(),
            doc_number: String::new(),
            section: "（四）打造退役军人就业创业服务平台".into(),
            article: None,
            text: "实施退役军人就业服务专项行动。利用全省退役军人“军岗在线”平台、“数智就业”服务区等载体为退役军人提供线上就业服务。".into(),
        }]
    }

    #[test]
    fn an_answer_naming_another_thing_than_the_one_asked_about_misses_the_name() {
        let e = two_names();
        let q = "退役军人找工作可以用哪个线上平台？";
        let v = Verifier::new(e.clone(), q);
        assert!(v.missed_asked_name("可以使用“数智就业”服务区[1]。"));
        assert!(!v.missed_asked_name("可以用“军岗在线”平台[1]。"));
        // A question that asks for no name never misses one.
        let q2 = "退役军人线上就业服务怎么提供？";
        assert!(!Verifier::new(e, q2).missed_asked_name("通过专项行动[1]。"));
    }

    #[test]
    fn a_sentence_giving_the_asked_thing_its_neighbours_name_is_dropped() {
        let e = two_names();
        let q = "退役军人找工作可以用哪个线上平台？";
        let mut v = Verifier::new(e.clone(), q);
        // Every term is in the evidence sentence, but the name is the 服务区's.
        assert_eq!(
            v.sentence("退役军人可以使用“数智就业”平台获取线上就业服务[1]。"),
            None
        );
        assert_eq!(v.verdicts, vec![Verdict::Dropped]);
        let right = v.sentence("退役军人可以使用“军岗在线”平台获取线上就业服务[1]。");
        assert!(right.is_some_and(|s| s.contains("军岗在线")));
        // The other name with its own noun is true, and kept.
        let other = v.sentence("还可以通过“数智就业”服务区获取线上就业服务[1]。");
        assert!(other.is_some(), "{:?}", v.verdicts);
        // A question that asks for no name checks no names.
        let mut v2 = Verifier::new(e, "退役军人有哪些线上就业服务？");
        assert!(v2
            .sentence("退役军人可以使用“数智就业”平台获取线上就业服务[1]。")
            .is_some());
    }

    #[test]
    fn an_extract_reads_the_whole_sentence_and_names_its_article() {
        let text = "第四十六条 失业人员累计缴费满一年不足五年的，领取失业保险金的期限最长为十二个月；累计缴费满五年不足十年的，期限最长为十八个月；累计缴费十年以上的，期限最长为二十四个月。重新就业后，再次失业的，缴费时间重新计算。";
        let w = whole_sentence(text, "累计缴费满五年不足十年的，期限最长为十八个月；", 160);
        assert!(
            w.starts_with("第四十六条") && w.ends_with("二十四个月。"),
            "{w}"
        );
        assert_eq!(
            whole_sentence(text, "重新就业后，再次失业的，缴费时间重新计算。", 160),
            "重新就业后，再次失业的，缴费时间重新计算。"
        );
        assert_eq!(
            whole_sentence(text, "累计缴费满五年不足十年的，期限最长为十八个月；", 20),
            "累计缴费满五年不足十年的，期限最长为十八个月；"
        );
        let (a, body) = split_article(&w);
        assert_eq!(a.as_deref(), Some("第四十六条"));
        assert!(body.starts_with("失业人员"));
        assert_eq!(split_article("第一章 总则").0, None);
    }

    #[test]
    fn a_list_item_taken_for_a_heading_is_not_named_as_the_place() {
        let mut e = ev();
        e[0].section =
            "第五章 法律责任 > （六）扣押求职者的居民身份证和其他证件，或者向求职者收取押金；"
                .into();
        e[0].text = "（六）扣押求职者的居民身份证和其他证件，或者向求职者收取押金；".into();
        let extract = |e: &[Evidence]| {
            Verifier::new(e.to_vec(), "扣身份证合法吗？")
                .extract("")
                .unwrap_or_default()
        };
        let x = extract(&e);
        assert!(
            x.starts_with("根据《关于做好就业服务的通知》：（六）扣押"),
            "{x}"
        );
        e[0].section = "第五章 法律责任".into();
        let x = extract(&e);
        assert!(
            x.starts_with("根据《关于做好就业服务的通知》第五章 法律责任：（六）"),
            "{x}"
        );
    }

    #[test]
    fn an_extract_that_is_a_measures_title_brings_what_the_measure_does() {
        let mut e = ev();
        e[0].section = "一、健全服务网络 > （三）县级层面统筹设立就业创业综合服务场所".into();
        e[0].text = "(三)县级层面统筹设立就业创业综合服务场所。县级以上公共就业人才服务机构要合理配备专业队伍,提供全链条就业公共服务。(四)乡镇(街道)层面规范设置就业创业服务窗口。".into();
        let q = "县级就业创业综合服务场所提供什么服务？";
        let x = Verifier::new(e.to_vec(), q).extract("").unwrap_or_default();
        assert!(x.contains("县级层面统筹设立"), "{x}");
        assert!(
            x.contains("提供全链条就业公共服务"),
            "the measure's body: {x}"
        );
        assert!(!x.contains("乡镇"), "the next measure stays out: {x}");
        // A sentence that is no title comes back as it is.
        let t = "县级以上公共就业人才服务机构要合理配备专业队伍,提供全链条就业公共服务。";
        assert_eq!(super::super::focus::with_title_body(&e[0].text, t, 160), t);
        // A list item is no title: what follows is the next item, not its body.
        let items = "（一）有明确的章程。（二）有固定场所。";
        assert_eq!(
            super::super::focus::with_title_body(items, "（一）有明确的章程。", 160),
            "（一）有明确的章程。"
        );
    }

    #[test]
    fn an_extract_that_introduces_a_list_brings_its_items() {
        let mut e = ev();
        e[0].section = "第四章 就业服务和管理".into();
        e[0].article = Some("第三十九条至第四十条".into());
        e[0].text = "第三十九条 国家鼓励社会各方面依法开展就业服务活动。\n第四十条 设立职业中介机构应当具备下列条件：\n（一）有明确的章程和管理制度；\n（二）有开展业务必备的固定场所；\n（三）法律、法规规定的其他条件。".into();
        let q = "开职业中介机构要具备哪些条件？";
        let x = Verifier::new(e.to_vec(), q).extract("").unwrap_or_default();
        assert!(
            x.contains(
                "第四十条：设立职业中介机构应当具备下列条件：（一）有明确的章程和管理制度；（二）"
            ),
            "{x}"
        );
        assert!(x.contains("其他条件"), "{x}");
    }

    #[test]
    fn a_true_sentence_from_a_neighbouring_article_is_not_an_answer() {
        let evidence = vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "济南市妇女权益保障若干规定".into(),
            doc_number: String::new(),
            section: String::new(),
            article: None,
            text: "第十一条 在确定由市人民政府表彰的劳动模范、先进工作者名额时，女性比例应当占百分之二十五以上。第十二条 各级人民政府及教育行政管理部门应当扶持和帮助残疾适龄女性儿童少年完成义务教育。".into(),
        }];
        let q = "济南市政府表彰劳动模范，女性要占多少比例？";
        let mut v = Verifier::new(evidence.clone(), q);
        assert_eq!(
            v.sentence("各级人民政府应当扶持和帮助残疾适龄女性儿童少年完成义务教育[1]。"),
            None
        );
        assert!(v.missed_strong_answer(), "the answer is still to be given");
        let mut v = Verifier::new(evidence, q);
        assert!(v.sentence("女性比例应当占百分之二十五以上[1]。").is_some());
        assert!(!v.missed_strong_answer());
    }

    #[test]
    fn supported_numbers_stay_and_get_a_marker() {
        let mut v = Verifier::new(ev(), Q);
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
    fn a_wrong_number_or_date_is_dropped_not_pasted_over() {
        let mut v = Verifier::new(ev(), Q);
        assert_eq!(
            v.sentence("高校毕业生可以获得一次性求职补贴3000元[1]。"),
            None
        );
        assert_eq!(v.sentence("到2025年底建成平台。"), None);
        assert!(v.cited_nothing());
        // Nothing survived: the answer is the evidence sentence itself, with its source.
        let x = v.extract("").expect("extract");
        assert!(
            x.starts_with("根据《关于做好就业服务的通知》一、总体要求：") && x.contains("1000元"),
            "{x}"
        );
        assert!(!v.cited_nothing());
    }

    #[test]
    fn a_strong_match_leads_and_the_model_only_adds_to_it() {
        let q = "高校毕业生一次性求职补贴多少钱，怎么领？";
        let subsidy = vec![Evidence {
            text: "对符合条件的高校毕业生给予一次性求职补贴1000元。高校毕业生一次性求职补贴由学校统一申请，经审核后发放到本人社保卡。".into(),
            ..ev().remove(0)
        }];
        let mut v = Verifier::new(subsidy.clone(), q);
        let lead = v.lead().expect("a strong match leads");
        assert_eq!(
            lead,
            "根据《关于做好就业服务的通知》一、总体要求：高校毕业生一次性求职补贴由学校统一申请，经审核后发放到本人社保卡[1]。"
        );
        assert!(!v.missed_strong_answer(), "the strong sentence was said");
        // The amount's sentence answers too and was not said: the model may add it.
        assert!(!v.leaves_nothing_to_add());
        // The model saying the same sentence again adds nothing...
        assert_eq!(
            v.sentence("一次性求职补贴由学校统一申请，审核后发放到本人社保卡[1]。"),
            None
        );
        assert_eq!(v.verdicts.last(), Some(&Verdict::Restated(1)));
        // ...a sentence resting on another evidence sentence adds the amount, and is shown...
        let more = v.sentence("符合条件的高校毕业生可获得一次性求职补贴1000元[1]。");
        assert_eq!(
            more.as_deref(),
            Some("符合条件的高校毕业生可获得一次性求职补贴1000元[1]。")
        );
        // ...an invented amount is still dropped, and the extract is never given twice.
        assert_eq!(v.sentence("求职补贴为每人3000元[1]。"), None);
        assert_eq!(v.extract(""), None);
        assert_eq!(
            v.verdicts,
            vec![
                Verdict::Extracted(1),
                Verdict::Restated(1),
                Verdict::Supported(1),
                Verdict::Dropped
            ]
        );
        assert_eq!(v.citations().len(), 1);
        // Only the amount's sentence answers (the other states a platform target): the lead
        // says all there is.
        let mut v = Verifier::new(ev(), Q);
        assert!(!v.leaves_nothing_to_add(), "nothing said yet");
        assert!(v.lead().is_some_and(|x| x.contains("1000元")));
        assert!(v.leaves_nothing_to_add());
        // Without the lead the model's restatement is the answer, as before.
        let mut v = Verifier::new(subsidy, q);
        assert!(v
            .sentence("一次性求职补贴由学校统一申请，审核后发放到本人社保卡[1]。")
            .is_some());
        // A question no sentence matches strongly: the model answers first.
        let broad = "我想了解一下有什么政策？";
        let mut v = Verifier::new(ev(), broad);
        assert_eq!(v.lead(), None);
        assert!(v.verdicts.is_empty());
    }

    #[test]
    fn sentences_without_numbers_are_checked_too() {
        let mut v = Verifier::new(ev(), "全省要建成什么平台？");
        assert_eq!(v.sentence("养老金每月上涨八百元。"), None);
        assert_eq!(v.sentence("建议您咨询当地人社部门。"), None);
        assert_eq!(
            v.sentence("全省将建成就业服务平台[1]。").as_deref(),
            Some("全省将建成就业服务平台[1]。")
        );
    }

    #[test]
    fn an_echo_of_the_question_is_dropped() {
        let e = vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "实施意见".into(),
            doc_number: String::new(),
            section: String::new(),
            article: None,
            text: "在济南、青岛、烟台设立残疾人创业专区，提供场地和孵化服务。".into(),
        }];
        let q = "残疾人有没有专门的创业专区？";
        let mut v = Verifier::new(e, q);
        assert_eq!(v.sentence("残疾人有专门的创业专区[1]。"), None, "an echo");
        assert!(v
            .sentence("残疾人创业专区设在济南、青岛、烟台[1]。")
            .is_some());
    }

    #[test]
    fn two_measures_joined_into_one_claim_are_rejected() {
        let e = vec![Evidence {
            n: 1,
            doc_id: "d".into(),
            title: "实施意见".into(),
            doc_number: String::new(),
            section: String::new(),
            article: None,
            text: "为高校毕业生提供就业见习岗位；为退役军人提供适应性培训和职业指导。".into(),
        }];
        let q = "有哪些就业服务？";
        let mut v = Verifier::new(e, q);
        assert_eq!(
            v.sentence("退役军人可以参加就业见习岗位[1]。"),
            None,
            "the group of one measure with the service of the other"
        );
        assert!(v.sentence("高校毕业生可以参加就业见习岗位[1]。").is_some());
        assert!(v.sentence("退役军人可以接受适应性培训[1]。").is_some());
    }

    #[test]
    fn sentences_split_on_chinese_punctuation() {
        assert_eq!(
            split_sentences("第一句。第二句！第三"),
            vec!["第一句。", "第二句！", "第三"]
        );
    }
}
