//! The Official Account (公众号) server: `GET /wechat/mp` (URL check) and `POST /wechat/mp`
//! (messages and events, plain or safe mode).
//!
//! Every request is verified first (signature over token, timestamp and nonce; in safe mode
//! `msg_signature` also over the encrypted body, which is then decrypted and its appid
//! checked); nothing is read or stored before that. Then:
//!
//! - **De-duplication.** WeChat retries a message it got no answer to within 5 s, three times.
//!   The message key (MsgId; for events sender + time + event) is recorded before anything
//!   else: a retry never starts a second turn. It gets the text answered inline the first
//!   time (WeChat retries only when that response did not reach it), else "success".
//! - **The 5-second rule.** The answer is awaited for `wechat.mp.reply_budget_ms` (4 s): ready
//!   by then, it is the reply; otherwise the reply is "success" and the answer follows as a
//!   customer-service message through the outbox when it is done.
//! - Callers are keyed by openid: WeChat's servers are not throttled by the per-IP limits
//!   (this route is outside them); the per-session message rate applies to each openid.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::AppState;
use crate::dialogue::{Event, TurnRequest};
use crate::domain::{Caller, Channel, SessionId};
use crate::guard::clean_input;
use crate::store::{Dedup, WechatUserRow};
use crate::wechat::{crypto, format_answer, openid_label, split_text, xml, MAX_TEXT_BYTES};

/// The query WeChat adds to every call.
#[derive(Debug, Deserialize)]
pub struct MpQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// "success": WeChat shows nothing and does not retry.
fn success() -> Response {
    plain(StatusCode::OK, "success")
}

fn token(state: &AppState) -> Option<String> {
    let mp = &state.wechat.cfg.mp;
    if !mp.enabled {
        return None;
    }
    mp.token.as_ref().map(|t| t.expose().to_string())
}

/// `GET /wechat/mp`: the URL check of the admin console; echoes `echostr` when signed.
pub async fn check(State(state): State<Arc<AppState>>, Query(q): Query<MpQuery>) -> Response {
    let Some(token) = token(&state) else {
        return plain(StatusCode::NOT_FOUND, "the Official Account is not enabled");
    };
    let (Some(sig), Some(ts), Some(nonce), Some(echo)) =
        (&q.signature, &q.timestamp, &q.nonce, &q.echostr)
    else {
        return plain(
            StatusCode::BAD_REQUEST,
            "signature, timestamp, nonce and echostr are required",
        );
    };
    if !crypto::verify(&[&token, ts, nonce], sig) {
        tracing::warn!("WeChat URL check with a bad signature");
        return plain(StatusCode::FORBIDDEN, "bad signature");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        echo.clone(),
    )
        .into_response()
}

/// How a request was wrapped, to wrap the reply the same way.
struct Envelope {
    safe: bool,
    nonce: String,
}

/// `POST /wechat/mp`: one message or event.
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Query(q): Query<MpQuery>,
    body: Bytes,
) -> Response {
    let Some(token) = token(&state) else {
        return plain(StatusCode::NOT_FOUND, "the Official Account is not enabled");
    };
    let (Some(sig), Some(ts), Some(nonce)) = (&q.signature, &q.timestamp, &q.nonce) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "signature, timestamp and nonce are required",
        );
    };
    if !crypto::verify(&[&token, ts, nonce], sig) {
        tracing::warn!("WeChat message with a bad signature: not processed");
        return plain(StatusCode::FORBIDDEN, "bad signature");
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        return plain(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let outer = match xml::parse(body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "WeChat message refused");
            return plain(StatusCode::BAD_REQUEST, "not a WeChat XML message");
        }
    };
    let safe = q.encrypt_type.as_deref() == Some("aes");
    let fields = if safe {
        let Some(crypt) = &state.wechat.crypt else {
            return plain(
                StatusCode::BAD_REQUEST,
                "safe mode is not configured (wechat.mp.encoding_aes_key)",
            );
        };
        let encrypted = outer.text("Encrypt");
        let Some(msg_sig) = &q.msg_signature else {
            return plain(
                StatusCode::BAD_REQUEST,
                "msg_signature is required in safe mode",
            );
        };
        if !crypto::verify(&[&token, ts, nonce, encrypted], msg_sig) {
            tracing::warn!("WeChat message with a bad msg_signature: not processed");
            return plain(StatusCode::FORBIDDEN, "bad signature");
        }
        let inner = match crypt.decrypt(encrypted) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "WeChat message not decrypted");
                return plain(
                    StatusCode::BAD_REQUEST,
                    "the message could not be decrypted",
                );
            }
        };
        match xml::parse(&inner) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "decrypted WeChat message refused");
                return plain(StatusCode::BAD_REQUEST, "not a WeChat XML message");
            }
        }
    } else {
        outer
    };
    let env = Envelope {
        safe,
        nonce: nonce.clone(),
    };
    let span = tracing::info_span!(
        "wechat_mp",
        user = %openid_label(fields.text("FromUserName")),
        msg_type = %crate::guard::for_log(fields.text("MsgType"))
    );
    handle(&state, &token, &fields, &env).instrument(span).await
}

