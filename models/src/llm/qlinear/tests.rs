//! Packing is exact for the formats with one scale per 32 values; every kernel matches a
//! float reference on shapes with tails (rows not a multiple of the tile or of the threads'
//! split, prompt rows past one chunk, a single decode row).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::*;

fn random(n: usize, seed: u64) -> Vec<f32> {
    // A small LCG: reproducible without a dependency, roughly Gaussian by summing four.
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            let mut v = 0.0;
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v += ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            }
            v
        })
        .collect()
}

fn weight(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> QTensor {
    let w = Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).expect("t");
    QTensor::quantize(&w, dtype).expect("quantize")
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den).sqrt()
}

/// `x Wᵀ` in f64 over the given float values.
fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let tokens = x.len() / cols;
    let mut out = vec![0f64; tokens * rows];
    for t in 0..tokens {
        for r in 0..rows {
            out[t * rows + r] = (0..cols)
                .map(|k| w[r * cols + k] as f64 * x[t * cols + k] as f64)
                .sum();
        }
    }
    out
}

const EXACT: [GgmlDType; 3] = [GgmlDType::Q8_0, GgmlDType::Q5_0, GgmlDType::Q4K];

#[test]
fn packing_keeps_the_files_values() {
    for dtype in EXACT {
        let q = weight(19, 512, dtype, 1);
        let p = Packed::from_qtensor(&q, false)
            .expect("pack")
            .expect("packable");
        assert!(p.exact, "{dtype:?}");
        let want = q
            .dequantize(&Device::Cpu)
            .expect("deq")
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec");
        let mut got = p.dequantize();
        if matches!(dtype, GgmlDType::Q5_0 | GgmlDType::Q4K) {
            // Kept in the file's blocks (Q5_0 when asked: 22 bytes per 32 values; Q4_K always:
            // 144 per 256), nothing unpacked beside them, and the same values.
            let c = Packed::from_qtensor(&q, true)
                .expect("pack")
                .expect("packable");
            assert!(c.raw_blocks().is_some() && c.q.is_empty() && c.min.is_none());
            let bytes = if dtype == GgmlDType::Q5_0 {
                19 * 512 / 32 * 22
            } else {
                19 * 512 / 256 * 144
            };
            assert_eq!(c.bytes(), bytes, "{dtype:?}");
            assert_eq!(c.dequantize(), got, "{dtype:?}");
            got = c.dequantize();
        }
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1e-3))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{dtype:?}: {worst}");
    }
    // Q6_K (16-value sub-blocks) goes through 8 bits per 32: close, not exact.
    let q = weight(19, 512, GgmlDType::Q6K, 2);
    let p = Packed::from_qtensor(&q, false)
        .expect("pack")
        .expect("packable");
    assert!(!p.exact);
    let want: Vec<f64> = q
        .dequantize(&Device::Cpu)
        .expect("deq")
        .flatten_all()
        .expect("flat")
        .to_vec1::<f32>()
        .expect("vec")
        .into_iter()
        .map(f64::from)
        .collect();
    let e = rel_err(&p.dequantize(), &want);
    assert!(e < 1e-2, "Q6_K through int8: {e}");
    // Its blocks are kept beside the int8 form for decoding, and read back exactly.
    let raw = p.q6_k.as_deref().expect("Q6_K blocks kept");
    assert_eq!(p.decode_blocks(), Some(raw));
    assert!(p.raw_blocks().is_none(), "prefill runs on the int8 form");
    let exact: Vec<f64> = raw
        .chunks_exact(pack::Q6_K_BYTES)
        .flat_map(|blk| {
            let (mut q, mut sc) = ([0i8; 256], [0i8; 16]);
            let d = pack::unpack_q6_k(blk, &mut q, &mut sc);
            (0..256).map(move |v| (d * sc[v / 16] as f32 * q[v] as f32) as f64)
        })
        .collect();
    assert_eq!(exact, want);
    // A width that is not a multiple of 32 is not packed.
    let odd = QTensor::quantize(
        &Tensor::zeros((4, 40), candle_core::DType::F32, &Device::Cpu).expect("t"),
        GgmlDType::F32,
    )
    .expect("q");
    assert!(Packed::from_qtensor(&odd, true).expect("pack").is_none());
}

