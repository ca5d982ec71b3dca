//! The portable kernel: one output at a time, integer dot products per block.

use std::ops::Range;

use super::pack::{unpack_q4_k, unpack_q5_0, unpack_q6_k, Q4_K_BYTES, Q5_0_BYTES, Q6_K_BYTES};
use super::{Input, Out, Packed, SuperInput, BLOCK, SUPER};

pub(super) fn gemm(w: &Packed, x: &Input, rows: Range<usize>, tokens: Range<usize>, o: Out) {
    let nb = w.blocks();
    for t in tokens {
        for r in rows.clone() {
            let mut acc = 0f32;
            for b in 0..nb {
                let wb = &w.q[(r * nb + b) * BLOCK..(r * nb + b + 1) * BLOCK];
                let xb = &x.q[(t * nb + b) * BLOCK..(t * nb + b + 1) * BLOCK];
                acc += w.scale[b * w.rows + r] * x.d[t * nb + b] * dot(wb, xb) as f32;
            }
            // SAFETY: in bounds; this thread owns row r.
            unsafe { o.set(t, r, acc) };
        }
    }
}

/// The integer dot product of two runs of bytes.
fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Calls `f(row, sums)` for each weight row with one zeroed sum per input row of `tokens`,
/// and writes the sums to the row's outputs: the walk of every kernel that reads the file's
/// blocks.
fn each_row(
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
    mut f: impl FnMut(usize, &mut [f32]),
) {
    let mut acc = vec![0f32; tokens.len()];
    for r in rows {
        acc.fill(0.0);
        f(r, &mut acc);
        for (a, t) in acc.iter().zip(tokens.clone()) {
            // SAFETY: in bounds; this thread owns row r.
            unsafe { o.set(t, r, *a) };
        }
    }
}

/// Products straight from Q5_0 blocks (`raw`, the blocks of `w`): each block unpacked once per
/// weight row, the offset of 16 subtracted per block.
pub(super) fn gemv_q5_0(
    w: &Packed,
    raw: &[u8],
    x: &Input,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    let nb = w.blocks();
    let mut u = [0i8; BLOCK];
    each_row(rows, tokens.clone(), o, |r, acc| {
        for b in 0..nb {
            let at = (r * nb + b) * Q5_0_BYTES;
            let d = unpack_q5_0(&raw[at..at + Q5_0_BYTES], &mut u);
            for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                let i = t * nb + b;
                let xb = &x.q[i * BLOCK..(i + 1) * BLOCK];
                *a += d * (x.d[i] * dot(&u, xb) as f32 - w.offset * x.sum[i]);
            }
        }
    });
}

/// Products straight from Q4_K super-blocks (`raw`, the blocks of `w`) with the input in its
/// per-256 form: each super-block unpacked once per weight row, its sub-blocks' minimums
/// subtracted with the input's sums per 32 values, one input scale per super-block.
pub(super) fn gemv_q4_k(
    w: &Packed,
    raw: &[u8],
    x: &SuperInput,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    let (nb, ns) = (w.blocks(), w.cols / SUPER);
    let mut u = [0i8; SUPER];
    let (mut scale, mut min) = ([0f32; 8], [0f32; 8]);
    each_row(rows, tokens.clone(), o, |r, acc| {
        for sb in 0..ns {
            let at = (r * ns + sb) * Q4_K_BYTES;
            unpack_q4_k(&raw[at..at + Q4_K_BYTES], &mut u, &mut scale, &mut min);
            for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                let s = t * ns + sb;
                let xs = &x.q[s * SUPER..(s + 1) * SUPER];
                let mut sum = 0f32;
                for k in 0..8 {
                    let (ub, xb) = (&u[k * BLOCK..(k + 1) * BLOCK], &xs[k * BLOCK..]);
                    sum +=
                        scale[k] * dot(ub, xb) as f32 - min[k] * x.bsum[t * nb + sb * 8 + k] as f32;
                }
                *a += x.d[s] * sum;
            }
        }
    });
}

/// Products straight from Q6_K super-blocks (`raw`, `w`'s [`Packed::q6_k`]) with the input in
/// its per-256 form: each super-block unpacked once per weight row, its sixteen sub-blocks'
/// integer dot products times their scales summed in integers, one float step per
/// super-block.
pub(super) fn gemv_q6_k(
    w: &Packed,
    raw: &[u8],
    x: &SuperInput,
    rows: Range<usize>,
    tokens: Range<usize>,
    o: Out,
) {
    let ns = w.cols / SUPER;
    let mut u = [0i8; SUPER];
    let mut sc = [0i8; 16];
    each_row(rows, tokens.clone(), o, |r, acc| {
        for sb in 0..ns {
            let at = (r * ns + sb) * Q6_K_BYTES;
            let d = unpack_q6_k(&raw[at..at + Q6_K_BYTES], &mut u, &mut sc);
            for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                let s = t * ns + sb;
                let xs = &x.q[s * SUPER..(s + 1) * SUPER];
                let sum: i32 = (0..16)
                    .map(|k| sc[k] as i32 * dot(&u[16 * k..16 * (k + 1)], &xs[16 * k..]))
                    .sum();
                *a += d * x.d[s] * sum as f32;
            }
        }
    });
}
