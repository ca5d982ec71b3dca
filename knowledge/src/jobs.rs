//! Job listings: the schema, validation, and the JSONL and CSV loaders.
//!
//! Loaders never stop at a bad line: every bad line is reported with its line number, the field
//! and the reason, and every good line is loaded. A listing that passes validation is
//! well-formed by construction (known city, min ≤ max salary, expiry not before posting).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metadata::SHANDONG_CITIES;

/// Kinds of employment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    /// 全职.
    FullTime,
    /// 兼职.
    PartTime,
    /// 零工 (gig work, 灵活就业).
    Gig,
    /// 实习.
    Internship,
}

impl EmploymentType {
    /// All kinds.
    pub const ALL: [Self; 4] = [Self::FullTime, Self::PartTime, Self::Gig, Self::Internship];
    /// The schema name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullTime => "full_time",
            Self::PartTime => "part_time",
            Self::Gig => "gig",
            Self::Internship => "internship",
        }
    }
    /// The Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            Self::FullTime => "全职",
            Self::PartTime => "兼职",
            Self::Gig => "零工",
            Self::Internship => "实习",
        }
    }
}

/// The period a salary is quoted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalaryUnit {
    /// 元/月.
    Month,
    /// 元/天.
    Day,
    /// 元/小时.
    Hour,
}

impl SalaryUnit {
    /// The schema name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Day => "day",
            Self::Hour => "hour",
        }
    }
}

/// The groups the employment plan serves first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// 高校毕业生.
    Graduate,
    /// 农村务工人员.
    Migrant,
    /// 灵活就业人员.
    Flexible,
    /// 退役军人.
    Veteran,
    /// 残疾人.
    Disabled,
    /// 女性（含返岗妈妈）.
    Women,
    /// 大龄劳动者.
    Elderly,
}

impl Group {
    /// All groups.
    pub const ALL: [Self; 7] = [
        Self::Graduate,
        Self::Migrant,
        Self::Flexible,
        Self::Veteran,
        Self::Disabled,
        Self::Women,
        Self::Elderly,
    ];
    /// The schema name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graduate => "graduate",
            Self::Migrant => "migrant",
            Self::Flexible => "flexible",
            Self::Veteran => "veteran",
            Self::Disabled => "disabled",
            Self::Women => "women",
            Self::Elderly => "elderly",
        }
    }
}

/// A validated job listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobListing {
    /// Unique id.
    pub id: String,
    /// Job title.
    pub title: String,
    /// Employer.
    pub company: String,
    /// One of Shandong's 16 cities (`济南市` …).
    pub city: String,
    /// District or county.
    pub district: String,
    /// Trade (制造业, 餐饮服务, …).
    pub category: String,
    /// Kind of employment.
    pub employment_type: EmploymentType,
    /// Lowest pay.
    pub salary_min: u32,
    /// Highest pay.
    pub salary_max: u32,
    /// Pay period.
    pub salary_unit: SalaryUnit,
    /// Education required (不限, 高中, 大专, 本科, …).
    pub education: String,
    /// Years of experience required.
    pub experience_years: u32,
    /// What the job is.
    pub description: String,
    /// What the employer asks for.
    pub requirements: String,
    /// What the employer offers.
    pub benefits: String,
    /// Groups the listing welcomes in particular.
    pub groups: Vec<Group>,
    /// Posting date.
    pub posted_at: NaiveDate,
    /// Last day the listing is valid.
    pub expires_at: NaiveDate,
    /// How to apply.
    pub contact: String,
}

impl JobListing {
    /// Whether the listing is still valid on `today`.
    pub fn is_valid_on(&self, today: NaiveDate) -> bool {
        self.posted_at <= today && today <= self.expires_at
    }

    /// The text that is embedded and searched.
    pub fn search_text(&self) -> String {
        format!(
            "{}｜{}｜{}{}｜{}｜{}｜{}-{}元/{}｜学历{}｜{}｜{}｜{}",
            self.title,
            self.company,
            self.city,
            self.district,
            self.category,
            self.employment_type.label(),
            self.salary_min,
            self.salary_max,
            match self.salary_unit {
                SalaryUnit::Month => "月",
                SalaryUnit::Day => "天",
                SalaryUnit::Hour => "小时",
            },
            self.education,
            self.description,
            self.requirements,
            self.benefits
        )
    }
}

/// One problem with one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line (JSONL) or record line (CSV, header is line 1).
    pub line: usize,
    /// The field, or `-` for the line as a whole.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.reason)
    }
}

/// What a loader produced.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Valid listings.
    pub listings: Vec<JobListing>,
    /// Problems, in line order.
    pub errors: Vec<LineError>,
}

/// The columns, in CSV order.
pub const COLUMNS: [&str; 19] = [
    "id",
    "title",
    "company",
    "city",
    "district",
    "category",
    "employment_type",
    "salary_min",
    "salary_max",
    "salary_unit",
    "education",
    "experience_years",
    "description",
    "requirements",
    "benefits",
    "groups",
    "posted_at",
    "expires_at",
    "contact",
];

