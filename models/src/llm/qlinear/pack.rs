//! Weights as int8 blocks: every row is cut into blocks of 32 values `w = scale·q − min`, with
//! `q` a signed byte. The GGUF block formats map onto this exactly where their blocks have one
//! scale per 32 values (Q8_0: `q`; Q5_0: the raw 5-bit value with `min = 16·d`; Q4_K: each
//! 32-value sub-block's 4-bit value with `scale = d·sc`, `min = dmin·m`); every other format
//! (Q6_K's 16-value sub-blocks, Q4_0/Q5_1/…, f16/f32) is dequantized and re-quantized to 7
//! unsigned bits with a minimum per 32 values, a step finer than the format's own.
//!
//! Q5_0 weights may also be kept in the file's own blocks (22 bytes per 32 values against 36
//! unpacked): decoding then reads them directly, prefill unpacks a few hundred KiB of rows at
//! a time into int8 ([`Packed::unpack_rows`]).

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use crate::Result;

/// Values per block.
pub const BLOCK: usize = 32;

/// A weight matrix `[rows, cols]` in int8 blocks along `cols`.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Output features.
    pub rows: usize,
    /// Input features (a multiple of [`BLOCK`]).
    pub cols: usize,
    /// `rows × cols` values, row after row.
    pub q: Vec<i8>,
    /// Block scales, by block then row (`cols/32 × rows`), like the minimums.
    pub scale: Vec<f32>,
    /// For formats whose minimum is a fixed multiple of the scale (Q5_0: `min = 16·scale`),
    /// that multiple; `min` is then not stored.
    pub offset: f32,
    /// Block minimums, subtracted as `min · Σx`, stored by block then row (`cols/32 × rows`):
    /// one block's minimums over consecutive rows are contiguous, so the correction is a
    /// vectorised update of a row of the output.
    pub min: Option<Vec<f32>>,
    /// Whether the values are the file's own (no re-quantization).
    pub exact: bool,
    /// The file's Q5_0 blocks as they are (`f16 d`, 32 high bits, 16 bytes of nibbles; 22
    /// bytes per block, row after row) when packed with `keep_q5_0` — `q` and `scale` are
    /// then empty: 0.61 of the bytes of the unpacked form.
    pub q5_0: Option<Vec<u8>>,
    /// Whether every `q` is in `0..=127`: the kernels then multiply unsigned weights by signed
    /// inputs directly (`vpmaddubsw`), without moving the signs over first. Q5_0 (its raw
    /// 5-bit values, `min = 16·d`), Q4_K and the re-quantized formats (7-bit unsigned with
    /// a minimum) are; Q8_0 is not.
    pub unsigned: bool,
}

