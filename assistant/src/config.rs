//! Configuration: defaults, then a TOML file, then `LEYE_` environment variables.
//!
//! The file is `--config PATH`, else `$LEYE_CONFIG`, else `./leye.toml` when it exists.
//! Environment variables override single keys, `__` separating levels:
//! `LEYE_LLM__PATH=/models/qwen.gguf`, `LEYE_LLM__LOAD__PREFILL=cached`. Values are read as TOML
//! values when they parse as one (`8192`, `true`, `["10.0.0.0/8"]`), else as strings. Unknown keys are errors, so
//! a typo never silently falls back to a default. `LEYE_HOME`, `LEYE_CONFIG`, `LEYE_LOG` and
//! `LEYE_PIP_ARGS` are not config keys (they are read before the config exists).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use models::llm::{GenerationParams, LoadOptions};
use serde::{Deserialize, Serialize};

/// Environment variables with the prefix that are not config keys.
const NOT_KEYS: &[&str] = &["LEYE_HOME", "LEYE_CONFIG", "LEYE_LOG", "LEYE_PIP_ARGS"];

/// Everything configurable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data folder: models, indexes, database. Default `$LEYE_HOME` or `~/.cache/leye`.
    pub home: PathBuf,
    /// The language model.
    pub llm: LlmConfig,
    /// The sentence embedder.
    pub embedder: EmbedderConfig,
    /// Where vectors live: the embedded store (default) or a Qdrant server.
    pub qdrant: QdrantConfig,
    /// The HTTP service.
    pub server: ServerConfig,
    /// Conversation storage.
    pub database: DatabaseConfig,
    /// Dialogue behaviour (evidence gate, answer limits, service hours).
    pub dialogue: DialogueConfig,
    /// The knowledge `leye serve` ingests at start.
    pub knowledge: KnowledgeConfig,
    /// What is kept about citizens, and for how long.
    pub privacy: PrivacyConfig,
    /// The counselor console: sign-in sessions, lockout, queue SLA.
    pub console: ConsoleConfig,
    /// WeChat: the Official Account server and the mini-program API (both off by default).
    pub wechat: WechatConfig,
}

/// WeChat settings (config section `wechat`). Secrets are [`Secret`]s: never logged, never
/// in a config dump. See `docs/wechat.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatConfig {
    /// WeChat's API (default `https://api.weixin.qq.com`); tests point it at a local fake.
    pub api_base: String,
    /// Seconds one call to WeChat's API may take (default 10).
    pub api_timeout_secs: u64,
    /// The Official Account (公众号) server at `/wechat/mp`.
    pub mp: WechatMpConfig,
    /// The mini-program API at `/api/v1/miniprogram/*` and `/api/v1/ws`.
    pub miniprogram: MiniprogramConfig,
    /// The outbox of calls to WeChat: first retry after this many ms (default 1000), doubling.
    pub outbox_retry_base_ms: u64,
    /// Longest wait between retries, seconds (default 300).
    pub outbox_retry_max_secs: u64,
    /// Tries before a call is given up (default 12, about half an hour).
    pub outbox_max_attempts: i64,
}

impl Default for WechatConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
            api_timeout_secs: 10,
            mp: WechatMpConfig::default(),
            miniprogram: MiniprogramConfig::default(),
            outbox_retry_base_ms: 1000,
            outbox_retry_max_secs: 300,
            outbox_max_attempts: 12,
        }
    }
}

impl WechatConfig {
    fn check(&self, bad: &mut Vec<String>) {
        if !(self.api_base.starts_with("http://") || self.api_base.starts_with("https://")) {
            bad.push(format!(
                "wechat.api_base: {:?} must start with https:// (or http:// for a local fake)",
                self.api_base
            ));
        }
        if self.api_timeout_secs == 0 {
            bad.push("wechat.api_timeout_secs: must be at least 1".into());
        }
        if self.outbox_max_attempts < 1 {
            bad.push("wechat.outbox_max_attempts: must be at least 1".into());
        }
        let mp = &self.mp;
        if mp.enabled {
            if mp.appid.trim().is_empty() {
                bad.push("wechat.mp.appid: required when wechat.mp.enabled".into());
            }
            if mp.secret.is_none() {
                bad.push("wechat.mp.secret: required when wechat.mp.enabled".into());
            }
            if mp.token.as_ref().is_none_or(|t| t.expose().len() < 3) {
                bad.push(
                    "wechat.mp.token: required (3-32 characters) when wechat.mp.enabled".into(),
                );
            }
            if let Some(k) = &mp.encoding_aes_key {
                if let Err(e) = crate::wechat::crypto::MessageCrypt::new(k.expose(), &mp.appid) {
                    bad.push(format!("wechat.mp.encoding_aes_key: {e}"));
                }
            }
            if mp.reply_budget_ms == 0 || mp.reply_budget_ms > 4800 {
                bad.push("wechat.mp.reply_budget_ms: between 1 and 4800 (WeChat waits 5 s)".into());
            }
        }
        let m = &self.miniprogram;
        if m.enabled {
            if m.appid.trim().is_empty() {
                bad.push(
                    "wechat.miniprogram.appid: required when wechat.miniprogram.enabled".into(),
                );
            }
            if m.secret.is_none() {
                bad.push(
                    "wechat.miniprogram.secret: required when wechat.miniprogram.enabled".into(),
                );
            }
            if m.token_ttl_days == 0 {
                bad.push("wechat.miniprogram.token_ttl_days: must be at least 1".into());
            }
        }
    }
}

