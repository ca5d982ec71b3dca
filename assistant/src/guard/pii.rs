//! PII masking that survives real typing.
//!
//! Citizens type numbers on phones: full-width digits, ideographic spaces, zero-width
//! characters pasted from chat apps, dots and dashes as separators. Matching therefore runs on
//! a normalised copy (NFKC, every space to ' ', dash-likes to '-', dot-likes to '.', zero-width
//! characters removed) that keeps, for each of its characters, where it came from; masks are
//! then applied to the original text, which is otherwise left exactly as typed.
//!
//! Masked:
//! - mainland ID numbers: 18 characters (last may be X) with a birth date inside, and the old
//!   15-digit form; separators anywhere inside;
//! - mobile numbers (11 digits from 13–19, optional 86/+86/0086) in any grouping;
//! - landlines with an area code (`0531-88888888`, `(010) 8888 8888`, `+86 531 …`);
//! - bank cards: 16–19 digits in any grouping;
//! - any run of 15 or more digits written together (e.g. an ID glued to a phone number);
//! - e-mail addresses, QQ numbers and WeChat ids introduced as such;
//! - a name introduced as one (`我叫…`, `姓名：…`, `名字是…`, `联系人…`): names in free text
//!   cannot be told from words without a model, so only these explicit forms are masked;
//! - the house-level part of an address (`3号楼`, `2单元`, `401室`): road, district and city
//!   stay, since job search needs them and they do not point at a person.
//!
//! Never masked (the verifier needs them): years and date ranges (`2024年至2028年`,
//! `2024-01-15`), amounts and salary ranges (`5000-8000元`), 文号 (`鲁人社发〔2025〕9号`),
//! article numbers, percentages, and service hotlines (`12333`, `400-161-9995`). A run of
//! grouped digits that ends in a unit (元, 年, %, …) is a quantity, never a phone number.

use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// Placeholder for an ID number.
pub const ID_MASK: &str = "[身份证号]";
/// Placeholder for a mobile number.
pub const PHONE_MASK: &str = "[手机号]";
/// Placeholder for a landline number.
pub const LANDLINE_MASK: &str = "[电话]";
/// Placeholder for a bank card number.
pub const CARD_MASK: &str = "[银行卡号]";
/// Placeholder for another long number (15+ digits).
pub const NUMBER_MASK: &str = "[号码]";
/// Placeholder for an e-mail address.
pub const EMAIL_MASK: &str = "[邮箱]";
/// Placeholder for a name given as such.
pub const NAME_MASK: &str = "[姓名]";
/// Placeholder for building, unit and room numbers.
pub const ADDRESS_MASK: &str = "[门牌号]";
/// Placeholder for a QQ number.
pub const QQ_MASK: &str = "[QQ号]";
/// Placeholder for a WeChat id.
pub const WECHAT_MASK: &str = "[微信号]";

/// Longest digit string any PII shape has (+86 and a 19-digit card stay under it).
const MAX_DIGITS: usize = 21;

/// Characters after a number that make it a quantity, not a phone number.
const UNITS: &[char] = &[
    '元', '万', '千', '百', '亿', '年', '月', '日', '号', '条', '款', '项', '岁', '%', '人', '个',
    '次', '天', '周', '时', '分', '秒', '米', '里', '平', '亩', '吨', '斤', '家', '所', '名', '位',
    '期', '届', '批', '级', '倍', '章', '节', '页', '件', '台', '辆', '套', '间', '张', '份', '块',
    '角', 'k', 'K', 'w', 'W',
];

/// The normalised copy: its characters and, for each, the byte range in the original.
struct Normalized {
    chars: Vec<char>,
    orig: Vec<(usize, usize)>,
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn normalize(text: &str) -> Normalized {
    let mut chars = Vec::with_capacity(text.len());
    let mut orig = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let span = (i, i + c.len_utf8());
        if is_invisible(c) {
            continue;
        }
        let mapped = if c.is_whitespace() {
            Some(' ')
        } else if matches!(
            c,
            '-' | '\u{2010}'
                ..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' | '\u{2043}'
        ) {
            Some('-')
        } else if matches!(
            c,
            '.' | '\u{00B7}' | '\u{2022}' | '\u{2024}' | '\u{30FB}' | '\u{FF0E}' | '\u{FF65}'
        ) {
            Some('.')
        } else {
            None
        };
        match mapped {
            Some(m) => {
                chars.push(m);
                orig.push(span);
            }
            None => {
                for n in std::iter::once(c).nfkc() {
                    chars.push(n);
                    orig.push(span);
                }
            }
        }
    }
    Normalized { chars, orig }
}

