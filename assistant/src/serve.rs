//! Start-up of the service: storage, knowledge (bundled documents and listings ingested when
//! new or changed), models, router, then the listening socket. Used by `leye serve`, by
//! `leye ask` (without the socket) and by the end-to-end tests (on 127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::Config;
use crate::dialogue::Assistant;
use crate::guard::RateLimiter;
use crate::http::AppState;
use crate::knowledge_base::{FileReport, KbError, KnowledgeBase};
use crate::metrics::Metrics;
use crate::store::{Db, DbError};

/// Start-up failures, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("opening the database: {0}")]
    Db(#[from] DbError),
    /// The knowledge base failed.
    #[error("opening the knowledge base: {0}")]
    Kb(#[from] KbError),
    /// A model failed to load.
    #[error("loading a model: {0}")]
    Model(#[from] models::Error),
    /// The address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A start-up task panicked or was cancelled.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Progress lines for people (start-up takes a while on first run).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Builds the assistant: storage, knowledge base (+ bundled ingest), LLM worker, router.
pub async fn assemble(cfg: &Config, progress: Progress) -> Result<Assistant, ServeError> {
    let url = cfg.database_url();
    let db = Db::open(&url).await?;
    progress(&format!("数据库就绪（{:?}）", db.backend()));

    let kb_cfg = cfg.clone();
    let p = progress.clone();
    let kb = tokio::task::spawn_blocking(move || -> Result<KnowledgeBase, ServeError> {
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
                FileReport::Failed(e) => format!("跳过 {}：{e}", f.display()),
            };
            p(&line);
        }
        kb.store().flush().map_err(KbError::from)?;
        Ok(kb)
    })
    .await
    .map_err(|e| ServeError::Task(e.to_string()))??;
    let kb = Arc::new(kb);

    let llm_cfg = cfg.clone();
    let llm = tokio::task::spawn_blocking(move || -> Result<models::llm::Llm, ServeError> {
        let mut fetch = crate::model_store::quiet_progress();
        let path = crate::model_store::llm_path(&llm_cfg, &mut fetch)?;
        Ok(models::llm::Llm::load(&path, &llm_cfg.llm.load)?)
    })
    .await
    .map_err(|e| ServeError::Task(e.to_string()))??;
    progress(&format!("语言模型就绪（{}）", llm.info().arch));
    // The worker thread ends when the last generator handle is dropped.
    let (generator, _worker) = models::generator::Generator::spawn(llm, cfg.llm.queue_capacity)?;

    let rkb = kb.clone();
    let router = tokio::task::spawn_blocking(move || Assistant::router_for(&rkb))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
    Ok(Assistant::new(
        kb,
        generator,
        router,
        db,
        cfg.dialogue.clone(),
        Arc::new(Metrics::default()),
    ))
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (tests query the database through it).
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections, lets in-flight answers finish (up to the grace period),
    /// and waits for the server to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let grace = Duration::from_secs(self.state.server.shutdown_grace_secs);
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(r) => r.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!("in-flight answers did not finish within the grace period");
                self.task.abort();
                Ok(())
            }
        }
    }

    /// Waits until the server ends (after [`Running::shutdown`] or a signal handled by the
    /// caller).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds and serves `assistant`; `stop` ends it gracefully when it resolves.
pub async fn start(
    cfg: &Config,
    assistant: Assistant,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let s = &cfg.server;
    let state = Arc::new(AppState {
        assistant,
        server: s.clone(),
        ip_limiter: RateLimiter::new(s.ip_per_minute, s.ip_burst),
        session_limiter: RateLimiter::new(s.session_per_minute, s.session_burst),
    });
    let listener = tokio::net::TcpListener::bind(&s.bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: s.bind.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: s.bind.clone(),
        source,
    })?;
    let app = crate::http::router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = rx => {},
                _ = stop => {},
            }
            tracing::info!("shutting down: no new connections, finishing answers in flight");
        })
        .await
    });
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}