/// The Official Account (config section `wechat.mp`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatMpConfig {
    /// Serve `/wechat/mp` (default false; needs `appid`, `secret` and `token`).
    pub enabled: bool,
    /// The account's AppID.
    pub appid: String,
    /// The account's AppSecret (for access tokens).
    pub secret: Option<Secret>,
    /// The Token set in the admin console (signatures).
    pub token: Option<Secret>,
    /// The EncodingAESKey (43 characters), for safe mode; unset: plain mode only.
    pub encoding_aes_key: Option<Secret>,
    /// Milliseconds to wait for an answer before replying "success" and pushing the answer
    /// as a customer-service message (default 4000: WeChat gives up after 5 s).
    pub reply_budget_ms: u64,
    /// Sent when someone follows the account.
    pub welcome: String,
    /// Replies to menu CLICK keys (`leye wechat menu` creates the menu).
    pub menu_replies: std::collections::BTreeMap<String, String>,
}

impl Default for WechatMpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            appid: String::new(),
            secret: None,
            token: None,
            encoding_aes_key: None,
            reply_budget_ms: 4000,
            welcome: "您好，这里是乐业助手：可以问就业创业政策、找工作、了解创业扶持，也可以转人工职业指导师。直接发文字或语音即可。".into(),
            menu_replies: std::collections::BTreeMap::new(),
        }
    }
}

/// The mini-program (config section `wechat.miniprogram`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiniprogramConfig {
    /// Serve the mini-program API (default false; needs `appid` and `secret`).
    pub enabled: bool,
    /// The mini-program's AppID.
    pub appid: String,
    /// Its AppSecret (code2session and access tokens).
    pub secret: Option<Secret>,
    /// Subscribe-message template telling a citizen a counselor replied (unset: none sent).
    /// Its fields: `thing1` who replied, `thing2` the reply's start, `time3` when.
    pub subscribe_template_id: Option<String>,
    /// Days a login token is valid (default 30).
    pub token_ttl_days: u64,
}

impl Default for MiniprogramConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            appid: String::new(),
            secret: None,
            subscribe_template_id: None,
            token_ttl_days: 30,
        }
    }
}

/// Counselor console settings (config section `console`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Mark the sign-in cookie `Secure` (set it when the console is served over TLS, e.g.
    /// behind a reverse proxy; default false so that http://127.0.0.1 works).
    pub cookie_secure: bool,
    /// Minutes without a request after which a console sign-in expires (default 30).
    pub idle_timeout_minutes: u64,
    /// Hours after which a console sign-in expires however active (default 12).
    pub absolute_timeout_hours: u64,
    /// Failed sign-ins in a row before the account is locked (default 5).
    pub max_failed_logins: i64,
    /// First lockout, seconds (default 300); each further failure doubles it, up to an hour.
    pub lockout_secs: u64,
    /// Minutes a citizen may wait before the queue highlights the item (default 10).
    pub sla_minutes: u64,
    /// Days counselors work, 1 = Monday … 7 = Sunday (default Monday to Friday).
    pub service_days: Vec<u8>,
    /// Working periods of a service day, `HH:MM-HH:MM` (default 09:00-12:00 and 13:30-17:30).
    /// Outside them, or with no counselor signed in, a citizen who asks for a person is offered
    /// to leave a message and a callback number, and a crisis raises an alert.
    pub service_hours: Vec<String>,
    /// The offset of the service's local time from UTC, hours (default 8, China Standard Time).
    pub utc_offset_hours: i32,
    /// Who is on call for crises outside service hours, shown in the console's alert (e.g.
    /// "值班主任 0531-12345678"; default none).
    pub on_call: Option<String>,
    /// Key sealing callback numbers: 64 hex digits. Unset: `<home>/callback.key`, made on
    /// first start with owner-only permissions (keep it with the database's backups).
    pub callback_key: Option<Secret>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            cookie_secure: false,
            idle_timeout_minutes: 30,
            absolute_timeout_hours: 12,
            max_failed_logins: 5,
            lockout_secs: 300,
            sla_minutes: 10,
            service_days: vec![1, 2, 3, 4, 5],
            service_hours: vec!["09:00-12:00".into(), "13:30-17:30".into()],
            utc_offset_hours: 8,
            on_call: None,
            callback_key: None,
        }
    }
}

