//! A linear layer over quantized weights.
//!
//! [`PrefillWeights`] picks the products: candle's quantized matmul for decoding with dense f32
//! weights for prefill (dequantized per pass — the default — or cached), candle's quantized
//! matmul throughout, or our int8 kernels ([`super::qlinear`]) for both prefill (many rows,
//! compute-bound: register tiles reuse each weight block across prompt rows) and decoding (one
//! row, bandwidth-bound). `leye models bench --compare` measures them side by side.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use super::qlinear::{self, Input, Kernel, Packed};
use crate::Result;

/// How prefill (many rows at once) — and, with [`PrefillWeights::Int8`], decoding too —
/// multiplies by the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillWeights {
    /// Our int8 kernels ([`super::qlinear`]) for prefill and decoding (the default): the
    /// weights are packed once at load (exactly the file's values for Q8_0, Q5_0 and Q4_K;
    /// Q4_K kept in the file's super-blocks, and Q6_K's kept beside its int8 form, for
    /// decoding to read directly) and the candle copy is dropped. Layers whose width is not a multiple of 32, float weights
    /// and non-CPU devices keep candle's path. Chosen as the default with batched decoding:
    /// on the default model (2 cores) one stream decodes ~10% slower than
    /// [`Self::DequantizeOnTheFly`], but 8 streams decode ~2× faster in total, prefill is
    /// ~1.1× faster, and a prompt prefilled in chunks costs nothing extra (the dequantizing
    /// mode pays its whole-model dequantization per chunk); `leye-eval chat` with 16 sessions
    /// at once served 11.7 turns/min against 8.4 (README, Speed).
    #[default]
    Int8,
    /// Our kernels as [`Self::Int8`], with Q5_0 weights kept in the file's own blocks (22
    /// bytes per 32 values instead of 36 unpacked): decoding reads them directly, prefill
    /// unpacks a few hundred KiB of rows at a time. On the default model ~107 MB less
    /// memory, at ~5 % slower decoding and ~7 % slower prefill on 2 cores (README, Speed) —
    /// for small machines where memory is short, or many cores, where decoding is bound by
    /// reading the weights.
    Int8Compact,
    /// Use candle's quantized kernels for prefill too (least memory, slowest prefill).
    Quantized,
    /// Dequantize each weight to f32 when it is needed by a prefill pass, then drop it: fast
    /// prefill with no extra resident memory, at the cost of dequantizing per prompt (and per
    /// chunk of a prompt prefilled between decoding passes).
    DequantizeOnTheFly,
    /// Keep an f32 copy of every weight next to the quantized one (about 4 bytes per
    /// parameter more memory): fastest candle prefill.
    Cached,
}

impl PrefillWeights {
    /// Whether the weights go through our int8 kernels.
    pub fn is_int8(self) -> bool {
        matches!(self, Self::Int8 | Self::Int8Compact)
    }

    /// Rows from which dense weights pay off. Measured on the default model (2 cores, see the
    /// README): dense prefill runs ~199 tok/s against ~83 tok/s quantized, and dequantizing
    /// every weight costs ~0.65 s, so on-the-fly dequantization only wins from about 90 rows;
    /// a cached copy wins almost at once.
    pub fn dense_min_rows(self) -> usize {
        match self {
            Self::Quantized | Self::Int8 | Self::Int8Compact => usize::MAX,
            Self::DequantizeOnTheFly => 96,
            Self::Cached => 16,
        }
    }
}

/// The weights of a layer, in the form its products use.
#[derive(Debug, Clone)]
enum Weights {
    /// candle's quantized matmul, with an optional dense copy for prefill.
    Candle {
        q: QMatMul,
        qt: std::sync::Arc<QTensor>,
        dense: Option<Tensor>,
    },
    /// Packed for our int8 kernels.
    Int8 {
        packed: std::sync::Arc<Packed>,
        dtype: GgmlDType,
    },
}

/// A bias-optional linear layer `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    w: Weights,
    bias: Option<Tensor>,
    prefill: PrefillWeights,
}

