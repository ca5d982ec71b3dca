//! One real `leye serve` for a test binary: real models, the embedded Qdrant store in a
//! temporary home with the bundled knowledge ingested, SQLite, listening on 127.0.0.1:0.
//! Logs are captured so tests can check what reached them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use assistant::app::Application;
use assistant::config::Config;
use assistant::serve::Running;

/// The running service.
pub struct TestService {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server (database access for assertions).
    pub running: Running,
    /// The config it runs with.
    pub config: Config,
    /// Everything logged so far.
    pub logs: Arc<Mutex<Vec<u8>>>,
    /// The runtime the server runs on (kept alive for the whole binary).
    pub runtime: tokio::runtime::Runtime,
    _home: tempfile::TempDir,
}

/// The day job validity is judged on in tests (the sample listings are generated around it).
pub const TODAY: &str = "2026-11-25";

#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        // Also show them, for debugging failures.
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shared service, started on first use.
pub fn service() -> &'static TestService {
    static S: OnceLock<TestService> = OnceLock::new();
    S.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink(logs.clone());
        // Debug level for our crates: more text reaches the logs, so the PII check is stricter.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info,assistant=debug,retrieval=debug")
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .try_init();
        let home = crate::home_with_bundled_index();
        let mut cfg = Config {
            home: home.path().to_path_buf(),
            ..Config::default()
        };
        cfg.llm.path = Some(crate::llm_path());
        cfg.embedder.path = Some(crate::embedder_path());
        cfg.server.bind = "127.0.0.1:0".into();
        cfg.server.ip_per_minute = 10_000;
        cfg.server.ip_burst = 10_000;
        cfg.server.session_per_minute = 6;
        cfg.server.session_burst = 5;
        cfg.server.sessions_per_minute = 10_000;
        cfg.server.sessions_burst = 10_000;
        cfg.server.max_in_flight_per_ip = 64;
        // Short enough that abandoned turns end quickly, long enough to resume a stream.
        cfg.server.abandon_grace_secs = 3;
        cfg.server.header_read_timeout_secs = 2;
        cfg.database.url = Some(assistant::store::Db::sqlite_url(home.path()));
        cfg.dialogue.today = Some(TODAY.parse().expect("date"));
        // Never in service hours: every handoff offers the callback form, whatever the time
        // the tests run at.
        cfg.console.service_days = Vec::new();
        cfg.validate().expect("valid test config");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let progress: assistant::app::Progress = Arc::new(|l: &str| eprintln!("[serve] {l}"));
        let running = runtime.block_on(async {
            Application::build(&cfg, progress)
                .await
                .expect("assemble the assistant")
                .start(std::future::pending())
                .await
                .expect("start the server")
        });
        TestService {
            base: format!("http://{}", running.addr),
            running,
            config: cfg,
            logs,
            runtime,
            _home: home,
        }
    })
}

impl TestService {
    /// Captured logs as text.
    pub fn log_text(&self) -> String {
        self.logs
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    /// Every text stored in the database (messages, escalations, feedback, profiles).
    pub fn stored_texts(&self) -> Vec<String> {
        let db = self.running.state.assistant.db().clone();
        self.runtime
            .block_on(async move { db.all_texts().await })
            .expect("query the database")
    }

    /// The transcript rows of a session.
    pub fn messages(&self, session: &str) -> Vec<assistant::store::MessageRow> {
        let db = self.running.state.assistant.db().clone();
        let s = assistant::domain::SessionId::parse(session).expect("a session id");
        self.runtime
            .block_on(async move { db.messages(&s).await })
            .expect("query the database")
    }

    /// The session's row, if it exists.
    pub fn session_row(&self, session: &str) -> Option<assistant::store::SessionRow> {
        let db = self.running.state.assistant.db().clone();
        let s = assistant::domain::SessionId::parse(session).ok()?;
        self.runtime
            .block_on(async move { db.session(&s).await })
            .expect("query the database")
    }

    /// Waiting escalations.
    pub fn waiting(&self) -> Vec<assistant::store::EscalationRow> {
        let db = self.running.state.assistant.db().clone();
        self.runtime
            .block_on(async move { db.waiting().await })
            .expect("query the database")
    }

    /// Adds a counselor account (once per name in this binary) and signs it in.
    pub fn counselor(
        &self,
        username: &str,
        role: assistant::console::Role,
    ) -> crate::console::Console {
        let password = self.counselor_account(username, role);
        crate::console::Console::login(&self.base, username, &password).expect("sign in")
    }

    /// Adds a counselor account (once per name in this binary; shown to citizens as
    /// "指导师<username>") and returns its password.
    pub fn counselor_account(&self, username: &str, role: assistant::console::Role) -> String {
        static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let password = format!("pw-{username}-0123456789");
        let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
        if !made.contains(&username.to_string()) {
            let db = self.running.state.assistant.db().clone();
            let name = format!("指导师{username}");
            self.runtime.block_on(crate::console::add_account(
                &db, username, &name, role, &password,
            ));
            made.push(username.to_string());
        }
        password
    }

    /// A second listener over the same assistant with a changed server config (limits,
    /// proxies, tokens), on its own port.
    pub fn second_listener(&self, change: impl FnOnce(&mut Config)) -> (Running, String) {
        let mut cfg = self.config.clone();
        change(&mut cfg);
        cfg.validate().expect("valid changed config");
        let a = self.running.state.assistant.share();
        let r = self
            .runtime
            .block_on(Application::from_parts(cfg, a).start(std::future::pending()))
            .expect("second listener");
        let base = format!("http://{}", r.addr);
        (r, base)
    }
}

/// A citizen's conversation over HTTP: its session id and token.
#[derive(Debug, Clone)]
pub struct Citizen {
    /// The server this citizen talks to.
    pub base: String,
    /// Session id.
    pub id: String,
    /// Session token (sent in `X-Session-Token`).
    pub token: String,
}

/// A blocking HTTP client with a long timeout (answers on 2 cores take a while).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("client")
}

impl Citizen {
    /// A new session from `POST /api/v1/sessions`.
    pub fn new(base: &str) -> Self {
        let r = client()
            .post(format!("{base}/api/v1/sessions"))
            .send()
            .expect("create session");
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().expect("json");
        Self::from_response(base, &v)
    }

    /// The session a first message created (its response carries the token).
    pub fn from_response(base: &str, v: &serde_json::Value) -> Self {
        Self {
            base: base.to_string(),
            id: v["session_id"].as_str().expect("session_id").to_string(),
            token: v["session_token"]
                .as_str()
                .expect("session_token in the creating response")
                .to_string(),
        }
    }

    /// A request on this session with the token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        client()
            .request(
                method,
                format!("{}/api/v1/sessions/{}{path}", self.base, self.id),
            )
            .header("x-session-token", &self.token)
    }

    /// Sends a message on this session; returns (status, body).
    pub fn chat_status(&self, message: &str) -> (u16, serde_json::Value) {
        let r = client()
            .post(format!("{}/api/v1/chat", self.base))
            .header("x-session-token", &self.token)
            .json(&serde_json::json!({"session_id": self.id, "message": message}))
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().expect("json"))
    }

    /// Sends a message on this session and expects an answer.
    pub fn chat(&self, message: &str) -> serde_json::Value {
        let (status, v) = self.chat_status(message);
        assert_eq!(status, 200, "{v}");
        v
    }
}
