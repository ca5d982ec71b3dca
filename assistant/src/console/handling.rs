//! Handling an escalation: the queue, claiming, the conversation's visibility, replies,
//! notes, tags, transfer, resolve, handing back, the citizen's messages relayed to the
//! counselor, and retention.

use serde_json::json;

use super::{
    checked_text, session_of, stats, QueueItem, Result, Role, Signed, Workspace, WorkspaceError,
    OUTCOMES,
};
use crate::domain::{Caller, SessionId};
use crate::guard::citizen_text;
use crate::store::{CounselorRow, EscalationRow};

impl Workspace {
    /// The queue a counselor sees: waiting items and the ones they hold (a supervisor sees
    /// every open one). Crisis first, then arrival order.
    pub async fn queue(&self, who: &Signed) -> Result<Vec<QueueItem>> {
        let now = self.now();
        let sla = self.cfg.sla_minutes as i64 * 60_000;
        let names = self.names().await?;
        let all_of_them = who.role.allows(Role::Supervisor);
        let with_callback = self.db.open_escalations_with_callbacks().await?;
        let mut items = Vec::new();
        for e in self.db.open_escalations().await? {
            let mine = e.assignee.as_deref() == Some(who.counselor.id.as_str());
            if e.status != "waiting" && !mine && !all_of_them {
                continue;
            }
            let session = self.db.session(&session_of(&e)?).await?;
            let profile: serde_json::Value = session
                .as_ref()
                .and_then(|s| serde_json::from_str(&s.profile).ok())
                .unwrap_or_default();
            let waited = now - e.created_at;
            items.push(QueueItem {
                callback: with_callback.contains(&e.id),
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
        let sid = session_of(e)?;
        let text = format!("职业指导师 {} 已接入，正在为您服务。", c.display_name);
        self.post(&sid, "system", &text).await?;
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

    /// Adds a message to the transcript on the session's own channel.
    async fn post(&self, sid: &SessionId, role: &str, text: &str) -> Result<String> {
        let channel = self
            .db
            .session(sid)
            .await?
            .map(|s| s.channel())
            .ok_or(WorkspaceError::NotFound("session"))?;
        Ok(self
            .db
            .add_message(sid, role, text, channel, "complete")
            .await?)
    }

    /// Sends a reply to the citizen (cleaned and masked like everything stored).
    pub async fn reply(&self, who: &Signed, id: &str, text: &str, ip: &str) -> Result<String> {
        let e = self.held(who, id).await?;
        if e.status != "assigned" {
            return Err(WorkspaceError::Forbidden("claim it first"));
        }
        let text = checked_text(text, 2000, "回复")?;
        let sid = session_of(&e)?;
        let mid = self.post(&sid, "counselor", &text).await?;
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
        let sid = session_of(&e)?;
        let text = "本次人工服务已结束，感谢您的耐心。如还有问题，可以继续向乐业助手提问。";
        self.post(&sid, "system", text).await?;
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
        let sid = session_of(&e)?;
        let text = "职业指导师已将对话交回乐业助手，您可以继续提问。";
        self.post(&sid, "system", text).await?;
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

    /// Deletes conversations idle for `retention_days` (by this workspace's clock): messages,
    /// feedback, notes, stream events, callback numbers, escalations and profiles. Audit rows
    /// and daily aggregates stay. Returns how many conversations went.
    pub async fn purge_expired(&self, retention_days: u32) -> Result<u64> {
        let before = self.now() - i64::from(retention_days) * 86_400_000;
        Ok(self.db.purge_inactive(before).await?)
    }
}
