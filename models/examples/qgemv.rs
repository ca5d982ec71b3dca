//! Decode-shaped products (one input row, or `ROWS` rows: a batch of sequences decoded in one
//! pass) over more weights than the caches hold: what DRAM bandwidth our kernel reaches, next
//! to candle's Q8_0 kernel, and what a pass for several rows costs against one.
//!
//!   ROWS=8 [COMPACT=1] [DT=q4k|q6k] [UNPACK=1] cargo run --release -p models --example qgemv
//!
//! `UNPACK=1` multiplies the int8 form of weights kept in their blocks (what Q4_K weights were
//! before decoding read their blocks).
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use models::llm::qlinear::{matmul, Input, Kernel, Packed};
use std::time::Instant;

fn main() {
    // COMPACT=1: Q5_0 and Q4_K kept in their blocks (`llm.load.prefill = "int8_compact"`).
    let compact = std::env::var("COMPACT").is_ok_and(|v| v == "1");
    // DT=q4k|q6k: the weights in Q4_K (the 1.5B catalog model's main format) or Q6_K (its
    // output and half of its FFN-down matrices) instead of Q5_0.
    let dtype = match std::env::var("DT").as_deref() {
        Ok("q4k") => GgmlDType::Q4K,
        Ok("q6k") => GgmlDType::Q6K,
        _ => GgmlDType::Q5_0,
    };
    // The default model's FFN shape for Q5_0; the 1.5B model's for the K formats (whose rows
    // must be a multiple of 256 values).
    let (rows, cols, n) = if dtype != GgmlDType::Q5_0 {
        (8960usize, 1536usize, 8usize)
    } else {
        (4864, 896, 24)
    };
    println!("{dtype:?} weights {rows}×{cols} ×{n}, kept in their blocks: {compact}");
    let w = Tensor::randn(0f32, 1.0, (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let packed: Vec<Packed> = (0..n)
        .map(|_| {
            let p = Packed::from_qtensor(&q, compact).unwrap().unwrap();
            match (std::env::var("UNPACK"), p.raw_blocks()) {
                (Ok(_), Some(raw)) => {
                    let mut u = Packed::scratch();
                    p.unpack_rows(raw, 0, p.rows, &mut u);
                    u
                }
                _ => p,
            }
        })
        .collect();
    let batch: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!("{batch} input row(s) per product");
    let x = Tensor::randn(0f32, 1.0, (batch, cols), &Device::Cpu).unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // What one pass reads: Q6_K's blocks alone (its int8 form beside them is for prefill).
    let bytes: usize = packed
        .iter()
        .map(|p| match &p.q6_k {
            Some(b) if batch <= 4 => b.len(),
            _ => p.bytes(),
        })
        .sum();
    for k in Kernel::ALL
        .into_iter()
        .filter(|k| *k != Kernel::Scalar && k.supported())
    {
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..10 {
                for p in &packed {
                    let i = Input::quantize(&xv, cols);
                    std::hint::black_box(matmul(p, &i, k));
                }
            }
            let s = t.elapsed().as_secs_f64() / 10.0;
            println!(
                "ours ({k:?}): {:.2} ms per pass over {} MB, {:.1} GB/s, {:.0} us per product",
                s * 1e3,
                bytes / 1000000,
                bytes as f64 / s / 1e9,
                s / n as f64 * 1e6
            );
        }
    }
    let q8: Vec<QMatMul> = (0..n)
        .map(|_| QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap())
        .collect();
    let qb = rows * cols / 32 * 34 * n;
    for _ in 0..2 {
        let t = Instant::now();
        for _ in 0..10 {
            for m in &q8 {
                std::hint::black_box(m.forward(&x).unwrap());
            }
        }
        let s = t.elapsed().as_secs_f64() / 10.0;
        println!(
            "candle Q8_0: {:.2} ms per pass over {} MB, {:.1} GB/s",
            s * 1e3,
            qb / 1000000,
            qb as f64 / s / 1e9
        );
    }
}
