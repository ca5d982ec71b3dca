//! 政策申领: "what can I get, what do I need, where do I go".
//!
//! The benefit cards (`knowledge::benefits`) that are active — their source document is in
//! the knowledge base and every quoted span checks out — are evaluated by the rules engine
//! against the facts known of the citizen (kept in the session profile). The dialogue asks
//! for missing facts one at a time, only facts that change a result, at most
//! [`MAX_QUESTIONS`], each with quick-reply options; "不知道" and "不想说" are accepted and
//! remembered (never asked again, never taken as "no"). Then it lists what the citizen
//! qualifies for (what, materials, where, source), what they possibly qualify for and what
//! would decide it. A question about one named benefit ("失业保险金怎么申请") is answered
//! from its card directly. No language model takes part in a decision or in the lists.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use knowledge::benefits::check::{check_card, DocText};
use knowledge::benefits::rules::{evaluate, fact_kind, Eligibility, Fact, FactKind, Facts};
use knowledge::benefits::Card;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Questions asked at most in one interview.
pub const MAX_QUESTIONS: u8 = 4;

/// The active cards.
#[derive(Debug, Clone, Default)]
pub struct Benefits {
    cards: Vec<Card>,
}

impl Benefits {
    /// The cards that check out against `docs` (the others are inactive and never shown).
    pub fn active(cards: Vec<Card>, docs: &[DocText]) -> Self {
        Self {
            cards: cards
                .into_iter()
                .filter(|c| check_card(c, docs).is_empty())
                .collect(),
        }
    }

    /// The active cards.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// Whether any card is active.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The card a question names, when it asks how to get it ("失业保险金怎么申请").
    pub fn named(&self, text: &str) -> Option<&Card> {
        if !ASKS_HOW.iter().any(|w| text.contains(w)) {
            return None;
        }
        self.cards
            .iter()
            .filter(|c| names_of(c).iter().any(|n| text.contains(n.as_str())))
            // The longest name wins ("失业保险金" over a shorter one it contains).
            .max_by_key(|c| names_of(c).iter().map(|n| n.chars().count()).max())
    }
}

fn names_of(c: &Card) -> Vec<String> {
    let mut v = vec![c.name.clone()];
    v.extend(c.aliases.iter().cloned());
    v
}

/// How a question asks for a benefit's procedure.
const ASKS_HOW: &[&str] = &[
    "怎么申请",
    "如何申请",
    "怎么领",
    "如何领",
    "怎么办理",
    "如何办理",
    "去哪办",
    "在哪办",
    "在哪里办",
    "到哪里办",
    "什么材料",
    "哪些材料",
    "带什么",
    "什么条件",
    "哪些条件",
    "条件吗",
    "申领",
];

/// The interview's state in the session profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimState {
    /// What is known of the citizen.
    #[serde(default)]
    pub facts: Facts,
    /// The question waiting for an answer (a fact name, or `group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asking: Option<String>,
    /// Questions asked in this interview.
    #[serde(default)]
    pub asked: u8,
    /// Facts the citizen did not know or did not want to say: never asked again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// A result was given: a correction of a fact recomputes it.
    #[serde(default)]
    pub open: bool,
    /// Sensitive facts the citizen agreed to have stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consented: Vec<String>,
}

/// Facts that are sensitive personal information (health, disability, family income): stored
/// only with the citizen's consent.
pub const SENSITIVE_FACTS: &[&str] = &[DISABLED_FACT, "work_injury", "pregnant", "low_income"];

/// The fact "the citizen has a disability" (also the consent that lets the job-search
/// profile keep the group).
pub const DISABLED_FACT: &str = "group.disabled";

/// The prefix of a consent question's `fact`.
pub const CONSENT: &str = "consent:";

/// Asks to store a sensitive fact the citizen mentioned by themselves.
pub fn consent_question(fact: &str) -> Question {
    Question {
        fact: format!("{CONSENT}{fact}"),
        text: format!(
            "您提到了“{}”的情况。这属于敏感个人信息，仅用于判断您能享受哪些政策。是否同意保存这一信息？",
            knowledge::benefits::rules::fact_label(fact)
        ),
        options: vec!["同意".into(), "不同意".into()],
        why: Some("不同意也可以继续：结果里会说明这一项会影响哪些政策。".into()),
    }
}

