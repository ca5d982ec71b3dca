//! The AVX2 kernels. Decoding (a few input rows): a tile of 4 weight rows × 1 input row (2 × 4
//! for a batch) on the row-major int8 form, or straight from the file's blocks; each 32-value
//! block is one `vpmaddubsw` (unsigned weights × signed inputs; for signed weights, |w| × x
//! with w's sign moved onto x), summed to 8 lanes of i32 by `vpmaddwd`, converted and scaled
//! into the float accumulators. Prefill (more than 8 input rows): [`gemm_octets`] on groups of
//! 8 weight rows interleaved per product, whose lanes are 8 outputs. Weights ≤ 128 in
//! magnitude and |x| ≤ 127 keep each pairwise i16 sum below saturation (2·128·127 < 32768).

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Input, Out, Packed, SuperInput, BLOCK, SUPER};

/// Weight rows per pass when decoding. With the next tile prefetched (see `tile`), 4 rows
/// ran the 4864×896 decode product at 14–15 GB/s on 2 cores against 12 GB/s for 8 (`--example
/// qgemv`); without the prefetch 8 had been best, at 8 GB/s.
const RT: usize = 4;

/// Input rows up to which the tiles subtract the weights' minimums themselves (a decoding
/// pass: one sequence, or a batch of up to `llm.max_batch` = 8). Longer runs of rows are
/// prefill, which runs [`gemm_octets`] on interleaved rows.
pub(super) const FOLD_TOKENS: usize = 8;

/// Returns whether the weights' minimums (Q4_K's, Q5_0's offset of 16) were subtracted too:
/// a decoding pass does it in the tile, from the scales it has just read, instead of reading
/// them again in a separate pass ([`super::minimums`]).
///
/// # Safety
/// The CPU must have AVX2 and FMA; the ranges must be within `w` and `x`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemm(
    w: &Packed,
    x: &Input,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) -> bool {
    // One input row (decoding): four weight rows per pass, more independent accumulators
    // and memory streams for the DRAM-bound product.
    let decoding = tokens.len() == 1;
    let rt = if decoding { RT } else { 2 };
    // Decoding passes (one sequence or a batch) subtract the minimums in the tile, each input
    // row's in the same order as for one row alone: a sequence then gets bitwise the same
    // logits whether it is decoded alone or beside others. Prefill runs `gemm_octets`; the
    // few rows it leaves here (past whole groups of 8) get a separate pass over the minimums.
    let fold = tokens.len() <= FOLD_TOKENS && w.minimum_terms().is_some();
    super::for_each_tile(rows, tokens, rt, 4, |r, t, rn, tn| {
        // SAFETY: the caller guarantees the features and bounds; the walk stays within them.
        unsafe {
            match (w.unsigned, fold) {
                (true, true) => tiles::<true, true>(w, x, r, t, rn, tn, o),
                (true, false) => tiles::<true, false>(w, x, r, t, rn, tn, o),
                (false, true) => tiles::<false, true>(w, x, r, t, rn, tn, o),
                (false, false) => tiles::<false, false>(w, x, r, t, rn, tn, o),
            }
        }
    });
    fold
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tiles<const U: bool, const F: bool>(
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
            (4, _) => tile::<4, 1, U, F>(w, x, r, t, o),
            (3, _) => tile::<3, 1, U, F>(w, x, r, t, o),
            (2, 4) => tile::<2, 4, U, F>(w, x, r, t, o),
            (2, 3) => tile::<2, 3, U, F>(w, x, r, t, o),
            (2, 2) => tile::<2, 2, U, F>(w, x, r, t, o),
            (2, _) => tile::<2, 1, U, F>(w, x, r, t, o),
            (_, 4) => tile::<1, 4, U, F>(w, x, r, t, o),
            (_, 3) => tile::<1, 3, U, F>(w, x, r, t, o),
            (_, 2) => tile::<1, 2, U, F>(w, x, r, t, o),
            _ => tile::<1, 1, U, F>(w, x, r, t, o),
        }
    }
}

