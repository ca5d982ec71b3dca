//! Parsers: bytes in, [`Document`] out, one module per format.
//!
//! Every parser takes the bytes and a file name (for error messages), never a path, so tests and
//! uploads use the same code as `leye ingest`. Bad input is a typed [`Error::Parse`] naming the
//! file; a parser never panics. Third-party decoders (PDF above all) are run under
//! `catch_unwind` as a last line of defence, so a panic inside them becomes an error too.

pub mod docx;
pub mod html;
pub mod markdown;
pub mod pdf;
pub mod text;

use std::path::Path;

use crate::document::Document;
use crate::{Error, Result};

/// The formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown, optionally with YAML front matter.
    Markdown,
    /// Plain UTF-8 (or GB18030-free ASCII-compatible) text.
    Text,
    /// HTML.
    Html,
    /// Word 2007+ (`.docx`).
    Docx,
    /// PDF with a text layer.
    Pdf,
}

impl Format {
    /// The format of a file, by extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" => Self::Markdown,
            "txt" | "text" => Self::Text,
            "html" | "htm" => Self::Html,
            "docx" => Self::Docx,
            "pdf" => Self::Pdf,
            _ => return None,
        })
    }
}

/// Parses `bytes` of the given format; `file` names the source in errors and is the default
/// title source of last resort.
pub fn parse(bytes: &[u8], format: Format, file: &str) -> Result<Document> {
    let run = || match format {
        Format::Markdown => markdown::parse(bytes, file),
        Format::Text => text::parse(bytes, file),
        Format::Html => html::parse(bytes, file),
        Format::Docx => docx::parse(bytes, file),
        Format::Pdf => pdf::parse(bytes, file),
    };
    let mut doc = std::panic::catch_unwind(run).map_err(|_| {
        fail(
            file,
            "the decoder failed on this file (corrupt or unusual content)",
        )
    })??;
    crate::metadata::infer(&mut doc.metadata, &doc.blocks);
    if doc.metadata.title.is_empty() {
        doc.metadata.title = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(doc)
}

/// Parses a file on disk, choosing the parser by extension.
pub fn parse_file(path: &Path) -> Result<Document> {
    let file = path.display().to_string();
    let format =
        Format::from_path(path).ok_or_else(|| Error::Unsupported { file: file.clone() })?;
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        file: file.clone(),
        source,
    })?;
    parse(&bytes, format, &file)
}

pub(crate) fn fail(file: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// Decodes text, refusing binary data: UTF-8 (a BOM is dropped); invalid sequences are an error
/// rather than silently replaced, since a mis-decoded policy text would be cited wrongly.
pub(crate) fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let s = std::str::from_utf8(bytes).map_err(|e| {
        fail(
            file,
            format!("not UTF-8 text (invalid byte at {})", e.valid_up_to()),
        )
    })?;
    if s.contains('\0') {
        return Err(fail(file, "contains NUL bytes: binary data, not text"));
    }
    Ok(s)
}

/// Lines up to this many characters are titles, signatures or dates, never hard-wrapped prose.
const SHORT_LINE: usize = 24;

/// Splits text into paragraphs at blank lines. A single line break also ends a paragraph when
/// the next line starts a structural item (第三条, （二）) or, with `short_lines_break` (plain
/// text, PDF, HTML; not Markdown, whose soft breaks join), when the line before is short (a
/// title, an issuer, a date); otherwise hard-wrapped prose is re-joined.
pub(crate) fn paragraphs(text: &str, short_lines_break: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut last_len = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if !cur.is_empty()
            && ((short_lines_break && last_len <= SHORT_LINE)
                || crate::chunking::marker(line).is_some())
        {
            out.push(std::mem::take(&mut cur));
        }
        last_len = line.chars().count();
        if !cur.is_empty() {
            // Hard-wrapped Chinese joins without a space; Latin text needs one.
            let ascii_edge = cur
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric())
                && line
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric());
            if ascii_edge {
                cur.push(' ');
            }
        }
        cur.push_str(line);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
