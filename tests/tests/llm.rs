//! The real default LLM (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) on candle.

use models::chat_template::ChatMessage;
use models::llm::{FinishReason, GenerationParams};
use models::sampling::{Sampling, SamplingParams};

fn question() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("你是乐业助手，请用中文简短回答。"),
        ChatMessage::user("高校毕业生找工作可以去哪里寻求帮助？"),
    ]
}

fn sampled(seed: u64, max_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens,
        sampling: SamplingParams {
            sampling: Sampling::Sample {
                temperature: 0.8,
                top_k: Some(40),
                top_p: Some(0.95),
            },
            repetition_penalty: 1.1,
            repeat_last_n: 64,
            seed,
        },
    }
}

#[test]
fn chinese_prompt_yields_chinese_text() {
    let mut llm = tests::llm();
    let g = llm
        .generate(
            &question(),
            &GenerationParams {
                max_tokens: 40,
                ..Default::default()
            },
            |_| true,
        )
        .expect("generate");
    assert!(!g.text.trim().is_empty());
    assert!(
        tests::has_chinese(&g.text),
        "expected Chinese, got {:?}",
        g.text
    );
    assert!(g.stats.time_to_first_token <= g.stats.total);
}

#[test]
fn same_seed_same_output_and_other_seeds_differ() {
    let mut llm = tests::llm();
    let run = |llm: &mut models::llm::Llm, seed| {
        llm.generate(&question(), &sampled(seed, 32), |_| true)
            .expect("generate")
            .tokens
    };
    let a = run(&mut llm, 1234);
    let b = run(&mut llm, 1234);
    assert_eq!(a, b, "same seed, same tokens");
    let others: Vec<Vec<u32>> = [1, 2, 3].iter().map(|&s| run(&mut llm, s)).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "different seeds should not all give the same text"
    );
}

#[test]
fn streamed_pieces_concatenate_to_the_decoded_text() {
    let mut llm = tests::llm();
    let mut pieces = Vec::new();
    let g = llm
        .generate(&question(), &sampled(7, 60), |p| {
            pieces.push(p.to_string());
            true
        })
        .expect("generate");
    assert!(
        pieces.len() > 5,
        "text arrives in many pieces, got {}",
        pieces.len()
    );
    assert_eq!(pieces.concat(), llm.tokenizer().decode(&g.tokens, true));
    assert!(
        pieces.iter().all(|p| !p.contains('\u{fffd}')),
        "no piece splits a UTF-8 character"
    );
}

#[test]
fn max_tokens_is_respected() {
    let mut llm = tests::llm();
    for n in [1, 5, 17] {
        let g = llm
            .generate(
                &question(),
                &GenerationParams {
                    max_tokens: n,
                    ..Default::default()
                },
                |_| true,
            )
            .expect("generate");
        assert!(g.tokens.len() <= n, "{} tokens for max {n}", g.tokens.len());
        if g.stats.finish == FinishReason::Length {
            assert_eq!(g.tokens.len(), n);
        }
    }
}

#[test]
fn a_listener_that_leaves_stops_generation() {
    let mut llm = tests::llm();
    let mut seen = 0;
    let g = llm
        .generate(
            &question(),
            &GenerationParams {
                max_tokens: 200,
                ..Default::default()
            },
            |_| {
                seen += 1;
                seen < 3
            },
        )
        .expect("generate");
    assert_eq!(g.stats.finish, FinishReason::Cancelled);
    assert_eq!(seen, 3, "no text is delivered after the listener said stop");
    assert!(
        g.tokens.len() < 10,
        "generation stopped promptly, made {} tokens",
        g.tokens.len()
    );
}

#[test]
fn answers_from_numbered_evidence() {
    // The retrieval-augmented use: the answer should take its date from passage [1].
    let mut llm = tests::llm();
    let msgs = vec![
        ChatMessage::system("你是乐业助手。请根据资料用中文回答问题。"),
        // Passages without the document number inline: the 0.5B model tends to copy the year of
        // "〔2025〕" into its answer (measured; see the issue note), so the prompt keeps 文号 out.
        ChatMessage::user("[1] 在高校普遍设立大学生就业创业赋能平台，到2028年底实现覆盖所有省内高校。\n[2] 规范化推进“一县一家”公共零工市场建设。\n\n根据以上资料回答：大学生就业创业赋能平台什么时候覆盖所有省内高校？"),
    ];
    // No repetition penalty: it would push the model away from copying the evidence's digits.
    let params = GenerationParams {
        max_tokens: 60,
        sampling: SamplingParams {
            repetition_penalty: 1.0,
            ..Default::default()
        },
    };
    let g = llm.generate(&msgs, &params, |_| true).expect("generate");
    assert!(
        g.text.contains("2028"),
        "answer should carry the date from the evidence: {:?}",
        g.text
    );
}
