//! Long-lived event streams (server-sent events):
//!
//! - `GET /api/v1/sessions/{id}/events` (session token): what counselors do for this citizen:
//!   `counselor_joined`, `counselor_message`, `status`. Events are stored and numbered per
//!   session, so `Last-Event-ID` resumes exactly after the last one seen, also across a
//!   restart.
//! - `GET /console/api/events` (signed-in counselor): `queue`, `message`, `summary` notices
//!   with an escalation id; the console re-reads through its API. The sign-in is re-checked
//!   every minute, so a stream ends when its sign-in expires or is revoked.
//!
//! Both subscribe to the bus before reading anything, so no event falls between the read and
//! the subscription.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::extract::{authorize, last_event_id};
use super::AppState;
use crate::bus::Topic;
use crate::console::Signed;

/// A stream of server-sent events as the response, with keep-alives every 15 s and the
/// header that tells nginx and similar proxies not to buffer it.
pub(super) fn sse_stream(rx: mpsc::Receiver<Result<SseEvent, Infallible>>) -> Response {
    let sse = Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut resp = sse.into_response();
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// `GET /api/v1/sessions/{id}/events`: the citizen's stream of counselor events.
pub async fn session_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, _) = authorize(&state, &id, &headers).await?;
    // Stored event numbers are i64; anything beyond is past every event there is.
    let after = i64::try_from(last_event_id(&headers)?).unwrap_or(i64::MAX);
    let mut events = follow_session(&state, caller.session().clone(), after);
    let (out, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(32);
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                e = events.recv() => match e { Some(e) => e, None => return },
                _ = out.closed() => return,
            };
            let e = SseEvent::default()
                .id(ev.seq.to_string())
                .event(ev.name)
                .data(ev.data);
            if out.send(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    Ok(sse_stream(rx))
}

/// One of a citizen's stored events, in order.
#[derive(Debug, Clone)]
pub(crate) struct CitizenEvent {
    /// Its number in the session.
    pub seq: i64,
    /// `counselor_joined`, `counselor_message`, `status`.
    pub name: String,
    /// JSON text.
    pub data: String,
}

/// Follows a session's counselor events after `after`: stored ones first, then live ones,
/// each exactly once and in order. Ends when the receiver is dropped (or the store fails).
pub(crate) fn follow_session(
    state: &AppState,
    sid: crate::domain::SessionId,
    after: i64,
) -> mpsc::Receiver<CitizenEvent> {
    let mut live = state.workspace.bus().subscribe();
    let db = state.workspace.db().clone();
    let (out, rx) = mpsc::channel::<CitizenEvent>(32);
    let topic = Topic::Session(sid.to_string());
    tokio::spawn(async move {
        let mut last = after;
        // Stored events first, then live ones; a lagging subscriber re-reads the store.
        let mut reread = true;
        loop {
            if reread {
                reread = false;
                let stored = match db.session_events_after(&sid, last).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %super::error::error_chain(&e), "session events unreadable");
                        return;
                    }
                };
                for ev in stored {
                    last = ev.seq;
                    let e = CitizenEvent {
                        seq: ev.seq,
                        name: ev.name,
                        data: ev.data,
                    };
                    if out.send(e).await.is_err() {
                        return;
                    }
                }
            }
            let next = tokio::select! {
                n = live.recv() => n,
                _ = out.closed() => return,
            };
            match next {
                Ok(ev) if ev.topic == topic => {
                    let Some(seq) = ev.seq else { continue };
                    if seq <= last {
                        continue;
                    }
                    if seq > last + 1 {
                        // Something in between was missed (published before we subscribed
                        // or out of order): the store has it.
                        reread = true;
                        continue;
                    }
                    last = seq;
                    let e = CitizenEvent {
                        seq,
                        name: ev.name,
                        data: ev.data.to_string(),
                    };
                    if out.send(e).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => reread = true,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    rx
}

/// `GET /console/api/events`: notices for the console.
pub async fn console_events(
    State(state): State<Arc<AppState>>,
    Extension(who): Extension<Arc<Signed>>,
) -> Response {
    let mut live = state.workspace.bus().subscribe();
    let (out, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let ws = state.workspace.clone();
    tokio::spawn(async move {
        let mut check = tokio::time::interval(Duration::from_secs(60));
        check.tick().await;
        // A first event, so the console knows the stream is open and reloads the queue.
        let hello = SseEvent::default()
            .event("ready")
            .data(json!({}).to_string());
        if out.send(Ok(hello)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                n = live.recv() => n,
                _ = check.tick() => {
                    if !ws.still_signed_in(&who.token_hash).await.unwrap_or(false) {
                        let e = SseEvent::default().event("signed_out").data("{}");
                        let _ = out.send(Ok(e)).await;
                        return;
                    }
                    continue;
                }
                _ = out.closed() => return,
            };
            let e = match next {
                Ok(ev) if ev.topic == Topic::Console => {
                    SseEvent::default().event(ev.name).data(ev.data.to_string())
                }
                Ok(_) => continue,
                // Missed notices: the console reloads everything.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    SseEvent::default().event("ready").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if out.send(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    sse_stream(rx)
}
