//! Question-focused evidence: what a question asks for, and which sentences of the retrieved
//! passages answer it. The small model answers far better from the two or three sentences that
//! hold the fact than from whole chunks, and shorter prompts prefill faster.

use std::collections::HashSet;

use super::verify::{split_sentences, Evidence};

/// What kind of fact a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerType {
    /// 叫什么, 哪个, 什么是: a name.
    Name,
    /// 什么时候, 何时: a time or moment.
    Time,
    /// 多久, 多长时间, 期限: a duration.
    Duration,
    /// 多少, 比例, 标准, 额度: a number or share.
    Number,
    /// 哪里, 去哪, 在哪: a place or channel.
    Place,
    /// 收费吗, 要钱吗, 免费吗: whether something costs money.
    Fee,
    /// 怎么罚, 后果, 处罚: what happens to whoever breaks a rule.
    Consequence,
    /// 条件, 能不能, 符合, 可以吗: conditions.
    Conditions,
    /// 怎么办, 怎么申请, 流程: steps.
    Steps,
    /// Anything else.
    Other,
}

/// The answer type of a question, from its question words (first match in this order).
pub fn answer_type(question: &str) -> AnswerType {
    RULES
        .iter()
        .find(|(_, words)| words.iter().any(|w| question.contains(w)))
        .map_or(AnswerType::Other, |(t, _)| *t)
}

/// Question words per answer type, in the order they are tried.
const RULES: &[(AnswerType, &[&str])] = &[
    (
        AnswerType::Time,
        &[
            "什么时候",
            "何时",
            "啥时候",
            "几时",
            "什么时间",
            "哪天",
            "哪一天",
            "哪年",
            "哪一年",
        ],
    ),
    (
        AnswerType::Duration,
        &[
            "多久",
            "多长时间",
            "几年",
            "几个月",
            "几天",
            "期限",
            "多长",
            "多少天",
            "多少年",
            "多少日",
            "几日",
        ],
    ),
    (
        AnswerType::Number,
        &[
            "多少",
            "比例",
            "几成",
            "标准是",
            "额度",
            "多高",
            "几次",
            "百分之",
            "怎么算",
            "怎么计算",
            "如何计算",
            "几名",
            "几人",
            "几个人",
        ],
    ),
    (
        AnswerType::Place,
        &[
            "哪里",
            "哪儿",
            "在哪",
            "去哪",
            "什么地方",
            "哪个部门",
            "找谁",
        ],
    ),
    (
        AnswerType::Fee,
        &[
            "收费吗",
            "收费么",
            "要钱吗",
            "花钱吗",
            "要花钱",
            "收钱吗",
            "免费吗",
            "交钱吗",
            "交费吗",
            "收不收",
            "要不要钱",
            "挂号费",
            "的钱吗",
        ],
    ),
    (
        AnswerType::Consequence,
        &["怎么罚", "处罚", "罚款", "罚多少", "后果", "追究"],
    ),
    (
        AnswerType::Name,
        &["叫什么", "哪个", "哪些", "什么是", "是什么", "名称"],
    ),
    (
        AnswerType::Conditions,
        &[
            "条件",
            "能不能",
            "可不可以",
            "符合",
            "可以吗",
            "能否",
            "是否",
            "资格",
        ],
    ),
    (
        AnswerType::Steps,
        &[
            "怎么办",
            "怎么申请",
            "如何申请",
            "流程",
            "手续",
            "怎么领",
            "如何办理",
            "怎么办理",
            "步骤",
        ],
    ),
];

/// Numerals that count something: Arabic digits, or Chinese numerals followed by a unit or
/// share ("十二个月", "百分之五十", "二倍"). Article and chapter numbers ("第十二条") are
/// labels, not answers.
fn has_quantity(sentence: &str) -> bool {
    const NUMERALS: &str = "零〇一二两三四五六七八九十百千万";
    const UNITS: &str = "元年个月日天周岁倍人名次项%％分";
    let chars: Vec<char> = sentence.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            return true;
        }
        if NUMERALS.contains(c) {
            let label = i > 0 && chars[i - 1] == '第';
            let start = i;
            while i < chars.len() && NUMERALS.contains(chars[i]) {
                i += 1;
            }
            let unit = chars.get(i).is_some_and(|u| UNITS.contains(*u));
            // "百分之" / "千分之": the share follows.
            let share = chars[start..i].iter().any(|c| "百千万".contains(*c))
                && chars.get(i) == Some(&'分');
            if !label && (unit || share) {
                return true;
            }
            continue;
        }
        i += 1;
    }
    false
}

