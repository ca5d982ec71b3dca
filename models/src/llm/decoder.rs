//! The Llama-family decoder shared by qwen2, qwen3 and llama GGUFs.
//!
//! The three differ in small, data-visible ways, so one implementation reads them from the file
//! instead of three near-copies: qwen2 has q/k/v biases, qwen3 RMS-normalises each head's q and
//! k, llama rotates interleaved pairs (GGUF permutes its q/k for that) while the Qwens rotate
//! halves. Layout follows candle's `quantized_qwen2`, with the keys and values kept outside the
//! weights in a [`KvCache`] per sequence: prefill runs a chunk of one sequence's prompt
//! ([`Decoder::forward`]), decoding runs one new token of each of several sequences in one pass
//! ([`Decoder::decode_batch`]: the weights are read once for all of them; attention runs per
//! sequence over its own cache).

use std::io::{Read, Seek};
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, IndexOp, Tensor};
use serde::Serialize;

use super::linear::{Linear, PrefillWeights};
use super::LoadOptions;
use crate::{Error, Result};

/// The shape of a decoder, read from GGUF metadata.
#[derive(Debug, Clone, Serialize)]
pub struct DecoderConfig {
    /// `general.architecture`.
    pub arch: String,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Model width.
    pub hidden: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// Rotate halves (`true`, NeoX/Qwen) or interleaved pairs (`false`, GGUF llama).
    pub rope_neox: bool,
    /// Positions the rotary table covers (the usable context).
    pub context: usize,
}

struct Attention {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    /// The same norms as plain vectors, for the decoding path's per-sequence attention.
    q_norm_v: Option<Vec<f32>>,
    k_norm_v: Option<Vec<f32>>,
}

/// The keys and values of one sequence: per layer, position after position, each position
/// `n_kv_head × head_dim` floats (keys already rotated). It grows with the sequence in steps
/// of [`KV_STEP`] positions (no copy of the whole cache per token, at most one step unused)
/// and holds only what was computed, so memory follows the conversations actually running
/// rather than `max_context` per slot.
///
/// f32, not f16: tried on the default model, f16 keys and values moved the prompt logits by
/// up to 0.40 from candle's f32 reference (max logit 16.3; 0 in f32), f16 values alone by
/// 0.47, and with our int8 kernels one test prompt's by 0.69 where int8 activations alone
/// move it by 0.37 (`tests/tests/reference_impl.rs`) — Qwen2's keys carry large biases and
/// its first positions large values. The memory it would save (~200 MB for 8 conversations of
/// 2,000 tokens) is not needed to stay within 1.5 GB.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Floats per position in one layer.
    width: usize,
    len: usize,
}

/// Positions a cache grows by when full. Doubling would leave up to half of a long
/// conversation's cache unused (a 2,000-token prompt followed by one decoded token would hold
/// room for 4,000); a fixed step costs one copy per step, which is small next to the work of
/// computing that many positions.
pub const KV_STEP: usize = 256;

/// Appends `add` to a cache buffer, growing it by whole steps of `step` floats.
fn append(buf: &mut Vec<f32>, add: &[f32], step: usize) {
    let need = buf.len() + add.len();
    if need > buf.capacity() {
        let target = need.div_ceil(step.max(1)) * step.max(1);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(add);
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `n` positions (at most those held), also cutting back what a failed
    /// pass appended to some layers past the held length.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len);
        for b in self.k.iter_mut().chain(self.v.iter_mut()) {
            b.truncate(n * self.width);
        }
        self.len = n;
    }

    /// Bytes held (allocated), for memory reports.
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(self.v.iter())
            .map(|b| b.capacity() * 4)
            .sum()
    }

    /// A copy of the first `n` positions, sized to them (a shared prefix handed to another
    /// sequence, which then grows its own copy).
    pub fn prefix(&self, n: usize) -> KvCache {
        let n = n.min(self.len);
        let cut = |b: &Vec<f32>| b[..n * self.width].to_vec();
        KvCache {
            k: self.k.iter().map(cut).collect(),
            v: self.v.iter().map(cut).collect(),
            width: self.width,
            len: n,
        }
    }
}

