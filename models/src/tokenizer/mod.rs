//! Tokenizers built from a GGUF's own metadata (`tokenizer.ggml.*`).
//!
//! Our default LLM ships without `tokenizer.json`, so the vocabulary, merges and token types
//! come from the GGUF. Two families are supported: byte-level BPE (`tokenizer.ggml.model =
//! "gpt2"`: Qwen, Llama 3), built with the `tokenizers` crate in [`bpe`], and SentencePiece
//! with byte fallback (`"llama"`: Llama 2, Gemma) in [`spm`]. [`unigram`] holds the XLM-R
//! unigram tokenizer of the e5 embedder, also on `tokenizers`.
//!
//! [`spm`] stays our own: those GGUFs carry piece scores but no merge list, and llama.cpp merges
//! by score, which no `tokenizers` model does; it is not on the default path.
//!
//! Special tokens (control and user-defined types) are matched literally only where the caller
//! allows it: the chat template may emit `<|im_start|>`, a citizen's message may not, so text
//! typed by a user can never forge a turn boundary. The `tokenizers` instance itself runs with
//! `encode_special_tokens` on, so whatever reaches it is text.

pub mod bpe;
pub mod spm;
pub mod unigram;

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::AddedToken;

use crate::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

enum Model {
    Bpe(Box<tokenizers::Tokenizer>),
    Spm(spm::Spm),
}

/// A text tokenizer for one LLM.
pub struct Tokenizer {
    model: Model,
    /// Token strings as stored in the GGUF.
    tokens: Vec<String>,
    /// The bytes each token stands for when decoded.
    token_bytes: Vec<Vec<u8>>,
    /// Control and user-defined tokens, longest first (so the longest literal wins).
    specials: Vec<(String, u32)>,
    special_ids: Vec<bool>,
    by_text: HashMap<String, u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.tokens.len())
            .field("specials", &self.specials.len())
            .finish()
    }
}

fn md<'a>(m: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    m.get(key)
        .ok_or_else(|| Error::Tokenizer(format!("GGUF metadata lacks {key}")))
}

