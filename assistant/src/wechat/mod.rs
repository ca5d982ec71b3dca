//! WeChat: the Official Account (公众号) server and the mini-program's login and push.
//!
//! - [`crypto`]: signatures and safe-mode AES; [`xml`]: the messages WeChat posts.
//! - [`api`]: the client of WeChat's API (access tokens, code2session, messages, menu) at a
//!   configurable base URL, so the tests run against a fake on 127.0.0.1.
//! - [`outbox`]: every call to WeChat is first stored, then made by a worker with retries.
//! - this file: [`Wechat`], what the HTTP handlers share: apps, cipher, who has a socket open,
//!   and how an answer becomes WeChat text.
//!
//! HTTP is `crate::http::wechat` (Official Account) and `crate::http::miniprogram`.

pub mod api;
pub mod crypto;
pub mod menu;
pub mod outbox;
pub mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::WechatConfig;
use crate::dialogue::jobs::JobCard;
use crate::dialogue::verify::Citation;
use crate::store::Db;
pub use api::{WechatApp, WechatError};

/// WeChat limits a text message to 2048 bytes.
pub const MAX_TEXT_BYTES: usize = 2048;

/// Numbered quick replies: offered as text ("回复数字") since a text channel has no buttons;
/// a message that is just one of the numbers means its text.
pub const QUICK_REPLIES: &[(&str, &str)] = &[
    ("1", "我想咨询就业创业政策"),
    ("2", "我想找工作"),
    ("3", "我想了解创业扶持"),
    ("4", "转人工"),
];

/// The quick replies as one text block.
pub fn quick_reply_text() -> String {
    let mut s = String::from("回复数字：");
    for (i, (n, t)) in QUICK_REPLIES.iter().enumerate() {
        if i > 0 {
            s.push('；');
        }
        s.push_str(n);
        s.push(' ');
        s.push_str(t);
    }
    s
}

/// The text a numbered quick reply stands for, if the message is one.
pub fn expand_quick_reply(text: &str) -> Option<&'static str> {
    let t = text.trim().trim_end_matches(['.', '。']);
    QUICK_REPLIES.iter().find(|(n, _)| *n == t).map(|(_, s)| *s)
}

/// Who has a mini-program socket open, per session (so a counselor's reply goes over the
/// socket, and a subscribe message only when none is open). In-process: with several
/// replicas a citizen may also get a subscribe message while their socket is on another one.
#[derive(Debug, Default)]
pub struct Presence {
    open: Mutex<HashMap<String, usize>>,
}

/// Held while a socket is open.
#[derive(Debug)]
pub struct PresenceGuard {
    presence: Arc<Presence>,
    session: String,
}

impl Presence {
    /// Counts a socket in for `session` until the guard drops.
    pub fn enter(self: &Arc<Self>, session: &str) -> PresenceGuard {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(session.to_string()).or_default() += 1;
        PresenceGuard {
            presence: self.clone(),
            session: session.to_string(),
        }
    }

    /// Whether a socket is open for `session`.
    pub fn is_open(&self, session: &str) -> bool {
        let m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        m.get(session).is_some_and(|n| *n > 0)
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let mut m = self.presence.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.session);
            }
        }
    }
}

/// The WeChat side of the service.
#[derive(Debug, Clone)]
pub struct Wechat {
    /// Settings.
    pub cfg: WechatConfig,
    /// The Official Account's API client (when enabled).
    pub mp: Option<Arc<WechatApp>>,
    /// The mini-program's API client (when enabled).
    pub miniprogram: Option<Arc<WechatApp>>,
    /// The Official Account's safe-mode cipher (when an EncodingAESKey is set).
    pub crypt: Option<crypto::MessageCrypt>,
    /// Open mini-program sockets.
    pub presence: Arc<Presence>,
    /// Wakes the outbox worker when a row is added.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    db: Db,
}

