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
use super::seam::Retrieve;
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

fn around_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"([0-9]+(?:\.[0-9]+)?)\s*(千|k|K|万)?\s*(元|块)?\s*(左右|上下|附近|差不多)")
            .expect("static pattern")
    })
}

/// Chinese amounts written out ("一万", "五千", "一万二", "八千五") as digits, so that the
/// salary patterns read them.
pub fn digits_for_amounts(text: &str) -> String {
    fn digit(c: char) -> Option<u32> {
        "零一二三四五六七八九"
            .find(c)
            .map(|i| (i / 3) as u32)
            .or(match c {
                '两' => Some(2),
                _ => None,
            })
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let unit = chars.get(i + 1).and_then(|u| match u {
            '万' => Some(10_000),
            '千' => Some(1_000),
            _ => None,
        });
        if let (Some(d), Some(unit)) = (digit(chars[i]), unit) {
            let mut value = d * unit;
            let mut next = i + 2;
            // "一万二" = 12000, "八千五" = 8500: a bare digit after the unit is its tenth.
            if let Some(t) = chars.get(next).and_then(|c| digit(*c)) {
                let not_unit = !matches!(chars.get(next + 1), Some('千' | '万' | '百'));
                if not_unit {
                    value += t * unit / 10;
                    next += 1;
                }
            }
            out.push_str(&value.to_string());
            i = next;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn pay_unit(words: &str) -> SalaryUnit {
    if words.contains("时薪") || words.contains("小时") {
        SalaryUnit::Hour
    } else if ["日薪", "每天", "一天", "/天", "日结"]
        .iter()
        .any(|w| words.contains(w))
    {
        SalaryUnit::Day
    } else {
        SalaryUnit::Month
    }
}

fn scaled(number: &str, multiplier: Option<&str>) -> Option<f64> {
    let amount: f64 = number.parse().ok()?;
    Some(match multiplier {
        Some("千" | "k" | "K") => amount * 1000.0,
        Some("万") => amount * 10000.0,
        _ => amount,
    })
}

/// The pay range asked for: a floor ("5000以上") or a range around an amount ("一万左右":
/// 8000–12000, i.e. listings whose range overlaps it). Returns (minimum, unit, maximum).
pub fn find_salary(text: &str) -> Option<(u32, SalaryUnit, Option<u32>)> {
    let text = digits_for_amounts(text);
    if let Some(c) = around_re().captures(&text) {
        let amount = scaled(c.get(1)?.as_str(), c.get(2).map(|m| m.as_str()))?;
        let unit = pay_unit(&text);
        return Some((
            (amount * 0.8).round() as u32,
            unit,
            Some((amount * 1.2).round() as u32),
        ));
    }
    find_min_salary(&text).map(|(min, unit)| (min, unit, None))
}

/// The minimum pay asked for, e.g. "月薪5000以上" → (5000, month), "日结200元以上" → (200, day).
pub fn find_min_salary(text: &str) -> Option<(u32, SalaryUnit)> {
    let text = digits_for_amounts(text);
    let text = text.as_str();
    let c = salary_re().captures(text)?;
    let amount = scaled(c.get(2)?.as_str(), c.get(3).map(|m| m.as_str()))?;
    let unit_words = format!(
        "{}{}{}",
        c.get(1).map_or("", |m| m.as_str()),
        c.get(5).map_or("", |m| m.as_str()),
        text
    );
    Some((amount.round() as u32, pay_unit(&unit_words)))
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

/// Trades and occupations: the words a citizen uses for one (first) and the words a listing
/// title of it contains. A question naming one gets listings of that trade only.
const OCCUPATIONS: &[(&str, &[&str])] = &[
    ("叉车司机", &["叉车"]),
    ("货车司机", &["货车", "卡车", "大车司机", "物流司机"]),
    ("司机", &["司机", "驾驶员", "网约车", "代驾"]),
    ("电焊工", &["电焊", "焊工", "氩弧焊"]),
    (
        "数控操作工",
        &["数控", "车床", "机床", "CNC", "cnc", "车工"],
    ),
    ("普工", &["普工", "操作工", "流水线", "装配工"]),
    ("电工", &["电工", "电气"]),
    ("木工", &["木工"]),
    ("瓦工", &["瓦工", "泥瓦"]),
    ("装修工", &["装修", "油漆工", "水电工"]),
    ("厨师", &["厨师", "厨工", "帮厨", "后厨", "面点", "炒菜"]),
    ("服务员", &["服务员", "传菜", "餐厅"]),
    ("保洁", &["保洁", "清洁"]),
    (
        "月嫂育婴",
        &["月嫂", "育婴", "保姆", "育儿嫂", "家政服务员"],
    ),
    ("养老护理", &["护理员", "护工", "养老护理", "陪护"]),
    ("护士", &["护士"]),
    ("保安", &["保安", "安保", "门卫"]),
    ("外卖骑手", &["外卖", "骑手", "送餐", "配送员"]),
    ("快递员", &["快递"]),
    (
        "分拣仓储",
        &["分拣", "仓库", "仓管", "库管", "理货", "装卸", "搬运"],
    ),
    ("收银导购", &["收银", "导购", "营业员", "店员"]),
    ("客服", &["客服", "话务"]),
    (
        "程序员",
        &[
            "程序员",
            "软件开发",
            "开发工程师",
            "软件工程师",
            "前端",
            "后端",
            "码农",
        ],
    ),
    ("电商运营", &["电商", "运营", "主播", "直播"]),
    ("行政文员", &["行政", "文员", "前台"]),
    ("会计", &["会计", "出纳", "财务"]),
    ("销售", &["销售", "业务员"]),
    ("美容美发", &["美容", "美甲", "美发", "理发"]),
    ("教师", &["教师", "老师", "家教"]),
    ("网格员", &["网格员", "社区工作者"]),
    ("农业技术员", &["农业技术", "农技", "种植", "大棚", "养殖"]),
    ("手工编织", &["编织", "手工"]),
    ("管培生", &["管培生", "管理培训生"]),
    ("设计师", &["设计师", "设计"]),
];

/// Words that end like an occupation but are not one.
const NOT_OCCUPATIONS: &[&str] = &[
    "员工",
    "职工",
    "人员",
    "打工",
    "零工",
    "临时工",
    "务工",
    "农民工",
    "用工",
    "招工",
    "做工",
    "上工",
    "小时工",
    "兼职工",
    "工作人员",
    "求职人员",
    "技工",
    "短工",
    "长工",
    "钟点工",
    "学员",
    "会员",
    "成员",
    "老师傅",
];

fn occupation_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"\p{Han}{1,4}(?:师|工|员|司机|手)").expect("static pattern"))
}

/// A trade named in a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupation {
    /// How it is shown ("叉车司机").
    pub name: String,
    /// A listing is of this trade when its title contains one of these.
    pub words: Vec<String>,
}

