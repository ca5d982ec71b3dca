//! Job search: filters from the question (city of Shandong's 16, salary with unit, employment
//! type, group), the relaxed search offered when nothing matches, and listing cards.

use chrono::NaiveDate;
use knowledge::jobs::{EmploymentType, JobListing, SalaryUnit};
use regex::Regex;
use retrieval::hybrid::JobQuery;
use retrieval::store::Mode;
use serde::Serialize;
use std::sync::OnceLock;

use tokio::sync::mpsc;

use super::memory::{find_city, find_group, Profile};
use super::{blocking, say, Event, Outcome, TurnError};

/// Neighbouring cities (sharing a border), for the relaxed search.
pub fn neighbours(city: &str) -> &'static [&'static str] {
    match city {
        "济南市" => &["淄博市", "泰安市", "德州市", "聊城市", "滨州市"],
        "青岛市" => &["烟台市", "潍坊市", "日照市"],
        "淄博市" => &["济南市", "潍坊市", "东营市", "滨州市", "临沂市", "泰安市"],
        "枣庄市" => &["济宁市", "临沂市"],
        "东营市" => &["滨州市", "淄博市", "潍坊市"],
        "烟台市" => &["威海市", "青岛市", "潍坊市"],
        "潍坊市" => &["青岛市", "烟台市", "东营市", "淄博市", "临沂市", "日照市"],
        "济宁市" => &["泰安市", "枣庄市", "临沂市", "菏泽市"],
        "泰安市" => &["济南市", "淄博市", "临沂市", "济宁市", "聊城市"],
        "威海市" => &["烟台市"],
        "日照市" => &["青岛市", "潍坊市", "临沂市"],
        "临沂市" => &["日照市", "潍坊市", "淄博市", "泰安市", "济宁市", "枣庄市"],
        "德州市" => &["济南市", "聊城市", "滨州市"],
        "聊城市" => &["济南市", "德州市", "泰安市", "菏泽市"],
        "滨州市" => &["东营市", "淄博市", "济南市", "德州市"],
        "菏泽市" => &["济宁市", "聊城市"],
        _ => &[],
    }
}

fn salary_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"(月薪|日薪|时薪|每月|每天|每小时|一个月|一天|一小时)?[^0-9]{0,4}?([0-9]+(?:\.[0-9]+)?)\s*(千|k|K|万)?\s*(元|块)?\s*(/月|/天|/小时|每月|一个月|一天|每天|每小时|一小时)?\s*(以上|起|往上|多)")
            .expect("static pattern")
    })
}

/// The minimum pay asked for, e.g. "月薪5000以上" → (5000, month), "日结200元以上" → (200, day).
pub fn find_min_salary(text: &str) -> Option<(u32, SalaryUnit)> {
    let c = salary_re().captures(text)?;
    let mut amount: f64 = c.get(2)?.as_str().parse().ok()?;
    match c.get(3).map(|m| m.as_str()) {
        Some("千" | "k" | "K") => amount *= 1000.0,
        Some("万") => amount *= 10000.0,
        _ => {}
    }
    let unit_words = format!(
        "{}{}{}",
        c.get(1).map_or("", |m| m.as_str()),
        c.get(5).map_or("", |m| m.as_str()),
        text
    );
    let unit = if unit_words.contains("时薪") || unit_words.contains("小时") {
        SalaryUnit::Hour
    } else if unit_words.contains("日薪")
        || unit_words.contains("每天")
        || unit_words.contains("一天")
        || unit_words.contains("/天")
        || unit_words.contains("日结")
    {
        SalaryUnit::Day
    } else {
        SalaryUnit::Month
    };
    Some((amount.round() as u32, unit))
}

/// Employment types named in the question.
pub fn find_types(text: &str) -> Vec<EmploymentType> {
    let mut out = Vec::new();
    if text.contains("全职") {
        out.push(EmploymentType::FullTime);
    }
    if text.contains("兼职") {
        out.push(EmploymentType::PartTime);
    }
    if ["零工", "日结", "灵活用工", "临时工"]
        .iter()
        .any(|w| text.contains(w))
    {
        out.push(EmploymentType::Gig);
    }
    if text.contains("实习") {
        out.push(EmploymentType::Internship);
    }
    out
}

