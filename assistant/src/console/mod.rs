//! The counselor workspace: sign-in (lockout, idle and absolute expiry), the queue, claiming,
//! replying, notes, tags, transfer, resolve, handing back to the assistant, and the audit log
//! every one of these writes. HTTP is `crate::http::console`'s; the AI summary and draft are
//! the assistant's ([`crate::dialogue::Assistant::summarize`], `draft`).
//!
//! What a counselor does reaches the citizen as stored, numbered session events (published on
//! the [`EventBus`] to wake the citizen's stream); what a citizen writes while a counselor
//! holds the conversation goes to the counselor instead of the model ([`Workspace::relay`]).
//! Every time rule reads the injected [`Clock`](crate::clock::Clock).

pub mod accounts;
pub mod seal;
pub mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

pub use accounts::Role;
pub use seal::{SealError, Sealer};

use crate::bus::{BusEvent, EventBus, Topic};
use crate::clock::SharedClock;
use crate::config::ConsoleConfig;
use crate::domain::{Caller, SessionId, SessionToken};
use crate::guard::{citizen_text, for_log};
use crate::store::{AuditRow, CounselorRow, Db, DbError, EscalationRow};

/// The sign-in cookie.
pub const COOKIE: &str = "leye_console";

/// Why a workspace action was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No such escalation (or counselor).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The role or the assignment does not allow it.
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// The state changed meanwhile (claimed by someone else, already closed).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// A field breaks a rule.
    #[error("{0}")]
    BadInput(String),
}

type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

/// A signed-in counselor, as a request sees them.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The account.
    pub counselor: CounselorRow,
    /// Its role.
    pub role: Role,
    /// The CSRF token state-changing requests must carry.
    pub csrf: String,
    /// The cookie's hash (sign-out, stream re-checks).
    pub token_hash: String,
}

impl Signed {
    /// Refuses unless the role allows `needed`.
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(WorkspaceError::Forbidden("role"))
        }
    }
}

/// The result of a sign-in attempt.
#[derive(Debug)]
pub enum Login {
    /// Signed in: the cookie value (shown once) and the session.
    Ok {
        /// Cookie value.
        token: SessionToken,
        /// Who.
        signed: Box<Signed>,
    },
    /// Unknown name or wrong password (the same answer for both).
    Invalid,
    /// Right password, disabled account.
    Disabled,
    /// Too many failures: try again after this many seconds.
    Locked {
        /// Seconds.
        retry_after_secs: u64,
    },
}

/// The result of reading a sign-in cookie.
#[derive(Debug)]
pub enum Auth {
    /// Valid.
    Ok(Box<Signed>),
    /// No cookie, or one that matches no sign-in.
    Missing,
    /// It was valid but has expired (idle or absolute) or the account was disabled.
    Expired,
}

/// One queue item, as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    /// Escalation id.
    pub id: String,
    /// waiting | assigned.
    pub status: String,
    /// explicit | complaint | wage_dispute | crisis | repeated_failure.
    pub reason: String,
    /// The citizen's last message when it was escalated (masked).
    pub summary: String,
    /// Seconds since it was escalated.
    pub waiting_seconds: i64,
    /// Waiting longer than the SLA.
    pub over_sla: bool,
    /// web | miniprogram | …
    pub channel: String,
    /// From the citizen's profile, when known.
    pub group: Option<String>,
    /// From the citizen's profile, when known.
    pub city: Option<String>,
    /// Holder's display name.
    pub assignee: Option<String>,
    /// Whether the viewer holds it.
    pub mine: bool,
    /// Tags.
    pub tags: serde_json::Value,
    /// The citizen left a message and a callback number.
    pub callback: bool,
}

/// Outcomes a conversation can be resolved with.
pub const OUTCOMES: &[(&str, &str)] = &[
    ("answered", "已解答"),
    ("referred", "已转介到线下窗口"),
    ("callback", "已约定回电"),
    ("citizen_left", "市民已离开"),
];

