//! The whole model's prefill and decoding speed as `leye models bench` measures it, without
//! building the service: for trying a kernel change on a real GGUF in the time the `models`
//! crate takes to compile.
//!
//!   cargo run --release -p models --example llm_bench -- MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [REPEATS]
//!
//! `PREFILL=int8|int8_compact|…` picks the prefill weights (default `int8`); `BATCH=1,8
//! [CONTEXT=2048]` measures batched decoding after that much context instead.
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
    // BATCH=1,8 [CONTEXT=2048]: batched decoding after a context of that many tokens per
    // sequence, with the sequences' keys and values and the peak RSS (`leye models bench
    // --batch`).
    if let Ok(batches) = std::env::var("BATCH") {
        let batches: Vec<usize> = batches.split(',').filter_map(|b| b.parse().ok()).collect();
        let context = std::env::var("CONTEXT")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(2048);
        let rows = models::bench::bench_batch(
            std::path::Path::new(path),
            &options,
            &batches,
            context,
            decode,
        )?;
        for r in rows {
            println!(
                "batch {}: {:.1} tok/s in all, {:.1} per sequence, KV {} MB, peak RSS {} MB",
                r.batch,
                r.total_tok_s,
                r.per_sequence_tok_s,
                r.kv_bytes / 1_000_000,
                r.peak_rss.unwrap_or(0) / 1_000_000
            );
        }
        return Ok(());
    }
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