/// What one message is answered with.
enum Answer {
    /// A text now (inline).
    Text(String),
    /// Nothing now ("success"); anything later goes through the outbox.
    Nothing,
}

async fn handle(state: &Arc<AppState>, token: &str, f: &xml::Fields, env: &Envelope) -> Response {
    let openid = f.text("FromUserName").to_string();
    let account = f.text("ToUserName").to_string();
    let msg_type = f.text("MsgType").to_string();
    if openid.is_empty() || msg_type.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "FromUserName and MsgType are required",
        );
    }
    let key = match f.get("MsgId").map(str::trim).filter(|m| !m.is_empty()) {
        Some(id) => format!("msg:{id}"),
        None => format!(
            "ev:{openid}:{}:{}:{}",
            f.text("CreateTime"),
            f.text("Event"),
            f.text("EventKey")
        ),
    };
    let db = state.assistant.db();
    // A first delivery that has not stored its question after the reply budget has died
    // (WeChat's retries come 5 s apart): its retry takes the message over.
    let stale_ms = state.wechat.cfg.mp.reply_budget_ms as i64 + 500;
    match db.dedup(&key, crate::store::now_ms(), stale_ms).await {
        Ok(Dedup::New) => {}
        Ok(Dedup::Seen(reply)) => {
            tracing::info!("WeChat retry of a message already taken");
            return match reply {
                Some(text) => reply_text(token, &openid, &account, &text, env, state),
                None => success(),
            };
        }
        Err(e) => {
            // Without the record a retry could be answered twice; WeChat will retry.
            tracing::warn!(error = %e, "WeChat message not recorded");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    let user = match db.wechat_user("mp", &openid, crate::store::now_ms()).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "WeChat user not stored");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let answer = dispatch(state, &user, &msg_type, f, &key).await;
    match answer {
        Answer::Nothing => {
            if let Err(e) = db.dedup_taken(&key).await {
                tracing::warn!(error = %e, "message key not marked");
            }
            success()
        }
        Answer::Text(text) => {
            if let Err(e) = db.dedup_reply(&key, &text).await {
                tracing::warn!(error = %e, "inline reply not recorded");
            }
            reply_text(token, &openid, &account, &text, env, state)
        }
    }
}

fn reply_text(
    token: &str,
    openid: &str,
    account: &str,
    text: &str,
    env: &Envelope,
    state: &AppState,
) -> Response {
    let now = chrono::Utc::now().timestamp();
    let xml_body = xml::text_reply(openid, account, now, text);
    if !env.safe {
        return xml_response(xml_body);
    }
    let Some(crypt) = &state.wechat.crypt else {
        return success();
    };
    let encrypted = crypt.encrypt(&xml_body);
    let ts = now.to_string();
    let sig = crypto::signature(&[token, &ts, &env.nonce, &encrypted]);
    xml_response(xml::encrypted_reply(&encrypted, &sig, &ts, &env.nonce))
}

/// What the assistant can do, for messages it cannot read (pictures, places, links…).
const CAPABILITIES: &str = "您好，我暂时只能看懂文字和语音。您可以直接发文字或语音问我：就业创业政策、找工作、创业扶持，也可以说“转人工”联系职业指导师。";