/// Dialogue settings (config section `dialogue`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialogueConfig {
    /// Passages given to the model.
    pub evidence_k: usize,
    /// Each passage is cut to this many characters in the prompt (prefill time on CPU).
    pub passage_chars: usize,
    /// Evidence gate: the best passage's e5 cosine with the question must reach this.
    pub min_dense_score: f32,
    /// Evidence gate: this share of the question's key terms must occur in one evidence
    /// sentence (or [`crate::dialogue::evidence::MIN_SHARED_TERMS`] of them).
    pub min_term_overlap: f32,
    /// Answers the assistant could not give in a row before it hands off by itself.
    pub max_failures: i64,
    /// Generation limits for answers.
    pub generation: GenerationParams,
    /// Counselor service hours, told to citizens waiting in the queue.
    pub service_hours: String,
    /// The day job validity is judged on (`YYYY-MM-DD`); unset: today.
    pub today: Option<chrono::NaiveDate>,
}

impl Default for DialogueConfig {
    fn default() -> Self {
        Self {
            evidence_k: 3,
            passage_chars: 320,
            min_dense_score: 0.80,
            min_term_overlap: 0.60,
            max_failures: 2,
            generation: GenerationParams {
                max_tokens: 200,
                ..Default::default()
            },
            service_hours: "工作日 9:00-12:00、13:30-17:30".into(),
            today: None,
        }
    }
}

/// A secret value (tokens, keys): read from config like a string, but its `Debug` and
/// `Serialize` never show it, so it cannot leak through a log line or a config dump.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value (tests, env).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Privacy settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Conversations with no activity for this many days are deleted (default 180; 0 keeps
    /// them). The widget's privacy notice states this period.
    pub retention_days: u32,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            retention_days: 180,
        }
    }
}

/// An address or CIDR range (`127.0.0.1`, `10.0.0.0/8`, `fd00::/8`), checked when the
/// configuration is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpRange {
    /// The network address.
    pub addr: IpAddr,
    /// Leading bits that must match (32 or 128 for one address).
    pub prefix: u8,
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or CIDR range");
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max),
            None => Some(max),
        }
        .ok_or_else(bad)?;
        Ok(Self { addr, prefix })
    }
}

impl TryFrom<String> for IpRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<IpRange> for String {
    fn from(r: IpRange) -> String {
        format!("{}/{}", r.addr, r.prefix)
    }
}

