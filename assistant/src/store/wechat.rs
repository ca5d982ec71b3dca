//! Storage of the WeChat channels: users by openid, mini-program login tokens, sessions owned
//! by a WeChat user, message de-duplication, and the outbox of calls to WeChat's API.
//!
//! The outbox is claimed, not locked: a worker moves `claimed_until` forward for the rows it
//! takes (on PostgreSQL inside `FOR UPDATE SKIP LOCKED`, so replicas never take the same
//! row); a worker that dies leaves its rows to be claimed again when the lease runs out.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{escalation, new_id, now_ms, Backend, Db, EscalationRow, Result, ESCALATION_COLUMNS};
use crate::domain::{Channel, SessionId, TokenHash};

/// A WeChat user (one per openid and kind).
#[derive(Debug, Clone)]
pub struct WechatUserRow {
    /// Our id for them (what sessions and tokens refer to).
    pub id: String,
    /// miniprogram | mp.
    pub kind: String,
    /// WeChat's id of the user for our app: used only to address WeChat's API, never sent to a
    /// client or written to a log.
    pub openid: String,
    /// The Official Account's current conversation.
    pub session_id: Option<String>,
    /// When the user last wrote to us, ms (the 48-hour customer-service window).
    pub last_inbound: i64,
}

fn user(r: &AnyRow) -> Result<WechatUserRow> {
    Ok(WechatUserRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        openid: r.try_get("openid")?,
        session_id: r.try_get("session_id")?,
        last_inbound: r.try_get("last_inbound")?,
    })
}

const USER_COLUMNS: &str = "id, kind, openid, session_id, last_inbound";

/// What a message key has seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    /// First delivery: answer it.
    New,
    /// A retry: the text answered inline the first time, if any.
    Seen(Option<String>),
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting to be (re)tried.
    Pending,
    /// Delivered.
    Sent,
    /// Given up (a permanent error, or out of attempts).
    Failed,
}

impl OutboxStatus {
    fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

/// A call to WeChat waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Id.
    pub id: String,
    /// custom_send | subscribe_send | relay.
    pub kind: String,
    /// The call's JSON.
    pub payload: String,
    /// The conversation it belongs to, if any.
    pub session_id: Option<String>,
    /// Tries so far (before this one).
    pub attempts: i64,
    /// Queued, ms.
    pub created_at: i64,
}

impl Db {
    /// The user with this openid (made on first sight); records that they wrote now.
    pub async fn wechat_user(&self, kind: &str, openid: &str, now: i64) -> Result<WechatUserRow> {
        // Insert-or-ignore, then read: two first messages at once make one user.
        sqlx::query(
            "INSERT INTO wechat_users (id, kind, openid, session_id, created_at, last_inbound) \
             VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (kind, openid) DO NOTHING",
        )
        .bind(new_id())
        .bind(kind)
        .bind(openid)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE wechat_users SET last_inbound = $1 WHERE kind = $2 AND openid = $3")
            .bind(now)
            .bind(kind)
            .bind(openid)
            .execute(&self.pool)
            .await?;
        let sql =
            format!("SELECT {USER_COLUMNS} FROM wechat_users WHERE kind = $1 AND openid = $2");
        let r = sqlx::query(&sql)
            .bind(kind)
            .bind(openid)
            .fetch_one(&self.pool)
            .await?;
        user(&r)
    }