async fn dispatch(
    state: &Arc<AppState>,
    user: &WechatUserRow,
    msg_type: &str,
    f: &xml::Fields,
    key: &str,
) -> Answer {
    let mp = &state.wechat.cfg.mp;
    match msg_type {
        "text" => ask(state, user, f.text("Content"), key).await,
        // Older citizens and migrant workers speak rather than type: WeChat's recognition
        // of the voice message is the question.
        "voice" => {
            let said = f.text("Recognition");
            if said.is_empty() {
                Answer::Text("抱歉，没有听清您的语音，请再说一遍或发文字。".into())
            } else {
                ask(state, user, said, key).await
            }
        }
        "event" => match f.text("Event").to_ascii_lowercase().as_str() {
            "subscribe" => Answer::Text(format!(
                "{}\n{}",
                mp.welcome,
                crate::wechat::quick_reply_text()
            )),
            "unsubscribe" => {
                tracing::info!("user unfollowed the account");
                Answer::Nothing
            }
            "click" => {
                let key = f.text("EventKey");
                match mp.menu_replies.get(key) {
                    Some(reply) => Answer::Text(reply.clone()),
                    None => Answer::Text(format!(
                        "{}\n{}",
                        CAPABILITIES,
                        crate::wechat::quick_reply_text()
                    )),
                }
            }
            _ => Answer::Nothing,
        },
        "image" | "location" | "link" | "video" | "shortvideo" | "file" => Answer::Text(format!(
            "{CAPABILITIES}\n{}",
            crate::wechat::quick_reply_text()
        )),
        other => {
            tracing::info!(msg_type = %crate::guard::for_log(other), "unknown WeChat message type");
            Answer::Text(CAPABILITIES.into())
        }
    }
}

/// The user's current conversation on the account, read once per message (`None`: none yet,
/// or deleted by retention).
async fn current_session(
    state: &AppState,
    user: &WechatUserRow,
) -> Result<Option<crate::store::SessionRow>, crate::store::DbError> {
    match user
        .session_id
        .as_deref()
        .and_then(|s| SessionId::parse(s).ok())
    {
        Some(id) => state.assistant.db().session(&id).await,
        None => Ok(None),
    }
}

/// The conversation to answer in: the current one, else a new one made current.
async fn conversation(
    state: &AppState,
    user: &WechatUserRow,
    current: Option<&crate::store::SessionRow>,
) -> Result<SessionId, crate::store::DbError> {
    if let Some(id) = current.and_then(|s| SessionId::parse(&s.id).ok()) {
        return Ok(id);
    }
    let (id, _token) = state.assistant.create_session(Channel::WechatMp).await?;
    state
        .assistant
        .db()
        .set_wechat_session(&user.id, &id)
        .await?;
    Ok(id)
}

/// Whether the conversation waits for an answer to a 政策申领 question.
fn pending_claim_question(current: Option<&crate::store::SessionRow>) -> bool {
    current
        .and_then(|s| serde_json::from_str::<crate::dialogue::memory::Profile>(&s.profile).ok())
        .is_some_and(|p| p.claim.asking.is_some())
}

/// The whole answer of a turn, collected from its events.
#[derive(Debug, Default)]
struct Collected {
    answer: String,
    citations: Vec<crate::dialogue::verify::Citation>,
    jobs: Vec<crate::dialogue::jobs::JobCard>,
    handoff: bool,
    error: Option<String>,
}

impl Collected {
    fn text(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        if self.answer.trim().is_empty() && self.jobs.is_empty() {
            // Relayed to a counselor: they answer.
            return None;
        }
        let mut s = format_answer(&self.answer, &self.citations, &self.jobs);
        if self.handoff {
            s.push_str("\n（职业指导师接入后会在这里回复您）");
        }
        Some(s)
    }
}