struct Fields<'a> {
    map: &'a BTreeMap<String, Value>,
    line: usize,
    errors: Vec<LineError>,
}

impl Fields<'_> {
    fn err(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(LineError {
            line: self.line,
            field: field.into(),
            reason: reason.into(),
        });
    }
    fn string(&mut self, field: &str, required: bool) -> String {
        match self.map.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                if required {
                    self.err(field, "missing");
                }
                String::new()
            }
            Some(_) => {
                self.err(field, "must be text");
                String::new()
            }
        }
    }
    fn number(&mut self, field: &str) -> u32 {
        let v = match self.map.get(field) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            None | Some(Value::Null) => {
                self.err(field, "missing");
                return 0;
            }
            _ => None,
        };
        match v.and_then(|v| u32::try_from(v).ok()) {
            Some(v) => v,
            None => {
                self.err(field, "must be a whole number ≥ 0");
                0
            }
        }
    }
    fn date(&mut self, field: &str) -> Option<NaiveDate> {
        let s = self.string(field, true);
        if s.is_empty() {
            return None;
        }
        match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.err(field, format!("{s:?} is not a date YYYY-MM-DD"));
                None
            }
        }
    }
    fn choice<T: Copy>(&mut self, field: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(field, true);
        if s.is_empty() {
            return None;
        }
        let found = options.iter().find(|(n, _)| *n == s).map(|(_, v)| *v);
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            self.err(field, format!("{s:?} is not one of {}", names.join(", ")));
        }
        found
    }
}

/// Validates one listing given as field values (JSON values, or strings from CSV).
pub fn validate(map: &BTreeMap<String, Value>, line: usize) -> Result<JobListing, Vec<LineError>> {
    let mut f = Fields {
        map,
        line,
        errors: Vec::new(),
    };
    let id = f.string("id", true);
    let title = f.string("title", true);
    let company = f.string("company", true);
    let city = f.string("city", true);
    if !city.is_empty() && !SHANDONG_CITIES.contains(&city.as_str()) {
        f.err(
            "city",
            format!("{city:?} is not one of Shandong's 16 cities (e.g. 济南市)"),
        );
    }
    let district = f.string("district", false);
    let category = f.string("category", true);
    let types: Vec<(&str, EmploymentType)> = EmploymentType::ALL
        .iter()
        .map(|t| (t.as_str(), *t))
        .collect();
    let employment_type = f.choice("employment_type", &types);
    let salary_min = f.number("salary_min");
    let salary_max = f.number("salary_max");
    if salary_min > salary_max {
        f.err(
            "salary_max",
            format!("{salary_max} is below salary_min {salary_min}"),
        );
    }
    let salary_unit = f.choice(
        "salary_unit",
        &[
            ("month", SalaryUnit::Month),
            ("day", SalaryUnit::Day),
            ("hour", SalaryUnit::Hour),
        ],
    );
    let education = f.string("education", false);
    let experience_years = match map.get("experience_years") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.trim().is_empty() => 0,
        Some(_) => f.number("experience_years"),
    };
    let description = f.string("description", true);
    let requirements = f.string("requirements", false);
    let benefits = f.string("benefits", false);
    let mut groups = Vec::new();
    let names: Vec<String> = match map.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        Some(Value::String(s)) => s
            .split([';', '|', ',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(_) => {
            f.err("groups", "must be a list");
            Vec::new()
        }
    };
    for n in names {
        match Group::ALL.iter().find(|g| g.as_str() == n) {
            Some(g) if !groups.contains(g) => groups.push(*g),
            Some(_) => {}
            None => f.err("groups", format!("{n:?} is not one of graduate, migrant, flexible, veteran, disabled, women, elderly")),
        }
    }
    let posted_at = f.date("posted_at");
    let expires_at = f.date("expires_at");
    if let (Some(p), Some(e)) = (posted_at, expires_at) {
        if e < p {
            f.err("expires_at", format!("{e} is before posted_at {p}"));
        }
    }
    let contact = f.string("contact", true);
    match (
        f.errors.is_empty(),
        employment_type,
        salary_unit,
        posted_at,
        expires_at,
    ) {
        (true, Some(employment_type), Some(salary_unit), Some(posted_at), Some(expires_at)) => {
            Ok(JobListing {
                id,
                title,
                company,
                city,
                district,
                category,
                employment_type,
                salary_min,
                salary_max,
                salary_unit,
                education,
                experience_years,
                description,
                requirements,
                benefits,
                groups,
                posted_at,
                expires_at,
                contact,
            })
        }
        _ => Err(f.errors),
    }
}

fn finish(
    report: &mut LoadReport,
    result: Result<JobListing, Vec<LineError>>,
    seen: &mut std::collections::HashSet<String>,
    line: usize,
) {
    match result {
        Ok(l) => {
            if seen.insert(l.id.clone()) {
                report.listings.push(l);
            } else {
                report.errors.push(LineError {
                    line,
                    field: "id".into(),
                    reason: format!("duplicate id {:?}", l.id),
                });
            }
        }
        Err(e) => report.errors.extend(e),
    }
}

