//! [`ApiError`]: the only error response of the service, `{"error": {"code", "message"}}` with
//! a stable snake_case code. Server errors reveal nothing internal; their cause is logged once,
//! here at the edge.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::dialogue::TurnError;
use crate::store::DbError;

/// An API error: status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    retry_after: Option<u64>,
    close: bool,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            close: false,
        }
    }

    /// The same error, answered with `Connection: close`: for refusals made before the request
    /// body was read. The unread body would otherwise be taken as the next request, so the
    /// server drops the connection after answering; saying so keeps a client from sending its
    /// next request on a connection that is about to close (a lost request, not an answer).
    pub fn closing(self) -> Self {
        Self {
            close: true,
            ..self
        }
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("请求过于频繁，请{secs}秒后再试"),
            )
        }
    }

    /// 429: the caller already has as many questions waiting as allowed.
    pub fn too_many_in_flight() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_in_flight",
                "您还有问题正在回答中，请等上一个回答结束后再提问",
            )
        }
    }

    /// 413: a text field over its limit; `what` names it for people (消息, 意见, 留言).
    pub fn too_long(what: &str, max_chars: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
            format!("{what}不能超过{max_chars}字"),
        )
    }

    /// 404 for a session: the same for an unknown id, a wrong token and a missing token, so
    /// that nobody can learn which ids exist.
    pub fn session_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "会话不存在或凭证无效",
        )
    }

    /// 404 for a turn id that is not an answer of this session.
    pub fn turn_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "turn_not_found", "没有这条回答")
    }

    /// 500 that logs its cause.
    pub fn internal(code: &'static str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(cause), code, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, "服务暂时不可用")
    }

    /// The status a turn's `error` event code stands for (non-streaming answers).
    pub fn from_event(code: &'static str, message: String) -> Self {
        let status = match code {
            "model_busy" => StatusCode::SERVICE_UNAVAILABLE,
            "session_not_found" => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, code, message)
    }
}

/// An error with its sources, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut r = (self.status, body).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_busy",
                "当前咨询人数较多，请稍后再试",
            ),
            TurnError::SessionNotFound => ApiError::session_not_found(),
            TurnError::Db(e) => ApiError::internal("storage_error", &e),
            e => ApiError::internal("internal_error", &e),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::internal("storage_error", &e)
    }
}