async fn ask(state: &Arc<AppState>, user: &WechatUserRow, text: &str, key: &str) -> Answer {
    // A number answers the pending 政策申领 question when there is one; otherwise it is one
    // of the account's quick replies.
    let current = match current_session(state, user).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "WeChat conversation not read");
            return Answer::Text("服务暂时不可用，请稍后再试。".into());
        }
    };
    let pending_claim = pending_claim_question(current.as_ref());
    let text = match crate::wechat::expand_quick_reply(text) {
        Some(t) if !pending_claim => t.to_string(),
        _ => clean_input(text),
    };
    let n = text.chars().count();
    if n == 0 {
        return Answer::Text(CAPABILITIES.into());
    }
    if n > state.server.max_message_chars {
        return Answer::Text(format!(
            "消息太长了，请控制在{}字以内。",
            state.server.max_message_chars
        ));
    }
    if state
        .session_limiter
        .check(&format!("wx:{}", user.id))
        .is_err()
    {
        state.assistant.metrics().rate_limited();
        return Answer::Text("您发送得太频繁了，请稍后再试。".into());
    }
    let session = match conversation(state, user, current.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "WeChat conversation not opened");
            return Answer::Text("服务暂时不可用，请稍后再试。".into());
        }
    };
    let Some(slot) = state
        .in_flight_session
        .try_acquire(format!("session:{session}"))
    else {
        return Answer::Text("上一个问题还在回答中，请稍候。".into());
    };
    let req = TurnRequest {
        caller: Caller::Citizen {
            session: session.clone(),
            channel: Channel::WechatMp,
        },
        message: text,
        profile: None,
    };
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let (done_tx, done_rx) = oneshot::channel::<Collected>();
    let st = state.clone();
    let key = key.to_string();
    tokio::spawn(async move {
        let _slot = slot;
        let run = super::chat::run_turn(&st, req, tx);
        let db = st.assistant.db().clone();
        let collect = async {
            let mut c = Collected::default();
            while let Some(ev) = rx.recv().await {
                if matches!(ev, Event::Meta { .. } | Event::Error { .. }) {
                    // The question is stored (or refused): a retry must not take it over.
                    if let Err(e) = db.dedup_taken(&key).await {
                        tracing::warn!(error = %e, "message key not marked");
                    }
                }
                match ev {
                    Event::Token(t) => c.answer.push_str(&t),
                    Event::Done { answer } => c.answer = answer,
                    Event::Citations(x) => c.citations = x,
                    Event::Jobs { jobs, .. } => c.jobs = jobs,
                    Event::Handoff(_) => c.handoff = true,
                    Event::Error { message, .. } => c.error = Some(message),
                    // The question's options and the result lists are in the answer text
                    // as numbered lines already.
                    Event::Meta { .. } | Event::Claim(_) => {}
                }
            }
            c
        };
        let ((), collected) = tokio::join!(run, collect);
        let _ = done_tx.send(collected);
    });
    let budget = Duration::from_millis(state.wechat.cfg.mp.reply_budget_ms);
    let mut done_rx = done_rx;
    match tokio::time::timeout(budget, &mut done_rx).await {
        Ok(Ok(c)) => match c.text() {
            Some(t) => {
                let mut parts = split_text(&t, MAX_TEXT_BYTES).into_iter();
                let first = parts.next().unwrap_or_default();
                let rest: Vec<String> = parts.collect();
                if !rest.is_empty() {
                    if let Err(e) = state.wechat.push_text(&session, &rest.join("\n")).await {
                        tracing::warn!(error = %e, "rest of a long answer not queued");
                    }
                }
                Answer::Text(first)
            }
            None => Answer::Nothing,
        },
        Ok(Err(_)) => Answer::Text("服务暂时不可用，请稍后再试。".into()),
        Err(_) => {
            tracing::info!(
                budget_ms = budget.as_millis() as u64,
                "answer slower than the budget: pushed when ready"
            );
            let wechat = state.wechat.clone();
            tokio::spawn(async move {
                let Ok(c) = done_rx.await else { return };
                if let Some(t) = c.text() {
                    if let Err(e) = wechat.push_text(&session, &t).await {
                        tracing::warn!(error = %e, "answer not queued for WeChat");
                    }
                }
            });
            Answer::Nothing
        }
    }
}