/// `U`: the weights are unsigned (`0..=127`) and go into `vpmaddubsw` as they are; otherwise
/// their absolute values do, with their signs moved onto the inputs. `F` (decoding passes):
/// the minimums are subtracted here, `Σ_b min[b,r]·(d·Σq)[b]` summed on the side per input
/// row, in block order whatever the tile's shape.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn tile<const R: usize, const T: usize, const U: bool, const F: bool>(
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
    // With `F`: Q4_K's minimums, or Q5_0's offset times its scales.
    let (mins, factor) = w
        .minimum_terms()
        .map_or((w.scale.as_ptr(), 0.0), |(m, f)| (m.as_ptr(), f));
    let mut side = [[0f32; T]; R];
    for b in 0..nb {
        if T == 1 {
            // Decoding: fetch the next tile while this one is multiplied. Its rows follow
            // this tile's in memory; each block step fetches the next `R·32` of its bytes and
            // its scales, so the whole tile is in cache when it starts. Without this the
            // tile's short row streams (896 bytes each for the default model's attention
            // and FFN-in matrices) end before the hardware prefetcher runs ahead of them, and the
            // kernel waits on DRAM latency (`--example qgemv`, 2 cores: 8.4 → 15 GB/s with
            // this and 4 rows per tile).
            let next = wq.wrapping_add(((r0 + R) * nb + b * R) * BLOCK);
            for l in (0..R * BLOCK).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l));
            }
            _mm_prefetch::<_MM_HINT_T0>(
                w.scale.as_ptr().wrapping_add(b * w.rows + r0 + R) as *const i8
            );
        }
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
        if F {
            for j in 0..T {
                // SAFETY: block b of input row t0 + j and of weight rows r0..r0 + R are in
                // bounds.
                let sx = factor * unsafe { *x.sum.get_unchecked((t0 + j) * nb + b) };
                for i in 0..R {
                    side[i][j] += sx * unsafe { *mins.add(b * w.rows + r0 + i) };
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, hsum(*v) - side[i][j]) };
        }
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    hsum128(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps(v, 1),
    ))
}

/// Weight rows multiplied together by the prefill kernel: one `__m256` of outputs.
pub(super) const OCTET: usize = 8;

/// Rows `rows` (whole groups of [`OCTET`]) of the int8 matrix `w` laid out for
/// [`gemm_octets`] in `into`: per group of 8 rows and block, eight 32-byte vectors, vector `g`
/// holding values `4g..4g + 4` of the 8 rows side by side (an 8×8 transpose of 4-byte
/// groups). One `vpmaddubsw` of such a vector by 4 input values broadcast then works on 8
/// rows at once, and its lanes sum into one output per row — where the row-major layout
/// needs a float conversion, multiply and add per row and block and a horizontal sum at the
/// end (llama.cpp's AVX2 `gemm_q4_0_8x8_q8_0` repacks its weights likewise, once at load; we
/// do it per product, where it costs ~1/100 of the arithmetic for a 64-row prompt chunk).
///
/// # Safety
/// The CPU must have AVX2; `rows` must be within `w`, a multiple of 8 long.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn interleave(w: &Packed, rows: Range<usize>, into: &mut Vec<u8>) {
    debug_assert!(rows.len().is_multiple_of(OCTET) && rows.end <= w.rows);
    let nb = w.blocks();
    into.resize(rows.len() * w.cols, 0);
    let (src, dst) = (w.q.as_ptr(), into.as_mut_ptr());
    for (o, r) in rows.step_by(OCTET).enumerate() {
        for b in 0..nb {
            // SAFETY: rows r..r + 8 and block b are within `w`; group o's block b is within
            // `into`, sized above.
            unsafe {
                let row = |i: usize| {
                    _mm256_loadu_si256(src.add(((r + i) * nb + b) * BLOCK) as *const __m256i)
                };
                // Dwords of rows (0,1), (2,3), … paired, then quadrupled, then the 128-bit
                // halves exchanged: column g of the 8×8 dword matrix becomes vector g.
                let t: [__m256i; 8] = std::array::from_fn(|k| {
                    let (a, c) = (row(k & !1), row(k | 1));
                    if k % 2 == 0 {
                        _mm256_unpacklo_epi32(a, c)
                    } else {
                        _mm256_unpackhi_epi32(a, c)
                    }
                });
                // u[4h + m]: rows 4h..4h+4, columns m (low half) and m + 4 (high half).
                let u: [__m256i; 8] = std::array::from_fn(|k| {
                    let (h, m) = (k / 4, k % 4);
                    let (a, c) = (t[4 * h + (m / 2)], t[4 * h + 2 + (m / 2)]);
                    if m % 2 == 0 {
                        _mm256_unpacklo_epi64(a, c)
                    } else {
                        _mm256_unpackhi_epi64(a, c)
                    }
                });
                let out = dst.add((o * nb + b) * OCTET * BLOCK) as *mut __m256i;
                for m in 0..4 {
                    _mm256_storeu_si256(
                        out.add(m),
                        _mm256_permute2x128_si256(u[m], u[4 + m], 0x20),
                    );
                    _mm256_storeu_si256(
                        out.add(m + 4),
                        _mm256_permute2x128_si256(u[m], u[4 + m], 0x31),
                    );
                }
            }
        }
    }
}