/// Whether a sentence holds the kind of fact asked for.
pub fn has_answer(t: AnswerType, sentence: &str) -> bool {
    has_answer_beyond(t, sentence, "")
}

/// Whether a sentence holds the kind of fact asked for beyond what `question` already says: the
/// heading "设置就业创业服务窗口" names a place only with the question's own word (窗口); the
/// answer names another (综合便民服务中心).
pub fn has_answer_beyond(t: AnswerType, sentence: &str, question: &str) -> bool {
    // The question words themselves ("什么时候" holds 时) say nothing about the answer.
    let mut question = question.to_string();
    for (_, words) in RULES {
        for w in *words {
            question = question.replace(w, " ");
        }
    }
    let question = question.as_str();
    let any = |ws: &[&str]| {
        ws.iter()
            .any(|w| sentence.contains(w) && !question.contains(w))
    };
    let quantity = has_quantity(sentence);
    match t {
        AnswerType::Duration => quantity && any(&["年", "月", "日", "天", "小时", "周", "期"]),
        AnswerType::Number => quantity || any(&["%", "％", "分之"]),
        AnswerType::Time => {
            (quantity && any(&["年", "月", "日"]))
                || any(&[
                    "之日",
                    "以内",
                    "日内",
                    "期间",
                    "之前",
                    "以前",
                    "届满",
                    "起施行",
                    "时",
                ])
        }
        AnswerType::Place => any(&[
            "市场", "驿站", "中心", "窗口", "平台", "大厅", "站", "机构", "部门", "网站", "基地",
            "园", "县", "社区", "街道",
        ]),
        AnswerType::Name => any(&["《", "“", "称为", "即", "是指", "包括"]),
        AnswerType::Fee => any(&[
            "免费",
            "免收",
            "免除",
            "不得收",
            "收取",
            "收费",
            "减免",
            "补助",
            "补贴",
            "承担",
        ]),
        AnswerType::Consequence => any(&[
            "罚款",
            "责令",
            "处分",
            "赔偿",
            "滞纳金",
            "吊销",
            "追究",
            "承担",
            "没收",
            "警告",
        ]),
        AnswerType::Conditions => {
            any(&["应当", "符合", "条件", "须", "具备", "可以", "不得", "满"])
        }
        AnswerType::Steps => any(&["申请", "办理", "提交", "向", "登记", "提供", "经"]),
        AnswerType::Other => true,
    }
}

pub use retrieval::rerank::key_terms;

/// The noun a name question asks about: the last two characters of what follows 哪个/什么
/// ("可以用哪个线上平台？" → 平台), or of what precedes 叫什么/是什么 ("服务品牌叫什么？" → 品牌).
fn asked_noun(question: &str) -> Option<String> {
    let stop = |c: char| "？?。，,！!、 吗呢呀".contains(c);
    let last_two = |s: &str| -> Option<String> {
        let c: Vec<char> = s.chars().collect();
        (c.len() >= 2).then(|| c[c.len() - 2..].iter().collect())
    };
    for w in ["哪个", "哪家", "哪一个", "什么"] {
        if let Some(i) = question.find(w) {
            let after: String = question[i + w.len()..]
                .chars()
                .take_while(|c| !stop(*c))
                .collect();
            if let Some(n) = last_two(&after) {
                return Some(n);
            }
        }
    }
    for w in ["叫什么", "是什么", "的名称"] {
        if let Some(i) = question.find(w) {
            let before = question[..i].trim_end_matches('的');
            let cut: String = before.chars().rev().take_while(|c| !stop(*c)).collect();
            let before: String = cut.chars().rev().collect();
            if let Some(n) = last_two(&before) {
                return Some(n);
            }
        }
    }
    None
}

/// Characters after a quoted name within which the asked noun must end: the two-character
/// noun after a qualifier of up to four ("“乐业山东”就业服务品牌").
const NOUN_WITHIN: usize = 6;

