//! Finding metadata in the text when there is no front matter: title, 文号, issue date,
//! issuer and region.

use std::sync::OnceLock;

use regex::Regex;

use crate::document::{Block, Metadata};

/// Shandong's 16 prefecture-level cities.
pub const SHANDONG_CITIES: [&str; 16] = [
    "济南市",
    "青岛市",
    "淄博市",
    "枣庄市",
    "东营市",
    "烟台市",
    "潍坊市",
    "济宁市",
    "泰安市",
    "威海市",
    "日照市",
    "临沂市",
    "德州市",
    "聊城市",
    "滨州市",
    "菏泽市",
];

fn doc_number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // 鲁人社发〔2025〕9号 (also with [] or 【】 or () brackets), and 国务院令第700号 with an
        // optional 中华人民共和国 prefix.
        Regex::new(r"(?:中华人民共和国)?国务院令\s*第\s*\d+\s*号|[\p{Han}]{1,10}[〔\[【（(]\s*\d{4}\s*[〕\]】）)]\s*\d+\s*号").expect("valid regex")
    })
}

fn date_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日").expect("valid regex")
    })
}

/// The first 文号 in `text`, normalised to the 〔〕 brackets.
pub fn find_doc_number(text: &str) -> Option<String> {
    let m = doc_number_re().find(text)?.as_str();
    let s: String = m.chars().filter(|c| !c.is_whitespace()).collect();
    Some(s.replace(['[', '【'], "〔").replace([']', '】'], "〕"))
}