fn md_u32(m: &HashMap<String, Value>, key: &str) -> Option<u32> {
    m.get(key).and_then(|v| {
        v.to_u32()
            .ok()
            .or_else(|| v.to_i32().ok().map(|x| x as u32))
    })
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>> {
    let arr = v
        .to_vec()
        .map_err(|_| Error::Tokenizer(format!("{key} is not an array")))?;
    arr.iter()
        .map(|s| {
            s.to_string()
                .cloned()
                .map_err(|_| Error::Tokenizer(format!("{key} holds a non-string")))
        })
        .collect()
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF's metadata.
    pub fn from_gguf_metadata(m: &HashMap<String, Value>) -> Result<Self> {
        let kind = md(m, "tokenizer.ggml.model")?
            .to_string()
            .map_err(|_| Error::Tokenizer("tokenizer.ggml.model is not a string".into()))?
            .clone();
        let tokens = strings(md(m, "tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match m.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| Error::Tokenizer("token_type is not an array".into()))?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        let bos = md_u32(m, "tokenizer.ggml.bos_token_id");
        let eos = md_u32(m, "tokenizer.ggml.eos_token_id");
        let (model, token_bytes, add_bos_default) = match kind.as_str() {
            "gpt2" => {
                let merges = strings(md(m, "tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?;
                let pre = m
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok())
                    .map(String::as_str);
                let mut bpe = bpe::build(&tokens, &merges, pre.unwrap_or("default"))?;
                let added: Vec<AddedToken> = tokens
                    .iter()
                    .zip(&types)
                    .filter(|(t, _)| !t.is_empty())
                    .filter_map(|(t, &ty)| match ty {
                        TOKEN_TYPE_CONTROL => Some(AddedToken::from(t.clone(), true)),
                        TOKEN_TYPE_USER_DEFINED => Some(AddedToken::from(t.clone(), false)),
                        _ => None,
                    })
                    .collect();
                bpe.add_tokens(added)
                    .map_err(|source| Error::TokenizerLib {
                        what: "adding the special tokens",
                        source,
                    })?;
                bpe.set_encode_special_tokens(true);
                let bytes = tokens
                    .iter()
                    .zip(&types)
                    .map(|(t, &ty)| match ty {
                        TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED => t.as_bytes().to_vec(),
                        _ => bpe::token_to_bytes(t),
                    })
                    .collect();
                (Model::Bpe(Box::new(bpe)), bytes, false)
            }
            "llama" => {
                let scores: Vec<f32> = match m.get("tokenizer.ggml.scores") {
                    Some(v) => v
                        .to_vec()
                        .map_err(|_| Error::Tokenizer("scores is not an array".into()))?
                        .iter()
                        .map(|s| s.to_f32().unwrap_or(0.0))
                        .collect(),
                    None => vec![0.0; tokens.len()],
                };
                let add_space = m
                    .get("tokenizer.ggml.add_space_prefix")
                    .and_then(|v| v.to_bool().ok())
                    .unwrap_or(true);
                let spm = spm::Spm::new(&tokens, &scores, add_space);
                let bytes = tokens.iter().map(|t| spm::token_to_bytes(t)).collect();
                (Model::Spm(spm), bytes, true)
            }
            other => {
                return Err(Error::Tokenizer(format!(
                    "unsupported tokenizer model {other:?}"
                )))
            }
        };
        let add_bos = m
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(add_bos_default);
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, &ty))| {
                (ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED) && !t.is_empty()
            })
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        // A token_type array shorter or longer than the vocabulary must not index out of bounds.
        let special_ids: Vec<bool> = (0..tokens.len())
            .map(|i| types.get(i) == Some(&TOKEN_TYPE_CONTROL))
            .collect();
        let by_text = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ok(Self {
            model,
            tokens,
            token_bytes,
            specials,
            special_ids,
            by_text,
            bos,
            eos,
            add_bos,
        })
    }

    /// Encodes text. With `allow_special`, literal special tokens such as `<|im_start|>` become
    /// their single ids; without it they are tokenized as ordinary text.
    pub fn encode(&self, text: &str, allow_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if !allow_special || self.specials.is_empty() {
            self.encode_plain(text, &mut out);
            return out;
        }
        let mut rest = text;
        while !rest.is_empty() {
            // Find the earliest special token; on ties the longest (specials are sorted so).
            let mut best: Option<(usize, &str, u32)> = None;
            for (s, id) in &self.specials {
                if let Some(pos) = rest.find(s.as_str()) {
                    if best.is_none_or(|(p, _, _)| pos < p) {
                        best = Some((pos, s, *id));
                    }
                }
            }
            match best {
                Some((pos, s, id)) => {
                    self.encode_plain(&rest[..pos], &mut out);
                    out.push(id);
                    rest = &rest[pos + s.len()..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        match &self.model {
            Model::Bpe(b) => match b.encode_fast(text, false) {
                Ok(enc) => out.extend_from_slice(enc.get_ids()),
                // The byte-level pipeline has no failing step for valid UTF-8; should the regex
                // engine give up (backtrack limit), encoding byte by byte still keeps every byte.
                Err(e) => {
                    tracing::warn!(error = %e, "tokenizer failed; encoding bytes one by one");
                    out.extend(text.bytes().filter_map(|byte| self.byte_id(byte)));
                }
            },
            Model::Spm(s) => s.encode(text, out),
        }
    }

    fn byte_id(&self, byte: u8) -> Option<u32> {
        self.token_id(&bpe::byte_token(byte))
    }

    /// Decodes ids to text; control tokens are dropped when `skip_special`. Invalid UTF-8 (a
    /// sequence cut inside a character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        if let Model::Bpe(b) = &self.model {
            if let Ok(text) = b.decode(ids, skip_special) {
                return text;
            }
        }
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes one token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether `id` is a control token (turn markers, end of text).
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.get(id as usize).copied().unwrap_or(false)
    }

    /// The id of a token given its exact text in the vocabulary.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token, when the model has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, when the model has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether prompts should start with BOS (the GGUF's `add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
}
