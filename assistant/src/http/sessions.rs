//! Session routes: create, read the transcript, feedback, 转人工, delete. Everything but
//! creation needs the session's token in `X-Session-Token`; without the right one the answer
//! is the same 404 as for an id that does not exist.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::chat::new_session;
use super::error::ApiError;
use super::extract::{authorize, ClientIp, JsonBody, MaybeJsonBody};
use super::AppState;
use crate::domain::{Channel, Rating, TurnId};
use crate::guard::{citizen_text, for_log};

/// `GET /api/v1/privacy`: the notice the widget shows before the first message, stating this
/// deployment's retention period.
pub async fn privacy(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let days = state.privacy.retention_days;
    let kept = if days == 0 {
        "会一直保存，直到您删除".to_string()
    } else {
        format!("在最后一次使用后保存{days}天，之后自动删除")
    };
    let notice = format!(
        "隐私提示：您的对话{kept}，仅用于解答问题、转接人工职业指导师和改进服务。\
身份证号、手机号、银行卡号、邮箱等个人信息会先自动隐去再保存，不会出现在日志中。\
请不要输入姓名和详细住址。您可以随时点击“删除记录”删除本次对话。"
    );
    Json(json!({"retention_days": days, "notice": notice}))
}

/// `POST /api/v1/sessions` takes no fields; a body, if sent, must be an empty JSON object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {}

/// `POST /api/v1/sessions`: a new session and its token (shown this once).
pub async fn create(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    MaybeJsonBody(_): MaybeJsonBody<CreateBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (id, token) = new_session(&state, ip, Channel::Web).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"session_id": id.as_str(), "session_token": token.expose()})),
    ))
}

/// `GET /api/v1/sessions/{id}`: the masked transcript.
pub async fn transcript(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (caller, s) = authorize(&state, &id, &headers).await?;
    let sid = caller.session();
    let db = state.assistant.db();
    let messages = db.messages(sid).await?;
    let escalation = db.open_escalation(sid).await?;
    let parse = |what: &str, text: &str, empty: serde_json::Value| {
        serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|e| {
            tracing::warn!(error = %for_log(&e.to_string()), what, "stored JSON unreadable");
            empty
        })
    };
    let messages: Vec<serde_json::Value> = messages
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id, "seq": m.seq, "role": m.role, "text": m.text, "intent": m.intent,
                "status": m.status, "created_at": m.created_at,
                "citations": parse("citations", &m.citations, json!([])),
                "jobs": parse("jobs", &m.jobs, json!([])),
            })
        })
        .collect();
    Ok(Json(json!({
        "session_id": s.id,
        "channel": s.channel,
        "profile": parse("profile", &s.profile, json!({})),
        "messages": messages,
        "handoff": escalation.map(|e| json!({"ticket_id": e.id, "status": e.status, "reason": e.reason})),
    })))
}

/// `POST /api/v1/sessions/{id}/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// The answer rated; it must be an answer of this session.
    turn_id: Option<String>,
    rating: Rating,
    #[serde(default)]
    comment: String,
}

/// Longest feedback comment, characters.
const MAX_COMMENT_CHARS: usize = 1000;
/// Longest handoff note, characters.
const MAX_NOTE_CHARS: usize = 500;

/// Stores 👍/👎 with an optional comment (cleaned and masked).
pub async fn feedback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<FeedbackBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    let sid = caller.session();
    if body.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::too_long("意见", MAX_COMMENT_CHARS));
    }
    let db = state.assistant.db();
    let turn = match &body.turn_id {
        None => None,
        Some(t) => {
            let t = TurnId::parse(t).map_err(|_| ApiError::turn_not_found())?;
            if !db.turn_in_session(sid, t.as_str()).await? {
                return Err(ApiError::turn_not_found());
            }
            Some(t)
        }
    };
    let fid = db
        .add_feedback(
            sid,
            turn.as_ref().map(TurnId::as_str),
            body.rating.score(),
            &citizen_text(&body.comment),
        )
        .await?;
    Ok(Json(json!({"feedback_id": fid})))
}

/// `POST /api/v1/sessions/{id}/handoff`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffBody {
    #[serde(default)]
    note: String,
}

/// Explicit 转人工 on an existing session (never creates one).
pub async fn handoff(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<HandoffBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    if body.note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::too_long("留言", MAX_NOTE_CHARS));
    }
    let info = state.assistant.request_handoff(&caller, &body.note).await?;
    Ok(Json(json!(info)))
}

/// `DELETE /api/v1/sessions/{id}`: deletes the conversation (messages, feedback, escalations,
/// profile). The token stops working with it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    let sid = caller.session();
    let deleted = state.assistant.db().delete_session(sid).await?;
    tracing::info!(session = %sid, "conversation deleted by its citizen");
    Ok(Json(json!({"deleted": deleted})))
}

/// `POST /api/v1/sessions/{id}/callback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackBody {
    phone: String,
    #[serde(default)]
    message: String,
}

/// Leaves a message and a callback number on the open escalation (outside service hours or
/// with nobody online). The number is sealed; only the counselor who takes the conversation
/// can read it, and each reading is audited.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CallbackBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    if body.message.chars().count() > MAX_NOTE_CHARS || body.phone.chars().count() > 40 {
        return Err(ApiError::too_long("留言", MAX_NOTE_CHARS));
    }
    let cid = state
        .workspace
        .leave_callback(&caller, &body.phone, &body.message)
        .await?;
    Ok(Json(json!({"callback_id": cid})))
}
