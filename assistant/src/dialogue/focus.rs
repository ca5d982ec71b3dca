//! Question-focused evidence: what a question asks for, and which sentences of the retrieved
//! passages answer it. The small model answers far better from the two or three sentences that
//! hold the fact than from whole chunks, and shorter prompts prefill faster.

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
        AnswerType::Conditions => {
            any(&["应当", "符合", "条件", "须", "具备", "可以", "不得", "满"])
        }
        AnswerType::Steps => any(&["申请", "办理", "提交", "向", "登记", "提供", "经"]),
        AnswerType::Other => true,
    }
}

pub use retrieval::rerank::key_terms;

/// A title or heading line ("中华人民共和国就业促进法", "第九章 附则"): no sentence end, so it
/// states nothing, however many of the question's words it holds.
fn is_heading(s: &str) -> bool {
    !s.ends_with(['。', '；', '！', '？', '!', '?', ';', '：', ':', '，'])
        && s.chars().count() <= 40
}

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

/// Scores every sentence of every passage for the question: the share of the question's key
/// terms it holds, plus a bonus when it has the kind of fact asked for; earlier passages
/// (better ranked) win ties.
pub fn rank_sentences(question: &str, evidence: &[Evidence]) -> Vec<Scored> {
    let q = key_terms(question);
    let t = answer_type(question);
    let mut out = Vec::new();
    for (rank, e) in evidence.iter().enumerate() {
        for (index, s) in split_sentences(&e.text).into_iter().enumerate() {
            let s = s.trim().to_string();
            if s.chars().count() < 4 || is_heading(&s) {
                continue;
            }
            let terms = key_terms(&s);
            let shared = q.iter().filter(|b| terms.contains(b)).count() as f32;
            let coverage = if q.is_empty() {
                0.0
            } else {
                shared / q.len() as f32
            };
            let typed = if t != AnswerType::Other && has_answer_beyond(t, &s, question) {
                0.25
            } else {
                0.0
            };
            let score = coverage + typed - 0.01 * rank as f32;
            out.push(Scored {
                n: e.n,
                index,
                text: s,
                score,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The passage cut down to the sentences that answer and their neighbours, in passage order,
/// within `max_chars`; the passage's start when none scores.
pub fn focus_passage(question: &str, e: &Evidence, max_chars: usize) -> String {
    let sentences: Vec<String> = split_sentences(&e.text)
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect();
    let ranked = rank_sentences(question, std::slice::from_ref(e));
    let mut keep: Vec<usize> = Vec::new();
    let mut used = 0;
    for s in ranked.iter().filter(|s| s.score > 0.0) {
        for i in [s.index, s.index + 1, s.index.wrapping_sub(1)] {
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
        if last.is_some_and(|l: usize| l + 1 != i) {
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
