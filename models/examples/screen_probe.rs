use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use models::llm::qlinear::{matmul, Input, Kernel, Packed};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let t = ct
        .tensor(&mut f, "token_embd.weight", &Device::Cpu)
        .unwrap();
    println!("{:?} {:?}", t.dtype(), t.shape());
    let dense = t.dequantize(&Device::Cpu).unwrap();
    let p8 = Packed::from_qtensor(&t, false).unwrap().unwrap();
    let q5 = QTensor::quantize(&dense, GgmlDType::Q5_0).unwrap();
    let p5 = Packed::from_qtensor(&q5, true).unwrap().unwrap();
    let q4 = QTensor::quantize(&dense, GgmlDType::Q4_0).unwrap();
    println!("bytes int8 {} q5 {}", p8.bytes(), p5.bytes());
    let cols = p8.cols;
    let x = Tensor::randn(0f32, 1.0, (1, cols), &Device::Cpu).unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for round in 0..3 {
        for (name, p) in [("int8", &p8), ("q5c", &p5)] {
            let reps = 30;
            let t0 = Instant::now();
            for _ in 0..reps {
                let i = Input::quantize(&xv, cols);
                std::hint::black_box(matmul(p, &i, Kernel::selected()));
            }
            println!(
                "{round} {name}: {:.2} ms",
                t0.elapsed().as_secs_f64() / reps as f64 * 1e3
            );
        }
    }
    // error norms
    let d = dense.to_vec2::<f32>().unwrap();
    for (name, q) in [("q5", &q5), ("q4", &q4)] {
        let a = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let mut en = Vec::new();
        let mut wn = Vec::new();
        for (r, row) in d.iter().enumerate() {
            let e: f32 = row
                .iter()
                .zip(&a[r])
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt();
            en.push(e);
            wn.push(row.iter().map(|x| x * x).sum::<f32>().sqrt());
        }
        let mut s = en.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut w = wn.clone();
        w.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{name}: err norm p50 {:.4} p99 {:.4} max {:.4}; row norm p50 {:.3} max {:.3}",
            s[s.len() / 2],
            s[s.len() * 99 / 100],
            s[s.len() - 1],
            w[w.len() / 2],
            w[w.len() - 1]
        );
    }
}
