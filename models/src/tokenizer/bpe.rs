//! Byte-level BPE (GPT-2 style), as used by Qwen and Llama 3, built with the `tokenizers` crate
//! from a GGUF's vocabulary and merge list.
//!
//! The pipeline is the one in these models' own `tokenizer.json`: a regex split (the model's
//! pre-tokenizer, named by `tokenizer.ggml.pre`), GPT-2's byte-to-character map, then merges by
//! rank. The GGUF carries vocabulary and merges but not the pipeline, so the regexes are here.

use std::collections::HashMap;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::{Error, Result};

/// Qwen2's pre-tokenizer: like Llama 3's but digits are split one by one.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer: numbers in groups of up to three digits.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The original GPT-2 pre-tokenizer.
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Builds the tokenizer from the vocabulary, the merge list (`"a b"` per entry, by rank) and
/// the GGUF's `tokenizer.ggml.pre` name. Special tokens are added by the caller.
pub fn build(tokens: &[String], merges: &[String], pre: &str) -> Result<tokenizers::Tokenizer> {
    let (pattern, ignore_merges) = match pre {
        "qwen2" | "deepseek-r1-qwen" => (QWEN2_PATTERN, false),
        // Llama 3's own tokenizer.json sets ignore_merges: whole words in the vocabulary win.
        "llama-bpe" | "llama3" | "smaug-bpe" => (LLAMA3_PATTERN, true),
        _ => (GPT2_PATTERN, false),
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = merges
        .iter()
        .enumerate()
        .map(|(rank, line)| {
            line.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| {
                    Error::Tokenizer(format!("merge {rank} is not two tokens: {line:?}"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|source| Error::TokenizerLib {
            what: "building the BPE model",
            source,
        })?;
    let split = Split::new(
        SplitPattern::Regex(pattern.to_owned()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|source| Error::TokenizerLib {
        what: "compiling the pre-tokenizer regex",
        source,
    })?;
    let pre = Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
    ]);
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tok)
}

/// GPT-2's reversible map from bytes to printable characters. `tokenizers` keeps its copy
/// private; the streaming decoder needs each token's raw bytes (a Chinese character is often
/// split over two tokens), so the inverse is computed here.
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

/// The vocabulary string of the token for one raw byte.
pub fn byte_token(byte: u8) -> String {
    byte_chars()[byte as usize].to_string()
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

    /// A toy vocabulary where token `b` is byte `b`: merges apply by rank, a lower-ranked merge
    /// can block a later one, and the regex keeps words apart.
    #[test]
    fn merges_apply_by_rank_within_pre_tokens() {
        let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        tokens.extend(["ab", "abc", "Ġa"].map(String::from));
        let merges = ["a b", "ab c", "Ġ a"].map(String::from);
        let tok = build(&tokens, &merges, "qwen2").expect("build");
        let (ab, abc) = (256, 257);
        // "abc" → a b → ab, then ab c → abc; " ab" → Ġ a b: "a b" outranks "Ġ a", leaving Ġ ab.
        let enc = tok.encode_fast("abc ab", false).expect("encode");
        assert_eq!(enc.get_ids(), [abc, u32::from(b' '), ab]);
        // Qwen2 splits digits one by one.
        let enc = tok.encode_fast("123", false).expect("encode");
        assert_eq!(enc.get_ids(), [49, 50, 51]);
        assert_eq!(tok.decode(&[abc, 32, ab], false).expect("decode"), "abc ab");
    }
}
