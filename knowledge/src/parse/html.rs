//! HTML: headings, paragraphs, list items and tables in document order; `<title>` as the title.

use scraper::{ElementRef, Html, Selector};

use crate::document::{Block, Document, Metadata};
use crate::Result;

const BLOCKS: &str = "h1, h2, h3, h4, h5, h6, p, li, table, pre, blockquote";

fn text_of(e: ElementRef) -> String {
    let raw: String = e.text().collect::<Vec<_>>().join("");
    super::paragraphs(&raw, true).join("\n")
}

/// Parses HTML (UTF-8).
pub fn parse(bytes: &[u8], file: &str) -> Result<Document> {
    let text = super::utf8(bytes, file)?;
    let html = Html::parse_document(text);
    let sel =
        |s: &str| Selector::parse(s).map_err(|e| super::fail(file, format!("selector {s}: {e:?}")));
    let mut metadata = Metadata::default();
    if let Some(t) = html.select(&sel("title")?).next() {
        metadata.title = text_of(t);
    }
    let block_sel = sel(BLOCKS)?;
    let cell_sel = sel("th, td")?;
    let row_sel = sel("tr")?;
    let mut blocks = Vec::new();
    for e in html.select(&block_sel) {
        // Skip blocks nested in another block we already take whole (a <p> in a <td> or <li>).
        let nested = e.ancestors().filter_map(ElementRef::wrap).any(|a| {
            matches!(
                a.value().name(),
                "table" | "li" | "p" | "pre" | "blockquote"
            )
        });
        if nested {
            continue;
        }
        let name = e.value().name();
        match name {
            "table" => {
                let mut rows: Vec<Vec<String>> = e
                    .select(&row_sel)
                    .map(|r| r.select(&cell_sel).map(text_of).collect())
                    .filter(|r: &Vec<String>| !r.is_empty())
                    .collect();
                let has_th = e.select(&sel("th")?).next().is_some();
                let header = if has_th && !rows.is_empty() {
                    rows.remove(0)
                } else {
                    Vec::new()
                };
                if !header.is_empty() || !rows.is_empty() {
                    blocks.push(Block::Table { header, rows });
                }
            }
            _ => {
                let t = text_of(e);
                if t.is_empty() {
                    continue;
                }
                if let Some(level) = name.strip_prefix('h').and_then(|l| l.parse::<u8>().ok()) {
                    blocks.push(Block::Heading { level, text: t });
                } else {
                    blocks.extend(t.split('\n').map(|p| Block::Paragraph(p.to_string())));
                }
            }
        }
    }
    if blocks.is_empty() {
        // Text in bare <div>s or <body>: fall back to paragraphs of all visible text.
        if let Some(body) = html.select(&sel("body")?).next() {
            blocks = super::paragraphs(&body.text().collect::<Vec<_>>().join("\n"), true)
                .into_iter()
                .map(Block::Paragraph)
                .collect();
        }
    }
    Ok(Document { metadata, blocks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_tables_in_order() {
        let html = "<html><head><title>零工市场通知</title></head><body><h1>零工市场</h1><p>一、建设要求</p><ul><li>（一）一县一家</li></ul><table><tr><th>城市</th><th>数量</th></tr><tr><td><p>济南市</p></td><td>3</td></tr></table></body></html>";
        let d = parse(html.as_bytes(), "t.html").expect("parses");
        assert_eq!(d.metadata.title, "零工市场通知");
        assert_eq!(
            d.blocks[0],
            Block::Heading {
                level: 1,
                text: "零工市场".into()
            }
        );
        assert_eq!(d.blocks[1], Block::Paragraph("一、建设要求".into()));
        assert_eq!(d.blocks[2], Block::Paragraph("（一）一县一家".into()));
        assert_eq!(
            d.blocks[3],
            Block::Table {
                header: vec!["城市".into(), "数量".into()],
                rows: vec![vec!["济南市".into(), "3".into()]]
            }
        );
    }
}
