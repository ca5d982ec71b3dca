//! Our own int8 matrix products for the quantized weights of a GGUF, on the CPU.
//!
//! Weights are packed once at load into int8 blocks of 32 values with a scale and a minimum —
//! exactly the file's values for Q8_0 and Q5_0 ([`pack`]). Q4_K weights stay in the file's
//! 144-byte super-blocks (0.45 of the bytes of their int8 form), and Q5_0 weights may too, in
//! their 22-byte blocks (0.61 of the bytes; `llm.load.prefill = "int8_compact"`): read
//! directly while decoding a few rows and unpacked to int8 a few hundred KiB of rows at a
//! time for prefill. Q6_K weights keep the file's 210-byte super-blocks beside their int8 form
//! (which is not exact: Q6_K scales 16 values at a time): decoding reads the blocks, prefill
//! the int8 form. Each input row
//! is quantized once per product to int8 blocks of 32 (`x ≈ d·q`, as llama.cpp does for its
//! Q8_0 dot products), so one output is
//!
//! `y[t][r] = Σ_b scale[b,r]·d[t,b]·dot(qw[r,b], qx[t,b]) − Σ_b min[b,r]·d[t,b]·Σqx[t,b]`
//!
//! with integer dot products. Decoding from Q4_K and Q6_K super-blocks takes the input rows
//! quantized a second time with one scale per 256 values ([`SuperInput`], llama.cpp's Q8_K),
//! so a super-block's eight sub-block products are summed in integers before one float step.
//! Prefill multiplies a tile of weight rows by a tile of prompt
//! rows in registers, so each weight block is read once per tile instead of once per row
//! (candle's quantized matmul reads every weight block again for every prompt row); decoding
//! (one row) runs the same kernel on one token, or for Q5_0 a kernel that unpacks each block
//! in registers. The kernel is chosen at run time from the CPU's
//! features — AVX-512 VNNI (`vpdpbusd`: 64 u8×i8 products summed in fours, two blocks per
//! instruction), AVX2 (`vpmaddubsw` on unsigned weights, or on |w| and sign-adjusted x) or
//! portable scalar code — so a generic build runs the same kernels as a `target-cpu=native`
//! one. `LEYE_KERNEL=scalar|avx2|avx512vnni` forces one. The threads of rayon's pool split the weight
//! rows, one join per product; small products stay on the calling thread.

pub mod pack;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use std::sync::OnceLock;

pub use pack::{Packed, BLOCK};

/// An integer kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C for the scales of Q5_0 blocks).
    Avx2,
    /// x86-64 AVX-512 F + BW + VNNI (`vpdpbusd`).
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel this build knows, slowest first.
    pub const ALL: [Kernel; 3] = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512Vnni];

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512Vnni => false,
        }
    }

    /// The kernel used: `LEYE_KERNEL` when set to a supported one, else the fastest supported.
    pub fn selected() -> Kernel {
        static K: OnceLock<Kernel> = OnceLock::new();
        *K.get_or_init(|| {
            let forced = std::env::var("LEYE_KERNEL")
                .ok()
                .and_then(|v| Kernel::parse(&v));
            match forced {
                Some(k) if k.supported() => k,
                Some(k) => {
                    tracing::warn!(kernel = ?k, "LEYE_KERNEL names a kernel this CPU cannot run");
                    Kernel::best()
                }
                None => Kernel::best(),
            }
        })
    }

    fn best() -> Kernel {
        Kernel::ALL
            .into_iter()
            .rev()
            .find(|k| k.supported())
            .unwrap_or(Kernel::Scalar)
    }

    /// `scalar`, `avx2` or `avx512vnni` (also `vnni`).
    pub fn parse(s: &str) -> Option<Kernel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Kernel::Scalar),
            "avx2" => Some(Kernel::Avx2),
            "avx512vnni" | "avx512" | "vnni" => Some(Kernel::Avx512Vnni),
            _ => None,
        }
    }
}

