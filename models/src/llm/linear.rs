//! A linear layer that keeps quantized weights for decoding and can switch to dense weights for
//! prefill.
//!
//! Decoding one token reads every weight once: it is bound by memory bandwidth, so compact
//! quantized weights win. Prefill multiplies a whole prompt (hundreds of rows) by each weight:
//! it is bound by compute, where candle's dense f32 GEMM beats its per-row quantized dot
//! products several times over. [`PrefillWeights`] picks how prefill gets its dense weights.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use crate::Result;

/// How prefill (many rows at once) multiplies by the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillWeights {
    /// Use the quantized kernels for prefill too (least memory, slowest prefill).
    Quantized,
    /// Dequantize each weight to f32 when it is needed by a prefill pass, then drop it: fast
    /// prefill with no extra resident memory, at the cost of dequantizing per prompt.
    #[default]
    DequantizeOnTheFly,
    /// Keep an f32 copy of every weight next to the quantized one (about 4 bytes per
    /// parameter more memory): fastest prefill.
    Cached,
}

impl PrefillWeights {
    /// Rows from which dense weights pay off. Measured on the default model (2 cores, see the
    /// README): dense prefill runs ~199 tok/s against ~83 tok/s quantized, and dequantizing
    /// every weight costs ~0.65 s, so on-the-fly dequantization only wins from about 90 rows;
    /// a cached copy wins almost at once.
    pub fn dense_min_rows(self) -> usize {
        match self {
            Self::Quantized => usize::MAX,
            Self::DequantizeOnTheFly => 96,
            Self::Cached => 16,
        }
    }
}

/// A bias-optional linear layer `y = x Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    q: QMatMul,
    qt: std::sync::Arc<QTensor>,
    dense: Option<Tensor>,
    bias: Option<Tensor>,
    prefill: PrefillWeights,
}

impl Linear {
    /// Wraps a weight (shape `[out, in]`), re-quantizing it first when its type is listed in
    /// `requant` (e.g. Q5_0, whose candle kernel is scalar, to Q8_0, which has SIMD kernels).
    pub fn new(
        w: QTensor,
        bias: Option<Tensor>,
        requant: Option<(GgmlDType, GgmlDType)>,
        prefill: PrefillWeights,
    ) -> Result<Self> {
        let w = match requant {
            Some((from, to)) if w.dtype() == from => {
                let dense = w.dequantize(&candle_core::Device::Cpu)?;
                QTensor::quantize(&dense, to)?
            }
            _ => w,
        };
        let qt = std::sync::Arc::new(w);
        let is_float = matches!(
            qt.dtype(),
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
        );
        let dense = if prefill == PrefillWeights::Cached && !is_float {
            Some(qt.dequantize(&candle_core::Device::Cpu)?)
        } else {
            None
        };
        Ok(Self {
            q: QMatMul::from_arc(qt.clone())?,
            qt,
            dense,
            bias,
            prefill,
        })
    }

    /// The stored weight type.
    pub fn dtype(&self) -> GgmlDType {
        self.qt.dtype()
    }

    /// Applies the layer to `x` of shape `[batch, rows, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dims().iter().rev().nth(1).copied().unwrap_or(1);
        let y = if rows >= self.prefill.dense_min_rows() && !matches!(self.q, QMatMul::Tensor(_)) {
            match (self.prefill, &self.dense) {
                (PrefillWeights::Cached, Some(w)) => dense_matmul(x, w)?,
                (PrefillWeights::DequantizeOnTheFly, _) => {
                    dense_matmul(x, &self.qt.dequantize(&candle_core::Device::Cpu)?)?
                }
                _ => self.q.forward(x)?,
            }
        } else {
            self.q.forward(x)?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

fn dense_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let w = match *x.dims() {
        [b1, b2, _, _] => w.broadcast_left((b1, b2))?.t()?,
        [b, _, _] => w.broadcast_left(b)?.t()?,
        _ => w.t()?,
    };
    Ok(x.matmul(&w)?)
}
