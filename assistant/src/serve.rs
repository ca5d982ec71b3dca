//! The transport: the accept loop (connection cap, header timeout, graceful shutdown), the
//! retention purge, and [`Running`], the handle of a started server. What runs behind it is
//! wired in [`crate::app`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::http::AppState;
use crate::store::Db;

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

/// Binds `state.server.bind` and serves the router over `state`; `stop` ends it gracefully.
pub(crate) async fn listen(
    state: Arc<AppState>,
    retention_days: u32,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<Running> {
    let s = &state.server;
    let listener = tokio::net::TcpListener::bind(&s.bind).await?;
    let addr = listener.local_addr()?;
    let app = crate::http::router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(accept_loop(listener, app, s.clone(), async move {
        tokio::select! {
            _ = rx => {},
            _ = stop => {},
        }
    }));
    let db = state.assistant.db().clone();
    let workspace = state.workspace.clone();
    let wechat = state.wechat.clone();
    let outbox_metrics = state.outbox_metrics.clone();
    let housekeeping = tokio::spawn(async move {
        tokio::join!(
            purge_loop(workspace, retention_days),
            sample_queue(db.clone()),
            wechat_loops(wechat, outbox_metrics, db),
        );
    });
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

/// Every five minutes, the queue length goes into the day's aggregates (mean and peak).
async fn sample_queue(db: Db) {
    let mut every = tokio::time::interval(Duration::from_secs(300));
    loop {
        every.tick().await;
        let n = match db.waiting_count().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "queue length not sampled");
                continue;
            }
        };
        let day = crate::store::day_of(crate::store::now_ms());
        let result = async {
            db.bump_stat(&day, "queue_samples", "", 1).await?;
            db.bump_stat(&day, "queue_sum", "", n).await?;
            db.raise_stat(&day, "queue_peak", "", n).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "queue length not stored");
        }
    }
}

/// WeChat's background work: the outbox worker, access tokens kept fresh (one task per app),
/// and the daily forgetting of old message keys and delivered outbox rows.
async fn wechat_loops(
    wechat: crate::wechat::Wechat,
    metrics: Arc<crate::wechat::outbox::OutboxMetrics>,
    db: Db,
) {
    if wechat.mp.is_none() && wechat.miniprogram.is_none() {
        return;
    }
    let tokens = async {
        match (wechat.mp.clone(), wechat.miniprogram.clone()) {
            (Some(a), Some(b)) => {
                tokio::join!(a.keep_token_fresh(), b.keep_token_fresh());
            }
            (Some(a), None) | (None, Some(a)) => a.keep_token_fresh().await,
            (None, None) => {}
        }
    };
    let forget = async {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let day_ago = crate::store::now_ms() - 86_400_000;
            if let Err(e) = db.purge_dedup(day_ago).await {
                tracing::warn!(error = %e, "old WeChat message keys not deleted");
            }
            let week_ago = crate::store::now_ms() - 7 * 86_400_000;
            if let Err(e) = db.purge_outbox(week_ago).await {
                tracing::warn!(error = %e, "old outbox rows not deleted");
            }
        }
    };
    tokio::join!(wechat.clone().run_outbox(metrics), tokens, forget);
}

/// Deletes conversations past the retention period, at start and then hourly.
async fn purge_loop(workspace: crate::console::Workspace, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match workspace.purge_expired(retention_days).await {
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