/// How many 4-value groups' `vpmaddubsw` pair sums add up in 16 bits before they must be
/// widened: each is at most `2·max_q·127`, and a sum must stay below 32768 (Q4_K's 15: all 8
/// groups of a block; Q5_0's 31: 4; the 7-bit re-quantized formats and Q8_0: 1).
fn groups_in_i16(max_q: u8) -> usize {
    let per = 2 * max_q as usize * 127;
    match 32767 / per.max(1) {
        8.. => 8,
        4.. => 4,
        2.. => 2,
        _ => 1,
    }
}

/// Prefill: rows `rows` of `w` (whole groups of 8, laid out in `il` by [`interleave`] from
/// row `il_r0` on) times input rows `tokens`, minimums subtracted, into `o`. A tile is 8
/// weight rows × up to 4 input rows; per block each input row's 8 groups of 4 values are
/// broadcast and multiplied by the 8 rows' groups, summed in 16 bits as far as
/// [`groups_in_i16`] allows, widened, and one float step per block does
/// `acc += scale·d·dot − min·d·Σq` for the 8 rows at once.
///
/// # Safety
/// The CPU must have AVX2 and FMA; the ranges must be within `w` and `x`; `il` must hold the
/// interleaved rows.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemm_octets(
    w: &Packed,
    il: &[u8],
    il_r0: usize,
    x: &Input,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    debug_assert!(rows.start >= il_r0 && (rows.end - il_r0) * w.cols <= il.len());
    // SAFETY (all calls below): as for this function.
    unsafe {
        match (groups_in_i16(w.max_q), w.unsigned) {
            (_, false) => octet_tiles::<1, false>(w, il, il_r0, x, rows, tokens, o),
            (8, true) => octet_tiles::<8, true>(w, il, il_r0, x, rows, tokens, o),
            (4, true) => octet_tiles::<4, true>(w, il, il_r0, x, rows, tokens, o),
            (2, true) => octet_tiles::<2, true>(w, il, il_r0, x, rows, tokens, o),
            (_, true) => octet_tiles::<1, true>(w, il, il_r0, x, rows, tokens, o),
        }
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn octet_tiles<const K: usize, const U: bool>(
    w: &Packed,
    il: &[u8],
    il_r0: usize,
    x: &Input,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    for r in rows.step_by(OCTET) {
        // SAFETY: the group's rows are in `il` (caller).
        let wq = unsafe { il.as_ptr().add((r - il_r0) * w.cols) };
        let mut t = tokens.start;
        while t < tokens.end {
            let n = (tokens.end - t).min(4);
            // SAFETY: as for `gemm_octets`.
            unsafe {
                match n {
                    4 => octet_tile::<4, K, U>(wq, w, x, r, t, o),
                    3 => octet_tile::<3, K, U>(wq, w, x, r, t, o),
                    2 => octet_tile::<2, K, U>(wq, w, x, r, t, o),
                    _ => octet_tile::<1, K, U>(wq, w, x, r, t, o),
                }
            }
            t += n;
        }
    }
}

/// `K`: groups summed in 16 bits ([`groups_in_i16`]); `U`: unsigned weights (else their
/// absolute values go into `vpmaddubsw`, their signs onto the inputs).
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn octet_tile<const T: usize, const K: usize, const U: bool>(
    wq: *const u8,
    w: &Packed,
    x: &Input,
    r: usize,
    t0: usize,
    o: Out,
) {
    let (nb, cols) = (w.blocks(), w.cols);
    let ones = _mm256_set1_epi16(1);
    let mins = w.minimum_terms();
    let xq = x.q.as_ptr();
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..nb {
        let mut dot = [_mm256_setzero_si256(); T];
        let mut part = [_mm256_setzero_si256(); T];
        for g in 0..OCTET {
            // SAFETY: block b of the group is within `il`; values 4g..4g + 4 of block b of
            // input row t0 + j are within `x` (caller).
            unsafe {
                let wv = _mm256_loadu_si256(wq.add((b * OCTET + g) * BLOCK) as *const __m256i);
                let wa = if U { wv } else { _mm256_sign_epi8(wv, wv) };
                for j in 0..T {
                    let at = (t0 + j) * cols + b * BLOCK + g * 4;
                    let xb = _mm256_set1_epi32((xq.add(at) as *const i32).read_unaligned());
                    let p = if U {
                        _mm256_maddubs_epi16(wa, xb)
                    } else {
                        _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xb, wv))
                    };
                    part[j] = if g % K == 0 {
                        p
                    } else {
                        _mm256_add_epi16(part[j], p)
                    };
                    if g % K == K - 1 {
                        dot[j] = _mm256_add_epi32(dot[j], _mm256_madd_epi16(part[j], ones));
                    }
                }
            }
        }
        // SAFETY: block b's scales (and minimums) of rows r..r + 8 and the input's block b
        // of rows t0..t0 + T are in bounds (caller).
        unsafe {
            let ws = _mm256_loadu_ps(w.scale.as_ptr().add(b * w.rows + r));
            for j in 0..T {
                let d = _mm256_broadcast_ss(&*x.d.as_ptr().add((t0 + j) * nb + b));
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[j]), _mm256_mul_ps(ws, d), acc[j]);
            }
            if let Some((m, factor)) = mins {
                let mv = _mm256_loadu_ps(m.as_ptr().add(b * w.rows + r));
                for j in 0..T {
                    let s = factor * *x.sum.get_unchecked((t0 + j) * nb + b);
                    acc[j] = _mm256_fnmadd_ps(mv, _mm256_set1_ps(s), acc[j]);
                }
            }
        }
    }
    for (j, v) in acc.iter().enumerate() {
        // SAFETY: outputs r..r + 8 of input row t0 + j are in bounds and this thread's.
        unsafe { _mm256_storeu_ps(o.at(t0 + j, r), *v) };
    }
}