fn check_kernel(kernel: Kernel) {
    assert!(
        kernel.supported(),
        "{kernel:?} compiled in but not supported"
    );
    // Q5_0 both unpacked and kept in its blocks (`keep_q5_0`); Q4_K is always kept.
    for (dtype, cols, keep_q5_0) in [
        (GgmlDType::Q8_0, 96, false),
        (GgmlDType::Q5_0, 96, false),
        (GgmlDType::Q5_0, 96, true),
        (GgmlDType::Q5_0, 160, true),
        // Wide enough that prefill unpacks a thread's rows in groups (8 rows of 32768; a
        // thread's rows are 24 with 2 threads, 16 with 4).
        (GgmlDType::Q5_0, 32768, true),
        (GgmlDType::Q4K, 512, false),
        (GgmlDType::Q4K, 256, false),
        // Q4_K rows unpacked in groups for prefill too.
        (GgmlDType::Q4K, 32768, false),
        (GgmlDType::Q6K, 256, false),
        (GgmlDType::Q6K, 768, false),
    ] {
        let rows = 37;
        let p = Packed::from_qtensor(&weight(rows, cols, dtype, 3), keep_q5_0)
            .expect("pack")
            .expect("packable");
        assert_eq!(p.q5_0.is_some(), keep_q5_0);
        assert_eq!(p.q4_k.is_some(), dtype == GgmlDType::Q4K);
        // Both of the kernels' paths: signed weights (Q8_0) and unsigned ones (the rest).
        assert_eq!(p.unsigned, dtype != GgmlDType::Q8_0, "{dtype:?}");
        let wf = p.dequantize();
        // Q6_K decodes from the file's exact values, prefill from its int8 form.
        let exact: Vec<f32> = weight(rows, cols, dtype, 3)
            .dequantize(&Device::Cpu)
            .expect("deq")
            .flatten_all()
            .expect("flat")
            .to_vec1()
            .expect("vec");
        // Weights in their blocks go straight from them up to DIRECT_TOKENS input rows (1, 3)
        // and through unpacked groups of rows above (5, 13, 67). Prefill (above 8 rows: 13,
        // and 67's first 64) runs AVX2's interleaved kernel on the rows' whole groups of 8,
        // with tiles of 4 input rows and one of 1 (13) and 5 rows left to the row-major tiles.
        for tokens in [1, 3, 5, 13, 67] {
            let xf = random(tokens * cols, 4 + tokens as u64);
            let x = Input::quantize(&xf, cols);
            let got = matmul(&p, &x, kernel);
            let wf = if p.q6_k.is_some() && tokens <= DIRECT_TOKENS {
                &exact
            } else {
                &wf
            };
            // K-format blocks read directly multiply the input's per-256 form.
            let k_direct =
                tokens <= DIRECT_TOKENS && matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K);
            assert_eq!(x.k.is_some(), tokens <= DIRECT_TOKENS && cols % SUPER == 0);
            let xq = match &x.k {
                Some(k) if k_direct => k.dequantize(),
                _ => x.dequantize(),
            };
            // Against the same int8 input in f64: the kernel's arithmetic alone.
            let e = rel_err(&got, &reference(wf, &xq, rows, cols));
            assert!(e < 1e-5, "{kernel:?} {dtype:?} tokens {tokens}: {e}");
            // Against the float input: what int8 activations cost.
            let e = rel_err(&got, &reference(wf, &xf, rows, cols));
            assert!(
                e < 2e-2,
                "{kernel:?} {dtype:?} tokens {tokens} vs f32 input: {e}"
            );
        }
    }
}

#[test]
fn scalar_kernel_matches_the_reference() {
    check_kernel(Kernel::Scalar);
}

#[test]
#[cfg_attr(
    not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )),
    ignore = "this build's CPU has no AVX2+FMA"
)]
fn avx2_kernel_matches_the_reference() {
    check_kernel(Kernel::Avx2);
}

