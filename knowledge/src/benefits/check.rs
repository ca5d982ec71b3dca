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

    /// A document as the knowledge base holds it: its chunks' texts in chunk order. Long
    /// paragraphs are cut with a few sentences repeated at the start of the next chunk
    /// ([`crate::chunking`]); that overlap is found (the longest end of the text so far that
    /// starts the next chunk, after normalisation) and kept once, so a span crossing a cut
    /// checks out as it does against the file. Headings live in the chunks' section paths,
    /// not in their texts: a quote running from a heading into its text does not match here.
    pub fn from_chunks<'a>(
        title: &str,
        doc_number: &str,
        chunks: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut text = normalise(title);
        for chunk in chunks {
            let c = normalise(chunk);
            let k = overlap(&text, &c);
            text.push_str(&c[k..]);
        }
        Self {
            title: title.trim().to_string(),
            doc_number: doc_number.trim().to_string(),
            text,
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

/// Length in bytes of the longest end of `acc` that `next` starts with (at most 600
/// characters: the chunker's overlap is whole sentences of at most a quarter chunk).
fn overlap(acc: &str, next: &str) -> usize {
    const MAX_CHARS: usize = 600;
    let mut best = 0;
    for (n, (i, ch)) in next.char_indices().enumerate() {
        if n >= MAX_CHARS {
            break;
        }
        let k = i + ch.len_utf8();
        // The chunker repeats whole sentences: an overlap ends at a sentence end, which
        // keeps a chance match of a character or two from eating text.
        if matches!(ch, '。' | '!' | '?' | ';') && acc.ends_with(&next[..k]) {
            best = k;
        }
    }
    best
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
        // Several documents may carry the key (an operator's second copy, a list that cites
        // the 文号): the span must be in one of them.
        let mut named = docs.iter().filter(|d| d.is(key)).peekable();
        if named.peek().is_none() {
            out.push(Problem {
                missing_document: true,
                ..problem("the document is not in the knowledge base".into())
            });
        } else if !named.any(|d| d.text.contains(&q)) {
            out.push(problem(format!(
                "the quote is not in the document verbatim: {quote:?}"
            )));
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

    #[test]
    fn a_span_may_be_in_any_document_that_carries_the_key() {
        let card: Card = toml::from_str(
            r#"
id = "x"
name = "测试"
kind = "service"
issuer = "某厅"
what = { text = "服务", quote = "提供免费职业介绍服务" }
[source]
title = "某办法"
doc_number = "鲁X〔2025〕1号"
"#,
        )
        .expect("card");
        let doc = |title: &str, text: &str| DocText {
            title: title.into(),
            doc_number: "鲁X〔2025〕1号".into(),
            text: normalise(text),
        };
        // A list that cites the same 文号 comes first; the document itself second.
        let docs = vec![
            doc("来源清单", "鲁X〔2025〕1号 某办法"),
            doc("某办法", "各地提供免费职业介绍服务。"),
        ];
        assert!(check_card(&card, &docs).is_empty());
        assert!(!check_card(&card, &docs[..1]).is_empty());
    }

    #[test]
    fn chunks_rebuild_the_text_with_their_overlap_kept_once() {
        use crate::chunking::{chunk, ChunkConfig};
        use crate::document::{Block, Document};
        let sentences: Vec<String> = (1..=40)
            .map(|i| format!("第{i}项服务面向高校毕业生和就业困难人员，按规定给予补贴{i}元。"))
            .collect();
        let mut d = Document {
            metadata: Default::default(),
            blocks: vec![Block::Paragraph(sentences.concat())],
        };
        d.metadata.title = "某某办法".into();
        d.metadata.doc_number = "鲁人社发〔2025〕1号".into();
        let cfg = ChunkConfig::default();
        let chunks = chunk(&d, &cfg);
        assert!(chunks.len() > 2, "the paragraph must be cut with overlaps");
        assert!(
            chunks.windows(2).any(|w| w[1].span.0 < w[0].span.1),
            "the test needs overlapping chunks"
        );
        let rebuilt = DocText::from_chunks(
            &d.metadata.title,
            &d.metadata.doc_number,
            chunks.iter().map(|c| c.text.as_str()),
        );
        assert_eq!(rebuilt.text, DocText::from_document(&d).text);
        // A span across a cut is found; the repeated sentences are not doubled.
        let across = normalise(&format!("{}{}", sentences[9], sentences[10]));
        assert!(rebuilt.text.contains(&across));
        assert_eq!(rebuilt.text.matches(&normalise(&sentences[12])).count(), 1);
    }
}