/// Weight rows per pass when decoding from the file's blocks (Q5_0, Q4_K, Q6_K).
const BLOCKS_RT: usize = 4;

/// Walks a decoding product (a few input rows) in register tiles of [`BLOCKS_RT`] weight rows
/// × one input row, or 2 × up to 4 input rows for a batch, calling
/// `$tile::<R, T>(args…, r, t, o)` with the tile's shape as constants: one walk for every
/// block format's tile.
macro_rules! decode_tiles {
    ($tile:ident, $rows:expr, $tokens:expr, $o:expr, ($($arg:expr),*)) => {{
        let tokens = $tokens;
        let rt = if tokens.len() == 1 { BLOCKS_RT } else { 2 };
        super::for_each_tile($rows, tokens, rt, 4, |r, t, rn, tn| {
            // SAFETY: the caller guarantees the features and bounds; the walk stays within them.
            unsafe {
                match (rn, tn) {
                    (4, _) => $tile::<4, 1>($($arg,)* r, t, $o),
                    (3, _) => $tile::<3, 1>($($arg,)* r, t, $o),
                    (2, 4) => $tile::<2, 4>($($arg,)* r, t, $o),
                    (2, 3) => $tile::<2, 3>($($arg,)* r, t, $o),
                    (2, 2) => $tile::<2, 2>($($arg,)* r, t, $o),
                    (2, _) => $tile::<2, 1>($($arg,)* r, t, $o),
                    (_, 4) => $tile::<1, 4>($($arg,)* r, t, $o),
                    (_, 3) => $tile::<1, 3>($($arg,)* r, t, $o),
                    (_, 2) => $tile::<1, 2>($($arg,)* r, t, $o),
                    _ => $tile::<1, 1>($($arg,)* r, t, $o),
                }
            }
        });
    }};
}

