//! The counselor console: its pages (`/console`, `/console/login`, `/console/console.js`) and
//! its API under `/console/api/`.
//!
//! Sign-in sets an HttpOnly, SameSite=Strict cookie (`Secure` with `console.cookie_secure`);
//! every API route but the sign-in is listed in [`ROUTES`] with the least role it needs, and
//! one guard (cookie → expiry → CSRF on state-changing methods → role) runs before each. The
//! console is same-origin only: no CORS headers are sent for it.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ClientIp, JsonBody};
use super::AppState;
use crate::console::{Auth, Login, Role, Signed, WorkspaceError, COOKIE, OUTCOMES};
use crate::domain::{constant_time_eq, SessionId};
use crate::guard::for_log;

/// Header that carries the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Header of requests the console page makes by itself (refreshes): they do not count as
/// activity for the idle expiry.
pub const BACKGROUND_HEADER: &str = "x-leye-background";

/// A console API route and the least role that may call it.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// GET or POST.
    pub method: &'static str,
    /// Path as routed (`{id}` for an escalation id).
    pub path: &'static str,
    /// Least role.
    pub role: Role,
}

const fn r(method: &'static str, path: &'static str, role: Role) -> RouteSpec {
    RouteSpec { method, path, role }
}

/// Every console API route behind the sign-in guard.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/console/api/me", Role::Counselor),
    r("POST", "/console/api/logout", Role::Counselor),
    r("GET", "/console/api/queue", Role::Counselor),
    r("GET", "/console/api/events", Role::Counselor),
    r("GET", "/console/api/escalations/{id}", Role::Counselor),
    r(
        "POST",
        "/console/api/escalations/{id}/claim",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/reply",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/notes",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/tags",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/transfer",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/resolve",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/return",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/draft",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/summary",
        Role::Counselor,
    ),
    r(
        "POST",
        "/console/api/escalations/{id}/callback",
        Role::Counselor,
    ),
    r("GET", "/console/api/alerts", Role::Counselor),
    r("POST", "/console/api/alerts/{id}/ack", Role::Counselor),
    r("GET", "/console/api/counselors", Role::Counselor),
    r("GET", "/console/api/stats", Role::Supervisor),
    r("GET", "/console/api/stats.csv", Role::Supervisor),
    r("GET", "/console/api/audit", Role::Admin),
];

const PAGE: &str = include_str!("../../web/console.html");
const SCRIPT: &str = include_str!("../../web/console.js");

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            // The session was deleted by its citizen meanwhile (a message or callback racing
            // the 删除记录 button): the same answer as for any unknown session.
            WorkspaceError::Db(crate::store::DbError::NotFound("session")) => {
                ApiError::session_not_found()
            }
            WorkspaceError::Db(e) => e.into(),
            WorkspaceError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                match what {
                    "counselor" => "没有这位职业指导师",
                    "alert" => "没有这条提醒（或已处理）",
                    _ => "没有找到该会话",
                },
            ),
            WorkspaceError::Forbidden(why) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                match why {
                    "role" => "您的角色无权进行此操作",
                    "claim it first" => "请先接入该会话",
                    _ => "该会话由其他职业指导师处理",
                },
            ),
            WorkspaceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            WorkspaceError::BadInput(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", m)
            }
        }
    }
}

fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<AppState>>> {
    let h = match (method, path) {
        ("GET", "/console/api/me") => get(me),
        ("POST", "/console/api/logout") => post(logout),
        ("GET", "/console/api/queue") => get(queue),
        ("GET", "/console/api/events") => get(super::events::console_events),
        ("GET", "/console/api/escalations/{id}") => get(view),
        ("POST", "/console/api/escalations/{id}/claim") => post(claim),
        ("POST", "/console/api/escalations/{id}/reply") => post(reply),
        ("POST", "/console/api/escalations/{id}/notes") => post(note),
        ("POST", "/console/api/escalations/{id}/tags") => post(tags),
        ("POST", "/console/api/escalations/{id}/transfer") => post(transfer),
        ("POST", "/console/api/escalations/{id}/resolve") => post(resolve),
        ("POST", "/console/api/escalations/{id}/return") => post(hand_back),
        ("POST", "/console/api/escalations/{id}/draft") => post(draft),
        ("POST", "/console/api/escalations/{id}/summary") => post(summary),
        ("POST", "/console/api/escalations/{id}/callback") => post(reveal_callbacks),
        ("GET", "/console/api/alerts") => get(alerts),
        ("POST", "/console/api/alerts/{id}/ack") => post(ack_alert),
        ("GET", "/console/api/counselors") => get(counselors),
        ("GET", "/console/api/stats") => get(stats),
        ("GET", "/console/api/stats.csv") => get(stats_csv),
        ("GET", "/console/api/audit") => get(audit),
        _ => return None,
    };
    Some(h)
}

