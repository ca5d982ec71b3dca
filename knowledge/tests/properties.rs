//! Property tests: no input makes a parser panic; the chunker loses no text, cuts on char
//! boundaries and keeps chunks within limits.

use knowledge::chunking::{chunk, ChunkConfig};
use knowledge::document::{Block, Document, Metadata};
use knowledge::parse::{parse, Format};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for f in [Format::Markdown, Format::Text, Format::Html, Format::Docx, Format::Pdf] {
            let _ = parse(&bytes, f, "random.bin");
        }
        // Same bytes behind plausible magic numbers, to get past the first checks.
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend_from_slice(&bytes);
        let _ = parse(&pdf, Format::Pdf, "random.pdf");
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&bytes);
        let _ = parse(&zip, Format::Docx, "random.docx");
    }

    #[test]
    fn parsers_never_panic_on_random_text(text in "\\PC{0,400}") {
        for f in [Format::Markdown, Format::Text, Format::Html] {
            let _ = parse(text.as_bytes(), f, "random.txt");
        }
        let md = format!("---\n{text}\n---\n{text}");
        let _ = parse(md.as_bytes(), Format::Markdown, "random.md");
    }

    #[test]
    fn chunks_lose_nothing_and_stay_within_limits(
        blocks in proptest::collection::vec(block(), 1..30),
        max in 40usize..600,
    ) {
        let cfg = ChunkConfig { min_chars: max / 2, max_chars: max, overlap_chars: max / 8 };
        let doc = Document { metadata: Metadata { title: "t".into(), ..Default::default() }, blocks };
        let flat = doc.flat_text();
        let chunks = chunk(&doc, &cfg);
        let mut covered = vec![false; flat.len()];
        for c in &chunks {
            let (s, e) = c.span;
            prop_assert!(s < e && e <= flat.len());
            prop_assert!(flat.is_char_boundary(s) && flat.is_char_boundary(e), "span {:?} not on char boundaries", c.span);
            prop_assert!(c.text.chars().count() <= cfg.max_chars, "chunk of {} chars > {}", c.text.chars().count(), cfg.max_chars);
            for b in covered.iter_mut().take(e).skip(s) {
                *b = true;
            }
        }
        for (i, ch) in flat.char_indices() {
            if !ch.is_whitespace() {
                prop_assert!(covered[i], "char {:?} at {} lost", ch, i);
            }
        }
        // Chunks are in document order.
        prop_assert!(chunks.windows(2).all(|w| w[0].span.0 <= w[1].span.0));
    }
}

fn sentence() -> impl Strategy<Value = String> {
    prop_oneof![
        "[一-龥]{1,40}[。；！？，]",
        "[a-z ]{1,30}[.;]",
        "[0-9]{1,6}元",
        Just("第十二条 ".to_string()),
        Just("（三）".to_string()),
        Just("二、".to_string()),
        Just("1. ".to_string()),
        "[一-龥]{80,200}",
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        4 => proptest::collection::vec(sentence(), 1..12).prop_map(|s| Block::Paragraph(s.concat())),
        1 => "第[一二三]章 [一-龥]{2,8}".prop_map(|t| Block::Heading { level: 2, text: t }),
        1 => (proptest::collection::vec("[一-龥]{1,6}", 1..4), proptest::collection::vec(proptest::collection::vec("[一-龥0-9]{1,30}", 1..4), 0..30))
            .prop_map(|(header, rows)| Block::Table { header, rows }),
    ]
}