struct Block {
    attn_norm: Tensor,
    attn: Attention,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A loaded decoder with its KV cache.
pub struct Decoder {
    cfg: DecoderConfig,
    embed: std::sync::Arc<QTensor>,
    blocks: Vec<Block>,
    norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    /// The rotary tables as plain vectors (`context × head_dim/2`), for decoding.
    cos_v: Vec<f32>,
    sin_v: Vec<f32>,
}

struct Loader<'a, R> {
    ct: &'a gguf_file::Content,
    reader: &'a mut R,
    path: &'a Path,
    dev: Device,
}

impl<R: Read + Seek> Loader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.has(name) {
            return Err(Error::invalid(self.path, format!("missing tensor {name}")));
        }
        Ok(self.ct.tensor(self.reader, name, &self.dev)?)
    }
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.qtensor(name)?.dequantize(&self.dev)?)
    }
    fn optional_dense(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.has(name) {
            self.dense(name).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn md_usize(ct: &gguf_file::Content, path: &Path, key: &str) -> Result<usize> {
    let v = ct
        .metadata
        .get(key)
        .ok_or_else(|| Error::invalid(path, format!("metadata lacks {key}")))?;
    v.to_u32()
        .map(|x| x as usize)
        .or_else(|_| v.to_u64().map(|x| x as usize))
        .or_else(|_| v.to_i32().map(|x| x.max(0) as usize))
        .map_err(|_| Error::invalid(path, format!("{key} is not an integer")))
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| {
        v.to_f32()
            .ok()
            .or_else(|| v.to_f64().ok().map(|x| x as f32))
    })
}

impl DecoderConfig {
    /// Reads the configuration of `arch` from the GGUF metadata.
    pub fn from_gguf(
        ct: &gguf_file::Content,
        path: &Path,
        arch: &str,
        max_context: usize,
    ) -> Result<Self> {
        let k = |s: &str| format!("{arch}.{s}");
        let hidden = md_usize(ct, path, &k("embedding_length"))?;
        let n_head = md_usize(ct, path, &k("attention.head_count"))?;
        let n_kv_head = md_usize(ct, path, &k("attention.head_count_kv")).unwrap_or(n_head);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 {
            return Err(Error::invalid(
                path,
                format!("bad head counts {n_head}/{n_kv_head}"),
            ));
        }
        let head_dim = md_usize(ct, path, &k("attention.key_length")).unwrap_or(hidden / n_head);
        let context = md_usize(ct, path, &k("context_length"))
            .unwrap_or(4096)
            .min(max_context);
        Ok(Self {
            arch: arch.to_string(),
            n_layer: md_usize(ct, path, &k("block_count"))?,
            n_head,
            n_kv_head,
            head_dim,
            hidden,
            eps: md_f32(ct, &k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6) as f64,
            rope_base: md_f32(ct, &k("rope.freq_base")).unwrap_or(10_000.0),
            rope_neox: arch != "llama",
            context,
        })
    }
}

impl Decoder {
    /// Loads the weights of a qwen2/qwen3/llama GGUF.
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        cfg: DecoderConfig,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let mut ld = Loader {
            ct,
            reader,
            path,
            dev: Device::Cpu,
        };
        let requant = opts.requantize.map(|to| (GgmlDType::Q5_0, to));
        let prefill = opts.prefill;
        let linear = |ld: &mut Loader<R>, name: &str, bias: Option<Tensor>| -> Result<Linear> {
            Linear::new(ld.qtensor(name)?, bias, requant, prefill)
        };
        let embed = std::sync::Arc::new(ld.qtensor("token_embd.weight")?);
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let bq = ld.optional_dense(&p("attn_q.bias"))?;
            let bk = ld.optional_dense(&p("attn_k.bias"))?;
            let bv = ld.optional_dense(&p("attn_v.bias"))?;
            let q_norm = ld.optional_dense(&p("attn_q_norm.weight"))?;
            let k_norm = ld.optional_dense(&p("attn_k_norm.weight"))?;
            let vector = |t: &Option<Tensor>| -> Result<Option<Vec<f32>>> {
                match t {
                    Some(t) => Ok(Some(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)),
                    None => Ok(None),
                }
            };
            let attn = Attention {
                wq: linear(&mut ld, &p("attn_q.weight"), bq)?,
                wk: linear(&mut ld, &p("attn_k.weight"), bk)?,
                wv: linear(&mut ld, &p("attn_v.weight"), bv)?,
                wo: linear(&mut ld, &p("attn_output.weight"), None)?,
                q_norm_v: vector(&q_norm)?,
                k_norm_v: vector(&k_norm)?,
                q_norm,
                k_norm,
            };
            blocks.push(Block {
                attn_norm: ld.dense(&p("attn_norm.weight"))?,
                attn,
                ffn_norm: ld.dense(&p("ffn_norm.weight"))?,
                gate: linear(&mut ld, &p("ffn_gate.weight"), None)?,
                up: linear(&mut ld, &p("ffn_up.weight"), None)?,
                down: linear(&mut ld, &p("ffn_down.weight"), None)?,
            });
        }
        let norm = ld.dense("output_norm.weight")?;
        // Tied embeddings (Qwen2.5 0.5B): the output projection reuses the embedding table.
        // It only ever sees one row (the last position): with our kernels it runs on them
        // too (one packed format), otherwise on candle's quantized kernel.
        let output_mode = match prefill {
            PrefillWeights::Int8 | PrefillWeights::Int8Compact => prefill,
            _ => PrefillWeights::Quantized,
        };
        let output = if ld.has("output.weight") {
            Linear::new(ld.qtensor("output.weight")?, None, requant, output_mode)?
        } else {
            Linear::new(ld.qtensor("token_embd.weight")?, None, requant, output_mode)?
        };
        let (cos, sin) = rope_tables(cfg.head_dim, cfg.rope_base, cfg.context)?;
        let cos_v = cos.flatten_all()?.to_vec1()?;
        let sin_v = sin.flatten_all()?.to_vec1()?;
        Ok(Self {
            cfg,
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            cos_v,
            sin_v,
        })
    }

    /// An empty cache for this model's shape.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.cfg.n_layer],
            v: vec![Vec::new(); self.cfg.n_layer],
            width: self.cfg.n_kv_head * self.cfg.head_dim,
            len: 0,
        }
    }

    fn check_cache(&self, cache: &KvCache) -> Result<()> {
        if cache.k.len() != self.cfg.n_layer
            || cache.width != self.cfg.n_kv_head * self.cfg.head_dim
        {
            return Err(Error::InvalidParams(
                "a KV cache of another model's shape".into(),
            ));
        }
        Ok(())
    }

    /// The configuration read from the file.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Weight types of the linear layers, for reports.
    pub fn linear_dtypes(&self) -> Vec<GgmlDType> {
        self.blocks
            .iter()
            .flat_map(|b| {
                [
                    &b.attn.wq, &b.attn.wk, &b.attn.wv, &b.attn.wo, &b.gate, &b.up, &b.down,
                ]
            })
            .map(Linear::dtype)
            .collect()
    }

    /// Runs `tokens` placed at positions `offset..` of the sequence whose keys and values
    /// `cache` holds, extending it, and returns the logits of the last position. `offset` must
    /// not exceed the cached length; a smaller offset drops the cached entries past it (so a
    /// shared prompt prefix can be kept).
    pub fn forward(&self, cache: &mut KvCache, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        self.check_cache(cache)?;
        let len = tokens.len();
        if len == 0 {
            return Err(Error::InvalidParams("forward called with no tokens".into()));
        }
        if offset > cache.len {
            return Err(Error::InvalidParams(format!(
                "offset {offset} beyond {} cached tokens",
                cache.len
            )));
        }
        if offset + len > self.cfg.context {
            return Err(Error::ContextOverflow {
                prompt: offset + len,
                max_new: 0,
                context: self.cfg.context,
            });
        }
        cache.truncate(offset);
        let dev = Device::Cpu;
        let ids = Tensor::new(tokens, &dev)?.unsqueeze(0)?;
        let mut h = self.embed.embedding(&ids)?;
        let cos = self.cos.narrow(0, offset, len)?;
        let sin = self.sin.narrow(0, offset, len)?;
        // A failure midway leaves some layers extended: the cache is then cut back to what
        // every layer holds.
        let run = |h: &mut Tensor, cache: &mut KvCache| -> Result<()> {
            for (l, b) in self.blocks.iter().enumerate() {
                let x = candle_nn::ops::rms_norm(h, &b.attn_norm, self.cfg.eps as f32)?;
                let kv = (&mut cache.k[l], &mut cache.v[l]);
                let a = b.attn.forward(&x, &self.cfg, &cos, &sin, kv, offset)?;
                *h = (&*h + a)?;
                *h = (&*h + b.ffn(h, self.cfg.eps)?)?;
            }
            Ok(())
        };
        if let Err(e) = run(&mut h, cache) {
            cache.truncate(offset);
            return Err(e);
        }
        cache.len = offset + len;
        // Only the last position's logits are needed: projecting one row instead of the whole
        // prompt saves a [len x vocab] matmul (vocab is 151,936 for Qwen).
        let last = h.i((.., len - 1.., ..))?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.cfg.eps as f32)?;
        let logits = self.output.forward(&last)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
    }

    /// Runs one new token of each of several sequences, `tokens[i]` at the next position of
    /// `caches[i]`, in one pass: the linear layers multiply all the rows at once (the weights
    /// are read once — decoding is bound by reading them), attention runs per sequence over
    /// its own cache. Returns each sequence's logits. The result for a sequence is the same
    /// as decoding it alone: every row goes through the same per-row arithmetic.
    pub fn decode_batch(
        &self,
        caches: &mut [&mut KvCache],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let n = tokens.len();
        if n == 0 || caches.len() != n {
            return Err(Error::InvalidParams(format!(
                "decode_batch: {n} tokens for {} caches",
                caches.len()
            )));
        }
        for c in caches.iter() {
            self.check_cache(c)?;
            if c.len + 1 > self.cfg.context {
                return Err(Error::ContextOverflow {
                    prompt: c.len + 1,
                    max_new: 0,
                    context: self.cfg.context,
                });
            }
        }
        let cfg = &self.cfg;
        let dev = Device::Cpu;
        let ids = Tensor::new(tokens, &dev)?.unsqueeze(0)?;
        let mut h = self.embed.embedding(&ids)?;
        let positions: Vec<usize> = caches.iter().map(|c| c.len).collect();
        let run = |h: &mut Tensor, caches: &mut [&mut KvCache]| -> Result<()> {
            for (l, b) in self.blocks.iter().enumerate() {
                let x = candle_nn::ops::rms_norm(h, &b.attn_norm, cfg.eps as f32)?;
                let [q, k, v] =
                    super::linear::forward_shared([&b.attn.wq, &b.attn.wk, &b.attn.wv], &x)?;
                let q = q.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let k = k.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let v = v.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let y = self.attend_decode(l, &b.attn, caches, &positions, q, k, &v)?;
                let y = Tensor::from_vec(y, (1, n, cfg.n_head * cfg.head_dim), &dev)?;
                *h = (&*h + b.attn.wo.forward(&y)?)?;
                *h = (&*h + b.ffn(h, cfg.eps)?)?;
            }
            Ok(())
        };
        if let Err(e) = run(&mut h, caches) {
            for (c, &p) in caches.iter_mut().zip(&positions) {
                c.truncate(p);
            }
            return Err(e);
        }
        for (c, &p) in caches.iter_mut().zip(&positions) {
            c.len = p + 1;
        }
        let x = candle_nn::ops::rms_norm(&h, &self.norm, cfg.eps as f32)?;
        let logits = self
            .output
            .forward(&x)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let vocab = logits.len() / n;
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Decoding attention of layer `l` for every sequence of the batch: normalises and rotates
    /// each sequence's new query and key, appends key and value to its cache, and attends
    /// over the cache. Returns `n × n_head·head_dim` outputs.
    #[allow(clippy::too_many_arguments)]
    fn attend_decode(
        &self,
        l: usize,
        attn: &Attention,
        caches: &mut [&mut KvCache],
        positions: &[usize],
        mut q: Vec<f32>,
        mut k: Vec<f32>,
        v: &[f32],
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let hd = cfg.head_dim;
        let (qw, kw) = (cfg.n_head * hd, cfg.n_kv_head * hd);
        let half = hd / 2;
        let n = caches.len();
        if q.len() != n * qw || k.len() != n * kw || v.len() != n * kw {
            return Err(Error::InvalidParams(
                "decode_batch: projection widths differ from the configuration".into(),
            ));
        }
        for (i, &pos) in positions.iter().enumerate() {
            let (cos, sin) = (
                &self.cos_v[pos * half..(pos + 1) * half],
                &self.sin_v[pos * half..(pos + 1) * half],
            );
            for head in q[i * qw..(i + 1) * qw].chunks_exact_mut(hd) {
                if let Some(w) = &attn.q_norm_v {
                    rms_norm_in_place(head, w, cfg.eps as f32);
                }
                rotate(head, cos, sin, cfg.rope_neox);
            }
            for head in k[i * kw..(i + 1) * kw].chunks_exact_mut(hd) {
                if let Some(w) = &attn.k_norm_v {
                    rms_norm_in_place(head, w, cfg.eps as f32);
                }
                rotate(head, cos, sin, cfg.rope_neox);
            }
            append(&mut caches[i].k[l], &k[i * kw..(i + 1) * kw], KV_STEP * kw);
            append(&mut caches[i].v[l], &v[i * kw..(i + 1) * kw], KV_STEP * kw);
        }
        let caches: &[&mut KvCache] = caches;
        Ok(attend_groups(cfg, &q, |i| {
            (&caches[i].k[l][..], &caches[i].v[l][..], positions[i] + 1)
        }))
    }
}