/// The console's routes: pages, sign-in (under the per-IP limit) and the guarded API.
pub(super) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let mut api = Router::new();
    for spec in ROUTES {
        let Some(h) = handler(spec.method, spec.path) else {
            // A table entry without a handler is a programming error caught by the tests
            // (every entry is called there); the route is simply absent.
            tracing::error!(path = spec.path, "console route without a handler");
            continue;
        };
        let role = spec.role;
        let st = state.clone();
        api = api.route(
            spec.path,
            h.route_layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let st = st.clone();
                    async move { guard(st, role, req, next).await }
                },
            )),
        );
    }
    let login = Router::new()
        .route("/console/api/login", post(login))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::middleware::limit_ip,
        ));
    let page = || async {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            PAGE,
        )
            .into_response()
    };
    Router::new()
        .merge(api)
        .merge(login)
        .route("/console", get(page))
        .route("/console/login", get(page))
        .route(
            "/console/console.js",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            "application/javascript; charset=utf-8",
                        ),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    SCRIPT,
                )
                    .into_response()
            }),
        )
}

/// The sign-in cookie's value, if sent.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn unauthenticated(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Cookie → sign-in (expiry) → CSRF on state-changing methods → role; the signed-in
/// counselor goes to the handler as an extension.
async fn guard(state: Arc<AppState>, role: Role, mut req: Request, next: Next) -> Response {
    let signed = match cookie(req.headers()) {
        None => return unauthenticated("unauthenticated", "请先登录").into_response(),
        // The console marks the requests it makes by itself (periodic and event-driven
        // reloads): they must not keep an unattended sign-in alive.
        Some(c) => match state
            .workspace
            .authenticate(&c, !req.headers().contains_key(BACKGROUND_HEADER))
            .await
        {
            Err(e) => return ApiError::from(e).into_response(),
            Ok(Auth::Missing) => {
                return unauthenticated("unauthenticated", "请先登录").into_response()
            }
            Ok(Auth::Expired) => {
                return unauthenticated("session_expired", "登录已过期，请重新登录").into_response()
            }
            Ok(Auth::Ok(s)) => s,
        },
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), signed.csrf.as_bytes()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "请求校验失败，请刷新页面后重试",
            )
            .into_response();
        }
    }
    if !signed.role.allows(role) {
        return ApiError::from(WorkspaceError::Forbidden("role")).into_response();
    }
    req.extensions_mut().insert(Arc::new(*signed));
    next.run(req).await
}

type Me = Extension<Arc<Signed>>;

fn set_cookie(state: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.workspace.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let c = format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&c)
        .unwrap_or_else(|_| HeaderValue::from_static("leye_console=; Max-Age=0"))
}

fn whoami(s: &Signed, state: &AppState) -> serde_json::Value {
    json!({
        "id": s.counselor.id, "username": s.counselor.username,
        "display_name": s.counselor.display_name, "role": s.role,
        "csrf_token": s.csrf,
        "sla_minutes": state.workspace.config().sla_minutes,
        "outcomes": OUTCOMES.iter().map(|(k, v)| json!({"id": k, "label": v})).collect::<Vec<_>>(),
    })
}

/// `POST /console/api/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// Signs in: sets the cookie and returns the counselor with their CSRF token.
pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    if body.username.chars().count() > 64 || body.password.chars().count() > 256 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "用户名或密码错误",
        ));
    }
    let out = state
        .workspace
        .login(&body.username, &body.password, &ip.to_string())
        .await?;
    match out {
        Login::Ok { token, signed } => {
            tracing::info!(counselor = %for_log(&signed.counselor.username), "console sign-in");
            let max_age = state.workspace.config().absolute_timeout_hours * 3600;
            let mut resp = Json(whoami(&signed, &state)).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&state, token.expose(), max_age),
            );
            Ok(resp)
        }
        Login::Invalid => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "用户名或密码错误",
        )),
        Login::Disabled => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "该账号已停用，请联系管理员",
        )),
        Login::Locked { retry_after_secs } => {
            let mut e = ApiError::rate_limited(std::time::Duration::from_secs(retry_after_secs));
            e.code = "account_locked";
            e.message = format!("登录失败次数过多，请{retry_after_secs}秒后再试");
            Err(e)
        }
    }
}

