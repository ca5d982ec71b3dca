//! Middleware: the request span and metrics (outermost), transport limits checked before any
//! handler reads a byte of the body, and the per-IP rate limit of the API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::ClientIp;
use super::AppState;
use crate::guard::RateLimiter;

/// Opens the `request` span (method, matched route, request id), resolves the client's
/// address, and counts the response by route and status. Only the route template is logged,
/// never the raw path or query: they are client text.
pub async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let request_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let xff = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = state.proxies.client(peer, xff);
        req.extensions_mut().insert(ClientIp(ip));
    }
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id
    );
    let resp = tracing::Instrument::instrument(next.run(req), span).await;
    state
        .assistant
        .metrics()
        .request(&route, resp.status().as_u16());
    resp
}

/// Our own limits, lower than hyper's: request target (414), header block (431) and a declared
/// body length over the limit (413 at once, before the body is read).
pub async fn transport_limits(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let s = &state.server;
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > s.max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("请求地址超过{}字节", s.max_uri_bytes),
        )
        .closing()
        .into_response();
    }
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head > s.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("请求头超过{}字节", s.max_header_bytes),
        )
        .closing()
        .into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("请求体超过{}字节", s.max_body_bytes),
        )
        .closing()
        .into_response();
    }
    next.run(req).await
}

/// The per-IP limit on API calls.
pub async fn limit_ip(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    if let Err(wait) = state.ip_limiter.check(&RateLimiter::ip_key(ip)) {
        state.assistant.metrics().rate_limited();
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(req).await
}
