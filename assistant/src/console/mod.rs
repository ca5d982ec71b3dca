//! The counselor workspace: sign-in (lockout, idle and absolute expiry), the queue, claiming,
//! replying, notes, tags, transfer, resolve, handing back to the assistant, and the audit log
//! every one of these writes. HTTP is `crate::http::console`'s; the AI summary and draft are
//! the assistant's ([`crate::dialogue::Assistant::summarize`], `draft`).
//!
//! What a counselor does reaches the citizen as stored, numbered session events (published on
//! the [`EventBus`] to wake the citizen's stream); what a citizen writes while a counselor
//! holds the conversation goes to the counselor instead of the model ([`Workspace::relay`]).
//! Every time rule reads the injected [`Clock`](crate::clock::Clock).
//!
//! Files: this one holds the types and the shared plumbing (audit, events); [`accounts`]
//! roles and passwords; `signin` sign-in, expiry and lockout; `handling` the queue and what a
//! counselor does with an escalation; `off_hours` service hours, callbacks and crisis alerts;
//! [`seal`] the encryption of callback numbers; [`stats`] the dashboard's aggregates.

pub mod accounts;
mod handling;
mod off_hours;
pub mod seal;
mod signin;
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
use crate::domain::{SessionId, SessionToken};
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

/// The session an escalation belongs to.
pub fn session_of(e: &EscalationRow) -> Result<SessionId> {
    SessionId::parse(&e.session_id).map_err(|_| WorkspaceError::NotFound("session"))
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
        // A citizen on WeChat is reached through WeChat's API too (the outbox delivers it).
        if let Some(s) = self.db.session(session).await? {
            crate::wechat::outbox::queue_relay(&self.db, session, s.channel(), name, &data).await?;
        }
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
