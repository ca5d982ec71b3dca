//! Handoff to human career counselors (职业指导师): the escalation and what the citizen is
//! told.
//!
//! The database decides the facts — at most one open escalation per session, the queue place
//! from a counter — so concurrent requests agree. The reply puts what matters first for each
//! reason: emergency and crisis lines for a crisis, 12333 and labour inspection for unpaid
//! wages, then the queue place and the service hours. Outside service hours or with no
//! counselor signed in, the citizen is offered to leave a message and a callback number, and a
//! crisis raises an alert in the console ([`crate::console::Workspace::after_escalation`]).

use std::sync::Arc;

use serde::Serialize;

use crate::console::{Availability, Workspace};
use crate::domain::{Caller, HandoffReason, Intent, SessionId};
use crate::metrics::Metrics;
use crate::store::{Db, DbError};

/// The reply to a crisis: a person now, and a hotline.
pub const CRISIS_LINE: &str = "如果您正处在危险中，请立即拨打110或120；心理援助热线：12356（全国统一心理援助热线）、400-161-9995。";

/// Handoff details sent to the citizen.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffInfo {
    /// waiting | assigned.
    pub status: String,
    /// Escalation id.
    pub ticket_id: String,
    /// 1-based place in the queue.
    pub position: i64,
    /// Why.
    pub reason: String,
    /// What the citizen is told (explicit requests; in a turn it is the answer text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Nobody can take it now: the citizen may leave a message and a callback number
    /// (`POST /api/v1/sessions/{id}/callback`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub callback: bool,
}

/// Added to the reply when nobody can take the conversation now.
pub const CALLBACK_OFFER: &str = "现在不在服务时间或暂无职业指导师在线，您可以留下留言和回电号码，职业指导师会在服务时间联系您。";

/// What the citizen is told when their conversation goes to the queue for `reason`.
pub fn reply(reason: HandoffReason, position: i64, service_hours: &str) -> String {
    let mut msg = String::new();
    match reason {
        HandoffReason::Crisis => {
            msg.push_str("您的安全最重要。我已为您转接人工，工作人员会尽快联系您。");
            msg.push_str(CRISIS_LINE);
        }
        HandoffReason::WageDispute => msg.push_str(
            "遇到拖欠工资或劳动争议，可以拨打12333人社服务热线，或向当地劳动保障监察机构投诉、申请劳动仲裁。我已为您转接人工职业指导师。",
        ),
        HandoffReason::Complaint => msg.push_str("您的意见已记录，我已为您转接人工处理。"),
        HandoffReason::RepeatedFailure => {
            msg.push_str("我暂时无法解答您的问题，已为您转接人工职业指导师。")
        }
        HandoffReason::Explicit => msg.push_str("好的，已为您转接人工职业指导师。"),
    }
    msg.push_str(&format!(
        "您目前排在第{position}位，服务时间：{service_hours}。请保持页面打开，回复会显示在这里。"
    ));
    msg
}

/// Creates escalations and records them; the console hears of each.
#[derive(Debug, Clone)]
pub struct Handoffs {
    db: Db,
    metrics: Arc<Metrics>,
    service_hours: String,
    /// The counselor workspace, once the service attaches it (`leye ask` has none).
    workspace: Option<Workspace>,
}

impl Handoffs {
    /// Over this database, counting in these metrics.
    pub fn new(db: Db, metrics: Arc<Metrics>, service_hours: String) -> Self {
        Self {
            db,
            metrics,
            service_hours,
            workspace: None,
        }
    }

    /// The same, telling the counselor workspace of each escalation.
    pub fn with_workspace(self, workspace: Workspace) -> Self {
        Self {
            workspace: Some(workspace),
            ..self
        }
    }

    /// Puts the session in the queue (or finds its open escalation) and returns the details
    /// with the reply for the citizen. `summary` is the masked text the queue shows.
    pub async fn escalate(
        &self,
        session: &SessionId,
        reason: HandoffReason,
        intent: Intent,
        summary: &str,
    ) -> Result<(HandoffInfo, String), DbError> {
        let summary: String = summary.chars().take(200).collect();
        let (esc, position) = self
            .db
            .escalate(session, reason.as_str(), intent.as_str(), &summary)
            .await?;
        self.metrics.handoff(reason);
        let mut callback = false;
        if let Some(ws) = &self.workspace {
            ws.queue_changed(&esc.id);
            if esc.status == "waiting" {
                let crisis = reason == HandoffReason::Crisis;
                match ws.after_escalation(&esc.id, crisis).await {
                    Ok(Availability::Staffed) => {}
                    Ok(Availability::Unstaffed { alert }) => {
                        callback = true;
                        if alert {
                            self.metrics.crisis_alert();
                        }
                    }
                    // The escalation stands; only the offer is missing.
                    Err(e) => tracing::warn!(error = %e, "availability unknown"),
                }
            }
        }
        let mut text = reply(reason, position, &self.service_hours);
        if callback {
            text.push_str(CALLBACK_OFFER);
        }
        let info = HandoffInfo {
            status: esc.status,
            ticket_id: esc.id,
            position,
            reason: reason.as_str().into(),
            message: None,
            callback,
        };
        Ok((info, text))
    }

    /// The 转人工 button: the request (with the citizen's masked note) and the reply are
    /// stored in the transcript, and the escalation is created or the open one returned.
    pub async fn request(
        &self,
        caller: &Caller,
        masked_note: &str,
    ) -> Result<HandoffInfo, DbError> {
        let session = caller.session();
        let channel = caller.channel();
        let text = if masked_note.is_empty() {
            "转人工".to_string()
        } else {
            format!("转人工：{masked_note}")
        };
        self.db
            .add_message(session, "user", &text, channel, "complete")
            .await?;
        let (mut info, message) = self
            .escalate(session, HandoffReason::Explicit, Intent::Handoff, &text)
            .await?;
        let id = self
            .db
            .add_message(session, "assistant", &message, channel, "complete")
            .await?;
        self.db.set_intent(&id, Intent::Handoff.as_str()).await?;
        info.message = Some(message);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_leads_with_what_matters_and_ends_with_the_queue_place() {
        let hours = "工作日 9:00-17:00";
        let crisis = reply(HandoffReason::Crisis, 3, hours);
        assert!(
            crisis.contains("110") && crisis.contains("12356"),
            "{crisis}"
        );
        let wages = reply(HandoffReason::WageDispute, 1, hours);
        assert!(
            wages.starts_with("遇到拖欠工资") && wages.contains("12333"),
            "{wages}"
        );
        for r in [
            HandoffReason::Explicit,
            HandoffReason::Complaint,
            HandoffReason::RepeatedFailure,
        ] {
            let m = reply(r, 2, hours);
            assert!(m.contains("排在第2位") && m.contains(hours), "{m}");
            assert!(
                !m.contains("110"),
                "no emergency line unless it is a crisis: {m}"
            );
        }
    }
}
