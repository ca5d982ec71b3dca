//! Conversation storage with sqlx: SQLite (WAL, the default, `<home>/leye.db`) or PostgreSQL
//! (`DATABASE_URL=postgres://…`), one set of migrations (`assistant/migrations/`).
//!
//! Durability rules: a citizen's message is committed before the answer starts; the answer's
//! row is written as `pending` first and completed at the end, so a crash leaves the question
//! stored and the turn marked (`pending` rows become `incomplete` at the next start).
//! Everything stored here is already masked by the guard.
//!
//! Order and uniqueness come from the database, never from clocks or check-then-insert:
//! message `seq` from a per-session counter, queue order from the `escalation_queue` counter
//! (`UPDATE … RETURNING`, atomic on both databases), one open escalation per session from a
//! unique partial index.

use std::path::Path;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyConnection;
use sqlx::{AnyPool, Row};

use crate::domain::{Channel, SessionId, TokenHash};

mod console;
mod stats;
mod wechat;
pub use console::{
    AlertRow, AuditFilter, AuditRow, CallbackRow, ConsoleSessionRow, CounselorRow, NoteRow,
    SessionEventRow,
};
pub use stats::{day_of, StatRow};
pub use wechat::{Dedup, OutboxRow, OutboxStatus, WechatUserRow};

/// The migrations, in order, embedded in the binary: (version, description, SQL). Applied by
/// sqlx's migrator (table `_sqlx_migrations`, checksums, each in a transaction, under an
/// advisory lock on PostgreSQL so replicas starting together apply each migration once).
/// A file, once released, is never edited: its checksum is checked at every start.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations",
        include_str!("../../migrations/0001_conversations.sql"),
    ),
    (2, "trust", include_str!("../../migrations/0002_trust.sql")),
    (3, "trace", include_str!("../../migrations/0003_trace.sql")),
    (
        4,
        "console",
        include_str!("../../migrations/0004_console.sql"),
    ),
    (
        5,
        "wechat",
        include_str!("../../migrations/0005_wechat.sql"),
    ),
];

/// [`MIGRATIONS`] as a sqlx migration source.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The schema could not be brought up to date (a failed or edited migration).
    #[error("migrating the database")]
    Migrate(#[from] MigrateError),
    /// The URL names no supported database.
    #[error("database url {0:?}: use sqlite://PATH or postgres://…")]
    Url(String),
    /// A row that should exist does not.
    #[error("{0} not found")]
    NotFound(&'static str),
}

type Result<T, E = DbError> = std::result::Result<T, E>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The conversation store.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new random id (128 bits, hex).
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    /// Id.
    pub id: String,
    /// Channel it started on.
    pub channel: String,
    /// The citizen's profile as JSON (city, group, …).
    pub profile: String,
    /// Turns in a row the assistant could not answer.
    pub failures: i64,
    /// Created, ms.
    pub created_at: i64,
    /// SHA-256 of the session's token (none for sessions made before tokens existed).
    pub token_hash: Option<String>,
    /// The WeChat user who owns it (mini-program sessions).
    pub wechat_user_id: Option<String>,
}

impl SessionRow {
    /// The channel the session lives on.
    pub fn channel(&self) -> Channel {
        Channel::from_stored(&self.channel)
    }
}

/// A stored message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    /// Id (the turn id for assistant messages).
    pub id: String,
    /// Position in the session, from 1.
    pub seq: i64,
    /// user | assistant | counselor | system.
    pub role: String,
    /// Masked text.
    pub text: String,
    /// Channel.
    pub channel: String,
    /// Intent of the turn.
    pub intent: Option<String>,
    /// complete | pending | incomplete.
    pub status: String,
    /// Citations JSON.
    pub citations: String,
    /// Job cards JSON.
    pub jobs: String,
    /// The question as rewritten for retrieval (follow-ups).
    pub rewritten: Option<String>,
    /// Created, ms.
    pub created_at: i64,
}