/// The names `sentence` gives to the thing a name question asks about: quoted names followed
/// (within a few characters) by the asked noun — for "退役军人可以用哪个线上平台？" and
/// "……利用“军岗在线”平台、“数智就业”服务区等载体……", 军岗在线 (the 服务区 is another kind of
/// thing). Empty when the question asks for no name or the sentence names none that way.
pub fn names_asked(question: &str, sentence: &str) -> Vec<String> {
    if answer_type(question) != AnswerType::Name {
        return Vec::new();
    }
    let Some(noun) = asked_noun(question) else {
        return Vec::new();
    };
    let chars: Vec<char> = sentence.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let close = match chars[i] {
            '“' => '”',
            '"' => '"',
            '「' => '」',
            '《' => '》',
            _ => {
                i += 1;
                continue;
            }
        };
        let Some(len) = chars[i + 1..].iter().position(|c| *c == close) else {
            break;
        };
        let name: String = chars[i + 1..i + 1 + len].iter().collect();
        // The noun right after the name, or after a short qualifier ("”服务平台").
        let after: String = chars[i + 2 + len..].iter().take(NOUN_WITHIN).collect();
        if after.contains(noun.as_str()) && !name.is_empty() && len <= 20 {
            names.push(name);
        }
        i += len + 2;
    }
    names
}

/// A title or heading line ("中华人民共和国就业促进法", "第九章 附则"): no sentence end, so it
/// states nothing, however many of the question's words it holds.
fn is_heading(s: &str) -> bool {
    !s.ends_with(['。', '；', '！', '？', '!', '?', ';', '：', ':', '，'])
        && s.chars().count() <= 40
}

/// The question without the names of the evidence's documents it says ("社会保险法是哪年开始
/// 施行的？" → "是哪年开始施行的？"): the name tells which document, never which sentence, and
/// its words match the document's metadata lines better than the article that answers.
/// A name is a run of at least 4 characters that ends the title (after its country or
/// province prefix), or any run of 6 or more shared with the title. Also returns the titles
/// the question names.
fn document_names<'e>(question: &str, evidence: &'e [Evidence]) -> (String, Vec<&'e str>) {
    let mut q = question.to_string();
    let mut named = Vec::new();
    let mut titles: Vec<&str> = evidence.iter().map(|e| e.title.as_str()).collect();
    titles.sort_unstable();
    titles.dedup();
    for title in titles {
        let t: Vec<char> = title.trim_start_matches("中华人民共和国").chars().collect();
        let qc: Vec<char> = q.chars().collect();
        let mut best: Option<(usize, usize, usize)> = None; // (len, q start, t end)
        for i in 0..qc.len() {
            for j in 0..t.len() {
                let mut l = 0;
                while i + l < qc.len() && j + l < t.len() && qc[i + l] == t[j + l] {
                    l += 1;
                }
                if best.is_none_or(|b| l > b.0) {
                    best = Some((l, i, j + l));
                }
            }
        }
        if let Some((len, start, end)) = best {
            let ends_title = end == t.len() || t[end..].iter().all(|c| "》〉）)".contains(*c));
            if len >= 6 || (len >= 4 && ends_title) {
                named.push(title);
                q = qc[..start]
                    .iter()
                    .chain(std::iter::once(&' '))
                    .chain(&qc[start + len..])
                    .collect();
            }
        }
    }
    (q, named)
}

/// Added to the sentences of a document the question names ("残疾人保障法什么时候开始施行？":
/// the law's own 施行 article, not a city regulation's).
const NAMED_DOCUMENT: f32 = 0.1;

/// A term's weight is its inverse sentence frequency among the candidates to this power: above
/// 1 the rare words count for more than the long shared phrases, whose many character pairs
/// otherwise outweigh them (`leye-eval evidence` when it was chosen: power 1 → 0.807 of the
/// facts in the extract, 1.5 → 0.818, 2 → 0.801).
const IDF_POWER: f32 = 1.5;

/// How much a sentence holding the kind of fact asked for gains over one that does not: a
/// factor on its term score and an addition (chosen with `leye-eval evidence`: the addition
/// alone let any sentence with a number win, the factor alone left a well-matched sentence
/// without the fact ahead).
const TYPED_GAIN: (f32, f32) = (1.2, 0.1);

/// The factor on the score of a sentence that states no consequence (罚款, 责令, 赔偿, …) for a
/// question that asks for one ("……会被怎么罚？"). The act the question names is said word for
/// word in the prohibition ("（六）……向求职者收取押金；") while the penalty article refers to it
/// ("违反本法规定，职业中介机构向劳动者收取押金的，……处以罚款"), so the prohibition holds
/// more of the question's words, yet it cannot answer what follows from breaking it.
const NO_CONSEQUENCE: f32 = 0.5;

/// One evidence sentence with its place and score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Evidence number.
    pub n: usize,
    /// Index of the sentence in its passage.
    pub index: usize,
    /// The sentence.
    pub text: String,
    /// Higher is better.
    pub score: f32,
}

