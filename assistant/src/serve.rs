//! Start-up of the service: storage, knowledge (bundled documents and listings ingested when
//! new or changed), models, router, then the listening socket. Used by `leye serve`, by
//! `leye ask` (without the socket) and by the end-to-end tests (on 127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::config::Config;
use crate::dialogue::Assistant;
use crate::guard::client_ip::TrustedProxies;
use crate::guard::{InFlight, RateLimiter};
use crate::http::AppState;
use crate::knowledge_base::{FileReport, KbError, KnowledgeBase};
use crate::metrics::Metrics;
use crate::store::{Db, DbError};
use crate::turns::{HubConfig, TurnHub};

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
    /// A setting is unusable (normally caught by `Config::validate`).
    #[error("configuration: {0}")]
    Config(String),
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
                FileReport::Failed(e) => format!(
                    "跳过 {}：{}",
                    f.display(),
                    crate::http::error::error_chain(&e)
                ),
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
    let router = tokio::task::spawn_blocking(move || Assistant::router_for(rkb.as_ref()))
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
    Ok(Assistant::new(
        kb,
        Arc::new(generator),
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
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections, lets in-flight answers finish (up to the grace period),
    /// and waits for the server to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.housekeeping.abort();
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
        let r = self.task.await.map_err(std::io::Error::other)?;
        self.housekeeping.abort();
        r
    }
}

/// Binds and serves `assistant`; `stop` ends it gracefully when it resolves.
pub async fn start(
    cfg: &Config,
    assistant: Assistant,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let s = &cfg.server;
    let proxies = TrustedProxies::new(&s.trusted_proxies);
    let hub = Arc::new(TurnHub::new(HubConfig {
        abandon_grace: Duration::from_secs(s.abandon_grace_secs),
        keep_after_done: Duration::from_secs(s.resume_window_secs),
        ..HubConfig::default()
    }));
    let state = Arc::new(AppState {
        assistant,
        server: s.clone(),
        privacy: cfg.privacy.clone(),
        ip_limiter: RateLimiter::new(s.ip_per_minute, s.ip_burst),
        session_limiter: RateLimiter::new(s.session_per_minute, s.session_burst),
        session_creation_limiter: RateLimiter::new(s.sessions_per_minute, s.sessions_burst),
        in_flight_session: InFlight::new(s.max_in_flight_per_session),
        in_flight_ip: InFlight::new(s.max_in_flight_per_ip),
        proxies,
        hub,
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
    let task = tokio::spawn(accept_loop(listener, app, s.clone(), async move {
        tokio::select! {
            _ = rx => {},
            _ = stop => {},
        }
    }));
    let housekeeping = tokio::spawn(purge_loop(
        state.assistant.db().clone(),
        cfg.privacy.retention_days,
    ));
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
        housekeeping,
    })
}

/// Accepts connections up to `server.max_connections` and serves each with hyper's HTTP/1,
/// under a header read timeout (which also closes idle kept-alive connections). When `stop`
/// resolves: the listener closes (new connections are refused), every connection is told to
/// finish its response in flight and close, and this returns once all have.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    cfg: crate::config::ServerConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let max = cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs))
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let app = app.clone();
        let http = http.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    async move {
                        tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await
                    }
                },
            );
            let conn = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                // Timeouts and clients that hang up end up here; nothing to do but note it.
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing answers in flight");
    closing_tx.send_replace(true);
    // Every connection holds a permit: having them all back means every connection ended.
    let _all = permits.acquire_many(max as u32).await;
    Ok(())
}

/// Deletes conversations past the retention period, at start and then hourly.
async fn purge_loop(db: Db, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let before = crate::store::now_ms() - i64::from(retention_days) * 86_400_000;
        match db.purge_inactive(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sessions = n,
                retention_days,
                "expired conversations deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "deleting expired conversations failed"),
        }
    }
}
