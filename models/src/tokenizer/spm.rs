//! SentencePiece BPE with byte fallback, as stored in GGUFs of `tokenizer.ggml.model = "llama"`
//! (Llama 2, Gemma). Follows llama.cpp's `llm_tokenizer_spm`: start from characters, repeatedly
//! merge the adjacent pair whose concatenation is the highest-scoring vocabulary piece, and emit
//! `<0xXX>` byte tokens for characters the vocabulary lacks.

use std::collections::HashMap;

/// The SentencePiece space marker.
const SPACE: char = '\u{2581}';

/// The bytes a SentencePiece token stands for: `▁` is a space, `<0xXX>` one raw byte.
pub fn token_to_bytes(token: &str) -> Vec<u8> {
    if token.len() == 6 && token.starts_with("<0x") && token.ends_with('>') {
        if let Ok(b) = u8::from_str_radix(&token[3..5], 16) {
            return vec![b];
        }
    }
    token.replace(SPACE, " ").into_bytes()
}

/// A SentencePiece model.
pub struct Spm {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_ids: [Option<u32>; 256],
    add_space_prefix: bool,
}

impl Spm {
    /// Builds the model from pieces and their scores.
    pub fn new(tokens: &[String], scores: &[f32], add_space_prefix: bool) -> Self {
        let ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = ids.get(&format!("<0x{b:02X}>")).copied();
        }
        Self {
            ids,
            scores: scores.to_vec(),
            byte_ids,
            add_space_prefix,
        }
    }

    /// Appends the ids of `text` to `out`.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut norm = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && !text.starts_with(' ') {
            norm.push(SPACE);
        }
        norm.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let mut syms: Vec<String> = norm.chars().map(String::from).collect();
        loop {
            let mut best: Option<(usize, f32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                let cand = format!("{}{}", syms[i], syms[i + 1]);
                if let Some(&id) = self.ids.get(&cand) {
                    let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
                    if best.is_none_or(|(_, s)| score > s) {
                        best = Some((i, score));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        for s in syms {
            match self.ids.get(&s) {
                Some(&id) => out.push(id),
                None => out.extend(s.bytes().filter_map(|b| self.byte_ids[b as usize])),
            }
        }
    }
}
