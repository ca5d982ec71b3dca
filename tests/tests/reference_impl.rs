//! Our decoder against candle-transformers' own `quantized_qwen2` on the real default model:
//! the same GGUF and prompt must give the same next-token logits (up to kernel rounding).

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use models::llm::{Llm, LoadOptions, PrefillWeights};

#[test]
fn decoder_matches_candle_quantized_qwen2() {
    let path = tests::llm_path();
    let mut ours = Llm::load(
        &path,
        &LoadOptions {
            requantize: None,
            prefill: PrefillWeights::Quantized,
            ..Default::default()
        },
    )
    .expect("load ours");
    let prompt = ours
        .render(&[models::chat_template::ChatMessage::user(
            "山东省高校毕业生就业创业服务平台什么时候覆盖所有高校？",
        )])
        .expect("render");
    let mut f = std::fs::File::open(&path).expect("open");
    let ct = gguf_file::Content::read(&mut f).expect("read");
    let mut reference = candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )
    .expect("load reference");
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .expect("t")
        .unsqueeze(0)
        .expect("u");
    let want: Vec<f32> = reference
        .forward(&input, 0)
        .expect("ref forward")
        .flatten_all()
        .expect("f")
        .to_vec1()
        .expect("v");
    let got = ours.forward(&prompt, 0).expect("our forward");
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("max |diff| {diff} (max |logit| {scale})");
    assert!(
        diff < 1e-2 * scale,
        "logits differ by {diff} (scale {scale})"
    );
    // And one decode step from the same cache.
    let next = 151645u32.min(want.len() as u32 - 1);
    let w2: Vec<f32> = reference
        .forward(
            &Tensor::new(&[next], &Device::Cpu)
                .expect("t")
                .unsqueeze(0)
                .expect("u"),
            prompt.len(),
        )
        .expect("ref step")
        .flatten_all()
        .expect("f")
        .to_vec1()
        .expect("v");
    let g2 = ours.forward(&[next], prompt.len()).expect("our step");
    let diff2 = g2
        .iter()
        .zip(&w2)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff2 < 1e-2 * scale, "decode-step logits differ by {diff2}");
}