/// The workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    db: Db,
    bus: Arc<dyn EventBus>,
    clock: SharedClock,
    cfg: ConsoleConfig,
    sealer: Sealer,
}

/// Whether a person can take a new escalation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Within service hours with a counselor signed in.
    Staffed,
    /// Outside service hours or nobody signed in; `alert` when a crisis alert was raised.
    Unstaffed {
        /// A crisis alert was raised for the console and the on-call contact.
        alert: bool,
    },
}

impl Workspace {
    /// Over this database and bus, with this clock.
    pub fn new(
        db: Db,
        bus: Arc<dyn EventBus>,
        clock: SharedClock,
        cfg: ConsoleConfig,
        sealer: Sealer,
    ) -> Self {
        Self {
            db,
            bus,
            clock,
            cfg,
            sealer,
        }
    }

    /// The bus (the streams subscribe to it).
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Settings.
    pub fn config(&self) -> &ConsoleConfig {
        &self.cfg
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Appends to the audit log. `detail` never holds conversation text.
    pub async fn audit(
        &self,
        who: Option<&CounselorRow>,
        username: &str,
        action: &str,
        target: &str,
        detail: &str,
        ip: &str,
    ) -> Result<()> {
        self.db
            .audit(&AuditRow {
                seq: 0,
                at: self.now(),
                counselor_id: who.map(|c| c.id.clone()),
                // A failed sign-in's name is the client's text: escaped and cut.
                username: for_log(&username.chars().take(64).collect::<String>()),
                action: action.into(),
                target: target.into(),
                detail: detail.into(),
                client_ip: ip.into(),
            })
            .await?;
        Ok(())
    }

    /// Checks a name and password. Failures count towards a lockout that doubles with each
    /// further failure (up to an hour); every attempt is audited.
    pub async fn login(&self, username: &str, password: &str, ip: &str) -> Result<Login> {
        let username = username.trim();
        let now = self.now();
        let Some(c) = self.db.counselor_by_username(username).await? else {
            // Same work as a wrong password, so timing does not tell which names exist.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || {
                accounts::verify_password(accounts::decoy_hash(), &pw)
            })
            .await;
            self.audit(None, username, "login_failed", "", "unknown_user", ip)
                .await?;
            return Ok(Login::Invalid);
        };
        if c.locked_until > now {
            self.audit(Some(&c), username, "login_failed", "", "locked", ip)
                .await?;
            let secs = ((c.locked_until - now) as u64).div_ceil(1000);
            return Ok(Login::Locked {
                retry_after_secs: secs.max(1),
            });
        }
        let hash = c.password_hash.clone();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &pw))
            .await
            .unwrap_or(false);
        if !ok {
            let n = self.db.count_failed_login(&c.id, now).await?;
            let over = n - self.cfg.max_failed_logins;
            let mut detail = "wrong_password".to_string();
            if over >= 0 {
                let secs = self
                    .cfg
                    .lockout_secs
                    .saturating_mul(1u64 << over.min(16))
                    .min(3600);
                self.db
                    .lock_counselor(&c.id, now + secs as i64 * 1000)
                    .await?;
                detail = format!("wrong_password; locked {secs}s");
            }
            self.audit(Some(&c), username, "login_failed", "", &detail, ip)
                .await?;
            return Ok(Login::Invalid);
        }
        if c.disabled {
            self.audit(Some(&c), username, "login_failed", "", "disabled", ip)
                .await?;
            return Ok(Login::Disabled);
        }
        let Some(role) = Role::parse(&c.role) else {
            return Err(WorkspaceError::Forbidden("unknown role"));
        };
        self.db.clear_failed_logins(&c.id).await?;
        let token = SessionToken::new();
        let csrf = crate::store::new_id();
        let token_hash = token.hash().as_str().to_string();
        self.db
            .add_console_session(&token_hash, &c.id, &csrf, now)
            .await?;
        self.audit(Some(&c), username, "login", "", "", ip).await?;
        Ok(Login::Ok {
            token,
            signed: Box::new(Signed {
                counselor: c,
                role,
                csrf,
                token_hash,
            }),
        })
    }

    /// The counselor behind a cookie value. An expired sign-in is deleted; a valid one's idle
    /// time restarts when `activity` (a person's action, not the page refreshing itself).
    pub async fn authenticate(&self, cookie: &str, activity: bool) -> Result<Auth> {
        let hash = SessionToken::from_client(cookie).hash();
        let Some((s, c)) = self.db.console_session(hash.as_str()).await? else {
            return Ok(Auth::Missing);
        };
        let now = self.now();
        let idle = self.cfg.idle_timeout_minutes as i64 * 60_000;
        let absolute = self.cfg.absolute_timeout_hours as i64 * 3_600_000;
        let role = Role::parse(&c.role);
        if c.disabled || now - s.last_seen > idle || now - s.created_at > absolute || role.is_none()
        {
            self.db.delete_console_session(&s.token_hash).await?;
            return Ok(Auth::Expired);
        }
        if activity {
            self.db.touch_console_session(&s.token_hash, now).await?;
        }
        Ok(Auth::Ok(Box::new(Signed {
            counselor: c,
            role: role.unwrap_or(Role::Counselor),
            csrf: s.csrf_token,
            token_hash: s.token_hash,
        })))
    }

    /// Whether a sign-in still exists (a long-lived stream re-checks it without counting as
    /// activity).
    pub async fn still_signed_in(&self, token_hash: &str) -> Result<bool> {
        let Some((s, c)) = self.db.console_session(token_hash).await? else {
            return Ok(false);
        };
        let now = self.now();
        Ok(!c.disabled
            && now - s.last_seen <= self.cfg.idle_timeout_minutes as i64 * 60_000
            && now - s.created_at <= self.cfg.absolute_timeout_hours as i64 * 3_600_000)
    }

    /// Signs out.
    pub async fn logout(&self, who: &Signed, ip: &str) -> Result<()> {
        self.db.delete_console_session(&who.token_hash).await?;
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "logout",
            "",
            "",
            ip,
        )
        .await
    }

    /// Tells every console that something about an escalation changed (`queue`, `message`,
    /// `summary`); consoles re-read it through the API.
    pub fn announce(&self, kind: &str, escalation_id: &str) {
        self.bus.publish(BusEvent {
            topic: Topic::Console,
            seq: None,
            name: kind.into(),
            data: json!({"kind": kind, "escalation_id": escalation_id}),
        });
    }

    /// Tells the console that the queue changed (a new escalation).
    pub fn queue_changed(&self, escalation_id: &str) {
        self.announce("queue", escalation_id);
    }

    /// Stores an event for the citizen's stream, then wakes the stream.
    pub async fn notify_citizen(
        &self,
        session: &SessionId,
        name: &str,
        data: serde_json::Value,
    ) -> Result<i64> {
        let seq = self
            .db
            .add_session_event(session, name, &data.to_string(), self.now())
            .await?;
        self.bus.publish(BusEvent {
            topic: Topic::Session(session.to_string()),
            seq: Some(seq),
            name: name.into(),
            data,
        });
        Ok(seq)
    }

    async fn names(&self) -> Result<HashMap<String, String>> {
        Ok(self
            .db
            .counselors()
            .await?
            .into_iter()
            .map(|c| (c.id, c.display_name))
            .collect())
    }

    /// The queue a counselor sees: waiting items and the ones they hold (a supervisor sees
    /// every open one). Crisis first, then arrival order.
    pub async fn queue(&self, who: &Signed) -> Result<Vec<QueueItem>> {
        let now = self.now();
        let sla = self.cfg.sla_minutes as i64 * 60_000;
        let names = self.names().await?;
        let all_of_them = who.role.allows(Role::Supervisor);
        let mut items = Vec::new();
        for e in self.db.open_escalations().await? {
            let mine = e.assignee.as_deref() == Some(who.counselor.id.as_str());
            if e.status != "waiting" && !mine && !all_of_them {
                continue;
            }
            let sid =
                SessionId::parse(&e.session_id).map_err(|_| WorkspaceError::NotFound("session"))?;
            let session = self.db.session(&sid).await?;
            let profile: serde_json::Value = session
                .as_ref()
                .and_then(|s| serde_json::from_str(&s.profile).ok())
                .unwrap_or_default();
            let waited = now - e.created_at;
            let callback = !self.db.callbacks(&e.id).await?.is_empty();
            items.push(QueueItem {
                callback,
                over_sla: e.status == "waiting" && waited > sla,
                waiting_seconds: waited / 1000,
                channel: session.map(|s| s.channel).unwrap_or_default(),
                group: profile["group"].as_str().map(str::to_string),
                city: profile["city"].as_str().map(str::to_string),
                assignee: e.assignee.as_ref().and_then(|a| names.get(a).cloned()),
                mine,
                tags: serde_json::from_str(&e.tags).unwrap_or_else(|_| json!([])),
                id: e.id,
                status: e.status,
                reason: e.reason,
                summary: e.summary,
            });
        }
        // Stable: within each band the arrival order of open_escalations stays.
        items.sort_by_key(|i| i.reason != "crisis");
        Ok(items)
    }

    /// An escalation the counselor may see: waiting ones, the ones they hold, any for a
    /// supervisor.
    pub async fn visible(&self, who: &Signed, id: &str) -> Result<EscalationRow> {
        let e = self
            .db
            .escalation(id)
            .await?
            .ok_or(WorkspaceError::NotFound("escalation"))?;
        let mine = e.assignee.as_deref() == Some(who.counselor.id.as_str());
        if mine || e.status == "waiting" || who.role.allows(Role::Supervisor) {
            Ok(e)
        } else {
            Err(WorkspaceError::Forbidden("held by another counselor"))
        }
    }

    /// An escalation the counselor may act on: one they hold (or any open one for a
    /// supervisor).
    async fn held(&self, who: &Signed, id: &str) -> Result<EscalationRow> {
        let e = self.visible(who, id).await?;
        if !matches!(e.status.as_str(), "assigned" | "waiting") {
            return Err(WorkspaceError::Conflict {
                code: "already_closed",
                message: "该会话已结束".into(),
            });
        }
        let mine = e.assignee.as_deref() == Some(who.counselor.id.as_str());
        if !mine && !who.role.allows(Role::Supervisor) {
            return Err(WorkspaceError::Forbidden("claim it first"));
        }
        Ok(e)
    }

    fn session_of(e: &EscalationRow) -> Result<SessionId> {
        SessionId::parse(&e.session_id).map_err(|_| WorkspaceError::NotFound("session"))
    }

    /// Records that a transcript was opened.
    pub async fn opened(&self, who: &Signed, e: &EscalationRow, ip: &str) -> Result<()> {
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "open_transcript",
            &e.id,
            "",
            ip,
        )
        .await
    }

    /// Claims a waiting escalation. Of two counselors at once exactly one wins; the other
    /// is told who took it.
    pub async fn claim(&self, who: &Signed, id: &str, ip: &str) -> Result<EscalationRow> {
        let now = self.now();
        if !self.db.claim(id, &who.counselor.id, now).await? {
            let e = self
                .db
                .escalation(id)
                .await?
                .ok_or(WorkspaceError::NotFound("escalation"))?;
            let message = match &e.assignee {
                Some(a) if e.status == "assigned" => {
                    let name = self.names().await?.get(a).cloned().unwrap_or_default();
                    format!("已被 {name} 接入")
                }
                _ => "该会话已结束".to_string(),
            };
            return Err(WorkspaceError::Conflict {
                code: "already_claimed",
                message,
            });
        }
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "claim",
            id,
            "",
            ip,
        )
        .await?;
        let e = self
            .db
            .escalation(id)
            .await?
            .ok_or(WorkspaceError::NotFound("escalation"))?;
        let waited = (now - e.created_at).max(0) / 1000;
        self.db.count("wait", &stats::wait_bucket(waited)).await;
        self.joined(&e, &who.counselor).await?;
        self.announce("queue", id);
        Ok(e)
    }

    /// Tells the citizen a counselor took the conversation (in the transcript too).
    async fn joined(&self, e: &EscalationRow, c: &CounselorRow) -> Result<()> {
        let sid = Self::session_of(e)?;
        let text = format!("职业指导师 {} 已接入，正在为您服务。", c.display_name);
        self.system_message(&sid, &text).await?;
        self.notify_citizen(
            &sid,
            "counselor_joined",
            json!({"name": c.display_name, "text": text}),
        )
        .await?;
        self.notify_citizen(
            &sid,
            "status",
            json!({"status": "assigned", "name": c.display_name}),
        )
        .await?;
        Ok(())
    }

    async fn system_message(&self, sid: &SessionId, text: &str) -> Result<String> {
        let channel = self
            .db
            .session(sid)
            .await?
            .map(|s| s.channel())
            .ok_or(WorkspaceError::NotFound("session"))?;
        Ok(self
            .db
            .add_message(sid, "system", text, channel, "complete")
            .await?)
    }

    /// Sends a reply to the citizen (cleaned and masked like everything stored).
    pub async fn reply(&self, who: &Signed, id: &str, text: &str, ip: &str) -> Result<String> {
        let e = self.held(who, id).await?;
        if e.status != "assigned" {
            return Err(WorkspaceError::Forbidden("claim it first"));
        }
        let text = checked_text(text, 2000, "回复")?;
        let sid = Self::session_of(&e)?;
        let channel = self
            .db
            .session(&sid)
            .await?
            .map(|s| s.channel())
            .ok_or(WorkspaceError::NotFound("session"))?;
        let mid = self
            .db
            .add_message(&sid, "counselor", &text, channel, "complete")
            .await?;
        self.notify_citizen(
            &sid,
            "counselor_message",
            json!({"id": mid, "name": who.counselor.display_name, "text": text}),
        )
        .await?;
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "reply",
            id,
            &mid,
            ip,
        )
        .await?;
        self.announce("message", id);
        Ok(mid)
    }

    /// Adds an internal note (never shown to the citizen).
    pub async fn note(&self, who: &Signed, id: &str, text: &str, ip: &str) -> Result<String> {
        let e = self.visible(who, id).await?;
        let text = checked_text(text, 2000, "备注")?;
        let nid = self
            .db
            .add_note(&e, &who.counselor.id, &text, self.now())
            .await?;
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "note",
            id,
            &nid,
            ip,
        )
        .await?;
        self.announce("message", id);
        Ok(nid)
    }

    /// Replaces the tags (at most 10, each up to 20 characters).
    pub async fn tag(
        &self,
        who: &Signed,
        id: &str,
        tags: &[String],
        ip: &str,
    ) -> Result<Vec<String>> {
        let e = self.visible(who, id).await?;
        if tags.len() > 10 {
            return Err(WorkspaceError::BadInput("标签最多10个".into()));
        }
        let mut clean = Vec::new();
        for t in tags {
            let t = checked_text(t, 20, "标签")?;
            if !clean.contains(&t) {
                clean.push(t);
            }
        }
        self.db
            .set_tags(
                &e.id,
                &serde_json::to_string(&clean).unwrap_or_else(|_| "[]".into()),
            )
            .await?;
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "tag",
            id,
            &clean.len().to_string(),
            ip,
        )
        .await?;
        self.announce("queue", id);
        Ok(clean)
    }

    /// Gives the conversation to another active counselor.
    pub async fn transfer(&self, who: &Signed, id: &str, to: &str, ip: &str) -> Result<()> {
        let e = self.held(who, id).await?;
        let target = self
            .db
            .counselor_by_id(to)
            .await?
            .filter(|c| !c.disabled)
            .ok_or(WorkspaceError::NotFound("counselor"))?;
        if e.status != "assigned" || !self.db.transfer(id, &target.id, self.now()).await? {
            return Err(WorkspaceError::Conflict {
                code: "not_assigned",
                message: "只能转交已接入的会话".into(),
            });
        }
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "transfer",
            id,
            &target.username,
            ip,
        )
        .await?;
        self.joined(&e, &target).await?;
        self.announce("queue", id);
        Ok(())
    }

    /// Ends the conversation with an outcome (see [`OUTCOMES`]).
    pub async fn resolve(&self, who: &Signed, id: &str, outcome: &str, ip: &str) -> Result<()> {
        if !OUTCOMES.iter().any(|(o, _)| *o == outcome) {
            return Err(WorkspaceError::BadInput(format!(
                "outcome 须为 {}",
                OUTCOMES
                    .iter()
                    .map(|(o, _)| *o)
                    .collect::<Vec<_>>()
                    .join(" / ")
            )));
        }
        let e = self.held(who, id).await?;
        self.close(who, &e, "resolved", Some(outcome), ip).await?;
        self.db.count("outcome", outcome).await;
        let sid = Self::session_of(&e)?;
        let text = "本次人工服务已结束，感谢您的耐心。如还有问题，可以继续向乐业助手提问。";
        self.system_message(&sid, text).await?;
        self.notify_citizen(
            &sid,
            "status",
            json!({"status": "resolved", "outcome": outcome, "text": text}),
        )
        .await?;
        Ok(())
    }

    /// Hands the conversation back to the assistant.
    pub async fn hand_back(&self, who: &Signed, id: &str, ip: &str) -> Result<()> {
        let e = self.held(who, id).await?;
        self.close(who, &e, "returned", None, ip).await?;
        let sid = Self::session_of(&e)?;
        let text = "职业指导师已将对话交回乐业助手，您可以继续提问。";
        self.system_message(&sid, text).await?;
        self.notify_citizen(&sid, "status", json!({"status": "returned", "text": text}))
            .await?;
        Ok(())
    }

    async fn close(
        &self,
        who: &Signed,
        e: &EscalationRow,
        status: &str,
        outcome: Option<&str>,
        ip: &str,
    ) -> Result<()> {
        if !self
            .db
            .close_escalation(&e.id, status, outcome, self.now())
            .await?
        {
            return Err(WorkspaceError::Conflict {
                code: "already_closed",
                message: "该会话已结束".into(),
            });
        }
        let action = if status == "resolved" {
            "resolve"
        } else {
            "return"
        };
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            action,
            &e.id,
            outcome.unwrap_or(""),
            ip,
        )
        .await?;
        self.announce("queue", &e.id);
        Ok(())
    }

    /// Deletes conversations idle for `retention_days` (by this workspace's clock): messages,
    /// feedback, notes, stream events, callback numbers, escalations and profiles. Audit rows
    /// and daily aggregates stay. Returns how many conversations went.
    pub async fn purge_expired(&self, retention_days: u32) -> Result<u64> {
        let before = self.now() - i64::from(retention_days) * 86_400_000;
        Ok(self.db.purge_inactive(before).await?)
    }

    /// Whether `ms` falls in the configured service days and hours (local time of
    /// `console.utc_offset_hours`).
    pub fn in_service_hours(&self, ms: i64) -> bool {
        use chrono::{Datelike, Timelike};
        let local = ms / 1000 + i64::from(self.cfg.utc_offset_hours) * 3600;
        let Some(t) = chrono::DateTime::from_timestamp(local, 0) else {
            return false;
        };
        let day = t.weekday().number_from_monday() as u8;
        let minute = t.hour() * 60 + t.minute();
        self.cfg.service_days.contains(&day)
            && self
                .cfg
                .service_hours
                .iter()
                .filter_map(|p| crate::config::parse_period(p))
                .any(|(a, b)| (a..b).contains(&minute))
    }

    /// After an escalation: whether someone can take it now. When not, a crisis raises an
    /// alert (once per escalation) for every console and the on-call contact.
    pub async fn after_escalation(
        &self,
        escalation_id: &str,
        crisis: bool,
    ) -> Result<Availability> {
        let now = self.now();
        let idle = self.cfg.idle_timeout_minutes as i64 * 60_000;
        let staffed = self.in_service_hours(now) && self.db.signed_in_since(now - idle).await? > 0;
        if staffed {
            return Ok(Availability::Staffed);
        }
        let mut alert = false;
        if crisis
            && !self
                .db
                .open_alerts()
                .await?
                .iter()
                .any(|a| a.escalation_id == escalation_id)
        {
            self.db
                .add_alert(escalation_id, "crisis_unattended", now)
                .await?;
            self.announce("alert", escalation_id);
            tracing::warn!(
                escalation = escalation_id,
                "crisis outside service hours: alert raised"
            );
            alert = true;
        }
        Ok(Availability::Unstaffed { alert })
    }

    /// A message and callback number left by the citizen of an open escalation: the number is
    /// sealed, the message masked and also put in the transcript.
    pub async fn leave_callback(
        &self,
        caller: &Caller,
        phone: &str,
        message: &str,
    ) -> Result<String> {
        let sid = caller.session();
        let e = self
            .db
            .open_escalation(sid)
            .await?
            .ok_or_else(|| WorkspaceError::Conflict {
                code: "no_open_handoff",
                message: "请先点击“转人工”，再留言".into(),
            })?;
        let phone = callback_number(phone).ok_or_else(|| {
            WorkspaceError::BadInput("请填写有效的手机号或带区号的固定电话".into())
        })?;
        let message = if message.trim().is_empty() {
            String::new()
        } else {
            checked_text(message, 500, "留言")?
        };
        let now = self.now();
        let id = self
            .db
            .add_callback(&e, &self.sealer.seal(&phone), &message, now)
            .await?;
        let text = if message.is_empty() {
            "留言：（已留下回电号码）".to_string()
        } else {
            format!("留言：{message}（已留下回电号码）")
        };
        self.db
            .add_message(sid, "user", &text, caller.channel(), "complete")
            .await?;
        self.announce("queue", &e.id);
        Ok(id)
    }

    /// The callback numbers of an escalation, for the counselor holding it only; each reveal
    /// is audited.
    pub async fn reveal_callbacks(
        &self,
        who: &Signed,
        id: &str,
        ip: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let e = self
            .db
            .escalation(id)
            .await?
            .ok_or(WorkspaceError::NotFound("escalation"))?;
        if e.assignee.as_deref() != Some(who.counselor.id.as_str()) {
            return Err(WorkspaceError::Forbidden("claim it first"));
        }
        let mut out = Vec::new();
        for c in self.db.callbacks(id).await? {
            let phone = self.sealer.open(&c.phone_sealed).map_err(|e| {
                tracing::error!(error = %e, "a callback number does not open: was the key changed?");
                WorkspaceError::Conflict {
                    code: "callback_unreadable",
                    message: "回电号码无法解密（密钥已更换？）".into(),
                }
            })?;
            out.push(json!({"id": c.id, "phone": phone, "message": c.message, "created_at": c.created_at}));
        }
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "reveal",
            id,
            &out.len().to_string(),
            ip,
        )
        .await?;
        Ok(out)
    }

    /// Open alerts with the on-call contact.
    pub async fn alerts(&self) -> Result<serde_json::Value> {
        let alerts = self.db.open_alerts().await?;
        Ok(json!({"alerts": alerts, "on_call": self.cfg.on_call}))
    }

    /// Acknowledges an alert (audited).
    pub async fn ack_alert(&self, who: &Signed, id: &str, ip: &str) -> Result<()> {
        if !self.db.ack_alert(id, &who.counselor.id, self.now()).await? {
            return Err(WorkspaceError::NotFound("alert"));
        }
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "ack_alert",
            id,
            "",
            ip,
        )
        .await?;
        self.announce("alert", id);
        Ok(())
    }

    /// While a counselor holds the conversation, a citizen's message goes to them, not to
    /// the model: stored (masked) and announced to the console. Returns the message id, or
    /// `None` when no counselor holds it.
    pub async fn relay(&self, caller: &Caller, text: &str) -> Result<Option<String>> {
        let sid = caller.session();
        let Some(e) = self.db.open_escalation(sid).await? else {
            return Ok(None);
        };
        if e.status != "assigned" {
            return Ok(None);
        }
        let text = citizen_text(text);
        let id = self
            .db
            .add_message(sid, "user", &text, caller.channel(), "complete")
            .await?;
        self.db
            .set_intent(&id, crate::domain::Intent::Handoff.as_str())
            .await?;
        self.announce("message", &e.id);
        Ok(Some(id))
    }
}