impl Packed {
    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.cols / BLOCK
    }

    /// What the kernels subtract after the integer product, `factor · m[b,r] · d·Σq`: the
    /// stored minimums with factor 1, or the scales times the fixed offset (Q5_0's 16);
    /// `None` when there is nothing to subtract.
    pub(crate) fn minimum_terms(&self) -> Option<(&[f32], f32)> {
        match &self.min {
            Some(m) => Some((m, 1.0)),
            None if self.offset != 0.0 => Some((&self.scale, self.offset)),
            None => None,
        }
    }

    /// Packs a 2-D weight; `None` when its width is not a multiple of 32. With `keep_q5_0`,
    /// Q5_0 weights keep the file's blocks ([`Packed::q5_0`]); otherwise every format is
    /// unpacked to int8.
    pub fn from_qtensor(t: &QTensor, keep_q5_0: bool) -> Result<Option<Self>> {
        let (rows, cols) = match t.shape().dims() {
            [r, c] => (*r, *c),
            _ => return Ok(None),
        };
        if cols % BLOCK != 0 {
            return Ok(None);
        }
        let n = rows * cols;
        let nb = n / BLOCK;
        let data = t.data()?;
        let bytes: &[u8] = &data;
        let mut p = Packed {
            rows,
            cols,
            q: vec![0; n],
            scale: vec![0.0; nb],
            min: None,
            offset: 0.0,
            exact: true,
            unsigned: true,
            q5_0: None,
        };
        match t.dtype() {
            GgmlDType::Q8_0 if bytes.len() == nb * 34 => {
                p.unsigned = false;
                for (b, blk) in bytes.chunks_exact(34).enumerate() {
                    p.scale[b] = half(blk, 0);
                    for (dst, &src) in p.q[b * BLOCK..(b + 1) * BLOCK].iter_mut().zip(&blk[2..]) {
                        *dst = src as i8;
                    }
                }
            }
            GgmlDType::Q5_0 if bytes.len() == nb * Q5_0_BYTES => {
                // w = d·(u − 16) = d·u − 16·d with the raw 5-bit u.
                p.offset = 16.0;
                if keep_q5_0 {
                    p.q = Vec::new();
                    p.scale = Vec::new();
                    p.q5_0 = Some(bytes.to_vec());
                    return Ok(Some(p));
                }
                for (b, blk) in bytes.chunks_exact(Q5_0_BYTES).enumerate() {
                    p.scale[b] = unpack_q5_0(blk, &mut p.q[b * BLOCK..(b + 1) * BLOCK]);
                }
            }
            GgmlDType::Q4K if bytes.len() == n / 256 * 144 => {
                let mut min = vec![0.0; nb];
                for (sb, blk) in bytes.chunks_exact(144).enumerate() {
                    let d = half(blk, 0);
                    let dmin = half(blk, 2);
                    let scales = &blk[4..16];
                    let qs = &blk[16..144];
                    for j in 0..4 {
                        let (sc1, m1) = scale_min_k4(2 * j, scales);
                        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
                        let b1 = sb * 8 + 2 * j;
                        p.scale[b1] = d * sc1 as f32;
                        min[b1] = dmin * m1 as f32;
                        p.scale[b1 + 1] = d * sc2 as f32;
                        min[b1 + 1] = dmin * m2 as f32;
                        let q = &qs[32 * j..32 * j + 32];
                        let (lo, hi) = p.q[b1 * BLOCK..(b1 + 2) * BLOCK].split_at_mut(BLOCK);
                        for ((l, h), &v) in lo.iter_mut().zip(hi).zip(q) {
                            *l = (v & 0x0F) as i8;
                            *h = (v >> 4) as i8;
                        }
                    }
                }
                p.min = Some(min);
            }
            _ => {
                // Everything else: through f32, 8 bits per 32 values.
                let dense = t
                    .dequantize(&candle_core::Device::Cpu)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let mut min = vec![0.0; nb];
                quantize_unsigned(&dense, &mut p.q, &mut p.scale, &mut min);
                p.min = Some(min);
                p.exact = false;
            }
        }
        // Scales and minimums were filled row by row; they are kept block by block.
        p.scale = by_block(&p.scale, rows, cols / BLOCK);
        p.min = p.min.as_deref().map(|m| by_block(m, rows, cols / BLOCK));
        Ok(Some(p))
    }

    /// An empty int8 matrix for [`Packed::unpack_rows`] to fill.
    pub fn scratch() -> Packed {
        Packed {
            rows: 0,
            cols: 0,
            q: Vec::new(),
            scale: Vec::new(),
            offset: 0.0,
            min: None,
            exact: true,
            unsigned: true,
            q5_0: None,
        }
    }

    /// Rows `r0..r0 + n` of this matrix's Q5_0 blocks `raw` (its [`Packed::q5_0`]) unpacked
    /// into `into` as an int8 matrix of `n` rows: the raw 5-bit values, `offset` 16.
    pub fn unpack_rows(&self, raw: &[u8], r0: usize, n: usize, into: &mut Packed) {
        let nb = self.blocks();
        self.shape_unpacked(n, into);
        for r in 0..n {
            for b in 0..nb {
                let at = ((r0 + r) * nb + b) * Q5_0_BYTES;
                let dst = &mut into.q[(r * nb + b) * BLOCK..(r * nb + b + 1) * BLOCK];
                into.scale[b * n + r] = unpack_q5_0(&raw[at..at + Q5_0_BYTES], dst);
            }
        }
    }

    /// Gives `into` the shape of `n` unpacked rows of this Q5_0 matrix (its buffers resized,
    /// reusing their allocations).
    pub(crate) fn shape_unpacked(&self, n: usize, into: &mut Packed) {
        into.rows = n;
        into.cols = self.cols;
        into.offset = self.offset;
        into.exact = true;
        into.unsigned = true;
        into.q5_0 = None;
        into.min = None;
        into.q.resize(n * self.cols, 0);
        into.scale.resize(n * self.blocks(), 0.0);
    }

    /// Dequantized values, row after row (tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        if let Some(raw) = &self.q5_0 {
            let mut unpacked = Packed::scratch();
            self.unpack_rows(raw, 0, self.rows, &mut unpacked);
            return unpacked.dequantize();
        }
        let mut out = vec![0.0; self.rows * self.cols];
        let bpr = self.blocks();
        for (b, chunk) in out.chunks_exact_mut(BLOCK).enumerate() {
            let (r, bi) = (b / bpr, b % bpr);
            let scale = self.scale[bi * self.rows + r];
            let m = self
                .min
                .as_ref()
                .map_or(self.offset * scale, |m| m[bi * self.rows + r]);
            for (o, &q) in chunk.iter_mut().zip(&self.q[b * BLOCK..(b + 1) * BLOCK]) {
                *o = scale * q as f32 - m;
            }
        }
        out
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.q.len()
            + 4 * self.scale.len()
            + self.min.as_ref().map_or(0, |m| 4 * m.len())
            + self.q5_0.as_ref().map_or(0, Vec::len)
    }
}

