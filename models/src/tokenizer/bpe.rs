//! Byte-level BPE (GPT-2 style), as used by Qwen and Llama 3.
//!
//! Text is first split by the model's pre-tokenizer regex, each piece's bytes are mapped to the
//! printable "byte characters" of GPT-2, and pieces are merged pairwise by merge rank. Symbols
//! are token ids throughout, so a merge is one hash lookup.

use std::collections::HashMap;

use fancy_regex::Regex;

use crate::{Error, Result};

/// Qwen2's pre-tokenizer: like Llama 3's but digits are split one by one.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer: numbers in groups of up to three digits.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The original GPT-2 pre-tokenizer.
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable =
            (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    map
}

/// The bytes a byte-level token string stands for. Characters outside the byte map (which a
/// well-formed vocabulary does not contain) are kept as their UTF-8.
pub fn token_to_bytes(token: &str) -> Vec<u8> {
    thread_local! {
        static INVERSE: HashMap<char, u8> =
            byte_chars().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
    }
    INVERSE.with(|inv| {
        let mut out = Vec::with_capacity(token.len());
        for c in token.chars() {
            match inv.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out
    })
}

/// A byte-level BPE model.
pub struct Bpe {
    pattern: Regex,
    /// Token id of each single byte.
    byte_ids: [Option<u32>; 256],
    /// (left, right) -> (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
}

impl Bpe {
    /// Builds the model from the vocabulary, the merge list (`"a b"` per line, by rank) and the
    /// GGUF's `tokenizer.ggml.pre` name.
    pub fn new(tokens: &[String], merges: &[String], pre: &str) -> Result<Self> {
        let pattern = match pre {
            "qwen2" | "deepseek-r1-qwen" => QWEN2_PATTERN,
            "llama-bpe" | "llama3" | "smaug-bpe" => LLAMA3_PATTERN,
            _ => GPT2_PATTERN,
        };
        let pattern = Regex::new(pattern)
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
        let ids: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let chars = byte_chars();
        let mut byte_ids = [None; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = ids.get(c.to_string().as_str()).copied();
        }
        let mut table = HashMap::with_capacity(merges.len());
        let mut merged = String::new();
        for (rank, line) in merges.iter().enumerate() {
            let Some((a, b)) = line.split_once(' ') else {
                return Err(Error::Tokenizer(format!(
                    "merge {rank} is not two tokens: {line:?}"
                )));
            };
            merged.clear();
            merged.push_str(a);
            merged.push_str(b);
            if let (Some(&ia), Some(&ib), Some(&im)) =
                (ids.get(a), ids.get(b), ids.get(merged.as_str()))
            {
                table.entry((ia, ib)).or_insert((rank as u32, im));
            }
        }
        Ok(Self {
            pattern,
            byte_ids,
            merges: table,
        })
    }

    /// Appends the ids of `text` (no special-token handling) to `out`.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut start = 0;
        // fancy-regex can fail only on backtrack limits; fall back to treating the rest as one
        // piece, which still encodes every byte.
        for m in self.pattern.find_iter(text) {
            match m {
                Ok(m) => {
                    if m.start() > start {
                        self.encode_piece(&text[start..m.start()], out);
                    }
                    self.encode_piece(m.as_str(), out);
                    start = m.end();
                }
                Err(_) => break,
            }
        }
        if start < text.len() {
            self.encode_piece(&text[start..], out);
        }
    }

    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<u32> = Vec::with_capacity(piece.len());
        for &b in piece.as_bytes() {
            // Every byte has a token in a well-formed byte-level vocabulary; skip otherwise.
            if let Some(id) = self.byte_ids[b as usize] {
                syms.push(id);
            }
        }
        loop {
            let mut best: Option<(usize, u32, u32)> = None; // (position, rank, merged id)
            for i in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, id)) = self.merges.get(&(syms[i], syms[i + 1])) {
                    if best.is_none_or(|(_, r, _)| rank < r) {
                        best = Some((i, rank, id));
                    }
                }
            }
            let Some((i, _, id)) = best else { break };
            syms[i] = id;
            syms.remove(i + 1);
        }
        out.extend_from_slice(&syms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips_every_byte() {
        let chars = byte_chars();
        for b in 0..=255u8 {
            assert_eq!(token_to_bytes(&chars[b as usize].to_string()), vec![b]);
        }
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
    }
}
