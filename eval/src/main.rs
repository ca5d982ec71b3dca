//! `leye-eval`: retrieval quality and speed figures, printed (and optionally written as JSON).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assistant::config::Config;
use assistant::knowledge_base::{FileReport, KnowledgeBase};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "leye-eval", about = "Evaluation and benchmarks for 乐业助手")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Recall@1/5, MRR, nDCG@10 for dense, BM25 and hybrid retrieval over the evaluation set.
    Retrieval {
        /// The evaluation set.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/retrieval.jsonl"))]
        set: PathBuf,
        /// Folders of documents to index (default: the 16 laws of `eval/data/laws` and the bundled data).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Index folder (reused between runs; ingest skips unchanged files).
        #[arg(long)]
        index: Option<PathBuf>,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Ingest throughput and query latency on the corpus, and on synthetic chunks.
    Bench {
        /// Synthetic chunks for the large-store benchmark.
        #[arg(long, default_value_t = 100_000)]
        synthetic: usize,
        /// Queries timed per store.
        #[arg(long, default_value_t = 50)]
        queries: usize,
    },
    /// Job search on labelled questions: constraint precision, top-5 hit rate, "none" said.
    Jobs {
        /// The labelled set.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/jobs.jsonl"))]
        set: PathBuf,
        /// Index folder (reused between runs; ingest skips unchanged files).
        #[arg(long)]
        index: Option<PathBuf>,
    },
    /// The evidence gate on covered / not-covered questions over the whole corpus: the
    /// configured operating point and a sweep of the thresholds.
    Gate {
        /// Covered / not-covered questions.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/gate.jsonl"))]
        set: PathBuf,
        /// Index folder (shared with `retrieval`; ingest skips unchanged files).
        #[arg(long)]
        index: Option<PathBuf>,
        /// Also write every question's figures as JSON (for choosing thresholds).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Evidence recall on the answer set without the model: the share of covered questions
    /// whose key facts reach the reranked passages, the evidence, the prompt and the extract.
    Evidence {
        /// The answer set.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/answers.jsonl"))]
        set: PathBuf,
        /// Index folder (shared with `retrieval`; ingest skips unchanged files).
        #[arg(long)]
        index: Option<PathBuf>,
        /// Also write every question's row as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Print the best-ranked evidence sentences of these question ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        explain: Vec<String>,
    },
    /// 政策申领 scenarios: the bundled cards (active against the bundled plan and the laws of
    /// `eval/data/laws/`) and the fact reading, precision and recall of "qualified".
    Claims {
        /// The scenarios.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/claims.jsonl"))]
        set: PathBuf,
    },
    /// The router on its labelled set: precision and recall per intent, handoff reasons,
    /// labour-rights messages sent to job search.
    Router {
        /// The labelled set.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/router.jsonl"))]
        set: PathBuf,
    },
    /// Answer quality through the whole pipeline over the whole corpus: key-fact accuracy,
    /// citation accuracy, invented numbers, vacuous answers, false not-covered / answered, TTFT.
    Answers {
        /// The answer set.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/answers.jsonl"))]
        set: PathBuf,
        /// Catalog name of the LLM (`leye models list`); default: the configured one.
        #[arg(long)]
        model: Option<String>,
        /// Only this many questions, spread evenly over the set (the fixed subset for slow
        /// models); 0 runs all.
        #[arg(long, default_value_t = 0)]
        sample: usize,
        /// Also write transcripts, verdicts and figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Chat turns through the whole pipeline: TTFT and turn latency p50/p95 one at a time,
    /// then N sessions at once (queueing without errors).
    Chat {
        /// Questions, one per line.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/chat_questions.txt"))]
        questions: PathBuf,
        /// Sessions sent at once in the load part.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
    },
    /// The counselor's reply to the citizen's widget: send-to-receive p50/p95 over N replies
    /// with M event streams open (console and widgets), and the memory and CPU they cost.
    Console {
        /// Replies timed.
        #[arg(long, default_value_t = 100)]
        messages: usize,
        /// Event streams open during the run (a tenth console, the rest widgets).
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
    },
}

/// The knowledge base of an evaluation: the embedded store in `index`, the configured embedder.
fn open_kb(cfg: &Config, index: &Path) -> anyhow::Result<KnowledgeBase> {
    let store = assistant::retrieval::edge::EdgeStore::open(index)?;
    let embedder = assistant::models::embed::Embedder::load(
        &assistant::model_store::embedder_path(cfg, &mut |_| {})?,
    )?;
    Ok(KnowledgeBase::with_store(
        Box::new(store),
        embedder,
        Default::default(),
    )?)
}

fn default_corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![root.join("eval/data/laws"), root.join("knowledge/data")]
}

fn ingest(kb: &KnowledgeBase, corpus: &[PathBuf]) -> anyhow::Result<(usize, Duration)> {
    let files = KnowledgeBase::collect_files(corpus)?;
    let t = Instant::now();
    let mut chunks = 0;
    for f in &files {
        match kb.ingest_file(f, &mut |_, _| {}) {
            FileReport::Document { outcome, .. } => {
                if let assistant::retrieval::indexer::Outcome::Added(n)
                | assistant::retrieval::indexer::Outcome::Replaced(n) = outcome
                {
                    chunks += n;
                }
            }
            FileReport::Jobs { indexed, .. } => chunks += indexed,
            FileReport::Failed(why) => anyhow::bail!("{}: {why}", f.display()),
        }
        eprint!(".");
    }
    eprintln!();
    Ok((chunks, t.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = Config::load(None)?;
    match args.command {
        Cmd::Retrieval {
            set,
            corpus,
            index,
            json,
        } => {
            let items = eval::retrieval_eval::load(&set)?;
            let corpus = if corpus.is_empty() {
                default_corpus()
            } else {
                corpus
            };
            let index = index.unwrap_or_else(|| cfg.home.join("eval-index"));
            let kb = open_kb(&cfg, &index)?;
            let (n, took) = ingest(&kb, &corpus)?;
            println!(
                "index {}: {n} chunks/listings (re)indexed in {:.1} s",
                index.display(),
                took.as_secs_f64()
            );
            let scores = eval::retrieval_eval::run(&kb, &items)?;
            println!(
                "{} items; job validity judged on {:?}",
                items.len(),
                eval::retrieval_eval::EVAL_DAY
            );
            println!(
                "{:<7} {:<7} {:>4} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8}",
                "mode",
                "kind",
                "n",
                "recall@1",
                "recall@3",
                "recall@5",
                "MRR",
                "nDCG@10",
                "p50 ms",
                "p95 ms"
            );
            for s in &scores {
                println!(
                    "{:<7} {:<7} {:>4} {:>9.3} {:>9.3} {:>9.3} {:>7.3} {:>8.3} {:>8.1} {:>8.1}",
                    s.mode,
                    s.kind,
                    s.n,
                    s.recall_at_1,
                    s.recall_at_3,
                    s.recall_at_5,
                    s.mrr,
                    s.ndcg_at_10,
                    s.p50_ms,
                    s.p95_ms
                );
            }
            if let Some(p) = json {
                std::fs::write(p, serde_json::to_vec_pretty(&scores)?)?;
            }
        }
        Cmd::Bench { synthetic, queries } => bench::run(&cfg, synthetic, queries)?,
        Cmd::Jobs { set, index } => {
            let items = eval::jobs_eval::load(&set)?;
            let index = index.unwrap_or_else(|| cfg.home.join("eval-jobs-index"));
            let kb = open_kb(&cfg, &index)?;
            let jobs_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../knowledge/data/jobs");
            ingest(&kb, &[jobs_dir])?;
            let (y, m, d) = eval::retrieval_eval::EVAL_DAY;
            let today = chrono::NaiveDate::from_ymd_opt(y, m, d)
                .ok_or_else(|| anyhow::anyhow!("bad evaluation day"))?;
            let scores = eval::jobs_eval::run(&kb, &items, today)?;
            eval::jobs_eval::print(&scores);
        }
        Cmd::Gate { set, index, json } => {
            let retrieval_set = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/retrieval.jsonl");
            let items = eval::gate_eval::load(&set, &retrieval_set)?;
            let index = index.unwrap_or_else(|| cfg.home.join("eval-index"));
            let kb = open_kb(&cfg, &index)?;
            ingest(&kb, &default_corpus())?;
            let figs = eval::gate_eval::figures(&kb, &items, cfg.dialogue.evidence_k)?;
            eval::gate_eval::print(&items, &figs, &cfg.dialogue);
            if let Some(p) = json {
                let rows: Vec<_> = items
                    .iter()
                    .zip(&figs)
                    .map(|(i, f)| serde_json::json!({"question": i.question, "covered": i.covered, "figures": f}))
                    .collect();
                std::fs::write(p, serde_json::to_vec_pretty(&rows)?)?;
            }
        }
        Cmd::Evidence {
            set,
            index,
            json,
            explain,
        } => {
            let items = eval::answers_eval::load(&set)?;
            let index = index.unwrap_or_else(|| cfg.home.join("eval-index"));
            let kb = open_kb(&cfg, &index)?;
            ingest(&kb, &default_corpus())?;
            let rows = eval::evidence_eval::run(&kb, &items, &cfg.dialogue, &explain)?;
            eval::evidence_eval::print(&items, &rows);
            let passed = eval::evidence_eval::uncovered_passed(&kb, &items, &cfg.dialogue)?;
            eval::evidence_eval::print_floors(&rows, &passed);
            if let Some(p) = json {
                std::fs::write(p, serde_json::to_vec_pretty(&rows)?)?;
            }
        }
        Cmd::Claims { set } => {
            let items = eval::claims_eval::load(&set)?;
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let (docs, errors) = knowledge::benefits::check::load_documents(&[
                root.join("knowledge/data/policies"),
                root.join("eval/data/laws"),
            ]);
            anyhow::ensure!(errors.is_empty(), "documents not read: {errors:?}");
            let cards = knowledge::benefits::load_dir(&knowledge::benefits::bundled_dir())?;
            let benefits = assistant::dialogue::claims::Benefits::active(cards, &docs);
            println!("{} active cards", benefits.cards().len());
            let report = eval::claims_eval::run(&items, &benefits, 2026);
            eval::claims_eval::print(&report);
        }
        Cmd::Router { set } => {
            let items = eval::router_eval::load(&set)?;
            let embedder = assistant::models::embed::Embedder::load(
                &assistant::model_store::embedder_path(&cfg, &mut |_| {})?,
            )?;
            let embed =
                |t: &[&str]| -> anyhow::Result<Vec<Vec<f32>>> { Ok(embedder.embed(t, true)?) };
            let router = eval::router_eval::product_router(&embed)?;
            let report = eval::router_eval::run(&items, |text| {
                let text = assistant::guard::citizen_text(text);
                let v = embedder.embed_query(&text).ok();
                router.route(&text, v.as_deref())
            });
            println!("{} messages in {}", items.len(), set.display());
            eval::router_eval::print(&report);
        }
        Cmd::Answers {
            set,
            model,
            sample,
            json,
        } => answers_run::run(
            &cfg,
            &default_corpus(),
            answers_run::Options {
                set,
                model,
                sample,
                json,
            },
        )?,
        Cmd::Chat {
            questions,
            parallel,
        } => chat_bench::run(&cfg, &questions, parallel)?,
        Cmd::Console {
            messages,
            subscribers,
        } => console_bench::run(&cfg, messages, subscribers)?,
    }
    Ok(())
}

mod answers_run;
mod bench;
mod chat_bench;
mod console_bench;
