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
    let params = bench_params(decode_tokens);
    for _ in 0..repeats.max(1) {
        // The service's path: a sequence, prefilled whole, then decoding passes (the prefix
        // store is cleared so every run prefills the whole prompt).
        llm.clear_kv_cache();
        let t = Instant::now();
        let mut seq = llm.begin(prompt.clone(), params.clone())?;
        llm.prefill(&mut seq, usize::MAX)?;
        let prefill = t.elapsed();
        push_greedy(&mut seq);
        ttfts.push(t.elapsed().as_secs_f64());
        let td = Instant::now();
        for _ in 0..decode_tokens {
            llm.decode(&mut [&mut seq])?;
            push_greedy(&mut seq);
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

fn bench_params(decode_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens: decode_tokens + 1,
        sampling: SamplingParams {
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            repeat_last_n: 0,
            seed: 1,
        },
    }
}

/// Chooses the greedy token from the sequence's logits and appends it, whatever it is: a
/// benchmark decodes as many tokens as asked even past an end-of-turn token.
fn push_greedy(seq: &mut crate::llm::Sequence) {
    let next = seq
        .logits
        .take()
        .and_then(|l| {
            l.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i as u32)
        })
        .unwrap_or(0);
    seq.generated.push(next);
}

/// Batched decoding at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// Sequences decoded together.
    pub batch: usize,
    /// Tokens per second over all of them.
    pub total_tok_s: f64,
    /// Tokens per second each sequence gets.
    pub per_sequence_tok_s: f64,
    /// Bytes the sequences' keys and values hold.
    pub kv_bytes: usize,
    /// Peak resident memory of the process so far.
    pub peak_rss: Option<u64>,
}

/// Batched decoding: `context` tokens of conversation per sequence (the prompt is prefilled
/// once and each sequence gets its own copy of its keys and values, as separate
/// conversations would), then `decode_tokens` decoding passes for each batch size. Shows
/// what one pass for B sequences costs against one for a single sequence, and the memory of
/// B conversations of that length.
pub fn bench_batch(
    path: &Path,
    options: &LoadOptions,
    batches: &[usize],
    context: usize,
    decode_tokens: usize,
) -> Result<Vec<BatchRow>> {
    let mut llm = Llm::load(path, options)?;
    let prompt = llm.render(&[
        ChatMessage::system("你是乐业助手，只根据给出的政策原文用中文简短回答。"),
        ChatMessage::user(PROMPT_ZH),
    ])?;
    let prompt: Vec<u32> = prompt
        .iter()
        .copied()
        .cycle()
        .take(context.max(2))
        .collect();
    let params = bench_params(decode_tokens);
    let mut first = llm.begin(prompt.clone(), params.clone())?;
    llm.prefill(&mut first, usize::MAX)?;
    let mut rows = Vec::new();
    for &b in batches {
        let mut seqs: Vec<crate::llm::Sequence> = (0..b.max(1))
            .map(|_| {
                let mut s = llm.begin(prompt.clone(), params.clone())?;
                s.cache = first.cache.clone();
                s.fed = first.fed;
                s.logits = first.logits.clone();
                push_greedy(&mut s);
                Ok(s)
            })
            .collect::<Result<_>>()?;
        let t = Instant::now();
        for _ in 0..decode_tokens {
            let mut refs: Vec<&mut crate::llm::Sequence> = seqs.iter_mut().collect();
            llm.decode(&mut refs)?;
            for s in &mut seqs {
                push_greedy(s);
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let tokens = (decode_tokens * seqs.len()) as f64;
        rows.push(BatchRow {
            batch: seqs.len(),
            total_tok_s: tokens / secs,
            per_sequence_tok_s: decode_tokens as f64 / secs,
            kv_bytes: seqs
                .iter()
                .filter_map(|s| s.cache.as_ref().map(|c| c.bytes()))
                .sum(),
            peak_rss: peak_rss(),
        });
    }
    Ok(rows)
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
