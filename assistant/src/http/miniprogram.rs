//! The mini-program API: login through WeChat's `jscode2session`, chat over a WebSocket
//! (`wx.connectSocket`) or a chunked response (`wx.request` with `enableChunked`).
//!
//! - `POST /api/v1/miniprogram/login {code}`: the code goes to WeChat with our appid and
//!   secret; the openid that comes back stays on the server. The client gets a login token
//!   (random, stored as SHA-256, `wechat.miniprogram.token_ttl_days`), which it presents as
//!   `Authorization: Bearer` from then on; every session it starts belongs to its WeChat user,
//!   and the session routes (`/api/v1/sessions/{id}`, feedback, 转人工) accept it for them.
//! - `POST /api/v1/miniprogram/chat`: the same events as `/api/v1/chat/stream`, as
//!   server-sent-event text over a chunked response (a first `session` event names a new
//!   session); `GET /api/v1/miniprogram/sessions` lists the user's sessions.
//! - `GET /api/v1/ws`: JSON frames both ways (below). The token comes in the `Authorization`
//!   header (`wx.connectSocket` sets headers) or, where a client cannot set headers (a
//!   browser), as the first frame `{"type":"auth","token":…}` — never in the URL.
//!
//! Frames from the client: `chat {session_id?, message, profile?, ref?}`, `resume {session_id,
//! turn_id, after}` (a turn's events after the last id seen: reconnect without re-sending the
//! question), `watch {session_id, after}` (counselor events after the last `seq` seen),
//! `ping`. Frames to the client: `{event, id, turn_id, data}` for turn events (`meta`,
//! `token`, `citations`, `jobs`, `handoff`, `done`, `error`), `{event: "session", data:
//! {session_id}, ref}`, `{event, seq, session_id, data}` for counselor events
//! (`counselor_joined`, `counselor_message`, `status`), `{event: "error", data: {code,
//! message}, ref}` and `pong`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::chat::{event_json, start, ChatBody, Origin};
use super::error::ApiError;
use super::extract::{authorize, presented_token, ClientIp, JsonBody};
use super::AppState;
use crate::domain::SessionToken;
use crate::guard::RateLimiter;
use crate::store::WechatUserRow;
use crate::turns::{ResumeError, Subscription};
use crate::wechat::WechatError;

/// How long a socket may stay silent before its first (auth) frame.
const AUTH_WAIT: Duration = Duration::from_secs(10);
/// Sessions one socket may watch.
const MAX_WATCHED: usize = 16;

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "miniprogram_disabled",
        "小程序接口未启用",
    )
}

fn login_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "请先登录（登录已过期时请重新登录）",
    )
}

/// `POST /api/v1/miniprogram/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The code from `wx.login`.
    code: String,
}

/// `POST /api/v1/miniprogram/login`: a `wx.login` code to a login token.
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    let app = state.wechat.miniprogram.clone().ok_or_else(disabled)?;
    let code = body.code.trim();
    if code.is_empty() || code.len() > 128 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_code",
            "登录凭证格式不对",
        ));
    }
    if let Err(wait) = state
        .session_creation_limiter
        .check(&RateLimiter::ip_key(ip))
    {
        state.assistant.metrics().rate_limited();
        return Err(ApiError::rate_limited(wait));
    }
    let session = app.code_to_session(code).await.map_err(|e| match e {
        WechatError::Api {
            code: 40029 | 40163 | 40226,
            ..
        } => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            "登录凭证无效或已使用，请重新登录",
        ),
        WechatError::Api { code: 45011, .. } => ApiError::rate_limited(Duration::from_secs(1)),
        e => {
            tracing::warn!(error = %e, "jscode2session failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "wechat_unavailable",
                "微信服务暂时不可用，请稍后再试",
            )
        }
    })?;
    let now = crate::store::now_ms();
    let db = state.assistant.db();
    let user = db.wechat_user("miniprogram", &session.openid, now).await?;
    let token = SessionToken::new();
    let ttl_days = state.wechat.cfg.miniprogram.token_ttl_days;
    let ttl_ms = (ttl_days as i64).saturating_mul(86_400_000);
    db.add_wechat_token(&user.id, &token.hash(), now, now.saturating_add(ttl_ms))
        .await?;
    tracing::info!(user = %crate::wechat::openid_label(&session.openid), "mini-program login");
    let sessions = sessions_of(&state, &user).await?;
    Ok(Json(json!({
        "token": token.expose(),
        "expires_in": ttl_days * 86_400,
        "sessions": sessions,
    })))
}

async fn sessions_of(state: &AppState, user: &WechatUserRow) -> Result<Vec<Value>, ApiError> {
    Ok(state
        .assistant
        .db()
        .owned_sessions(&user.id, 20)
        .await?
        .into_iter()
        .map(|(id, at)| json!({"session_id": id, "updated_at": at}))
        .collect())
}

