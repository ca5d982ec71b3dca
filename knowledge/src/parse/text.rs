//! Plain text: paragraphs at blank lines (and at structural markers such as 第三条).

use crate::document::{Block, Document, Metadata};
use crate::Result;

/// Parses UTF-8 text.
pub fn parse(bytes: &[u8], file: &str) -> Result<Document> {
    let text = super::utf8(bytes, file)?;
    Ok(Document {
        metadata: Metadata::default(),
        blocks: super::paragraphs(text, true)
            .into_iter()
            .map(Block::Paragraph)
            .collect(),
    })
}