/// Prefill attention of `queries` (prompt rows at positions `past..`, each `n_head × head_dim`
/// values) over a layer's cache, which already holds their keys and values: row `i` sees
/// positions `0..=past + i`. Returns the rows' `n_head × head_dim` outputs.
fn attend_rows(
    cfg: &DecoderConfig,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    past: usize,
) -> Vec<f32> {
    attend_groups(cfg, queries, |i| (keys, values, past + i + 1))
}

/// Grouped attention of query rows (each `n_head × head_dim` values; a decoding batch's
/// sequences or a prompt's rows), row `i` over `source(i)` = (keys, values, positions seen) of
/// a layer's cache. One unit of work per row and key/value head: its query heads (adjacent in
/// the output) attend together, so each cached key and value is read once for all of them.
fn attend_groups<'a>(
    cfg: &DecoderConfig,
    queries: &[f32],
    source: impl Fn(usize) -> (&'a [f32], &'a [f32], usize) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let hd = cfg.head_dim;
    let (qw, kw) = (cfg.n_head * hd, cfg.n_kv_head * hd);
    let rep = cfg.n_head / cfg.n_kv_head;
    let scale = 1.0 / (hd as f32).sqrt();
    let rows = queries.len() / qw;
    let mut y = vec![0f32; queries.len()];
    let work = |(idx, out): (usize, &mut [f32])| {
        let (i, kvh) = (idx / cfg.n_kv_head, idx % cfg.n_kv_head);
        let (keys, values, seen) = source(i);
        let q0 = i * qw + kvh * rep * hd;
        let group = Group {
            queries: &queries[q0..q0 + rep * hd],
            keys,
            values,
            at: kvh * hd,
            head_dim: hd,
            width: kw,
            seen,
            scale,
        };
        attend(&group, out);
    };
    // Spread over the pool only when there is enough to share: short contexts finish faster
    // than waking another thread (rayon's work stealing evens out rows seeing more positions).
    let total: usize = (0..rows).map(|i| source(i).2).sum::<usize>() * qw;
    if total >= 1 << 18 {
        y.par_chunks_mut(rep * hd).enumerate().for_each(work);
    } else {
        y.chunks_mut(rep * hd).enumerate().for_each(work);
    }
    y
}

