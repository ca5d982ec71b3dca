//! The rules engine: cards against what is known of a citizen.
//!
//! A condition is true, false, or unknown (a fact it needs is not known). A card is
//! **qualified** when every condition is true, **not qualified** when one is false (that
//! condition is named, with its quote), and otherwise **possibly**, listing the facts that
//! are missing. An unknown fact never counts as "no".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Card, Condition};

/// The facts a condition may use: (name, kind, what it is called to citizens). Group facts use
/// the job listings' group names; text facts take the values noted beside them.
pub const FACTS: &[(&str, FactKind, &str)] = &[
    ("group.graduate", FactKind::Bool, "高校毕业生"),
    ("group.migrant", FactKind::Bool, "农村务工人员（农民工）"),
    ("group.flexible", FactKind::Bool, "灵活就业人员"),
    ("group.veteran", FactKind::Bool, "退役军人"),
    ("group.disabled", FactKind::Bool, "残疾人"),
    ("group.elderly", FactKind::Bool, "老年人"),
    ("group.women", FactKind::Bool, "女性"),
    ("age", FactKind::Number, "年龄（周岁）"),
    ("city", FactKind::Text, "所在城市"),
    ("hukou", FactKind::Text, "户籍所在地"),
    // Values: unemployed | employed | self_employed | student.
    ("employment_status", FactKind::Text, "就业状态"),
    ("months_insured", FactKind::Number, "已缴纳失业保险费的月数"),
    (
        "years_insured",
        FactKind::Number,
        "已缴纳基本养老保险费的年数",
    ),
    ("years_since_graduation", FactKind::Number, "毕业年数"),
    ("retirement_age", FactKind::Bool, "已达到法定退休年龄"),
    ("involuntary", FactKind::Bool, "非因本人意愿中断就业"),
    ("registered_unemployed", FactKind::Bool, "已办理失业登记"),
    ("hard_to_employ", FactKind::Bool, "就业困难人员"),
    ("starting_business", FactKind::Bool, "正在或准备创业"),
    ("employer", FactKind::Bool, "是用人单位（招用人员的企业等）"),
    (
        "work_injury",
        FactKind::Bool,
        "因工作遭受事故伤害或患职业病",
    ),
    ("pregnant", FactKind::Bool, "怀孕、生育或哺乳期"),
    ("injured_or_died_duty", FactKind::Bool, "因公（因战）伤亡"),
    ("low_income", FactKind::Bool, "低保、零就业等困难家庭"),
    (
        "skill_certificate",
        FactKind::Bool,
        "经培训取得职业资格（技能等级）证书",
    ),
    // Values: junior_high | senior_high | college | bachelor | postgraduate.
    ("education", FactKind::Text, "最高学历"),
];

/// What kind of value a fact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    /// Yes or no.
    Bool,
    /// A number.
    Number,
    /// A word from a small set.
    Text,
}

/// The kind of a fact, if it is one.
pub fn fact_kind(name: &str) -> Option<FactKind> {
    FACTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, _)| *k)
}

/// The meaning of a fact for people.
pub fn fact_label(name: &str) -> &str {
    FACTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, l)| *l)
        .unwrap_or(name)
}

/// How a fact is compared with a condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A yes/no fact equals the value (`value` true or false).
    Is,
    /// A text fact equals the value.
    Eq,
    /// A text fact is one of the values.
    In,
    /// A number fact is at least the value.
    Min,
    /// A number fact is at most the value.
    Max,
    /// A number fact is less than the value (不满N).
    Below,
}

/// A condition's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Yes or no.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A word.
    Text(String),
    /// Words.
    List(Vec<String>),
}

/// One known fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fact {
    /// Yes or no.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A word.
    Text(String),
}

/// What is known of a citizen: facts by name; a missing name is unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Facts(pub BTreeMap<String, Fact>);

impl Facts {
    /// Sets a fact.
    pub fn set(&mut self, name: &str, fact: Fact) -> &mut Self {
        self.0.insert(name.to_string(), fact);
        self
    }

    /// A fact, if known.
    pub fn get(&self, name: &str) -> Option<&Fact> {
        self.0.get(name)
    }
}

/// Checks a condition's shape: a known fact, an operator that fits its kind, a value of the
/// right type; or a non-empty `any` of such tests.
pub fn validate(c: &Condition) -> Result<(), String> {
    if c.quote.trim().is_empty() {
        return Err("quote is empty".into());
    }
    match (&c.fact, c.op, &c.any.is_empty()) {
        (Some(f), Some(op), true) => validate_test(f, op, c.value.as_ref()),
        (None, None, false) => {
            for t in &c.any {
                validate_test(&t.fact, t.op, t.value.as_ref())?;
            }
            Ok(())
        }
        _ => Err("give either fact + op + value, or any = [...]".into()),
    }
}

