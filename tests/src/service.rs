//! One real `leye serve` for a test binary: real models, the embedded Qdrant store in a
//! temporary home with the bundled knowledge ingested, SQLite, listening on 127.0.0.1:0.
//! Logs are captured so tests can check what reached them.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

/// Token of the counselor console API in tests.
pub const CONSOLE_TOKEN: &str = "test-console-token-0123456789";

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
        let home = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config {
            home: home.path().to_path_buf(),
            ..Config::default()
        };
        cfg.llm.path = Some(crate::llm_path());
        cfg.embedder.path = Some(crate::embedder_path());
        cfg.server.bind = "127.0.0.1:0".into();
        cfg.server.console_token = Some(CONSOLE_TOKEN.into());
        cfg.server.ip_per_minute = 10_000;
        cfg.server.ip_burst = 10_000;
        cfg.server.session_per_minute = 6;
        cfg.server.session_burst = 5;
        cfg.database.url = Some(assistant::store::Db::sqlite_url(home.path()));
        cfg.dialogue.today = Some(TODAY.parse().expect("date"));
        cfg.validate().expect("valid test config");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let progress: assistant::serve::Progress = Arc::new(|l: &str| eprintln!("[serve] {l}"));
        let running = runtime.block_on(async {
            let a = assistant::serve::assemble(&cfg, progress)
                .await
                .expect("assemble the assistant");
            assistant::serve::start(&cfg, a, std::future::pending())
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
        let s = session.to_string();
        self.runtime
            .block_on(async move { db.messages(&s).await })
            .expect("query the database")
    }
}