/// Education levels, lowest first; 高中 and 中专 are one level.
const EDUCATION_LADDER: &[(&[&str], &[&str])] = &[
    (&["初中"], &["初中"]),
    (&["高中", "中专", "技校", "职高"], &["高中", "中专"]),
    (&["大专", "专科"], &["大专"]),
    (&["本科", "大学毕业", "学士"], &["本科"]),
    (&["硕士", "研究生"], &["硕士"]),
    (&["博士"], &["博士"]),
];

/// The listings' education requirements a person with the education named in `text` meets:
/// 不限 and every level up to theirs. Empty when no education is named.
pub fn find_educations(text: &str) -> Vec<String> {
    let Some(level) = EDUCATION_LADDER
        .iter()
        .rposition(|(words, _)| words.iter().any(|w| text.contains(w)))
    else {
        return Vec::new();
    };
    std::iter::once("不限")
        .chain(
            EDUCATION_LADDER[..=level]
                .iter()
                .flat_map(|(_, req)| req.iter().copied()),
        )
        .map(str::to_string)
        .collect()
}

/// The district named in `text`, from the districts listings actually have (longest name
/// first, so 东昌府区 is not read as 昌府区).
pub fn find_district(text: &str, known: &[String]) -> Option<String> {
    let mut names: Vec<&String> = known.iter().filter(|d| text.contains(d.as_str())).collect();
    names.sort_by_key(|d| std::cmp::Reverse(d.chars().count()));
    names.first().map(|d| d.to_string())
}

/// Builds the job query: filters from the question, then from the profile for what the
/// question leaves open. `districts` are the district names present in the listings.
pub fn query(text: &str, profile: &Profile, today: NaiveDate, districts: &[String]) -> JobQuery {
    let city = find_city(text).or_else(|| profile.city.clone());
    let group = find_group(text).or(profile.group);
    JobQuery {
        text: text.to_string(),
        cities: city.into_iter().collect(),
        districts: find_district(text, districts).into_iter().collect(),
        educations: find_educations(text),
        types: find_types(text),
        min_salary: find_min_salary(text),
        groups: group.into_iter().collect(),
        today,
        limit: 5,
        mode: Mode::Hybrid,
    }
}

/// The relaxed search offered when the strict one finds nothing, and how to say what changed.
/// Neighbouring cities first (keeping every other filter), then the same city without the
/// group and type filters.
pub fn relaxations(q: &JobQuery) -> Vec<(JobQuery, String)> {
    let mut out = Vec::new();
    if let [city] = q.cities.as_slice() {
        let near = neighbours(city);
        if !near.is_empty() {
            let mut r = q.clone();
            r.cities = near.iter().map(|c| c.to_string()).collect();
            out.push((r, format!("{city}周边城市（{}）", near.join("、"))));
        }
    }
    if !q.districts.is_empty() {
        let mut r = q.clone();
        r.districts.clear();
        out.push((r, "全市范围（不限区县）".into()));
    }
    if !q.groups.is_empty()
        || !q.types.is_empty()
        || q.min_salary.is_some()
        || !q.educations.is_empty()
    {
        let mut r = q.clone();
        r.groups.clear();
        r.types.clear();
        r.min_salary = None;
        r.educations.clear();
        out.push((r, "放宽人群、用工类型、学历和薪资条件".into()));
    }
    out
}

/// A listing card for the channels.
#[derive(Debug, Clone, Serialize)]
pub struct JobCard {
    /// Listing id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Company.
    pub company: String,
    /// City.
    pub city: String,
    /// District.
    pub district: String,
    /// Pay, e.g. "5000–7000元/月".
    pub salary: String,
    /// 全职 / 兼职 / 零工 / 实习.
    pub employment_type: String,
    /// Contact.
    pub contact: String,
    /// Last day (YYYY-MM-DD).
    pub expires_at: String,
    /// False for listings from a relaxed search: shown as alternatives, not matches.
    pub exact_match: bool,
}

/// How a pay unit is written after an amount.
pub fn unit_label(unit: SalaryUnit) -> &'static str {
    match unit {
        SalaryUnit::Month => "元/月",
        SalaryUnit::Day => "元/天",
        SalaryUnit::Hour => "元/小时",
    }
}

