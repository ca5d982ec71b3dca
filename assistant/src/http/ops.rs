//! Operations: liveness, readiness and Prometheus metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;

/// `GET /readyz`: database and model worker.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let db = state.assistant.db().ping().await.is_ok();
    let model = !state.assistant.model_queue().stopped;
    let body = json!({"ready": db && model, "checks": {"database": db, "model": model, "knowledge": true}});
    let status = if db && model {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: with `server.metrics_token` set, only with that bearer token; otherwise
/// only for loopback peers (a Prometheus on the same host, or through an SSH tunnel). The
/// peer is the socket's, never `X-Forwarded-For`.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let allowed = match &state.server.metrics_token {
        Some(t) => bearer_matches(&headers, t.expose()),
        None => peer.ip().is_loopback(),
    };
    if !allowed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "指标接口仅对本机或持有令牌的请求开放",
        )
        .into_response();
    }
    let mut text = state
        .assistant
        .metrics()
        .render(&state.assistant.model_queue());
    state.outbox_metrics.render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Whether `headers` carry `Authorization: Bearer <expected>`.
fn bearer_matches(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|g| crate::domain::constant_time_eq(g.as_bytes(), expected.as_bytes()))
}