/// Reads the answer to a consent question: `Some(true)` agreed, `Some(false)` refused.
pub fn read_consent(text: &str) -> Option<bool> {
    let t = text.trim().trim_end_matches(['。', '.', '！', '!']);
    if t == "2"
        || ["不同意", "不要", "不想", "不愿意", "不用", "算了"]
            .iter()
            .any(|w| t.contains(w))
    {
        Some(false)
    } else if t == "1"
        || ["同意", "可以", "好", "行", "是"]
            .iter()
            .any(|w| t.starts_with(w))
    {
        Some(true)
    } else {
        None
    }
}

impl ClaimState {
    /// Nothing known and no interview (not stored).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A question to the citizen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    /// The fact it asks for (`group` for the group question).
    pub fact: String,
    /// The question.
    pub text: String,
    /// Quick-reply options (the widget's chips; numbered lines on WeChat).
    pub options: Vec<String>,
    /// Why it is asked, for sensitive facts (health, disability, family income).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The main groups a citizen picks from.
const GROUPS: &[(&str, &str)] = &[
    ("group.graduate", "高校毕业生"),
    ("group.migrant", "农村务工人员"),
    ("group.flexible", "灵活就业人员"),
    ("group.veteran", "退役军人"),
    ("group.disabled", "残疾人"),
];

const SENSITIVE: &str =
    "这属于敏感个人信息，仅用于判断您能享受哪些政策，经您同意才保存；不想回答可以回复“不想说”。";

fn question(fact: &str) -> Question {
    let q = |text: &str, options: &[&str]| Question {
        fact: fact.to_string(),
        text: text.to_string(),
        options: options.iter().map(|s| s.to_string()).collect(),
        why: None,
    };
    let mut out = match fact {
        "group" => {
            let mut q = q(
                "您属于以下哪类人群？",
                &[
                    "高校毕业生",
                    "农村务工人员",
                    "灵活就业人员",
                    "退役军人",
                    "残疾人",
                    "都不是",
                ],
            );
            q.why = Some(format!("选“残疾人”时：{SENSITIVE}"));
            q
        }
        "employment_status" => q(
            "您现在的就业状态是？",
            &["失业/没有工作", "在职", "自主创业", "在校学生"],
        ),
        "months_insured" => q(
            "您（和单位）累计缴纳失业保险多长时间了？",
            &["不满1年", "1到5年", "5到10年", "10年以上", "不知道"],
        ),
        "involuntary" => q(
            "您是被辞退、裁员、合同到期等非本人意愿失业的吗？",
            &["是", "不是，主动辞职", "不知道"],
        ),
        "registered_unemployed" => q("您办理失业登记了吗？", &["办了", "还没办", "不知道"]),
        "retirement_age" => q("您到法定退休年龄了吗？", &["到了", "还没到"]),
        "years_insured" => q(
            "您累计缴纳基本养老保险多少年了？",
            &["不满15年", "15年及以上", "不知道"],
        ),
        "hard_to_employ" => q(
            "您是否被认定为就业困难人员（如大龄、享受低保、零就业家庭、连续失业一年以上等）？",
            &["是", "不是", "不知道"],
        ),
        "starting_business" => q(
            "您是否正在或准备创业（开店、办企业、个体经营）？",
            &["是", "不是"],
        ),
        "low_income" => {
            let mut q = q(
                "您家是否享受低保或属于零就业等困难家庭？",
                &["是", "不是", "不想说"],
            );
            q.why = Some(SENSITIVE.into());
            q
        }
        "skill_certificate" => q(
            "您是否经过培训取得了职业资格（技能等级）证书？",
            &["是", "还没有"],
        ),
        "education" => q(
            "您的最高学历是？",
            &["初中及以下", "高中/中专", "大专", "本科", "研究生"],
        ),
        "employer" => q(
            "您是招用人员的用人单位（企业、个体工商户）吗？",
            &["是", "不是"],
        ),
        "work_injury" => {
            let mut q = q(
                "您是否因工作受伤或患职业病，并经过工伤认定？",
                &["是", "不是", "不想说"],
            );
            q.why = Some(SENSITIVE.into());
            q
        }
        "pregnant" => {
            let mut q = q("您是否正在怀孕、生育或哺乳期？", &["是", "不是", "不想说"]);
            q.why = Some(SENSITIVE.into());
            q
        }
        other => q(
            &format!(
                "请问您是否属于：{}？",
                knowledge::benefits::rules::fact_label(other)
            ),
            &["是", "不是", "不知道"],
        ),
    };
    if matches!(fact, "group.disabled") {
        out.why = Some(SENSITIVE.into());
    }
    out
}

/// What a reply says to a pending question.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Facts to record.
    Facts(Vec<(String, Fact)>),
    /// "不知道".
    DontKnow,
    /// "不想说".
    Decline,
    /// Not an answer to the question (a new question, say).
    NotAnAnswer,
}

