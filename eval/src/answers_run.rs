//! `leye-eval answers`: every question of the answer set through the whole pipeline, one
//! fresh session each, with the same assembly as `leye serve` (router, hybrid retrieval,
//! rerank, gate, model, verifier, SQLite) over the whole corpus: the bundled plan and the
//! 16 laws. Prints the figures of [`eval::answers_eval`] and every miss.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use assistant::config::Config;
use assistant::dialogue::{Assistant, Event, NOT_COVERED_REPLY};
use assistant::domain::Channel;
use eval::answers_eval::{self, Item, Transcript, Verdict};

/// Options of one run.
pub struct Options {
    /// The answer set.
    pub set: PathBuf,
    /// Catalog name of the LLM (default: the configured one).
    pub model: Option<String>,
    /// Only this many questions, spread over the set (0: all).
    pub sample: usize,
    /// Also write transcripts, verdicts and figures as JSON.
    pub json: Option<PathBuf>,
}

async fn transcript(a: &Assistant, question: &str) -> anyhow::Result<Transcript> {
    let (session, _) = a.create_session(Channel::Bench).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let req = crate::chat_bench::bench_request(session, question);
    let start = Instant::now();
    let collect = async {
        let mut t = Transcript::default();
        let mut first = None;
        let mut error = None;
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Meta { intent, .. } => t.intent = format!("{intent:?}"),
                Event::Token(_) => {
                    first.get_or_insert_with(|| start.elapsed());
                }
                Event::Citations(c) => {
                    t.cited_docs = c.iter().map(|c| c.doc_id.clone()).collect();
                    t.quotes = c.into_iter().map(|c| c.quote).collect();
                }
                Event::Done { answer } => t.answer = answer,
                Event::Error { code, message } => error = Some(format!("{code}: {message}")),
                _ => {}
            }
        }
        t.ttft_s = first.unwrap_or_else(|| start.elapsed()).as_secs_f64();
        (t, error)
    };
    let (r, (mut t, error)) = tokio::join!(a.turn(req, tx), collect);
    r?;
    if let Some(e) = error {
        anyhow::bail!(e);
    }
    t.total_s = start.elapsed().as_secs_f64();
    // The out-of-scope reply refuses too: nothing from the documents is said.
    t.not_covered = t.answer.starts_with(NOT_COVERED_REPLY) || t.intent == "OutOfScope";
    Ok(t)
}

