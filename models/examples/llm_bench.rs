//! The whole model's prefill and decoding speed as `leye models bench` measures it, without
//! building the service: for trying a kernel change on a real GGUF in the time the `models`
//! crate takes to compile.
//!
//!   cargo run --release -p models --example llm_bench -- MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [REPEATS]
//!
//! `PREFILL=int8|int8_compact|…` picks the prefill weights (default `int8`).
use models::llm::{LoadOptions, PrefillWeights};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: llm_bench MODEL.gguf [PROMPT] [DECODE] [REPEATS]")?;
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (prompt, decode, repeats) = (arg(2, 512), arg(3, 1), arg(4, 2));
    let prefill: PrefillWeights = match std::env::var("PREFILL") {
        Ok(m) => serde_json::from_value(serde_json::Value::String(m))?,
        Err(_) => PrefillWeights::default(),
    };
    let options = LoadOptions {
        prefill,
        ..LoadOptions::default()
    };
    let b = models::bench::bench_llm(
        std::path::Path::new(path),
        &options,
        decode,
        repeats,
        Some(prompt),
    )?;
    println!(
        "{prefill:?}: prompt {} tokens, prefill {:.1} tok/s, decode {:.1} tok/s ({} tokens), peak RSS {} MB",
        b.prompt_tokens,
        b.prefill_tok_s,
        b.decode_tok_s,
        b.decode_tokens,
        b.peak_rss.unwrap_or(0) / 1_000_000
    );
    Ok(())
}