fn small_number(s: &str) -> Option<f64> {
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    let digit = |c: char| {
        "零一二两三四五六七八九".find(c).map(|i| {
            // "两" shares the value of "二": positions are bytes of 3 each.
            let idx = i / 3;
            if idx >= 3 {
                (idx - 1) as f64
            } else {
                idx as f64
            }
        })
    };
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [a] if *a == '十' => Some(10.0),
        [a] => digit(*a),
        ['十', b] => Some(10.0 + digit(*b)?),
        [a, '十'] => Some(digit(*a)? * 10.0),
        [a, '十', b] => Some(digit(*a)? * 10.0 + digit(*b)?),
        _ => None,
    }
}

fn re(p: &'static str, cell: &'static OnceLock<Regex>) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("static pattern"))
}

/// Reads a reply to the question about `fact`; the option number ("2") counts as the option.
pub fn read_reply(fact: &str, text: &str) -> Reply {
    let t = text.trim().trim_end_matches(['。', '.', '！', '!']);
    let q = question(fact);
    let chosen: String = match t.parse::<usize>() {
        Ok(n) if n >= 1 && n <= q.options.len() => q.options[n - 1].clone(),
        _ => t.to_string(),
    };
    let t = chosen.as_str();
    if ["不想说", "不愿意", "不方便", "保密", "不告诉"]
        .iter()
        .any(|w| t.contains(w))
    {
        return Reply::Decline;
    }
    if ["不知道", "不清楚", "不确定", "说不好", "忘了"]
        .iter()
        .any(|w| t.contains(w))
    {
        return Reply::DontKnow;
    }
    let yes_no = || -> Option<bool> {
        const NO: &[&str] = &[
            "不是", "没有", "还没", "没办", "没", "否", "不到", "还不", "不满",
        ];
        const YES: &[&str] = &["是", "对", "有", "办了", "已经", "到了", "嗯", "好"];
        if NO.iter().any(|w| t.starts_with(w)) || t == "不" {
            Some(false)
        } else if YES.iter().any(|w| t.starts_with(w)) {
            Some(true)
        } else {
            None
        }
    };
    let facts: Vec<(String, Fact)> = match fact {
        "group" => {
            if t.contains("都不是") || t == "不是" || t.contains("都不") {
                GROUPS
                    .iter()
                    .map(|(f, _)| (f.to_string(), Fact::Bool(false)))
                    .collect()
            } else if let Some((chosen, _)) = GROUPS.iter().find(|(_, l)| t.contains(l)) {
                // One group picked: the others of the list are taken as "no" for this
                // interview (a correction like "我也是退役军人" adds one back).
                GROUPS
                    .iter()
                    .map(|(f, _)| (f.to_string(), Fact::Bool(f == chosen)))
                    .collect()
            } else {
                match crate::dialogue::memory::find_group(t) {
                    Some(g) => vec![(format!("group.{}", g.as_str()), Fact::Bool(true))],
                    None => vec![],
                }
            }
        }
        "employment_status" => {
            let v = if ["失业", "没有工作", "没工作", "待业", "下岗"]
                .iter()
                .any(|w| t.contains(w))
            {
                Some("unemployed")
            } else if t.contains("在校") || t.contains("学生") {
                Some("student")
            } else if t.contains("创业") || t.contains("个体") {
                Some("self_employed")
            } else if t.contains("在职") || t.contains("上班") || t.contains("在岗") {
                Some("employed")
            } else {
                None
            };
            v.map(|v| vec![(fact.to_string(), Fact::Text(v.into()))])
                .unwrap_or_default()
        }
        "months_insured" => {
            let months =
                if t.contains("不满1年") || t.contains("不到一年") || t.contains("不满一年")
                {
                    Some(6.0)
                } else if t.contains("1到5年") {
                    Some(12.0)
                } else if t.contains("5到10年") {
                    Some(60.0)
                } else if t.contains("10年以上") {
                    Some(120.0)
                } else {
                    duration_months(t)
                };
            months
                .map(|m| vec![(fact.to_string(), Fact::Number(m))])
                .unwrap_or_default()
        }
        "years_insured" => {
            let years = if t.contains("不满15") {
                Some(10.0)
            } else if t.contains("15年及以上") {
                Some(15.0)
            } else {
                duration_months(t).map(|m| (m / 12.0).floor())
            };
            years
                .map(|y| vec![(fact.to_string(), Fact::Number(y))])
                .unwrap_or_default()
        }
        "education" => education(t)
            .map(|e| vec![(fact.to_string(), Fact::Text(e.into()))])
            .unwrap_or_default(),
        "involuntary" => {
            if t.contains("主动") || t.contains("自己辞") {
                vec![(fact.to_string(), Fact::Bool(false))]
            } else {
                yes_no()
                    .map(|b| vec![(fact.to_string(), Fact::Bool(b))])
                    .unwrap_or_default()
            }
        }
        f => match fact_kind(f) {
            Some(FactKind::Bool) => yes_no()
                .map(|b| vec![(fact.to_string(), Fact::Bool(b))])
                .unwrap_or_default(),
            Some(FactKind::Number) => {
                static N: OnceLock<Regex> = OnceLock::new();
                re(r"([0-9]+|[一二两三四五六七八九十]+)", &N)
                    .captures(t)
                    .and_then(|c| small_number(&c[1]))
                    .map(|n| vec![(fact.to_string(), Fact::Number(n))])
                    .unwrap_or_default()
            }
            _ => vec![],
        },
    };
    if facts.is_empty() {
        Reply::NotAnAnswer
    } else {
        Reply::Facts(facts)
    }
}