/// A masked range of the original text.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    label: &'static str,
}

impl Normalized {
    /// The original byte range of normalised characters `from..to`.
    fn hit(&self, from: usize, to: usize, label: &'static str) -> Hit {
        Hit {
            start: self.orig[from].0,
            end: self.orig[to - 1].1,
            label,
        }
    }
}

/// One group of digits in a run: its digits, char range in the normalised copy, trailing X.
struct Group {
    digits: String,
    from: usize,
    to: usize,
    x: bool,
}

fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')')
}

/// Runs of digit groups joined by short separator sequences.
fn digit_runs(chars: &[char]) -> Vec<Vec<Group>> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut run: Vec<Group> = Vec::new();
        loop {
            let from = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let mut g = Group {
                digits: chars[from..i].iter().collect(),
                from,
                to: i,
                x: false,
            };
            // The ID checksum X ends a group (and the run).
            if i < chars.len() && matches!(chars[i], 'X' | 'x') {
                let next_is_letter = chars.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric());
                if !next_is_letter {
                    g.x = true;
                    i += 1;
                    g.to = i;
                }
            }
            let ended_with_x = g.x;
            run.push(g);
            if ended_with_x {
                break;
            }
            // Up to three separator characters, then more digits, continue the run.
            let mut j = i;
            while j < chars.len() && j - i < 3 && is_sep(chars[j]) {
                j += 1;
            }
            if j > i && j < chars.len() && chars[j].is_ascii_digit() {
                i = j;
            } else {
                break;
            }
        }
        runs.push(run);
    }
    runs
}

