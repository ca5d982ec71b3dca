//! The outbox: every call to WeChat's API is stored first (`wechat_outbox`) and made by this
//! worker, so nothing is lost while WeChat is unreachable or the service restarts.
//!
//! Delivery is at least once: a row is claimed (a lease in `claimed_until`), the call is made,
//! and the row is marked right after WeChat answers. The one window where a message can go out
//! twice is a crash between WeChat's answer and that mark (one database write; custom/send has
//! no idempotency key to close it). A worker that dies leaves its claims to expire and be
//! taken again. Retries back off exponentially; permanent errors (45015 outside the 48-hour
//! window, 43101 subscription refused, 40003 bad openid…) are not retried, and a counselor's
//! reply that could not be delivered becomes a note on the conversation for counselors.
//!
//! Kinds: [`CUSTOM_SEND`] (an answer for an Official Account user: `{text}`), [`RELAY`] (a
//! counselor's event for a WeChat citizen: `{name, data}`, turned into a customer-service
//! message on the Official Account, or a subscribe message when the mini-program has no
//! socket open).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use super::{openid_label, Wechat, WechatError};
use crate::domain::{Channel, SessionId};
use crate::store::{now_ms, OutboxRow, OutboxStatus};

/// A customer-service text for an Official Account user.
pub const CUSTOM_SEND: &str = "custom_send";
/// A counselor's event for a citizen on a WeChat channel.
pub const RELAY: &str = "relay";

/// How long a claim holds before another worker may take the row.
const LEASE_MS: i64 = 60_000;
/// Rows taken per round.
const BATCH: i64 = 16;

/// Outbox counters for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    /// Calls WeChat accepted.
    pub sent: AtomicU64,
    /// Tries that failed and will be retried.
    pub retried: AtomicU64,
    /// Calls given up.
    pub failed: AtomicU64,
}