fn duration_months(t: &str) -> Option<f64> {
    static D: OnceLock<Regex> = OnceLock::new();
    let c = re(r"([0-9]+|[一二两三四五六七八九十]+)\s*(年|个月|月)", &D).captures(t)?;
    let n = small_number(&c[1])?;
    Some(if &c[2] == "年" { n * 12.0 } else { n })
}

fn education(t: &str) -> Option<&'static str> {
    if t.contains("研究生") || t.contains("硕士") || t.contains("博士") {
        Some("postgraduate")
    } else if t.contains("本科") {
        Some("bachelor")
    } else if t.contains("大专") || t.contains("专科") {
        Some("college")
    } else if ["高中", "中专", "职高", "技校"]
        .iter()
        .any(|w| t.contains(w))
    {
        Some("senior_high")
    } else if t.contains("初中") || t.contains("小学") {
        Some("junior_high")
    } else {
        None
    }
}

/// Facts a message states by itself ("我是2023年毕业的", "被裁员了", "交了三年失业保险").
/// `year` is the current year (for years since graduation). Returns whether anything changed.
pub fn learn_facts(facts: &mut Facts, text: &str, year: i32) -> bool {
    let before = facts.clone();
    for g in crate::dialogue::memory::find_groups(text) {
        facts.set(&format!("group.{}", g.as_str()), Fact::Bool(true));
    }
    if let Some(c) = crate::dialogue::memory::find_city(text) {
        facts.set("city", Fact::Text(c));
    }
    static AGE: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(
        r"([0-9]{2}|[一二三四五六七八九十]{2,3})\s*(?:周岁|岁)",
        &AGE,
    )
    .captures(text)
    {
        if let Some(n) = small_number(&c[1]) {
            facts.set("age", Fact::Number(n));
        }
    }
    static GRAD: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(r"(20[0-9]{2})\s*年?\s*(?:的)?毕业", &GRAD).captures(text) {
        if let Ok(y) = c[1].parse::<i32>() {
            facts.set(
                "years_since_graduation",
                Fact::Number((year - y).max(0) as f64),
            );
            facts.set("group.graduate", Fact::Bool(true));
        }
    } else if text.contains("应届") {
        facts.set("years_since_graduation", Fact::Number(0.0));
    }
    let has = |ws: &[&str]| ws.iter().any(|w| text.contains(w));
    if has(&[
        "被辞退",
        "被裁",
        "裁员",
        "公司倒闭",
        "单位倒闭",
        "破产",
        "合同到期",
        "解除劳动合同",
    ]) {
        facts.set("involuntary", Fact::Bool(true));
        facts.set("employment_status", Fact::Text("unemployed".into()));
    } else if has(&["主动辞职", "自己辞职", "我辞职"]) {
        facts.set("involuntary", Fact::Bool(false));
        facts.set("employment_status", Fact::Text("unemployed".into()));
    } else if has(&["失业了", "下岗", "没工作", "没有工作", "待业"]) {
        facts.set("employment_status", Fact::Text("unemployed".into()));
    }
    if has(&["办了失业登记", "做了失业登记", "已经失业登记", "已失业登记"]) {
        facts.set("registered_unemployed", Fact::Bool(true));
    }
    // "交了三年失业保险", "失业保险交了3年", "缴纳失业保险满两年".
    static INSURED: OnceLock<Regex> = OnceLock::new();
    static INSURED_AFTER: OnceLock<Regex> = OnceLock::new();
    let insured = re(
        r"(?:交|缴)[了纳过满]*([0-9]+|[一二两三四五六七八九十]+)\s*(年|个月|月)(?:的)?(?:失业保险|失业险)",
        &INSURED,
    )
    .captures(text)
    .or_else(|| {
        re(
            r"(?:失业保险|失业险)[^0-9一二两三四五六七八九十。，,]{0,6}([0-9]+|[一二两三四五六七八九十]+)\s*(年|个月|月)",
            &INSURED_AFTER,
        )
        .captures(text)
    });
    if let Some(c) = insured {
        if let Some(n) = small_number(&c[1]) {
            let m = if &c[2] == "年" { n * 12.0 } else { n };
            facts.set("months_insured", Fact::Number(m));
        }
    }
    if has(&["创业", "开店", "开个店", "个体户", "办企业", "开公司"]) && !has(&["不创业", "没创业"])
    {
        facts.set("starting_business", Fact::Bool(true));
    }
    if has(&["低保", "零就业家庭"]) {
        facts.set("low_income", Fact::Bool(true));
    }
    if has(&["就业困难人员"]) && !has(&["是不是就业困难", "算不算就业困难"]) {
        facts.set("hard_to_employ", Fact::Bool(true));
    }
    if has(&["已退休", "到了退休年龄", "到退休年龄了"]) {
        facts.set("retirement_age", Fact::Bool(true));
    }
    if let Some(e) = education(text) {
        if has(&["毕业", "学历", "文化"]) {
            facts.set("education", Fact::Text(e.into()));
        }
    }
    *facts != before
}

