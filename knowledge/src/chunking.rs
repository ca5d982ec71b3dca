//! Chinese structure-aware chunking.
//!
//! Documents are cut along their own hierarchy: 第X章 / 第X节 / 一、 / （一） build the section
//! path (`二、打造重点群体就业创业服务平台 > （三）打造灵活就业人员就业创业服务平台`), 第X条
//! gives the article number, and 1. / (1) items are preferred cut points. （一） inside an
//! article or after a line ending in a colon is an item of a list, not a section: items stay
//! in the chunk of the sentence that introduces them. A chunk never mixes
//! two sections; short neighbouring paragraphs (or articles) of one section are packed together
//! up to the target size, long ones are cut at sentence ends (。！？；) with a small overlap, and
//! tables stay whole, or are split by rows with the header repeated.
//!
//! Every chunk records the byte span of the document's flat text ([`Document::flat_text`]) it
//! covers, which makes "no text is lost" checkable.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::document::{Block, Document};

/// The chunking rules' version: part of the hash an index stores per document, so documents
/// indexed under older rules are chunked again on the next ingest. 2: list items stay with
/// the sentence that introduces them; 3: and join its chunk while it has room.
pub const VERSION: u32 = 3;

/// Chunk size settings, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkConfig {
    /// Keep packing paragraphs of one section until a chunk has at least this many.
    pub min_chars: usize,
    /// Never exceed this many characters.
    pub max_chars: usize,
    /// Characters repeated from the end of one piece at the start of the next when a long
    /// paragraph is cut (whole sentences only, at most this long).
    pub overlap_chars: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            min_chars: 300,
            max_chars: 500,
            overlap_chars: 60,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: usize,
    /// The text to embed and quote.
    pub text: String,
    /// Section headings from the top, e.g. `["二、打造…平台", "（三）打造…平台"]`.
    pub section_path: Vec<String>,
    /// Article label (第十二条, or 第三条至第五条 for packed articles), when the text has articles.
    pub article: Option<String>,
    /// Byte span `[start, end)` of [`Document::flat_text`] this chunk covers.
    pub span: (usize, usize),
}

impl Chunk {
    /// The section path joined with ` > `.
    pub fn section(&self) -> String {
        self.section_path.join(" > ")
    }
}

/// Structural markers, by hierarchy level (smaller is higher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// 第X章 (1), 第X节 (2), 一、 (3), （一） (4), 1. (5), (1) (6): the level.
    Section(u8),
    /// 第X条: the label.
    Article(String),
}

fn markers() -> &'static [(Regex, u8); 7] {
    static RE: OnceLock<[(Regex, u8); 7]> = OnceLock::new();
    RE.get_or_init(|| {
        let num = "[一二三四五六七八九十百零〇两]+";
        let r = |s: &str| Regex::new(s).expect("valid regex");
        [
            (r(&format!(r"^第{num}章")), 1),
            (r(&format!(r"^第{num}节")), 2),
            (r(&format!(r"^第{num}条")), 0),
            (r(&format!(r"^{num}、")), 3),
            (r(&format!(r"^[（(]{num}[）)]")), 4),
            (r(r"^\d{1,3}[.．、](?:\D|$)"), 5),
            (r(r"^[（(]\d{1,3}[）)]"), 6),
        ]
    })
}

/// The structural marker a line starts with, if any.
pub fn marker(line: &str) -> Option<Marker> {
    let line = line.trim_start();
    for (re, level) in markers() {
        if let Some(m) = re.find(line) {
            return Some(if *level == 0 {
                Marker::Article(m.as_str().to_string())
            } else {
                Marker::Section(*level)
            });
        }
    }
    None
}

/// The short title of a structural paragraph: up to its first 。 or ：, at most 40 characters.
/// A leading `(三)` is written `（三）`, so paths read the same whichever brackets the source used.
fn title_of(text: &str) -> String {
    let end = text.find(['。', '：', ':', '\n']).unwrap_or(text.len());
    let t = text[..end].trim();
    let normalised;
    let t = match t.strip_prefix('(').and_then(|r| r.split_once(')')) {
        Some((num, rest))
            if !num.is_empty()
                && num.chars().all(|c| !c.is_whitespace())
                && num.chars().count() <= 4 =>
        {
            normalised = format!("（{num}）{rest}");
            normalised.as_str()
        }
        _ => t,
    };
    if t.chars().count() > 40 {
        t.chars().take(40).collect::<String>() + "…"
    } else {
        t.to_string()
    }
}

