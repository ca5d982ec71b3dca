//! `leye-eval chat`: time to first token and full-turn latency over policy questions, one at
//! a time, then many sessions at once to show that queueing works without errors.
//!
//! The assistant runs in process with the same assembly as `leye serve` (bundled knowledge,
//! real models, SQLite) under a separate home, so the figures are the pipeline's: routing,
//! retrieval, evidence gate, generation, verification, storage.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assistant::config::Config;
use assistant::dialogue::{Assistant, Event, TurnError, TurnRequest};
use assistant::domain::{Caller, Channel, SessionId};

/// One measured turn.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TurnTiming {
    /// Time to the first answer text.
    pub ttft: Duration,
    /// Whole turn.
    pub total: Duration,
    /// Answer length, characters.
    pub chars: usize,
    /// Citations returned.
    pub citations: usize,
}

/// The outcome of one turn.
pub enum TurnResult {
    /// Answered.
    Ok(TurnTiming),
    /// The model queue was full.
    Busy,
    /// Anything else.
    Failed(String),
}

/// A citizen's turn on the benchmark channel.
pub fn bench_request(session: SessionId, question: &str) -> TurnRequest {
    TurnRequest {
        caller: Caller::Citizen {
            session,
            channel: Channel::Bench,
        },
        message: question.to_string(),
        profile: None,
    }
}

/// Runs one turn and times it.
pub async fn timed_turn(a: &Assistant, question: &str, session: Option<SessionId>) -> TurnResult {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let start = Instant::now();
    let session = match session {
        Some(s) => s,
        None => match a.create_session(Channel::Bench).await {
            Ok((id, _)) => id,
            Err(e) => return TurnResult::Failed(e.to_string()),
        },
    };
    let req = bench_request(session, question);
    let collect = async {
        let mut first = None;
        let mut chars = 0;
        let mut citations = 0;
        let mut error = None;
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Token(t) => {
                    first.get_or_insert_with(|| start.elapsed());
                    chars += t.chars().count();
                }
                Event::Citations(c) => citations = c.len(),
                Event::Error { code, message } => error = Some(format!("{code}: {message}")),
                _ => {}
            }
        }
        (first, chars, citations, error)
    };
    let (r, (first, chars, citations, error)) = tokio::join!(a.turn(req, tx), collect);
    match (r, error) {
        (Err(TurnError::Busy), _) => TurnResult::Busy,
        (Err(e), _) => TurnResult::Failed(e.to_string()),
        (Ok(()), Some(e)) => TurnResult::Failed(e),
        (Ok(()), None) => TurnResult::Ok(TurnTiming {
            ttft: first.unwrap_or_else(|| start.elapsed()),
            total: start.elapsed(),
            chars,
            citations,
        }),
    }
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn summary(label: &str, t: &[TurnTiming]) {
    let ttft: Vec<f64> = t.iter().map(|x| x.ttft.as_secs_f64()).collect();
    let total: Vec<f64> = t.iter().map(|x| x.total.as_secs_f64()).collect();
    println!(
        "{label:<28} n={:<3} TTFT p50 {:>6.2} s  p95 {:>6.2} s   turn p50 {:>6.2} s  p95 {:>6.2} s   cited {}/{}",
        t.len(),
        pct(ttft.clone(), 0.5),
        pct(ttft, 0.95),
        pct(total.clone(), 0.5),
        pct(total, 0.95),
        t.iter().filter(|x| x.citations > 0).count(),
        t.len()
    );
}

/// The configuration of a benchmark with its own home `<home>/<name>` (index and database);
/// the models stay where they are.
pub fn bench_config(cfg: &Config, name: &str) -> anyhow::Result<Config> {
    let mut cfg = cfg.clone();
    cfg.home = cfg.home.join(name);
    std::fs::create_dir_all(&cfg.home)?;
    let models = Config::default();
    let mut fetch = |_| {};
    cfg.llm.path = Some(assistant::model_store::llm_path(&models, &mut fetch)?);
    cfg.embedder.path = Some(assistant::model_store::embedder_path(&models, &mut fetch)?);
    cfg.database.url = Some(assistant::store::Db::sqlite_url(&cfg.home));
    Ok(cfg)
}

/// Runs the benchmark.
pub fn run(cfg: &Config, questions: &Path, parallel: usize) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(questions)?;
    let qs: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!qs.is_empty(), "no questions in {}", questions.display());
    let mut cfg = bench_config(cfg, "chat-bench")?;
    cfg.llm.queue_capacity = cfg.llm.queue_capacity.max(parallel);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let t = Instant::now();
        let a = Arc::new(
            assistant::app::Application::build(&cfg, Arc::new(|l: &str| eprintln!("{l}")))
                .await?
                .into_assistant(),
        );
        println!("assembled in {:.1} s (home {})", t.elapsed().as_secs_f64(), cfg.home.display());

        // Warm-up: first-touch costs (page faults, allocator) are not the steady state.
        let _ = timed_turn(&a, &qs[0], None).await;

        let mut seq = Vec::new();
        for (i, q) in qs.iter().enumerate() {
            match timed_turn(&a, q, None).await {
                TurnResult::Ok(t) => {
                    eprintln!(
                        "  {:>2}. TTFT {:>5.2} s  turn {:>5.2} s  {:>3} chars  {} cites  {q}",
                        i + 1,
                        t.ttft.as_secs_f64(),
                        t.total.as_secs_f64(),
                        t.chars,
                        t.citations
                    );
                    seq.push(t);
                }
                TurnResult::Busy => anyhow::bail!("busy with one request at a time"),
                TurnResult::Failed(e) => anyhow::bail!("{q}: {e}"),
            }
        }
        summary("sequential, one at a time", &seq);

        // Many sessions at once: all queue for the one model; none may fail.
        let depth = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let watcher = {
            let a = a.clone();
            let depth = depth.clone();
            tokio::spawn(async move {
                loop {
                    depth.fetch_max(a.model_queue().queued, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let t = Instant::now();
        let tasks: Vec<_> = (0..parallel)
            .map(|i| {
                let a = a.clone();
                let q = qs[i % qs.len()].clone();
                tokio::spawn(async move { timed_turn(&a, &q, None).await })
            })
            .collect();
        let (mut ok, mut busy, mut failed) = (Vec::new(), 0, Vec::new());
        for task in tasks {
            match task.await? {
                TurnResult::Ok(t) => ok.push(t),
                TurnResult::Busy => busy += 1,
                TurnResult::Failed(e) => failed.push(e),
            }
        }
        watcher.abort();
        let wall = t.elapsed();
        summary(&format!("{parallel} sessions at once"), &ok);
        println!(
            "{parallel} parallel: {} answered, {busy} busy, {} failed; max queue depth {}; all done in {:.1} s ({:.2} turns/min)",
            ok.len(),
            failed.len(),
            depth.load(std::sync::atomic::Ordering::Relaxed),
            wall.as_secs_f64(),
            ok.len() as f64 * 60.0 / wall.as_secs_f64()
        );
        for e in &failed {
            println!("  failed: {e}");
        }
        anyhow::ensure!(failed.is_empty(), "{} turns failed under load", failed.len());
        Ok(())
    })
}
