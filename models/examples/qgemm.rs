//! Times one product of our int8 kernels against candle's on an FFN-sized shape (4864×1024),
//! with the weights in cache: the kernels' arithmetic speed.
//!
//!   cargo run --release -p models --example qgemm -- [PROMPT_ROWS]   # DT=q8|q5|q4k (q5), COMPACT=1
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use models::llm::qlinear::{matmul, Input, Kernel, Packed};
use std::time::Instant;

fn main() {
    let (rows, cols) = (4864usize, 1024usize);
    // COMPACT=1: Q5_0 and Q4_K kept in their blocks (`llm.load.prefill = "int8_compact"`).
    let compact = std::env::var("COMPACT").is_ok_and(|v| v == "1");
    let args: Vec<String> = std::env::args().collect();
    let tokens: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(512);
    let w = Tensor::randn(0f32, 1.0, (rows, cols), &Device::Cpu).unwrap();
    let dt = match std::env::var("DT").as_deref() {
        Ok("q8") => GgmlDType::Q8_0,
        Ok("q4k") => GgmlDType::Q4K,
        _ => GgmlDType::Q5_0,
    };
    let q = QTensor::quantize(&w, dt).unwrap();
    let p = Packed::from_qtensor(&q, compact).unwrap().unwrap();
    let x = Tensor::randn(0f32, 1.0, (tokens, cols), &Device::Cpu).unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let macs = (rows * cols * tokens) as f64;
    for k in Kernel::ALL.into_iter().filter(|k| k.supported()) {
        if k == Kernel::Scalar && tokens > 64 {
            continue;
        }
        let reps = if tokens == 1 { 200 } else { 5 };
        let t = Instant::now();
        for _ in 0..reps {
            let i = Input::quantize(&xv, cols);
            std::hint::black_box(matmul(&p, &i, k));
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("{k:?}: {:.2} ms, {:.1} GMAC/s", s * 1e3, macs / s / 1e9);
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(Input::quantize(&xv, cols));
        }
        println!(
            "  quantize input: {:.3} ms",
            t.elapsed().as_secs_f64() / reps as f64 * 1e3
        );
    }
    let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
    let mm = QMatMul::from_qtensor(q8).unwrap();
    let reps = if tokens == 1 { 200 } else { 3 };
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(mm.forward(&x).unwrap());
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "candle Q8_0: {:.2} ms, {:.1} GMAC/s",
        s * 1e3,
        macs / s / 1e9
    );
    let wd = w.t().unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(x.matmul(&wd).unwrap());
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "candle f32 gemm: {:.2} ms, {:.1} GMAC/s",
        s * 1e3,
        macs / s / 1e9
    );
}
