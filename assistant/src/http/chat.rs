//! Chat routes: a message in, the answer out as JSON or as server-sent events, and the resume
//! of a turn's events after a dropped connection.
//!
//! A turn runs in its own task and does not depend on the connection that started it: its
//! events go to a numbered buffer ([`crate::turns`]); the response is one listener of it. A
//! client that loses the stream reads `GET /api/v1/sessions/{id}/turns/{turn_id}/events` with
//! `Last-Event-ID` and gets every later event exactly once.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::extract::{authorize, last_event_id, ClientIp, JsonBody};
use super::AppState;
use crate::dialogue::memory::Profile;
use crate::dialogue::{Event, TurnRequest};
use crate::domain::{Caller, Channel, SessionId, SessionToken};
use crate::guard::{clean_input, RateLimiter};
use crate::turns::{ResumeError, Subscription};

/// `POST /api/v1/chat` and `/chat/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// The caller's session; absent: a new session is created and its token returned.
    pub session_id: Option<String>,
    /// The citizen's text.
    pub message: String,
    /// What the channel already knows about the citizen.
    pub profile: Option<Profile>,
}

/// The non-streaming answer.
#[derive(Debug, Default, Serialize)]
struct ChatResponse {
    session_id: String,
    /// Only when this request created the session: keep it, it is shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
    turn_id: String,
    answer: String,
    intent: String,
    rewritten: Option<String>,
    citations: Vec<crate::dialogue::verify::Citation>,
    jobs: Vec<crate::dialogue::jobs::JobCard>,
    jobs_relaxed: Option<String>,
    handoff: Option<crate::dialogue::HandoffInfo>,
    /// The 政策申领 interview's question or result, on claim turns.
    #[serde(skip_serializing_if = "Option::is_none")]
    claim: Option<crate::dialogue::claims::ClaimView>,
}

/// A turn that has started: its first listener, and the token if the session is new.
pub(crate) struct Started {
    pub(crate) listener: Subscription,
    pub(crate) caller: Caller,
    pub(crate) new_token: Option<SessionToken>,
}

/// Creates a session for `ip` under the per-IP rate of new sessions.
pub(super) async fn new_session(
    state: &AppState,
    ip: std::net::IpAddr,
    channel: Channel,
) -> Result<(SessionId, SessionToken), ApiError> {
    if let Err(wait) = state
        .session_creation_limiter
        .check(&RateLimiter::ip_key(ip))
    {
        state.assistant.metrics().rate_limited();
        return Err(ApiError::rate_limited(wait));
    }
    Ok(state.assistant.create_session(channel).await?)
}

/// Who starts a turn without naming a session, and so what kind of session it gets.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// The web API: a new session with its own token, handed back once.
    Web,
    /// A signed-in mini-program user: a new session they own (no token of its own).
    Miniprogram(crate::store::WechatUserRow),
}

pub(crate) async fn start(
    state: &Arc<AppState>,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: ChatBody,
    origin: Origin,
) -> Result<Started, ApiError> {
    let message = clean_input(&body.message);
    let n = message.chars().count();
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_message",
            "消息不能为空",
        ));
    }
    if n > state.server.max_message_chars {
        return Err(ApiError::too_long("消息", state.server.max_message_chars));
    }
    let (caller, new_token) = match (&body.session_id, origin) {
        (Some(id), _) => (authorize(state, id, headers).await?.0, None),
        (None, Origin::Web) => {
            // The web API is the web channel; other channels have their own endpoints.
            let (session, token) = new_session(state, ip, Channel::Web).await?;
            let caller = Caller::Citizen {
                session,
                channel: Channel::Web,
            };
            (caller, Some(token))
        }
        (None, Origin::Miniprogram(user)) => {
            if let Err(wait) = state
                .session_creation_limiter
                .check(&RateLimiter::ip_key(ip))
            {
                state.assistant.metrics().rate_limited();
                return Err(ApiError::rate_limited(wait));
            }
            let session = state
                .assistant
                .db()
                .create_owned_session(Channel::Miniprogram, &user.id)
                .await?;
            let caller = Caller::Citizen {
                session,
                channel: Channel::Miniprogram,
            };
            (caller, None)
        }
    };
    let session = caller.session().clone();
    if let Err(wait) = state.session_limiter.check(session.as_str()) {
        state.assistant.metrics().rate_limited();
        return Err(ApiError::rate_limited(wait));
    }
    let slot_session = state
        .in_flight_session
        .try_acquire(format!("session:{session}"))
        .ok_or_else(ApiError::too_many_in_flight)?;
    let slot_ip = state
        .in_flight_ip
        .try_acquire(RateLimiter::ip_key(ip))
        .ok_or_else(ApiError::too_many_in_flight)?;
    let (tx, rx) = mpsc::channel(64);
    let listener = state.hub.track(session.to_string(), rx);
    let req = TurnRequest {
        caller: caller.clone(),
        message,
        profile: body.profile,
    };
    let st = state.clone();
    tokio::spawn(async move {
        // The slots are held until the turn ends, not until the connection does.
        let _slots = (slot_session, slot_ip);
        run_turn(&st, req, tx).await;
    });
    Ok(Started {
        listener,
        caller,
        new_token,
    })
}