/// HTTP service settings. Limits are per process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`; port 0 picks a free one).
    pub bind: String,
    /// Largest accepted request body, bytes (default 16 KiB).
    pub max_body_bytes: usize,
    /// Longest accepted message, characters (default 2000).
    pub max_message_chars: usize,
    /// API calls per minute per client IP (default 60; 0 = unlimited).
    pub ip_per_minute: u32,
    /// Burst allowed per IP (default 20).
    pub ip_burst: u32,
    /// Messages per minute per session (default 12; 0 = unlimited).
    pub session_per_minute: u32,
    /// Burst allowed per session (default 5).
    pub session_burst: u32,
    /// New sessions per minute per client IP (default 10; 0 = unlimited). Counts both
    /// `POST /api/v1/sessions` and first messages without a session.
    pub sessions_per_minute: u32,
    /// Burst of new sessions per IP (default 10).
    pub sessions_burst: u32,
    /// Model requests one session may have queued or running at once (default 3; 0 = no cap).
    pub max_in_flight_per_session: usize,
    /// Model requests one client IP may have queued or running at once (default 16; 0 = no
    /// cap).
    pub max_in_flight_per_ip: usize,
    /// Seconds a turn goes on with nobody listening before it is abandoned (default 10): a
    /// phone that drops and reconnects within it resumes the same answer.
    pub abandon_grace_secs: u64,
    /// Seconds a finished turn can still be resumed (default 120).
    pub resume_window_secs: u64,
    /// Seconds a client has to send its request headers, also between requests on a
    /// kept-alive connection (default 10).
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send its whole request body (default 15).
    pub body_read_timeout_secs: u64,
    /// Open connections at most; more wait in the listen backlog (default 1024).
    pub max_connections: usize,
    /// Longest accepted request target (path and query), bytes (default 2048; 414 beyond).
    pub max_uri_bytes: usize,
    /// Largest accepted request head (all header names and values), bytes (default 16 KiB;
    /// 431 beyond).
    pub max_header_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges
    /// (default none: the peer address is the client).
    pub trusted_proxies: Vec<IpRange>,
    /// Bearer token for `/metrics`. Unset: `/metrics` answers only loopback peers.
    pub metrics_token: Option<Secret>,
    /// Seconds in-flight answers get to finish at shutdown (default 30).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 16 * 1024,
            max_message_chars: 2000,
            ip_per_minute: 60,
            ip_burst: 20,
            session_per_minute: 12,
            session_burst: 5,
            sessions_per_minute: 10,
            sessions_burst: 10,
            max_in_flight_per_session: 3,
            max_in_flight_per_ip: 16,
            abandon_grace_secs: 10,
            resume_window_secs: 120,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 15,
            max_connections: 1024,
            max_uri_bytes: 2048,
            max_header_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            shutdown_grace_secs: 30,
        }
    }
}

/// Storage settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; unset: `DATABASE_URL` when set, else SQLite at
    /// `<home>/leye.db`.
    pub url: Option<String>,
}

/// Bundled knowledge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Files or folders ingested at start (unchanged ones are skipped by content hash).
    /// Default: the repository's `knowledge/data`.
    pub paths: Vec<PathBuf>,
    /// The folder of benefit cards (政策申领). Default: the repository's
    /// `knowledge/data/benefits`. A card is active only while its source document is among
    /// the documents of `paths` (matched by 文号 or title, and every quoted span found).
    pub benefits: PathBuf,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            paths: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../knowledge/data")],
            benefits: knowledge::benefits::bundled_dir(),
        }
    }
}

/// Vector store settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// gRPC address of a Qdrant server (e.g. `http://qdrant:6334`). Unset (the default): the
    /// embedded qdrant-edge store under `<home>/qdrant`.
    pub url: Option<String>,
    /// API key for the server, if it wants one.
    pub api_key: Option<Secret>,
    /// Limit on each server call, in seconds (default 30).
    pub timeout_secs: Option<u64>,
}

/// Language model settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Catalog name of the model to fetch and run (`leye models list`).
    pub model: String,
    /// A GGUF file to run instead of the catalog model (qwen2, qwen3, llama or gemma3).
    pub path: Option<PathBuf>,
    /// How the model is loaded (re-quantization, prefill weights, context bound).
    pub load: LoadOptions,
    /// Default generation limits and sampling.
    pub generation: GenerationParams,
    /// Requests that may wait for the model before new ones get `model_busy` (the running
    /// ones do not count).
    pub queue_capacity: usize,
    /// Requests generated at once: one decoding pass computes the next token of each.
    pub max_batch: usize,
    /// Prompt tokens prefilled between two decoding passes while other answers stream, so a
    /// long prompt never stalls them for its whole prefill.
    pub prefill_chunk: usize,
}

