//! The parsed document: metadata plus a flat list of blocks.
//!
//! Blocks stay flat (no tree): structure such as 第一章 or （一） is recognised later by the
//! chunker from the text, because real documents mark it inconsistently (as Markdown headings,
//! as bold paragraphs, or as plain paragraph prefixes).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What we know about a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Title.
    pub title: String,
    /// 文号, e.g. 鲁人社发〔2025〕9号 or 国务院令第700号; empty when the document has none.
    pub doc_number: String,
    /// Issuing bodies.
    pub issuer: String,
    /// Issue date, `YYYY-MM-DD`, when known.
    pub date: Option<String>,
    /// Region the document applies to (全国, 山东省, 济南市, …).
    pub region: String,
    /// Topics (公共就业服务, 高校毕业生, …).
    pub topics: Vec<String>,
    /// Where it came from.
    pub source: String,
    /// The stored text is known to be incomplete.
    pub truncated: bool,
}

/// One block of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// A heading; level 1 is the highest.
    Heading {
        /// 1..=6.
        level: u8,
        /// Heading text.
        text: String,
    },
    /// A paragraph of running text.
    Paragraph(String),
    /// A table: header cells and rows of cells.
    Table {
        /// Header cells (may be empty when the table has none).
        header: Vec<String>,
        /// Body rows.
        rows: Vec<Vec<String>>,
    },
}

impl Block {
    /// The block as plain text (tables as ` | `-separated rows, header first).
    pub fn text(&self) -> String {
        match self {
            Block::Heading { text, .. } | Block::Paragraph(text) => text.clone(),
            Block::Table { header, rows } => {
                let mut lines = Vec::with_capacity(rows.len() + 1);
                if !header.is_empty() {
                    lines.push(header.join(" | "));
                }
                lines.extend(rows.iter().map(|r| r.join(" | ")));
                lines.join("\n")
            }
        }
    }
}

/// A parsed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Metadata from front matter or found in the text.
    pub metadata: Metadata,
    /// Content in reading order.
    pub blocks: Vec<Block>,
}

impl Document {
    /// Hex sha256 of the content and metadata: unchanged documents hash the same.
    pub fn content_hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }

    /// All block texts joined by newlines: the text chunk offsets refer to.
    pub fn flat_text(&self) -> String {
        self.blocks
            .iter()
            .map(Block::text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