/// The card of a listing.
pub fn card(l: &JobListing, exact_match: bool) -> JobCard {
    let unit = unit_label(l.salary_unit);
    let kind = match l.employment_type {
        EmploymentType::FullTime => "全职",
        EmploymentType::PartTime => "兼职",
        EmploymentType::Gig => "零工",
        EmploymentType::Internship => "实习",
    };
    JobCard {
        id: l.id.clone(),
        title: l.title.clone(),
        company: l.company.clone(),
        city: l.city.clone(),
        district: l.district.clone(),
        salary: format!("{}–{}{unit}", l.salary_min, l.salary_max),
        employment_type: kind.into(),
        contact: l.contact.clone(),
        expires_at: l.expires_at.to_string(),
        exact_match,
    }
}

impl super::Assistant {
    pub(super) async fn jobs(
        &self,
        query: &str,
        profile: &Profile,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        let q = self::query(query, profile, self.today(), &self.districts);
        let mut filters = q.cities.clone();
        if let Some((amount, unit)) = q.min_salary {
            filters.push(format!("薪资不低于{amount}{}", unit_label(unit)));
        }
        let label = if filters.is_empty() {
            String::new()
        } else {
            format!("（{}）", filters.join("，"))
        };
        // The strict search first, then each relaxation in turn, labelled as such.
        let attempts = std::iter::once((q.clone(), None))
            .chain(relaxations(&q).into_iter().map(|(r, how)| (r, Some(how))));
        for (search, relaxed) in attempts {
            let kb = self.kb.clone();
            let found = blocking(move || kb.search_jobs(&search)).await?;
            if found.is_empty() {
                continue;
            }
            let exact = relaxed.is_none();
            let cards: Vec<JobCard> = found.iter().map(|h| card(&h.listing, exact)).collect();
            let msg = match &relaxed {
                None => format!(
                    "为您找到{}个在招岗位{label}，详情见下方岗位卡片，投递前请与招聘单位核实。",
                    cards.len()
                ),
                Some(how) => format!(
                    "没有找到完全符合条件{label}的在招岗位。以下是{how}的{}个岗位，仅供参考，并不完全符合您的条件。",
                    cards.len()
                ),
            };
            say(tx, out, &msg).await;
            out.jobs = cards.clone();
            let _ = tx
                .send(Event::Jobs {
                    jobs: cards,
                    relaxed,
                })
                .await;
            return Ok(());
        }
        say(
            tx,
            out,
            &format!("没有找到符合条件{label}的在招岗位。您可以换个条件再试，或转人工请职业指导师帮您推荐。"),
        )
        .await;
        out.not_covered = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_come_from_the_question_and_the_profile() {
        assert_eq!(
            find_min_salary("青岛月薪5000以上的工作"),
            Some((5000, SalaryUnit::Month))
        );
        assert_eq!(
            find_min_salary("日结200元以上的零工"),
            Some((200, SalaryUnit::Day))
        );
        assert_eq!(
            find_min_salary("工资8千以上"),
            Some((8000, SalaryUnit::Month))
        );
        assert_eq!(find_min_salary("有什么工作"), None);
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
        let p = Profile {
            city: Some("烟台市".into()),
            group: None,
        };
        let q = query("找个兼职", &p, today, &[]);
        assert_eq!(q.cities, vec!["烟台市".to_string()]);
        assert_eq!(q.types, vec![EmploymentType::PartTime]);
        let q = query("济南的退役军人岗位", &p, today, &[]);
        assert_eq!(
            q.cities,
            vec!["济南市".to_string()],
            "the question wins over the profile"
        );
        assert_eq!(q.groups, vec![knowledge::jobs::Group::Veteran]);
        let relaxed = relaxations(&q);
        assert!(relaxed[0].0.cities.contains(&"泰安市".to_string()));
        assert!(relaxed[0].1.contains("周边"));
        let known = vec![
            "昌府区".to_string(),
            "东昌府区".to_string(),
            "历下区".to_string(),
        ];
        let q = query("聊城东昌府区的岗位，我是中专学历", &p, today, &known);
        assert_eq!(q.districts, vec!["东昌府区".to_string()]);
        assert_eq!(q.educations, vec!["不限", "初中", "高中", "中专"]);
        assert!(query("有什么工作", &p, today, &known).educations.is_empty());
    }

    #[test]
    fn every_city_has_neighbours_that_name_it_back() {
        for c in knowledge::metadata::SHANDONG_CITIES {
            assert!(!neighbours(c).is_empty(), "{c}");
            for n in neighbours(c) {
                assert!(neighbours(n).contains(&c), "{c} -> {n} is not symmetric");
            }
        }
    }
}
