//! The verbatim check: every quoted span of a card must occur in its document.
//!
//! **Normalisation** (applied to the document's text and to the span alike): Unicode NFKC
//! (full-width letters, digits and brackets become their ordinary forms, so （一） and (一)
//! compare equal), then every whitespace character is removed (line breaks and indentation
//! from Markdown, full-width spaces) and so are the Markdown marks `*`, `#`, `` ` `` and `>`.
//! Nothing else changes: a changed word, number or punctuation mark fails.
//!
//! Documents are matched by 文号, or by title when a document has none — never by file name,
//! so an operator's own copy of a law activates the cards that quote it.

use unicode_normalization::UnicodeNormalization;

use super::Card;
use crate::document::Document;

/// Text as the check compares it.
pub fn normalise(s: &str) -> String {
    s.nfkc()
        .filter(|c| !c.is_whitespace() && !matches!(c, '*' | '#' | '`' | '>'))
        .collect()
}

/// A document as the check sees it.
#[derive(Debug, Clone)]
pub struct DocText {
    /// Title.
    pub title: String,
    /// 文号 (may be empty).
    pub doc_number: String,
    /// The normalised text.
    pub text: String,
}

impl DocText {
    /// From a parsed document.
    pub fn from_document(d: &Document) -> Self {
        Self {
            title: d.metadata.title.trim().to_string(),
            doc_number: d.metadata.doc_number.trim().to_string(),
            text: normalise(&format!("{}\n{}", d.metadata.title, d.flat_text())),
        }
    }

    /// Whether this document is the one a card names by `key` (文号, else title).
    pub fn is(&self, key: &str) -> bool {
        let key = key.trim();
        !key.is_empty()
            && ((!self.doc_number.is_empty() && normalise(&self.doc_number) == normalise(key))
                || normalise(&self.title) == normalise(key))
    }
}

/// The documents of these files and folders (folders walked, hidden entries skipped, files of
/// a document format parsed); files that cannot be read are reported, not fatal.
pub fn load_documents(paths: &[std::path::PathBuf]) -> (Vec<DocText>, Vec<String>) {
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if p.is_dir() {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for e in entries {
                if !e
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    walk(&e, out);
                }
            }
        } else if crate::parse::Format::from_path(p).is_some() {
            out.push(p.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files);
    }
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match crate::parse::parse_file(&f) {
            Ok(d) => docs.push(DocText::from_document(&d)),
            Err(e) => errors.push(format!("{}: {e}", f.display())),
        }
    }
    (docs, errors)
}

/// A span that does not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The card.
    pub card: String,
    /// The field (`who[0] (年满16周岁)`, `what`, `materials[1]`…).
    pub field: String,
    /// The document (文号 or title).
    pub doc: String,
    /// What is wrong.
    pub message: String,
    /// The document is absent (the card is inactive), rather than a span not matching it.
    pub missing_document: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "card {} field {} document {}: {}",
            self.card, self.field, self.doc, self.message
        )
    }
}

/// Every problem of one card against the documents: a span not found verbatim, or its
/// document absent.
pub fn check_card(card: &Card, docs: &[DocText]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (field, quote, key) in card.spans() {
        let problem = |message: String| Problem {
            card: card.id.clone(),
            field: field.clone(),
            doc: key.to_string(),
            message,
            missing_document: false,
        };
        let q = normalise(quote);
        if q.chars().count() < 4 {
            out.push(problem(format!(
                "the quote {quote:?} is too short to tie the field to its source"
            )));
            continue;
        }
        match docs.iter().find(|d| d.is(key)) {
            None => out.push(Problem {
                missing_document: true,
                ..problem("the document is not in the knowledge base".into())
            }),
            Some(d) if !d.text.contains(&q) => out.push(problem(format!(
                "the quote is not in the document verbatim: {quote:?}"
            ))),
            Some(_) => {}
        }
    }
    out
}

/// Problems of all cards.
pub fn check_all(cards: &[Card], docs: &[DocText]) -> Vec<Problem> {
    cards.iter().flat_map(|c| check_card(c, docs)).collect()
}

/// Whether a card is active: its source document is present and every span checks out.
pub fn is_active(card: &Card, docs: &[DocText]) -> bool {
    check_card(card, docs).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_ignores_layout_but_not_words() {
        assert_eq!(normalise("（一）失业\n  保险 **金**"), "(一)失业保险金");
        assert_eq!(normalise("第 四十五 条\u{3000}"), "第四十五条");
        assert_ne!(normalise("满一年"), normalise("满二年"));
        assert_ne!(normalise("一年；"), normalise("一年。"));
    }
}