/// Loads JSONL: one JSON object per line; blank lines are skipped.
pub fn load_jsonl(text: &str) -> LoadReport {
    let mut report = LoadReport::default();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<BTreeMap<String, Value>>(line) {
            Ok(map) => finish(&mut report, validate(&map, n), &mut seen, n),
            Err(e) => report.errors.push(LineError {
                line: n,
                field: "-".into(),
                reason: format!("not a JSON object: {e}"),
            }),
        }
    }
    report
}

/// Loads CSV with a header row naming the [`COLUMNS`] (any order; `groups` separated by `;`).
pub fn load_csv(text: &str) -> LoadReport {
    let mut report = LoadReport::default();
    let mut seen = std::collections::HashSet::new();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            report.errors.push(LineError {
                line: 1,
                field: "-".into(),
                reason: format!("unreadable header: {e}"),
            });
            return report;
        }
    };
    for col in [
        "id",
        "title",
        "city",
        "employment_type",
        "salary_min",
        "salary_max",
        "salary_unit",
        "posted_at",
        "expires_at",
    ] {
        if !header.iter().any(|h| h == col) {
            report.errors.push(LineError {
                line: 1,
                field: col.into(),
                reason: "column missing from the header".into(),
            });
        }
    }
    if !report.errors.is_empty() {
        return report;
    }
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                if r.len() != header.len() {
                    report.errors.push(LineError {
                        line,
                        field: "-".into(),
                        reason: format!("{} fields, header has {}", r.len(), header.len()),
                    });
                    continue;
                }
                let map: BTreeMap<String, Value> = header
                    .iter()
                    .cloned()
                    .zip(r.iter().map(|v| Value::String(v.to_string())))
                    .collect();
                finish(&mut report, validate(&map, line), &mut seen, line);
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                report.errors.push(LineError {
                    line,
                    field: "-".into(),
                    reason: format!("bad CSV record: {e}"),
                });
            }
        }
    }
    report
}

/// Writes listings as CSV with the [`COLUMNS`] header.
pub fn to_csv(listings: &[JobListing]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(COLUMNS);
    for l in listings {
        let groups: Vec<&str> = l.groups.iter().map(|g| g.as_str()).collect();
        let _ = w.write_record([
            l.id.as_str(),
            &l.title,
            &l.company,
            &l.city,
            &l.district,
            &l.category,
            l.employment_type.as_str(),
            &l.salary_min.to_string(),
            &l.salary_max.to_string(),
            l.salary_unit.as_str(),
            &l.education,
            &l.experience_years.to_string(),
            &l.description,
            &l.requirements,
            &l.benefits,
            &groups.join(";"),
            &l.posted_at.to_string(),
            &l.expires_at.to_string(),
            &l.contact,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"j1","title":"电焊工","company":"青岛某机械厂","city":"青岛市","district":"黄岛区","category":"制造业","employment_type":"full_time","salary_min":6000,"salary_max":8000,"salary_unit":"month","education":"不限","experience_years":1,"description":"焊接","requirements":"持证","benefits":"五险","groups":["migrant","veteran"],"posted_at":"2026-11-01","expires_at":"2026-12-31","contact":"0532-00000000"}"#;

    #[test]
    fn bad_lines_are_reported_and_good_ones_loaded() {
        let bad_city = GOOD.replace("青岛市", "北京市").replace("\"j1\"", "\"j2\"");
        let bad_salary = GOOD
            .replace("\"salary_min\":6000", "\"salary_min\":9000")
            .replace("\"j1\"", "\"j3\"");
        let bad_date = GOOD
            .replace("2026-12-31", "2026-13-01")
            .replace("\"j1\"", "\"j4\"");
        let text = [
            GOOD,
            "{not json",
            &bad_city,
            "",
            &bad_salary,
            &bad_date,
            GOOD,
        ]
        .join("\n");
        let r = load_jsonl(&text);
        assert_eq!(r.listings.len(), 1);
        let got: Vec<(usize, &str)> = r
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "-"),
                (3, "city"),
                (5, "salary_max"),
                (6, "expires_at"),
                (7, "id")
            ]
        );
        assert!(r.errors[1].reason.contains("北京市"));
    }

    #[test]
    fn csv_round_trips_and_reports_lines() {
        let l = load_jsonl(GOOD).listings;
        let csv = to_csv(&l);
        let back = load_csv(&csv);
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.listings, l);
        let broken = format!("{csv}j9,电工,厂,济南市,历下区,制造业,full_time,abc,100,month,不限,0,d,r,b,,2026-01-01,2026-02-01,c\n");
        let r = load_csv(&broken);
        assert_eq!(r.listings.len(), 1);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(
            (r.errors[0].line, r.errors[0].field.as_str()),
            (3, "salary_min")
        );
        let missing = load_csv("id,title\n1,x\n");
        assert!(missing.listings.is_empty() && missing.errors.iter().any(|e| e.field == "city"));
    }

    #[test]
    fn validity_window() {
        let l = &load_jsonl(GOOD).listings[0];
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(l.is_valid_on(d("2026-11-25")));
        assert!(!l.is_valid_on(d("2027-01-01")));
        assert!(!l.is_valid_on(d("2026-10-01")));
    }
}
