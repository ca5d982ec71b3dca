//! The counselor console API (the queue, behind a bearer token for now).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::domain::constant_time_eq;

/// Whether `headers` carry `Authorization: Bearer <expected>`.
pub(super) fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
}

/// `GET /api/v1/console/queue`: waiting escalations in arrival order.
pub async fn queue(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(token) = state.server.console_token.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "console_disabled",
            "未配置 server.console_token，控制台接口已关闭",
        ));
    };
    if !bearer_matches(&headers, token.expose()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "需要有效的控制台令牌",
        ));
    }
    let now = crate::store::now_ms();
    let queue: Vec<serde_json::Value> = state
        .assistant
        .db()
        .waiting()
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "position": i + 1, "ticket_id": e.id, "session_id": e.session_id,
                "reason": e.reason, "intent": e.intent, "summary": e.summary,
                "waiting_seconds": (now - e.created_at) / 1000,
            })
        })
        .collect();
    Ok(Json(json!({ "queue": queue })))
}
