//! The generator worker: bounded queue, per-request reply channels, prompt stop on drop.

use std::time::Duration;

use models::chat_template::ChatMessage;
use models::generator::{GenEvent, GenerateRequest, Generator};
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
    let (generator, worker) = Generator::spawn(llm, 1).expect("spawn");

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
