//! The HTTP service (axum): the v1 API of DESIGN.md, health and metrics, and the web widget.
//!
//! - [`error`]: [`ApiError`], the one error shape `{"error": {"code", "message"}}`.
//! - [`extract`]: JSON bodies under size and time limits, the client address, session auth.
//! - [`middleware`]: request span and metrics, transport limits, per-IP rate limit.
//! - [`chat`], [`sessions`], [`console`], [`events`], [`ops`], `web`, [`wechat`] (the Official
//!   Account), [`miniprogram`]: one file per route group.
//!
//! A conversation belongs to whoever holds its token: every call on a session but its
//! creation presents `X-Session-Token`. Turns run in their own task and are resumable, so a
//! dropped connection neither loses the answer nor keeps the model busy for nobody.

pub mod chat;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod middleware;
pub mod miniprogram;
pub mod ops;
pub mod sessions;
mod web;
pub mod wechat;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, Method, StatusCode};
use axum::routing::{get, post};
use axum::Router;

use crate::config::{PrivacyConfig, ServerConfig};
use crate::dialogue::Assistant;
use crate::guard::client_ip::TrustedProxies;
use crate::guard::{InFlight, RateLimiter};
use crate::turns::TurnHub;
pub use error::ApiError;

/// Shared state of the handlers.
pub struct AppState {
    /// The dialogue pipeline.
    pub assistant: Assistant,
    /// Limits and tokens.
    pub server: ServerConfig,
    /// Retention (for the privacy notice).
    pub privacy: PrivacyConfig,
    /// Per-IP limiter for API calls.
    pub ip_limiter: RateLimiter,
    /// Per-session limiter for messages.
    pub session_limiter: RateLimiter,
    /// Per-IP limiter for new sessions.
    pub session_creation_limiter: RateLimiter,
    /// Model requests in flight per session.
    pub in_flight_session: Arc<InFlight>,
    /// Model requests in flight per client IP.
    pub in_flight_ip: Arc<InFlight>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: TrustedProxies,
    /// Resumable turn events.
    pub hub: Arc<TurnHub>,
    /// The counselor workspace (console sign-in, queue, replies, audit) and its event bus.
    pub workspace: crate::console::Workspace,
    /// WeChat: the Official Account and mini-program apps, sockets open, the outbox.
    pub wechat: crate::wechat::Wechat,
    /// The outbox's counters.
    pub outbox_metrics: Arc<crate::wechat::outbox::OutboxMetrics>,
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/chat", post(chat::chat))
        .route("/api/v1/chat/stream", post(chat::chat_stream))
        .route("/api/v1/privacy", get(sessions::privacy))
        .route("/api/v1/sessions", post(sessions::create))
        .route(
            "/api/v1/sessions/{id}",
            get(sessions::transcript).delete(sessions::delete),
        )
        .route("/api/v1/sessions/{id}/feedback", post(sessions::feedback))
        .route("/api/v1/sessions/{id}/handoff", post(sessions::handoff))
        .route("/api/v1/sessions/{id}/callback", post(sessions::callback))
        .route(
            "/api/v1/sessions/{id}/turns/{turn_id}/events",
            get(chat::resume),
        )
        .route("/api/v1/sessions/{id}/events", get(events::session_events))
        .route("/api/v1/miniprogram/login", post(miniprogram::login))
        .route("/api/v1/miniprogram/chat", post(miniprogram::chat))
        .route("/api/v1/miniprogram/sessions", get(miniprogram::sessions))
        .route("/api/v1/ws", get(miniprogram::socket))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limit_ip,
        ))
        // The widget may be embedded on any site and calls this API from there. No cookies
        // are used (sessions prove themselves with a header), so any origin may call.
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static(extract::SESSION_TOKEN_HEADER),
                    HeaderName::from_static("last-event-id"),
                ])
                .max_age(Duration::from_secs(3600)),
        );
    let body_timeout = Duration::from_secs(state.server.body_read_timeout_secs);
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // WeChat's servers, verified by signature: outside the per-IP limits.
        .route("/wechat/mp", get(wechat::check).post(wechat::receive))
        .merge(web::routes())
        .merge(console::routes(&state))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "没有这个地址")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "该地址不支持这种请求方法",
            )
        })
        // The body size limit the JSON extractor reads under (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::max(
            state.server.max_body_bytes,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::transport_limits,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}
