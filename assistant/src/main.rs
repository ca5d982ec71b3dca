//! `leye`: the command-line entry of 乐业助手. This file only parses arguments and wires them
//! to [`cli`]; errors are reported here, once, with their full chain.

mod cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "leye",
    version,
    about = "乐业助手 — AI employment assistant (local LLM, grounded answers)"
)]
struct Args {
    /// Config file (default: $LEYE_CONFIG, else ./leye.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage local model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Add documents (md, txt, html, docx, pdf) and job listings (jsonl, csv) to the knowledge
    /// base; unchanged files are skipped, changed ones replaced.
    Ingest {
        /// Files or folders.
        paths: Vec<PathBuf>,
        /// Remove the document with this id (its file name without extension) instead.
        #[arg(long, value_name = "DOC_ID")]
        remove: Vec<String>,
    },
    /// Search the knowledge base and print ranked hits with their sections.
    Search(cli::SearchArgs),
    /// Ask the assistant one question in the terminal, through the same pipeline as the
    /// service (retrieval, verified answer with sources, job cards, handoff).
    Ask {
        /// The question, in Chinese.
        question: String,
        /// Continue this session (follow-ups, profile).
        #[arg(long)]
        session: Option<String>,
    },
    /// Counselor console accounts (argon2id passwords; roles counselor, supervisor, admin).
    Counselor {
        #[command(subcommand)]
        command: CounselorCommand,
    },
    /// Benefit cards (政策申领): check every quoted span against its document, or list the
    /// cards and whether each is active.
    Cards {
        #[command(subcommand)]
        command: CardsCommand,
    },
    /// WeChat Official Account tools.
    Wechat {
        #[command(subcommand)]
        command: WechatCommand,
    },
    /// Run the service: ingest the bundled knowledge when new or changed, load the models,
    /// serve the API and the web chat on `server.bind` (default http://127.0.0.1:8080/).
    Serve {
        /// Listen here instead of `server.bind`.
        #[arg(long)]
        bind: Option<String>,
    },
}

#[derive(Subcommand)]
enum CardsCommand {
    /// Checks every card's quoted spans verbatim against its source document (among the
    /// documents of `knowledge.paths` and `--docs`); fails naming card, field and document.
    Check {
        /// More folders or files of documents (e.g. your copies of the laws).
        #[arg(long)]
        docs: Vec<PathBuf>,
    },
    /// Lists the cards and whether each is active against the knowledge base (its document
    /// ingested, its spans found) — what `leye serve` loads.
    List {
        /// Document files to count as if ingested (a preview before `leye ingest`).
        #[arg(long)]
        docs: Vec<PathBuf>,
    },
    /// Proposes card drafts (TOML, for a person to review) from a document's articles that
    /// grant something; drafts are never loaded until reviewed and moved into the cards folder.
    Draft {
        /// The document (md, txt, html, docx, pdf).
        doc: PathBuf,
        /// Where to write the drafts.
        #[arg(long, default_value = "benefit-drafts")]
        out: PathBuf,
    },
    /// The facts a card's conditions may use.
    Facts,
}