/// The signed-in mini-program user of a request.
async fn user_of(state: &AppState, token: Option<SessionToken>) -> Result<WechatUserRow, ApiError> {
    if state.wechat.miniprogram.is_none() {
        return Err(disabled());
    }
    let token = token.ok_or_else(login_required)?;
    state
        .assistant
        .db()
        .wechat_user_by_token(&token.hash(), crate::store::now_ms())
        .await?
        .filter(|u| u.kind == "miniprogram")
        .ok_or_else(login_required)
}

/// `GET /api/v1/miniprogram/sessions`: the user's recent sessions.
pub async fn sessions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let user = user_of(&state, presented_token(&headers)).await?;
    Ok(Json(json!({"sessions": sessions_of(&state, &user).await?})))
}

/// `POST /api/v1/miniprogram/chat`: the answer as server-sent-event text over a chunked
/// response (`wx.request` with `enableChunked`).
pub async fn chat(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Response, ApiError> {
    let user = user_of(&state, presented_token(&headers)).await?;
    let named = body.session_id.is_some();
    let started = start(&state, ip, &headers, body, Origin::Miniprogram(user)).await?;
    let first = (!named).then(|| {
        SseEvent::default()
            .event("session")
            .data(json!({"session_id": started.caller.session().as_str()}).to_string())
    });
    Ok(super::chat::sse_response(first, started.listener))
}

/// `GET /api/v1/ws`: the mini-program's socket.
pub async fn socket(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if state.wechat.miniprogram.is_none() {
        return Err(disabled());
    }
    // A token in the header is checked before the upgrade; without one, the first frame.
    let token = presented_token(&headers);
    let user = match &token {
        Some(_) => Some(user_of(&state, token.clone()).await?),
        None => None,
    };
    let max = state.server.max_body_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            Socket::run(state, ip, socket, user.zip(token)).await;
        })
        .into_response())
}

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Frame {
    Auth {
        token: String,
    },
    Chat {
        session_id: Option<String>,
        message: String,
        profile: Option<crate::dialogue::memory::Profile>,
        #[serde(rename = "ref")]
        reference: Option<Value>,
    },
    Resume {
        session_id: String,
        turn_id: String,
        after: u64,
    },
    Watch {
        session_id: String,
        after: i64,
    },
    Ping,
}

struct Socket {
    state: Arc<AppState>,
    ip: std::net::IpAddr,
    user: WechatUserRow,
    /// The login token, as headers, for the session routes' authorization.
    auth: HeaderMap,
    out: mpsc::Sender<String>,
    watched: HashSet<String>,
}

fn error_frame(code: &str, message: &str, reference: Option<&Value>) -> String {
    json!({"event": "error", "data": {"code": code, "message": message}, "ref": reference})
        .to_string()
}

impl Socket {
    async fn run(
        state: Arc<AppState>,
        ip: std::net::IpAddr,
        mut ws: WebSocket,
        pre: Option<(WechatUserRow, SessionToken)>,
    ) {
        let (user, token) = match pre {
            Some(p) => p,
            None => match first_frame_auth(&state, &mut ws).await {
                Some(p) => p,
                None => return,
            },
        };
        let mut auth = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            auth.insert(header::AUTHORIZATION, v);
        }
        let (out, mut frames) = mpsc::channel::<String>(128);
        let mut me = Socket {
            state,
            ip,
            user,
            auth,
            out,
            watched: HashSet::new(),
        };
        let _ = me.out.send(json!({"event": "ready"}).to_string()).await;
        loop {
            tokio::select! {
                f = frames.recv() => match f {
                    Some(text) => {
                        if ws.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                m = ws.recv() => match m {
                    Some(Ok(Message::Text(t))) => me.on_frame(t.as_str()).await,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = me.out.send(error_frame("bad_frame", "只接受 JSON 文本帧", None)).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                },
            }
        }
    }

    async fn on_frame(&mut self, text: &str) {
        if let Err(wait) = self.state.ip_limiter.check(&RateLimiter::ip_key(self.ip)) {
            self.state.assistant.metrics().rate_limited();
            let msg = format!("请求太频繁，请{}秒后再试", wait.as_secs().max(1));
            let _ = self.out.send(error_frame("rate_limited", &msg, None)).await;
            return;
        }
        let frame: Frame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(_) => {
                let _ = self
                    .out
                    .send(error_frame("bad_frame", "无法识别的消息", None))
                    .await;
                return;
            }
        };
        match frame {
            Frame::Ping => {
                let _ = self.out.send(json!({"event": "pong"}).to_string()).await;
            }
            Frame::Auth { .. } => {}
            Frame::Chat {
                session_id,
                message,
                profile,
                reference,
            } => self.chat(session_id, message, profile, reference).await,
            Frame::Resume {
                session_id,
                turn_id,
                after,
            } => self.resume(&session_id, &turn_id, after).await,
            Frame::Watch { session_id, after } => self.watch(&session_id, after).await,
        }
    }