/// One sequence's key/value head in a decoding step: its query heads (`queries`, one after
/// another) against the first `seen` positions of a layer's cache, each position `width`
/// values of which this head's are `at..at + head_dim`.
struct Group<'a> {
    queries: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    at: usize,
    head_dim: usize,
    width: usize,
    seen: usize,
    scale: f32,
}

/// Softmax attention of a [`Group`] into `out` (one head after another). With AVX2 and FMA
/// the same code is compiled for them (chosen at run time, like the matrix kernels): the
/// crate is built for baseline x86-64 (4-wide SSE2, no FMA), and with that build and a libm
/// `exp` per score attention took ~40 % of a decoding step at 1,536 positions (`perf`); this
/// way one stream decodes there ~1.2× faster (`BATCH=1 CONTEXT=1536 --example llm_bench`).
fn attend(g: &Group, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::qlinear::Kernel::Avx2.supported() {
        // SAFETY: AVX2 and FMA are present (checked).
        unsafe { attend_avx2(g, out) };
        return;
    }
    attend_portable(g, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(g: &Group, out: &mut [f32]) {
    attend_portable(g, out)
}

#[inline(always)]
fn attend_portable(g: &Group, out: &mut [f32]) {
    let (hd, seen) = (g.head_dim, g.seen);
    let heads = g.queries.len() / hd;
    // scores[h·seen + p]: query head h against position p.
    let mut scores = vec![0f32; heads * seen];
    for p in 0..seen {
        let key = &g.keys[p * g.width + g.at..p * g.width + g.at + hd];
        for (h, query) in g.queries.chunks_exact(hd).enumerate() {
            scores[h * seen + p] = dot(query, key) * g.scale;
        }
    }
    let mut totals = vec![0f32; heads];
    for (row, total) in scores.chunks_exact_mut(seen).zip(&mut totals) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in row.iter_mut() {
            *s = exp(*s - max);
        }
        *total = row.iter().sum();
    }
    for p in 0..seen {
        let value = &g.values[p * g.width + g.at..p * g.width + g.at + hd];
        for (h, o) in out.chunks_exact_mut(hd).enumerate() {
            let w = scores[h * seen + p] / totals[h];
            for (o, v) in o.iter_mut().zip(value) {
                *o += w * v;
            }
        }
    }
}

/// `e^x` for `x ≤ 0` without a call into libm, so a loop over it vectorizes (Cephes' `expf`:
/// `x = n·ln 2 + r`, a degree-5 polynomial for `e^r` on `|r| ≤ ln 2 / 2`, the exponent set in
/// the bits; within 2 ulp of `f32::exp`). Below −87 (e^−87 ≈ 1.6e−38, nothing next to the
/// row's maximum of 1) it returns `e^−87`.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest by the magic number 1.5·2^23 (no libm call, unlike `round`).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

impl Block {
    /// The feed-forward half: `down(silu(gate(x)) · up(x))` on the normalised `h`.
    fn ffn(&self, h: &Tensor, eps: f64) -> Result<Tensor> {
        let x = candle_nn::ops::rms_norm(h, &self.ffn_norm, eps as f32)?;
        super::linear::swiglu(&self.gate, &self.up, &self.down, &x)
    }
}

/// `Σ a·b` in eight independent lanes, which the compiler turns into SIMD (a plain iterator
/// sum of floats must keep its order and stays scalar).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `x · w / rms(x)` over one head.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps).sqrt();
    for (v, w) in x.iter_mut().zip(w) {
        *v *= r * w;
    }
}

