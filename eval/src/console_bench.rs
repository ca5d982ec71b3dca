//! `leye-eval console`: how fast a counselor's reply reaches the citizen, and what open event
//! streams cost. The real service (models, bundled knowledge, SQLite) listens on 127.0.0.1; a
//! counselor signs in and claims a citizen's escalation; `subscribers` event streams stay open
//! (a tenth are console streams, the rest citizens' widgets); then `messages` replies are sent
//! one after another and each is timed from the start of the send to its arrival on the
//! citizen's stream. Memory and CPU are read from `/proc/self` (the server and these clients
//! share the process, so the figures are an upper bound for the server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use assistant::config::Config;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use eval::latency::percentile;

/// Resident memory of this process, MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU time (user + system) this process used so far, seconds (Linux; 0 elsewhere).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A counselor signed in: cookie and CSRF token.
struct Counselor {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Counselor {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("leye_console={}", self.cookie))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {v}");
        Ok(v)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("leye_console={}", self.cookie))
            .send()
            .await?;
        Ok(r.json().await?)
    }
}

/// Opens an event stream and forwards each `data:` line's JSON (with the event name) to `tx`.
async fn stream(
    req: reqwest::RequestBuilder,
    tx: Option<mpsc::UnboundedSender<(String, Value, Instant)>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut resp = req.send().await?;
    anyhow::ensure!(resp.status().is_success(), "stream: {}", resp.status());
    Ok(tokio::spawn(async move {
        let mut buf = String::new();
        let mut name = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(i) = buf.find('\n') {
                let line = buf[..i].to_string();
                buf.drain(..=i);
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    if let (Some(tx), Ok(v)) = (&tx, serde_json::from_str::<Value>(d.trim())) {
                        let _ = tx.send((name.clone(), v, at));
                    }
                }
            }
        }
    }))
}

/// Runs the benchmark.
pub fn run(cfg: &Config, messages: usize, subscribers: usize) -> anyhow::Result<()> {
    let mut cfg = crate::chat_bench::bench_config(cfg, "console-bench")?;
    cfg.server.bind = "127.0.0.1:0".into();
    // Raised for the run: every subscriber holds a connection and came from one address.
    cfg.server.max_connections = (subscribers + 64).max(cfg.server.max_connections);
    cfg.server.ip_per_minute = 0;
    cfg.server.sessions_per_minute = 100_000;
    cfg.server.sessions_burst = 100_000;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let app = assistant::app::Application::build(&cfg, Arc::new(|l: &str| eprintln!("{l}")))
            .await?;
        let db = app.assistant().db().clone();
        let running = app.start(std::future::pending()).await?;
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(subscribers + 16)
            .build()?;

        // A counselor account for this run (a fresh name each run).
        let user = format!("bench-{}", assistant::store::new_id());
        let password = "bench-password-0123456789";
        let hash = assistant::console::accounts::hash_password(password)?;
        db.add_counselor(&user, "压测老师", "counselor", &hash, assistant::store::now_ms())
            .await?
            .ok_or_else(|| anyhow::anyhow!("account name taken"))?;
        let r = client
            .post(format!("{base}/console/api/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await?;
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("leye_console="))
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no sign-in cookie"))?;
        let me: Value = r.json().await?;
        let c = Counselor {
            client: client.clone(),
            base: base.clone(),
            cookie,
            csrf: me["csrf_token"].as_str().unwrap_or_default().to_string(),
        };

        let new_session = || async {
            let v: Value = client
                .post(format!("{base}/api/v1/sessions"))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok((
                v["session_id"].as_str().unwrap_or_default().to_string(),
                v["session_token"].as_str().unwrap_or_default().to_string(),
            ))
        };
        let events = |sid: &str, token: &str| {
            client
                .get(format!("{base}/api/v1/sessions/{sid}/events"))
                .header("x-session-token", token)
        };

        // The measured citizen asks for a person; the counselor claims and waits for the AI
        // summary, so the model is idle while replies are timed.
        let (sid, token) = new_session().await?;
        let h: Value = client
            .post(format!("{base}/api/v1/sessions/{sid}/handoff"))
            .header("x-session-token", &token)
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        let esc = h["ticket_id"].as_str().unwrap_or_default().to_string();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _measured = stream(events(&sid, &token), Some(tx)).await?;
        c.post(&format!("/console/api/escalations/{esc}/claim"), json!({}))
            .await?;
        let t = Instant::now();
        while c.get(&format!("/console/api/escalations/{esc}")).await?["ai_summary"].is_null() {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "no AI summary in 300 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("AI summary made in {:.1} s after the claim", t.elapsed().as_secs_f64());

        // The other subscribers: a tenth console streams, the rest citizens' widgets.
        let rss_before = rss_mib();
        let consoles = subscribers / 10;
        let mut held = Vec::new();
        let t = Instant::now();
        for i in 0..subscribers.saturating_sub(1) {
            let h = if i < consoles {
                stream(
                    client
                        .get(format!("{base}/console/api/events"))
                        .header("cookie", format!("leye_console={}", c.cookie)),
                    None,
                )
                .await?
            } else {
                let (s, k) = new_session().await?;
                stream(events(&s, &k), None).await?
            };
            held.push(h);
        }
        let opened = t.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = rss_mib();
        let cpu0 = cpu_secs();
        tokio::time::sleep(Duration::from_secs(20)).await;
        let idle_cpu = cpu_secs() - cpu0;
        println!(
            "{subscribers} event streams open ({consoles} console, {} widgets) in {:.1} s; RSS {:.0} -> {:.0} MiB (+{:.1} KiB per stream); CPU while idle {:.2} s over 20 s ({:.1} %)",
            subscribers - consoles,
            opened.as_secs_f64(),
            rss_before,
            rss_after,
            (rss_after - rss_before) * 1024.0 / subscribers.max(1) as f64,
            idle_cpu,
            idle_cpu / 20.0 * 100.0,
        );

        // Replies, one after another, each timed to its arrival on the citizen's stream.
        let mut took = Vec::with_capacity(messages);
        let cpu0 = cpu_secs();
        let all = Instant::now();
        for i in 0..messages {
            let text = format!("压测回复 {i}");
            let sent = Instant::now();
            c.post(
                &format!("/console/api/escalations/{esc}/reply"),
                json!({"text": text}),
            )
            .await?;
            let arrived = loop {
                let (name, v, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the citizen's stream ended"))?;
                if name == "counselor_message" && v["text"] == text.as_str() {
                    break at;
                }
            };
            took.push(arrived.duration_since(sent));
        }
        let send_cpu = cpu_secs() - cpu0;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "send -> widget over {messages} replies with {subscribers} streams open: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (aim p95 <= 2000 ms); CPU {:.2} s over {:.1} s",
            ms(percentile(&took, 50.0)),
            ms(percentile(&took, 95.0)),
            ms(percentile(&took, 100.0)),
            send_cpu,
            all.elapsed().as_secs_f64(),
        );
        for h in held {
            h.abort();
        }
        running.shutdown().await?;
        anyhow::Ok(())
    })
}