/// An escalation to a counselor.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationRow {
    /// Ticket id.
    pub id: String,
    /// Session.
    pub session_id: String,
    /// waiting | assigned | resolved | returned (to the assistant) | abandoned.
    pub status: String,
    /// Why (explicit, complaint, wage_dispute, crisis, repeated_failure, not_covered).
    pub reason: String,
    /// Place in arrival order, handed out by the database.
    pub queue_seq: i64,
    /// Intent of the turn that escalated.
    pub intent: String,
    /// The citizen's last message (masked), for the queue view.
    pub summary: String,
    /// Created, ms.
    pub created_at: i64,
    /// The counselor holding it (their id).
    pub assignee: Option<String>,
    /// When it was claimed or transferred, ms.
    pub assigned_at: Option<i64>,
    /// How it ended (answered | referred | callback | citizen_left).
    pub outcome: Option<String>,
    /// Tags as a JSON array.
    pub tags: String,
    /// The AI summary as JSON (empty until made).
    pub ai_summary: String,
}

/// The assistant's answer, when it is complete (or cut off).
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// Final (verified, masked) text.
    pub text: String,
    /// complete | incomplete.
    pub status: &'static str,
    /// Intent.
    pub intent: String,
    /// Citations JSON.
    pub citations: String,
    /// Job cards JSON.
    pub jobs: String,
    /// Rewritten question.
    pub rewritten: Option<String>,
    /// Time to first token.
    pub ttft_ms: Option<i64>,
    /// Whole turn.
    pub latency_ms: i64,
    /// Retrieval trace JSON (`{}` when the turn retrieved nothing).
    pub trace: String,
}

fn message(r: &AnyRow) -> Result<MessageRow> {
    Ok(MessageRow {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        role: r.try_get("role")?,
        text: r.try_get("text")?,
        channel: r.try_get("channel")?,
        intent: r.try_get("intent")?,
        status: r.try_get("status")?,
        citations: r.try_get("citations")?,
        jobs: r.try_get("jobs")?,
        rewritten: r.try_get("rewritten")?,
        created_at: r.try_get("created_at")?,
    })
}

const ESCALATION_COLUMNS: &str = "id, session_id, status, reason, queue_seq, intent, summary, \
     created_at, assignee, assigned_at, outcome, tags, ai_summary";

fn escalation(r: &AnyRow) -> Result<EscalationRow> {
    Ok(EscalationRow {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        queue_seq: r.try_get("queue_seq")?,
        intent: r.try_get("intent")?,
        summary: r.try_get("summary")?,
        created_at: r.try_get("created_at")?,
        assignee: r.try_get("assignee")?,
        assigned_at: r.try_get("assigned_at")?,
        outcome: r.try_get("outcome")?,
        tags: r.try_get("tags")?,
        ai_summary: r.try_get("ai_summary")?,
    })
}

impl Db {
    /// The default SQLite URL for a data folder.
    pub fn sqlite_url(home: &Path) -> String {
        crate::config::sqlite_url(home)
    }

    /// Connects, runs pending migrations, and marks answers cut off by an earlier crash as
    /// `incomplete`.
    pub async fn open(url: &str) -> Result<Self> {
        let db = Self::connect(url).await?;
        db.migrate().await?;
        let cut = db.mark_interrupted().await?;
        if cut > 0 {
            tracing::warn!(
                answers = cut,
                "answers cut off by an earlier stop marked incomplete"
            );
        }
        Ok(db)
    }