/// Questions that ask what one can get ("我失业了能领什么", "我能享受哪些政策", "我符合条件
///吗"): a personal question, not a topic ("人才引进有什么政策" is answered from the
/// documents). "What is there" phrases count only with the citizen as subject.
pub fn is_claim_question(text: &str) -> bool {
    const PERSONAL: &[&str] = &[
        "能领什么",
        "可以领什么",
        "能领哪些",
        "可以领哪些",
        "能享受什么",
        "可以享受什么",
        "能享受哪些",
        "可以享受哪些",
        "能申请什么",
        "可以申请什么",
        "能申请哪些",
        "可以申请哪些",
        "符合条件吗",
        "符合哪些",
        "符合什么政策",
        "能拿什么",
        "能拿哪些",
    ];
    const WHAT_IS_THERE: &[&str] = &[
        "有什么政策",
        "有哪些政策",
        "有什么补贴",
        "有哪些补贴",
        "有什么待遇",
        "有哪些待遇",
        "有什么扶持",
        "有哪些扶持",
        "享受什么政策",
        "享受哪些政策",
    ];
    const FIRST_PERSON: &[&str] = &["我", "本人", "咱"];
    // "退役军人创办小微企业能申请什么贷款？" asks about a topic and is answered from the
    // documents; a claim is the citizen's own ("我…能领什么"), or a bare "能领什么？".
    let personal = FIRST_PERSON.iter().any(|w| text.contains(w)) || text.chars().count() <= 8;
    personal
        && (PERSONAL.iter().any(|w| text.contains(w))
            || (text.contains("符合") && text.contains("条件吗"))
            || WHAT_IS_THERE.iter().any(|w| text.contains(w)))
}