struct Unit {
    /// An item of a list: it joins its list's chunk while that has room, whatever its size.
    item: bool,
    path: Vec<String>,
    article: Option<String>,
    start: usize,
    end: usize,
    table: Option<(Vec<String>, Vec<Vec<String>>)>,
}

/// Cuts a document into chunks.
pub fn chunk(doc: &Document, cfg: &ChunkConfig) -> Vec<Chunk> {
    let cfg = ChunkConfig {
        max_chars: cfg.max_chars.max(20),
        min_chars: cfg.min_chars.min(cfg.max_chars),
        overlap_chars: cfg.overlap_chars.min(cfg.max_chars / 4),
    };
    let flat = doc.flat_text();
    let title = doc.metadata.title.trim();
    // 1. Units: one per block, with the section path and article in force.
    let mut units: Vec<Unit> = Vec::new();
    let mut path: Vec<(u8, String)> = Vec::new();
    let mut article: Option<String> = None;
    // Whether the last non-empty paragraph introduced a list ("应当具备下列条件：") or was an
    // item of one.
    let mut in_list = false;
    let mut offset = 0;
    for block in &doc.blocks {
        let text = block.text();
        let (start, end) = (offset, offset + text.len());
        offset = end + 1;
        let trimmed = text.trim();
        let found = match block {
            Block::Table { .. } => None,
            _ => marker(trimmed),
        };
        let heading_level = match block {
            Block::Heading { level, .. } => Some(*level),
            _ => None,
        };
        // （一） inside an article, or after a line ending in a colon, is an item of a list
        // ("设立职业中介机构应当具备下列条件：（一）有明确的章程…"), not a section: as a section
        // it cut the items away from the sentence that says what they are, so a question
        // about the conditions found the lead sentence without them.
        let list_item = matches!(found, Some(Marker::Section(4))) && (article.is_some() || in_list);
        if !trimmed.is_empty() {
            in_list = list_item || trimmed.ends_with(['：', ':']);
        }
        match (&found, heading_level) {
            (Some(Marker::Section(level)), _) if *level <= 4 && !list_item => {
                path.retain(|(l, _)| l < level);
                path.push((*level, title_of(trimmed)));
                article = None;
            }
            (Some(Marker::Article(a)), _) => article = Some(a.clone()),
            (None, Some(level))
                // A plain heading: the document title is not a section; others nest by level.
                if trimmed != title && !(level == 1 && path.is_empty() && units.is_empty()) => {
                    path.retain(|(l, _)| *l < level);
                    path.push((level, title_of(trimmed)));
                    article = None;
                }
            _ => {}
        }
        if trimmed.is_empty() {
            continue;
        }
        let table = match block {
            Block::Table { header, rows } => Some((header.clone(), rows.clone())),
            _ => None,
        };
        units.push(Unit {
            item: list_item,
            path: path.iter().map(|(_, t)| t.clone()).collect(),
            article: article.clone(),
            start,
            end,
            table,
        });
    }

    // 2. Pack units of one section into chunks; cut long ones.
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut cur: Option<(usize, usize, Vec<String>, Vec<String>)> = None; // start, end, path, articles
    let flush = |cur: &mut Option<(usize, usize, Vec<String>, Vec<String>)>,
                 chunks: &mut Vec<Chunk>| {
        if let Some((s, e, p, arts)) = cur.take() {
            push_text(&flat, s, e, &p, article_label(&arts), &cfg, chunks);
        }
    };
    for u in &units {
        let len = flat[u.start..u.end].chars().count();
        if let Some((header, rows)) = &u.table {
            flush(&mut cur, &mut chunks);
            push_table(&flat, u, header, rows, len, &cfg, &mut chunks);
            continue;
        }
        let fits = match &cur {
            Some((s, _, p, _)) => {
                *p == u.path
                    && flat[*s..u.end].chars().count() <= cfg.max_chars
                    && (u.item || flat[*s..u.start].chars().count() < cfg.min_chars)
            }
            None => false,
        };
        if fits {
            if let Some((_, e, _, arts)) = cur.as_mut() {
                *e = u.end;
                if let Some(a) = &u.article {
                    if arts.last() != Some(a) {
                        arts.push(a.clone());
                    }
                }
            }
        } else {
            flush(&mut cur, &mut chunks);
            cur = Some((
                u.start,
                u.end,
                u.path.clone(),
                u.article.iter().cloned().collect(),
            ));
        }
    }
    flush(&mut cur, &mut chunks);
    for (i, c) in chunks.iter_mut().enumerate() {
        c.index = i;
    }
    chunks
}

