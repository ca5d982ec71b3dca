//! A counselor in tests: accounts made straight in the database, and a blocking console
//! client that keeps the sign-in cookie and sends the CSRF token.

use assistant::console::{accounts, Role};
use assistant::store::Db;
use serde_json::{json, Value};

/// Adds an account with this password (panics on a taken name).
pub async fn add_account(
    db: &Db,
    username: &str,
    name: &str,
    role: Role,
    password: &str,
) -> String {
    let hash = accounts::hash_password(password).expect("hash");
    db.add_counselor(
        username,
        name,
        role.as_str(),
        &hash,
        assistant::store::now_ms(),
    )
    .await
    .expect("add counselor")
    .expect("a new username")
    .id
}

/// A signed-in console browser.
#[derive(Debug, Clone)]
pub struct Console {
    /// Server.
    pub base: String,
    /// The `leye_console` cookie value.
    pub cookie: String,
    /// The CSRF token from the sign-in.
    pub csrf: String,
    /// The counselor's id.
    pub id: String,
}

fn client() -> reqwest::blocking::Client {
    crate::service::client()
}

/// The response status and JSON body (null when the body is not JSON).
pub fn status_json(r: reqwest::blocking::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().unwrap_or(Value::Null))
}

impl Console {
    /// Signs in; `Err((status, body))` when refused.
    pub fn login(base: &str, username: &str, password: &str) -> Result<Self, (u16, Value)> {
        let r = client()
            .post(format!("{base}/console/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .expect("login request");
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("leye_console="))
            .map(|v| v.split(';').next().unwrap_or("").to_string());
        let (status, body) = status_json(r);
        match cookie {
            Some(c) if status == 200 => Ok(Self {
                base: base.to_string(),
                cookie: c,
                csrf: body["csrf_token"].as_str().unwrap_or_default().to_string(),
                id: body["id"].as_str().unwrap_or_default().to_string(),
            }),
            _ => Err((status, body)),
        }
    }

    /// A request with the cookie (and the CSRF token when `csrf`).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        csrf: bool,
    ) -> reqwest::blocking::RequestBuilder {
        let mut b = client()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", format!("leye_console={}", self.cookie));
        if csrf {
            b = b.header("x-csrf-token", &self.csrf);
        }
        b
    }

    /// GET.
    pub fn get(&self, path: &str) -> (u16, Value) {
        status_json(
            self.request(reqwest::Method::GET, path, false)
                .send()
                .expect("GET"),
        )
    }

    /// POST with the CSRF token.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        status_json(
            self.request(reqwest::Method::POST, path, true)
                .json(&body)
                .send()
                .expect("POST"),
        )
    }
}
