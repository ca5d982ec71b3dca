//! The portable kernel: one output at a time, integer dot products per block.

use std::ops::Range;

use super::pack::{unpack_q5_0, Q5_0_BYTES};
use super::{Input, Out, Packed, BLOCK};

pub(super) fn gemm(w: &Packed, x: &Input, rows: Range<usize>, tokens: Range<usize>, o: Out) {
    let nb = w.blocks();
    for t in tokens {
        for r in rows.clone() {
            let mut acc = 0f32;
            for b in 0..nb {
                let wb = &w.q[(r * nb + b) * BLOCK..(r * nb + b + 1) * BLOCK];
                let xb = &x.q[(t * nb + b) * BLOCK..(t * nb + b + 1) * BLOCK];
                let dot: i32 = wb.iter().zip(xb).map(|(&a, &b)| a as i32 * b as i32).sum();
                acc += w.scale[b * w.rows + r] * x.d[t * nb + b] * dot as f32;
            }
            // SAFETY: in bounds; this thread owns row r.
            unsafe { o.set(t, r, acc) };
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
    let mut acc = vec![0f32; tokens.len()];
    for r in rows {
        acc.fill(0.0);
        for b in 0..nb {
            let at = (r * nb + b) * Q5_0_BYTES;
            let d = unpack_q5_0(&raw[at..at + Q5_0_BYTES], &mut u);
            for (a, t) in acc.iter_mut().zip(tokens.clone()) {
                let i = t * nb + b;
                let xb = &x.q[i * BLOCK..(i + 1) * BLOCK];
                let dot: i32 = u.iter().zip(xb).map(|(&a, &b)| a as i32 * b as i32).sum();
                *a += d * (x.d[i] * dot as f32 - w.offset * x.sum[i]);
            }
        }
        for (a, t) in acc.iter().zip(tokens.clone()) {
            // SAFETY: in bounds; this thread owns row r.
            unsafe { o.set(t, r, *a) };
        }
    }
}
