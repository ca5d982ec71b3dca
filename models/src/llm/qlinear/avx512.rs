//! The AVX-512 VNNI kernel: one `vpdpbusd` multiplies 64 unsigned weight bytes by 64 signed
//! input bytes and sums each group of four into 16 lanes of i32 — two 32-value blocks per
//! instruction, lanes 0–7 for the first block, 8–15 for the second, each then converted and
//! scaled by its own block's `scale·d`. A tile of 4 weight rows × 4 prompt rows keeps 16
//! accumulators in registers (8 weight rows × 1 row when decoding).
//!
//! `vpdpbusd` takes its first operand unsigned. Unsigned packed weights (Q5_0's raw 5-bit
//! values, Q4_K, the re-quantized formats) go in as they are; signed ones (Q8_0) go in as
//! `q + 128` (a flip of the top bit) and the caller subtracts `128·scale·d·Σx` per block with
//! the same minimum correction Q5_0's offset uses ([`SIGNED_OFFSET`]). No i16 step, so no
//! saturation: a block's sum is at most 32·255·127, far inside i32.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Input, Out, Packed, BLOCK};

/// What signed weights are shifted by to make them unsigned.
pub(super) const SIGNED_OFFSET: f32 = 128.0;

/// Weight rows per pass when decoding (one input row; several DRAM streams).
const RT: usize = 8;

/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; the ranges must be within `w` and `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn gemm(w: &Packed, x: &Input, rows: Range<usize>, tokens: Range<usize>, o: Out) {
    let rt = if tokens.len() == 1 { RT } else { 4 };
    super::for_each_tile(rows, tokens, rt, 4, |r, t, rn, tn| {
        // SAFETY: the caller guarantees the features and bounds; the walk stays within them.
        unsafe {
            if w.unsigned {
                tiles::<true>(w, x, r, t, rn, tn, o)
            } else {
                tiles::<false>(w, x, r, t, rn, tn, o)
            }
        }
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tiles<const U: bool>(
    w: &Packed,
    x: &Input,
    r: usize,
    t: usize,
    rn: usize,
    tn: usize,
    o: Out,
) {
    // SAFETY: as for `gemm`.
    unsafe {
        match (rn, tn) {
            (8, _) => tile::<8, 1, U>(w, x, r, t, o),
            (7, _) => tile::<7, 1, U>(w, x, r, t, o),
            (6, _) => tile::<6, 1, U>(w, x, r, t, o),
            (5, _) => tile::<5, 1, U>(w, x, r, t, o),
            (4, 4) => tile::<4, 4, U>(w, x, r, t, o),
            (4, 3) => tile::<4, 3, U>(w, x, r, t, o),
            (4, 2) => tile::<4, 2, U>(w, x, r, t, o),
            (4, _) => tile::<4, 1, U>(w, x, r, t, o),
            (3, 4) => tile::<3, 4, U>(w, x, r, t, o),
            (3, 3) => tile::<3, 3, U>(w, x, r, t, o),
            (3, 2) => tile::<3, 2, U>(w, x, r, t, o),
            (3, _) => tile::<3, 1, U>(w, x, r, t, o),
            (2, 4) => tile::<2, 4, U>(w, x, r, t, o),
            (2, 3) => tile::<2, 3, U>(w, x, r, t, o),
            (2, 2) => tile::<2, 2, U>(w, x, r, t, o),
            (2, _) => tile::<2, 1, U>(w, x, r, t, o),
            (_, 4) => tile::<1, 4, U>(w, x, r, t, o),
            (_, 3) => tile::<1, 3, U>(w, x, r, t, o),
            (_, 2) => tile::<1, 2, U>(w, x, r, t, o),
            _ => tile::<1, 1, U>(w, x, r, t, o),
        }
    }
}

/// Two blocks' scales in one vector: `a` in lanes 0–7, `b` in lanes 8–15.
#[target_feature(enable = "avx512f")]
#[inline]
fn pair(a: f32, b: f32) -> __m512 {
    _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(a), _mm512_set1_ps(b))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn tile<const R: usize, const T: usize, const U: bool>(
    w: &Packed,
    x: &Input,
    r0: usize,
    t0: usize,
    o: Out,
) {
    let nb = w.blocks();
    let wq = w.q.as_ptr();
    let xq = x.q.as_ptr();
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let mut b = 0;
    while b < nb {
        // The last block of an odd count goes alone: the upper 32 bytes load as zeros, so
        // lanes 8–15 add nothing whatever their scale.
        let two = b + 1 < nb;
        let mask: u64 = if two { u64::MAX } else { u32::MAX as u64 };
        let next = if two { b + 1 } else { b };
        let mut wv = [_mm512_setzero_si512(); R];
        let mut ws = [_mm512_setzero_ps(); R];
        for i in 0..R {
            let at = ((r0 + i) * nb + b) * BLOCK;
            // SAFETY: row r0 + i < rows; blocks b and (when loaded) b + 1 < nb.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(mask, wq.add(at));
                // Zeros past the block stay zeros in the product: their inputs load as zeros.
                wv[i] = if U { v } else { _mm512_xor_si512(v, flip) };
                ws[i] = pair(
                    *w.scale.get_unchecked(b * w.rows + r0 + i),
                    *w.scale.get_unchecked(next * w.rows + r0 + i),
                );
            }
        }
        for j in 0..T {
            let at = ((t0 + j) * nb + b) * BLOCK;
            // SAFETY: input row t0 + j < tokens; blocks b and (when loaded) b + 1 < nb.
            let (xv, d) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(mask, xq.add(at)),
                    pair(
                        *x.d.get_unchecked((t0 + j) * nb + b),
                        *x.d.get_unchecked((t0 + j) * nb + next),
                    ),
                )
            };
            for i in 0..R {
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[i], xv);
                let s = _mm512_cvtepi32_ps(p);
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(s, ws[i]), d, acc[i][j]);
            }
        }
        b += 2;
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, _mm512_reduce_add_ps(*v)) };
        }
    }
}