/// The last `YYYY年M月D日` date in `text` (signature dates close a document), as `YYYY-MM-DD`.
pub fn find_date(text: &str) -> Option<String> {
    date_re()
        .captures_iter(text)
        .filter_map(|c| {
            let y: u32 = c[1].parse().ok()?;
            let m: u32 = c[2].parse().ok()?;
            let d: u32 = c[3].parse().ok()?;
            ((1949..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
                .then(|| format!("{y:04}-{m:02}-{d:02}"))
        })
        .last()
}

/// The region a title names: a Shandong city, 山东省, or 全国 for national laws.
pub fn find_region(title: &str) -> String {
    if let Some(c) = SHANDONG_CITIES
        .iter()
        .find(|c| title.contains(*c) || title.contains(c.trim_end_matches('市')))
    {
        return c.to_string();
    }
    if title.contains("山东") {
        return "山东省".into();
    }
    if title.starts_with("中华人民共和国") || title.contains("国务院") {
        return "全国".into();
    }
    String::new()
}

/// Provinces, regions and large cities outside Shandong, in their short forms (a question
/// says 广东, rarely 广东省) — except where the short form is also a run of everyday words
/// (每天津贴, 完成都, 东西安全): those only with 市.
const ELSEWHERE: [&str; 46] = [
    "北京",
    "天津市",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
    "深圳",
    "广州",
    "杭州",
    "苏州",
    "南京",
    "武汉",
    "成都市",
    "西安市",
    "郑州",
    "长沙",
    "厦门",
    "宁波",
    "东莞",
];

/// The places a question names: Shandong, its cities, and places outside Shandong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacesNamed {
    /// Shandong itself (山东, 山东省, 全省, 本省).
    pub shandong: bool,
    /// Shandong cities, as regions are stored (济南市).
    pub cities: Vec<&'static str>,
    /// Places outside Shandong, as written.
    pub elsewhere: Vec<&'static str>,
}

/// Words of someone who came back from elsewhere ("在北京打工多年，回老家创业"): the place
/// named is where they were, the question is about home.
const RETURNED: [&str; 8] = [
    "返乡", "回乡", "老家", "家乡", "回来", "回到", "回流", "返回",
];

/// The places `text` names ([`PlacesNamed`]). A place outside Shandong that the person came
/// from ("从上海", or any with 返乡, 回老家) counts as Shandong: the question is about here.
pub fn places_named(text: &str) -> PlacesNamed {
    let came_from = RETURNED.iter().any(|w| text.contains(w))
        || ELSEWHERE.iter().any(|p| text.contains(&format!("从{p}")));
    PlacesNamed {
        shandong: came_from
            || ["山东", "全省", "本省", "我省"]
                .iter()
                .any(|w| text.contains(w)),
        cities: SHANDONG_CITIES
            .iter()
            .copied()
            .filter(|c| text.contains(c.trim_end_matches('市')))
            .collect(),
        elsewhere: ELSEWHERE
            .iter()
            .copied()
            .filter(|p| text.contains(p))
            .collect(),
    }
}

impl PlacesNamed {
    /// Whether a document of `region` does not apply where the question asks about: a Shandong
    /// document when the question names only places outside Shandong ("广东省的最低工资标准"),
    /// or another Shandong city's document when it names a city ("青岛" against 济南市's
    /// regulation). National documents and those of unknown region always apply.
    pub fn excludes(&self, region: &str) -> bool {
        let city = SHANDONG_CITIES.contains(&region);
        let shandong_doc = city || region == "山东省";
        if !shandong_doc {
            return false;
        }
        self.only_elsewhere() || (city && !self.cities.is_empty() && !self.cities.contains(&region))
    }

    /// Whether every place named is outside Shandong: only national documents may apply.
    pub fn only_elsewhere(&self) -> bool {
        !self.elsewhere.is_empty() && !self.shandong && self.cities.is_empty()
    }

    /// Whether the question names any place.
    pub fn any(&self) -> bool {
        self.shandong || !self.cities.is_empty() || !self.elsewhere.is_empty()
    }
}

const ISSUER_SUFFIXES: [&str; 10] = [
    "厅",
    "局",
    "委员会",
    "人民政府",
    "办公室",
    "办公厅",
    "常务委员会",
    "部",
    "委",
    "会",
];

/// Fills empty fields of `meta` from the document's blocks.
pub fn infer(meta: &mut Metadata, blocks: &[Block]) {
    let paragraphs: Vec<String> = blocks
        .iter()
        .map(Block::text)
        .filter(|t| !t.trim().is_empty())
        .collect();
    if meta.title.is_empty() {
        let heading = blocks.iter().find_map(|b| match b {
            Block::Heading { text, .. } if !text.trim().is_empty() => Some(text.trim().to_string()),
            _ => None,
        });
        meta.title = heading
            .or_else(|| {
                paragraphs
                    .first()
                    .map(|p| p.trim().chars().take(120).collect())
            })
            .unwrap_or_default();
    }
    let head: String = paragraphs
        .iter()
        .take(8)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if meta.doc_number.is_empty() {
        meta.doc_number = find_doc_number(&head).unwrap_or_default();
    }
    let tail: Vec<&String> = paragraphs.iter().rev().take(20).collect();
    if meta.date.is_none() {
        let tail_text: String = tail
            .iter()
            .rev()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        meta.date = find_date(&tail_text).or_else(|| find_date(&head));
    }
    if meta.issuer.is_empty() {
        // Signature lines: short lines near the end naming a body.
        let mut issuers: Vec<&str> = tail
            .iter()
            .map(|s| s.trim())
            .filter(|s| {
                s.chars().count() <= 30
                    && !s.contains('。')
                    && ISSUER_SUFFIXES.iter().any(|x| s.ends_with(x))
            })
            .collect();
        issuers.reverse();
        meta.issuer = issuers.join("、");
    }
    if meta.region.is_empty() {
        meta.region = find_region(&meta.title);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_numbers_in_their_usual_forms() {
        assert_eq!(
            find_doc_number("关于……的实施意见\n鲁人社发〔2025〕9号\n为贯彻").as_deref(),
            Some("鲁人社发〔2025〕9号")
        );
        assert_eq!(
            find_doc_number("鲁政办发[2023]12号").as_deref(),
            Some("鲁政办发〔2023〕12号")
        );
        assert_eq!(
            find_doc_number("中华人民共和国国务院令第700号").as_deref(),
            Some("中华人民共和国国务院令第700号")
        );
        assert_eq!(
            find_doc_number("国务院令 第 700 号").as_deref(),
            Some("国务院令第700号")
        );
        assert_eq!(find_doc_number("没有文号的文本2025年"), None);
    }

    #[test]
    fn a_question_about_another_place_excludes_the_documents_that_do_not_apply_there() {
        let guangdong = places_named("广东省的最低工资标准是多少？");
        assert_eq!(guangdong.elsewhere, vec!["广东"]);
        assert!(guangdong.excludes("山东省"));
        assert!(guangdong.excludes("济南市"));
        assert!(!guangdong.excludes("全国"));
        // A document whose region is unknown may be the one that answers.
        assert!(!guangdong.excludes(""));
        assert!(guangdong.only_elsewhere());
        // Someone from elsewhere working in Shandong asks about Shandong.
        let both = places_named("我是河南人，在青岛打工，工资被拖欠怎么办？");
        assert!(!both.excludes("山东省"));
        assert!(both.excludes("济南市"));
        assert!(!both.excludes("青岛市"));
        assert!(!both.only_elsewhere());
        let none = places_named("失业保险金能领多久？");
        assert!(!none.any());
        assert!(!none.excludes("济南市") && !none.excludes("山东省"));
        // Back home from elsewhere: the question is about Shandong.
        for q in [
            "在北京打工多年，回老家创业有什么补贴？",
            "从上海辞职了，失业金能在这边领吗？",
        ] {
            let p = places_named(q);
            assert!(!p.only_elsewhere() && !p.excludes("山东省"), "{q}");
        }
        // Everyday words that hold a place's short form name no place.
        for q in ["培训完成都能领补贴吗？", "每天津贴多少？", "东西安全吗？"]
        {
            assert!(!places_named(q).any(), "{q}");
        }
        assert!(places_named("天津市的落户政策？").only_elsewhere());
        // 济南 is not 海南 or 河南.
        assert!(places_named("济南的残疾人有什么补贴？")
            .elsewhere
            .is_empty());
    }

    #[test]
    fn dates_regions_issuers() {
        assert_eq!(
            find_date("2007年8月30日通过\n2015年4月24日修正").as_deref(),
            Some("2015-04-24")
        );
        assert_eq!(find_date("第13个月"), None);
        assert_eq!(find_region("青岛市残疾人保障条例"), "青岛市");
        assert_eq!(find_region("山东省就业促进条例"), "山东省");
        assert_eq!(find_region("中华人民共和国就业促进法"), "全国");
        let blocks = vec![
            Block::Heading {
                level: 1,
                text: "关于做好就业工作的通知".into(),
            },
            Block::Paragraph("鲁人社字〔2024〕3号".into()),
            Block::Paragraph("各市人力资源社会保障局：现将有关事项通知如下。".into()),
            Block::Paragraph("山东省人力资源和社会保障厅".into()),
            Block::Paragraph("山东省财政厅".into()),
            Block::Paragraph("2024年3月1日".into()),
        ];
        let mut m = Metadata::default();
        infer(&mut m, &blocks);
        assert_eq!(m.title, "关于做好就业工作的通知");
        assert_eq!(m.doc_number, "鲁人社字〔2024〕3号");
        assert_eq!(m.date.as_deref(), Some("2024-03-01"));
        assert_eq!(m.issuer, "山东省人力资源和社会保障厅、山东省财政厅");
    }
}