/// One Q5_0 block's 32 raw 5-bit values (`0..=31`) as bytes: the nibbles spread to bytes,
/// each byte's fifth bit set from the block's 32 high bits (llama.cpp's
/// `bytes_from_bits_32`: byte `i` compares all-ones once every bit but bit `i` is forced).
///
/// # Safety
/// `blk` must point at a whole block ([`pack::Q5_0_BYTES`](super::pack::Q5_0_BYTES) bytes).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q5_0_values(blk: *const u8) -> __m256i {
    // SAFETY: the block's bytes 2..22 are readable (caller).
    let (qs, qh) = unsafe {
        (
            _mm_loadu_si128(blk.add(6) as *const __m128i),
            (blk.add(2) as *const u32).read_unaligned(),
        )
    };
    let low = _mm_set1_epi8(0x0F);
    let nibbles = _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16(qs, 4), low),
        _mm_and_si128(qs, low),
    );
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh as i32),
        _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0,
        ),
    );
    let others = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    let set = _mm256_cmpeq_epi8(others, _mm256_set1_epi64x(-1));
    _mm256_or_si256(nibbles, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}

/// The block's scale `d` (an f16 in its first two bytes).
///
/// # Safety
/// `blk` must point at a whole block.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q5_0_scale(blk: *const u8) -> f32 {
    // SAFETY: the block's first two bytes are readable (caller).
    let bits = unsafe { (blk as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Rows `r0..r0 + n` of Q5_0 blocks unpacked to int8 values and block-major scales (the
/// layout of [`Packed`] for `n` rows), for the prefill kernels.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `raw` must hold the rows; `q` and `scale` must have
/// room for `n` rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn unpack_q5_0_rows(
    raw: &[u8],
    nb: usize,
    r0: usize,
    n: usize,
    q: &mut [i8],
    scale: &mut [f32],
) {
    debug_assert!(raw.len() >= (r0 + n) * nb * super::pack::Q5_0_BYTES);
    debug_assert!(q.len() >= n * nb * BLOCK && scale.len() >= n * nb);
    for r in 0..n {
        for b in 0..nb {
            // SAFETY: in bounds (asserted above for debug builds; the caller guarantees it).
            unsafe {
                let blk = raw
                    .as_ptr()
                    .add(((r0 + r) * nb + b) * super::pack::Q5_0_BYTES);
                _mm256_storeu_si256(
                    q.as_mut_ptr().add((r * nb + b) * BLOCK) as *mut __m256i,
                    q5_0_values(blk),
                );
                *scale.get_unchecked_mut(b * n + r) = q5_0_scale(blk);
            }
        }
    }
}

/// Decoding products straight from Q5_0 blocks (a few input rows): each block is unpacked in
/// registers and multiplied by every input row of the tile; the offset of 16 is subtracted
/// per block as `16·d·(d_x·Σq_x)`, summed on the side.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; the ranges must be within `w` and `x`, and `raw` must
/// be `w`'s blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn gemv_q5_0(
    w: &Packed,
    raw: &[u8],
    x: &Input,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    let raw = raw.as_ptr();
    let (nb, offset) = (w.blocks(), w.offset);
    decode_tiles!(q5_tile, rows, tokens, o, (raw, nb, offset, x));
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn q5_tile<const R: usize, const T: usize>(
    raw: *const u8,
    nb: usize,
    offset: f32,
    x: &Input,
    r0: usize,
    t0: usize,
    o: Out,
) {
    let xq = x.q.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut side = [[0f32; T]; R];
    for b in 0..nb {
        // The next tile's blocks, as for the int8 decoding tile (its rows follow these).
        let next = raw.wrapping_add(((r0 + R) * nb + b * R) * super::pack::Q5_0_BYTES);
        for l in (0..R * super::pack::Q5_0_BYTES).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l) as *const i8);
        }
        let mut u = [_mm256_setzero_si256(); R];
        let mut d = [0f32; R];
        for i in 0..R {
            // SAFETY: row r0 + i < rows, block b < nb.
            unsafe {
                let blk = raw.add(((r0 + i) * nb + b) * super::pack::Q5_0_BYTES);
                u[i] = q5_0_values(blk);
                d[i] = q5_0_scale(blk);
            }
        }
        for j in 0..T {
            let at = (t0 + j) * nb + b;
            // SAFETY: input row t0 + j < tokens, block b < nb.
            let (xv, dx, sx) = unsafe {
                (
                    _mm256_loadu_si256(xq.add(at * BLOCK) as *const __m256i),
                    *x.d.get_unchecked(at),
                    *x.sum.get_unchecked(at),
                )
            };
            for i in 0..R {
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(u[i], xv), ones);
                acc[i][j] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d[i] * dx), acc[i][j]);
                side[i][j] += d[i] * sx;
            }
        }
    }
    for i in 0..R {
        for j in 0..T {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, hsum(acc[i][j]) - offset * side[i][j]) };
        }
    }
}

