//! Conversation memory: the citizen's profile (city, group) kept in the session, and the
//! rewrite of a follow-up ("那青岛呢？") into a self-contained question before retrieval.

use knowledge::jobs::Group;
use knowledge::metadata::SHANDONG_CITIES;
use serde::{Deserialize, Serialize};

/// What the citizen told us about themselves, kept for the session and used as filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One of Shandong's 16 cities (full name, e.g. 青岛市).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Group, e.g. graduate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// The 政策申领 interview: facts known, the question waiting, what was not answered.
    #[serde(default, skip_serializing_if = "super::claims::ClaimState::is_empty")]
    pub claim: super::claims::ClaimState,
}

/// The first Shandong city named in `text` (full name).
pub fn find_city(text: &str) -> Option<String> {
    SHANDONG_CITIES
        .iter()
        .filter_map(|c| {
            let short = c.trim_end_matches('市');
            text.find(short).map(|pos| (pos, *c))
        })
        .min_by_key(|(pos, _)| *pos)
        .map(|(_, c)| c.to_string())
}

/// The group the citizen says they belong to.
pub fn find_group(text: &str) -> Option<Group> {
    find_groups(text).into_iter().next()
}

/// Every group the citizen says they belong to ("残疾人大学生": disabled and graduate), in
/// the order of [`GROUP_WORDS`] (the first is the one job search uses).
pub fn find_groups(text: &str) -> Vec<Group> {
    GROUP_WORDS
        .iter()
        .filter(|(words, _)| words.iter().any(|w| text.contains(w)))
        .map(|(_, g)| *g)
        .collect()
}

/// Words that say a group, most specific first.
const GROUP_WORDS: &[(&[&str], Group)] = &[
    (&["毕业生", "应届", "大学生", "高校毕业"], Group::Graduate),
    (&["退役军人", "退伍", "转业"], Group::Veteran),
    (
        &["农民工", "外出务工", "进城务工", "农村劳动力", "返乡"],
        Group::Migrant,
    ),
    (&["残疾"], Group::Disabled),
    (
        &["灵活就业", "外卖", "快递员", "骑手", "网约车", "零工"],
        Group::Flexible,
    ),
    (&["宝妈", "返岗妈妈", "妇女", "女性"], Group::Women),
    // "还没到退休年龄" is not a retired person: only words that say one is.
    (
        &[
            "已退休",
            "退休了",
            "退休人员",
            "老年",
            "大龄",
            "50岁",
            "60岁",
        ],
        Group::Elderly,
    ),
];

impl Profile {
    /// Updates the profile from what the citizen just said; returns whether it changed.
    pub fn learn(&mut self, text: &str) -> bool {
        let before = self.clone();
        if let Some(c) = find_city(text) {
            self.city = Some(c);
        }
        if let Some(g) = find_groups(text).into_iter().find(|g| self.may_store(*g)) {
            self.group = Some(g);
        }
        *self != before
    }

    /// Whether the group may be kept in the stored profile. Disability is sensitive personal
    /// information: it is kept only after the citizen agreed in the 政策申领 dialogue (the
    /// same consent as the `group.disabled` fact); before that it serves the turn that says
    /// it (job search reads the message itself) and is forgotten.
    pub fn may_store(&self, group: Group) -> bool {
        group != Group::Disabled
            || self
                .claim
                .consented
                .iter()
                .any(|f| f == super::claims::DISABLED_FACT)
    }
}

const FOLLOW_UP_STARTS: &[&str] = &["那", "那么", "还有", "另外", "如果是", "要是", "换成"];

/// Whether `text` reads as a follow-up that needs the previous question to make sense.
pub fn is_follow_up(text: &str) -> bool {
    let t = text.trim();
    let n = t.chars().count();
    n <= 12
        && (FOLLOW_UP_STARTS.iter().any(|s| t.starts_with(s))
            || t.ends_with("呢？")
            || t.ends_with("呢?")
            || t.ends_with('呢'))
}

/// Rewrites a follow-up with the previous question: a new city replaces the old one ("济南有
///哪些招聘？" + "那青岛呢？" → "青岛有哪些招聘？"); otherwise the follow-up is appended to the
/// previous question. `None` when `text` is not a follow-up or there is no previous question.
pub fn rewrite(previous: Option<&str>, text: &str) -> Option<String> {
    let prev = previous?;
    if !is_follow_up(text) {
        return None;
    }
    let new_city = find_city(text);
    let old_city = find_city(prev);
    match (new_city, old_city) {
        (Some(new), Some(old)) if new != old => {
            let old_short = old.trim_end_matches('市');
            let new_short = new.trim_end_matches('市');
            let replaced = if prev.contains(&old) {
                prev.replacen(&old, &new, 1)
            } else {
                prev.replacen(old_short, new_short, 1)
            };
            Some(replaced)
        }
        (Some(new), None) => Some(format!("{}{}", new, prev)),
        _ => {
            let tail = text
                .trim()
                .trim_start_matches("那么")
                .trim_start_matches('那')
                .trim_end_matches(['？', '?', '呢']);
            Some(format!("{} {}", prev.trim_end_matches(['？', '?']), tail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_are_rewritten() {
        assert_eq!(
            rewrite(Some("济南有哪些招聘？"), "那青岛呢？").as_deref(),
            Some("青岛有哪些招聘？")
        );
        assert_eq!(
            rewrite(Some("有哪些创业补贴？"), "那淄博呢？").as_deref(),
            Some("淄博市有哪些创业补贴？")
        );
        assert_eq!(
            rewrite(Some("毕业生有哪些补贴？"), "那退役军人呢？").as_deref(),
            Some("毕业生有哪些补贴 退役军人")
        );
        assert_eq!(
            rewrite(Some("济南有哪些招聘？"), "失业保险金怎么领取？"),
            None
        );
        assert_eq!(rewrite(None, "那青岛呢？"), None);
    }

    #[test]
    fn profile_learns_city_and_group() {
        let mut p = Profile::default();
        assert!(p.learn("我是烟台的应届毕业生"));
        assert_eq!(p.city.as_deref(), Some("烟台市"));
        assert_eq!(p.group, Some(Group::Graduate));
        assert!(!p.learn("有什么补贴"));
    }

    #[test]
    fn disability_is_kept_only_with_consent() {
        let mut p = Profile::default();
        assert!(!p.learn("我是残疾人，想找工作"), "nothing stored");
        assert_eq!(p.group, None);
        // Another group said in the same breath is kept.
        p.learn("我是残疾人大学生");
        assert_eq!(p.group, Some(Group::Graduate));
        p.claim
            .consented
            .push(super::super::claims::DISABLED_FACT.into());
        p.learn("我是残疾人");
        assert_eq!(p.group, Some(Group::Disabled));
    }
}