/// Rotary embedding of one head at one position: halves (NeoX, Qwen) or interleaved pairs
/// (GGUF llama), as candle's `rope` and `rope_i` do.
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
    let half = x.len() / 2;
    for j in 0..half {
        let (a, b) = if neox {
            (j, j + half)
        } else {
            (2 * j, 2 * j + 1)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos[j] - x1 * sin[j];
        x[b] = x1 * cos[j] + x0 * sin[j];
    }
}

impl Attention {
    /// Prefill attention over `x` (`[1, len, hidden]`) at positions `past..`: the new keys
    /// and values are appended to the layer's cache, queries attend over all of it.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        cfg: &DecoderConfig,
        cos: &Tensor,
        sin: &Tensor,
        (cache_k, cache_v): (&mut Vec<f32>, &mut Vec<f32>),
        past: usize,
    ) -> Result<Tensor> {
        let (b, len, _) = x.dims3()?;
        // The cache is one sequence's.
        if b != 1 {
            return Err(Error::InvalidParams(format!(
                "prefill of {b} sequences at once (one is supported)"
            )));
        }
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, n, cfg.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let [q, k, v] = super::linear::forward_shared([&self.wq, &self.wk, &self.wv], x)?;
        let mut q = heads(q, cfg.n_head)?;
        let mut k = heads(k, cfg.n_kv_head)?;
        if let Some(w) = &self.q_norm {
            q = candle_nn::ops::rms_norm(&q, w, cfg.eps as f32)?;
        }
        if let Some(w) = &self.k_norm {
            k = candle_nn::ops::rms_norm(&k, w, cfg.eps as f32)?;
        }
        let rope = if cfg.rope_neox {
            candle_nn::rotary_emb::rope
        } else {
            candle_nn::rotary_emb::rope_i
        };
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        // The cache holds positions one after another, `[len, n_kv_head, head_dim]`.
        let k_rows = k
            .transpose(1, 2)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let v_rows = v.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let step = KV_STEP * cfg.n_kv_head * cfg.head_dim;
        append(cache_k, &k_rows, step);
        append(cache_v, &v_rows, step);
        // Each prompt row's query heads attend over the cache up to their own position, by
        // the decoding path's grouped attention: a key/value head's query heads together, so
        // the cache is read once for them, no key past the row's position is scored (candle's
        // matmuls computed the whole square, then masked half of it), and the softmax's
        // exponentials vectorize (libm's `expf` was 4 % of a 512-token prefill).
        let queries = q
            .transpose(1, 2)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let y = attend_rows(cfg, &queries, cache_k, cache_v, past);
        let y = Tensor::from_vec(y, (b, len, cfg.n_head * cfg.head_dim), &Device::Cpu)?;
        self.wo.forward(&y)
    }
}