/// `GET /console/api/me`.
pub async fn me(State(state): State<Arc<AppState>>, Extension(s): Me) -> Json<serde_json::Value> {
    Json(whoami(&s, &state))
}

/// `POST /console/api/logout`.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
) -> Result<Response, ApiError> {
    state.workspace.logout(&s, &ip.to_string()).await?;
    let mut resp = Json(json!({"signed_out": true})).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, "", 0));
    Ok(resp)
}

/// `GET /console/api/queue`.
pub async fn queue(
    State(state): State<Arc<AppState>>,
    Extension(s): Me,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = state.workspace.queue(&s).await?;
    Ok(Json(json!({"queue": items})))
}

fn parse_json(text: &str, empty: serde_json::Value) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(empty)
}

/// `GET /console/api/escalations/{id}`: the conversation view (audited): the masked
/// transcript with each answer's intent, retrieval trace, citations and job cards; the
/// profile and the 政策申领 result from it; notes; the AI summary.
pub async fn view(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ws = &state.workspace;
    let e = ws.visible(&s, &id).await?;
    ws.opened(&s, &e, &ip.to_string()).await?;
    let db = ws.db();
    let sid = crate::console::session_of(&e)?;
    let session = db.session(&sid).await?;
    let names: std::collections::HashMap<String, String> = db
        .counselors()
        .await?
        .into_iter()
        .map(|c| (c.id, c.display_name))
        .collect();
    let mut messages = Vec::new();
    for m in db.messages(&sid).await? {
        let trace = if m.role == "assistant" {
            db.trace(&m.id)
                .await?
                .map(|t| parse_json(&t, json!({})))
                .unwrap_or_else(|| json!({}))
        } else {
            json!(null)
        };
        messages.push(json!({
            "id": m.id, "seq": m.seq, "role": m.role, "text": m.text, "intent": m.intent,
            "status": m.status, "created_at": m.created_at,
            "citations": parse_json(&m.citations, json!([])),
            "jobs": parse_json(&m.jobs, json!([])),
            "trace": trace,
        }));
    }
    let notes: Vec<serde_json::Value> = db
        .notes(&e.id)
        .await?
        .into_iter()
        .map(|n| {
            json!({"id": n.id, "author": names.get(&n.counselor_id).map(String::as_str).or((n.counselor_id == "system").then_some("系统")), "text": n.text, "created_at": n.created_at})
        })
        .collect();
    let summary = if e.ai_summary.is_empty() {
        json!(null)
    } else {
        parse_json(&e.ai_summary, json!(null))
    };
    Ok(Json(json!({
        "escalation": {
            "id": e.id, "status": e.status, "reason": e.reason, "intent": e.intent,
            "summary": e.summary, "created_at": e.created_at, "outcome": e.outcome,
            "assignee": e.assignee.as_ref().and_then(|a| names.get(a)),
            "mine": e.assignee.as_deref() == Some(s.counselor.id.as_str()),
            "tags": parse_json(&e.tags, json!([])),
        },
        "channel": session.as_ref().map(|s| s.channel.clone()),
        "profile": session.as_ref().map(|s| parse_json(&s.profile, json!({}))),
        "eligibility": session
            .as_ref()
            .and_then(|s| eligibility(state.assistant.benefits(), &s.profile)),
        "messages": messages,
        "notes": notes,
        "ai_summary": summary,
    })))
}

/// Makes the AI summary of an escalation's conversation and stores it; the console hears of
/// it on the bus. Failures are logged: the summary is a help, not a step of the handling.
async fn make_summary(state: Arc<AppState>, escalation_id: String, session: SessionId) {
    let db = state.workspace.db().clone();
    let messages = match db.messages(&session).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %super::error::error_chain(&e), "AI summary: transcript unreadable");
            return;
        }
    };
    match state.assistant.summarize(&messages).await {
        Ok(sum) => {
            let stored = json!({
                "label": "AI生成摘要，仅供参考", "text": sum.text, "sources": sum.sources,
                "generated_at": crate::store::now_ms(),
            });
            if let Err(e) = db.set_ai_summary(&escalation_id, &stored.to_string()).await {
                tracing::warn!(error = %super::error::error_chain(&e), "AI summary not stored");
                return;
            }
            state.workspace.announce("summary", &escalation_id);
        }
        Err(e) => tracing::warn!(error = %super::error::error_chain(&e), "AI summary failed"),
    }
}