impl Occupation {
    /// Whether a listing is of this trade.
    pub fn matches(&self, l: &JobListing) -> bool {
        self.words.iter().any(|w| l.title.contains(w.as_str()))
    }
}

/// The trade or occupation named in the question: from the lexicon (the most specific entry:
/// 叉车司机 before 司机), else any word shaped like one ("茶艺师", "钢筋工") matched literally.
pub fn find_occupation(text: &str) -> Option<Occupation> {
    let mut best: Option<(usize, &str, &[&str])> = None;
    for (name, words) in OCCUPATIONS {
        for w in *words {
            if text.contains(w) && best.is_none_or(|(len, _, _)| w.chars().count() > len) {
                best = Some((w.chars().count(), name, words));
            }
        }
    }
    if let Some((_, name, words)) = best {
        return Some(Occupation {
            name: name.to_string(),
            words: words.iter().map(|w| w.to_string()).collect(),
        });
    }
    occupation_re()
        .find_iter(text)
        // "工作", "工资", "工厂" are not trades ending in 工.
        .filter(|m| {
            !text[m.end()..]
                .chars()
                .next()
                .is_some_and(|c| "作资厂地程具钱种位期龄友会".contains(c))
        })
        .filter_map(|m| {
            // "想找个茶艺师" → "茶艺师": at most three characters, no function words in front.
            let chars: Vec<char> = m.as_str().chars().collect();
            let mut tail: Vec<char> = chars[chars.len().saturating_sub(3)..].to_vec();
            while tail.len() > 2 && "的个找招有要想做是和或在当一名位些种么什哪".contains(tail[0])
            {
                tail.remove(0);
            }
            let w: String = tail.into_iter().collect();
            let function_word = w.chars().any(|c| "的个找招有要想做是么什哪".contains(c));
            (!function_word).then_some(w)
        })
        .find(|w| {
            !NOT_OCCUPATIONS
                .iter()
                .any(|n| w.ends_with(n) || n.ends_with(w.as_str()))
        })
        .map(|w| Occupation {
            name: w.clone(),
            words: vec![w],
        })
}

