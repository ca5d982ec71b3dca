//! The application: the one place that wires the parts together. [`Application::build`]
//! opens storage, the knowledge base (ingesting the bundled documents and listings when new or
//! changed), the models and the router; [`Application::start`] adds the HTTP state and the
//! listening socket. Used by `leye serve`, by `leye ask` (without the socket), by the eval
//! runner and by the end-to-end tests (on 127.0.0.1:0).

use std::sync::Arc;
use std::time::Duration;

use crate::bus::{EventBus, LocalBus};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::console::{SealError, Sealer, Workspace};
use crate::dialogue::Assistant;
use crate::guard::client_ip::TrustedProxies;
use crate::guard::{InFlight, RateLimiter};
use crate::http::error::error_chain;
use crate::http::AppState;
use crate::knowledge_base::{FileReport, KbError, KnowledgeBase};
use crate::metrics::Metrics;
use crate::serve::Running;
use crate::store::{Db, DbError};
use crate::turns::{HubConfig, TurnHub};

/// Start-up failures, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("opening the database")]
    Db(#[from] DbError),
    /// The knowledge base failed.
    #[error("opening the knowledge base")]
    Kb(#[from] KbError),
    /// A model failed to load.
    #[error("loading a model")]
    Model(#[from] models::Error),
    /// The address could not be bound.
    #[error("listening on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key sealing callback numbers could not be read or made.
    #[error("the callback key")]
    Seal(#[from] SealError),
    /// A start-up task panicked or was cancelled.
    #[error("a start-up task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Progress lines for people (start-up takes a while on first run).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// The assembled application: configuration and assistant, ready to serve.
pub struct Application {
    cfg: Config,
    assistant: Assistant,
    clock: SharedClock,
}

impl Application {
    /// Builds the assistant: storage, knowledge base (+ bundled ingest), LLM worker, router.
    pub async fn build(cfg: &Config, progress: Progress) -> Result<Self, StartError> {
        Ok(Self {
            cfg: cfg.clone(),
            assistant: assemble(cfg, progress).await?,
            clock: Arc::new(SystemClock),
        })
    }

    /// An application around an assistant built elsewhere (a second listener over the same
    /// parts; tests over fake models).
    pub fn from_parts(cfg: Config, assistant: Assistant) -> Self {
        Self {
            cfg,
            assistant,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same application reading time from `clock` (console expiry, lockout, SLA), so
    /// tests move time instead of sleeping.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }

    /// The assistant (for `leye ask` and the eval runner, which need no socket).
    pub fn assistant(&self) -> &Assistant {
        &self.assistant
    }

    /// The assistant alone (no socket will be opened).
    pub fn into_assistant(self) -> Assistant {
        self.assistant
    }

    /// Binds `server.bind` and serves; `stop` ends it gracefully when it resolves.
    pub async fn start(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Running, StartError> {
        let cfg = &self.cfg;
        let s = &cfg.server;
        let hub = Arc::new(TurnHub::new(HubConfig {
            abandon_grace: Duration::from_secs(s.abandon_grace_secs),
            keep_after_done: Duration::from_secs(s.resume_window_secs),
            ..HubConfig::default()
        }));
        let bus: Arc<dyn EventBus> = Arc::new(LocalBus::default());
        let sealer = Sealer::load(
            cfg.console.callback_key.as_ref().map(|k| k.expose()),
            &cfg.home,
        )?;
        let workspace = Workspace::new(
            self.assistant.db().clone(),
            bus,
            self.clock.clone(),
            cfg.console.clone(),
            sealer,
        );
        let wechat = crate::wechat::Wechat::new(&cfg.wechat, self.assistant.db().clone());
        let state = Arc::new(AppState {
            assistant: self.assistant.with_workspace(workspace.clone()),
            server: s.clone(),
            privacy: cfg.privacy.clone(),
            ip_limiter: RateLimiter::new(s.ip_per_minute, s.ip_burst),
            session_limiter: RateLimiter::new(s.session_per_minute, s.session_burst),
            session_creation_limiter: RateLimiter::new(s.sessions_per_minute, s.sessions_burst),
            in_flight_session: InFlight::new(s.max_in_flight_per_session),
            in_flight_ip: InFlight::new(s.max_in_flight_per_ip),
            proxies: TrustedProxies::new(&s.trusted_proxies),
            hub,
            workspace,
            wechat,
            outbox_metrics: Arc::default(),
        });
        crate::serve::listen(state, cfg.privacy.retention_days, stop)
            .await
            .map_err(|source| StartError::Bind {
                addr: s.bind.clone(),
                source,
            })
    }
}

async fn assemble(cfg: &Config, progress: Progress) -> Result<Assistant, StartError> {
    let url = cfg.database_url();
    let db = Db::open(&url).await?;
    progress(&format!("数据库就绪（{:?}）", db.backend()));

    let kb_cfg = cfg.clone();
    let p = progress.clone();
    let kb = tokio::task::spawn_blocking(move || -> Result<KnowledgeBase, StartError> {
        let mut fetch = crate::model_store::quiet_progress();
        let kb = KnowledgeBase::open(&kb_cfg, &mut fetch)?;
        let files = KnowledgeBase::collect_files(&kb_cfg.knowledge.paths)?;
        for f in files {
            let report = kb.ingest_file(&f, &mut |_, _| {});
            let line = match report {
                FileReport::Document { doc_id, outcome } => format!("知识：{doc_id} {outcome:?}"),
                FileReport::Jobs {
                    indexed,
                    unchanged,
                    errors,
                } => format!(
                    "岗位：{} 新增/更新 {indexed}，未变 {unchanged}，错误行 {}",
                    f.display(),
                    errors.len()
                ),
                FileReport::Failed(e) => format!("跳过 {}：{}", f.display(), error_chain(&e)),
            };
            p(&line);
        }
        kb.store().flush().map_err(KbError::from)?;
        Ok(kb)
    })
    .await??;
    let kb = Arc::new(kb);

    let llm_cfg = cfg.clone();
    let llm = tokio::task::spawn_blocking(move || -> Result<models::llm::Llm, StartError> {
        let mut fetch = crate::model_store::quiet_progress();
        let path = crate::model_store::llm_path(&llm_cfg, &mut fetch)?;
        Ok(models::llm::Llm::load(&path, &llm_cfg.llm.load)?)
    })
    .await??;
    progress(&format!("语言模型就绪（{}）", llm.info().arch));
    // The worker thread ends when the last generator handle is dropped.
    let (generator, _worker) = models::generator::Generator::spawn_with(
        llm,
        models::generator::GeneratorOptions {
            queue_capacity: cfg.llm.queue_capacity,
            max_batch: cfg.llm.max_batch,
            prefill_chunk: cfg.llm.prefill_chunk,
        },
    )?;

    let rkb = kb.clone();
    let router = tokio::task::spawn_blocking(move || Assistant::router_for(rkb.as_ref())).await??;
    let bcfg = cfg.clone();
    let bkb = kb.clone();
    let benefits = tokio::task::spawn_blocking(move || load_benefits(&bcfg, &bkb)).await?;
    progress(&format!("政策申领卡片：{} 张可用", benefits.cards().len()));
    Ok(Assistant::new(
        kb,
        Arc::new(generator),
        router,
        db,
        cfg.dialogue.clone(),
        Arc::new(Metrics::default()),
    )
    .with_benefits(benefits))
}

/// The benefit cards of `knowledge.benefits` that are active against the documents in the
/// knowledge base now (the bundled `knowledge.paths`, ingested at start, and whatever an
/// operator added with `leye ingest`). Cards that cannot be read are logged and left out: the
/// service runs without them rather than not at all.
pub fn load_benefits(cfg: &Config, kb: &KnowledgeBase) -> crate::dialogue::claims::Benefits {
    let cards = match knowledge::benefits::load_dir(&cfg.knowledge.benefits) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "benefit cards not loaded");
            return Default::default();
        }
    };
    let docs = match kb.documents() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "documents not read for the benefit cards");
            return Default::default();
        }
    };
    let total = cards.len();
    let b = crate::dialogue::claims::Benefits::active(cards, &docs);
    tracing::info!(active = b.cards().len(), total, "benefit cards");
    b
}
