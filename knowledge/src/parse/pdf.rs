//! PDF with a text layer, through `pdf-extract`. Scanned PDFs (no text) are an error that says
//! so, rather than an empty document that would silently index nothing.

use crate::document::{Block, Document, Metadata};
use crate::Result;

/// Parses a PDF.
pub fn parse(bytes: &[u8], file: &str) -> Result<Document> {
    if !bytes.starts_with(b"%PDF") {
        return Err(super::fail(file, "not a PDF file (no %PDF header)"));
    }
    // pdf-extract panics on some malformed files; `parse::parse` runs us under catch_unwind.
    let text = pdf_extract::extract_text_from_mem(bytes)
        .map_err(|e| super::fail(file, format!("cannot read PDF: {e}")))?;
    let blocks: Vec<Block> = super::paragraphs(&text, true)
        .into_iter()
        .map(Block::Paragraph)
        .collect();
    if blocks.is_empty() {
        return Err(super::fail(
            file,
            "the PDF has no text layer (scanned?): run OCR first",
        ));
    }
    Ok(Document {
        metadata: Metadata::default(),
        blocks,
    })
}