/// Embedder settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// Catalog name.
    pub model: String,
    /// An E5S1 file to use instead of the catalog model.
    pub path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            home: models::catalog::leye_home(),
            llm: LlmConfig::default(),
            embedder: EmbedderConfig::default(),
            qdrant: QdrantConfig::default(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            dialogue: Default::default(),
            knowledge: KnowledgeConfig::default(),
            privacy: PrivacyConfig::default(),
            console: ConsoleConfig::default(),
            wechat: WechatConfig::default(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            model: "qwen2.5-coder-0.5b-instruct".into(),
            path: None,
            load: LoadOptions::default(),
            generation: GenerationParams {
                max_tokens: 384,
                ..Default::default()
            },
            queue_capacity: 32,
            max_batch: 8,
            prefill_chunk: 128,
        }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model: "multilingual-e5-small".into(),
            path: None,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The merged settings do not fit the schema (unknown key, wrong type).
    #[error("config: {0}")]
    Parse(String),
    /// Values that parse but break a rule; one line per bad key.
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads the configuration from `file` (or the default places) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let file = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "LEYE_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
                .or_else(|| {
                    let p = PathBuf::from("leye.toml");
                    p.exists().then_some(p)
                })
        });
        let mut table = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("LEYE_") else {
                continue;
            };
            if NOT_KEYS.contains(&k.as_str()) || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, scalar(v))
                .map_err(|e| ConfigError::Parse(format!("{k}: {e}")))?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks rules the types cannot express; reports every bad key at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let catalog = models::catalog::Catalog::bundled()
            .map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        if self.llm.path.is_none() && catalog.get(&self.llm.model).is_err() {
            bad.push(format!(
                "llm.model: unknown model {:?} (see `leye models list`)",
                self.llm.model
            ));
        }
        if let Some(p) = &self.llm.path {
            if !p.is_file() {
                bad.push(format!("llm.path: {} is not a file", p.display()));
            }
        }
        if self.embedder.path.is_none() && catalog.get(&self.embedder.model).is_err() {
            bad.push(format!(
                "embedder.model: unknown model {:?}",
                self.embedder.model
            ));
        }
        if let Some(p) = &self.embedder.path {
            if !p.is_file() {
                bad.push(format!("embedder.path: {} is not a file", p.display()));
            }
        }
        if self.llm.queue_capacity == 0 {
            bad.push("llm.queue_capacity: must be at least 1".into());
        }
        if !(1..=64).contains(&self.llm.max_batch) {
            bad.push("llm.max_batch: must be between 1 and 64".into());
        }
        if self.llm.prefill_chunk < 16 {
            bad.push("llm.prefill_chunk: must be at least 16".into());
        }
        if self.llm.load.max_context < 256 {
            bad.push("llm.load.max_context: must be at least 256".into());
        }
        if self.llm.generation.max_tokens == 0
            || self.llm.generation.max_tokens >= self.llm.load.max_context
        {
            bad.push(
                "llm.generation.max_tokens: must be between 1 and llm.load.max_context".into(),
            );
        }
        if let Err(e) = self.llm.generation.sampling.validate() {
            bad.push(format!("llm.generation.sampling: {e}"));
        }
        if let Some(url) = &self.qdrant.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bad.push(format!(
                    "qdrant.url: {url:?} must start with http:// or https:// (the gRPC port, 6334)"
                ));
            }
        }
        if self.qdrant.timeout_secs == Some(0) {
            bad.push("qdrant.timeout_secs: must be at least 1".into());
        }
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            bad.push(format!(
                "server.bind: {:?} is not an address like 127.0.0.1:8080",
                self.server.bind
            ));
        }
        if self.server.max_body_bytes < 256 {
            bad.push("server.max_body_bytes: must be at least 256".into());
        }
        if self.server.max_message_chars == 0 {
            bad.push("server.max_message_chars: must be at least 1".into());
        }
        for (key, token) in [("server.metrics_token", &self.server.metrics_token)] {
            if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
                bad.push(format!("{key}: use at least 16 characters"));
            }
        }
        let sv = &self.server;
        for (key, v) in [
            (
                "server.header_read_timeout_secs",
                sv.header_read_timeout_secs,
            ),
            ("server.body_read_timeout_secs", sv.body_read_timeout_secs),
            ("server.abandon_grace_secs", sv.abandon_grace_secs),
        ] {
            if v == 0 {
                bad.push(format!("{key}: must be at least 1"));
            }
        }
        self.wechat.check(&mut bad);
        let c = &self.console;
        for (key, v) in [
            ("console.idle_timeout_minutes", c.idle_timeout_minutes),
            ("console.absolute_timeout_hours", c.absolute_timeout_hours),
            ("console.lockout_secs", c.lockout_secs),
        ] {
            if v == 0 {
                bad.push(format!("{key}: must be at least 1"));
            }
        }
        if c.service_days.iter().any(|d| !(1..=7).contains(d)) {
            bad.push("console.service_days: days are 1 (Monday) to 7 (Sunday)".into());
        }
        for h in &c.service_hours {
            if parse_period(h).is_none() {
                bad.push(format!(
                    "console.service_hours: {h:?} is not a period like \"09:00-12:00\""
                ));
            }
        }
        if !(-12..=14).contains(&c.utc_offset_hours) {
            bad.push("console.utc_offset_hours: between -12 and 14".into());
        }
        if c.callback_key
            .as_ref()
            .is_some_and(|k| hex::decode(k.expose().trim()).map(|b| b.len()) != Ok(32))
        {
            bad.push("console.callback_key: use 64 hex digits (32 bytes)".into());
        }
        if c.max_failed_logins < 1 {
            bad.push("console.max_failed_logins: must be at least 1".into());
        }
        if sv.max_connections == 0 {
            bad.push("server.max_connections: must be at least 1".into());
        }
        if sv.max_uri_bytes < 256 {
            bad.push("server.max_uri_bytes: must be at least 256".into());
        }
        if sv.max_header_bytes < 1024 {
            bad.push("server.max_header_bytes: must be at least 1024".into());
        }
        if let Some(url) = &self.database.url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                bad.push("database.url: must start with sqlite: or postgres://".into());
            }
        }
        let d = &self.dialogue;
        if d.evidence_k == 0 || d.evidence_k > 8 {
            bad.push("dialogue.evidence_k: must be between 1 and 8".into());
        }
        if d.passage_chars < 50 {
            bad.push("dialogue.passage_chars: must be at least 50".into());
        }
        if !(0.0..=1.0).contains(&d.min_dense_score) || !(0.0..=1.0).contains(&d.min_term_overlap) {
            bad.push("dialogue.min_dense_score / min_term_overlap: must be within 0..1".into());
        }
        if d.generation.max_tokens == 0 || d.generation.max_tokens >= self.llm.load.max_context {
            bad.push(
                "dialogue.generation.max_tokens: must be between 1 and llm.load.max_context".into(),
            );
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
    }

    /// The database URL: `database.url`, else `DATABASE_URL`, else SQLite under home.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| sqlite_url(&self.home))
    }

    /// Where models are stored: `<home>/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }
}

