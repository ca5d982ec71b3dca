//! The AVX2 kernel: a tile of 2 weight rows × 4 input rows accumulates in 8 registers; each
//! 32-value block is one `vpmaddubsw` (unsigned weights × signed inputs; for signed weights,
//! |w| × x with w's sign moved onto x), summed to 8 lanes of i32 by `vpmaddwd`, converted and
//! scaled into the float accumulators. Weights ≤ 128 in magnitude and |x| ≤ 127 keep the
//! pairwise i16 sums below saturation (2·128·127 < 32768).

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Input, Out, Packed, BLOCK};

/// Weight rows per pass when decoding (measured: 8 streams DRAM faster than 2, 4 or 6).
const RT: usize = 8;

/// # Safety
/// The CPU must have AVX2 and FMA; the ranges must be within `w` and `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemm(w: &Packed, x: &Input, rows: Range<usize>, tokens: Range<usize>, o: Out) {
    // One input row (decoding): four weight rows per pass, more independent accumulators
    // and memory streams for the DRAM-bound product.
    let rt = if tokens.len() == 1 { RT } else { 2 };
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

#[target_feature(enable = "avx2,fma")]
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
            (4, _) => tile::<4, 1, U>(w, x, r, t, o),
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

/// `U`: the weights are unsigned (`0..=127`) and go into `vpmaddubsw` as they are; otherwise
/// their absolute values do, with their signs moved onto the inputs.
#[target_feature(enable = "avx2,fma")]
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
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for b in 0..nb {
        let mut wv = [_mm256_setzero_si256(); R];
        let mut wa = [_mm256_setzero_si256(); R];
        let mut ws = [_mm256_setzero_ps(); R];
        for i in 0..R {
            let at = ((r0 + i) * nb + b) * BLOCK;
            // SAFETY: row r0 + i < rows, block b < nb.
            unsafe {
                wv[i] = _mm256_loadu_si256(wq.add(at) as *const __m256i);
                // A broadcast from memory is a load, not an arithmetic instruction.
                ws[i] = _mm256_broadcast_ss(&*w.scale.as_ptr().add(b * w.rows + r0 + i));
            }
            if !U {
                wa[i] = _mm256_sign_epi8(wv[i], wv[i]);
            }
        }
        for j in 0..T {
            let at = ((t0 + j) * nb + b) * BLOCK;
            // SAFETY: input row t0 + j < tokens, block b < nb.
            let (xv, d) = unsafe {
                (
                    _mm256_loadu_si256(xq.add(at) as *const __m256i),
                    _mm256_broadcast_ss(&*x.d.as_ptr().add((t0 + j) * nb + b)),
                )
            };
            for i in 0..R {
                let p = if U {
                    _mm256_maddubs_epi16(wv[i], xv)
                } else {
                    _mm256_maddubs_epi16(wa[i], _mm256_sign_epi8(xv, wv[i]))
                };
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, ws[i]), d, acc[i][j]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, hsum(*v)) };
        }
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}