fn valid_date(month: &str, day: &str) -> bool {
    let m: u32 = month.parse().unwrap_or(0);
    let d: u32 = day.parse().unwrap_or(0);
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

fn is_id18(d: &str, x: bool) -> bool {
    let len = d.len() + usize::from(x);
    len == 18
        && !d.starts_with('0')
        && (d[6..8] == *"19" || d[6..8] == *"20")
        && valid_date(&d[10..12], &d[12..14])
}

fn is_id15(d: &str, x: bool) -> bool {
    d.len() == 15 && !x && !d.starts_with('0') && valid_date(&d[8..10], &d[10..12])
}

fn is_mobile(d: &str) -> bool {
    let core = d
        .strip_prefix("0086")
        .or_else(|| (d.len() == 13).then(|| d.strip_prefix("86")).flatten())
        .unwrap_or(d);
    let b = core.as_bytes();
    core.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

fn is_landline(d: &str) -> bool {
    let b = d.as_bytes();
    if b.len() >= 11 && b.len() <= 12 && b[0] == b'0' && b[1] != b'0' {
        return true;
    }
    // +86 and the area code without its 0, e.g. 86 531 88888888.
    (12..=13).contains(&b.len()) && d.starts_with("86") && (b'2'..=b'9').contains(&b[2])
}

fn is_year(g: &str) -> bool {
    g.len() == 4 && (g.starts_with("19") || g.starts_with("20"))
}

fn is_compact_date(g: &str) -> bool {
    g.len() == 8 && is_year(&g[..4]) && valid_date(&g[4..6], &g[6..8])
}

/// Classifies the digits of groups `i..=j` of a run.
fn classify(run: &[Group], i: usize, j: usize, quantity: bool) -> Option<&'static str> {
    let d: String = run[i..=j].iter().map(|g| g.digits.as_str()).collect();
    let x = run[j].x;
    if x && j > i && run[i..j].iter().any(|g| g.x) {
        return None;
    }
    if is_id18(&d, x) {
        return Some(ID_MASK);
    }
    if i == j && d.len() + usize::from(x) >= 15 {
        // Written together: whatever it is, it is too long to be anything but an identifier.
        return Some(if is_id15(&d, x) {
            ID_MASK
        } else if (16..=19).contains(&d.len()) && !x {
            CARD_MASK
        } else {
            NUMBER_MASK
        });
    }
    if x {
        return None;
    }
    if is_id15(&d, false) {
        return Some(ID_MASK);
    }
    if !quantity && is_mobile(&d) {
        return Some(PHONE_MASK);
    }
    if !quantity && is_landline(&d) {
        return Some(LANDLINE_MASK);
    }
    if (16..=19).contains(&d.len()) {
        let groups = &run[i..=j];
        let dates = groups
            .iter()
            .all(|g| is_year(&g.digits) || is_compact_date(&g.digits));
        if !dates {
            return Some(CARD_MASK);
        }
    }
    None
}

fn number_hits(n: &Normalized, hits: &mut Vec<Hit>) {
    for run in digit_runs(&n.chars) {
        let last = run.last().map_or(0, |g| g.to);
        // A unit right after the run (spaces allowed) makes it a quantity.
        let quantity = n.chars[last..]
            .iter()
            .find(|c| **c != ' ')
            .is_some_and(|c| UNITS.contains(c));
        let mut i = 0;
        while i < run.len() {
            // The longest span of groups that still fits a PII shape wins.
            let mut len = 0;
            let mut end = i;
            while end < run.len() && len + run[end].digits.len() <= MAX_DIGITS {
                len += run[end].digits.len();
                end += 1;
            }
            let end = end.max(i + 1);
            let found = (i..end).rev().find_map(|j| {
                let q = quantity && j + 1 == run.len();
                classify(&run, i, j, q).map(|l| (j, l))
            });
            match found {
                Some((j, label)) => {
                    let mut from = run[i].from;
                    // Take a leading '+' (or '(' of an area code) with the number.
                    while from > 0 && matches!(n.chars[from - 1], '+' | '(') {
                        from -= 1;
                    }
                    hits.push(n.hit(from, run[j].to, label));
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }
}

fn text_patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        let build = |re: &str| Regex::new(re).expect("static pattern");
        // Group 1 is what gets masked. `regex` has no look-ahead, so the character after a
        // name is matched (and left alone) instead.
        vec![
            (
                build(r"([A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"),
                EMAIL_MASK,
            ),
            (
                build(r"(?:我叫|名字叫|名字是|本人叫|联系人[:：]?|姓名[:：])\s*(\p{Han}{2,3})(?:[^\p{Han}]|$)"),
                NAME_MASK,
            ),
            (
                build(r"([0-9]+\s*(?:号楼|栋|幢|单元|室|户|号院))"),
                ADDRESS_MASK,
            ),
            (build(r"(?i:qq)号?\s*[:：]?\s*([1-9][0-9]{4,11})"), QQ_MASK),
            (
                build(r"(?:微信号|微信)\s*[:：]?\s*([A-Za-z][-_A-Za-z0-9]{5,19})"),
                WECHAT_MASK,
            ),
        ]
    })
}

fn pattern_hits(n: &Normalized, hits: &mut Vec<Hit>) {
    let s: String = n.chars.iter().collect();
    // Byte offset in `s` -> char index in the normalised copy.
    let mut at = vec![0usize; s.len() + 1];
    let mut k = 0;
    for (ci, (bi, c)) in s.char_indices().enumerate() {
        for b in bi..bi + c.len_utf8() {
            at[b] = ci;
        }
        k = ci + 1;
    }
    at[s.len()] = k;
    for (re, label) in text_patterns() {
        for caps in re.captures_iter(&s) {
            if let Some(m) = caps.get(1) {
                if m.start() < m.end() {
                    hits.push(n.hit(at[m.start()], at[m.end()], label));
                }
            }
        }
    }
}

/// Masks every kind of PII listed in the module docs; everything else is kept as typed.
pub fn mask_pii(text: &str) -> String {
    let n = normalize(text);
    let mut hits = Vec::new();
    pattern_hits(&n, &mut hits);
    number_hits(&n, &mut hits);
    if hits.is_empty() {
        return text.to_string();
    }
    hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for h in hits {
        if h.end <= pos {
            continue;
        }
        if h.start >= pos {
            out.push_str(&text[pos..h.start]);
            out.push_str(h.label);
        }
        // An overlapping hit only extends the masked range.
        pos = h.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Whether `text` still holds something that masking would change.
pub fn has_pii(text: &str) -> bool {
    mask_pii(text) != text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_phones_and_cards_in_plain_form() {
        let t = "我的身份证370102199003071234，手机13812345678，卡号6222 0212 3456 7890 123，谢谢";
        assert_eq!(
            mask_pii(t),
            "我的身份证[身份证号]，手机[手机号]，卡号[银行卡号]，谢谢"
        );
        assert_eq!(mask_pii("号码 +86 138-1234-5678。"), "号码 [手机号]。");
        assert_eq!(mask_pii("37010219900307123X"), "[身份证号]");
        assert_eq!(mask_pii("6222021234567890123"), "[银行卡号]");
        assert_eq!(mask_pii("13812345678,13912345678"), "[手机号],[手机号]");
    }

    #[test]
    fn every_typed_form_is_masked() {
        let cases: &[(&str, &str)] = &[
            // Full-width digits and letters.
            (
                "身份证３７０１０２１９９００３０７１２３Ｘ",
                "身份证[身份证号]",
            ),
            ("手机１３８１２３４５６７８", "手机[手机号]"),
            // Ideographic and no-break spaces, zero-width characters.
            ("手机138\u{3000}1234\u{3000}5678", "手机[手机号]"),
            ("手机138\u{a0}1234\u{a0}5678", "手机[手机号]"),
            ("手机138\u{200b}1234\u{200d}5678", "手机[手机号]"),
            ("手机1\u{feff}3812345678", "手机[手机号]"),
            // Dots and dashes of every kind as separators.
            ("电话138.1234.5678", "电话[手机号]"),
            ("电话138—1234—5678", "电话[手机号]"),
            ("电话138－1234－5678", "电话[手机号]"),
            ("电话138·1234·5678", "电话[手机号]"),
            ("电话 1381 234 5678 谢谢", "电话 [手机号] 谢谢"),
            ("电话(+86)13812345678", "电话[手机号]"),
            ("电话0086 138 1234 5678", "电话[手机号]"),
            // IDs with separators, the old 15-digit form, lower-case x.
            ("身份证 370102 19900307 123x", "身份证 [身份证号]"),
            ("身份证370102-1990-0307-1234", "身份证[身份证号]"),
            ("老身份证370102900307123", "老身份证[身份证号]"),
            // Cards in any grouping.
            ("卡号6222-0212-3456-7890", "卡号[银行卡号]"),
            ("卡号 622202 1234567890 123", "卡号 [银行卡号]"),
            ("卡号622202123456789012", "卡号[银行卡号]"),
            // An ID glued to a phone number.
            ("1381234567837010219900307123", "[号码]"),
            // Landlines with area codes.
            ("座机0531-88888888", "座机[电话]"),
            ("座机(0531)8888 8888", "座机[电话]"),
            ("座机010 8888 8888", "座机[电话]"),
            ("座机0531－8888888转123", "座机[电话]转123"),
            // E-mail, QQ, WeChat.
            ("邮箱zhang.san@example.com.cn", "邮箱[邮箱]"),
            ("邮箱ｚｓ＠ｑｑ．ｃｏｍ", "邮箱[邮箱]"),
            ("QQ：12345678", "QQ：[QQ号]"),
            ("微信号：zhangsan_88", "微信号：[微信号]"),
            // Names given as names, house-level address parts.
            ("我叫张三，想找工作", "我叫[姓名]，想找工作"),
            ("姓名：王小明", "姓名：[姓名]"),
            (
                "住在幸福路8号3号楼2单元401室",
                "住在幸福路8号[门牌号][门牌号][门牌号]",
            ),
        ];
        for (input, want) in cases {
            let got = mask_pii(input);
            assert_eq!(&got, want, "input {input:?}");
            assert!(!has_pii(&got), "masked text is clean: {got}");
        }
    }

    #[test]
    fn what_the_verifier_needs_is_never_masked() {
        for keep in [
            "2024年至2028年",
            "2024-2028年",
            "2024年1月1日至2028年12月31日",
            "2024-01-15",
            "2024.01-2028.12",
            "20240101-20281231",
            "5000-8000元",
            "月薪 5000 - 8000 元",
            "13000-150000元",
            "10000-15000元/月",
            "1万-1.5万元",
            "鲁人社发〔2025〕9号",
            "第十二条",
            "第12条第3款",
            "12.5%",
            "提高到60%以上",
            "拨打12333",
            "心理援助热线400-161-9995",
            "1380000万元",
            "2024 2025 2026 2027年",
            "补贴3000元，2025年，鲁人社发〔2025〕9号",
            "我叫了很多次客服",
            "姓名怎么填？",
            "192.168.1.1",
        ] {
            assert_eq!(mask_pii(keep), keep, "must not mask {keep:?}");
        }
    }

    #[test]
    fn masking_is_idempotent_and_keeps_other_text() {
        let t = "我是退役军人，电话13812345678，在济南历下区。";
        let once = mask_pii(t);
        assert_eq!(mask_pii(&once), once);
        assert!(once.starts_with("我是退役军人，电话") && once.ends_with("，在济南历下区。"));
    }
}