/// Decoding products straight from Q4_K super-blocks (a few input rows, in their per-256 form):
/// each super-block's nibbles are split in registers and multiplied by every input row of the
/// tile; each 32-value sub-block's pair sums are weighted by its 6-bit scale in `vpmaddwd` and
/// the eight sub-blocks summed in i32, so a super-block takes one float step per weight and
/// input row (`d·d_x`). The minimums are one 8-lane integer product of the 6-bit minimums
/// with the input's sums per 32, times `dmin·d_x`, summed on the side.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; the ranges must be within `w` and `x`, and `raw` must
/// be `w`'s super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn gemv_q4_k(
    w: &Packed,
    raw: &[u8],
    x: &SuperInput,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    debug_assert!(raw.len() >= w.rows * w.cols / SUPER * super::pack::Q4_K_BYTES);
    let raw = raw.as_ptr();
    let (nb, ns) = (w.blocks(), w.cols / SUPER);
    decode_tiles!(q4k_tile, rows, tokens, o, (raw, nb, ns, x));
}

/// One Q4_K super-block's `d`, `dmin`, eight 6-bit sub-block scales as 16-bit lanes (the same
/// eight in both 128-bit halves, for an in-lane shuffle to broadcast one) and eight 6-bit
/// minimums as 16-bit lanes. The twelve bytes of 6-bit values are rearranged as whole words
/// (llama.cpp's `kmask` shuffle): a dozen integer operations instead of eight byte-by-byte
/// decodings.
///
/// # Safety
/// `blk` must point at a whole super-block.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q4_k_scales(blk: *const u8) -> (f32, f32, __m256i, __m128i) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    // SAFETY: the super-block's first 16 bytes are readable (caller).
    let (dd, w) = unsafe {
        let p = blk.add(4) as *const u32;
        (
            (blk as *const u32).read_unaligned(),
            [
                p.read_unaligned(),
                p.add(1).read_unaligned(),
                p.add(2).read_unaligned(),
            ],
        )
    };
    // Scales of sub-blocks 0..4 are the low 6 bits of bytes 0..4, of 4..8 the low nibbles of
    // bytes 8..12 with the top 2 bits of bytes 0..4 above them; the minimums likewise from
    // bytes 4..8 and the high nibbles of bytes 8..12.
    let scales = [w[0] & LOW6, (w[2] & LOW4) | (((w[0] >> 6) & LOW2) << 4)];
    let mins = [
        w[1] & LOW6,
        ((w[2] >> 4) & LOW4) | (((w[1] >> 6) & LOW2) << 4),
    ];
    let lanes = |v: [u32; 2]| {
        _mm_cvtepu8_epi16(_mm_cvtsi64_si128(
            (v[0] as u64 | ((v[1] as u64) << 32)) as i64,
        ))
    };
    let sc = lanes(scales);
    let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(dd as i32));
    (
        _mm_cvtss_f32(dd),
        _mm_cvtss_f32(_mm_movehdup_ps(dd)),
        _mm256_set_m128i(sc, sc),
        lanes(mins),
    )
}

/// The 16-bit lane `k` of each 128-bit half broadcast over the half (a `vpshufb` mask).
#[target_feature(enable = "avx2")]
#[inline]
fn lane16(k: usize) -> __m256i {
    let (a, b) = (2 * k as i16, 2 * k as i16 + 1);
    _mm256_set1_epi16(a | (b << 8))
}