/// The SQLite URL of the database in a data folder (`<home>/leye.db`, created if missing).
pub fn sqlite_url(home: &Path) -> String {
    format!("sqlite://{}?mode=rwc", home.join("leye.db").display())
}

fn scalar(v: &str) -> toml::Value {
    // Parse as a TOML value when it is one (numbers, booleans, lists like
    // `["10.0.0.0/8"]`); anything else (paths, names) is a string.
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .filter(|x| !x.is_table())
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

/// A working period `HH:MM-HH:MM` as minutes since midnight, start before end.
pub fn parse_period(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('-')?;
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (a, b) = (minutes(a)?, minutes(b)?);
    (a < b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_nested_keys_with_types() {
        let c = Config::load_from(
            None,
            &env(&[
                ("LEYE_LLM__LOAD__MAX_CONTEXT", "4096"),
                ("LEYE_LLM__LOAD__PREFILL", "cached"),
                ("LEYE_HOME", "/ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.llm.load.max_context, 4096);
        assert_eq!(c.llm.load.prefill, models::llm::PrefillWeights::Cached);
    }

    #[test]
    fn file_then_env_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("leye.toml");
        std::fs::write(
            &f,
            "[llm]\nqueue_capacity = 3\n[llm.load]\nrequantize = \"none\"\n",
        )
        .expect("write");
        let c = Config::load_from(Some(&f), &[]).expect("valid");
        assert_eq!(c.llm.queue_capacity, 3);
        assert_eq!(c.llm.load.requantize, None);
        let c =
            Config::load_from(Some(&f), &env(&[("LEYE_LLM__QUEUE_CAPACITY", "9")])).expect("valid");
        assert_eq!(c.llm.queue_capacity, 9);
        let e = Config::load_from(None, &env(&[("LEYE_LLM__QUEUE_CAPACTY", "9")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("queue_capacty"), "the unknown key is named: {e}");
    }

    #[test]
    fn invalid_values_name_every_key() {
        let e = Config::load_from(
            None,
            &env(&[
                ("LEYE_LLM__QUEUE_CAPACITY", "0"),
                ("LEYE_LLM__MAX_BATCH", "0"),
                ("LEYE_LLM__MODEL", "nope"),
                ("LEYE_LLM__PATH", "/no/such.gguf"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("llm.queue_capacity"), "{e}");
        assert!(e.contains("llm.max_batch"), "{e}");
        assert!(e.contains("llm.path"), "{e}");
    }

    #[test]
    fn proxy_ranges_are_checked_when_read() {
        let c = Config::load_from(
            None,
            &env(&[("LEYE_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"::1\"]")]),
        )
        .expect("valid");
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(c.server.trusted_proxies[0].prefix, 8);
        let e = Config::load_from(
            None,
            &env(&[("LEYE_SERVER__TRUSTED_PROXIES", "[\"nginx\"]")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("nginx"), "{e}");
    }
}
