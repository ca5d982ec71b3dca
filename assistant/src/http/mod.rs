//! The HTTP service (axum): the v1 API of DESIGN.md, health and metrics, and the web widget.
//!
//! Every error is JSON `{"error": {"code", "message"}}` with a stable code (see [`ApiError`]).
//! Bodies are read by [`JsonBody`] under an explicit size limit; rate limits apply per IP and
//! per session; turns run in their own task so a dropped connection ends the stream cleanly
//! and the turn is stored as incomplete.

mod web;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::config::ServerConfig;
use crate::dialogue::{Assistant, Event, TurnError, TurnRequest};
use crate::guard::{mask_pii, RateLimiter};

/// Shared state of the handlers.
pub struct AppState {
    /// The dialogue pipeline.
    pub assistant: Assistant,
    /// Limits and tokens.
    pub server: ServerConfig,
    /// Per-IP limiter for chat endpoints.
    pub ip_limiter: RateLimiter,
    /// Per-session limiter.
    pub session_limiter: RateLimiter,
}

/// An API error: status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn rate_limited(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("请求过于频繁，请{secs}秒后再试"),
            retry_after: Some(secs),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut r = (self.status, body).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
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
            TurnError::Db(e) => {
                tracing::error!(error = %e, "storage failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_error",
                    "服务暂时不可用",
                )
            }
            TurnError::Internal(e) => {
                tracing::error!(error = %e, "turn failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "服务暂时不可用",
                )
            }
        }
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(e: crate::store::DbError) -> Self {
        TurnError::Db(e).into()
    }
}

/// A JSON body read under the configured size limit, with JSON errors for every failure.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let limit = state.server.max_body_bytes;
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "请求体须为 application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("请求体超过{limit}字节"),
                )
            })?;
        let value = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("JSON格式错误：{e}"),
            )
        })?;
        serde_json::from_value(value).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("请求字段有误：{e}"),
            )
        })
    }
}

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/api/v1/chat", post(chat))
        .route("/api/v1/chat/stream", post(chat_stream))
        .route("/api/v1/sessions/{id}", get(session))
        .route("/api/v1/sessions/{id}/feedback", post(feedback))
        .route("/api/v1/sessions/{id}/handoff", post(handoff))
        .route("/api/v1/console/queue", get(console_queue))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_ip,
        ))
        // The widget may be embedded on any site and calls this API from there. No cookies
        // are used (the console needs its bearer token), so any origin may call.
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(Duration::from_secs(3600)),
        );
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(web::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "没有这个地址")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts requests by matched route and status, inside a tracing span.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("http", method = %req.method(), route = %route);
    let resp = tracing::Instrument::instrument(next.run(req), span).await;
    state
        .assistant
        .metrics()
        .request(&route, resp.status().as_u16());
    resp
}

/// The per-IP limit on API calls.
async fn limit_ip(
    State(state): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(wait) = state.ip_limiter.check(&RateLimiter::ip_key(addr.ip())) {
        state.assistant.metrics().rate_limited();
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(req).await
}

fn check_turn(state: &AppState, req: &TurnRequest) -> Result<(), ApiError> {
    let n = req.message.trim().chars().count();
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_message",
            "消息不能为空",
        ));
    }
    if n > state.server.max_message_chars {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
            format!("消息不能超过{}字", state.server.max_message_chars),
        ));
    }
    if let Some(id) = &req.session_id {
        check_session_id(id)?;
        if let Err(wait) = state.session_limiter.check(id) {
            state.assistant.metrics().rate_limited();
            return Err(ApiError::rate_limited(wait));
        }
    }
    Ok(())
}

fn check_session_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_session_id",
            "session_id 只能包含字母、数字、-、_，最长64个字符",
        ));
    }
    Ok(())
}

/// The non-streaming answer.
#[derive(Debug, Default, Serialize)]
struct ChatResponse {
    session_id: String,
    turn_id: String,
    answer: String,
    intent: String,
    rewritten: Option<String>,
    citations: Vec<crate::dialogue::verify::Citation>,
    jobs: Vec<crate::dialogue::jobs::JobCard>,
    jobs_relaxed: Option<String>,
    handoff: Option<crate::dialogue::HandoffInfo>,
}