fn hsum128(v: __m128) -> f32 {
    // SAFETY: SSE is part of x86-64.
    unsafe {
        let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn q4k_tile<const R: usize, const T: usize>(
    raw: *const u8,
    nb: usize,
    ns: usize,
    x: &SuperInput,
    r0: usize,
    t0: usize,
    o: Out,
) {
    use super::pack::Q4_K_BYTES;
    let xq = x.q.as_ptr();
    let low = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut side = [[_mm_setzero_ps(); T]; R];
    for sb in 0..ns {
        // The next tile's super-blocks, as for the Q5_0 tile (its rows follow these).
        let next = raw.wrapping_add(((r0 + R) * ns + sb * R) * Q4_K_BYTES);
        for l in (0..R * Q4_K_BYTES).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l) as *const i8);
        }
        let mut dx = [0f32; T];
        for j in 0..T {
            // SAFETY: input row t0 + j < tokens, super-block sb < ns.
            dx[j] = unsafe { *x.d.get_unchecked((t0 + j) * ns + sb) };
        }
        let mut blk = [raw; R];
        let mut d = [0f32; R];
        let mut scales = [_mm256_setzero_si256(); R];
        for i in 0..R {
            // SAFETY: row r0 + i < rows, super-block sb < ns; the input row's 8 sums per 32.
            unsafe {
                blk[i] = raw.add(((r0 + i) * ns + sb) * Q4_K_BYTES);
                let (di, dmin, sc, mins) = q4_k_scales(blk[i]);
                d[i] = di;
                scales[i] = sc;
                for j in 0..T {
                    let bs = _mm_loadu_si128(
                        x.bsum.as_ptr().add((t0 + j) * nb + sb * 8) as *const __m128i
                    );
                    side[i][j] = _mm_fmadd_ps(
                        _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs)),
                        _mm_set1_ps(dmin * dx[j]),
                        side[i][j],
                    );
                }
            }
        }
        let mut sum = [[_mm256_setzero_si256(); T]; R];
        for p in 0..4 {
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            let mut sl = [_mm256_setzero_si256(); R];
            let mut sh = [_mm256_setzero_si256(); R];
            for i in 0..R {
                // SAFETY: the super-block's nibbles are bytes 16..144.
                let q = unsafe { _mm256_loadu_si256(blk[i].add(16 + 32 * p) as *const __m256i) };
                lo[i] = _mm256_and_si256(q, low);
                hi[i] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                sl[i] = _mm256_shuffle_epi8(scales[i], lane16(2 * p));
                sh[i] = _mm256_shuffle_epi8(scales[i], lane16(2 * p + 1));
            }
            for j in 0..T {
                // SAFETY: input row t0 + j < tokens, values 64p..64p + 64 of super-block sb.
                let (xl, xh) = unsafe {
                    let at = xq.add(((t0 + j) * ns + sb) * SUPER + 64 * p);
                    (
                        _mm256_loadu_si256(at as *const __m256i),
                        _mm256_loadu_si256(at.add(BLOCK) as *const __m256i),
                    )
                };
                for i in 0..R {
                    let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[i], xl), sl[i]);
                    let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[i], xh), sh[i]);
                    sum[i][j] = _mm256_add_epi32(sum[i][j], _mm256_add_epi32(pl, ph));
                }
            }
        }
        for i in 0..R {
            for j in 0..T {
                acc[i][j] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(sum[i][j]),
                    _mm256_set1_ps(d[i] * dx[j]),
                    acc[i][j],
                );
            }
        }
    }
    for i in 0..R {
        for j in 0..T {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, hsum(acc[i][j]) - hsum128(side[i][j])) };
        }
    }
}

/// Decoding products straight from Q6_K super-blocks (a few input rows, in their per-256
/// form). Each 32-value block is rebuilt in registers as its unsigned 6-bit values `u` (four
/// low bits, two high bits); `vpmaddubsw` of `u` and of 32 with the input row, subtracted,
/// gives `(u − 32)·x` in pairs, and `vpmaddwd` with the two 16-value sub-blocks' scales sums
/// them to 8 lanes of i32 — exactly the file's values, with no minimum to subtract. The
/// eight blocks of a super-block are summed in i32 before one float step (`d·d_x`).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; the ranges must be within `w` and `x`, and `raw` must
/// be `w`'s [`Packed::q6_k`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn gemv_q6_k(
    w: &Packed,
    raw: &[u8],
    x: &SuperInput,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    debug_assert!(raw.len() >= w.rows * w.cols / SUPER * super::pack::Q6_K_BYTES);
    let raw = raw.as_ptr();
    let ns = w.cols / SUPER;
    decode_tiles!(q6k_tile, rows, tokens, o, (raw, ns, x));
}