impl Linear {
    /// Wraps a weight (shape `[out, in]`). With [`PrefillWeights::Int8`] it is packed for our
    /// kernels when it can be; otherwise it is re-quantized first when its type is listed in
    /// `requant` (e.g. Q5_0, whose candle kernel is scalar, to Q8_0, which has SIMD kernels).
    pub fn new(
        w: QTensor,
        bias: Option<Tensor>,
        requant: Option<(GgmlDType, GgmlDType)>,
        prefill: PrefillWeights,
    ) -> Result<Self> {
        let is_float =
            |t: GgmlDType| matches!(t, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        if prefill.is_int8() && w.device().is_cpu() && !is_float(w.dtype()) {
            let keep_q5_0 = prefill == PrefillWeights::Int8Compact;
            if let Some(packed) = Packed::from_qtensor(&w, keep_q5_0)? {
                return Ok(Self {
                    w: Weights::Int8 {
                        packed: std::sync::Arc::new(packed),
                        dtype: w.dtype(),
                    },
                    bias,
                    prefill,
                });
            }
        }
        let w = match requant {
            Some((from, to)) if w.dtype() == from => {
                let dense = w.dequantize(&candle_core::Device::Cpu)?;
                QTensor::quantize(&dense, to)?
            }
            _ => w,
        };
        let qt = std::sync::Arc::new(w);
        let dense = if prefill == PrefillWeights::Cached && !is_float(qt.dtype()) {
            Some(qt.dequantize(&candle_core::Device::Cpu)?)
        } else {
            None
        };
        Ok(Self {
            w: Weights::Candle {
                q: QMatMul::from_arc(qt.clone())?,
                qt,
                dense,
            },
            bias,
            prefill,
        })
    }

    /// The stored weight type (the file's, for packed weights).
    pub fn dtype(&self) -> GgmlDType {
        match &self.w {
            Weights::Candle { qt, .. } => qt.dtype(),
            Weights::Int8 { dtype, .. } => *dtype,
        }
    }

    /// Whether the layer runs on our int8 kernels.
    pub fn is_packed(&self) -> bool {
        matches!(self.w, Weights::Int8 { .. })
    }

    /// Applies the layer to `x` of shape `[batch, rows, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.w {
            Weights::Int8 { packed, .. } => packed_matmul(x, packed)?,
            Weights::Candle { q, qt, dense } => {
                let rows = x.dims().iter().rev().nth(1).copied().unwrap_or(1);
                if rows >= self.prefill.dense_min_rows() && !matches!(q, QMatMul::Tensor(_)) {
                    match (self.prefill, dense) {
                        (PrefillWeights::Cached, Some(w)) => dense_matmul(x, w)?,
                        (PrefillWeights::DequantizeOnTheFly, _) => {
                            dense_matmul(x, &qt.dequantize(&candle_core::Device::Cpu)?)?
                        }
                        _ => q.forward(x)?,
                    }
                } else {
                    q.forward(x)?
                }
            }
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Several layers applied to the same input (q/k/v, gate/up): on our kernels the input is
/// quantized once for all of them.
pub fn forward_shared<const N: usize>(layers: [&Linear; N], x: &Tensor) -> Result<[Tensor; N]> {
    let packed = layers.iter().all(|l| l.is_packed());
    let input = if packed && N > 1 {
        Some(quantize_input(x)?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(N);
    for l in layers {
        out.push(match (&input, &l.w) {
            (Some(i), Weights::Int8 { packed, .. }) => {
                let y = packed_output(x, packed, i)?;
                match &l.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
            _ => l.forward(x)?,
        });
    }
    out.try_into()
        .map_err(|_| candle_core::Error::Msg("forward_shared: layer count".into()).into())
}

/// The feed-forward product `down(silu(gate(x)) · up(x))`. On our kernels (all three packed,
/// no biases) the input is quantized once for gate and up, the SwiGLU product is formed in the
/// gate's output, and that is quantized straight into the down projection's input: candle's
/// `silu`, its product and the copy out of the tensor for quantizing were three more passes
/// over `rows × ffn` floats (10 MB each for a 512-token prompt of the default model) and three
/// fresh allocations per layer. Otherwise candle's ops.
pub fn swiglu(gate: &Linear, up: &Linear, down: &Linear, x: &Tensor) -> Result<Tensor> {
    let packed = match (&gate.w, &up.w, &down.w) {
        (
            Weights::Int8 { packed: g, .. },
            Weights::Int8 { packed: u, .. },
            Weights::Int8 { packed: d, .. },
        ) if gate.bias.is_none() && up.bias.is_none() && g.rows == u.rows && d.cols == g.rows => {
            Some((g, u, d))
        }
        _ => None,
    };
    let Some((g, u, d)) = packed else {
        let [g, u] = forward_shared([gate, up], x)?;
        return down.forward(&(candle_nn::ops::silu(&g)? * u)?);
    };
    let input = quantize_input(x)?;
    if input.cols != g.cols || input.cols != u.cols {
        return Err(candle_core::Error::Msg(format!(
            "feed-forward layer of width {} applied to inputs of width {}",
            g.cols, input.cols
        ))
        .into());
    }
    let kernel = Kernel::selected();
    let mut h = qlinear::matmul(g, &input, kernel);
    let v = qlinear::matmul(u, &input, kernel);
    for (a, b) in h.iter_mut().zip(&v) {
        *a = silu(*a) * b;
    }
    let y = packed_output(x, d, &Input::quantize(&h, d.cols))?;
    Ok(match &down.bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `x·σ(x)`, with `e^−|x|` only (no overflow for either sign) from the vectorizable `exp`;
/// 0 below −87, where that `exp` stops (`x·e^x` is below 1e-35 there).
#[inline(always)]
fn silu(x: f32) -> f32 {
    let e = super::decoder::exp(-x.abs());
    let s = if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    if x < -87.0 {
        0.0
    } else {
        x * s
    }
}

fn quantize_input(x: &Tensor) -> Result<Input> {
    let cols = x.dims().last().copied().unwrap_or(0);
    if cols == 0 || !cols.is_multiple_of(qlinear::BLOCK) {
        return Err(candle_core::Error::Msg(format!(
            "inputs of width {cols} cannot go through the int8 kernels"
        ))
        .into());
    }
    let xs = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(Input::quantize(&xs, cols))
}

fn packed_output(x: &Tensor, w: &Packed, input: &Input) -> Result<Tensor> {
    if input.cols != w.cols {
        return Err(candle_core::Error::Msg(format!(
            "linear layer of width {} applied to inputs of width {}",
            w.cols, input.cols
        ))
        .into());
    }
    let mut shape = x.dims().to_vec();
    let out = qlinear::matmul(w, input, Kernel::selected());
    if let Some(last) = shape.last_mut() {
        *last = w.rows;
    }
    Ok(Tensor::from_vec(out, shape, x.device())?)
}

/// `x Wᵀ` on our kernels: the input quantized once, the output in `x`'s shape with the last
/// dimension `W`'s rows.
fn packed_matmul(x: &Tensor, w: &Packed) -> Result<Tensor> {
    packed_output(x, w, &quantize_input(x)?)
}

fn dense_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let w = match *x.dims() {
        [b1, b2, _, _] => w.broadcast_left((b1, b2))?.t()?,
        [b, _, _] => w.broadcast_left(b)?.t()?,
        _ => w.t()?,
    };
    Ok(x.matmul(&w)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn layer(rows: usize, cols: usize, dtype: GgmlDType) -> Linear {
        let w = Tensor::randn(0f32, 0.5, (rows, cols), &Device::Cpu).expect("random weights");
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        Linear::new(q, None, None, PrefillWeights::Int8).expect("layer")
    }

    #[test]
    fn silu_matches_the_textbook_formula_for_both_signs() {
        let mut x = -87.0f32;
        while x <= 100.0 {
            let want = x as f64 / (1.0 + (-x as f64).exp());
            let got = silu(x) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "silu({x}) = {got}, want {want}"
            );
            x += 0.37;
        }
        assert_eq!(silu(f32::MAX), f32::MAX);
        assert_eq!(silu(-100.0), 0.0);
        assert_eq!(silu(-f32::MAX), 0.0);
    }

    #[test]
    fn fused_feed_forward_of_mismatched_widths_is_an_error_not_a_panic() {
        let x = Tensor::randn(0f32, 1.0, (1, 2, 64), &Device::Cpu).expect("x");
        let down = layer(64, 96, GgmlDType::Q8_0);
        let gate = layer(96, 64, GgmlDType::Q8_0);
        assert!(swiglu(&gate, &layer(96, 32, GgmlDType::Q8_0), &down, &x).is_err());
        assert!(swiglu(&layer(96, 32, GgmlDType::Q8_0), &gate, &down, &x).is_err());
    }

    #[test]
    fn fused_feed_forward_matches_candles_ops_on_the_same_layers() {
        // Q5_0 gate/up (the default model's) and Q8_0 down, 13 prompt rows (the interleaved
        // prefill kernel's chunks and tails) and 1 (decoding).
        let (hidden, ffn) = (64, 96);
        let gate = layer(ffn, hidden, GgmlDType::Q5_0);
        let up = layer(ffn, hidden, GgmlDType::Q5_0);
        let down = layer(hidden, ffn, GgmlDType::Q8_0);
        assert!(gate.is_packed() && up.is_packed() && down.is_packed());
        for rows in [1, 13] {
            let x = Tensor::randn(0f32, 1.0, (1, rows, hidden), &Device::Cpu).expect("x");
            let got = swiglu(&gate, &up, &down, &x).expect("fused");
            assert_eq!(got.dims(), &[1, rows, hidden]);
            let [g, u] = forward_shared([&gate, &up], &x).expect("gate/up");
            let want = down
                .forward(&(candle_nn::ops::silu(&g).expect("silu") * u).expect("product"))
                .expect("down");
            let got = got
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("got");
            let want = want
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("want");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // The same kernels on both sides; only the activation's last bits differ, which
            // can move one value of the down projection's int8 input by a step.
            assert!(worst <= 1e-3 * scale, "rows {rows}: {worst} of {scale}");
        }
    }
}
