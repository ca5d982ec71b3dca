//! Conversation storage with sqlx: SQLite (WAL, the default, `<home>/leye.db`) or PostgreSQL
//! (`DATABASE_URL=postgres://…`), one set of migrations (`assistant/migrations/`).
//!
//! Durability rules: a citizen's message is committed before the answer starts; the answer's
//! row is written as `pending` first and completed at the end, so a crash leaves the question
//! stored and the turn marked (`pending` rows become `incomplete` at the next start).
//! Everything stored here is already masked by the guard.

use std::path::Path;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// The migrations, in order. Each runs once, inside a transaction, recorded in
/// `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "conversations",
    include_str!("../../migrations/0001_conversations.sql"),
)];

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
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
    /// waiting | assigned | resolved | abandoned.
    pub status: String,
    /// Why (explicit, complaint, wage_dispute, crisis, repeated_failure, not_covered).
    pub reason: String,
    /// Intent of the turn that escalated.
    pub intent: String,
    /// The citizen's last message (masked), for the queue view.
    pub summary: String,
    /// Created, ms.
    pub created_at: i64,
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

fn escalation(r: &AnyRow) -> Result<EscalationRow> {
    Ok(EscalationRow {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        intent: r.try_get("intent")?,
        summary: r.try_get("summary")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Db {
    /// The default SQLite URL for a data folder.
    pub fn sqlite_url(home: &Path) -> String {
        format!("sqlite://{}?mode=rwc", home.join("leye.db").display())
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
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            for statement in sql.split(';').map(strip_comments).filter(|s| !s.is_empty()) {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version, name, "migration applied");
        }
        Ok(())
    }

    /// Marks answers left `pending` by a crash or kill as `incomplete`; returns how many.
    pub async fn mark_interrupted(&self) -> Result<u64> {
        let r = sqlx::query("UPDATE messages SET status = 'incomplete' WHERE status = 'pending'")
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// The session `id`, created when missing (or when `id` is `None`).
    pub async fn ensure_session(&self, id: Option<&str>, channel: &str) -> Result<SessionRow> {
        if let Some(id) = id {
            if let Some(s) = self.session(id).await? {
                return Ok(s);
            }
        }
        let id = id.map(str::to_string).unwrap_or_else(new_id);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, channel, profile, failures, created_at, updated_at) \
             VALUES ($1, $2, '{}', 0, $3, $4)",
        )
        .bind(&id)
        .bind(channel)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(SessionRow {
            id,
            channel: channel.to_string(),
            profile: "{}".into(),
            failures: 0,
            created_at: now,
        })
    }

    /// A session, if it exists.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT id, channel, profile, failures, created_at FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.try_get("id")?,
                channel: r.try_get("channel")?,
                profile: r.try_get("profile")?,
                failures: r.try_get("failures")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Saves the session's profile and failure count.
    pub async fn update_session(&self, id: &str, profile: &str, failures: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET profile = $1, failures = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(profile)
        .bind(failures)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends a message (committed when this returns) and returns its id.
    pub async fn add_message(
        &self,
        session_id: &str,
        role: &str,
        text: &str,
        channel: &str,
        status: &str,
    ) -> Result<String> {
        let id = new_id();
        // The next seq is computed in the insert; a concurrent insert into the same session
        // (two tabs) hits the UNIQUE constraint and is retried.
        let mut attempts = 0;
        loop {
            let r = sqlx::query(
                "INSERT INTO messages (id, session_id, seq, role, text, channel, status, created_at) \
                 VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = $3), \
                 $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(session_id)
            .bind(session_id)
            .bind(role)
            .bind(text)
            .bind(channel)
            .bind(status)
            .bind(now_ms())
            .execute(&self.pool)
            .await;
            match r {
                Ok(_) => return Ok(id),
                Err(e) if attempts < 5 && is_unique_violation(&e) => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Completes (or marks cut off) an assistant message written as `pending`.
    pub async fn complete_message(&self, id: &str, c: &Completion) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET text = $1, status = $2, intent = $3, citations = $4, jobs = $5, \
             rewritten = $6, ttft_ms = $7, latency_ms = $8 WHERE id = $9",
        )
        .bind(&c.text)
        .bind(c.status)
        .bind(&c.intent)
        .bind(&c.citations)
        .bind(&c.jobs)
        .bind(c.rewritten.as_deref())
        .bind(c.ttft_ms)
        .bind(c.latency_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
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
    pub async fn messages(&self, session_id: &str) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT id, seq, role, text, channel, intent, status, citations, jobs, rewritten, created_at \
             FROM messages WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message).collect()
    }

    /// Every stored message text (tests check that no PII reached the database).
    pub async fn all_texts(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT text FROM messages UNION ALL SELECT summary FROM escalations \
             UNION ALL SELECT text FROM feedback UNION ALL SELECT profile FROM sessions",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(DbError::from))
            .collect()
    }

    /// The open (waiting or assigned) escalation of a session.
    pub async fn open_escalation(&self, session_id: &str) -> Result<Option<EscalationRow>> {
        let row = sqlx::query(
            "SELECT id, session_id, status, reason, intent, summary, created_at FROM escalations \
             WHERE session_id = $1 AND status IN ('waiting', 'assigned') ORDER BY created_at LIMIT 1",
        )
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(escalation).transpose()
    }

    /// Creates a waiting escalation (or returns the session's open one) and its 1-based queue
    /// position among waiting escalations.
    pub async fn escalate(
        &self,
        session_id: &str,
        reason: &str,
        intent: &str,
        summary: &str,
    ) -> Result<(EscalationRow, i64)> {
        let e = match self.open_escalation(session_id).await? {
            Some(e) => e,
            None => {
                let now = now_ms();
                let e = EscalationRow {
                    id: new_id(),
                    session_id: session_id.to_string(),
                    status: "waiting".into(),
                    reason: reason.to_string(),
                    intent: intent.to_string(),
                    summary: summary.to_string(),
                    created_at: now,
                };
                sqlx::query(
                    "INSERT INTO escalations (id, session_id, status, reason, intent, summary, created_at, updated_at) \
                     VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7)",
                )
                .bind(&e.id)
                .bind(session_id)
                .bind(reason)
                .bind(intent)
                .bind(summary)
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await?;
                e
            }
        };
        let ahead: i64 = sqlx::query(
            "SELECT COUNT(*) FROM escalations WHERE status = 'waiting' AND \
             (created_at < $1 OR (created_at = $2 AND id < $3))",
        )
        .bind(e.created_at)
        .bind(e.created_at)
        .bind(&e.id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok((e, ahead + 1))
    }

    /// Waiting escalations, oldest first.
    pub async fn waiting(&self) -> Result<Vec<EscalationRow>> {
        let rows = sqlx::query(
            "SELECT id, session_id, status, reason, intent, summary, created_at FROM escalations \
             WHERE status = 'waiting' ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation).collect()
    }

    /// Stores 👍 (1) or 👎 (-1) with an optional comment.
    pub async fn add_feedback(
        &self,
        session_id: &str,
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
        .bind(session_id)
        .bind(turn_id)
        .bind(rating)
        .bind(text)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