/// A `rows × bpr` table laid out `bpr × rows`.
fn by_block(m: &[f32], rows: usize, bpr: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for b in 0..bpr {
            t[b * rows + r] = m[r * bpr + b];
        }
    }
    t
}

/// Bytes of one Q5_0 block: `f16 d`, the 32 fifth bits, 16 bytes of two nibbles each.
pub const Q5_0_BYTES: usize = 22;

/// One Q5_0 block's raw 5-bit values `u` (the value is `d·(u − 16)`) into `out`; returns `d`.
/// Value `j < 16` is the low nibble of byte `j`, value `j + 16` its high nibble; bit `j` of
/// the 32 high bits is value `j`'s fifth bit.
pub fn unpack_q5_0(blk: &[u8], out: &mut [i8]) -> f32 {
    let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
    let qs = &blk[6..22];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        out[j] = ((qs[j] & 0x0F) | h0) as i8;
        out[j + 16] = ((qs[j] >> 4) | h1) as i8;
    }
    half(blk, 0)
}

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K block (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Quantizes values (a multiple of 32) to 7-bit unsigned blocks with a minimum: `x ≈ scale·q
/// − min`, `q` in `0..=127` (finer than the 6 bits of Q6_K, and within what `vpmaddubsw` can
/// multiply by a signed byte without saturating: 2·127·127 < 32768).
pub fn quantize_unsigned(x: &[f32], q: &mut [i8], scale: &mut [f32], min: &mut [f32]) {
    for (((xb, qb), s), m) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(scale.iter_mut())
        .zip(min.iter_mut())
    {
        let lo = xb.iter().fold(f32::INFINITY, |a, &v| a.min(v));
        let hi = xb.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let d = (hi - lo) / 127.0;
        *s = d;
        *m = -lo;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = ((v - lo) * inv).round().clamp(0.0, 127.0) as i8;
        }
    }
}

/// Quantizes values (a multiple of 32) to int8 blocks: `scale = max|x| / 127`, `q = round(x /
/// scale)`. Returns nothing; `q` and `scale` must have the matching lengths.
pub fn quantize_rows(x: &[f32], q: &mut [i8], scale: &mut [f32]) {
    for ((xb, qb), s) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(scale.iter_mut())
    {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        *s = d;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (o, v) in qb.iter_mut().zip(xb) {
            *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
        }
    }
}
