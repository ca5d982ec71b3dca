//! The Llama-family decoder shared by qwen2, qwen3 and llama GGUFs.
//!
//! The three differ in small, data-visible ways, so one implementation reads them from the file
//! instead of three near-copies: qwen2 has q/k/v biases, qwen3 RMS-normalises each head's q and
//! k, llama rotates interleaved pairs (GGUF permutes its q/k for that) while the Qwens rotate
//! halves. Layout follows candle's `quantized_qwen2`: private layers, `forward(tokens, offset)`,
//! and a KV cache held by each attention layer.

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
    kv: Option<(Tensor, Tensor)>,
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
    /// Tokens held in the KV cache.
    cached: usize,
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
            let attn = Attention {
                wq: linear(&mut ld, &p("attn_q.weight"), bq)?,
                wk: linear(&mut ld, &p("attn_k.weight"), bk)?,
                wv: linear(&mut ld, &p("attn_v.weight"), bv)?,
                wo: linear(&mut ld, &p("attn_output.weight"), None)?,
                q_norm: ld.optional_dense(&p("attn_q_norm.weight"))?,
                k_norm: ld.optional_dense(&p("attn_k_norm.weight"))?,
                kv: None,
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
            PrefillWeights::Int8 => PrefillWeights::Int8,
            _ => PrefillWeights::Quantized,
        };
        let output = if ld.has("output.weight") {
            Linear::new(ld.qtensor("output.weight")?, None, requant, output_mode)?
        } else {
            Linear::new(ld.qtensor("token_embd.weight")?, None, requant, output_mode)?
        };
        let (cos, sin) = rope_tables(cfg.head_dim, cfg.rope_base, cfg.context)?;
        Ok(Self {
            cfg,
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            cached: 0,
        })
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

    /// Forgets all cached keys and values.
    pub fn clear_kv_cache(&mut self) {
        for b in &mut self.blocks {
            b.attn.kv = None;
        }
        self.cached = 0;
    }

    /// Runs `tokens` placed at positions `offset..`, extending the KV cache, and returns the
    /// logits of the last position. `offset` must not exceed the cached length; a smaller
    /// offset drops the cached entries past it (so a shared prompt prefix can be kept).
    pub fn forward(&mut self, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        let len = tokens.len();
        if len == 0 {
            return Err(Error::InvalidParams("forward called with no tokens".into()));
        }
        if offset > self.cached {
            return Err(Error::InvalidParams(format!(
                "offset {offset} beyond {} cached tokens",
                self.cached
            )));
        }
        if offset + len > self.cfg.context {
            return Err(Error::ContextOverflow {
                prompt: offset + len,
                max_new: 0,
                context: self.cfg.context,
            });
        }
        if offset < self.cached {
            for b in &mut self.blocks {
                if let Some((k, v)) = b.attn.kv.take() {
                    b.attn.kv = if offset == 0 {
                        None
                    } else {
                        Some((k.narrow(2, 0, offset)?, v.narrow(2, 0, offset)?))
                    };
                }
            }
        }
        let dev = Device::Cpu;
        let ids = Tensor::new(tokens, &dev)?.unsqueeze(0)?;
        let mut h = self.embed.embedding(&ids)?;
        let mask = if len > 1 {
            Some(causal_mask(len, offset, &dev)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, offset, len)?;
        let sin = self.sin.narrow(0, offset, len)?;
        for b in &mut self.blocks {
            let x = candle_nn::ops::rms_norm(&h, &b.attn_norm, self.cfg.eps as f32)?;
            let a = b.attn.forward(&x, &self.cfg, &cos, &sin, mask.as_ref())?;
            h = (h + a)?;
            let x = candle_nn::ops::rms_norm(&h, &b.ffn_norm, self.cfg.eps as f32)?;
            let [g, u] = super::linear::forward_shared([&b.gate, &b.up], &x)?;
            let m = b.down.forward(&(candle_nn::ops::silu(&g)? * u)?)?;
            h = (h + m)?;
        }
        self.cached = offset + len;
        // Only the last position's logits are needed: projecting one row instead of the whole
        // prompt saves a [len x vocab] matmul (vocab is 151,936 for Qwen).
        let last = h.i((.., len - 1.., ..))?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.cfg.eps as f32)?;
        let logits = self.output.forward(&last)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
    }
}

impl Attention {
    fn forward(
        &mut self,
        x: &Tensor,
        cfg: &DecoderConfig,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, len, _) = x.dims3()?;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, n, cfg.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let [q, k, v] = super::linear::forward_shared([&self.wq, &self.wk, &self.wv], x)?;
        let mut q = heads(q, cfg.n_head)?;
        let mut k = heads(k, cfg.n_kv_head)?;
        let v = heads(v, cfg.n_kv_head)?;
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
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        let rep = cfg.n_head / cfg.n_kv_head;
        let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, len, cfg.n_head * cfg.head_dim))?;
        self.wo.forward(&y)
    }
}

/// Additive causal mask of shape `[len, offset + len]`: 0 where visible, -inf above the diagonal.
fn causal_mask(len: usize, offset: usize, dev: &Device) -> Result<Tensor> {
    let kv = offset + len;
    let m: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..kv).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(m, (len, kv), dev)?)
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