/// Scores every sentence of every passage for the question: the weighted share of the
/// question's key terms it holds, plus a bonus when it has the kind of fact asked for; earlier
/// passages (better ranked) win ties. A term's weight falls with the number of candidate
/// sentences that hold it: the topic words ("养老保险", "个人账户") are in every sentence of the
/// retrieved passages and tell none apart, the rarer words ("提前", "死亡") point to the one
/// that answers.
pub fn rank_sentences(question: &str, evidence: &[Evidence]) -> Vec<Scored> {
    let (unnamed, named) = document_names(question, evidence);
    let q = key_terms(&super::evidence::with_document_words(&unnamed));
    let t = answer_type(question);
    let mut candidates = Vec::new();
    for (rank, e) in evidence.iter().enumerate() {
        for (index, s) in split_sentences(&e.text).into_iter().enumerate() {
            let s = s.trim().to_string();
            if s.chars().count() < 4 || is_heading(&s) {
                continue;
            }
            let terms = key_terms(&s);
            let bonus = if named.contains(&e.title.as_str()) {
                NAMED_DOCUMENT
            } else {
                0.0
            };
            candidates.push((rank, e.n, index, s, terms, bonus));
        }
    }
    let n = candidates.len() as f32;
    let weight = |term: &(char, char)| {
        let df = candidates.iter().filter(|c| c.4.contains(term)).count() as f32;
        ((n + 1.0) / (df + 0.5)).ln().powf(IDF_POWER)
    };
    // The options of an either-or question count once and alike: a sentence that names one
    // of them (单位) is as good as one that names both (用人单位和个人依法缴纳社会保险费) or
    // the rarer one, so the question's other terms (工伤保险费) decide. The phrase's terms
    // across the two options (交还, 还是, 是个) count for nothing.
    let either = either_or(question);
    let phrase = either
        .as_ref()
        .map(|(p, _, _)| key_terms(p))
        .unwrap_or_default();
    let options: Vec<HashSet<(char, char)>> = either
        .iter()
        .flat_map(|(_, a, b)| [key_terms(a), key_terms(b)])
        .collect();
    let weights: Vec<((char, char), f32)> = q
        .iter()
        .filter(|b| !phrase.contains(b))
        .map(|b| (*b, weight(b)))
        .collect();
    // Each option weighs the mean of the two.
    let option_total = options
        .iter()
        .map(|o| o.iter().map(&weight).sum::<f32>())
        .sum::<f32>()
        / options.len().max(1) as f32;
    let total: f32 = weights.iter().map(|(_, w)| w).sum::<f32>() + option_total;
    let mut out: Vec<Scored> = candidates
        .into_iter()
        .map(|(rank, n, index, s, terms, bonus)| {
            // The share of an option's terms held, unweighted: the rarer option is no
            // better an answer.
            let option_share = options
                .iter()
                .map(|o| {
                    o.iter().filter(|b| terms.contains(b)).count() as f32 / o.len().max(1) as f32
                })
                .fold(0.0, f32::max);
            let held: f32 = weights
                .iter()
                .filter(|(b, _)| terms.contains(b))
                .map(|(_, w)| w)
                .sum::<f32>()
                + option_share * option_total;
            let coverage = if total > 0.0 { held / total } else { 0.0 };
            // The kind of fact asked for raises a sentence that is about the question; it
            // does not lift one that only has a number ("……15日内书面报告" for
            // "台账要保存几年").
            let typed = if t != AnswerType::Other && has_answer_beyond(t, &s, question) {
                TYPED_GAIN
            } else if t == AnswerType::Consequence {
                (NO_CONSEQUENCE, 0.0)
            } else {
                (1.0, 0.0)
            };
            Scored {
                n,
                index,
                text: s,
                score: coverage * typed.0 + typed.1 + bonus - 0.01 * rank as f32,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The either-or phrase of a question and its two options ("工伤保险费是单位交还是个人交？" →
/// ("单位交还是个人交", "单位交", "个人交")): the second option runs from 还是 to the next
/// punctuation, the first is as long, just before 还是 (the two are usually said alike).
fn either_or(question: &str) -> Option<(String, String, String)> {
    let at = question.find("还是")?;
    let second: String = question[at + "还是".len()..]
        .chars()
        .take_while(|c| !"？?。，,！!；;、 吗呢".contains(*c))
        .collect();
    let n = second.chars().count();
    let before: Vec<char> = question[..at].chars().collect();
    if n == 0 || before.len() < n {
        return None;
    }
    let first: String = before[before.len() - n..].iter().collect();
    Some((format!("{first}还是{second}"), first, second))
}

/// The sentences of a passage, trimmed: what the ranked sentences are compared with.
fn trimmed_sentences(text: &str) -> Vec<String> {
    split_sentences(text)
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect()
}

/// `sentence` of `text` followed by the items of the list it introduces, when it introduces
/// one ("……下列条件：（一）……；（二）……"); the sentence alone otherwise.
pub fn with_list_items(text: &str, sentence: &str) -> String {
    let sentences = trimmed_sentences(text);
    let mut out = sentence.to_string();
    if let Some(i) = sentences.iter().position(|s| s == sentence.trim()) {
        for j in list_items_after(&sentences, i) {
            out.push_str(&sentences[j]);
        }
    }
    out
}

/// A measure's title read with its body: "（三）县级层面统筹设立就业创业综合服务场所。" says only
/// what the measure is called, the sentences after it say what it does ("……提供全链条
/// 就业公共服务"). A title is a short sentence (at most [`TITLE_CHARS`]) that opens with a section
/// marker; the sentences that follow it, up to the next marker, are added while the whole
/// stays within `max` characters. Any other sentence comes back as it is.
pub fn with_title_body(text: &str, sentence: &str, max: usize) -> String {
    use knowledge::chunking::{marker, Marker};
    let sentence = sentence.trim();
    let mut out = sentence.to_string();
    if sentence.chars().count() > TITLE_CHARS
        || !matches!(marker(sentence), Some(Marker::Section(_)))
        || !sentence.ends_with('。')
    {
        return out;
    }
    let sentences = trimmed_sentences(text);
    let Some(i) = sentences.iter().position(|s| s == sentence) else {
        return out;
    };
    for s in sentences.iter().skip(i + 1).filter(|s| !s.is_empty()) {
        if marker(s).is_some() || out.chars().count() + s.chars().count() > max {
            break;
        }
        out.push_str(s);
    }
    out
}

/// The longest sentence [`with_title_body`] takes for a measure's title (the chunker's section
/// titles are cut at the same length).
const TITLE_CHARS: usize = 40;

/// The items of the list sentence `i` introduces ("……下列条件：" then "（一）…", "(2)…",
/// "3.…"), by index; none when it introduces none.
fn list_items_after(sentences: &[String], i: usize) -> Vec<usize> {
    use knowledge::chunking::{marker, Marker};
    let mut items = Vec::new();
    if !sentences.get(i).is_some_and(|s| s.ends_with(['：', ':'])) {
        return items;
    }
    for (j, s) in sentences.iter().enumerate().skip(i + 1) {
        // (A line break after "；" splits off an empty piece.)
        if s.is_empty() {
            continue;
        }
        if !matches!(marker(s), Some(Marker::Section(level)) if level >= 4) {
            break;
        }
        items.push(j);
    }
    items
}

/// The passage cut down to the sentences that answer and their neighbours, in passage order,
/// within `max_chars`; the passage's start when none scores.
pub fn focus_passage(question: &str, e: &Evidence, max_chars: usize) -> String {
    let sentences = trimmed_sentences(&e.text);
    let ranked = rank_sentences(question, std::slice::from_ref(e));
    let mut keep: Vec<usize> = Vec::new();
    let mut used = 0;
    for s in ranked.iter().filter(|s| s.score > 0.0) {
        // A sentence that introduces a list ("应当具备下列条件：") brings its items before any
        // neighbour: they are what it says, and they rarely share the question's words
        // ("章程", "固定场所").
        let items = list_items_after(&sentences, s.index);
        let order = std::iter::once(s.index)
            .chain(items)
            .chain([s.index + 1, s.index.wrapping_sub(1)]);
        for i in order {
            let Some(text) = sentences.get(i) else {
                continue;
            };
            if keep.contains(&i) {
                continue;
            }
            let len = text.chars().count();
            if used + len > max_chars && !keep.is_empty() {
                continue;
            }
            keep.push(i);
            used += len;
        }
        if used >= max_chars {
            break;
        }
    }
    if keep.is_empty() {
        return e.text.chars().take(max_chars).collect();
    }
    keep.sort_unstable();
    let mut out = String::new();
    let mut last = None;
    for i in keep {
        // Only text left out is marked, not the empty pieces between two kept sentences.
        if last.is_some_and(|l: usize| (l + 1..i).any(|k| !sentences[k].is_empty())) {
            out.push('…');
        }
        out.push_str(&sentences[i]);
        last = Some(i);
    }
    out.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_question_gets_the_names_of_the_thing_it_asks_about() {
        let s =
            "利用全省退役军人“军岗在线”平台、“数智就业”服务区等载体为退役军人提供就业公共服务。";
        assert_eq!(
            names_asked("退役军人找工作可以用哪个线上平台？", s),
            vec!["军岗在线".to_string()]
        );
        // The other kind of thing the sentence names.
        assert_eq!(
            names_asked("退役军人可以用哪个服务区？", s),
            vec!["数智就业".to_string()]
        );
        // The noun before 叫什么, a qualifier between name and noun.
        assert_eq!(
            names_asked(
                "山东的就业服务品牌叫什么？",
                "塑强“乐业山东”就业服务品牌，构建高质量就业服务体系。"
            ),
            vec!["乐业山东".to_string()]
        );
        // Not a name question, or no name given to the noun asked about.
        assert!(names_asked("退役军人就业有什么补贴？", s).is_empty());
        assert!(names_asked("退役军人可以用哪个平台？", "各地建设就业服务平台。").is_empty());
        assert!(names_asked("可以参加哪个专项行动？", s).is_empty());
    }

    fn ev(n: usize, text: &str) -> Evidence {
        Evidence {
            n,
            doc_id: "d".into(),
            title: "t".into(),
            doc_number: String::new(),
            section: String::new(),
            article: None,
            text: text.into(),
        }
    }

    #[test]
    fn a_penalty_question_is_answered_by_the_penalty_not_by_the_prohibition() {
        // The prohibition says the question's act word for word; the penalty refers to it in
        // the law's own words (劳动者, not 求职者).
        let e = vec![
            ev(
                1,
                "第二十八条 人力资源服务机构不得有下列行为：\n（五）介绍求职者从事法律、法规禁止的职业；\n\
                 （六）扣押求职者的居民身份证和其他证件，或者向求职者收取押金；",
            ),
            ev(
                2,
                "第六十六条 违反本法规定，中介机构扣押劳动者居民身份证等证件的，由劳动行政部门责令限期\
                 退还劳动者，并依照有关法律规定给予处罚。\n违反本法规定，向劳动者收取押金的，\
                 由劳动行政部门责令限期退还劳动者，并以每人五百元以上二千元以下的标准处以罚款。",
            ),
        ];
        let q = "职业中介向求职者收押金，会被怎么罚？";
        let best = &rank_sentences(q, &e)[0];
        assert!(best.text.contains("处以罚款"), "{}", best.text);
        // Asked what the rule is, the prohibition answers.
        let best = &rank_sentences("人力资源服务机构能向求职者收取押金吗？", &e)[0];
        assert_eq!(best.n, 1, "{}", best.text);
    }

    #[test]
    fn an_either_or_question_is_answered_by_the_sentence_about_its_subject() {
        assert_eq!(
            either_or("工伤保险费是单位交还是个人交？"),
            Some((
                "单位交还是个人交".to_string(),
                "单位交".to_string(),
                "个人交".to_string()
            ))
        );
        assert_eq!(either_or("失业保险金按月发吗？"), None);
        assert_eq!(either_or("还是要去现场吗？"), None);
        // The subject's words are in most sentences of the passage, so they weigh little; the
        // general article names both options and would win if they counted twice.
        let e = vec![
            ev(
                1,
                "第三十三条 职工应当参加工伤保险，由用人单位缴纳工伤保险费，职工不缴纳工伤保险费。\
                 第三十五条 用人单位应当根据社会保险经办机构确定的费率缴纳工伤保险费。\
                 第四十一条 用人单位未依法缴纳工伤保险费的，由用人单位支付工伤保险待遇。\
                 第三十六条 职工因工作原因受到事故伤害的，应当享受工伤保险待遇。",
            ),
            ev(
                2,
                "第四条 用人单位和个人依法缴纳社会保险费，有权查询缴费记录。\
                 第五条 县级以上人民政府将社会保险事业纳入国民经济和社会发展规划。",
            ),
        ];
        let best = &rank_sentences("工伤保险费是单位交还是个人交？", &e)[0];
        assert!(best.text.starts_with("第三十三条"), "{}", best.text);
    }

    #[test]
    fn headings_never_answer_and_the_place_must_be_new() {
        let e = ev(
            1,
            "中华人民共和国就业促进法\n第九章 附则\n第六十九条 本法自2008年1月1日起施行。",
        );
        let r = rank_sentences("就业促进法是从哪天开始施行的？", std::slice::from_ref(&e));
        assert!(r[0].text.contains("2008年1月1日"), "{r:?}");
        assert!(
            r.iter().all(|s| !s.text.starts_with("中华人民共和国")),
            "{r:?}"
        );
        let e = ev(
            1,
            "(四)乡镇(街道)层面科学设置就业创业服务窗口。在乡镇(街道)综合便民服务中心科学设置就业创业服务窗口，为辖区居民提供“一站式”服务。",
        );
        let r = rank_sentences("乡镇街道的就业创业服务窗口设在哪里？", &[e]);
        assert!(r[0].text.contains("综合便民服务中心"), "{r:?}");
        // "什么时候" asks for a time; its own 时 does not rule out "……交接时支付".
        assert!(has_answer_beyond(
            AnswerType::Time,
            "用人单位依法向劳动者支付经济补偿的，应当在办理工作交接时支付。",
            "经济补偿什么时候支付？"
        ));
    }

    #[test]
    fn article_numbers_are_not_quantities() {
        assert!(!has_answer(
            AnswerType::Number,
            "第十二条 各级人民政府应当扶持残疾适龄女性儿童少年完成义务教育。"
        ));
        assert!(has_answer(
            AnswerType::Number,
            "女性比例应当占百分之二十五以上。"
        ));
        assert!(has_answer(AnswerType::Duration, "期限最长为十二个月；"));
        assert!(has_answer(AnswerType::Number, "处二倍以上五倍以下的罚款。"));
        assert!(!has_answer(
            AnswerType::Duration,
            "第四十六条 失业人员应当及时登记。"
        ));
        assert!(has_answer(
            AnswerType::Time,
            "第六十九条 本法自2008年1月1日起施行。"
        ));
        assert!(!has_answer(AnswerType::Time, "中华人民共和国就业促进法"));
    }

    #[test]
    fn question_words_give_the_answer_type() {
        assert_eq!(
            answer_type("就业促进法是从哪天开始施行的？"),
            AnswerType::Time
        );
        assert_eq!(
            answer_type("多少天内要去办就业登记？"),
            AnswerType::Duration
        );
        assert_eq!(answer_type("失业保险金能领多久？"), AnswerType::Duration);
        assert_eq!(answer_type("补贴标准是多少？"), AnswerType::Number);
        assert_eq!(answer_type("零工市场在哪里？"), AnswerType::Place);
        assert_eq!(answer_type("这个平台叫什么？"), AnswerType::Name);
        assert_eq!(answer_type("我符合申请条件吗？"), AnswerType::Conditions);
        assert_eq!(answer_type("创业担保贷款怎么申请？"), AnswerType::Steps);
        assert_eq!(answer_type("经济补偿什么时候支付？"), AnswerType::Time);
        assert_eq!(answer_type("说说就业服务"), AnswerType::Other);
    }

    #[test]
    fn the_sentence_with_the_asked_fact_ranks_first() {
        let e = ev(
            1,
            "各地要加强零工市场建设。零工市场设在县级公共就业服务中心，每县建设一家。\
             失业人员可领取失业保险金，期限最长为24个月。",
        );
        let r = rank_sentences("失业保险金最长能领多久？", std::slice::from_ref(&e));
        assert!(r[0].text.contains("24个月"), "{r:?}");
        let r = rank_sentences("零工市场设在哪里？", &[e]);
        assert!(r[0].text.contains("县级公共就业服务中心"), "{r:?}");
        assert!(!has_answer(
            AnswerType::Duration,
            "可以订立固定期限劳动合同。"
        ));
        assert!(has_answer(
            AnswerType::Duration,
            "应当自用工之日起一个月内订立书面劳动合同。"
        ));
    }

    #[test]
    fn rare_words_outrank_the_topic_every_sentence_shares() {
        // Every sentence is about 养老保险 and 个人账户; only one says 提前. Counted alike, the
        // topic's many character pairs would pick a sentence that does not answer.
        let e = ev(
            1,
            "第十四条 个人账户不得提前支取，记账利率不得低于银行定期存款利率，免征利息税。\
             新型农村社会养老保险待遇由基础养老金和个人账户养老金组成。\
             职工按照国家规定的本人工资的比例缴纳基本养老保险费，记入个人账户。\
             参加基本养老保险的个人死亡的，个人账户养老金余额可以继承。",
        );
        let r = rank_sentences(
            "养老保险个人账户的钱能提前取出来吗？",
            std::slice::from_ref(&e),
        );
        assert!(r[0].text.contains("不得提前支取"), "{r:?}");
        let r = rank_sentences("个人死了，养老保险个人账户里的钱怎么处理？", &[e]);
        assert!(r[0].text.contains("可以继承"), "{r:?}");
    }

    #[test]
    fn the_documents_name_says_which_document_not_which_sentence() {
        let mut e = ev(
            1,
            "2018年12月29日 第十三届全国人民代表大会常务委员会第七次会议《关于修改〈中华人民共和国社会保险法〉的决定》修正\n\
             第九十八条 本法自2011年7月1日起施行。",
        );
        e.title = "中华人民共和国社会保险法".into();
        let q = "社会保险法是哪年开始施行的？";
        let stripped = document_names(q, std::slice::from_ref(&e)).0;
        assert!(!stripped.contains("社会保险法"), "{stripped}");
        let r = rank_sentences(q, &[e.clone()]);
        assert!(r[0].text.contains("2011年7月1日"), "{r:?}");
        // The document the question names wins over another's sentence of the same kind.
        let city = Evidence {
            n: 1,
            title: "青岛市残疾人保障条例".into(),
            text: "第五十二条 本条例自2016年9月1日起施行。".into(),
            ..e.clone()
        };
        let law = Evidence {
            n: 2,
            title: "中华人民共和国残疾人保障法".into(),
            text: "第六十八条 本法自2008年7月1日起施行。".into(),
            ..e.clone()
        };
        let r = rank_sentences("残疾人保障法什么时候开始施行？", &[city, law]);
        assert!(r[0].text.contains("2008年7月1日"), "{r:?}");
        // A topic word shared with a title is no name of it: "残疾人" stays.
        e.title = "青岛市残疾人保障条例".into();
        assert_eq!(
            document_names("残疾人就业保障金怎么交？", &[e.clone()]).0,
            "残疾人就业保障金怎么交？"
        );
        // Six characters or more name the document wherever they stand.
        e.title = "济南市妇女权益保障若干规定".into();
        assert!(!document_names("济南妇女权益保障规定什么时候施行？", &[e])
            .0
            .contains("妇女权益保障"));
    }

    #[test]
    fn costs_and_consequences_are_kinds_of_answer() {
        assert_eq!(answer_type("公共就业服务机构收费吗？"), AnswerType::Fee);
        assert_eq!(
            answer_type("政府办的招聘会能收求职者的钱吗？"),
            AnswerType::Fee
        );
        assert_eq!(
            answer_type("职业中介收押金会被怎么罚？"),
            AnswerType::Consequence
        );
        assert_eq!(
            answer_type("单位欠缴社保会有什么后果？"),
            AnswerType::Consequence
        );
        assert_eq!(answer_type("滞纳金怎么算？"), AnswerType::Number);
        assert_eq!(answer_type("要有几名专职工作人员？"), AnswerType::Number);
        assert!(has_answer(AnswerType::Fee, "提供下列服务，不得收费："));
        assert!(!has_answer(AnswerType::Fee, "应当加强对实习学生的指导。"));
        assert!(has_answer(
            AnswerType::Consequence,
            "由劳动行政部门责令限期退还，并处以罚款。"
        ));
    }

    #[test]
    fn a_sentence_introducing_a_list_brings_its_items() {
        let e = ev(
            1,
            "第三十九条 国家鼓励职业中介机构发展。\n第四十条 设立职业中介机构应当具备下列条件：\n（一）有明确的章程和管理制度；\n（二）有开展业务必备的固定场所、办公设施和一定数额的开办资金；\n（三）有一定数量具备相应职业资格的专职工作人员；\n（四）法律、法规规定的其他条件。\n第四十一条 设立职业中介机构应当在工商行政管理部门办理登记。\n第四十二条 职业中介机构应当建立健全服务台账。",
        );
        let f = focus_passage("开一家职业中介机构要具备哪些条件？", &e, 200);
        assert!(f.contains("下列条件"), "{f}");
        assert!(
            f.contains("章程") && f.contains("固定场所") && f.contains("其他条件"),
            "{f}"
        );
        assert!(
            f.contains("下列条件：（一）有明确的章程和管理制度；（二）"),
            "{f}"
        );
    }

    #[test]
    fn a_focused_passage_keeps_the_answer_and_its_neighbour_not_the_start() {
        let filler = "各地要高度重视，加强组织领导，压实工作责任。".repeat(6);
        let e = ev(
            1,
            &format!("{filler}残疾人专场招聘每年举办不少于2次。举办单位为市级公共就业服务机构。"),
        );
        let f = focus_passage("残疾人专场招聘每年举办几次？", &e, 80);
        assert!(f.contains("不少于2次"), "{f}");
        assert!(f.contains("举办单位"), "the neighbour comes along: {f}");
        assert!(f.chars().count() <= 80);
    }
}
