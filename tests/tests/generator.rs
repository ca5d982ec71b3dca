//! The generator worker: bounded queue, per-request reply channels, prompt stop on drop;
//! batched decoding (same greedy tokens as one at a time, cancellation of one leaves the
//! others unchanged) and chunked prefill interleaved with running streams.

use std::time::Duration;

use models::chat_template::ChatMessage;
use models::generator::{GenEvent, GenerateRequest, Generator, GeneratorOptions};
use models::llm::{GenerationParams, Llm, LoadOptions};

fn request(max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user(
            "请详细介绍山东省的就业创业服务，越详细越好。",
        )],
        params: GenerationParams {
            max_tokens,
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_busy_drop_and_completion() {
    let llm = Llm::load(&tests::llm_path(), &LoadOptions::default()).expect("load");
    // One request at a time, so the queue fills (batching is tested below).
    let (generator, worker) = Generator::spawn_with(
        llm,
        GeneratorOptions {
            queue_capacity: 1,
            max_batch: 1,
            ..Default::default()
        },
    )
    .expect("spawn");

    // A: a long generation; wait until the worker is on it.
    let mut a = generator.submit(request(400)).expect("submit a");
    match a.recv().await {
        Some(GenEvent::Text(t)) => assert!(!t.is_empty()),
        other => panic!("expected text first, got {other:?}"),
    }
    // B waits in the queue (capacity 1); C finds it full and gets Busy at once.
    let b = generator.submit(request(3)).expect("submit b");
    assert_eq!(generator.queue_depth(), 1);
    match generator.submit(request(3)) {
        Err(models::Error::Busy { .. }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    // Dropping A's receiver stops A before its next token; B then runs to completion.
    drop(a);
    let mut b = b;
    let mut text = String::new();
    let stats = loop {
        match tokio::time::timeout(Duration::from_secs(120), b.recv())
            .await
            .expect("b finishes")
        {
            Some(GenEvent::Text(t)) => text.push_str(&t),
            Some(GenEvent::Done(s)) => break s,
            Some(GenEvent::Failed(e)) => panic!("b failed: {e}"),
            None => panic!("b's channel closed without Done"),
        }
    };
    assert!(stats.completion_tokens <= 3);
    // Counted, not timed: A stopped far short of its 400 tokens.
    let total = generator.tokens_generated();
    assert!(
        total < 100,
        "A kept running after its receiver was dropped: {total} tokens generated"
    );
    assert_eq!(generator.queue_depth(), 0);

    // The collecting helper, and a clean stop when every handle is gone.
    let (answer, stats) = generator.generate(request(8)).await.expect("generate");
    assert!(stats.completion_tokens <= 8 && !answer.is_empty());
    drop(generator);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .expect("join task")
        .expect("worker exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_fail_the_request_not_the_worker() {
    let llm = Llm::load(&tests::llm_path(), &LoadOptions::default()).expect("load");
    let (generator, _worker) = Generator::spawn(llm, 4).expect("spawn");
    let mut bad = request(0);
    bad.params.max_tokens = 0;
    assert!(generator.generate(bad).await.is_err());
    let too_long = GenerateRequest {
        messages: vec![ChatMessage::user("你好")],
        params: GenerationParams {
            max_tokens: 100_000,
            ..Default::default()
        },
    };
    assert!(matches!(
        generator.generate(too_long).await,
        Err(models::Error::ContextOverflow { .. })
    ));
    let (ok, _) = generator
        .generate(request(4))
        .await
        .expect("the worker still serves");
    assert!(!ok.is_empty());
}

fn greedy(text: &str, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        messages: vec![ChatMessage::user(text)],
        params: GenerationParams {
            max_tokens,
            ..Default::default()
        },
    }
}

/// Collects a request's text and end; `None` text when it failed.
async fn collect(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<GenEvent>,
) -> (String, models::llm::GenerationStats) {
    let mut text = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(300), rx.recv())
            .await
            .expect("the request ends")
        {
            Some(GenEvent::Text(t)) => text.push_str(&t),
            Some(GenEvent::Done(s)) => return (text, s),
            Some(GenEvent::Failed(e)) => panic!("failed: {e}"),
            None => panic!("channel closed without Done"),
        }
    }
}

/// The top-2 margin of a step's logits.
fn margin(logits: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in logits {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

/// Near-ties below this margin may flip. Our kernels now give a sequence bitwise the same
/// logits alone and in a batch of up to 4 (the minimums are subtracted in the same order,
/// the input rows quantized alike: this test compared all 123 tokens with a largest
/// difference of 0), but other paths need not: candle's kernels (other devices, float
/// weights) multiply several rows with repacked tiles and another activation quantization,
/// which moved logits by up to ~0.5; a flip needs a margin below twice that.
const NEAR_TIE: f32 = 1.0;

#[test]
fn batched_decoding_matches_one_at_a_time_up_to_near_ties_and_survives_a_cancellation() {
    let opts = LoadOptions {
        prefix_cache: false,
        ..LoadOptions::default()
    };
    let mut llm = Llm::load(&tests::llm_path(), &opts).expect("load");
    let params = GenerationParams {
        max_tokens: 40,
        sampling: models::sampling::SamplingParams {
            repetition_penalty: 1.0,
            ..Default::default()
        },
    };
    let prompts: Vec<Vec<u32>> = [
        "失业保险金怎么领？",
        "我是退役军人，想创业，有什么扶持？",
        "高校毕业生见习补贴是多少？",
        "灵活就业人员怎么交社保？请说明条件、材料和办理地点。",
    ]
    .iter()
    .map(|q| llm.render(&[ChatMessage::user(*q)]).expect("render"))
    .collect();
    // One at a time: each step's logits.
    let mut alone: Vec<(Vec<u32>, Vec<Vec<f32>>)> = Vec::new();
    for p in &prompts {
        let mut seq = llm.begin(p.clone(), params.clone()).expect("begin");
        llm.prefill(&mut seq, usize::MAX).expect("prefill");
        let mut steps = Vec::new();
        loop {
            steps.push(seq.last_logits().expect("logits").to_vec());
            if !llm.advance(&mut seq, &mut |_| true) {
                break;
            }
            llm.decode(&mut [&mut seq]).expect("decode");
        }
        alone.push((seq.generated().to_vec(), steps));
    }
    // All four in one batch, at different positions; the third is cancelled after 3 tokens.
    let mut seqs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let mut s = llm.begin(p.clone(), params.clone()).expect("begin");
            llm.prefill(&mut s, usize::MAX).expect("prefill");
            s
        })
        .collect();
    let mut batched_steps: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 4];
    let mut running: Vec<usize> = (0..4).collect();
    let mut widest = 0;
    while !running.is_empty() {
        running.retain(|&i| {
            let s = &mut seqs[i];
            if i == 2 && s.generated().len() >= 3 {
                s.cancel();
                return false;
            }
            batched_steps[i].push(s.last_logits().expect("logits").to_vec());
            llm.advance(s, &mut |_| true)
        });
        if running.is_empty() {
            break;
        }
        widest = widest.max(running.len());
        let mut batch: Vec<&mut models::llm::Sequence> = seqs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| running.contains(i))
            .map(|(_, s)| s)
            .collect();
        llm.decode(&mut batch).expect("batched decode");
    }
    assert!(widest >= 3, "the sequences were decoded together");
    let (mut compared, mut worst) = (0, 0f32);
    for (i, s) in seqs.iter().enumerate() {
        let (want, steps) = &alone[i];
        let got = s.generated();
        if i == 2 {
            assert_eq!(
                s.finish_reason(),
                Some(models::llm::FinishReason::Cancelled)
            );
            assert_eq!(got.len(), 3, "stopped when cancelled");
        }
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            // Same logits up to the kernels' rounding...
            let range = steps[k].iter().copied().fold(f32::MIN, f32::max)
                - steps[k].iter().copied().fold(f32::MAX, f32::min);
            let d = batched_steps[i][k]
                .iter()
                .zip(&steps[k])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                d < 0.05 * range,
                "prompt {i} step {k}: logits differ by {d} (range {range})"
            );
            worst = worst.max(d);
            // ...and the same token, unless the reference's choice was a near-tie: then the
            // two may part, and the rest is not comparable.
            if g != w {
                let m = margin(&steps[k]);
                assert!(
                    m < NEAR_TIE,
                    "prompt {i} step {k}: batched and one-at-a-time tokens differ at margin {m}"
                );
                break;
            }
            compared += 1;
        }
    }
    eprintln!("{compared} tokens compared; largest logit difference {worst}");
    assert!(
        compared >= 60,
        "only {compared} tokens compared before near-ties"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_requests_together_and_a_dropped_one_stops() {
    let llm = Llm::load(&tests::llm_path(), &LoadOptions::default()).expect("load");
    let (generator, _w) = Generator::spawn_with(
        llm,
        GeneratorOptions {
            queue_capacity: 4,
            max_batch: 4,
            ..Default::default()
        },
    )
    .expect("spawn");
    let questions = [
        "失业保险金怎么领？",
        "我是退役军人，想创业，有什么扶持？",
        "高校毕业生见习补贴是多少？",
        "灵活就业人员怎么交社保？",
    ];
    let mut rxs = Vec::new();
    for q in questions {
        rxs.push(generator.submit(greedy(q, 40)).expect("submit"));
    }
    let mut third = rxs.remove(2);
    match third.recv().await {
        Some(GenEvent::Text(t)) => assert!(!t.is_empty()),
        other => panic!("expected text, got {other:?}"),
    }
    drop(third);
    let mut results = Vec::new();
    for rx in rxs {
        results.push(collect(rx).await);
    }
    for (text, stats) in &results {
        assert!(!text.is_empty());
        assert!(stats.completion_tokens <= 40);
    }
    // Counted, not timed: the dropped request stopped long before its 40 tokens.
    let others: u64 = results
        .iter()
        .map(|(_, s)| s.completion_tokens as u64)
        .sum();
    let cancelled = generator.tokens_generated() - others;
    assert!(
        cancelled < 20,
        "the dropped request generated {cancelled} tokens"
    );
    let (again, _) = generator
        .generate(greedy(questions[0], 8))
        .await
        .expect("again");
    assert!(!again.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_is_prefilled_in_chunks_between_the_running_streams_tokens() {
    let llm = Llm::load(&tests::llm_path(), &LoadOptions::default()).expect("load");
    let chunk = 32;
    let (generator, _w) = Generator::spawn_with(
        llm,
        GeneratorOptions {
            max_batch: 4,
            prefill_chunk: chunk,
            ..Default::default()
        },
    )
    .expect("spawn");
    // A: a long answer, already streaming.
    let mut a = generator.submit(request(300)).expect("a");
    match a.recv().await {
        Some(GenEvent::Text(_)) => {}
        other => panic!("expected text, got {other:?}"),
    }
    // B: a prompt of many chunks.
    let long = "请根据以下情况给出建议：我今年四十五岁，在工厂做了二十年，工厂关门后一直没有找到工作，家里还有老人和孩子要照顾。".repeat(6);
    let mut b = generator.submit(greedy(&long, 4)).expect("b");
    let mut before = 0;
    while let Ok(ev) = a.try_recv() {
        assert!(matches!(ev, GenEvent::Text(_)), "A ended too soon: {ev:?}");
        before += 1;
    }
    let first_b = tokio::time::timeout(Duration::from_secs(300), b.recv())
        .await
        .expect("b answers");
    assert!(matches!(first_b, Some(GenEvent::Text(_))), "{first_b:?}");
    // Everything A's stream got before B's first token is in A's channel now: the worker
    // sent it first.
    let mut during = 0;
    let mut a_done = false;
    while let Ok(ev) = a.try_recv() {
        match ev {
            GenEvent::Text(_) => during += 1,
            _ => a_done = true,
        }
    }
    assert!(
        !a_done,
        "A finished before B began: B's prompt waited instead of interleaving"
    );
    // B's prompt is several hundred tokens: without interleaving A would get at most the one
    // token of the loop turn that admitted B.
    assert!(
        during >= 4,
        "A received {during} pieces while B's prompt was prefilled (before: {before})"
    );
    let (_, stats) = collect(b).await;
    assert!(stats.prompt_tokens > 6 * chunk, "{stats:?}");
    drop(a);
}