/// Input rows quantized to int8 blocks of 32: `x ≈ d·q`.
#[derive(Debug, Clone)]
pub struct Input {
    /// Rows (prompt tokens).
    pub tokens: usize,
    /// Values per row (a multiple of 32).
    pub cols: usize,
    /// `tokens × cols` values.
    pub q: Vec<i8>,
    /// `tokens × cols/32` scales.
    pub d: Vec<f32>,
    /// `tokens × cols/32` block sums `d·Σq` (for the weights' minimums).
    pub sum: Vec<f32>,
    /// The same rows quantized with one scale per 256 values, for decoding straight from
    /// Q4_K and Q6_K super-blocks; present for up to [`DIRECT_TOKENS`] rows whose width is a
    /// multiple of 256.
    pub k: Option<SuperInput>,
}

/// Input rows quantized to int8 with one scale per 256 values (llama.cpp's Q8_K): `x ≈ d·q`.
/// The K formats scale their weights per 16 or 32 values inside a 256-value super-block; with
/// one input scale per super-block, a kernel sums the eight sub-blocks' integer products,
/// each times its small integer scale, and takes one float step per super-block — where an
/// input scale per 32 values costs a float conversion and multiply-add per 32 values and
/// weight row, which made decoding from Q4_K blocks bound by arithmetic, not by reading the
/// weights. Each value is rounded to a step of `max|x|/127` over 256 values instead of 32: the
/// precision llama.cpp's K-format products have.
#[derive(Debug, Clone)]
pub struct SuperInput {
    /// `tokens × cols` values.
    pub q: Vec<i8>,
    /// `tokens × cols/256` scales.
    pub d: Vec<f32>,
    /// `tokens × cols/32` sums `Σq` of each 32 values (for the Q4_K minimums), at most
    /// 32·127, so they fit 16 bits.
    pub bsum: Vec<i16>,
}

/// Values per super-block of the K formats (and per scale of a [`SuperInput`]).
pub const SUPER: usize = 256;

impl SuperInput {
    fn quantize(x: &[f32]) -> SuperInput {
        let mut q = vec![0i8; x.len()];
        let mut d = vec![0f32; x.len() / SUPER];
        pack::quantize_blocks(x, SUPER, &mut q, &mut d);
        let bsum = q
            .chunks_exact(BLOCK)
            .map(|b| b.iter().map(|&v| v as i16).sum())
            .collect();
        SuperInput { q, d, bsum }
    }

    /// The quantized values as floats (tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        pack::dequantize_blocks(&self.q, &self.d, SUPER)
    }
}

impl Input {
    /// Quantizes `x` (`tokens × cols`, row after row).
    pub fn quantize(x: &[f32], cols: usize) -> Input {
        debug_assert!(cols.is_multiple_of(BLOCK) && x.len().is_multiple_of(cols));
        let tokens = x.len() / cols;
        let nb = x.len() / BLOCK;
        let mut q = vec![0i8; x.len()];
        let mut d = vec![0f32; nb];
        pack::quantize_rows(x, &mut q, &mut d);
        let sum = q
            .chunks_exact(BLOCK)
            .zip(&d)
            .map(|(b, d)| d * b.iter().map(|&v| v as i32).sum::<i32>() as f32)
            .collect();
        // Decoding reads K-format weights straight from their super-blocks (see `matmul`).
        let k = (tokens <= DIRECT_TOKENS && cols.is_multiple_of(SUPER))
            .then(|| SuperInput::quantize(x));
        Input {
            tokens,
            cols,
            q,
            d,
            sum,
            k,
        }
    }

    /// The quantized values as floats (tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        pack::dequantize_blocks(&self.q, &self.d, BLOCK)
    }
}

/// Where a kernel writes: `out[t * ld + r]`. Threads write disjoint row ranges.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut f32,
    ld: usize,
}

// SAFETY: every thread writes a disjoint set of columns (weight rows) of the output, which
// outlives the scope the threads run in.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The same buffer with row `r` as row 0 (for a product over a sub-matrix of rows).
    fn starting_at_row(self, r: usize) -> Out {
        Out {
            ptr: self.ptr.wrapping_add(r),
            ld: self.ld,
        }
    }

    /// # Safety
    /// `t * ld + r` must be in the buffer and written by this thread only.
    #[inline(always)]
    pub(crate) unsafe fn set(&self, t: usize, r: usize, v: f32) {
        unsafe { *self.at(t, r) = v };
    }

    /// Where output `r` of input row `t` goes (for a kernel storing several at once).
    ///
    /// # Safety
    /// As for [`Out::set`], for every output written through the pointer.
    #[inline(always)]
    pub(crate) unsafe fn at(&self, t: usize, r: usize) -> *mut f32 {
        unsafe { self.ptr.add(t * self.ld + r) }
    }
}