/// One card as the widget shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CardView {
    /// Card id.
    pub id: String,
    /// Name.
    pub name: String,
    /// benefit | subsidy | service.
    pub kind: String,
    /// What the citizen gets.
    pub what: String,
    /// Materials checklist.
    pub materials: Vec<String>,
    /// Where and how to apply.
    pub r#where: Vec<String>,
    /// 《title》文号 articles.
    pub source: String,
    /// The quoted span behind `what`.
    pub quote: String,
    /// For "possibly": what would decide it (in plain words).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// For "not qualified": the failing condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
}

fn source_line(c: &Card) -> String {
    let mut s = format!("《{}》", c.source.title);
    if !c.source.doc_number.is_empty() {
        s.push_str(&c.source.doc_number);
    }
    if !c.source.articles.is_empty() {
        s.push(' ');
        s.push_str(&c.source.articles.join("、"));
    }
    s
}

/// A card for display.
pub fn view(c: &Card) -> CardView {
    CardView {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: format!("{:?}", c.kind).to_lowercase(),
        what: c.what.text.clone(),
        materials: c.materials.iter().map(|m| m.text.clone()).collect(),
        r#where: c.where_.iter().map(|w| w.text.clone()).collect(),
        source: source_line(c),
        quote: c.what.quote.clone(),
        missing: vec![],
        failing: None,
    }
}

/// What the interview shows: a question, or the result.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ClaimView {
    /// The next question, while asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<Question>,
    /// Cards the citizen qualifies for.
    pub qualified: Vec<CardView>,
    /// Cards that depend on facts not known.
    pub possibly: Vec<CardView>,
    /// Cards of other groups (not evaluated further) and not-qualified ones, counted.
    pub not_qualified: usize,
}

/// The facts a possibly-card is missing, in plain words.
fn missing_labels(missing: &[String]) -> Vec<String> {
    missing
        .iter()
        .map(|f| knowledge::benefits::rules::fact_label(f).to_string())
        .collect()
}

fn is_group_fact(f: &str) -> bool {
    f.starts_with("group.")
}