/// `POST /console/api/escalations/{id}/claim`: 409 `already_claimed` naming who took it.
/// The AI summary is made in the background.
pub async fn claim(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let e = state.workspace.claim(&s, &id, &ip.to_string()).await?;
    if let Ok(sid) = crate::console::session_of(&e) {
        tokio::spawn(make_summary(state.clone(), e.id.clone(), sid));
    }
    Ok(Json(json!({"claimed": true, "id": e.id})))
}

/// `POST /console/api/escalations/{id}/summary`: makes the AI summary again, now.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let e = state.workspace.visible(&s, &id).await?;
    let sid = crate::console::session_of(&e)?;
    make_summary(state.clone(), e.id.clone(), sid).await;
    let e = state.workspace.visible(&s, &id).await?;
    Ok(Json(
        json!({"ai_summary": parse_json(&e.ai_summary, json!(null))}),
    ))
}

/// A body with one text field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    text: String,
}

/// `POST /console/api/escalations/{id}/reply`: the citizen's widget receives it live.
pub async fn reply(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TextBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mid = state
        .workspace
        .reply(&s, &id, &body.text, &ip.to_string())
        .await?;
    Ok(Json(json!({"message_id": mid})))
}

/// `POST /console/api/escalations/{id}/notes`: an internal note.
pub async fn note(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TextBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let nid = state
        .workspace
        .note(&s, &id, &body.text, &ip.to_string())
        .await?;
    Ok(Json(json!({"note_id": nid})))
}

/// `POST /console/api/escalations/{id}/tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    tags: Vec<String>,
}

/// Replaces the tags.
pub async fn tags(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TagsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tags = state
        .workspace
        .tag(&s, &id, &body.tags, &ip.to_string())
        .await?;
    Ok(Json(json!({"tags": tags})))
}

/// `POST /console/api/escalations/{id}/transfer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    counselor_id: String,
}

/// Gives the conversation to another counselor.
pub async fn transfer(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TransferBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .workspace
        .transfer(&s, &id, &body.counselor_id, &ip.to_string())
        .await?;
    Ok(Json(json!({"transferred": true})))
}

/// `POST /console/api/escalations/{id}/resolve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    outcome: String,
}

/// Ends the conversation with an outcome.
pub async fn resolve(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .workspace
        .resolve(&s, &id, &body.outcome, &ip.to_string())
        .await?;
    Ok(Json(json!({"resolved": true})))
}

/// `POST /console/api/escalations/{id}/return`: back to the assistant.
pub async fn hand_back(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.workspace.hand_back(&s, &id, &ip.to_string()).await?;
    Ok(Json(json!({"returned": true})))
}

/// `POST /console/api/escalations/{id}/draft`: an AI draft reply to the citizen's last
/// question, grounded like an answer; returned to the counselor only.
pub async fn draft(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ws = &state.workspace;
    let e = ws.visible(&s, &id).await?;
    let sid = crate::console::session_of(&e)?;
    let messages = ws.db().messages(&sid).await?;
    let question = crate::console::last_question(&messages)
        .ok_or_else(|| WorkspaceError::BadInput("对话中还没有可以起草答复的问题".into()))?;
    let d = state.assistant.draft(&question).await?;
    ws.audit(
        Some(&s.counselor),
        &s.counselor.username,
        "draft",
        &id,
        "",
        &ip.to_string(),
    )
    .await?;
    Ok(Json(json!({
        "label": "AI草稿，请核对修改后再发送", "question": d.question, "text": d.text,
        "citations": d.citations, "grounded": d.grounded,
    })))
}

/// `GET /console/api/counselors`: active accounts (for transfer).
pub async fn counselors(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list: Vec<serde_json::Value> = state
        .workspace
        .db()
        .counselors()
        .await?
        .into_iter()
        .filter(|c| !c.disabled)
        .map(|c| json!({"id": c.id, "display_name": c.display_name, "role": c.role}))
        .collect();
    Ok(Json(json!({"counselors": list})))
}

/// `GET /console/api/audit?username=&action=&since=&until=&limit=` (times in ms).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    username: Option<String>,
    action: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<i64>,
}