    /// Connects without migrating (administration, e.g. creating a database).
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::Url(url.to_string()));
        };
        let mut options = AnyPoolOptions::new().max_connections(match backend {
            // One writer at a time is SQLite's model; a few readers help the console.
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL: readers never block the writer; FULL sync: a committed message
                    // survives power loss, not only a process crash. Foreign keys on.
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=FULL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys=ON")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        Ok(Self { pool, backend })
    }

    /// Runs one statement outside the schema (administration and tests).
    pub async fn execute_raw(&self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the connection (readiness).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = Migrator::new(Embedded).await?;
        let before = {
            let mut conn = self.pool.acquire().await?;
            conn.lock().await?;
            let before = self.baseline(&mut conn, &migrator).await;
            conn.unlock().await?;
            before?
        };
        migrator.run(&self.pool).await?;
        for m in migrator.iter().filter(|m| !before.contains(&m.version)) {
            tracing::info!(version = m.version, name = %m.description, "migration applied");
        }
        Ok(())
    }

    /// Databases made before sqlx's migrator recorded their versions in `schema_migrations`,
    /// applied from these same files. Their versions are entered into `_sqlx_migrations` with
    /// today's checksums, once, under the migration lock, so the migrator goes on from there
    /// instead of re-running them. The old table is left in place (read, never written).
    /// Returns the versions recorded before this start.
    async fn baseline(&self, conn: &mut AnyConnection, migrator: &Migrator) -> Result<Vec<i64>> {
        let old_table = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
            }
        };
        conn.ensure_migrations_table().await?;
        let applied: Vec<i64> = conn
            .list_applied_migrations()
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect();
        let old_exists: i64 = sqlx::query(old_table)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if old_exists == 0 || !applied.is_empty() {
            return Ok(applied);
        }
        let old: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for m in migrator.iter().filter(|m| old.contains(&m.version)) {
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, 0)",
            )
            .bind(m.version)
            .bind(m.description.as_ref())
            .bind(m.checksum.to_vec())
            .execute(&mut *conn)
            .await?;
            tracing::info!(
                version = m.version,
                "migration from the old migrator recorded"
            );
        }
        Ok(old)
    }

    /// The schema versions applied successfully, in order (operations and tests).
    pub async fn schema_versions(&self) -> Result<Vec<i64>> {
        let rows =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?)
    }

    /// Marks answers left `pending` by a crash or kill as `incomplete`; returns how many.
    pub async fn mark_interrupted(&self) -> Result<u64> {
        let r = sqlx::query("UPDATE messages SET status = 'incomplete' WHERE status = 'pending'")
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Creates a session owned by the holder of the token whose hash is given.
    pub async fn create_session(&self, channel: Channel, token: &TokenHash) -> Result<SessionId> {
        let id = SessionId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, channel, profile, failures, created_at, updated_at, token_hash, next_seq) \
             VALUES ($1, $2, '{}', 0, $3, $4, $5, 0)",
        )
        .bind(id.as_str())
        .bind(channel.as_str())
        .bind(now)
        .bind(now)
        .bind(token.as_str())
        .execute(&self.pool)
        .await?;
        self.count("conversations", "").await;
        Ok(id)
    }

    /// A session, if it exists.
    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT id, channel, profile, failures, created_at, token_hash, wechat_user_id FROM sessions WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                profile: r.try_get("profile")?,
                failures: r.try_get("failures")?,
                created_at: r.try_get("created_at")?,
                token_hash: r.try_get("token_hash")?,
                wechat_user_id: r.try_get("wechat_user_id")?,
            })
        })
        .transpose()
    }

    /// The session, only when `token` is its token. An unknown id and a wrong token give the
    /// same `None`, so callers cannot tell which ids exist.
    ///
    /// A mini-program session is also opened by its WeChat user's login token (the user owns
    /// all their sessions; the session's own token is never handed out).
    pub async fn authorize(&self, id: &SessionId, token: &TokenHash) -> Result<Option<SessionRow>> {
        let s = self.session(id).await?;
        let Some(s) = s else { return Ok(None) };
        if s.token_hash
            .as_ref()
            .is_some_and(|h| TokenHash::from_stored(h.clone()).matches(token))
        {
            return Ok(Some(s));
        }
        match s.wechat_user_id.clone() {
            Some(owner) => {
                let user = self.wechat_user_by_token(token, now_ms()).await?;
                Ok(user
                    .filter(|u| crate::domain::constant_time_eq(u.id.as_bytes(), owner.as_bytes()))
                    .map(|_| s))
            }
            None => Ok(None),
        }
    }

    /// Whether `turn_id` is an assistant message of this session.
    pub async fn turn_in_session(&self, session: &SessionId, turn_id: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM messages WHERE id = $1 AND session_id = $2 AND role = 'assistant'",
        )
        .bind(turn_id)
        .bind(session.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Deletes a conversation: messages, feedback, escalations and the session with its
    /// profile. Returns whether it existed.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        let n = self
            .delete_conversations("id = $1", Arg::Text(id.as_str()))
            .await?;
        Ok(n > 0)
    }

    /// Deletes conversations with no activity since `before_ms` (the retention period);
    /// returns how many.
    pub async fn purge_inactive(&self, before_ms: i64) -> Result<u64> {
        self.delete_conversations("updated_at < $1", Arg::Int(before_ms))
            .await
    }

    /// Deletes, in one transaction, everything of the sessions matching `cond` (a condition
    /// on `sessions` with the one parameter `$1`), then the sessions; returns how many.
    async fn delete_conversations(&self, cond: &str, arg: Arg<'_>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "callbacks",
            "feedback",
            "messages",
            "session_events",
            "escalation_notes",
            "escalations",
            "wechat_outbox",
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE session_id IN (SELECT id FROM sessions WHERE {cond})"
            );
            arg.bind(sqlx::query(&sql)).execute(&mut *tx).await?;
        }
        let sql = format!("DELETE FROM sessions WHERE {cond}");
        let r = arg.bind(sqlx::query(&sql)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// Saves the session's profile and failure count.
    pub async fn update_session(&self, id: &SessionId, profile: &str, failures: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET profile = $1, failures = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(profile)
        .bind(failures)
        .bind(now_ms())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends a message (committed when this returns) and returns its id. Its place comes
    /// from the session's counter, so concurrent messages (two tabs, two servers) never
    /// collide.
    pub async fn add_message(
        &self,
        session_id: &SessionId,
        role: &str,
        text: &str,
        channel: Channel,
        status: &str,
    ) -> Result<String> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query(
            "UPDATE sessions SET next_seq = next_seq + 1, updated_at = $1 WHERE id = $2 RETURNING next_seq",
        )
        .bind(now)
        .bind(session_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DbError::NotFound("session"))?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO messages (id, session_id, seq, role, text, channel, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(session_id.as_str())
        .bind(seq)
        .bind(role)
        .bind(text)
        .bind(channel.as_str())
        .bind(status)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Completes (or marks cut off) an assistant message written as `pending`.
    pub async fn complete_message(&self, id: &str, c: &Completion) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET text = $1, status = $2, intent = $3, citations = $4, jobs = $5, \
             rewritten = $6, ttft_ms = $7, latency_ms = $8, trace = $9 WHERE id = $10",
        )
        .bind(&c.text)
        .bind(c.status)
        .bind(&c.intent)
        .bind(&c.citations)
        .bind(&c.jobs)
        .bind(c.rewritten.as_deref())
        .bind(c.ttft_ms)
        .bind(c.latency_ms)
        .bind(&c.trace)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The retrieval trace stored with an answer (`None` for an unknown id).
    pub async fn trace(&self, message_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT trace FROM messages WHERE id = $1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("trace")).transpose()?)
    }

    /// Sets the intent of a stored message (the citizen's, once routed).
    pub async fn set_intent(&self, id: &str, intent: &str) -> Result<()> {
        sqlx::query("UPDATE messages SET intent = $1 WHERE id = $2")
            .bind(intent)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The transcript of a session, in order.
    pub async fn messages(&self, session_id: &SessionId) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT id, seq, role, text, channel, intent, status, citations, jobs, rewritten, created_at \
             FROM messages WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message).collect()
    }

    /// Every stored message text (tests check that no PII reached the database).
    pub async fn all_texts(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT text FROM messages UNION ALL SELECT summary FROM escalations \
             UNION ALL SELECT text FROM feedback UNION ALL SELECT profile FROM sessions \
             UNION ALL SELECT text FROM escalation_notes UNION ALL SELECT data FROM session_events \
             UNION ALL SELECT ai_summary FROM escalations UNION ALL SELECT message FROM callbacks",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(DbError::from))
            .collect()
    }

    /// The open (waiting or assigned) escalation of a session.
    pub async fn open_escalation(&self, session_id: &SessionId) -> Result<Option<EscalationRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations \
             WHERE session_id = $1 AND status IN ('waiting', 'assigned')"
        ))
        .bind(session_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation).transpose()
    }

    /// Creates a waiting escalation, or returns the session's open one, with its 1-based queue
    /// position among waiting escalations. The queue number is taken from the database counter
    /// in the same transaction as the insert, so two escalations can never share a place; the
    /// unique index decides which of two concurrent requests of one session creates it.
    pub async fn escalate(
        &self,
        session_id: &SessionId,
        reason: &str,
        intent: &str,
        summary: &str,
    ) -> Result<(EscalationRow, i64)> {
        let e = match self.open_escalation(session_id).await? {
            Some(e) => e,
            None => match self
                .insert_escalation(session_id, reason, intent, summary)
                .await
            {
                Ok(e) => e,
                Err(DbError::Sql(e)) if is_unique_violation(&e) => self
                    .open_escalation(session_id)
                    .await?
                    .ok_or(DbError::NotFound("open escalation"))?,
                Err(e) => return Err(e),
            },
        };
        let position = self.queue_position(&e).await?;
        Ok((e, position))
    }

    async fn insert_escalation(
        &self,
        session_id: &SessionId,
        reason: &str,
        intent: &str,
        summary: &str,
    ) -> Result<EscalationRow> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query(
            "UPDATE counters SET value = value + 1 WHERE name = 'escalation_queue' RETURNING value",
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DbError::NotFound("escalation_queue counter"))?
        .try_get(0)?;
        let e = EscalationRow {
            id: new_id(),
            session_id: session_id.to_string(),
            status: "waiting".into(),
            reason: reason.to_string(),
            queue_seq: seq,
            intent: intent.to_string(),
            summary: summary.to_string(),
            created_at: now,
            assignee: None,
            assigned_at: None,
            outcome: None,
            tags: "[]".into(),
            ai_summary: String::new(),
        };
        sqlx::query(
            "INSERT INTO escalations (id, session_id, status, reason, intent, summary, created_at, updated_at, queue_seq) \
             VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(session_id.as_str())
        .bind(reason)
        .bind(intent)
        .bind(summary)
        .bind(now)
        .bind(now)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.count("handoff", reason).await;
        Ok(e)
    }

    /// 1-based place of a waiting escalation: how many waiting ones arrived before it, plus one.
    pub async fn queue_position(&self, e: &EscalationRow) -> Result<i64> {
        let ahead: i64 = sqlx::query(
            "SELECT COUNT(*) FROM escalations WHERE status = 'waiting' AND queue_seq < $1",
        )
        .bind(e.queue_seq)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(ahead + 1)
    }

    /// Moves an escalation to `status` (assigned, resolved, abandoned).
    pub async fn set_escalation_status(&self, id: &str, status: &str) -> Result<()> {
        sqlx::query("UPDATE escalations SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Waiting escalations, in arrival order.
    pub async fn waiting(&self) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ESCALATION_COLUMNS} FROM escalations WHERE status = 'waiting' ORDER BY queue_seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation).collect()
    }

    /// Stores 👍 (1) or 👎 (-1) with an optional comment.
    pub async fn add_feedback(
        &self,
        session_id: &SessionId,
        turn_id: Option<&str>,
        rating: i64,
        text: &str,
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO feedback (id, session_id, turn_id, rating, text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(session_id.as_str())
        .bind(turn_id)
        .bind(rating)
        .bind(text)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.count("feedback", if rating > 0 { "up" } else { "down" })
            .await;
        Ok(id)
    }
}

/// One query parameter of either type the conversation deletes need.
#[derive(Clone, Copy)]
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

impl<'a> Arg<'a> {
    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>
    where
        'a: 'q,
    {
        match self {
            Arg::Text(t) => q.bind(t),
            Arg::Int(n) => q.bind(n),
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