/// Runs one turn, sending its events to `tx`: relayed to the counselor holding the
/// conversation, else answered by the assistant; a failure becomes an `error` event. Every
/// channel runs its turns through here.
pub(crate) async fn run_turn(st: &AppState, req: TurnRequest, tx: mpsc::Sender<Event>) {
    // While a counselor holds the conversation, the message is theirs, not the model's.
    let result = match st.workspace.relay(&req.caller, &req.message).await {
        Ok(Some(message_id)) => {
            let _ = tx
                .send(Event::Meta {
                    session_id: req.caller.session().to_string(),
                    turn_id: message_id,
                    intent: crate::domain::Intent::Handoff,
                    rewritten: None,
                })
                .await;
            let _ = tx
                .send(Event::Done {
                    answer: String::new(),
                })
                .await;
            Ok(())
        }
        Ok(None) => st
            .assistant
            .turn(req, tx.clone())
            .await
            .map_err(ApiError::from),
        Err(e) => Err(ApiError::from(e)),
    };
    if let Err(api) = result {
        let _ = tx
            .send(Event::Error {
                code: api.code,
                message: api.message,
            })
            .await;
    }
}

/// `POST /api/v1/chat`: the whole answer as JSON.
pub async fn chat(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut started = start(&state, ip, &headers, body, Origin::Web).await?;
    let mut resp = ChatResponse {
        session_id: started.caller.session().to_string(),
        session_token: started.new_token.map(|t| t.expose().to_string()),
        ..ChatResponse::default()
    };
    while let Ok(Some((_, ev))) = started.listener.next().await {
        match ev {
            Event::Meta {
                turn_id,
                intent,
                rewritten,
                ..
            } => {
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
            Event::Claim(c) => resp.claim = Some(c),
            Event::Done { answer } => resp.answer = answer,
            Event::Error { code, message } => return Err(ApiError::from_event(code, message)),
        }
    }
    Ok(Json(json!(resp)))
}

/// An event's name and JSON, as every stream (SSE, WebSocket) sends it.
pub(crate) fn event_json(ev: Event) -> (&'static str, serde_json::Value) {
    match ev {
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
        Event::Claim(c) => ("claim", json!(c)),
        Event::Done { answer } => ("done", json!({"answer": answer})),
        Event::Error { code, message } => ("error", json!({"code": code, "message": message})),
    }
}

fn sse_event(id: u64, ev: Event) -> SseEvent {
    let (name, data) = event_json(ev);
    SseEvent::default()
        .id(id.to_string())
        .event(name)
        .data(data.to_string())
}

/// Streams a listener as server-sent events, after an optional first event (the new
/// session's token, which is never buffered). A forwarding task notices a closed connection
/// even while no event comes, so the listener is counted out at once.
pub(crate) fn sse_response(first: Option<SseEvent>, mut listener: Subscription) -> Response {
    let (out, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(32);
    tokio::spawn(async move {
        if let Some(ev) = first {
            if out.send(Ok(ev)).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                n = listener.next() => n,
                _ = out.closed() => return,
            };
            let ev = match next {
                Ok(Some((id, ev))) => sse_event(id, ev),
                Ok(None) => return,
                Err(ResumeError::Gap) => SseEvent::default().event("error").data(
                    json!({"code": "resume_gap", "message": "部分内容已过期，请刷新对话记录"})
                        .to_string(),
                ),
            };
            if out.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    });
    super::events::sse_stream(rx)
}

/// `POST /api/v1/chat/stream`: the answer as server-sent events with ids.
pub async fn chat_stream(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatBody>,
) -> Result<Response, ApiError> {
    let started = start(&state, ip, &headers, body, Origin::Web).await?;
    let first = started.new_token.map(|t| {
        SseEvent::default().event("session").data(
            json!({"session_id": started.caller.session().as_str(), "session_token": t.expose()})
                .to_string(),
        )
    });
    Ok(sse_response(first, started.listener))
}

/// `GET /api/v1/sessions/{id}/turns/{turn_id}/events` with `Last-Event-ID`: the events of a
/// recent turn after that id, then live ones until it ends.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Path((id, turn_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    let after = last_event_id(&headers)?;
    let buffer = state
        .hub
        .get(&turn_id)
        .filter(|b| b.session() == caller.session().as_str())
        .ok_or_else(ApiError::turn_not_found)?;
    let listener = buffer.subscribe(after).map_err(|ResumeError::Gap| {
        ApiError::new(
            StatusCode::GONE,
            "resume_gap",
            "部分内容已过期，请刷新对话记录",
        )
    })?;
    Ok(sse_response(None, listener))
}