/// The citizen's latest question in a transcript, for the AI draft: the 转人工 request and the
/// callback note keep only what the citizen asked ("转人工：…", "留言：…（已留下回电号码）").
pub fn last_question(messages: &[crate::store::MessageRow]) -> Option<String> {
    messages
        .iter()
        .rev()
        .filter(|m| m.role == "user")
        .map(|m| {
            let t = m.text.trim();
            let t = t.strip_prefix("转人工").unwrap_or(t);
            let t = t.strip_prefix("留言").unwrap_or(t);
            let t = t.trim_start_matches(['：', ':']);
            let t = t.strip_suffix("（已留下回电号码）").unwrap_or(t);
            t.trim().to_string()
        })
        .find(|t| !t.is_empty())
}

/// Cleans (controls, invisible characters) and masks a counselor's text, and checks its length.
fn checked_text(text: &str, max_chars: usize, what: &str) -> Result<String> {
    let t = citizen_text(text);
    let n = t.chars().count();
    if n == 0 {
        return Err(WorkspaceError::BadInput(format!("{what}不能为空")));
    }
    if n > max_chars {
        return Err(WorkspaceError::BadInput(format!("{what}最多{max_chars}字")));
    }
    Ok(t)
}

/// A callback number as stored: a mainland mobile (11 digits from 1[3-9], with or without
/// +86) or a landline with its area code (0 + 2–3 digits, then 7–8 digits); separators
/// ignored. `None` for anything else.
pub fn callback_number(s: &str) -> Option<String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '+' | '\u{3000}'))
        .collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let d = digits
        .strip_prefix("0086")
        .or_else(|| digits.strip_prefix("86").filter(|r| r.len() == 11))
        .unwrap_or(&digits);
    let b = d.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    let landline = b.first() == Some(&b'0') && (10..=12).contains(&b.len());
    (mobile || landline).then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> crate::store::MessageRow {
        crate::store::MessageRow {
            id: "m".into(),
            seq: 1,
            role: "user".into(),
            text: text.into(),
            channel: "web".into(),
            intent: None,
            status: "complete".into(),
            citations: "[]".into(),
            jobs: "[]".into(),
            rewritten: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_draft_answers_what_the_citizen_asked_not_the_request_for_a_person() {
        let m = vec![user("高校毕业生有哪些补贴？"), user("转人工")];
        assert_eq!(last_question(&m).as_deref(), Some("高校毕业生有哪些补贴？"));
        let m = vec![
            user("你好"),
            user("留言：想问毕业生补贴怎么申请（已留下回电号码）"),
        ];
        assert_eq!(last_question(&m).as_deref(), Some("想问毕业生补贴怎么申请"));
        let m = vec![user("转人工：失业金怎么领")];
        assert_eq!(last_question(&m).as_deref(), Some("失业金怎么领"));
        assert_eq!(last_question(&[user("留言：（已留下回电号码）")]), None);
    }

    #[test]
    fn callback_numbers_are_mobiles_or_landlines_with_area_codes() {
        assert_eq!(
            callback_number("+86 138-1234-5678").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            callback_number("0531-86012345").as_deref(),
            Some("053186012345")
        );
        assert_eq!(callback_number("12345"), None);
        assert_eq!(callback_number("1381234567a"), None);
        assert_eq!(callback_number("23812345678"), None);
    }
}
