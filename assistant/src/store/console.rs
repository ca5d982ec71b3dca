//! Storage of the counselor workspace: accounts, console sessions, the audit log, handling of
//! escalations (claim, transfer, close, notes, tags, AI summary) and the numbered events a
//! citizen's stream reads. Same rules as the rest of the store: decisions that race (a claim)
//! are one conditional `UPDATE`, numbers come from counters.

use std::collections::HashSet;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{escalation, new_id, Db, DbError, EscalationRow, Result, ESCALATION_COLUMNS};
use crate::domain::SessionId;

/// A counselor account.
#[derive(Debug, Clone, Serialize)]
pub struct CounselorRow {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Name shown to citizens and colleagues.
    pub display_name: String,
    /// counselor | supervisor | admin.
    pub role: String,
    /// argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
    /// Failed sign-ins in a row.
    pub failed_logins: i64,
    /// No sign-in before this time (ms).
    pub locked_until: i64,
}

const COUNSELOR_COLUMNS: &str =
    "id, username, display_name, role, password_hash, disabled, failed_logins, locked_until";

fn counselor(r: &AnyRow) -> Result<CounselorRow> {
    Ok(CounselorRow {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: r.try_get("role")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        failed_logins: r.try_get("failed_logins")?,
        locked_until: r.try_get("locked_until")?,
    })
}

/// A signed-in console browser.
#[derive(Debug, Clone)]
pub struct ConsoleSessionRow {
    /// SHA-256 of the cookie.
    pub token_hash: String,
    /// CSRF token required on state-changing requests.
    pub csrf_token: String,
    /// Signed in at (ms): the absolute expiry counts from here.
    pub created_at: i64,
    /// Last request (ms): the idle expiry counts from here.
    pub last_seen: i64,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// Total order.
    pub seq: i64,
    /// When (ms).
    pub at: i64,
    /// Who (none for a failed sign-in of an unknown name).
    pub counselor_id: Option<String>,
    /// Login name as given (escaped for display by the console).
    pub username: String,
    /// login | login_failed | logout | open_transcript | claim | reply | note | tag |
    /// transfer | resolve | return | draft | reveal | export.
    pub action: String,
    /// What it acted on (an escalation id).
    pub target: String,
    /// Short detail (an outcome, a transfer's new assignee); never conversation text.
    pub detail: String,
    /// Client address.
    pub client_ip: String,
}

/// Filters of the audit view.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this login name.
    pub username: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// From this time (ms).
    pub since: Option<i64>,
    /// Before this time (ms).
    pub until: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// An internal note on an escalation.
#[derive(Debug, Clone, Serialize)]
pub struct NoteRow {
    /// Id.
    pub id: String,
    /// Author.
    pub counselor_id: String,
    /// Masked text.
    pub text: String,
    /// When (ms).
    pub created_at: i64,
}

/// A stored event of a citizen's stream.
#[derive(Debug, Clone)]
pub struct SessionEventRow {
    /// Place in the session's events, from 1.
    pub seq: i64,
    /// Event name.
    pub name: String,
    /// JSON payload.
    pub data: String,
}

impl Db {
    /// Adds an account; `None` when the login name is taken.
    pub async fn add_counselor(
        &self,
        username: &str,
        display_name: &str,
        role: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<CounselorRow>> {
        let id = new_id();
        let r = sqlx::query(
            "INSERT INTO counselors (id, username, display_name, role, password_hash, disabled, \
             failed_logins, locked_until, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, 0, 0, $6, $7)",
        )
        .bind(&id)
        .bind(username)
        .bind(display_name)
        .bind(role)
        .bind(password_hash)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => self.counselor_by_id(&id).await,
            Err(e) if super::is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The account with this login name.
    pub async fn counselor_by_username(&self, username: &str) -> Result<Option<CounselorRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COUNSELOR_COLUMNS} FROM counselors WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(counselor).transpose()
    }

    /// The account with this id.
    pub async fn counselor_by_id(&self, id: &str) -> Result<Option<CounselorRow>> {
        let row = sqlx::query(&format!(
            "SELECT {COUNSELOR_COLUMNS} FROM counselors WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(counselor).transpose()
    }

    /// Every account, by login name.
    pub async fn counselors(&self) -> Result<Vec<CounselorRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COUNSELOR_COLUMNS} FROM counselors ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(counselor).collect()
    }