fn rope_tables(head_dim: usize, base: f32, context: usize) -> Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv = Tensor::new(inv.as_slice(), &dev)?;
    let pos = Tensor::arange(0u32, context as u32, &dev)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let freqs = pos.matmul(&inv.reshape((1, head_dim / 2))?)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_the_softmax_range() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.001_3;
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        // Far below the row's maximum the weight is negligible, never NaN or negative.
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn grouped_attention_matches_attention_head_by_head() {
        // Two key/value heads of 16 values, 3 query heads each, 37 positions; every query
        // head against its own key/value head with libm's exp.
        let (kv_heads, rep, hd, seen) = (2usize, 3usize, 16usize, 37usize);
        let width = kv_heads * hd;
        let wave =
            |n: usize, f: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * f).sin() * 3.0).collect() };
        let (keys, values) = (wave(seen * width, 0.37), wave(seen * width, 0.11));
        let queries = wave(kv_heads * rep * hd, 0.73);
        let scale = 0.25;
        for kvh in 0..kv_heads {
            let q = &queries[kvh * rep * hd..(kvh + 1) * rep * hd];
            let mut got = vec![0f32; rep * hd];
            let g = Group {
                queries: q,
                keys: &keys,
                values: &values,
                at: kvh * hd,
                head_dim: hd,
                width,
                seen,
                scale,
            };
            attend(&g, &mut got);
            let mut portable = vec![0f32; rep * hd];
            attend_portable(&g, &mut portable);
            for h in 0..rep {
                let want = one_head(
                    &q[h * hd..(h + 1) * hd],
                    &keys,
                    &values,
                    width,
                    kvh * hd,
                    seen,
                    scale,
                );
                for (d, want) in want.iter().enumerate() {
                    for out in [&got, &portable] {
                        let v = out[h * hd + d];
                        assert!(
                            (v - want).abs() < 1e-4,
                            "head {kvh}/{h} [{d}]: {v} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// One query head against the first `seen` positions of its key/value head (values
    /// `at..at + q.len()` of each `width`), with libm's exp: the textbook softmax attention.
    fn one_head(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        width: usize,
        at: usize,
        seen: usize,
        scale: f32,
    ) -> Vec<f32> {
        let hd = q.len();
        let s: Vec<f32> = (0..seen)
            .map(|p| {
                let k = &keys[p * width + at..p * width + at + hd];
                q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale
            })
            .collect();
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = s.iter().map(|v| (v - max).exp()).collect();
        let total: f32 = e.iter().sum();
        (0..hd)
            .map(|d| {
                (0..seen)
                    .map(|p| e[p] / total * values[p * width + at + d])
                    .sum()
            })
            .collect()
    }

    #[test]
    fn prefill_rows_attend_over_their_own_past_only() {
        // 4 prompt rows after 5 cached positions; 2 key/value heads of 16 values, 3 query
        // heads each. Row i sees positions 0..=5 + i: the keys after it (large, so seeing one
        // would move the output) must not count.
        let cfg = DecoderConfig {
            arch: "test".into(),
            n_layer: 1,
            n_head: 6,
            n_kv_head: 2,
            head_dim: 16,
            hidden: 96,
            eps: 1e-6,
            rope_base: 10_000.0,
            rope_neox: true,
            context: 64,
        };
        let (past, len, hd) = (5usize, 4usize, 16usize);
        let (qw, width) = (cfg.n_head * hd, cfg.n_kv_head * hd);
        let wave = |n: usize, f: f32, a: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * f).sin() * a).collect()
        };
        let (keys, values) = (
            wave((past + len) * width, 0.37, 3.0),
            wave((past + len) * width, 0.11, 5.0),
        );
        let queries = wave(len * qw, 0.73, 1.0);
        let scale = 1.0 / (hd as f32).sqrt();
        let got = attend_rows(&cfg, &queries, &keys, &values, past);
        assert_eq!(got.len(), len * qw);
        for i in 0..len {
            for h in 0..cfg.n_head {
                let at = (h / 3) * hd;
                let q = &queries[i * qw + h * hd..i * qw + (h + 1) * hd];
                let want = one_head(q, &keys, &values, width, at, past + i + 1, scale);
                let seen_all = one_head(q, &keys, &values, width, at, past + len, scale);
                for d in 0..hd {
                    let v = got[i * qw + h * hd + d];
                    assert!(
                        (v - want[d]).abs() < 1e-4,
                        "row {i} head {h} [{d}]: {v} vs {}",
                        want[d]
                    );
                    if i + 1 < len && d == 0 {
                        // The check above can tell: the later positions change the answer.
                        let moved = (0..hd)
                            .map(|d| (want[d] - seen_all[d]).abs())
                            .fold(0f32, f32::max);
                        assert!(moved > 1e-2, "row {i} head {h}: later keys change nothing");
                    }
                }
            }
        }
    }
}