/// Ways of working a question may ask for, and the words a listing says them with.
const ARRANGEMENTS: &[(&[&str], &str, &[&str])] = &[
    (
        &["在家", "居家", "家里", "远程", "线上"],
        "可居家",
        &["居家", "在家", "远程", "线上", "家中"],
    ),
    (
        &[
            "时间灵活",
            "时间自由",
            "弹性",
            "灵活安排",
            "灵活的工作",
            "时间比较灵活",
        ],
        "时间灵活",
        &["灵活", "弹性", "自由安排", "时间自由"],
    ),
];

/// A way of working asked for: its label and the words a listing must contain one of.
pub fn find_arrangements(text: &str) -> Vec<(&'static str, &'static [&'static str])> {
    ARRANGEMENTS
        .iter()
        .filter(|(asked, _, _)| asked.iter().any(|w| text.contains(w)))
        .map(|(_, label, words)| (*label, *words))
        .collect()
}

fn listing_text(l: &JobListing) -> String {
    format!(
        "{}{}{}{}",
        l.title, l.description, l.requirements, l.benefits
    )
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
    let salary = find_salary(text);
    JobQuery {
        text: text.to_string(),
        cities: city.into_iter().collect(),
        districts: find_district(text, districts).into_iter().collect(),
        educations: find_educations(text),
        types: find_types(text),
        min_salary: salary.map(|(min, unit, _)| (min, unit)),
        max_salary: salary.and_then(|(_, _, max)| max),
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
        || q.max_salary.is_some()
        || !q.educations.is_empty()
    {
        let mut r = q.clone();
        r.groups.clear();
        r.types.clear();
        r.min_salary = None;
        r.max_salary = None;
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

/// What a job search found.
#[derive(Debug, Clone)]
pub struct JobAnswer {
    /// Cards, best first (at most five).
    pub cards: Vec<JobCard>,
    /// How the search was widened, when the strict one found nothing.
    pub relaxed: Option<String>,
    /// The filters, for people ("（济南市，叉车司机）"), or empty.
    pub label: String,
}

/// Listings for a job question: the strict search, then each relaxation in turn. Only
/// listings of the trade named ([`find_occupation`]) and of the ways of working asked for
/// ([`find_arrangements`]) count, in the strict search and in every relaxation: a question
/// for a forklift driver never gets a cook, whatever else is near.
pub fn search(
    kb: &dyn Retrieve,
    text: &str,
    profile: &Profile,
    today: NaiveDate,
    districts: &[String],
) -> Result<JobAnswer, retrieval::Error> {
    let mut q = query(text, profile, today, districts);
    let occupation = find_occupation(text);
    let arrangements = find_arrangements(text);
    let wanted = q.limit;
    if occupation.is_some() || !arrangements.is_empty() {
        // Filtered after retrieval: look deeper so that five of the trade can come back.
        q.limit = 60;
    }
    let mut filters = q.cities.clone();
    if let Some(o) = &occupation {
        filters.push(o.name.clone());
    }
    filters.extend(arrangements.iter().map(|(label, _)| label.to_string()));
    match (q.min_salary, q.max_salary) {
        (Some((min, unit)), Some(max)) => {
            filters.push(format!("薪资约{min}–{max}{}", unit_label(unit)))
        }
        (Some((min, unit)), None) => filters.push(format!("薪资不低于{min}{}", unit_label(unit))),
        _ => {}
    }
    let label = if filters.is_empty() {
        String::new()
    } else {
        format!("（{}）", filters.join("，"))
    };
    let fits = |l: &JobListing| {
        occupation.as_ref().is_none_or(|o| o.matches(l))
            && arrangements.iter().all(|(_, words)| {
                let t = listing_text(l);
                words.iter().any(|w| t.contains(w))
            })
    };
    let attempts = std::iter::once((q.clone(), None))
        .chain(relaxations(&q).into_iter().map(|(r, how)| (r, Some(how))));
    for (attempt, relaxed) in attempts {
        let found = kb.search_jobs(&attempt)?;
        let exact = relaxed.is_none();
        let cards: Vec<JobCard> = found
            .iter()
            .filter(|h| fits(&h.listing))
            .take(wanted)
            .map(|h| card(&h.listing, exact))
            .collect();
        if !cards.is_empty() {
            return Ok(JobAnswer {
                cards,
                relaxed,
                label,
            });
        }
    }
    Ok(JobAnswer {
        cards: Vec::new(),
        relaxed: None,
        label,
    })
}

impl super::Assistant {
    pub(super) async fn jobs(
        &self,
        query: &str,
        profile: &Profile,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        let kb = self.kb.clone();
        let (text, profile, today, districts) = (
            query.to_string(),
            profile.clone(),
            self.today(),
            self.districts.clone(),
        );
        let found =
            blocking(move || search(kb.as_ref(), &text, &profile, today, &districts)).await?;
        let JobAnswer {
            cards,
            relaxed,
            label,
        } = found;
        if cards.is_empty() {
            say(
                tx,
                out,
                &format!("没有找到符合条件{label}的在招岗位。您可以换个条件再试，或转人工请职业指导师帮您推荐。"),
            )
            .await;
            out.not_covered = true;
            return Ok(());
        }
        let msg = match &relaxed {
            None => format!(
                "为您找到{}个在招岗位{label}，详情见下方岗位卡片，投递前请与招聘单位核实。",
                cards.len()
            ),
            // "None" first, plainly; then the alternatives, labelled as such.
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
            ..Profile::default()
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
    fn amounts_in_words_and_ranges_are_read() {
        assert_eq!(digits_for_amounts("一万左右"), "10000左右");
        assert_eq!(digits_for_amounts("八千五以上"), "8500以上");
        assert_eq!(digits_for_amounts("一万二的工作"), "12000的工作");
        assert_eq!(
            find_salary("月薪一万左右的工作"),
            Some((8000, SalaryUnit::Month, Some(12000)))
        );
        assert_eq!(
            find_salary("五千以上"),
            Some((5000, SalaryUnit::Month, None))
        );
        assert_eq!(
            find_salary("日结两百左右"),
            None,
            "no unit word: not an amount"
        );
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
        let q = query("青岛一万左右的工作", &Profile::default(), today, &[]);
        assert_eq!(q.min_salary, Some((8000, SalaryUnit::Month)));
        assert_eq!(q.max_salary, Some(12000));
    }

    #[test]
    fn trades_are_read_most_specific_first_and_unknown_ones_literally() {
        let o = find_occupation("济南有叉车司机的活吗").expect("trade");
        assert_eq!(o.name, "叉车司机");
        let o = find_occupation("想找个司机的工作").expect("trade");
        assert_eq!(o.name, "司机");
        assert_eq!(
            find_occupation("潍坊有厨师的工作吗").expect("trade").name,
            "厨师"
        );
        let o = find_occupation("青岛招茶艺师吗").expect("literal trade");
        assert_eq!(o.words, vec!["茶艺师".to_string()]);
        assert_eq!(find_occupation("有什么工作"), None);
        assert_eq!(find_occupation("找个临时工"), None);
        assert_eq!(find_occupation("想找零工"), None);
        let cook = find_occupation("厨师").expect("trade");
        let mut l: JobListing = serde_json::from_str(
            r#"{"id":"x","title":"叉车司机","company":"c","city":"济南市","district":"历下区","category":"交通物流","employment_type":"full_time","salary_min":5000,"salary_max":7000,"salary_unit":"month","education":"不限","experience_years":0,"description":"","requirements":"","benefits":"","groups":[],"posted_at":"2026-01-01","expires_at":"2027-01-01","contact":""}"#,
        )
        .expect("listing");
        assert!(!cook.matches(&l));
        assert!(find_occupation("叉车").expect("trade").matches(&l));
        l.title = "中餐厨师".into();
        assert!(cook.matches(&l));
        assert_eq!(find_arrangements("有没有能在家做的活").len(), 1);
        assert!(find_arrangements("找个工作").is_empty());
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