/// Block `g` (0..4) of the half of a Q6_K super-block whose low nibbles are `ql` (64 bytes)
/// and high bit pairs `qh` (32 bytes): its 32 unsigned 6-bit values.
///
/// # Safety
/// `ql` and `qh` must point at the half's bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q6_k_values(ql: *const u8, qh: *const u8, g: usize) -> __m256i {
    // SAFETY: 32 bytes at ql + 32·(g & 1) and at qh are the half's (caller).
    let (l, h) = unsafe {
        (
            _mm256_loadu_si256(ql.add(32 * (g & 1)) as *const __m256i),
            _mm256_loadu_si256(qh as *const __m256i),
        )
    };
    let m4 = _mm256_set1_epi8(0x0F);
    let low = if g < 2 {
        _mm256_and_si256(l, m4)
    } else {
        _mm256_and_si256(_mm256_srli_epi16(l, 4), m4)
    };
    // Bits 2g, 2g + 1 of qh moved to bits 4, 5 (masked first, so no bit crosses a byte).
    let high = match g {
        0 => _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x03)), 4),
        1 => _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x0C)), 2),
        2 => _mm256_and_si256(h, _mm256_set1_epi8(0x30)),
        _ => _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0xC0u8 as i8)), 2),
    };
    _mm256_or_si256(low, high)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::needless_range_loop)] // register tiles read best as indexed loops
unsafe fn q6k_tile<const R: usize, const T: usize>(
    raw: *const u8,
    ns: usize,
    x: &SuperInput,
    r0: usize,
    t0: usize,
    o: Out,
) {
    use super::pack::Q6_K_BYTES;
    let xq = x.q.as_ptr();
    let offset = _mm256_set1_epi8(32);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for sb in 0..ns {
        // The next tile's super-blocks, as for the Q5_0 tile (its rows follow these).
        let next = raw.wrapping_add(((r0 + R) * ns + sb * R) * Q6_K_BYTES);
        for l in (0..R * Q6_K_BYTES).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(l) as *const i8);
        }
        let mut blk = [raw; R];
        let mut d = [0f32; R];
        let mut scales = [_mm256_setzero_si256(); R];
        for i in 0..R {
            // SAFETY: row r0 + i < rows, super-block sb < ns; the scales are bytes 192..208,
            // d its last two bytes.
            unsafe {
                blk[i] = raw.add(((r0 + i) * ns + sb) * Q6_K_BYTES);
                let bits = (blk[i].add(208) as *const u16).read_unaligned();
                d[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
                // The even sub-blocks' scales (first halves of the 32-value blocks) as 16-bit
                // lanes of the low half, the odd ones' of the high half: block k's pair is
                // then one in-lane broadcast of lane k (two scalar loads and broadcasts per
                // block before).
                let sc = _mm_loadu_si128(blk[i].add(192) as *const __m128i);
                let split = _mm_shuffle_epi8(
                    sc,
                    _mm_set_epi8(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0),
                );
                scales[i] = _mm256_cvtepi8_epi16(split);
            }
        }
        let mut sum = [[_mm256_setzero_si256(); T]; R];
        for k in 0..8 {
            let (h, g) = (k / 4, k % 4);
            let mut u = [_mm256_setzero_si256(); R];
            let mut sc = [_mm256_setzero_si256(); R];
            for i in 0..R {
                // SAFETY: the half's bytes are within the super-block.
                u[i] = unsafe { q6_k_values(blk[i].add(64 * h), blk[i].add(128 + 32 * h), g) };
                sc[i] = _mm256_shuffle_epi8(scales[i], lane16(k));
            }
            for j in 0..T {
                // SAFETY: input row t0 + j < tokens, values 32k..32k + 32 of super-block sb.
                let xv = unsafe {
                    _mm256_loadu_si256(
                        xq.add(((t0 + j) * ns + sb) * SUPER + BLOCK * k) as *const __m256i
                    )
                };
                let shift = _mm256_maddubs_epi16(offset, xv);
                for i in 0..R {
                    let p = _mm256_sub_epi16(_mm256_maddubs_epi16(u[i], xv), shift);
                    sum[i][j] = _mm256_add_epi32(sum[i][j], _mm256_madd_epi16(p, sc[i]));
                }
            }
        }
        for i in 0..R {
            for j in 0..T {
                // SAFETY: input row t0 + j < tokens, super-block sb < ns.
                let dx = unsafe { *x.d.get_unchecked((t0 + j) * ns + sb) };
                acc[i][j] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(sum[i][j]),
                    _mm256_set1_ps(d[i] * dx),
                    acc[i][j],
                );
            }
        }
    }
    for i in 0..R {
        for j in 0..T {
            // SAFETY: in bounds; this thread owns these rows.
            unsafe { o.set(t0 + j, r0 + i, hsum(acc[i][j])) };
        }
    }
}
