//! Speed measurements of the models (`leye models bench`). Prints numbers; asserts nothing.
//!
//! Timings on shared machines are noisy, so every figure is the median of `repeats` runs, and
//! the raw runs are kept in the report.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chat_template::ChatMessage;
use crate::embed::Embedder;
use crate::llm::{GenerationParams, Llm, LoadOptions};
use crate::sampling::{Sampling, SamplingParams};
use crate::Result;

/// The Chinese retrieval-style prompt used for prefill (three numbered passages of
/// 鲁人社发〔2025〕9号 and a question).
pub const PROMPT_ZH: &str = include_str!("bench_prompt.txt");

/// LLM figures.
#[derive(Debug, Clone, Serialize)]
pub struct LlmBench {
    /// Options the model was loaded with.
    pub options: LoadOptions,
    /// Load time.
    pub load: Duration,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Median prefill throughput.
    pub prefill_tok_s: f64,
    /// Median time to first token.
    pub ttft: Duration,
    /// Median decode throughput over `decode_tokens` tokens.
    pub decode_tok_s: f64,
    /// Tokens decoded per run.
    pub decode_tokens: usize,
    /// Raw (prefill tok/s, decode tok/s) of each run.
    pub runs: Vec<(f64, f64)>,
    /// Peak resident memory of the process so far, in bytes.
    pub peak_rss: Option<u64>,
}

/// Embedder figures.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedBench {
    /// Load time.
    pub load: Duration,
    /// Passages per second, batches of 32.
    pub passages_per_s: f64,
    /// Median latency of one query.
    pub query_latency: Duration,
    /// Peak resident memory of the process so far, in bytes.
    pub peak_rss: Option<u64>,
}

/// Peak resident set size (`VmHWM`) of this process, on Linux.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Benchmarks an LLM: load, prefill of [`PROMPT_ZH`], time to first token, and decoding of
/// `decode_tokens` tokens (the end-of-turn token is ignored so every run decodes as many).
///
/// With `prompt_tokens`, the prompt is cut or repeated to exactly that many tokens (what
/// llama.cpp's `llama-bench -p N` measures), instead of the rendered chat prompt.
pub fn bench_llm(
    path: &Path,
    options: &LoadOptions,
    decode_tokens: usize,
    repeats: usize,
    prompt_tokens: Option<usize>,
) -> Result<LlmBench> {
    let t0 = Instant::now();
    let mut llm = Llm::load(path, options)?;
    let load = t0.elapsed();
    let prompt = llm.render(&[
        ChatMessage::system("你是乐业助手，只根据给出的政策原文用中文简短回答。"),
        ChatMessage::user(PROMPT_ZH),
    ])?;
    let prompt: Vec<u32> = match prompt_tokens {
        Some(n) => prompt.iter().copied().cycle().take(n.max(1)).collect(),
        None => prompt,
    };
    let mut runs = Vec::new();
    let mut ttfts = Vec::new();
    for _ in 0..repeats.max(1) {
        llm.clear_kv_cache();
        let t = Instant::now();
        let mut logits = llm.forward(&prompt, 0)?;
        let prefill = t.elapsed();
        let mut sampler = crate::sampling::Sampler::new(SamplingParams {
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            repeat_last_n: 0,
            seed: 1,
        });
        let mut next = sampler.sample(&mut logits, &prompt);
        ttfts.push(t.elapsed().as_secs_f64());
        let td = Instant::now();
        for i in 0..decode_tokens {
            let mut logits = llm.forward(&[next], prompt.len() + i)?;
            next = sampler.sample(&mut logits, &prompt);
        }
        let decode = td.elapsed();
        runs.push((
            prompt.len() as f64 / prefill.as_secs_f64(),
            decode_tokens as f64 / decode.as_secs_f64(),
        ));
    }
    Ok(LlmBench {
        options: options.clone(),
        load,
        prompt_tokens: prompt.len(),
        prefill_tok_s: median(runs.iter().map(|r| r.0).collect()),
        ttft: Duration::from_secs_f64(median(ttfts)),
        decode_tok_s: median(runs.iter().map(|r| r.1).collect()),
        decode_tokens,
        runs,
        peak_rss: peak_rss(),
    })
}

/// A short generation through the public API, to show what the model says (not timed).
pub fn sample_answer(llm: &mut Llm, question: &str, max_tokens: usize) -> Result<String> {
    let params = GenerationParams {
        max_tokens,
        ..Default::default()
    };
    Ok(llm
        .generate(&[ChatMessage::user(question)], &params, |_| true)?
        .text)
}

/// Benchmarks the embedder: passages/s in batches of 32 and single-query latency.
pub fn bench_embedder(path: &Path, repeats: usize) -> Result<EmbedBench> {
    let t0 = Instant::now();
    let emb = Embedder::load(path)?;
    let load = t0.elapsed();
    let passages: Vec<String> = PROMPT_ZH
        .split(['。', '，', '\n'])
        .filter(|s| s.chars().count() > 8)
        .cycle()
        .take(64)
        .enumerate()
        .map(|(i, s)| format!("{s}（第{i}段）"))
        .collect();
    let mut rates = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        for batch in passages.chunks(32) {
            emb.embed_passages(batch)?;
        }
        rates.push(passages.len() as f64 / t.elapsed().as_secs_f64());
    }
    let mut lat = Vec::new();
    for q in [
        "创业担保贷款的申请条件是什么？",
        "青岛市有哪些零工岗位",
        "退役军人就业服务",
        "高校毕业生求职补贴",
    ]
    .iter()
    .cycle()
    .take(8 * repeats.max(1))
    {
        let t = Instant::now();
        emb.embed_query(q)?;
        lat.push(t.elapsed().as_secs_f64());
    }
    Ok(EmbedBench {
        load,
        passages_per_s: median(rates),
        query_latency: Duration::from_secs_f64(median(lat)),
        peak_rss: peak_rss(),
    })
}