fn documents(corpus: &[PathBuf]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for dir in corpus {
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md") {
                if let Some(stem) = p.file_stem() {
                    out.insert(
                        stem.to_string_lossy().to_string(),
                        std::fs::read_to_string(&p)?,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Runs the evaluation.
pub fn run(cfg: &Config, corpus: &[PathBuf], opts: Options) -> anyhow::Result<()> {
    let items = answers_eval::sample(&answers_eval::load(&opts.set)?, opts.sample);
    let mut cfg = cfg.clone();
    if let Some(m) = &opts.model {
        cfg.llm.model = m.clone();
        cfg.llm.path = None;
    }
    // One home per model so that runs of two models can go on side by side.
    cfg.home = cfg.home.join(format!("answers-eval-{}", cfg.llm.model));
    std::fs::create_dir_all(&cfg.home)?;
    let models = Config {
        llm: cfg.llm.clone(),
        ..Config::default()
    };
    let mut fetch = |_| {};
    cfg.llm.path = Some(assistant::model_store::llm_path(&models, &mut fetch)?);
    cfg.embedder.path = Some(assistant::model_store::embedder_path(&models, &mut fetch)?);
    cfg.database.url = Some(assistant::store::Db::sqlite_url(&cfg.home));
    cfg.knowledge.paths = corpus.to_vec();
    // Each question is a new session: no failure count carries over between questions.
    let docs = documents(
        &corpus
            .iter()
            .flat_map(|c| [c.clone(), c.join("policies")])
            .filter(|p| p.is_dir())
            .collect::<Vec<_>>(),
    )?;
    let rt = tokio::runtime::Runtime::new()?;
    let (transcripts, verdicts) = rt.block_on(async {
        let t = Instant::now();
        let a = Arc::new(
            assistant::app::Application::build(&cfg, Arc::new(|l: &str| eprintln!("{l}")))
                .await?
                .into_assistant(),
        );
        eprintln!(
            "assembled in {:.1} s (model {}, home {})",
            t.elapsed().as_secs_f64(),
            cfg.llm.model,
            cfg.home.display()
        );
        let mut ts = Vec::new();
        let mut vs = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let tr = transcript(&a, &it.question).await?;
            let v = answers_eval::judge(it, &tr, &docs);
            eprintln!(
                "{:>3}/{} {} {:<9} {}{}{}  {:.1} s  {}",
                i + 1,
                items.len(),
                it.id,
                tr.intent,
                mark(it, &tr, &v),
                if v.invented.is_empty() {
                    ""
                } else {
                    " invented"
                },
                if v.vacuous && !tr.not_covered {
                    " vacuous"
                } else {
                    ""
                },
                tr.total_s,
                it.question
            );
            ts.push(tr);
            vs.push(v);
        }
        anyhow::Ok((ts, vs))
    })?;
    let f = answers_eval::figures(&items, &transcripts, &verdicts);
    print(
        &cfg.llm.model,
        &opts.set,
        &items,
        &transcripts,
        &verdicts,
        &f,
    );
    if let Some(p) = opts.json {
        let rows: Vec<_> = items
            .iter()
            .zip(&transcripts)
            .zip(&verdicts)
            .map(|((i, t), v)| serde_json::json!({"id": i.id, "question": i.question, "transcript": t, "verdict": v}))
            .collect();
        std::fs::write(
            p,
            serde_json::to_vec_pretty(
                &serde_json::json!({"model": cfg.llm.model, "figures": f, "items": rows}),
            )?,
        )?;
    }
    Ok(())
}

fn mark(it: &Item, t: &Transcript, v: &Verdict) -> &'static str {
    match (it.covered, t.not_covered) {
        (true, true) => "FALSE-NOT-COVERED",
        (false, false) => "FALSE-ANSWERED",
        (false, true) => "refused ok",
        (true, false) => match (v.facts_ok, v.cited_ok) {
            (true, true) => "ok",
            (true, false) => "facts, wrong doc",
            (false, true) => "MISSING-FACT",
            (false, false) => "MISSING-FACT, wrong doc",
        },
    }
}

fn print(
    model: &str,
    set: &Path,
    items: &[Item],
    ts: &[Transcript],
    vs: &[Verdict],
    f: &answers_eval::Figures,
) {
    println!("misses:");
    for ((it, t), v) in items.iter().zip(ts).zip(vs) {
        let m = mark(it, t, v);
        if m != "ok" && m != "refused ok" || !v.invented.is_empty() {
            println!(
                "  {} [{m}] {} {}  facts {:?} doc {}\n      → {} (cited {:?}{})",
                it.id,
                t.intent,
                it.question,
                it.facts,
                it.doc_id.as_deref().unwrap_or("-"),
                t.answer.replace('\n', " "),
                t.cited_docs,
                if v.invented.is_empty() {
                    String::new()
                } else {
                    format!("; invented {:?}", v.invented)
                }
            );
        }
    }
    println!(
        "{} questions of {} ({} covered, {} not), model {model}",
        items.len(),
        set.display(),
        f.covered,
        f.uncovered
    );
    println!(
        "key-fact accuracy  {:.3}   (covered questions whose answer states every key fact)",
        f.key_fact_accuracy
    );
    println!(
        "citation accuracy  {:.3}   (answered covered questions citing the expected document; {} answered)",
        f.citation_accuracy, f.answered_covered
    );
    println!(
        "invented numbers   {}       (answers with a number in no quote and no cited document)",
        f.invented_numbers
    );
    println!(
        "vacuous answers    {:.3}   (answers adding no term of their evidence)",
        f.vacuous_rate
    );
    println!("false not-covered  {:.3}", f.false_not_covered);
    println!("false answered     {:.3}", f.false_answered);
    println!(
        "TTFT p50 {:.2} s, turn p50 {:.2} s",
        f.ttft_p50_s, f.turn_p50_s
    );
}
