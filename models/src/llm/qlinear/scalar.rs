//! The portable kernel: one output at a time, integer dot products per block.

use std::ops::Range;

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
