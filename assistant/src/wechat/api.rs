//! The client of WeChat's HTTPS API, at a configurable base URL: access tokens (cached,
//! refreshed ahead of expiry by one task, and once more on an expired-token error),
//! `jscode2session`, customer-service and subscribe messages, the menu.
//!
//! Nothing here logs a secret: URLs carry the appid secret or the access token, so transport
//! errors are reported without their URL, and WeChat's own error text is kept only with its
//! code.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::Secret;

/// What went wrong calling WeChat.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WechatError {
    /// No answer (connection refused, timeout, TLS): worth retrying.
    #[error("WeChat unreachable: {0}")]
    Transport(String),
    /// WeChat answered with an error code.
    #[error("WeChat error {code}: {message}")]
    Api {
        /// `errcode`.
        code: i64,
        /// `errmsg`.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from WeChat: {0}")]
    Protocol(String),
}

impl WechatError {
    /// Retrying cannot help: the user is outside the 48-hour window (45015), refused or
    /// used up their subscription (43101), the openid is wrong (40003), they unfollowed
    /// (43004), the template or its data is wrong (40037, 47003), the app is wrong (40013,
    /// 40125).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            WechatError::Api {
                code: 45015 | 43101 | 40003 | 43004 | 40037 | 47003 | 40013 | 40125 | 40029 | 40163,
                ..
            }
        )
    }

    /// The access token was refused: refresh it and retry once.
    pub fn is_token_expired(&self) -> bool {
        matches!(
            self,
            WechatError::Api {
                code: 40001 | 42001 | 40014,
                ..
            }
        )
    }

    /// `errcode` when WeChat answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            WechatError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// One WeChat app (the Official Account or the mini-program): its credentials and token.
#[derive(Debug)]
pub struct WechatApp {
    http: reqwest::Client,
    base: String,
    appid: String,
    secret: Secret,
    token: Mutex<Option<(String, Instant)>>,
}

/// A session for a mini-program user, from `jscode2session`.
#[derive(Debug, Clone)]
pub struct CodeSession {
    /// The user's openid for this mini-program.
    pub openid: String,
}

/// Refresh this long before the token's stated expiry.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

impl WechatApp {
    /// An app at `base` (e.g. `https://api.weixin.qq.com`).
    pub fn new(base: &str, appid: &str, secret: Secret, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            appid: appid.to_string(),
            secret,
            token: Mutex::new(None),
        }
    }

    /// The app's id.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, WechatError> {
        let resp = req
            .send()
            .await
            .map_err(|e| WechatError::Transport(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| WechatError::Transport(e.without_url().to_string()))?;
        if status.is_server_error() {
            return Err(WechatError::Transport(format!("HTTP {status}")));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| WechatError::Protocol(format!("HTTP {status}, not JSON")))?;
        let env: Envelope =
            serde_json::from_value(v.clone()).map_err(|e| WechatError::Protocol(e.to_string()))?;
        if env.errcode != 0 {
            return Err(WechatError::Api {
                code: env.errcode,
                message: crate::guard::for_log(&env.errmsg),
            });
        }
        Ok(v)
    }

    /// A valid access token: the cached one, or a new one. The lock makes concurrent callers
    /// wait for one refresh instead of each asking WeChat (which would invalidate the others).
    pub async fn access_token(&self) -> Result<String, WechatError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() + REFRESH_AHEAD < *until {
                return Ok(t.clone());
            }
        }
        let (t, until) = self.fetch_token(false).await?;
        *cached = Some((t.clone(), until));
        Ok(t)
    }

    /// Replaces a token WeChat refused (only if it is still the cached one).
    async fn refresh_after_error(&self, refused: &str) -> Result<String, WechatError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if t != refused && Instant::now() + REFRESH_AHEAD < *until {
                return Ok(t.clone());
            }
        }
        let (t, until) = self.fetch_token(true).await?;
        *cached = Some((t.clone(), until));
        Ok(t)
    }

    async fn fetch_token(&self, force: bool) -> Result<(String, Instant), WechatError> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret.expose(),
            "force_refresh": force,
        });
        let v = self
            .send(
                self.http
                    .post(format!("{}/cgi-bin/stable_token", self.base))
                    .json(&body),
            )
            .await?;
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| WechatError::Protocol("no access_token".into()))?;
        let secs = v["expires_in"].as_u64().unwrap_or(7200).max(60);
        tracing::info!(appid = %self.appid, expires_in = secs, "WeChat access token refreshed");
        Ok((
            token.to_string(),
            Instant::now() + Duration::from_secs(secs),
        ))
    }

    /// Keeps the token fresh: refreshes it shortly before it expires, so requests rarely
    /// wait for a refresh. Runs until the app is dropped.
    pub async fn keep_token_fresh(self: std::sync::Arc<Self>) {
        loop {
            let wait = match self.access_token().await {
                Ok(_) => {
                    let until = self.token.lock().await.as_ref().map(|(_, u)| *u);
                    until
                        .map(|u| u.saturating_duration_since(Instant::now() + REFRESH_AHEAD))
                        .unwrap_or(Duration::from_secs(60))
                        .max(Duration::from_secs(5))
                }
                Err(e) => {
                    tracing::warn!(appid = %self.appid, error = %e, "WeChat access token not refreshed");
                    Duration::from_secs(30)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// POSTs `body` to an API path that takes `access_token`, refreshing the token and
    /// retrying once when WeChat says it expired.
    pub async fn post_with_token(&self, path: &str, body: &Value) -> Result<Value, WechatError> {
        let token = self.access_token().await?;
        let call = |t: &str| {
            self.http
                .post(format!("{}{path}", self.base))
                .query(&[("access_token", t)])
                .json(body)
        };
        match self.send(call(&token)).await {
            Err(e) if e.is_token_expired() => {
                tracing::info!(appid = %self.appid, code = ?e.code(), "access token refused: refreshing once");
                let fresh = self.refresh_after_error(&token).await?;
                self.send(call(&fresh)).await
            }
            r => r,
        }
    }

    /// `jscode2session`: a mini-program login code to the user's openid.
    pub async fn code_to_session(&self, code: &str) -> Result<CodeSession, WechatError> {
        let v = self
            .send(
                self.http
                    .get(format!("{}/sns/jscode2session", self.base))
                    .query(&[
                        ("appid", self.appid.as_str()),
                        ("secret", self.secret.expose()),
                        ("js_code", code),
                        ("grant_type", "authorization_code"),
                    ]),
            )
            .await?;
        let openid = v["openid"]
            .as_str()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| WechatError::Protocol("no openid".into()))?;
        Ok(CodeSession {
            openid: openid.to_string(),
        })
    }

    /// A customer-service text message (`/cgi-bin/message/custom/send`).
    pub async fn custom_send_text(&self, openid: &str, text: &str) -> Result<(), WechatError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": text}});
        self.post_with_token("/cgi-bin/message/custom/send", &body)
            .await
            .map(|_| ())
    }

    /// A subscribe message (`/cgi-bin/message/subscribe/send`).
    pub async fn subscribe_send(&self, body: &Value) -> Result<(), WechatError> {
        self.post_with_token("/cgi-bin/message/subscribe/send", body)
            .await
            .map(|_| ())
    }

    /// Creates the Official Account's menu (`/cgi-bin/menu/create`).
    pub async fn create_menu(&self, menu: &Value) -> Result<(), WechatError> {
        self.post_with_token("/cgi-bin/menu/create", menu)
            .await
            .map(|_| ())
    }
}