/// The audit log, newest first (admins).
pub async fn audit(
    State(state): State<Arc<AppState>>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let f = crate::store::AuditFilter {
        username: q.username.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        since: q.since,
        until: q.until,
        limit: q.limit.unwrap_or(200),
    };
    let rows = state.workspace.db().audit_entries(&f).await?;
    Ok(Json(json!({"entries": rows})))
}

/// `?days=N` of the dashboard (default 30, at most 366).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    days: Option<i64>,
}

fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("查询参数有误：{}", for_log(&e.body_text())),
    )
}

async fn stat_rows(
    state: &AppState,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Vec<crate::store::StatRow>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let from = crate::store::day_of(crate::store::now_ms() - (days - 1) * 86_400_000);
    Ok(state.workspace.db().stats_since(&from).await?)
}

/// `GET /console/api/stats?days=30`: the supervisor dashboard from the daily aggregates.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = stat_rows(&state, q).await?;
    Ok(Json(crate::console::stats::dashboard(&rows)))
}

/// `GET /console/api/stats.csv?days=30`: the aggregates as CSV (no personal data); audited.
pub async fn stats_csv(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let rows = stat_rows(&state, q).await?;
    state
        .workspace
        .audit(
            Some(&s.counselor),
            &s.counselor.username,
            "export",
            "stats.csv",
            &rows.len().to_string(),
            &ip.to_string(),
        )
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"leye-stats.csv\"",
            ),
        ],
        crate::console::stats::csv(&rows),
    )
        .into_response())
}

/// `POST /console/api/escalations/{id}/callback`: the callback numbers the citizen left, for
/// the counselor holding the conversation only; each reveal is audited.
pub async fn reveal_callbacks(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state
        .workspace
        .reveal_callbacks(&s, &id, &ip.to_string())
        .await?;
    Ok(Json(json!({"callbacks": list})))
}

/// `GET /console/api/alerts`: crisis alerts nobody acknowledged, with the on-call contact.
pub async fn alerts(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(state.workspace.alerts().await?))
}

/// `POST /console/api/alerts/{id}/ack`.
pub async fn ack_alert(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    Extension(s): Me,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.workspace.ack_alert(&s, &id, &ip.to_string()).await?;
    Ok(Json(json!({"acknowledged": true})))
}

/// What the rules engine says for the facts in a citizen's profile (none when nothing is
/// known): the benefits they qualify for, and those that depend on facts still missing.
fn eligibility(
    benefits: &crate::dialogue::claims::Benefits,
    profile: &str,
) -> Option<serde_json::Value> {
    use crate::dialogue::claims;
    let p: crate::dialogue::memory::Profile = serde_json::from_str(profile).ok()?;
    if p.claim.facts.0.is_empty() || benefits.is_empty() {
        return None;
    }
    let state = claims::ClaimState {
        asked: claims::MAX_QUESTIONS,
        ..p.claim.clone()
    };
    let v = claims::step(benefits, &state);
    Some(json!({
        "facts": p.claim.facts,
        "qualified": v.qualified.iter().map(|c| json!({"name": c.name, "source": c.source})).collect::<Vec<_>>(),
        "possibly": v.possibly.iter().map(|c| json!({"name": c.name, "missing": c.missing})).collect::<Vec<_>>(),
        "unanswered": p.claim.unanswered,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_refusals_map_to_stable_codes() {
        let code = |e: WorkspaceError| ApiError::from(e).code;
        assert_eq!(
            code(WorkspaceError::Db(crate::store::DbError::NotFound(
                "session"
            ))),
            "session_not_found"
        );
        assert_eq!(code(WorkspaceError::Forbidden("role")), "forbidden");
        assert_eq!(code(WorkspaceError::NotFound("escalation")), "not_found");
        assert_eq!(code(WorkspaceError::BadInput("x".into())), "invalid_field");
        let conflict = WorkspaceError::Conflict {
            code: "already_claimed",
            message: "已被 X 接入".into(),
        };
        assert_eq!(ApiError::from(conflict).status, StatusCode::CONFLICT);
    }

    #[test]
    fn every_route_in_the_table_has_a_handler() {
        for r in ROUTES {
            assert!(
                handler(r.method, r.path).is_some(),
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; leye_console=abc ; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("leye_console="));
        assert_eq!(cookie(&h), None);
    }
}
