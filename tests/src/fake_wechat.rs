//! A fake of WeChat's API servers on 127.0.0.1:0 for the WeChat tests: access tokens
//! (`stable_token`, `token`), `jscode2session`, customer-service and subscribe messages and the
//! menu, with fault injection: an expired token, any `errcode`, slow answers. (Connection
//! refused: point `wechat.api_base` at a port nothing listens on.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A fault for the next calls of the message endpoints.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The current access token is declared expired (`42001`) once; a new one is needed.
    ExpiredToken,
    /// This `errcode` (e.g. 45015 outside the 48-hour window, 45009 rate limit, -1 busy).
    Errcode(i64),
    /// Answer after this delay.
    Slow(Duration),
}

/// What the fake saw and how it behaves.
#[derive(Debug, Default)]
pub struct FakeWechat {
    /// Base URL, e.g. `http://127.0.0.1:4321`.
    pub base: String,
    /// Faults for the next message calls, in order.
    pub faults: Mutex<VecDeque<Fault>>,
    /// The valid access token (changes at every refresh).
    token: Mutex<String>,
    /// How many tokens were issued.
    pub tokens_issued: Mutex<u32>,
    /// Bodies of accepted customer-service messages.
    pub custom: Mutex<Vec<Value>>,
    /// Bodies of accepted subscribe messages.
    pub subscribe: Mutex<Vec<Value>>,
    /// Bodies of menus created.
    pub menus: Mutex<Vec<Value>>,
    /// Every call: (path, errcode answered).
    pub calls: Mutex<Vec<(String, i64)>>,
    /// Query strings of `jscode2session` calls (appid, secret…).
    pub code_queries: Mutex<Vec<Value>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeWechat {
    /// Starts the fake on `rt`.
    pub fn start(rt: &tokio::runtime::Runtime) -> Arc<Self> {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind fake WeChat");
            let addr = listener.local_addr().expect("addr");
            let fake = Arc::new(FakeWechat {
                base: format!("http://{addr}"),
                ..FakeWechat::default()
            });
            let app = Router::new()
                .route("/cgi-bin/stable_token", post(stable_token))
                .route("/cgi-bin/token", get(plain_token))
                .route("/sns/jscode2session", get(code2session))
                .route("/cgi-bin/message/custom/send", post(custom_send))
                .route("/cgi-bin/message/subscribe/send", post(subscribe_send))
                .route("/cgi-bin/menu/create", post(menu_create))
                .with_state(fake.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            fake
        })
    }

    /// Adds faults for the next message calls.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.faults).extend(faults);
    }

    /// Customer-service messages accepted so far: (touser, text).
    pub fn custom_texts(&self) -> Vec<(String, String)> {
        lock(&self.custom)
            .iter()
            .map(|v| {
                (
                    v["touser"].as_str().unwrap_or("").to_string(),
                    v["text"]["content"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Subscribe messages accepted so far.
    pub fn subscribe_messages(&self) -> Vec<Value> {
        lock(&self.subscribe).clone()
    }

    /// Tokens issued so far.
    pub fn tokens(&self) -> u32 {
        *lock(&self.tokens_issued)
    }

    /// The errcodes answered on `path`, in order.
    pub fn answers(&self, path: &str) -> Vec<i64> {
        lock(&self.calls)
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, c)| *c)
            .collect()
    }

    fn issue(&self) -> Value {
        let mut n = lock(&self.tokens_issued);
        *n += 1;
        let t = format!("token-{}", *n);
        *lock(&self.token) = t.clone();
        json!({"access_token": t, "expires_in": 7200})
    }

    /// Applies the next fault; `Some(errcode)` when the call fails.
    async fn fault(&self, token: &str) -> Option<i64> {
        if token != lock(&self.token).as_str() {
            return Some(40001);
        }
        let next = lock(&self.faults).pop_front();
        match next {
            Some(Fault::ExpiredToken) => {
                // The token is dead from now on.
                *lock(&self.token) = String::from("expired");
                Some(42001)
            }
            Some(Fault::Errcode(c)) => Some(c),
            Some(Fault::Slow(d)) => {
                tokio::time::sleep(d).await;
                None
            }
            None => None,
        }
    }

    fn record(&self, path: &str, code: i64) -> Json<Value> {
        lock(&self.calls).push((path.to_string(), code));
        Json(json!({"errcode": code, "errmsg": if code == 0 { "ok" } else { "fault" }}))
    }

    async fn message(
        &self,
        path: &str,
        q: &Value,
        body: Value,
        into: &Mutex<Vec<Value>>,
    ) -> Json<Value> {
        let token = q["access_token"].as_str().unwrap_or("");
        if let Some(code) = self.fault(token).await {
            return self.record(path, code);
        }
        lock(into).push(body);
        self.record(path, 0)
    }
}

async fn stable_token(State(f): State<Arc<FakeWechat>>, Json(body): Json<Value>) -> Json<Value> {
    if body["appid"].as_str().unwrap_or("").is_empty()
        || body["secret"].as_str().unwrap_or("").is_empty()
    {
        return Json(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    Json(f.issue())
}

async fn plain_token(State(f): State<Arc<FakeWechat>>) -> Json<Value> {
    Json(f.issue())
}

async fn code2session(State(f): State<Arc<FakeWechat>>, Query(q): Query<Value>) -> Json<Value> {
    lock(&f.code_queries).push(q.clone());
    let code = q["js_code"].as_str().unwrap_or("");
    if code.starts_with("bad") || code.is_empty() {
        return Json(json!({"errcode": 40029, "errmsg": "invalid code"}));
    }
    // One openid per user: the code's part before '-' names the user.
    let user = code.split('-').next().unwrap_or(code);
    Json(json!({"openid": format!("openid-{user}"), "session_key": "k"}))
}

async fn custom_send(
    State(f): State<Arc<FakeWechat>>,
    Query(q): Query<Value>,
    Json(body): Json<Value>,
) -> Json<Value> {
    f.message("custom/send", &q, body, &f.custom).await
}

async fn subscribe_send(
    State(f): State<Arc<FakeWechat>>,
    Query(q): Query<Value>,
    Json(body): Json<Value>,
) -> Json<Value> {
    f.message("subscribe/send", &q, body, &f.subscribe).await
}

async fn menu_create(
    State(f): State<Arc<FakeWechat>>,
    Query(q): Query<Value>,
    Json(body): Json<Value>,
) -> Json<Value> {
    f.message("menu/create", &q, body, &f.menus).await
}