/// Prompt rows processed together while a few weight rows stay in L1; the rows' activations
/// (64 × 4864 bytes for the widest input of the default model) stay in L2.
const TOKEN_CHUNK: usize = 64;

/// Multiply-adds below which a product runs on one thread (measured on the default model's
/// decode: 128×896 and 896×896 weights run faster alone).
const SERIAL_BELOW: usize = 1 << 20;

/// Input rows up to which weights kept in their blocks are multiplied straight from them
/// (decoding, a batch of a few sequences); above, groups of rows are unpacked to int8 once and
/// the register-tiled kernels run over all the input rows.
const DIRECT_TOKENS: usize = 4;

/// Rows are split between threads and unpacked in multiples of this (the tiles' rows).
const ROW_STEP: usize = 8;

/// Bytes of Q5_0 weight rows unpacked at a time for prefill (at least one group of rows): they
/// stay in L2 while the prompt rows pass in chunks, as the packed rows of the other formats
/// do. Fewer bytes pass the prompt rows more often (measured: 32 rows of 896 ran the default
/// model's 512-token prefill ~10% slower than unpacked weights).
const UNPACK_BYTES: usize = 256 << 10;

thread_local! {
    /// Each thread's unpacked rows, kept between products (256 KiB would otherwise be mapped
    /// and unmapped, page faults included, for every product).
    static UNPACKED: std::cell::RefCell<Packed> = std::cell::RefCell::new(Packed::scratch());
    /// Each thread's rows interleaved for the AVX2 prefill kernel (its share of the widest
    /// int8 product — 2.2 MB for the default model on 2 threads, 6.9 MB for the 1.5B model's
    /// Q6_K FFN-down; groups of unpacked Q4_K rows take 256 KiB), kept between products likewise.
    static INTERLEAVED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `x Wᵀ`: `[tokens, rows]`, row after row.
pub fn matmul(w: &Packed, x: &Input, kernel: Kernel) -> Vec<f32> {
    assert_eq!(w.cols, x.cols, "matmul: widths differ");
    let mut out = vec![0f32; x.tokens * w.rows];
    let o = Out {
        ptr: out.as_mut_ptr(),
        ld: w.rows,
    };
    // Rows split into one contiguous range per thread, in multiples of 8 (the tiles' rows).
    // A small product (the k/v projections while decoding) stays on the calling thread:
    // waking a pool thread costs more than its share of the work.
    let work = w.rows * w.cols * x.tokens;
    let threads = if work < SERIAL_BELOW {
        1
    } else {
        rayon::current_num_threads().max(1)
    };
    let per = w.rows.div_ceil(threads).div_ceil(ROW_STEP) * ROW_STEP;
    let ranges: Vec<(usize, usize)> = (0..w.rows)
        .step_by(per.max(1))
        .map(|s| (s, (s + per).min(w.rows)))
        .collect();
    // K-format blocks are read directly with the input's per-256 form (always there for so
    // few rows of a width the K formats allow).
    let few = x.tokens <= DIRECT_TOKENS;
    let run = |(r0, r1): (usize, usize)| match (w.decode_blocks(), w.raw_blocks(), &x.k) {
        (Some(raw), _, _) if few && w.q5_0.is_some() => direct_q5_0(w, raw, x, r0..r1, kernel, o),
        (Some(raw), _, Some(k)) if few => direct_k(w, raw, k, r0..r1, kernel, o),
        (_, Some(raw), _) => UNPACKED.with_borrow_mut(|rows| {
            let step = (UNPACK_BYTES / w.cols / ROW_STEP).max(1) * ROW_STEP;
            for g in (r0..r1).step_by(step) {
                let n = (r1 - g).min(step);
                unpack(w, raw, g, n, rows, kernel);
                int8(rows, x, 0..n, kernel, o.starting_at_row(g));
            }
        }),
        _ => int8(w, x, r0..r1, kernel, o),
    };
    if ranges.len() == 1 {
        run(ranges[0]);
    } else {
        let run = &run;
        rayon::scope(|s| {
            for &r in &ranges {
                s.spawn(move |_| run(r));
            }
        });
    }
    out
}

/// Rows `rows` of an int8 matrix times every input row, into `o`.
fn int8(w: &Packed, x: &Input, rows: std::ops::Range<usize>, kernel: Kernel, o: Out) {
    // AVX2 prefill runs on the rows' whole groups of 8, interleaved once for every chunk of
    // prompt rows (`avx2::gemm_octets`); the rest of the rows and short chunks (decoding)
    // take the row-major tiles.
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 && kernel.supported() && x.tokens > avx2::FOLD_TOKENS {
        let whole = rows.start + rows.len() / avx2::OCTET * avx2::OCTET;
        if whole > rows.start {
            return INTERLEAVED.with_borrow_mut(|il| {
                // SAFETY: AVX2 is present (checked above); the rows are within `w`.
                unsafe { avx2::interleave(w, rows.start..whole, il) };
                int8_chunks(w, x, rows, kernel, o, Some((il, whole)))
            });
        }
    }
    int8_chunks(w, x, rows, kernel, o, None)
}

/// [`int8`] over chunks of [`TOKEN_CHUNK`] input rows; with `octets`, the rows below its end
/// are interleaved in its buffer (from `rows.start` on) for the AVX2 prefill kernel.
fn int8_chunks(
    w: &Packed,
    x: &Input,
    rows: std::ops::Range<usize>,
    kernel: Kernel,
    o: Out,
    octets: Option<(&[u8], usize)>,
) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = octets;
    for t0 in (0..x.tokens).step_by(TOKEN_CHUNK) {
        let t1 = (t0 + TOKEN_CHUNK).min(x.tokens);
        let (mut r0, r1) = (rows.start, rows.end);
        #[cfg(target_arch = "x86_64")]
        if let Some((il, whole)) = octets {
            if t1 - t0 > avx2::FOLD_TOKENS {
                // SAFETY: AVX2 and FMA are present (the caller checked); `il` holds rows
                // r0..whole; the ranges are in bounds. It subtracts the minimums itself.
                unsafe { avx2::gemm_octets(w, il, r0, x, r0..whole, t0..t1, o) };
                r0 = whole;
                if r0 == r1 {
                    continue;
                }
            }
        }
        // Whether the kernel subtracted the minimums itself (AVX2 while decoding).
        let folded = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if kernel.supported() => {
                // SAFETY: AVX2 and FMA are present (checked above); ranges are in bounds.
                unsafe { avx2::gemm(w, x, r0..r1, t0..t1, o) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni if kernel.supported() => {
                // SAFETY: AVX-512 F/BW/VNNI are present (checked above); ranges in bounds.
                unsafe { avx512::gemm(w, x, r0..r1, t0..t1, o) };
                if !w.unsigned {
                    // It took signed weights as `q + 128`.
                    minimums(w, &w.scale, avx512::SIGNED_OFFSET, x, r0..r1, t0..t1, o);
                }
                false
            }
            _ => {
                scalar::gemm(w, x, r0..r1, t0..t1, o);
                false
            }
        };
        if folded {
            continue;
        }
        if let Some((min, factor)) = w.minimum_terms() {
            minimums(w, min, factor, x, r0..r1, t0..t1, o);
        }
    }
}

/// Rows of a matrix kept in the file's Q5_0 blocks times a few input rows, read from the
/// blocks. The AVX2 kernels also serve AVX-512 machines (they all have AVX2): a decoding pass
/// is bound by reading the weights, not by the multiply-adds.
fn direct_q5_0(
    w: &Packed,
    raw: &[u8],
    x: &Input,
    rows: std::ops::Range<usize>,
    kernel: Kernel,
    o: Out,
) {
    let tokens = 0..x.tokens;
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Scalar && Kernel::Avx2.supported() {
        // SAFETY: AVX2, FMA and F16C are present (checked); ranges are in bounds.
        unsafe { avx2::gemv_q5_0(w, raw, x, rows, tokens, o) };
        return;
    }
    let _ = kernel;
    scalar::gemv_q5_0(w, raw, x, rows, tokens, o)
}

/// Rows of a matrix kept in Q4_K or Q6_K super-blocks ([`Packed::decode_blocks`]) times a few
/// input rows in their per-256 form `k`, read from the blocks (AVX2 on AVX-512 machines too,
/// as for [`direct_q5_0`]).
fn direct_k(
    w: &Packed,
    raw: &[u8],
    k: &SuperInput,
    rows: std::ops::Range<usize>,
    kernel: Kernel,
    o: Out,
) {
    let tokens = 0..k.d.len() / (w.cols / SUPER);
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Scalar && Kernel::Avx2.supported() {
        // SAFETY: AVX2, FMA and F16C are present (checked); ranges are in bounds.
        unsafe {
            if w.q4_k.is_some() {
                avx2::gemv_q4_k(w, raw, k, rows, tokens, o)
            } else {
                avx2::gemv_q6_k(w, raw, k, rows, tokens, o)
            }
        };
        return;
    }
    let _ = kernel;
    if w.q4_k.is_some() {
        scalar::gemv_q4_k(w, raw, k, rows, tokens, o)
    } else {
        scalar::gemv_q6_k(w, raw, k, rows, tokens, o)
    }
}

/// Rows `r0..r0 + n` of `w`'s kept blocks `raw` unpacked into `into` (Q5_0 with SIMD where
/// the CPU has AVX2).
fn unpack(w: &Packed, raw: &[u8], r0: usize, n: usize, into: &mut Packed, kernel: Kernel) {
    #[cfg(target_arch = "x86_64")]
    if w.q5_0.is_some() && kernel != Kernel::Scalar && Kernel::Avx2.supported() {
        w.shape_unpacked(n, into);
        // SAFETY: AVX2, FMA and F16C are present (checked); `into` was sized for n rows and
        // rows r0..r0 + n are in `raw`.
        unsafe { avx2::unpack_q5_0_rows(raw, w.blocks(), r0, n, &mut into.q, &mut into.scale) };
        return;
    }
    let _ = kernel;
    w.unpack_rows(raw, r0, n, into);
}

/// Walks `rows × tokens` in tiles of at most `rt` weight rows by `tt` input rows, row-tile
/// major (a few weight rows stay in L1 while the input rows pass), calling
/// `f(row, token, rows_in_tile, tokens_in_tile)`. Inlined into each kernel so the tiles it
/// calls compile with the kernel's target features.
#[inline(always)]
pub(crate) fn for_each_tile(
    rows: std::ops::Range<usize>,
    tokens: std::ops::Range<usize>,
    rt: usize,
    tt: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let mut r = rows.start;
    while r < rows.end {
        let rn = (rows.end - r).min(rt);
        let mut t = tokens.start;
        while t < tokens.end {
            let tn = (tokens.end - t).min(tt);
            f(r, t, rn, tn);
            t += tn;
        }
        r += rn;
    }
}

/// Subtracts `Σ_b min[b,r]·d[t,b]·Σq[t,b]` (the minimums of Q4_K, Q5_0's offset of 16, the
/// re-quantized formats') from this thread's rows of the output: per prompt row and block,
/// one scaled update of a contiguous run of outputs. (The AVX2 kernel does this inside its
/// decoding tiles, where a second pass over the minimums would read them from memory again.)
fn minimums(
    w: &Packed,
    min: &[f32],
    factor: f32,
    x: &Input,
    rows: std::ops::Range<usize>,
    tokens: std::ops::Range<usize>,
    o: Out,
) {
    let nb = w.blocks();
    for t in tokens {
        // SAFETY: the row range is this thread's and in bounds of output row t.
        let out =
            unsafe { std::slice::from_raw_parts_mut(o.ptr.add(t * o.ld + rows.start), rows.len()) };
        for b in 0..nb {
            let s = factor * x.sum[t * nb + b];
            let m = &min[b * w.rows + rows.start..b * w.rows + rows.end];
            for (y, m) in out.iter_mut().zip(m) {
                *y -= s * m;
            }
        }
    }
}

#[cfg(test)]
mod tests;