#[derive(Subcommand)]
enum WechatCommand {
    /// Create the Official Account's menu from a TOML file (checked against WeChat's rules
    /// first; needs `[wechat.mp]` enabled with appid and secret).
    Menu {
        /// The menu file.
        file: PathBuf,
        /// Only check the file and print the JSON that would be sent.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum CounselorCommand {
    /// Add an account; the initial password is printed once (or read from stdin).
    Add {
        /// Login name (letters, digits, '.', '_', '-').
        username: String,
        /// Name shown to citizens ("职业指导师 NAME 已接入").
        #[arg(long)]
        name: String,
        /// counselor, supervisor or admin.
        #[arg(long, default_value = "counselor")]
        role: String,
        /// Read the password (one line) from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts with role and state.
    List,
    /// Disable an account and sign it out everywhere.
    Disable {
        /// Login name.
        username: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Login name.
        username: String,
    },
    /// Set a new password (printed once, or read from stdin); signs out everywhere.
    ResetPassword {
        /// Login name.
        username: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download, assemble and verify models (default: the default LLM and embedder).
    Fetch {
        /// Catalog names (see `leye models list`).
        names: Vec<String>,
    },
    /// Show catalog models and whether each is installed and verified.
    List,
    /// Re-hash installed model files against the catalog.
    Verify {
        /// Catalog names (default: all installed).
        names: Vec<String>,
    },
    /// Measure load time, prefill and decode speed, TTFT, memory; embedder throughput.
    Bench {
        /// Runs per figure (the median is printed).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Tokens decoded per run.
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        /// Also measure the speed levers: Q5_0 re-quantization and prefill weight modes.
        #[arg(long)]
        compare: bool,
        /// Skip the LLM.
        #[arg(long)]
        no_llm: bool,
        /// Skip the embedder.
        #[arg(long)]
        no_embedder: bool,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Prefill exactly this many tokens (as `llama-bench -p N`) instead of the chat prompt.
        #[arg(long)]
        prompt_tokens: Option<usize>,
        /// Also measure batched decoding at these batch sizes (e.g. `1,2,4,8`): total and
        /// per-sequence tokens/s and the memory of that many conversations.
        #[arg(long, value_delimiter = ',')]
        batch: Vec<usize>,
        /// Conversation length in tokens for `--batch`.
        #[arg(long, default_value_t = 2048)]
        context: usize,
    },
    /// Print the file of a catalog LLM (default: `llm.model`), fetching it when missing.
    Path {
        /// Catalog name.
        name: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    assistant::telemetry::init();
    assistant::telemetry::log_simd();
    let result = (|| -> anyhow::Result<()> {
        let cfg = assistant::config::Config::load(args.config.as_deref())?;
        match args.command {
            Command::Models { command } => match command {
                ModelsCommand::Fetch { names } => cli::models_fetch(&cfg, &names),
                ModelsCommand::List => cli::models_list(&cfg),
                ModelsCommand::Verify { names } => cli::models_verify(&cfg, &names),
                ModelsCommand::Bench {
                    repeats,
                    decode_tokens,
                    compare,
                    no_llm,
                    no_embedder,
                    json,
                    prompt_tokens,
                    batch,
                    context,
                } => cli::models_bench(
                    &cfg,
                    &cli::BenchArgs {
                        repeats,
                        decode_tokens,
                        compare,
                        llm: !no_llm,
                        embedder: !no_embedder,
                        json,
                        prompt_tokens,
                        batch,
                        context,
                    },
                ),
                ModelsCommand::Path { name } => cli::models_path(&cfg, name.as_deref()),
            },
            Command::Ingest { paths, remove } => cli::ingest(&cfg, &paths, &remove),
            Command::Search(args) => cli::search(&cfg, &args),
            Command::Ask { question, session } => cli::ask(&cfg, &question, session),
            Command::Counselor { command } => cli::counselor(
                &cfg,
                match command {
                    CounselorCommand::Add {
                        username,
                        name,
                        role,
                        password_stdin,
                    } => cli::CounselorAction::Add {
                        username,
                        name,
                        role,
                        password_stdin,
                    },
                    CounselorCommand::List => cli::CounselorAction::List,
                    CounselorCommand::Disable { username } => {
                        cli::CounselorAction::Disable(username)
                    }
                    CounselorCommand::Enable { username } => cli::CounselorAction::Enable(username),
                    CounselorCommand::ResetPassword {
                        username,
                        password_stdin,
                    } => cli::CounselorAction::ResetPassword {
                        username,
                        password_stdin,
                    },
                },
            ),
            Command::Cards { command } => match command {
                CardsCommand::Check { docs } => cli::cards(&cfg, &docs, false),
                CardsCommand::List { docs } => cli::cards(&cfg, &docs, true),
                CardsCommand::Draft { doc, out } => cli::cards_draft(&doc, &out),
                CardsCommand::Facts => {
                    for (name, _, label) in knowledge::benefits::rules::FACTS {
                        println!("{name:<26} {label}");
                    }
                    Ok(())
                }
            },
            Command::Wechat {
                command: WechatCommand::Menu { file, dry_run },
            } => cli::wechat_menu(&cfg, &file, dry_run),
            Command::Serve { bind } => {
                let mut cfg = cfg;
                if let Some(b) = bind {
                    cfg.server.bind = b;
                    cfg.validate()?;
                }
                cli::serve(&cfg)
            }
        }
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