fn validate_test(fact: &str, op: Op, value: Option<&Value>) -> Result<(), String> {
    let kind = fact_kind(fact).ok_or_else(|| format!("unknown fact {fact:?}"))?;
    let ok = matches!(
        (kind, op, value),
        (FactKind::Bool, Op::Is, Some(Value::Bool(_)))
            | (FactKind::Text, Op::Eq, Some(Value::Text(_)))
            | (FactKind::Text, Op::In, Some(Value::List(_)))
            | (
                FactKind::Number,
                Op::Min | Op::Max | Op::Below,
                Some(Value::Number(_))
            )
    );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{op:?} with {value:?} does not fit the fact {fact:?}"
        ))
    }
}

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Holds.
    Yes,
    /// Does not hold.
    No,
    /// A fact it needs is unknown.
    Unknown,
}

fn test(facts: &Facts, fact: &str, op: Op, value: Option<&Value>) -> Truth {
    let Some(known) = facts.get(fact) else {
        return Truth::Unknown;
    };
    let holds = match (op, value, known) {
        (Op::Is, Some(Value::Bool(v)), Fact::Bool(k)) => k == v,
        (Op::Eq, Some(Value::Text(v)), Fact::Text(k)) => k == v,
        (Op::In, Some(Value::List(vs)), Fact::Text(k)) => vs.iter().any(|v| v == k),
        (Op::Min, Some(Value::Number(v)), Fact::Number(k)) => k >= v,
        (Op::Max, Some(Value::Number(v)), Fact::Number(k)) => k <= v,
        (Op::Below, Some(Value::Number(v)), Fact::Number(k)) => k < v,
        // A fact of the wrong type says nothing.
        _ => return Truth::Unknown,
    };
    if holds {
        Truth::Yes
    } else {
        Truth::No
    }
}

/// Evaluates one condition.
pub fn evaluate_condition(c: &Condition, facts: &Facts) -> Truth {
    if let (Some(f), Some(op)) = (&c.fact, c.op) {
        return test(facts, f, op, c.value.as_ref());
    }
    let mut unknown = false;
    for t in &c.any {
        match test(facts, &t.fact, t.op, t.value.as_ref()) {
            Truth::Yes => return Truth::Yes,
            Truth::Unknown => unknown = true,
            Truth::No => {}
        }
    }
    if unknown {
        Truth::Unknown
    } else {
        Truth::No
    }
}

/// The facts a condition reads.
pub fn condition_facts(c: &Condition) -> Vec<String> {
    match &c.fact {
        Some(f) => vec![f.clone()],
        None => c.any.iter().map(|t| t.fact.clone()).collect(),
    }
}

/// The facts of a condition that are not known (absent, or of the wrong type): what to ask.
pub fn unknown_facts(c: &Condition, facts: &Facts) -> Vec<String> {
    match (&c.fact, c.op) {
        (Some(f), Some(op)) => match test(facts, f, op, c.value.as_ref()) {
            Truth::Unknown => vec![f.clone()],
            _ => vec![],
        },
        _ => c
            .any
            .iter()
            .filter(|t| test(facts, &t.fact, t.op, t.value.as_ref()) == Truth::Unknown)
            .map(|t| t.fact.clone())
            .collect(),
    }
}

/// The result for one card.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Eligibility {
    /// Every condition holds.
    Qualified,
    /// No condition fails, but some facts are unknown.
    Possibly {
        /// Facts that would decide it.
        missing: Vec<String>,
    },
    /// A condition fails.
    NotQualified {
        /// The failing condition in plain words.
        failing: String,
        /// Its verbatim source.
        quote: String,
    },
}