    /// A WeChat user by id.
    pub async fn wechat_user_by_id(&self, id: &str) -> Result<Option<WechatUserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM wechat_users WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(user).transpose()
    }

    /// Stores a mini-program login token (its hash) for a user until `expires_at`.
    pub async fn add_wechat_token(
        &self,
        user_id: &str,
        token: &TokenHash,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO wechat_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token.as_str())
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        // Expired tokens of everyone go on the way.
        sqlx::query("DELETE FROM wechat_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user a valid (unexpired) login token belongs to.
    pub async fn wechat_user_by_token(
        &self,
        token: &TokenHash,
        now: i64,
    ) -> Result<Option<WechatUserRow>> {
        // Looked up by the hash itself: the hash of a 256-bit secret, so the index lookup's
        // timing tells an attacker nothing usable.
        let sql =
            "SELECT u.id, u.kind, u.openid, u.session_id, u.last_inbound FROM wechat_tokens t \
             JOIN wechat_users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.expires_at > $2";
        let r = sqlx::query(sql)
            .bind(token.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(user).transpose()
    }

    /// Creates a session owned by a WeChat user (its own token hash is random and unknown).
    pub async fn create_owned_session(&self, channel: Channel, user_id: &str) -> Result<SessionId> {
        let id = self
            .create_session(channel, &crate::domain::SessionToken::new().hash())
            .await?;
        sqlx::query("UPDATE sessions SET wechat_user_id = $1 WHERE id = $2")
            .bind(user_id)
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// The user's sessions, newest activity first (at most `limit`).
    pub async fn owned_sessions(&self, user_id: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, updated_at FROM sessions WHERE wechat_user_id = $1 ORDER BY updated_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("updated_at")?)))
            .collect()
    }

    /// Sets the Official Account user's current conversation.
    pub async fn set_wechat_session(&self, user_id: &str, session: &SessionId) -> Result<()> {
        sqlx::query("UPDATE wechat_users SET session_id = $1 WHERE id = $2")
            .bind(session.as_str())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The WeChat user a session belongs to: its owner (mini-program) or the Official
    /// Account user whose conversation it is.
    pub async fn wechat_user_of_session(&self, id: &SessionId) -> Result<Option<WechatUserRow>> {
        if let Some(owner) = self.session(id).await?.and_then(|s| s.wechat_user_id) {
            return self.wechat_user_by_id(&owner).await;
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM wechat_users WHERE session_id = $1");
        let r = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(user).transpose()
    }

    /// The session's most recent escalation, open or closed.
    pub async fn latest_escalation(&self, id: &SessionId) -> Result<Option<EscalationRow>> {
        let sql = format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations WHERE session_id = $1 ORDER BY queue_seq DESC LIMIT 1"
        );
        let r = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(escalation).transpose()
    }

    /// Records a message key; says whether it is new or a retry (with the inline reply given
    /// the first time). One insert decides, so concurrent retries see one `New`. A key whose
    /// first delivery never got as far as storing its question (`taken` unset) for
    /// `stale_ms` is taken over by the retry (`New` again): the process that had it died.
    pub async fn dedup(&self, key: &str, now: i64, stale_ms: i64) -> Result<Dedup> {
        let r = sqlx::query(
            "INSERT INTO wechat_dedup (msg_key, created_at, reply, taken) VALUES ($1, $2, NULL, 0) \
             ON CONFLICT (msg_key) DO NOTHING",
        )
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(Dedup::New);
        }
        let r = sqlx::query(
            "UPDATE wechat_dedup SET created_at = $1 WHERE msg_key = $2 AND taken = 0 AND created_at < $3",
        )
        .bind(now)
        .bind(key)
        .bind(now - stale_ms)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 1 {
            return Ok(Dedup::New);
        }
        let r = sqlx::query("SELECT reply FROM wechat_dedup WHERE msg_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(Dedup::Seen(match r {
            Some(r) => r.try_get("reply")?,
            None => None,
        }))
    }

    /// Marks a message key safe: its question is stored (or it needed none).
    pub async fn dedup_taken(&self, key: &str) -> Result<()> {
        sqlx::query("UPDATE wechat_dedup SET taken = 1 WHERE msg_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Remembers the text a message was answered with inline (and marks it safe).
    pub async fn dedup_reply(&self, key: &str, reply: &str) -> Result<()> {
        sqlx::query("UPDATE wechat_dedup SET reply = $1, taken = 1 WHERE msg_key = $2")
            .bind(reply)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets message keys older than `before` (WeChat retries within seconds; a day is kept).
    pub async fn purge_dedup(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM wechat_dedup WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Queues a call to WeChat; committed when this returns.
    pub async fn outbox_push(
        &self,
        kind: &str,
        payload: &str,
        session: Option<&SessionId>,
        now: i64,
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO wechat_outbox (id, kind, payload, session_id, status, attempts, next_attempt_at, \
             claimed_until, last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, '', $6, $7)",
        )
        .bind(&id)
        .bind(kind)
        .bind(payload)
        .bind(session.map(|s| s.as_str().to_string()))
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Claims up to `limit` due rows until `now + lease_ms`, oldest first.
    pub async fn outbox_claim(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let pick = match self.backend {
            Backend::Postgres => {
                "SELECT id FROM wechat_outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED"
            }
            // SQLite has one writer at a time: the UPDATE itself is the lock.
            Backend::Sqlite => {
                "SELECT id FROM wechat_outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 ORDER BY created_at LIMIT $3"
            }
        };
        let sql = format!(
            "UPDATE wechat_outbox SET claimed_until = $1 WHERE id IN ({pick}) \
             RETURNING id, kind, payload, session_id, attempts, created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<OutboxRow> = rows
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    payload: r.try_get("payload")?,
                    session_id: r.try_get("session_id")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_>>()?;
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// Marks a row after a try: sent, failed for good, or pending again at `next_attempt_at`.
    pub async fn outbox_mark(
        &self,
        id: &str,
        status: OutboxStatus,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE wechat_outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
             claimed_until = 0, last_error = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows by status (for metrics and `leye` status output): (pending, sent, failed).
    pub async fn outbox_counts(&self) -> Result<(i64, i64, i64)> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM wechat_outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut out = (0, 0, 0);
        for r in rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            match status.as_str() {
                "pending" => out.0 = n,
                "sent" => out.1 = n,
                _ => out.2 += n,
            }
        }
        Ok(out)
    }

    /// Tries made so far over all rows (tests and status output).
    pub async fn outbox_attempts(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COALESCE(SUM(attempts), 0) AS n FROM wechat_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Forgets delivered rows older than `before`.
    pub async fn purge_outbox(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM wechat_outbox WHERE status = 'sent' AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
