//! Extractors: the JSON body (one error shape for every failure), the client's address, and
//! the citizen's proof of owning a session.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::domain::{Caller, SessionId, SessionToken};
use crate::store::SessionRow;

/// The header that carries a session's token. Never a URL parameter: URLs end up in proxy logs.
pub const SESSION_TOKEN_HEADER: &str = "x-session-token";

/// Whether a `Content-Type` is JSON: `application/json`, any case, optional parameters.
/// `application/jsonfoo` is not.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// A JSON body read under the configured size and time limits. Unknown fields are refused on
/// every endpoint (the body types say `deny_unknown_fields`), so a typo or a field we do not
/// take (such as `channel`) is an error rather than silently ignored.
///
/// Reading and parsing are axum's `Json` (the size limit is the router's `DefaultBodyLimit`);
/// only its rejections are mapped to our error shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        // axum also takes `application/*+json`; our API documents plain JSON only.
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(ct) {
            return Err(unsupported_media_type());
        }
        match Json::<T>::from_request(req, state).await {
            Ok(Json(t)) => Ok(Self(t)),
            Err(rejection) => Err(json_rejection(&rejection, state.server.max_body_bytes)),
        }
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "请求体须为 application/json",
    )
    .closing()
}

/// Our error for each of axum's JSON rejections. Refusals before the body was fully read
/// close the connection (see [`ApiError::closing`]).
fn json_rejection(rejection: &JsonRejection, limit: usize) -> ApiError {
    use std::error::Error as _;
    // The innermost message (serde's, with line and column), without axum's English preface.
    let detail = || {
        let mut cur: &dyn std::error::Error = rejection;
        while let Some(next) = cur.source() {
            cur = next;
        }
        cur.to_string()
    };
    match rejection {
        JsonRejection::JsonSyntaxError(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("JSON格式错误：{}", detail()),
        ),
        JsonRejection::JsonDataError(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("请求字段有误：{}", detail()),
        ),
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        _ => {
            let mut cur = rejection.source();
            while let Some(err) = cur {
                if err.is::<http_body_util::LengthLimitError>() {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("请求体超过{limit}字节"),
                    )
                    .closing();
                }
                if err.is::<tower_http::timeout::TimeoutError>() {
                    return ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "请求体发送超时",
                    )
                    .closing();
                }
                cur = err.source();
            }
            ApiError::new(StatusCode::BAD_REQUEST, "body_unreadable", "请求体读取失败").closing()
        }
    }
}

/// A JSON body that may be absent (no body at all); when present it is read exactly like
/// [`JsonBody`], unknown fields refused.
pub struct MaybeJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for MaybeJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let h = req.headers();
        let declared_empty = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == "0");
        if declared_empty && !h.contains_key(header::TRANSFER_ENCODING) {
            return Ok(Self(None));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(t)| Self(Some(t)))
    }
}

/// The client's address: the peer, or behind a trusted proxy the `X-Forwarded-For` client.
/// Set by the outermost middleware.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "服务暂时不可用",
            )
        })
    }
}

/// The token a request presents, if any: `X-Session-Token`, or `Authorization: Bearer`.
pub fn presented_token(headers: &HeaderMap) -> Option<SessionToken> {
    let from_header = headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    let from_bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    };
    from_header
        .or_else(from_bearer)
        .filter(|t| !t.trim().is_empty())
        .map(SessionToken::from_client)
}

/// Proves the caller of a request on session `id`: the citizen holding its token. The
/// channel is the session's own (set by the endpoint that created it). Malformed id, unknown
/// id, missing or wrong token: all the same 404.
pub async fn authorize(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Caller, SessionRow), ApiError> {
    let Ok(id) = SessionId::parse(id) else {
        return Err(ApiError::session_not_found());
    };
    let Some(token) = presented_token(headers) else {
        return Err(ApiError::session_not_found());
    };
    match state.assistant.db().authorize(&id, &token.hash()).await? {
        Some(row) => Ok((
            Caller::Citizen {
                session: id,
                channel: row.channel(),
            },
            row,
        )),
        None => Err(ApiError::session_not_found()),
    }
}

/// The `Last-Event-ID` a resuming client sends (0 without one); anything but a number is
/// `400 invalid_last_event_id`.
pub fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_last_event_id",
                    "Last-Event-ID 须为事件编号",
                )
            }),
    }
}
