//! Weights as int8 blocks: every row is cut into blocks of 32 values `w = scale·q − min`, with
//! `q` a signed byte. The GGUF block formats map onto this exactly where their blocks have one
//! scale per 32 values (Q8_0: `q`; Q5_0: the raw 5-bit value with `min = 16·d`; Q4_K: each
//! 32-value sub-block's 4-bit value with `scale = d·sc`, `min = dmin·m`); every other format
//! (Q6_K's 16-value sub-blocks, Q4_0/Q5_1/…, f16/f32) is dequantized and re-quantized to 7
//! unsigned bits with a minimum per 32 values, a step finer than the format's own.
//!
//! Q4_K weights are kept in the file's own super-blocks (144 bytes per 256 values against 320
//! unpacked), and Q5_0 weights may be too (22 bytes per 32 values against 36): decoding then
//! reads them directly, prefill unpacks a few hundred KiB of rows at a time into int8
//! ([`Packed::unpack_rows`]). Q6_K weights keep their super-blocks beside the int8 form, for
//! decoding alone.

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
    /// The file's Q4_K super-blocks as they are (`f16 d`, `f16 dmin`, 12 bytes of 6-bit
    /// scales and minimums, 128 bytes of nibbles; 144 bytes per 256 values, row after row)
    /// — `q`, `scale` and `min` are then empty: 0.45 of the bytes of the unpacked form, which
    /// decoding reads once per token. Always kept: decoding straight from them ran a
    /// 8960×1536 product in half the time of the unpacked form (`DT=q4k --example qgemv`),
    /// and prefill, which unpacks groups of rows, no slower (`DT=q4k --example qgemm`).
    pub q4_k: Option<Vec<u8>>,
    /// The file's Q6_K super-blocks as they are (128 bytes of low nibbles, 64 of high bit
    /// pairs, 16 signed scales, `f16 d`; 210 bytes per 256 values), kept beside the int8 form:
    /// decoding reads them directly (0.66 of the int8 form's bytes, and the file's exact
    /// values); prefill runs on the int8 form, since Q6_K's 16-value sub-blocks have no exact
    /// int8 form with one scale per 32.
    pub q6_k: Option<Vec<u8>>,
    /// Whether every `q` is in `0..=127`: the kernels then multiply unsigned weights by signed
    /// inputs directly (`vpmaddubsw`), without moving the signs over first. Q5_0 (its raw
    /// 5-bit values, `min = 16·d`), Q4_K and the re-quantized formats (7-bit unsigned with
    /// a minimum) are; Q8_0 is not.
    pub unsigned: bool,
    /// The largest magnitude of `q`: 128 for Q8_0, 31 for Q5_0's raw values, 15 for Q4_K's,
    /// 127 for the re-quantized formats. The prefill kernel adds this many `vpmaddubsw`
    /// products in 16 bits before widening them as the bound allows.
    pub max_q: u8,
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

    /// Packs a 2-D weight; `None` when its width is not a multiple of 32. Q4_K weights keep
    /// the file's blocks ([`Packed::q4_k`]), and so do Q5_0 weights with `keep_q5_0`
    /// ([`Packed::q5_0`]); every other format is unpacked to int8.
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
            max_q: 127,
            q5_0: None,
            q4_k: None,
            q6_k: None,
        };
        match t.dtype() {
            GgmlDType::Q8_0 if bytes.len() == nb * 34 => {
                p.unsigned = false;
                p.max_q = 128;
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
                p.max_q = 31;
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
            GgmlDType::Q4K
                if cols % Q4_K_VALUES == 0 && bytes.len() == n / Q4_K_VALUES * Q4_K_BYTES =>
            {
                p.q = Vec::new();
                p.scale = Vec::new();
                p.max_q = 15;
                p.q4_k = Some(bytes.to_vec());
                return Ok(Some(p));
            }
            _ => {
                if t.dtype() == GgmlDType::Q6K
                    && cols % Q6_K_VALUES == 0
                    && bytes.len() == n / Q6_K_VALUES * Q6_K_BYTES
                {
                    p.q6_k = Some(bytes.to_vec());
                }
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
            max_q: 127,
            q5_0: None,
            q4_k: None,
            q6_k: None,
        }
    }

    /// The file's blocks this matrix keeps instead of the int8 form ([`Packed::q5_0`] or
    /// [`Packed::q4_k`]), if any.
    pub fn raw_blocks(&self) -> Option<&[u8]> {
        self.q5_0.as_deref().or(self.q4_k.as_deref())
    }

    /// The file's blocks decoding reads directly: those kept instead of the int8 form, or the
    /// Q6_K blocks kept beside it.
    pub fn decode_blocks(&self) -> Option<&[u8]> {
        self.raw_blocks().or(self.q6_k.as_deref())
    }

    /// Rows `r0..r0 + n` of this matrix's kept blocks `raw` ([`Packed::raw_blocks`]) unpacked
    /// into `into` as an int8 matrix of `n` rows: Q5_0's raw 5-bit values with `offset` 16,
    /// or Q4_K's 4-bit values with their sub-blocks' scales and minimums.
    pub fn unpack_rows(&self, raw: &[u8], r0: usize, n: usize, into: &mut Packed) {
        let nb = self.blocks();
        self.shape_unpacked(n, into);
        if self.q4_k.is_some() {
            let per_row = nb / 8;
            let (mut scale, mut min) = ([0f32; 8], [0f32; 8]);
            // Sized by `shape_unpacked`.
            let mut mins = into.min.take().unwrap_or_default();
            for r in 0..n {
                for sb in 0..per_row {
                    let at = ((r0 + r) * per_row + sb) * Q4_K_BYTES;
                    let b0 = sb * 8;
                    unpack_q4_k(
                        &raw[at..at + Q4_K_BYTES],
                        &mut into.q[(r * nb + b0) * BLOCK..(r * nb + b0 + 8) * BLOCK],
                        &mut scale,
                        &mut min,
                    );
                    for k in 0..8 {
                        into.scale[(b0 + k) * n + r] = scale[k];
                        mins[(b0 + k) * n + r] = min[k];
                    }
                }
            }
            into.min = Some(mins);
            return;
        }
        for r in 0..n {
            for b in 0..nb {
                let at = ((r0 + r) * nb + b) * Q5_0_BYTES;
                let dst = &mut into.q[(r * nb + b) * BLOCK..(r * nb + b + 1) * BLOCK];
                into.scale[b * n + r] = unpack_q5_0(&raw[at..at + Q5_0_BYTES], dst);
            }
        }
    }

    /// Gives `into` the shape of `n` unpacked rows of this matrix's kept blocks (its buffers
    /// resized, reusing their allocations).
    pub(crate) fn shape_unpacked(&self, n: usize, into: &mut Packed) {
        into.rows = n;
        into.cols = self.cols;
        into.offset = self.offset;
        into.exact = true;
        into.unsigned = true;
        into.max_q = self.max_q;
        into.q5_0 = None;
        into.q4_k = None;
        into.q6_k = None;
        into.q.resize(n * self.cols, 0);
        into.scale.resize(n * self.blocks(), 0.0);
        if self.q4_k.is_some() {
            let mut min = into.min.take().unwrap_or_default();
            min.resize(n * self.blocks(), 0.0);
            into.min = Some(min);
        } else {
            into.min = None;
        }
    }

    /// Dequantized values, row after row (tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        if let Some(raw) = self.raw_blocks() {
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
            + self.q4_k.as_ref().map_or(0, Vec::len)
            + self.q6_k.as_ref().map_or(0, Vec::len)
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

/// Values of one Q4_K super-block: eight sub-blocks of 32.
pub const Q4_K_VALUES: usize = 256;

/// Bytes of one Q4_K super-block: `f16 d`, `f16 dmin`, 12 bytes of 6-bit scales and minimums,
/// 128 bytes of nibbles.
pub const Q4_K_BYTES: usize = 144;

/// One Q4_K super-block's 256 4-bit values into `q` and its eight sub-blocks' scales
/// (`d·sc`) and minimums (`dmin·m`) into `scale` and `min`: value `v` of sub-block `k` is
/// `scale[k]·q − min[k]`. Sub-blocks `2j` and `2j + 1` are the low and high nibbles of bytes
/// `32j..32j + 32`.
pub fn unpack_q4_k(blk: &[u8], q: &mut [i8], scale: &mut [f32], min: &mut [f32]) {
    let (d, dmin) = (half(blk, 0), half(blk, 2));
    let scales = &blk[4..16];
    for k in 0..8 {
        let (sc, m) = scale_min_k4(k, scales);
        scale[k] = d * sc as f32;
        min[k] = dmin * m as f32;
    }
    for (j, bytes) in blk[16..Q4_K_BYTES].chunks_exact(BLOCK).enumerate() {
        let (lo, hi) = q[2 * j * BLOCK..(2 * j + 2) * BLOCK].split_at_mut(BLOCK);
        for ((l, h), &v) in lo.iter_mut().zip(hi).zip(bytes) {
            *l = (v & 0x0F) as i8;
            *h = (v >> 4) as i8;
        }
    }
}

/// Values of one Q6_K super-block: sixteen sub-blocks of 16.
pub const Q6_K_VALUES: usize = 256;

/// Bytes of one Q6_K super-block: 128 bytes of low nibbles, 64 of high bit pairs, 16 signed
/// scales, `f16 d`.
pub const Q6_K_BYTES: usize = 210;

/// One Q6_K super-block's 256 values as signed 6-bit integers `u − 32` into `q` and its
/// sixteen sub-block scales into `scales`; returns `d`: value `v` is `d·scales[v / 16]·q[v]`.
/// In each half of 128 values (64 bytes of `ql`, 32 of `qh`), value `l + 32g` (`l < 32`)
/// takes its low four bits from `ql[l]` (g = 0, 2: low and high nibble) or `ql[l + 32]`
/// (g = 1, 3) and its high two from bits `2g, 2g + 1` of `qh[l]` (ggml's
/// `dequantize_row_q6_K`).
pub fn unpack_q6_k(blk: &[u8], q: &mut [i8], scales: &mut [i8]) -> f32 {
    for (h, (ql, qh)) in blk[..128]
        .chunks_exact(64)
        .zip(blk[128..192].chunks_exact(32))
        .enumerate()
    {
        let out = &mut q[128 * h..128 * (h + 1)];
        for l in 0..32 {
            let hb = qh[l];
            out[l] = ((ql[l] & 0x0F) | ((hb & 0x03) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0x0F) | (((hb >> 2) & 0x03) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((hb >> 4) & 0x03) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((hb >> 6) & 0x03) << 4)) as i8 - 32;
        }
    }
    for (s, &b) in scales.iter_mut().zip(&blk[192..208]) {
        *s = b as i8;
    }
    half(blk, 208)
}

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K block (ggml's `get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
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
    quantize_blocks(x, BLOCK, q, scale)
}

/// The values of int8 blocks of `size` values with one scale each, as floats (tests and
/// references).
pub fn dequantize_blocks(q: &[i8], scale: &[f32], size: usize) -> Vec<f32> {
    q.chunks_exact(size)
        .zip(scale)
        .flat_map(|(b, d)| b.iter().map(move |&v| v as f32 * d))
        .collect()
}

/// [`quantize_rows`] with blocks of `size` values (a divisor of `x.len()`).
pub fn quantize_blocks(x: &[f32], size: usize, q: &mut [i8], scale: &mut [f32]) {
    for ((xb, qb), s) in x
        .chunks_exact(size)
        .zip(q.chunks_exact_mut(size))
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