/// Evaluates every card; chooses the next question (or none): the missing fact shared by the
/// most "possibly" cards, never one already unanswered. While no group is known, the group
/// comes first. Cards that only wait for a group fact are not asked about further once a
/// group is known (they belong to other groups).
pub fn step(benefits: &Benefits, state: &ClaimState) -> ClaimView {
    let facts = &state.facts;
    let group_known = GROUPS
        .iter()
        .any(|(f, _)| matches!(facts.get(f), Some(Fact::Bool(true))))
        || GROUPS.iter().all(|(f, _)| facts.get(f).is_some());
    let mut view = ClaimView::default();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in benefits.cards() {
        match evaluate(c, facts) {
            Eligibility::Qualified => view.qualified.push(self::view(c)),
            Eligibility::NotQualified { .. } => view.not_qualified += 1,
            Eligibility::Possibly { missing } => {
                if group_known && missing.iter().any(|f| is_group_fact(f)) {
                    // Another group's card: not shown, not asked about.
                    view.not_qualified += 1;
                    continue;
                }
                for f in &missing {
                    if !state.unanswered.contains(f) && !is_group_fact(f) {
                        *counts.entry(f.clone()).or_default() += 1;
                    }
                }
                let mut v = self::view(c);
                v.missing = missing_labels(&missing);
                view.possibly.push(v);
            }
        }
    }
    if state.asked >= MAX_QUESTIONS {
        return view;
    }
    let next = if !group_known && !state.unanswered.iter().any(|f| f == "group") {
        Some("group".to_string())
    } else {
        counts
            .into_iter()
            .max_by(|a, b| {
                a.1.cmp(&b.1)
                    .then_with(|| fact_rank(&b.0).cmp(&fact_rank(&a.0)))
            })
            .map(|(f, _)| f)
    };
    view.question = next.map(|f| question(&f));
    view
}

fn fact_rank(f: &str) -> usize {
    knowledge::benefits::rules::FACTS
        .iter()
        .position(|(n, _, _)| *n == f)
        .unwrap_or(usize::MAX)
}