impl Wechat {
    /// From the config; apps that are not enabled are absent.
    pub fn new(cfg: &WechatConfig, db: Db) -> Self {
        let timeout = Duration::from_secs(cfg.api_timeout_secs.max(1));
        let app = |enabled: bool, appid: &str, secret: &Option<crate::config::Secret>| match (
            enabled, secret,
        ) {
            (true, Some(s)) => Some(Arc::new(WechatApp::new(
                &cfg.api_base,
                appid,
                s.clone(),
                timeout,
            ))),
            _ => None,
        };
        let crypt = match (&cfg.mp.encoding_aes_key, cfg.mp.enabled) {
            (Some(k), true) => crypto::MessageCrypt::new(k.expose(), &cfg.mp.appid).ok(),
            _ => None,
        };
        Self {
            mp: app(cfg.mp.enabled, &cfg.mp.appid, &cfg.mp.secret),
            miniprogram: app(
                cfg.miniprogram.enabled,
                &cfg.miniprogram.appid,
                &cfg.miniprogram.secret,
            ),
            crypt,
            presence: Arc::new(Presence::default()),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            cfg: cfg.clone(),
            db,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Queues a customer-service text for an Official Account user, split to WeChat's size
    /// limit, and wakes the worker. The openid is looked up at delivery from the session.
    pub async fn push_text(
        &self,
        session: &crate::domain::SessionId,
        text: &str,
    ) -> Result<(), crate::store::DbError> {
        let now = crate::store::now_ms();
        for part in split_text(text, MAX_TEXT_BYTES) {
            let payload = serde_json::json!({ "text": part }).to_string();
            self.db
                .outbox_push(outbox::CUSTOM_SEND, &payload, Some(session), now)
                .await?;
        }
        self.outbox_wake.notify_one();
        Ok(())
    }
}

/// An answer as WeChat text: the answer, the job cards as short lines, the sources as
/// 《title》文号 section lines.
pub fn format_answer(answer: &str, citations: &[Citation], jobs: &[JobCard]) -> String {
    let mut s = answer.trim().to_string();
    if !jobs.is_empty() {
        s.push_str("\n\n岗位：");
        for (i, j) in jobs.iter().enumerate() {
            s.push_str(&format!(
                "\n{}. {}｜{}｜{}{}｜{}",
                i + 1,
                j.title,
                j.company,
                j.city,
                if j.district.is_empty() {
                    String::new()
                } else {
                    format!("·{}", j.district)
                },
                j.salary
            ));
            if !j.contact.is_empty() {
                s.push_str(&format!("｜{}", j.contact));
            }
        }
    }
    if !citations.is_empty() {
        s.push_str("\n\n来源：");
        for c in citations {
            s.push_str(&format!("\n[{}]《{}》", c.n, c.title));
            if !c.doc_number.is_empty() {
                s.push_str(&c.doc_number);
            }
            if !c.section.is_empty() {
                s.push(' ');
                s.push_str(&c.section);
            }
        }
    }
    s
}

/// Splits text into parts of at most `max` bytes of UTF-8, at a line break when one is in
/// the second half of a part, never inside a character.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(nl) = rest[..cut].rfind('\n') {
            if nl >= cut / 2 {
                cut = nl + 1;
            }
        }
        out.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// A short, non-reversible label of an openid for logs (never the openid itself).
pub fn openid_label(openid: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(openid.as_bytes())[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_split_within_the_byte_limit_on_char_boundaries() {
        let text = "失业保险金按月发放。\n".repeat(300);
        let parts = split_text(&text, MAX_TEXT_BYTES);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.len() <= MAX_TEXT_BYTES, "{}", p.len());
            assert!(p.ends_with('。'), "cut at a line break");
        }
        assert_eq!(parts.concat().replace('\n', ""), text.replace('\n', ""));
        let dense = "就".repeat(1000);
        let parts = split_text(&dense, 2048);
        assert!(parts.iter().all(|p| p.len() <= 2048));
        assert_eq!(parts.concat(), dense);
        assert_eq!(split_text("短", 2048), vec!["短".to_string()]);
    }

    #[test]
    fn quick_replies_expand_only_exact_numbers() {
        assert_eq!(expand_quick_reply(" 4 "), Some("转人工"));
        assert_eq!(expand_quick_reply("2。"), Some("我想找工作"));
        assert_eq!(expand_quick_reply("42"), None);
        assert_eq!(expand_quick_reply("我有4个问题"), None);
        assert!(quick_reply_text().contains("4 转人工"));
    }
}