fn article_label(arts: &[String]) -> Option<String> {
    match arts {
        [] => None,
        [one] => Some(one.clone()),
        [first, .., last] => Some(format!("{first}至{last}")),
    }
}

/// Emits `flat[start..end]` as one chunk, or cut at sentence ends when it is too long.
fn push_text(
    flat: &str,
    start: usize,
    end: usize,
    path: &[String],
    article: Option<String>,
    cfg: &ChunkConfig,
    out: &mut Vec<Chunk>,
) {
    for (s, e) in split_span(flat, start, end, cfg) {
        out.push(Chunk {
            index: 0,
            text: flat[s..e].to_string(),
            section_path: path.to_vec(),
            article: article.clone(),
            span: (s, e),
        });
    }
}

/// Cuts `[start, end)` into pieces of at most `max_chars` characters, preferring sentence ends,
/// then clause marks, then any character boundary; consecutive pieces overlap by whole
/// sentences of at most `overlap_chars`.
fn split_span(flat: &str, start: usize, end: usize, cfg: &ChunkConfig) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = start;
    loop {
        let rest = &flat[s..end];
        if rest.chars().count() <= cfg.max_chars {
            if !rest.trim().is_empty() {
                out.push((s, end));
            }
            return out;
        }
        // Byte offset (within rest) just past the max_chars-th character.
        let limit = rest
            .char_indices()
            .nth(cfg.max_chars)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let window = &rest[..limit];
        let cut_after = |set: &[char]| {
            window
                .char_indices()
                .filter(|(_, c)| set.contains(c))
                .map(|(i, c)| i + c.len_utf8())
                .next_back()
        };
        let min_keep = window
            .char_indices()
            .nth(cfg.max_chars / 3)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let cut = cut_after(&['。', '！', '？', '；', '!', '?', ';', '\n'])
            .filter(|&c| c > min_keep)
            .or_else(|| cut_after(&['，', '、', ',', '：', ':', ' ']).filter(|&c| c > min_keep))
            .unwrap_or(limit);
        out.push((s, s + cut));
        // Overlap: restart at the beginning of the last whole sentence of this piece when short.
        let piece = &rest[..cut];
        let body = piece.trim_end_matches(['。', '！', '？', '；', '!', '?', ';', '\n']);
        let last_start = body
            .rfind(['。', '！', '？', '；', '!', '?', ';', '\n'])
            .map(|i| i + body[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let overlap = &piece[last_start..];
        let next = if last_start > 0 && overlap.chars().count() <= cfg.overlap_chars {
            s + last_start
        } else {
            s + cut
        };
        s = if next > s { next } else { s + cut };
    }
}

/// Emits a table whole when it fits, else groups of rows each with the header repeated.
fn push_table(
    flat: &str,
    u: &Unit,
    header: &[String],
    rows: &[Vec<String>],
    len: usize,
    cfg: &ChunkConfig,
    out: &mut Vec<Chunk>,
) {
    let chunk = |text: String, span| Chunk {
        index: 0,
        text,
        section_path: u.path.clone(),
        article: u.article.clone(),
        span,
    };
    if len <= cfg.max_chars {
        out.push(chunk(flat[u.start..u.end].to_string(), (u.start, u.end)));
        return;
    }
    let head = header.join(" | ");
    let head_chars = head.chars().count();
    // Row texts and their spans inside the flattened table text.
    let mut pos = u.start + if header.is_empty() { 0 } else { head.len() + 1 };
    let mut row_spans = Vec::with_capacity(rows.len());
    for r in rows {
        let t = r.join(" | ");
        row_spans.push((pos, pos + t.len()));
        pos += t.len() + 1;
    }
    let too_wide = row_spans
        .iter()
        .any(|(s, e)| flat[*s..*e].chars().count() + head_chars + 1 > cfg.max_chars);
    if too_wide || head_chars * 2 > cfg.max_chars {
        // Rows too long to carry the header: cut as text instead.
        push_text(flat, u.start, u.end, &u.path, u.article.clone(), cfg, out);
        return;
    }
    let mut i = 0;
    let mut first = true;
    while i < row_spans.len() {
        let group_start = row_spans[i].0;
        let mut j = i;
        while j + 1 < row_spans.len()
            && flat[group_start..row_spans[j + 1].1].chars().count() + head_chars < cfg.max_chars
        {
            j += 1;
        }
        let end = row_spans[j].1;
        let rows_text = &flat[group_start..end];
        let text = if head.is_empty() {
            rows_text.to_string()
        } else {
            format!("{head}\n{rows_text}")
        };
        // The first group's span includes the header line itself, so the header is covered.
        let span_start = if first { u.start } else { group_start };
        out.push(chunk(text, (span_start, end)));
        first = false;
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Metadata;

    fn doc(blocks: Vec<Block>) -> Document {
        Document {
            metadata: Metadata {
                title: "测试".into(),
                ..Default::default()
            },
            blocks,
        }
    }

    #[test]
    fn markers_by_level() {
        assert_eq!(marker("第一章 总则"), Some(Marker::Section(1)));
        assert_eq!(
            marker("第二十三条 用人单位"),
            Some(Marker::Article("第二十三条".into()))
        );
        assert_eq!(marker("二、打造平台"), Some(Marker::Section(3)));
        assert_eq!(marker("（三）打造灵活就业"), Some(Marker::Section(4)));
        assert_eq!(marker("(三)打造"), Some(Marker::Section(4)));
        assert_eq!(marker("1. 第一项"), Some(Marker::Section(5)));
        assert_eq!(marker("（2）第二项"), Some(Marker::Section(6)));
        assert_eq!(marker("2025年起"), None);
        assert_eq!(marker("1.5倍工资"), None);
    }

    #[test]
    fn section_paths_and_articles() {
        let d = doc(vec![
            Block::Paragraph("二、打造重点群体就业创业服务平台".into()),
            Block::Paragraph(
                "（三）打造灵活就业人员就业创业服务平台。规范化推进“一县一家”公共零工市场建设。"
                    .into(),
            ),
            Block::Paragraph("（四）打造退役军人就业创业服务平台。实施专项行动。".into()),
            Block::Heading {
                level: 2,
                text: "第二章 政策支持".into(),
            },
            Block::Paragraph("第十二条 国家鼓励各类企业增加就业岗位。".into()),
            Block::Paragraph("第十三条 国家发展国内外贸易。".into()),
        ]);
        let c = chunk(&d, &ChunkConfig::default());
        let flex = c
            .iter()
            .find(|c| c.text.contains("零工市场"))
            .expect("chunk");
        assert_eq!(
            flex.section(),
            "二、打造重点群体就业创业服务平台 > （三）打造灵活就业人员就业创业服务平台"
        );
        assert!(!flex.text.contains("退役军人"), "sections are not mixed");
        let law = c
            .iter()
            .find(|c| c.text.contains("第十二条"))
            .expect("law chunk");
        assert_eq!(law.section(), "第二章 政策支持");
        assert_eq!(
            law.article.as_deref(),
            Some("第十二条至第十三条"),
            "short articles pack, labelled as a range"
        );
    }

    #[test]
    fn list_items_stay_with_the_sentence_that_introduces_them() {
        let d = doc(vec![
            Block::Paragraph("第四章 就业服务和管理".into()),
            Block::Paragraph("第四十条 设立职业中介机构应当具备下列条件：".into()),
            Block::Paragraph("（一）有明确的章程和管理制度；".into()),
            Block::Paragraph(
                "（二）有开展业务必备的固定场所、办公设施和一定数额的开办资金；".into(),
            ),
            Block::Paragraph("（三）法律、法规规定的其他条件。".into()),
            Block::Paragraph("第四十一条 职业中介机构不得有下列行为：".into()),
            Block::Paragraph("（一）提供虚假就业信息；".into()),
            // Without articles: a list after a colon is a list too.
            Block::Paragraph("五、申请材料".into()),
            Block::Paragraph("申请时需提交以下材料：".into()),
            Block::Paragraph("（一）身份证；".into()),
            Block::Paragraph("（二）毕业证书。".into()),
        ]);
        let c = chunk(&d, &ChunkConfig::default());
        let lead = c
            .iter()
            .find(|c| c.text.contains("下列条件"))
            .expect("chunk");
        assert!(lead.text.contains("章程") && lead.text.contains("固定场所"));
        assert_eq!(lead.section(), "第四章 就业服务和管理");
        assert!(c.iter().all(|c| !c.section().contains("（")), "{c:#?}");
        // Items join their list's chunk even when it already has its minimum size.
        let long = "第四十二条 职业中介机构应当建立健全服务台账，如实记录服务对象、服务过程、服务结果和收费情况等，并接受劳动行政部门的监督检查。".repeat(4)
            + "职业中介机构不得以欺诈手段招用劳动者或者向劳动者收取押金。";
        let d2 = doc(vec![
            Block::Paragraph(long),
            Block::Paragraph("第四十三条 职业中介机构应当在服务场所明示下列事项：".into()),
            Block::Paragraph("（一）营业执照；".into()),
            Block::Paragraph("（二）收费标准；".into()),
            Block::Paragraph("（三）监督电话。".into()),
        ]);
        let c2 = chunk(&d2, &ChunkConfig::default());
        let shown = c2
            .iter()
            .find(|c| c.text.contains("明示下列事项"))
            .expect("chunk");
        assert!(shown.text.contains("监督电话"), "{c2:#?}");
        let materials = c
            .iter()
            .find(|c| c.text.contains("以下材料"))
            .expect("chunk");
        assert!(materials.text.contains("毕业证书"));
        assert_eq!(materials.section(), "第四章 就业服务和管理 > 五、申请材料");
    }

    #[test]
    fn long_paragraphs_cut_at_sentence_ends_with_overlap() {
        let sentence = "高校毕业生可以按规定申请一次性求职创业补贴。";
        let long = sentence.repeat(40);
        let d = doc(vec![Block::Paragraph(long.clone())]);
        let cfg = ChunkConfig::default();
        let c = chunk(&d, &cfg);
        assert!(c.len() > 1);
        for ch in &c {
            assert!(ch.text.chars().count() <= cfg.max_chars);
            assert!(
                ch.text.ends_with('。'),
                "cut at a sentence end: {:?}",
                ch.text
            );
        }
        assert!(
            c[1].text.starts_with(sentence),
            "next piece repeats the last sentence"
        );
        assert!(c[0].text.ends_with(sentence));
    }

    #[test]
    fn tables_stay_whole_or_repeat_their_header() {
        let header = vec!["城市".to_string(), "补贴标准".to_string()];
        let small = doc(vec![Block::Table {
            header: header.clone(),
            rows: vec![vec!["济南市".into(), "1000元".into()]],
        }]);
        let c = chunk(&small, &ChunkConfig::default());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "城市 | 补贴标准\n济南市 | 1000元");
        let rows: Vec<Vec<String>> = (0..80)
            .map(|i| vec![format!("城市{i}"), format!("{}元（按规定发放）", 1000 + i)])
            .collect();
        let big = doc(vec![Block::Table { header, rows }]);
        let c = chunk(&big, &ChunkConfig::default());
        assert!(c.len() > 1);
        for ch in &c {
            assert!(
                ch.text.starts_with("城市 | 补贴标准\n"),
                "every piece carries the header"
            );
            assert!(ch.text.chars().count() <= 500);
        }
    }
}
