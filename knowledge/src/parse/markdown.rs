//! Markdown with optional YAML front matter (`---` … `---`): headings, paragraphs and pipe
//! tables. Front matter keys: title, doc_number, issuer, date, region, topics, source, truncated.

use serde::Deserialize;

use crate::document::{Block, Document, Metadata};
use crate::Result;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FrontMatter {
    title: Option<String>,
    doc_number: Option<String>,
    issuer: Option<String>,
    date: Option<serde_yaml::Value>,
    region: Option<String>,
    topics: Option<Vec<String>>,
    source: Option<String>,
    truncated: Option<bool>,
}

fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

fn date_string(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        other => serde_yaml::to_string(other)
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

/// Parses Markdown.
pub fn parse(bytes: &[u8], file: &str) -> Result<Document> {
    let text = super::utf8(bytes, file)?;
    let (front, body) = split_front_matter(text);
    let mut metadata = Metadata::default();
    if let Some(front) = front {
        let fm: FrontMatter = serde_yaml::from_str(front)
            .map_err(|e| super::fail(file, format!("front matter: {e}")))?;
        metadata = Metadata {
            title: fm.title.unwrap_or_default(),
            doc_number: fm.doc_number.unwrap_or_default(),
            issuer: fm.issuer.unwrap_or_default(),
            date: fm
                .date
                .as_ref()
                .and_then(date_string)
                .filter(|s| !s.is_empty()),
            region: fm.region.unwrap_or_default(),
            topics: fm.topics.unwrap_or_default(),
            source: fm.source.unwrap_or_default(),
            truncated: fm.truncated.unwrap_or(false),
        };
    }
    Ok(Document {
        metadata,
        blocks: blocks(body),
    })
}

fn table_cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.contains('-') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn blocks(body: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut para = String::new();
    let lines: Vec<&str> = body.lines().collect();
    let mut i = 0;
    let flush = |para: &mut String, out: &mut Vec<Block>| {
        for p in super::paragraphs(para, false) {
            out.push(Block::Paragraph(p));
        }
        para.clear();
    };
    while i < lines.len() {
        let line = lines[i].trim_end();
        let trimmed = line.trim_start();
        if let Some(h) = trimmed.strip_prefix('#') {
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let text = h.trim_start_matches('#').trim();
            if level <= 6 && (h.starts_with(' ') || h.starts_with('#') || text.is_empty()) {
                flush(&mut para, &mut out);
                if !text.is_empty() {
                    out.push(Block::Heading {
                        level: level as u8,
                        text: text.to_string(),
                    });
                }
                i += 1;
                continue;
            }
        }
        if trimmed.starts_with('|') && i + 1 < lines.len() && is_separator(lines[i + 1]) {
            flush(&mut para, &mut out);
            let header = table_cells(trimmed);
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                rows.push(table_cells(lines[i]));
                i += 1;
            }
            out.push(Block::Table { header, rows });
            continue;
        }
        para.push_str(line);
        para.push('\n');
        i += 1;
    }
    flush(&mut para, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_headings_tables() {
        let md = "---\ntitle: \"测试文件\"\ndoc_number: \"鲁人社发〔2025〕9号\"\ndate: 2025-08-01\ntopics: [高校毕业生, 农民工]\n---\n\n# 标题\n\n一、总体要求\n\n（一）第一项。内容\n继续。\n\n| 项目 | 标准 |\n|---|---|\n| 补贴 | 1000元 |\n";
        let d = parse(md.as_bytes(), "t.md").expect("parses");
        assert_eq!(d.metadata.title, "测试文件");
        assert_eq!(d.metadata.date.as_deref(), Some("2025-08-01"));
        assert_eq!(d.metadata.topics, vec!["高校毕业生", "农民工"]);
        assert_eq!(
            d.blocks[0],
            Block::Heading {
                level: 1,
                text: "标题".into()
            }
        );
        assert_eq!(d.blocks[1], Block::Paragraph("一、总体要求".into()));
        assert_eq!(
            d.blocks[2],
            Block::Paragraph("（一）第一项。内容继续。".into())
        );
        assert_eq!(
            d.blocks[3],
            Block::Table {
                header: vec!["项目".into(), "标准".into()],
                rows: vec![vec!["补贴".into(), "1000元".into()]]
            }
        );
    }

    #[test]
    fn bad_front_matter_names_the_file() {
        let e = parse(b"---\ntitle: [unclosed\n---\nbody", "bad.md")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.md") && e.contains("front matter"), "{e}");
    }
}