/// Evaluates a card against the facts.
pub fn evaluate(card: &Card, facts: &Facts) -> Eligibility {
    let mut missing = BTreeSet::new();
    for c in &card.who {
        match evaluate_condition(c, facts) {
            Truth::Yes => {}
            Truth::No => {
                return Eligibility::NotQualified {
                    failing: c.label.clone(),
                    quote: c.quote.clone(),
                }
            }
            Truth::Unknown => missing.extend(unknown_facts(c, facts)),
        }
    }
    if missing.is_empty() {
        Eligibility::Qualified
    } else {
        Eligibility::Possibly {
            missing: missing.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benefits::{Kind, Source, Span, Test};

    fn cond(label: &str, fact: &str, op: Op, value: Value) -> Condition {
        Condition {
            label: label.into(),
            fact: Some(fact.into()),
            op: Some(op),
            value: Some(value),
            any: vec![],
            quote: "原文".into(),
            doc: None,
        }
    }

    fn card(who: Vec<Condition>) -> Card {
        Card {
            id: "t".into(),
            name: "测试".into(),
            aliases: vec![],
            kind: Kind::Benefit,
            issuer: "x".into(),
            source: Source {
                title: "t".into(),
                doc_number: String::new(),
                articles: vec![],
            },
            who,
            what: Span {
                text: "x".into(),
                quote: "x".into(),
                doc: None,
            },
            materials: vec![],
            where_: vec![],
            valid_from: None,
            valid_to: None,
        }
    }

    #[test]
    fn each_condition_type_at_its_boundary() {
        let mut f = Facts::default();
        f.set("age", Fact::Number(16.0))
            .set("months_insured", Fact::Number(12.0))
            .set("group.veteran", Fact::Bool(true))
            .set("city", Fact::Text("济南市".into()))
            .set("employment_status", Fact::Text("unemployed".into()));
        let yes = |c: Condition| evaluate_condition(&c, &f);
        assert_eq!(
            yes(cond("年满16周岁", "age", Op::Min, Value::Number(16.0))),
            Truth::Yes
        );
        assert_eq!(
            yes(cond("不满16周岁", "age", Op::Below, Value::Number(16.0))),
            Truth::No
        );
        assert_eq!(
            yes(cond("不超过16周岁", "age", Op::Max, Value::Number(16.0))),
            Truth::Yes
        );
        assert_eq!(
            yes(cond(
                "满一年",
                "months_insured",
                Op::Min,
                Value::Number(12.0)
            )),
            Truth::Yes
        );
        assert_eq!(
            yes(cond(
                "满13个月",
                "months_insured",
                Op::Min,
                Value::Number(13.0)
            )),
            Truth::No
        );
        assert_eq!(
            yes(cond("退役军人", "group.veteran", Op::Is, Value::Bool(true))),
            Truth::Yes
        );
        assert_eq!(
            yes(cond(
                "非退役军人",
                "group.veteran",
                Op::Is,
                Value::Bool(false)
            )),
            Truth::No
        );
        assert_eq!(
            yes(cond("在济南", "city", Op::Eq, Value::Text("济南市".into()))),
            Truth::Yes
        );
        assert_eq!(
            yes(cond(
                "在青岛或烟台",
                "city",
                Op::In,
                Value::List(vec!["青岛市".into(), "烟台市".into()])
            )),
            Truth::No
        );
        assert_eq!(
            yes(cond(
                "失业",
                "employment_status",
                Op::Eq,
                Value::Text("unemployed".into())
            )),
            Truth::Yes
        );
        assert_eq!(
            yes(cond("残疾人", "group.disabled", Op::Is, Value::Bool(true))),
            Truth::Unknown
        );
        let any = Condition {
            label: "毕业生或失业".into(),
            fact: None,
            op: None,
            value: None,
            any: vec![
                Test {
                    fact: "group.graduate".into(),
                    op: Op::Is,
                    value: Some(Value::Bool(true)),
                },
                Test {
                    fact: "employment_status".into(),
                    op: Op::Eq,
                    value: Some(Value::Text("unemployed".into())),
                },
            ],
            quote: "原文".into(),
            doc: None,
        };
        assert_eq!(yes(any.clone()), Truth::Yes, "one alternative holds");
        let mut g = Facts::default();
        g.set("employment_status", Fact::Text("employed".into()));
        assert_eq!(
            evaluate_condition(&any, &g),
            Truth::Unknown,
            "the other is unknown"
        );
        g.set("group.graduate", Fact::Bool(false));
        assert_eq!(evaluate_condition(&any, &g), Truth::No);
    }

    #[test]
    fn unknown_facts_give_possibly_never_not_qualified() {
        let c = card(vec![
            cond(
                "失业",
                "employment_status",
                Op::Eq,
                Value::Text("unemployed".into()),
            ),
            cond("缴费满一年", "months_insured", Op::Min, Value::Number(12.0)),
        ]);
        assert_eq!(
            evaluate(&c, &Facts::default()),
            Eligibility::Possibly {
                missing: vec!["employment_status".into(), "months_insured".into()]
            }
        );
        let mut f = Facts::default();
        f.set("employment_status", Fact::Text("unemployed".into()));
        assert_eq!(
            evaluate(&c, &f),
            Eligibility::Possibly {
                missing: vec!["months_insured".into()]
            }
        );
        f.set("months_insured", Fact::Number(11.0));
        assert_eq!(
            evaluate(&c, &f),
            Eligibility::NotQualified {
                failing: "缴费满一年".into(),
                quote: "原文".into()
            }
        );
        f.set("months_insured", Fact::Number(12.0));
        assert_eq!(evaluate(&c, &f), Eligibility::Qualified);
        // A failing condition decides even while others are unknown.
        let mut h = Facts::default();
        h.set("months_insured", Fact::Number(3.0));
        assert!(matches!(evaluate(&c, &h), Eligibility::NotQualified { .. }));
        // A fact of the wrong type is unknown, not "no".
        let mut w = Facts::default();
        w.set("months_insured", Fact::Text("很多".into()));
        w.set("employment_status", Fact::Text("unemployed".into()));
        assert_eq!(
            evaluate(&c, &w),
            Eligibility::Possibly {
                missing: vec!["months_insured".into()]
            },
            "asked again"
        );
    }

    #[test]
    fn malformed_conditions_are_refused() {
        let bad = cond("x", "age", Op::Is, Value::Bool(true));
        assert!(validate(&bad).is_err());
        let unknown = cond("x", "shoe_size", Op::Min, Value::Number(1.0));
        assert!(validate(&unknown).unwrap_err().contains("unknown fact"));
        let ok = cond("x", "age", Op::Min, Value::Number(16.0));
        assert!(validate(&ok).is_ok());
    }
}