/// Ignored where the build's CPU lacks AVX-512 VNNI (the build targets the building CPU);
/// `cargo test -- --include-ignored` on such a CPU fails on the first assertion instead of
/// passing vacuously.
#[test]
#[cfg_attr(
    not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    )),
    ignore = "this build's CPU has no AVX-512 VNNI"
)]
fn avx512_vnni_kernel_matches_the_reference() {
    check_kernel(Kernel::Avx512Vnni);
}

/// Weights at the largest value of their int8 form times inputs of ±127 everywhere: the
/// products a kernel sums in 16 bits (`vpmaddubsw` pairs, several of them for the small
/// formats in AVX2's prefill kernel) at their largest, which a sum one group too long
/// saturates.
#[test]
fn the_largest_values_do_not_overflow_the_kernels_sums() {
    let (rows, cols) = (16, 256);
    for dtype in [
        GgmlDType::Q8_0,
        GgmlDType::Q5_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ] {
        // One value of each 32 at −1, the others at +1: every format puts the +1s at its
        // largest integer (Q5_0 scales by the first largest magnitude, −1 → 0 and +1 → 31).
        let wf: Vec<f32> = (0..rows * cols)
            .map(|i| if i % BLOCK == 0 { -1.0 } else { 1.0 })
            .collect();
        let wt = Tensor::from_vec(wf, (rows, cols), &Device::Cpu).expect("t");
        let p = Packed::from_qtensor(&QTensor::quantize(&wt, dtype).expect("q"), false)
            .expect("pack")
            .expect("packable");
        let mut int8 = Packed::scratch();
        let q = match p.raw_blocks() {
            Some(raw) => {
                p.unpack_rows(raw, 0, rows, &mut int8);
                &int8.q
            }
            None => &p.q,
        };
        let largest = q.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        assert!(
            largest + 1 >= p.max_q,
            "{dtype:?}: largest value {largest}, bound {}",
            p.max_q
        );
        assert!(largest <= p.max_q, "{dtype:?}: {largest} > {}", p.max_q);
        let wd = p.dequantize();
        for sign in [1.0f32, -1.0] {
            for tokens in [1, 16] {
                let x = Input::quantize(&vec![sign; tokens * cols], cols);
                for kernel in Kernel::ALL.into_iter().filter(|k| k.supported()) {
                    let got = matmul(&p, &x, kernel);
                    let xq = match &x.k {
                        Some(k) if p.q4_k.is_some() || p.q6_k.is_some() => k.dequantize(),
                        _ => x.dequantize(),
                    };
                    let wd = match (&p.q6_k, &x.k) {
                        (Some(_), Some(_)) => QTensor::quantize(&wt, dtype)
                            .and_then(|q| q.dequantize(&Device::Cpu))
                            .and_then(|t| t.flatten_all())
                            .and_then(|t| t.to_vec1())
                            .expect("exact Q6_K values"),
                        _ => wd.clone(),
                    };
                    let e = rel_err(&got, &reference(&wd, &xq, rows, cols));
                    assert!(e < 1e-5, "{kernel:?} {dtype:?} x = {sign} × {tokens}: {e}");
                }
            }
        }
    }
}

#[test]
fn kernels_are_parsed_and_an_unsupported_one_is_never_selected() {
    assert_eq!(Kernel::parse(" AVX2 "), Some(Kernel::Avx2));
    assert_eq!(Kernel::parse("scalar"), Some(Kernel::Scalar));
    assert_eq!(Kernel::parse("vnni"), Some(Kernel::Avx512Vnni));
    assert_eq!(Kernel::parse("avx512vnni"), Some(Kernel::Avx512Vnni));
    assert_eq!(Kernel::parse("neon"), None);
    assert!(Kernel::selected().supported());
    // The fastest kernel the CPU runs is chosen when none is forced.
    if std::env::var("LEYE_KERNEL").is_err() {
        let best = Kernel::ALL.into_iter().rev().find(|k| k.supported());
        assert_eq!(Some(Kernel::selected()), best);
    }
}