/// The result as text (the stored answer, and what text channels show).
pub fn result_text(v: &ClaimView) -> String {
    let mut s = String::new();
    if v.qualified.is_empty() {
        s.push_str("根据您提供的情况，暂时没有确定能享受的政策。");
    } else {
        s.push_str("根据您提供的情况，您可以享受：");
        for (i, c) in v.qualified.iter().enumerate() {
            s.push_str(&format!(
                "\n{}. {}：{}（{}）",
                i + 1,
                c.name,
                c.what,
                c.source
            ));
            if !c.materials.is_empty() {
                s.push_str(&format!("\n   材料：{}", c.materials.join("；")));
            }
            if !c.r#where.is_empty() {
                s.push_str(&format!("\n   办理：{}", c.r#where.join("；")));
            }
        }
    }
    if !v.possibly.is_empty() {
        // The most decided first (fewest facts missing); a long tail is counted, not listed.
        const SHOWN: usize = 8;
        let mut possibly: Vec<&CardView> = v.possibly.iter().collect();
        possibly.sort_by_key(|c| c.missing.len());
        s.push_str("\n\n可能符合（还需确认）：");
        for c in possibly.iter().take(SHOWN) {
            s.push_str(&format!("\n- {}：需确认{}", c.name, c.missing.join("、")));
        }
        if possibly.len() > SHOWN {
            s.push_str(&format!(
                "\n……另有{}项，告诉我您属于哪类人群（如高校毕业生、退役军人）可以缩小范围。",
                possibly.len() - SHOWN
            ));
        }
    }
    s.push_str(
        "\n\n具体以当地经办机构审核为准；情况有变可以直接告诉我（如“我其实是2023年毕业的”）。",
    );
    s
}

/// The question as text, with numbered options (text channels and the stored transcript).
pub fn question_text(q: &Question) -> String {
    let mut s = q.text.clone();
    if let Some(why) = &q.why {
        s.push('\n');
        s.push_str(why);
    }
    s.push_str("\n回复数字：");
    let opts: Vec<String> = q
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{} {o}", i + 1))
        .collect();
    s.push_str(&opts.join("；"));
    s
}

/// One card answered directly ("失业保险金怎么申请"), with the citizen's standing when known.
pub fn card_text(c: &Card, facts: &Facts) -> String {
    let v = view(c);
    let mut s = format!("{}：{}（{}）", v.name, v.what, v.source);
    if !c.who.is_empty() {
        let conds: Vec<&str> = c.who.iter().map(|w| w.label.as_str()).collect();
        s.push_str(&format!("\n条件：{}", conds.join("；")));
    }
    if !v.materials.is_empty() {
        s.push_str(&format!("\n材料：{}", v.materials.join("；")));
    }
    if !v.r#where.is_empty() {
        s.push_str(&format!("\n办理：{}", v.r#where.join("；")));
    }
    match evaluate(c, facts) {
        Eligibility::Qualified => s.push_str("\n按您已说明的情况，您符合条件。"),
        Eligibility::NotQualified { failing, .. } => {
            s.push_str(&format!("\n按您已说明的情况，您不符合“{failing}”这一条。"))
        }
        Eligibility::Possibly { .. } => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_what_citizens_say() {
        let mut f = Facts::default();
        assert!(learn_facts(
            &mut f,
            "我是2023年毕业的大学生，在济南，今年25岁",
            2026
        ));
        assert_eq!(f.get("years_since_graduation"), Some(&Fact::Number(3.0)));
        assert_eq!(f.get("group.graduate"), Some(&Fact::Bool(true)));
        assert_eq!(f.get("city"), Some(&Fact::Text("济南市".into())));
        assert_eq!(f.get("age"), Some(&Fact::Number(25.0)));
        let mut g = Facts::default();
        learn_facts(&mut g, "被公司裁员了，交了三年失业保险", 2026);
        let mut k = Facts::default();
        learn_facts(&mut k, "失业保险交了18个月", 2026);
        assert_eq!(k.get("months_insured"), Some(&Fact::Number(18.0)));
        assert_eq!(g.get("involuntary"), Some(&Fact::Bool(true)));
        assert_eq!(
            g.get("employment_status"),
            Some(&Fact::Text("unemployed".into()))
        );
        assert_eq!(g.get("months_insured"), Some(&Fact::Number(36.0)));
        let mut h = Facts::default();
        learn_facts(&mut h, "我主动辞职了", 2026);
        assert_eq!(h.get("involuntary"), Some(&Fact::Bool(false)));
        assert!(!learn_facts(&mut Facts::default(), "你好", 2026));
    }

    #[test]
    fn replies_read_options_numbers_and_refusals() {
        assert_eq!(
            read_reply("months_insured", "2"),
            Reply::Facts(vec![("months_insured".into(), Fact::Number(12.0))])
        );
        assert_eq!(
            read_reply("months_insured", "交了两年"),
            Reply::Facts(vec![("months_insured".into(), Fact::Number(24.0))])
        );
        assert_eq!(read_reply("months_insured", "不知道"), Reply::DontKnow);
        assert_eq!(read_reply("low_income", "不想说"), Reply::Decline);
        assert_eq!(
            read_reply("registered_unemployed", "还没办"),
            Reply::Facts(vec![("registered_unemployed".into(), Fact::Bool(false))])
        );
        assert_eq!(
            read_reply("involuntary", "不是，主动辞职"),
            Reply::Facts(vec![("involuntary".into(), Fact::Bool(false))])
        );
        let Reply::Facts(g) = read_reply("group", "4") else {
            panic!("group")
        };
        assert!(g.contains(&("group.veteran".into(), Fact::Bool(true))));
        assert!(g.contains(&("group.graduate".into(), Fact::Bool(false))));
        assert_eq!(
            read_reply("starting_business", "青岛有什么招聘会"),
            Reply::NotAnAnswer
        );
        assert_eq!(small_number("十二"), Some(12.0));
        assert_eq!(small_number("两"), Some(2.0));
        assert_eq!(small_number("三"), Some(3.0));
    }

    #[test]
    fn claim_questions_are_recognised() {
        for q in [
            "我是退役军人，在济南，能享受什么政策？",
            "我失业了能领什么？",
            "我符合条件吗",
            "我是残疾人有什么补贴",
            "能领什么？",
        ] {
            assert!(is_claim_question(q), "{q}");
        }
        for q in [
            "失业保险金标准是多少",
            "济南有什么招聘",
            "人才引进有什么政策？",
            "退役军人创办小微企业能申请什么贷款？",
        ] {
            assert!(!is_claim_question(q), "{q}");
        }
    }
}
