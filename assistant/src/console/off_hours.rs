//! When nobody can take a conversation: service hours and presence, messages with a sealed
//! callback number, and crisis alerts for the console and the on-call contact.

use serde_json::json;

use super::{
    callback_number, checked_text, Availability, Result, Signed, Workspace, WorkspaceError,
};
use crate::domain::Caller;

impl Workspace {
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
}