    async fn chat(
        &mut self,
        session_id: Option<String>,
        message: String,
        profile: Option<crate::dialogue::memory::Profile>,
        reference: Option<Value>,
    ) {
        let named = session_id.is_some();
        let body = ChatBody {
            session_id,
            message,
            profile,
        };
        let origin = Origin::Miniprogram(self.user.clone());
        match start(&self.state, self.ip, &self.auth, body, origin).await {
            Ok(started) => {
                let sid = started.caller.session().to_string();
                if !named {
                    let f =
                        json!({"event": "session", "data": {"session_id": sid}, "ref": reference});
                    let _ = self.out.send(f.to_string()).await;
                }
                forward_turn(started.listener, self.out.clone());
            }
            Err(e) => {
                let _ = self
                    .out
                    .send(error_frame(e.code, &e.message, reference.as_ref()))
                    .await;
            }
        }
    }

    async fn resume(&mut self, session_id: &str, turn_id: &str, after: u64) {
        let caller = match authorize(&self.state, session_id, &self.auth).await {
            Ok((c, _)) => c,
            Err(e) => {
                let _ = self.out.send(error_frame(e.code, &e.message, None)).await;
                return;
            }
        };
        let buffer = self
            .state
            .hub
            .get(turn_id)
            .filter(|b| b.session() == caller.session().as_str());
        let Some(buffer) = buffer else {
            let e = ApiError::turn_not_found();
            let _ = self.out.send(error_frame(e.code, &e.message, None)).await;
            return;
        };
        match buffer.subscribe(after) {
            Ok(listener) => forward_turn(listener, self.out.clone()),
            Err(ResumeError::Gap) => {
                let _ = self
                    .out
                    .send(error_frame(
                        "resume_gap",
                        "部分内容已过期，请刷新对话记录",
                        None,
                    ))
                    .await;
            }
        }
    }

    async fn watch(&mut self, session_id: &str, after: i64) {
        let caller = match authorize(&self.state, session_id, &self.auth).await {
            Ok((c, _)) => c,
            Err(e) => {
                let _ = self.out.send(error_frame(e.code, &e.message, None)).await;
                return;
            }
        };
        let sid = caller.session().to_string();
        if self.watched.contains(&sid) {
            return;
        }
        if self.watched.len() >= MAX_WATCHED {
            let _ = self
                .out
                .send(error_frame("too_many_watched", "同时关注的对话太多", None))
                .await;
            return;
        }
        self.watched.insert(sid.clone());
        let presence = self.state.wechat.presence.enter(&sid);
        let mut events =
            super::events::follow_session(&self.state, caller.session().clone(), after.max(0));
        let out = self.out.clone();
        tokio::spawn(async move {
            // Counted as "socket open" while this forwards: a counselor's reply then needs
            // no subscribe message.
            let _presence = presence;
            loop {
                let ev = tokio::select! {
                    e = events.recv() => match e { Some(e) => e, None => return },
                    _ = out.closed() => return,
                };
                let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                let f = json!({"event": ev.name, "seq": ev.seq, "session_id": sid, "data": data});
                if out.send(f.to_string()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Waits for `{"type":"auth","token":…}` as the first frame.
async fn first_frame_auth(
    state: &AppState,
    ws: &mut WebSocket,
) -> Option<(WechatUserRow, SessionToken)> {
    let first = tokio::time::timeout(AUTH_WAIT, ws.recv()).await;
    let token = match first {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Frame>(t.as_str()) {
            Ok(Frame::Auth { token }) => SessionToken::from_client(&token),
            _ => {
                let _ = ws
                    .send(Message::Text(
                        error_frame("login_required", "请先登录", None).into(),
                    ))
                    .await;
                return None;
            }
        },
        _ => return None,
    };
    match user_of(state, Some(token.clone())).await {
        Ok(u) => Some((u, token)),
        Err(e) => {
            let _ = ws
                .send(Message::Text(error_frame(e.code, &e.message, None).into()))
                .await;
            None
        }
    }
}

/// Sends a turn's events to the socket until the turn ends or the socket closes.
fn forward_turn(mut listener: Subscription, out: mpsc::Sender<String>) {
    tokio::spawn(async move {
        let mut turn_id: Option<String> = None;
        loop {
            let next = tokio::select! {
                n = listener.next() => n,
                _ = out.closed() => return,
            };
            let frame = match next {
                Ok(Some((id, ev))) => {
                    if let crate::dialogue::Event::Meta { turn_id: t, .. } = &ev {
                        turn_id = Some(t.clone());
                    }
                    let (name, data) = event_json(ev);
                    json!({"event": name, "id": id, "turn_id": turn_id, "data": data})
                }
                Ok(None) => return,
                Err(ResumeError::Gap) => {
                    json!({"event": "error", "turn_id": turn_id, "data": {"code": "resume_gap", "message": "部分内容已过期，请刷新对话记录"}})
                }
            };
            if out.send(frame.to_string()).await.is_err() {
                return;
            }
        }
    });
}
