//! Help for counselors from the local model: a summary of the conversation when it is
//! claimed, and a draft reply grounded in retrieved evidence that the counselor edits before
//! sending (nothing here is ever sent to a citizen by itself). Both are labelled as AI in the
//! console and name the sources they rest on.

use models::chat_template::ChatMessage;
use models::generator::{GenEvent, GenerateRequest};
use serde::Serialize;
use tokio::sync::mpsc;

use super::verify::Citation;
use super::{Assistant, Outcome, TurnError};
use crate::guard::mask_pii;
use crate::store::MessageRow;

/// What the summary prompt asks for.
const SUMMARY_PROMPT: &str =
    "你是人社部门职业指导师的助手。请根据下面的对话记录，用不超过80字的中文概括：\
市民的身份和所在城市（记录里有才写）、想办的事、乐业助手已经答复了什么、还有什么没有解决。\
只依据记录，不要编造金额、日期或条件。";

/// Messages of the transcript the summary reads (the latest ones) and characters of each.
const SUMMARY_MESSAGES: usize = 12;
const SUMMARY_CHARS_EACH: usize = 160;

/// An AI summary of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct AiSummary {
    /// The summary (masked).
    pub text: String,
    /// The documents the assistant's answers in the conversation cited.
    pub sources: Vec<Source>,
}

/// A document an AI text rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Title.
    pub title: String,
    /// 文号.
    pub doc_number: String,
    /// Section or article.
    pub section: String,
}

/// An AI draft reply.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    /// The question it answers (the citizen's last one).
    pub question: String,
    /// The draft (masked); empty when nothing grounds an answer.
    pub text: String,
    /// Its sources.
    pub citations: Vec<Citation>,
    /// Whether evidence was found (false: the counselor must answer from their own knowledge).
    pub grounded: bool,
}

/// The transcript as the summary prompt shows it: the latest messages, each cut.
pub fn transcript_for_summary(messages: &[MessageRow]) -> String {
    let start = messages.len().saturating_sub(SUMMARY_MESSAGES);
    messages[start..]
        .iter()
        .filter(|m| !m.text.is_empty())
        .map(|m| {
            let who = match m.role.as_str() {
                "user" => "市民",
                "assistant" => "乐业助手",
                "counselor" => "职业指导师",
                _ => "系统",
            };
            let text: String = m.text.chars().take(SUMMARY_CHARS_EACH).collect();
            format!("{who}：{}", text.replace('\n', " "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The documents cited by the assistant's answers of a transcript, in order, once each.
pub fn cited_sources(messages: &[MessageRow]) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for m in messages.iter().filter(|m| m.role == "assistant") {
        let Ok(cites) = serde_json::from_str::<Vec<Citation>>(&m.citations) else {
            continue;
        };
        for c in cites {
            let s = Source {
                title: c.title,
                doc_number: c.doc_number,
                section: c.section,
            };
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

impl Assistant {
    /// Summarizes a conversation for the counselor who claimed it.
    pub async fn summarize(&self, messages: &[MessageRow]) -> Result<AiSummary, TurnError> {
        let transcript = transcript_for_summary(messages);
        let mut params = self.cfg.generation.clone();
        params.max_tokens = 160;
        let mut rx = self.generator.submit(GenerateRequest {
            messages: vec![
                ChatMessage::system(SUMMARY_PROMPT),
                ChatMessage::user(format!("对话记录：\n{transcript}\n\n请概括：")),
            ],
            params,
        })?;
        let mut text = String::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                GenEvent::Text(t) => text.push_str(&t),
                GenEvent::Done(_) => break,
                GenEvent::Failed(e) => return Err(e.into()),
            }
        }
        Ok(AiSummary {
            text: mask_pii(text.trim()),
            sources: cited_sources(messages),
        })
    }

    /// A grounded draft answer to `question`, through the same retrieval, evidence gate and
    /// verifier as a citizen's answer; nothing is stored or sent.
    pub async fn draft(&self, question: &str) -> Result<Draft, TurnError> {
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = Outcome::default();
        let work = async {
            let tx = tx;
            self.answer(question, &tx, &mut out).await
        };
        // The answer streams its events; nobody needs them here but the channel must drain.
        let drain = async { while rx.recv().await.is_some() {} };
        let (result, ()) = tokio::join!(work, drain);
        result?;
        // Without evidence there is no draft: the citizen-facing "not covered" text is no
        // reply for a counselor to send.
        let grounded = !out.not_covered;
        Ok(Draft {
            question: question.to_string(),
            text: if grounded {
                mask_pii(&out.text)
            } else {
                String::new()
            },
            citations: out.citations,
            grounded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, text: &str, citations: &str) -> MessageRow {
        MessageRow {
            id: "m".into(),
            seq: 1,
            role: role.into(),
            text: text.into(),
            channel: "web".into(),
            intent: None,
            status: "complete".into(),
            citations: citations.into(),
            jobs: "[]".into(),
            rewritten: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_summary_reads_the_latest_messages_labelled_and_cites_what_the_answers_cited() {
        let cite = r#"[{"n":1,"doc_id":"d","title":"通知","doc_number":"鲁人社发〔2025〕9号","section":"二","quote":"q"}]"#;
        let mut msgs = vec![msg("user", "很早的问题", "[]")];
        for i in 0..SUMMARY_MESSAGES {
            msgs.push(msg("user", &format!("问题{i}"), "[]"));
        }
        msgs.push(msg("assistant", "答复", cite));
        msgs.push(msg("assistant", "再答", cite));
        let t = transcript_for_summary(&msgs);
        assert!(!t.contains("很早的问题"), "{t}");
        assert!(t.ends_with("乐业助手：再答"), "{t}");
        let s = cited_sources(&msgs);
        assert_eq!(s.len(), 1, "one document once");
        assert_eq!(s[0].doc_number, "鲁人社发〔2025〕9号");
    }
}