    /// Disables or enables an account; disabling also signs it out everywhere. Returns
    /// whether the account exists.
    pub async fn set_counselor_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool> {
        let Some(c) = self.counselor_by_username(username).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE counselors SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(disabled))
            .bind(now)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            sqlx::query("DELETE FROM console_sessions WHERE counselor_id = $1")
                .bind(&c.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a new password hash, clears the lockout and signs the account out everywhere.
    pub async fn set_counselor_password(
        &self,
        username: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool> {
        let Some(c) = self.counselor_by_username(username).await? else {
            return Ok(false);
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE counselors SET password_hash = $1, failed_logins = 0, locked_until = 0, updated_at = $2 WHERE id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE counselor_id = $1")
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Counts a failed sign-in (atomically: concurrent guesses all count) and returns the new
    /// count.
    pub async fn count_failed_login(&self, id: &str, now: i64) -> Result<i64> {
        let n: i64 = sqlx::query(
            "UPDATE counselors SET failed_logins = failed_logins + 1, updated_at = $1 WHERE id = $2 RETURNING failed_logins",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DbError::NotFound("counselor"))?
        .try_get(0)?;
        Ok(n)
    }

    /// Locks sign-in until `until` (ms).
    pub async fn lock_counselor(&self, id: &str, until: i64) -> Result<()> {
        sqlx::query("UPDATE counselors SET locked_until = $1 WHERE id = $2")
            .bind(until)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A successful sign-in clears the failure count.
    pub async fn clear_failed_logins(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE counselors SET failed_logins = 0, locked_until = 0 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a signed-in browser.
    pub async fn add_console_session(
        &self,
        token_hash: &str,
        counselor_id: &str,
        csrf_token: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, counselor_id, csrf_token, created_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(counselor_id)
        .bind(csrf_token)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The signed-in browser with this cookie hash, and its account.
    pub async fn console_session(
        &self,
        token_hash: &str,
    ) -> Result<Option<(ConsoleSessionRow, CounselorRow)>> {
        let row = sqlx::query(
            "SELECT token_hash, csrf_token, created_at, last_seen, counselor_id FROM console_sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let s = ConsoleSessionRow {
            token_hash: r.try_get("token_hash")?,
            csrf_token: r.try_get("csrf_token")?,
            created_at: r.try_get("created_at")?,
            last_seen: r.try_get("last_seen")?,
        };
        let cid: String = r.try_get("counselor_id")?;
        Ok(self.counselor_by_id(&cid).await?.map(|c| (s, c)))
    }

    /// Records activity of a signed-in browser (the idle expiry restarts).
    pub async fn touch_console_session(&self, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Signs a browser out.
    pub async fn delete_console_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends to the audit log.
    pub async fn audit(&self, e: &AuditRow) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query(
            "UPDATE counters SET value = value + 1 WHERE name = 'audit' RETURNING value",
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DbError::NotFound("audit counter"))?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO audit_log (seq, at, counselor_id, username, action, target, detail, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(e.at)
        .bind(e.counselor_id.as_deref())
        .bind(&e.username)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.detail)
        .bind(&e.client_ip)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Audit entries matching `f`, newest first.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        // Each filter is a condition that is true when the parameter is NULL, so one
        // statement serves every combination.
        let rows = sqlx::query(
            "SELECT seq, at, counselor_id, username, action, target, detail, client_ip FROM audit_log \
             WHERE ($1 IS NULL OR username = $1) AND ($2 IS NULL OR action = $2) \
               AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(f.username.as_deref())
        .bind(f.action.as_deref())
        .bind(f.since)
        .bind(f.until)
        .bind(f.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    counselor_id: r.try_get("counselor_id")?,
                    username: r.try_get("username")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                    client_ip: r.try_get("client_ip")?,
                })
            })
            .collect()
    }

    /// One escalation.
    pub async fn escalation(&self, id: &str) -> Result<Option<EscalationRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation).transpose()
    }

    /// Waiting and assigned escalations, in arrival order.
    pub async fn open_escalations(&self) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations WHERE status IN ('waiting', 'assigned') ORDER BY queue_seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation).collect()
    }

    /// Takes a waiting escalation for `counselor_id`. One conditional update, so of two
    /// counselors claiming at once exactly one changes the row; the other gets `false`.
    pub async fn claim(&self, id: &str, counselor_id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE escalations SET status = 'assigned', assignee = $1, assigned_at = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'waiting'",
        )
        .bind(counselor_id)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives an assigned escalation to another counselor (only while it is assigned).
    pub async fn transfer(&self, id: &str, to: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE escalations SET assignee = $1, assigned_at = $2, updated_at = $3 WHERE id = $4 AND status = 'assigned'",
        )
        .bind(to)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Closes an open escalation as `status` (resolved | returned) with an outcome; false
    /// when it was no longer open.
    pub async fn close_escalation(
        &self,
        id: &str,
        status: &str,
        outcome: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE escalations SET status = $1, outcome = $2, updated_at = $3 \
             WHERE id = $4 AND status IN ('waiting', 'assigned')",
        )
        .bind(status)
        .bind(outcome)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces the tags (a JSON array).
    pub async fn set_tags(&self, id: &str, tags_json: &str) -> Result<()> {
        sqlx::query("UPDATE escalations SET tags = $1 WHERE id = $2")
            .bind(tags_json)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores the AI summary (JSON: text, sources, generated_at).
    pub async fn set_ai_summary(&self, id: &str, summary_json: &str) -> Result<()> {
        sqlx::query("UPDATE escalations SET ai_summary = $1 WHERE id = $2")
            .bind(summary_json)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an internal note (masked text).
    pub async fn add_note(
        &self,
        e: &EscalationRow,
        counselor_id: &str,
        text: &str,
        now: i64,
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO escalation_notes (id, escalation_id, session_id, counselor_id, text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&e.id)
        .bind(&e.session_id)
        .bind(counselor_id)
        .bind(text)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The notes of an escalation, oldest first.
    pub async fn notes(&self, escalation_id: &str) -> Result<Vec<NoteRow>> {
        let rows = sqlx::query(
            "SELECT id, counselor_id, text, created_at FROM escalation_notes WHERE escalation_id = $1 ORDER BY created_at, id",
        )
        .bind(escalation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NoteRow {
                    id: r.try_get("id")?,
                    counselor_id: r.try_get("counselor_id")?,
                    text: r.try_get("text")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Stores an event for the citizen's stream and returns its number in the session.
    pub async fn add_session_event(
        &self,
        session: &SessionId,
        name: &str,
        data: &str,
        now: i64,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query(
            "UPDATE sessions SET next_event = next_event + 1 WHERE id = $1 RETURNING next_event",
        )
        .bind(session.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DbError::NotFound("session"))?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO session_events (session_id, seq, name, data, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.as_str())
        .bind(seq)
        .bind(name)
        .bind(data)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The session's stored events after `after`, in order.
    pub async fn session_events_after(
        &self,
        session: &SessionId,
        after: i64,
    ) -> Result<Vec<SessionEventRow>> {
        let rows = sqlx::query(
            "SELECT seq, name, data FROM session_events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000",
        )
        .bind(session.as_str())
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionEventRow {
                    seq: r.try_get("seq")?,
                    name: r.try_get("name")?,
                    data: r.try_get("data")?,
                })
            })
            .collect()
    }

    /// Console sign-ins active since `since` (ms): counselors online now.
    pub async fn signed_in_since(&self, since: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM console_sessions s JOIN counselors c ON c.id = s.counselor_id \
             WHERE s.last_seen >= $1 AND c.disabled = 0",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Stores a callback request (the number already sealed, the message masked).
    pub async fn add_callback(
        &self,
        e: &EscalationRow,
        phone_sealed: &str,
        message: &str,
        now: i64,
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO callbacks (id, session_id, escalation_id, phone_sealed, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&e.session_id)
        .bind(&e.id)
        .bind(phone_sealed)
        .bind(message)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The callback requests of an escalation, oldest first.
    pub async fn callbacks(&self, escalation_id: &str) -> Result<Vec<CallbackRow>> {
        let rows = sqlx::query(
            "SELECT id, phone_sealed, message, created_at FROM callbacks WHERE escalation_id = $1 ORDER BY created_at, id",
        )
        .bind(escalation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallbackRow {
                    id: r.try_get("id")?,
                    phone_sealed: r.try_get("phone_sealed")?,
                    message: r.try_get("message")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The open escalations whose citizen left a callback number (one query for the queue).
    pub async fn open_escalations_with_callbacks(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT c.escalation_id FROM callbacks c JOIN escalations e ON e.id = c.escalation_id \
             WHERE e.status IN ('waiting', 'assigned')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(DbError::from))
            .collect()
    }

    /// Raises an alert (a crisis nobody could take at once).
    pub async fn add_alert(&self, escalation_id: &str, kind: &str, now: i64) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO alerts (id, escalation_id, kind, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(escalation_id)
        .bind(kind)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Alerts nobody acknowledged yet, oldest first.
    pub async fn open_alerts(&self) -> Result<Vec<AlertRow>> {
        let rows = sqlx::query(
            "SELECT id, escalation_id, kind, created_at FROM alerts WHERE acknowledged_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertRow {
                    id: r.try_get("id")?,
                    escalation_id: r.try_get("escalation_id")?,
                    kind: r.try_get("kind")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Acknowledges an alert; false when it was unknown or already acknowledged.
    pub async fn ack_alert(&self, id: &str, counselor_id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at = $2 WHERE id = $3 AND acknowledged_at IS NULL",
        )
        .bind(counselor_id)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

/// A callback request.
#[derive(Debug, Clone)]
pub struct CallbackRow {
    /// Id.
    pub id: String,
    /// The sealed number.
    pub phone_sealed: String,
    /// The citizen's message (masked).
    pub message: String,
    /// When (ms).
    pub created_at: i64,
}

/// An alert for the console.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    /// Id.
    pub id: String,
    /// The escalation.
    pub escalation_id: String,
    /// `crisis_unattended`.
    pub kind: String,
    /// When (ms).
    pub created_at: i64,
}