impl OutboxMetrics {
    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP leye_wechat_outbox_total Calls to WeChat by result.\n# TYPE leye_wechat_outbox_total counter"
        );
        for (k, v) in [
            ("sent", &self.sent),
            ("retried", &self.retried),
            ("failed", &self.failed),
        ] {
            let _ = writeln!(
                out,
                "leye_wechat_outbox_total{{result=\"{k}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// What one delivery came to.
enum Outcome {
    Sent,
    /// Nothing to call (e.g. the citizen's socket got it, or no template is configured).
    Skipped(&'static str),
}

impl Wechat {
    /// Runs the worker until the task is aborted: wakes when a row is added and every second.
    pub async fn run_outbox(self, metrics: std::sync::Arc<OutboxMetrics>) {
        loop {
            match self.deliver_due(&metrics).await {
                Ok(n) if n as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox not read"),
            }
            tokio::select! {
                _ = self.outbox_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Claims the rows due now and delivers them; returns how many were taken.
    pub async fn deliver_due(
        &self,
        metrics: &OutboxMetrics,
    ) -> Result<usize, crate::store::DbError> {
        let rows = self.db.outbox_claim(now_ms(), LEASE_MS, BATCH).await?;
        let n = rows.len();
        for row in rows {
            let result = self.deliver(&row).await;
            let attempts = row.attempts + 1;
            match result {
                Ok(outcome) => {
                    let note = match outcome {
                        Outcome::Sent => {
                            metrics.sent.fetch_add(1, Ordering::Relaxed);
                            ""
                        }
                        Outcome::Skipped(why) => why,
                    };
                    self.db
                        .outbox_mark(&row.id, OutboxStatus::Sent, 0, note)
                        .await?;
                }
                Err(e) if e.is_permanent() || attempts >= self.cfg.outbox_max_attempts => {
                    metrics.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = %row.id, kind = %row.kind, attempts, error = %e, "WeChat call given up");
                    self.db
                        .outbox_mark(&row.id, OutboxStatus::Failed, 0, &e.to_string())
                        .await?;
                    self.undelivered(&row, &e).await;
                }
                Err(e) => {
                    metrics.retried.fetch_add(1, Ordering::Relaxed);
                    let wait = self.backoff(attempts);
                    tracing::info!(id = %row.id, kind = %row.kind, attempts, retry_in_ms = wait, error = %e, "WeChat call failed: will retry");
                    self.db
                        .outbox_mark(
                            &row.id,
                            OutboxStatus::Pending,
                            now_ms() + wait,
                            &e.to_string(),
                        )
                        .await?;
                }
            }
        }
        Ok(n)
    }

    /// Milliseconds before try `attempts + 1`: base × 2^(attempts-1), capped.
    fn backoff(&self, attempts: i64) -> i64 {
        let base = self.cfg.outbox_retry_base_ms.max(1) as i64;
        let cap = (self.cfg.outbox_retry_max_secs.max(1) * 1000) as i64;
        let shift = (attempts - 1).clamp(0, 20) as u32;
        base.saturating_mul(1i64 << shift).min(cap)
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<Outcome, WechatError> {
        let payload: Value = serde_json::from_str(&row.payload)
            .map_err(|e| WechatError::Protocol(format!("outbox payload: {e}")))?;
        let session = row
            .session_id
            .as_deref()
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or_else(|| WechatError::Protocol("outbox row without a session".into()))?;
        let user = self
            .db
            .wechat_user_of_session(&session)
            .await
            .map_err(|e| WechatError::Transport(format!("database: {e}")))?;
        let Some(user) = user else {
            return Ok(Outcome::Skipped("no WeChat user for this conversation"));
        };
        match (row.kind.as_str(), user.kind.as_str()) {
            (CUSTOM_SEND, "mp") => {
                let text = payload["text"].as_str().unwrap_or_default();
                self.mp_app()?.custom_send_text(&user.openid, text).await?;
                tracing::info!(user = %openid_label(&user.openid), "customer-service message sent");
                Ok(Outcome::Sent)
            }
            (RELAY, "mp") => {
                let Some(text) = relay_text(&payload) else {
                    return Ok(Outcome::Skipped("event not shown on WeChat"));
                };
                let app = self.mp_app()?;
                for part in super::split_text(&text, super::MAX_TEXT_BYTES) {
                    app.custom_send_text(&user.openid, &part).await?;
                }
                Ok(Outcome::Sent)
            }
            (RELAY, "miniprogram") => {
                if payload["name"] != "counselor_message" {
                    return Ok(Outcome::Skipped("only replies are pushed"));
                }
                if self.presence.is_open(session.as_str()) {
                    return Ok(Outcome::Skipped("delivered over the open socket"));
                }
                let Some(template) = self.cfg.miniprogram.subscribe_template_id.clone() else {
                    return Ok(Outcome::Skipped("no subscribe template configured"));
                };
                let app = self
                    .miniprogram
                    .as_ref()
                    .ok_or_else(|| WechatError::Protocol("mini-program not configured".into()))?;
                let body = subscribe_body(&user.openid, &template, session.as_str(), &payload);
                app.subscribe_send(&body).await?;
                Ok(Outcome::Sent)
            }
            _ => Ok(Outcome::Skipped("nothing to send on this channel")),
        }
    }

    fn mp_app(&self) -> Result<&std::sync::Arc<super::WechatApp>, WechatError> {
        self.mp
            .as_ref()
            .ok_or_else(|| WechatError::Protocol("Official Account not configured".into()))
    }

    /// A reply given up on: outside the 48-hour window the counselors are told on the
    /// conversation, so someone can call back instead.
    async fn undelivered(&self, row: &OutboxRow, e: &WechatError) {
        let Some(session) = row
            .session_id
            .as_deref()
            .and_then(|s| SessionId::parse(s).ok())
        else {
            return;
        };
        let payload: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        let text = match row.kind.as_str() {
            RELAY => relay_text(&payload),
            _ => payload["text"].as_str().map(str::to_string),
        };
        let Some(text) = text else { return };
        let why = match e.code() {
            Some(45015) => "市民超过48小时未发消息，微信不允许再推送客服消息".to_string(),
            Some(43101) => "市民未订阅或已用完订阅消息".to_string(),
            Some(43004) => "市民已取消关注".to_string(),
            _ => format!("微信推送失败（{e}）"),
        };
        let note = format!("【未送达】{why}。未送达的内容：{text}");
        let result = async {
            match self.db.latest_escalation(&session).await? {
                Some(esc) => self
                    .db
                    .add_note(&esc, "system", &note, now_ms())
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }
        .await;
        match result {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(session = %session, "undelivered WeChat message: no escalation to note it on")
            }
            Err(e) => tracing::warn!(error = %e, "undelivered WeChat message not noted"),
        }
    }
}

/// What a counselor's event says to a citizen on a text channel (none for events that are
/// only for the widget).
pub fn relay_text(payload: &Value) -> Option<String> {
    let data = &payload["data"];
    match payload["name"].as_str()? {
        "counselor_message" => Some(format!(
            "【职业指导师 {}】{}",
            data["name"].as_str().unwrap_or(""),
            data["text"].as_str().unwrap_or("")
        )),
        "counselor_joined" => data["text"].as_str().map(str::to_string),
        "status" => match data["status"].as_str()? {
            "resolved" | "returned" => data["text"].as_str().map(str::to_string),
            _ => None,
        },
        _ => None,
    }
}

/// Subscribe-message fields: who replied, the reply's start (WeChat's `thing` fields hold
/// 20 characters), when; tapping it opens the chat page on this conversation.
fn subscribe_body(openid: &str, template: &str, session: &str, payload: &Value) -> Value {
    let data = &payload["data"];
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let now = chrono::Utc::now() + chrono::Duration::hours(8);
    json!({
        "touser": openid,
        "template_id": template,
        "page": format!("pages/chat/chat?session={session}"),
        "data": {
            "thing1": {"value": cut(&format!("职业指导师{}", data["name"].as_str().unwrap_or("")), 20)},
            "thing2": {"value": cut(data["text"].as_str().unwrap_or("您有一条新回复"), 20)},
            "time3": {"value": now.format("%Y-%m-%d %H:%M").to_string()},
        }
    })
}

/// Queues a counselor event for a citizen on a WeChat channel (no-op for other channels).
pub async fn queue_relay(
    db: &crate::store::Db,
    session: &SessionId,
    channel: Channel,
    name: &str,
    data: &Value,
) -> Result<(), crate::store::DbError> {
    if !matches!(channel, Channel::WechatMp | Channel::Miniprogram) {
        return Ok(());
    }
    let payload = json!({"name": name, "data": data}).to_string();
    db.outbox_push(RELAY, &payload, Some(session), now_ms())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counselor_events_read_as_text() {
        let reply =
            json!({"name": "counselor_message", "data": {"name": "张老师", "text": "您好"}});
        assert_eq!(
            relay_text(&reply).as_deref(),
            Some("【职业指导师 张老师】您好")
        );
        let assigned = json!({"name": "status", "data": {"status": "assigned"}});
        assert_eq!(relay_text(&assigned), None);
    }
}
