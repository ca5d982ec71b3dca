//! DOCX: paragraphs (headings from `Heading N` / `Title` styles) and tables from
//! `word/document.xml`.

use std::io::Read;

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::document::{Block, Document, Metadata};
use crate::Result;

/// Largest `document.xml` we inflate: a zip bomb must not exhaust memory.
const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;

/// Parses a .docx file.
pub fn parse(bytes: &[u8], file: &str) -> Result<Document> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| super::fail(file, format!("not a DOCX (zip) file: {e}")))?;
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| super::fail(file, "not a DOCX file: word/document.xml is missing"))?;
    let mut xml = String::new();
    entry
        .take(MAX_XML_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|e| super::fail(file, format!("reading word/document.xml: {e}")))?;
    if xml.len() as u64 > MAX_XML_BYTES {
        return Err(super::fail(file, "word/document.xml is larger than 64 MiB"));
    }
    Ok(Document {
        metadata: Metadata::default(),
        blocks: blocks(&xml, file)?,
    })
}

fn heading_level(style: &str) -> Option<u8> {
    let s = style.to_ascii_lowercase();
    if s == "title" {
        return Some(1);
    }
    let n = s
        .strip_prefix("heading")
        .or_else(|| s.strip_prefix("标题"))?;
    n.trim().parse::<u8>().ok().filter(|l| (1..=6).contains(l))
}

fn blocks(xml: &str, file: &str) -> Result<Vec<Block>> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut para = String::new();
    let mut style: Option<u8> = None;
    let mut in_text = false;
    // Table state: depth (nested tables are flattened into the outer one), rows, cells.
    let mut table_depth = 0usize;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut cell = String::new();
    loop {
        let ev = reader.read_event().map_err(|e| {
            super::fail(
                file,
                format!(
                    "word/document.xml at byte {}: {e}",
                    reader.buffer_position()
                ),
            )
        })?;
        match ev {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"w:pStyle" => {
                for a in e.attributes().flatten() {
                    if a.key.as_ref() == b"w:val" {
                        style = heading_level(&String::from_utf8_lossy(&a.value));
                    }
                }
            }
            Event::Start(e) => match e.name().as_ref() {
                b"w:p" => {
                    para.clear();
                    style = None;
                }
                b"w:t" => in_text = true,
                b"w:tbl" => {
                    table_depth += 1;
                    if table_depth == 1 {
                        rows.clear();
                    }
                }
                b"w:tr" if table_depth == 1 => rows.push(Vec::new()),
                b"w:tc" if table_depth == 1 => cell.clear(),
                _ => {}
            },
            Event::Empty(e) => match e.name().as_ref() {
                b"w:tab" => para.push('\t'),
                b"w:br" | b"w:cr" => para.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => {
                let s = t
                    .unescape()
                    .map_err(|e| super::fail(file, format!("bad text in document.xml: {e}")))?;
                para.push_str(&s);
            }
            Event::End(e) => match e.name().as_ref() {
                b"w:t" => in_text = false,
                b"w:p" => {
                    let text = para.trim().to_string();
                    if table_depth > 0 {
                        if !cell.is_empty() && !text.is_empty() {
                            cell.push('\n');
                        }
                        cell.push_str(&text);
                    } else if !text.is_empty() {
                        out.push(match style {
                            Some(level) => Block::Heading { level, text },
                            None => Block::Paragraph(text),
                        });
                    }
                    para.clear();
                }
                b"w:tc" if table_depth == 1 => {
                    if let Some(r) = rows.last_mut() {
                        r.push(std::mem::take(&mut cell));
                    }
                }
                b"w:tbl" => {
                    table_depth = table_depth.saturating_sub(1);
                    if table_depth == 0 {
                        let mut body: Vec<Vec<String>> = std::mem::take(&mut rows)
                            .into_iter()
                            .filter(|r| !r.is_empty())
                            .collect();
                        if !body.is_empty() {
                            let header = body.remove(0);
                            out.push(Block::Table { header, rows: body });
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}