async fn chat(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<TurnRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    check_turn(&state, &req)?;
    let (tx, mut rx) = mpsc::channel(64);
    let st = state.clone();
    let task = tokio::spawn(async move { st.assistant.turn(req, tx).await });
    let mut resp = ChatResponse::default();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Meta {
                session_id,
                turn_id,
                intent,
                rewritten,
            } => {
                resp.session_id = session_id;
                resp.turn_id = turn_id;
                resp.intent = intent.as_str().into();
                resp.rewritten = rewritten;
            }
            Event::Token(t) => resp.answer.push_str(&t),
            Event::Citations(c) => resp.citations = c,
            Event::Jobs { jobs, relaxed } => {
                resp.jobs = jobs;
                resp.jobs_relaxed = relaxed;
            }
            Event::Handoff(h) => resp.handoff = Some(h),
            Event::Done { answer } => resp.answer = answer,
            Event::Error { .. } => {}
        }
    }
    task.await
        .map_err(|e| TurnError::Internal(e.to_string()))??;
    Ok(Json(resp))
}

fn sse_event(ev: Event) -> SseEvent {
    let (name, data) = match ev {
        Event::Meta {
            session_id,
            turn_id,
            intent,
            rewritten,
        } => (
            "meta",
            json!({"session_id": session_id, "turn_id": turn_id, "intent": intent, "rewritten": rewritten}),
        ),
        Event::Token(t) => ("token", json!({"text": t})),
        Event::Citations(c) => ("citations", json!({"citations": c})),
        Event::Jobs { jobs, relaxed } => ("jobs", json!({"jobs": jobs, "relaxed": relaxed})),
        Event::Handoff(h) => ("handoff", json!(h)),
        Event::Done { answer } => ("done", json!({"answer": answer})),
        Event::Error { code, message } => ("error", json!({"code": code, "message": message})),
    };
    SseEvent::default().event(name).data(data.to_string())
}

async fn chat_stream(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<TurnRequest>,
) -> Result<Response, ApiError> {
    check_turn(&state, &req)?;
    let (tx, rx) = mpsc::channel(64);
    let st = state.clone();
    let err_tx = tx.clone();
    tokio::spawn(async move {
        if let Err(e) = st.assistant.turn(req, tx).await {
            let api: ApiError = e.into();
            let _ = err_tx
                .send(Event::Error {
                    code: api.code,
                    message: api.message,
                })
                .await;
        }
    });
    let stream = ReceiverStream::new(rx).map(|ev| Ok::<_, Infallible>(sse_event(ev)));
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut resp = sse.into_response();
    // Tell nginx and similar proxies not to buffer the stream.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

async fn session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_session_id(&id)?;
    let db = state.assistant.db();
    let s = db
        .session(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "session_not_found", "会话不存在"))?;
    let messages = db.messages(&id).await?;
    let escalation = db.open_escalation(&id).await?;
    let messages: Vec<serde_json::Value> = messages
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id, "seq": m.seq, "role": m.role, "text": m.text, "intent": m.intent,
                "status": m.status, "created_at": m.created_at,
                "citations": serde_json::from_str::<serde_json::Value>(&m.citations).unwrap_or(json!([])),
                "jobs": serde_json::from_str::<serde_json::Value>(&m.jobs).unwrap_or(json!([])),
            })
        })
        .collect();
    Ok(Json(json!({
        "session_id": s.id,
        "channel": s.channel,
        "profile": serde_json::from_str::<serde_json::Value>(&s.profile).unwrap_or(json!({})),
        "messages": messages,
        "handoff": escalation.map(|e| json!({"ticket_id": e.id, "status": e.status, "reason": e.reason})),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    turn_id: Option<String>,
    /// "up" or "down".
    rating: String,
    #[serde(default)]
    comment: String,
}

async fn feedback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FeedbackBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_session_id(&id)?;
    let rating = match body.rating.as_str() {
        "up" => 1,
        "down" => -1,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "rating 须为 up 或 down",
            ))
        }
    };
    if body.comment.chars().count() > 1000 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
            "意见不能超过1000字",
        ));
    }
    let db = state.assistant.db();
    if db.session(&id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "会话不存在",
        ));
    }
    let fid = db
        .add_feedback(
            &id,
            body.turn_id.as_deref(),
            rating,
            &mask_pii(&body.comment),
        )
        .await?;
    Ok(Json(json!({"feedback_id": fid})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoffBody {
    #[serde(default)]
    note: String,
}

async fn handoff(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<HandoffBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_session_id(&id)?;
    let info = state
        .assistant
        .request_handoff(&id, &mask_pii(&body.note))
        .await?;
    Ok(Json(json!(info)))
}

async fn console_queue(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(token) = state.server.console_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "console_disabled",
            "未配置 server.console_token，控制台接口已关闭",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is a secret.
    let ok = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    });
    if !ok {
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

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let db = state.assistant.db().ping().await.is_ok();
    let model = !state.assistant.generator().is_stopped();
    let body = json!({"ready": db && model, "checks": {"database": db, "model": model, "knowledge": true}});
    let status = if db && model {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let g = state.assistant.generator();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state
            .assistant
            .metrics()
            .render(g.queue_depth(), g.capacity()),
    )
        .into_response()
}
