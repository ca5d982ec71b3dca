//! The counselor workspace over HTTP, with fake retrieval and a scripted model (no model
//! files) and a clock the tests move: every console route's guard, passwords and lockout,
//! claiming, live replies to the citizen's event stream, messages relayed to the counselor,
//! and the audit log.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};

use assistant::clock::ManualClock;
use assistant::console::Role;
use assistant::http::console::ROUTES;
use assistant::store::Db;
use reqwest::Method;
use serde_json::{json, Value};
use tests::console::{add_account, status_json, Console};
use tests::fakes::{assistant, FakeKb, FakeModel};
use tests::wait_for;

const PASSWORD: &str = "a-long-test-password";

struct Server {
    base: String,
    db: Db,
    clock: Arc<ManualClock>,
    model: Arc<FakeModel>,
    rt: tokio::runtime::Runtime,
    _home: tempfile::TempDir,
}

fn kb() -> Arc<FakeKb> {
    Arc::new(FakeKb {
        passages: vec![FakeKb::passage(
            "山东省就业补贴办法",
            "第五条",
            "对离校2年内未就业的高校毕业生，给予一次性求职创业补贴，标准为每人2000元。",
        )],
        dense: 0.9,
        ..FakeKb::default()
    })
}

/// The service over the fakes with a manual clock, and the accounts c1, c2 (counselors), s1
/// (supervisor) and a1 (admin).
fn serve() -> Server {
    let home = tempfile::tempdir().expect("tempdir");
    let rt = tests::fakes::server_runtime();
    let cfg = tests::fakes::server_config(home.path());
    let clock = ManualClock::at(assistant::store::now_ms());
    let model = Arc::new(FakeModel::default());
    let (running, db) = rt.block_on(async {
        let a = assistant(kb(), model.clone(), home.path()).await;
        let db = a.db().clone();
        for (u, n, r) in [
            ("c1", "张老师", Role::Counselor),
            ("c2", "李老师", Role::Counselor),
            ("s1", "王主管", Role::Supervisor),
            ("a1", "管理员", Role::Admin),
        ] {
            add_account(&db, u, n, r, PASSWORD).await;
        }
        let running = assistant::app::Application::from_parts(cfg, a)
            .with_clock(clock.clone())
            .start(std::future::pending())
            .await
            .expect("start");
        (running, db)
    });
    let base = format!("http://{}", running.addr);
    // The server runs as long as the runtime does.
    std::mem::forget(running);
    Server {
        base,
        db,
        clock,
        model,
        rt,
        _home: home,
    }
}

impl Server {
    fn login(&self, user: &str) -> Console {
        Console::login(&self.base, user, PASSWORD).expect("sign in")
    }

    /// A citizen session that asked for a person: (session id, token, escalation id).
    fn escalated_citizen(&self) -> (String, String, String) {
        let v: Value = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/chat", self.base))
            .json(&json!({"message": "我要转人工"}))
            .send()
            .expect("chat")
            .json()
            .expect("json");
        (
            v["session_id"].as_str().expect("sid").to_string(),
            v["session_token"].as_str().expect("token").to_string(),
            v["handoff"]["ticket_id"]
                .as_str()
                .expect("ticket")
                .to_string(),
        )
    }

    fn citizen_says(&self, sid: &str, token: &str, text: &str) -> Value {
        reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/chat", self.base))
            .header("x-session-token", token)
            .json(&json!({"session_id": sid, "message": text}))
            .send()
            .expect("chat")
            .json()
            .expect("json")
    }

    /// A new session's first message: (session id, token).
    fn citizen_says_new(&self, text: &str) -> (String, String) {
        let v: Value = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/chat", self.base))
            .json(&json!({"message": text}))
            .send()
            .expect("chat")
            .json()
            .expect("json");
        (
            v["session_id"].as_str().expect("sid").to_string(),
            v["session_token"].as_str().expect("token").to_string(),
        )
    }

    fn audit_actions(&self) -> Vec<(String, String, String)> {
        let db = self.db.clone();
        self.rt
            .block_on(async move {
                db.audit_entries(&assistant::store::AuditFilter {
                    limit: 1000,
                    ..Default::default()
                })
                .await
            })
            .expect("audit")
            .into_iter()
            .map(|a| (a.username, a.action, a.target))
            .collect()
    }
}

fn path_for(template: &str, id: &str) -> String {
    template.replace("{id}", id)
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("method")
}

/// Calls a route without reading a streaming body to its end.
fn call(c: Option<&Console>, base: &str, m: &str, path: &str, csrf: bool) -> (u16, Value) {
    let req = match c {
        Some(c) => c.request(method(m), path, csrf),
        None => tests::service::client().request(method(m), format!("{base}{path}")),
    };
    let req = if m == "POST" {
        req.json(&json!({}))
    } else {
        req
    };
    let r = req.send().expect("request");
    if r.headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        return (r.status().as_u16(), json!({"stream": true}));
    }
    status_json(r)
}

#[test]
fn every_console_route_refuses_strangers_wrong_roles_missing_csrf_and_expired_sign_ins() {
    let s = serve();
    let (_, _, esc) = s.escalated_citizen();
    let counselor = s.login("c1");
    let supervisor = s.login("s1");
    let admin = s.login("a1");
    let forged = Console {
        cookie: "f".repeat(64),
        ..counselor.clone()
    };
    for r in ROUTES {
        let p = path_for(r.path, &esc);
        let (st, v) = call(None, &s.base, r.method, &p, false);
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{} {p}: {v}",
            r.method
        );
        let (st, v) = call(Some(&forged), &s.base, r.method, &p, true);
        assert_eq!(st, 401, "forged cookie on {} {p}: {v}", r.method);
        if r.method == "POST" {
            let (st, v) = call(Some(&admin), &s.base, r.method, &p, false);
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                (403, Some("csrf_failed")),
                "{p}: {v}"
            );
            let wrong = Console {
                csrf: "0".repeat(32),
                ..admin.clone()
            };
            let (st, _) = call(Some(&wrong), &s.base, r.method, &p, true);
            assert_eq!(st, 403, "a wrong CSRF token on {p}");
        }
        for (who, role) in [
            (&counselor, Role::Counselor),
            (&supervisor, Role::Supervisor),
        ] {
            if !role.allows(r.role) {
                let (st, v) = call(Some(who), &s.base, r.method, &p, true);
                assert_eq!(
                    (st, v["error"]["code"].as_str()),
                    (403, Some("forbidden")),
                    "{role:?} on {p}: {v}"
                );
            }
        }
    }
    // The admin may call the admin routes.
    let (st, v) = admin.get("/console/api/audit");
    assert_eq!(st, 200, "{v}");

    // Idle expiry: a sign-in unused for 31 minutes is refused on every route, and deleted
    // when found so (the next call finds no sign-in at all).
    for r in ROUTES {
        let p = path_for(r.path, &esc);
        let idle = s.login("a1");
        s.clock.advance(31 * 60_000);
        let (st, v) = call(Some(&idle), &s.base, r.method, &p, true);
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (401, Some("session_expired")),
            "{} {p}: {v}",
            r.method
        );
        let (st, v) = call(Some(&idle), &s.base, r.method, &p, true);
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{p}: {v}"
        );
    }
    // The page refreshing itself (marked as background) keeps nobody signed in: 20 minutes
    // after the last action plus 15 more of background refreshes, the sign-in has expired.
    let left_open = s.login("c1");
    s.clock.advance(20 * 60_000);
    let (st, _) = status_json(
        left_open
            .request(Method::GET, "/console/api/queue", false)
            .header("x-leye-background", "1")
            .send()
            .expect("refresh"),
    );
    assert_eq!(st, 200);
    s.clock.advance(15 * 60_000);
    let (st, v) = left_open.get("/console/api/me");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("session_expired")),
        "{v}"
    );
    // A person's action does restart the idle time.
    let active_one = s.login("c1");
    s.clock.advance(20 * 60_000);
    assert_eq!(active_one.get("/console/api/queue").0, 200);
    s.clock.advance(15 * 60_000);
    assert_eq!(active_one.get("/console/api/me").0, 200);

    // Absolute expiry: active every 20 minutes, the sign-in still ends after 12 hours.
    let active = s.login("c2");
    let mut ended_after = None;
    for step in 1..=40 {
        s.clock.advance(20 * 60_000);
        let (st, v) = active.get("/console/api/me");
        if st == 401 {
            assert_eq!(v["error"]["code"], "session_expired", "{v}");
            ended_after = Some(step * 20);
            break;
        }
    }
    let minutes = ended_after.expect("the sign-in ended");
    assert!(
        (12 * 60..=12 * 60 + 20).contains(&minutes),
        "ended after {minutes} minutes"
    );
}

#[test]
fn passwords_wrong_unknown_disabled_and_lockout() {
    let s = serve();
    let (st, wrong) = status_json(
        tests::service::client()
            .post(format!("{}/console/api/login", s.base))
            .json(&json!({"username": "c1", "password": "not the password"}))
            .send()
            .expect("login"),
    );
    assert_eq!(st, 401);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
    let (st, unknown) = match Console::login(&s.base, "nobody\u{1b}[31m", PASSWORD) {
        Err(e) => e,
        Ok(_) => panic!("an unknown name signed in"),
    };
    assert_eq!(st, 401);
    assert_eq!(
        unknown, wrong,
        "an unknown name is answered like a wrong password"
    );

    // Disabled: the right password is refused and an open sign-in ends.
    let open = s.login("c2");
    let db = s.db.clone();
    let now = assistant::clock::Clock::now_ms(s.clock.as_ref());
    assert!(s
        .rt
        .block_on(async move { db.set_counselor_disabled("c2", true, now).await })
        .expect("disable"));
    let (st, v) = Console::login(&s.base, "c2", PASSWORD).expect_err("disabled");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("account_disabled")),
        "{v}"
    );
    let (st, _) = open.get("/console/api/me");
    assert_eq!(st, 401, "a disabled account's sign-in ends");

    // Lockout: five failures in a row (the wrong password above and four more) lock the
    // account, even against the right password.
    for _ in 0..4 {
        let (st, _) = Console::login(&s.base, "c1", "wrong-password-x").expect_err("wrong");
        assert_eq!(st, 401);
    }
    let r = tests::service::client()
        .post(format!("{}/console/api/login", s.base))
        .json(&json!({"username": "c1", "password": PASSWORD}))
        .send()
        .expect("login");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    let (st, v) = status_json(r);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("account_locked")),
        "{v}"
    );
    assert!((290..=300).contains(&retry), "{retry}");
    // After the lockout the right password works; one more failure after five doubles it.
    s.clock.advance(301_000);
    let (st, _) = Console::login(&s.base, "c1", "wrong-password-y").expect_err("wrong");
    assert_eq!(st, 401);
    let (st, v) = Console::login(&s.base, "c1", PASSWORD).expect_err("locked again");
    assert_eq!(st, 429, "{v}");
    s.clock.advance(601_000);
    assert!(
        Console::login(&s.base, "c1", PASSWORD).is_ok(),
        "the doubled lockout ended"
    );
    // A success clears the count: one failure does not lock.
    let _ = Console::login(&s.base, "c1", "wrong-password-z");
    assert!(Console::login(&s.base, "c1", PASSWORD).is_ok());

    let actions = s.audit_actions();
    let failed = actions.iter().filter(|a| a.1 == "login_failed").count();
    assert!(failed >= 10, "{actions:?}");
    assert!(actions.iter().any(|a| a.1 == "login" && a.0 == "c1"));
    assert!(
        actions.iter().all(|a| !a.0.contains('\u{1b}')),
        "client strings are escaped in the audit log"
    );
}

/// Reads a citizen's event stream in a thread: (id, name, data) as they come.
fn listen(base: &str, sid: &str, token: &str, after: i64) -> Arc<Mutex<Vec<(i64, String, Value)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = got.clone();
    let r = tests::service::client()
        .get(format!("{base}/api/v1/sessions/{sid}/events"))
        .header("x-session-token", token)
        .header("last-event-id", after.to_string())
        .send()
        .expect("events");
    assert_eq!(r.status(), 200);
    std::thread::spawn(move || {
        let (mut id, mut name) = (0i64, String::new());
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                let data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, name.clone(), data));
            }
        }
    });
    got
}

#[test]
fn a_claimed_conversation_reaches_the_citizen_live_and_their_replies_reach_the_counselor_not_the_model(
) {
    let s = serve();
    let (sid, token, esc) = s.escalated_citizen();
    let events = listen(&s.base, &sid, &token, 0);
    let c = s.login("c1");
    let (st, q) = c.get("/console/api/queue");
    assert_eq!(st, 200);
    assert!(
        q["queue"]
            .as_array()
            .expect("queue")
            .iter()
            .any(|i| i["id"] == esc.as_str()),
        "{q}"
    );

    let (st, v) = c.post(&format!("/console/api/escalations/{esc}/claim"), json!({}));
    assert_eq!(st, 200, "{v}");
    // The AI summary is made from the transcript by the model, and stored.
    let summary = wait_for("the AI summary", || {
        let (_, v) = c.get(&format!("/console/api/escalations/{esc}"));
        (!v["ai_summary"].is_null()).then(|| v["ai_summary"].clone())
    });
    assert_eq!(summary["label"], "AI生成摘要，仅供参考", "{summary}");
    let summary_prompt = format!(
        "{:?}",
        s.model
            .requests
            .lock()
            .expect("requests")
            .last()
            .expect("a request")
            .messages
    );
    assert!(
        summary_prompt.contains("市民：我要转人工"),
        "{summary_prompt}"
    );

    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/reply"),
        json!({"text": "您好，我是张老师。请问您在哪个城市？有事可打13812345678"}),
    );
    assert_eq!(st, 200, "{v}");
    let got = wait_for("the counselor's reply on the citizen's stream", || {
        let e = events.lock().expect("events").clone();
        e.iter().any(|x| x.1 == "counselor_message").then_some(e)
    });
    let names: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["counselor_joined", "status", "counselor_message"],
        "{got:?}"
    );
    assert_eq!(
        got.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=got.len() as i64).collect::<Vec<_>>()
    );
    let msg = &got[2].2;
    assert_eq!(msg["name"], "张老师");
    let text = msg["text"].as_str().expect("text");
    assert!(
        text.starts_with("您好，我是张老师") && !text.contains("13812345678"),
        "masked: {text}"
    );
    assert!(
        got[0].2["text"]
            .as_str()
            .expect("joined")
            .contains("张老师"),
        "{got:?}"
    );

    // The citizen answers: it goes to the counselor, the model is not asked.
    let calls = s.model.calls();
    let v = s.citizen_says(&sid, &token, "我在济南，想问失业保险");
    assert_eq!(v["answer"], "", "{v}");
    assert_eq!(v["intent"], "handoff", "{v}");
    assert_eq!(s.model.calls(), calls, "the model was not asked");
    let (_, view) = c.get(&format!("/console/api/escalations/{esc}"));
    let roles: Vec<(&str, &str)> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or(""),
                m["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        roles.contains(&("user", "我在济南，想问失业保险")),
        "{roles:?}"
    );
    assert!(
        roles
            .iter()
            .any(|(r, t)| *r == "counselor" && t.starts_with("您好")),
        "{roles:?}"
    );

    // A reconnect after event 1 gets the later ones exactly once.
    let resumed = listen(&s.base, &sid, &token, 1);
    let again = wait_for("the resumed stream", || {
        let e = resumed.lock().expect("events").clone();
        (e.len() >= got.len() - 1).then_some(e)
    });
    assert_eq!(
        again.iter().map(|e| e.0).collect::<Vec<_>>(),
        (2..=got.len() as i64).collect::<Vec<_>>()
    );

    // Someone else's conversation: another counselor cannot read or act on it; a supervisor can.
    let other = s.login("c2");
    let (st, _) = other.get(&format!("/console/api/escalations/{esc}"));
    assert_eq!(st, 403);
    let (st, _) = other.post(
        &format!("/console/api/escalations/{esc}/reply"),
        json!({"text": "x"}),
    );
    assert_eq!(st, 403);
    let (st, _) = s
        .login("s1")
        .get(&format!("/console/api/escalations/{esc}"));
    assert_eq!(st, 200);

    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/notes"),
        json!({"text": "市民在济南，需失业保险金材料"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/resolve"),
        json!({"outcome": "guessed"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/resolve"),
        json!({"outcome": "answered"}),
    );
    assert_eq!(st, 200, "{v}");
    wait_for("the resolved status", || {
        events
            .lock()
            .expect("events")
            .iter()
            .any(|e| e.1 == "status" && e.2["status"] == "resolved")
            .then_some(())
    });
    // Back with the assistant: the next message is answered from the sources again (the
    // evidence sentence that answers it, with its citation; the model has nothing to add).
    let v = s.citizen_says(&sid, &token, "高校毕业生求职创业补贴标准是多少？");
    assert_eq!(v["intent"], "policy", "{v}");
    assert!(
        v["answer"].as_str().unwrap_or("").contains("每人2000元"),
        "{v}"
    );
    assert_eq!(v["citations"][0]["section"], "第五条", "{v}");

    let actions = s.audit_actions();
    for a in ["claim", "open_transcript", "reply", "note", "resolve"] {
        assert!(
            actions
                .iter()
                .any(|x| x.0 == "c1" && x.1 == a && x.2 == esc),
            "audit lacks {a}: {actions:?}"
        );
    }
    assert!(actions
        .iter()
        .any(|x| x.0 == "s1" && x.1 == "open_transcript"));
}

#[test]
fn two_counselors_claiming_at_once_one_wins_and_the_other_is_told_who() {
    let s = serve();
    let a = s.login("c1");
    let b = s.login("c2");
    for _ in 0..10 {
        let (_, _, esc) = s.escalated_citizen();
        let path = format!("/console/api/escalations/{esc}/claim");
        let (pa, pb) = (path.clone(), path);
        let (ca, cb) = (a.clone(), b.clone());
        let ta = std::thread::spawn(move || ca.post(&pa, json!({})));
        let tb = std::thread::spawn(move || cb.post(&pb, json!({})));
        let ra = ta.join().expect("a");
        let rb = tb.join().expect("b");
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{ra:?} {rb:?}");
        let lost = if ra.0 == 409 { &ra.1 } else { &rb.1 };
        let winner = if ra.0 == 200 {
            "张老师"
        } else {
            "李老师"
        };
        assert_eq!(lost["error"]["code"], "already_claimed");
        assert!(
            lost["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(winner),
            "{lost}"
        );
    }
}

#[test]
fn transfer_hand_back_and_tags() {
    let s = serve();
    let (sid, token, esc) = s.escalated_citizen();
    let c = s.login("c1");
    assert_eq!(
        c.post(&format!("/console/api/escalations/{esc}/claim"), json!({}))
            .0,
        200
    );
    let (_, list) = c.get("/console/api/counselors");
    let to = list["counselors"]
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["display_name"] == "李老师")
        .and_then(|x| x["id"].as_str())
        .expect("c2")
        .to_string();
    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/tags"),
        json!({"tags": ["失业保险", "济南", "失业保险"]}),
    );
    assert_eq!((st, v["tags"].clone()), (200, json!(["失业保险", "济南"])));
    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/transfer"),
        json!({"counselor_id": to}),
    );
    assert_eq!(st, 200, "{v}");
    // Now c2 holds it: c1 can no longer reply, c2 can and the citizen sees the new name.
    assert_eq!(
        c.post(
            &format!("/console/api/escalations/{esc}/reply"),
            json!({"text": "x"})
        )
        .0,
        403
    );
    let c2 = s.login("c2");
    assert_eq!(
        c2.post(
            &format!("/console/api/escalations/{esc}/reply"),
            json!({"text": "我是李老师"})
        )
        .0,
        200
    );
    let events = listen(&s.base, &sid, &token, 0);
    wait_for("the transfer on the citizen's stream", || {
        let e = events.lock().expect("events").clone();
        (e.iter().filter(|x| x.1 == "counselor_joined").count() == 2
            && e.iter()
                .any(|x| x.1 == "counselor_message" && x.2["name"] == "李老师"))
        .then_some(())
    });
    let (st, v) = c2.post(&format!("/console/api/escalations/{esc}/return"), json!({}));
    assert_eq!(st, 200, "{v}");
    let (st, v) = c2.post(&format!("/console/api/escalations/{esc}/return"), json!({}));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("already_closed")),
        "{v}"
    );
    let actions = s.audit_actions();
    assert!(actions.iter().any(|x| x.1 == "transfer" && x.0 == "c1"));
    assert!(actions.iter().any(|x| x.1 == "return" && x.0 == "c2"));
}

/// 2026-11-25 (a Wednesday) at `hour`:00 in China Standard Time, as Unix ms.
fn wednesday_at(hour: i64) -> i64 {
    let utc_midnight = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
        .expect("date")
        .and_hms_opt(0, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_millis();
    utc_midnight + (hour - 8) * 3_600_000
}

#[test]
fn outside_service_hours_a_citizen_leaves_a_sealed_callback_and_a_crisis_raises_an_alert() {
    let s = serve();
    // In service hours with a counselor signed in: no callback offer.
    s.clock.set(wednesday_at(10));
    let c1 = s.login("c1");
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/chat", s.base))
        .json(&json!({"message": "我要转人工"}))
        .send()
        .expect("chat")
        .json()
        .expect("json");
    assert_eq!(v["handoff"]["status"], "waiting", "{v}");
    assert!(v["handoff"].get("callback").is_none(), "staffed: {v}");
    assert!(
        !v["answer"].as_str().unwrap_or("").contains("回电号码"),
        "{v}"
    );
    drop(c1);

    // 20:00: outside service hours. The reply offers a callback.
    s.clock.set(wednesday_at(20));
    let (sid, token, esc) = s.escalated_citizen();
    let transcript: Value = tests::service::client()
        .get(format!("{}/api/v1/sessions/{sid}", s.base))
        .header("x-session-token", &token)
        .send()
        .expect("transcript")
        .json()
        .expect("json");
    let last = transcript["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        last["text"]
            .as_str()
            .unwrap_or("")
            .contains("留下留言和回电号码"),
        "{last}"
    );
    let post = |sid: &str, token: &str, body: Value| {
        status_json(
            tests::service::client()
                .post(format!("{}/api/v1/sessions/{sid}/callback", s.base))
                .header("x-session-token", token)
                .json(&body)
                .send()
                .expect("callback"),
        )
    };
    let (st, v) = post(&sid, &token, json!({"phone": "12345"}));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    let (st, v) = post(
        &sid,
        &token,
        json!({"phone": "+86 138 1234 5678", "message": "请下午回电，我的身份证号370102199001011234"}),
    );
    assert_eq!(st, 200, "{v}");
    // Stored sealed: the number is nowhere in the database's text, the ID number is masked.
    let db = s.db.clone();
    let e = esc.clone();
    let (texts, sealed) = s.rt.block_on(async move {
        let texts = db.all_texts().await.expect("texts");
        let sealed = db.callbacks(&e).await.expect("callbacks");
        (texts, sealed)
    });
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].phone_sealed.contains("13812345678"));
    assert!(
        texts
            .iter()
            .all(|t| !t.contains("13812345678") && !t.contains("370102199001011234")),
        "{texts:?}"
    );
    // A session without an open escalation cannot leave one.
    let other = s.citizen_says_new("你好");
    let (st, v) = post(&other.0, &other.1, json!({"phone": "13812345678"}));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("no_open_handoff")),
        "{v}"
    );

    // Only the counselor who takes it reads the number; each reading is audited.
    let c1 = s.login("c1");
    let (_, q) = c1.get("/console/api/queue");
    assert!(
        q["queue"]
            .as_array()
            .expect("q")
            .iter()
            .any(|i| i["id"] == esc.as_str() && i["callback"] == true),
        "{q}"
    );
    let reveal = format!("/console/api/escalations/{esc}/callback");
    assert_eq!(c1.post(&reveal, json!({})).0, 403, "not before claiming");
    assert_eq!(
        c1.post(&format!("/console/api/escalations/{esc}/claim"), json!({}))
            .0,
        200
    );
    let (st, v) = c1.post(&reveal, json!({}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["callbacks"][0]["phone"], "13812345678", "{v}");
    assert_eq!(
        s.login("s1").post(&reveal, json!({})).0,
        403,
        "not even a supervisor"
    );
    assert!(s
        .audit_actions()
        .iter()
        .any(|a| a.0 == "c1" && a.1 == "reveal" && a.2 == esc));

    // A crisis outside service hours: hotlines at once, an alert for the console and metrics.
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/chat", s.base))
        .json(&json!({"message": "找不到工作，我不想活了"}))
        .send()
        .expect("chat")
        .json()
        .expect("json");
    assert_eq!(v["handoff"]["reason"], "crisis", "{v}");
    assert!(v["answer"].as_str().unwrap_or("").contains("12356"), "{v}");
    let crisis = v["handoff"]["ticket_id"]
        .as_str()
        .expect("ticket")
        .to_string();
    let (_, a) = c1.get("/console/api/alerts");
    let alert = a["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|x| x["escalation_id"] == crisis.as_str())
        .cloned()
        .expect("an alert for the crisis");
    let metrics = tests::service::client()
        .get(format!("{}/metrics", s.base))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(metrics.contains("leye_crisis_alerts_total 1"), "{metrics}");
    let (st, _) = c1.post(
        &format!(
            "/console/api/alerts/{}/ack",
            alert["id"].as_str().expect("id")
        ),
        json!({}),
    );
    assert_eq!(st, 200);
    let (_, a) = c1.get("/console/api/alerts");
    assert_eq!(a["alerts"], json!([]));
    assert!(s.audit_actions().iter().any(|x| x.1 == "ack_alert"));
}

#[test]
fn the_dashboard_counts_each_day_and_exports_csv_without_personal_data() {
    let s = serve();
    let (_, _, esc) = s.escalated_citizen();
    let (sid, token) = s.citizen_says_new("请问，夜市摆摊需要办什么执照吗？");
    let _ = s.citizen_says(&sid, &token, "请问，夜市摆摊需要办什么执照吗？");
    let c = s.login("c1");
    assert_eq!(
        c.post(&format!("/console/api/escalations/{esc}/claim"), json!({}))
            .0,
        200
    );
    assert_eq!(
        c.post(
            &format!("/console/api/escalations/{esc}/resolve"),
            json!({"outcome": "referred"})
        )
        .0,
        200
    );
    let sup = s.login("s1");
    let (st, d) = sup.get("/console/api/stats?days=7");
    assert_eq!(st, 200, "{d}");
    let days = d["days"].as_array().expect("days");
    let sum = |f: &dyn Fn(&Value) -> i64| days.iter().map(f).sum::<i64>();
    assert!(
        sum(&|x| x["conversations"].as_i64().unwrap_or(0)) >= 2,
        "{d}"
    );
    assert_eq!(
        sum(&|x| x["handoffs"]["explicit"].as_i64().unwrap_or(0)),
        1,
        "{d}"
    );
    assert_eq!(sum(&|x| x["claimed"].as_i64().unwrap_or(0)), 1, "{d}");
    assert_eq!(
        sum(&|x| x["outcomes"]["referred"].as_i64().unwrap_or(0)),
        1,
        "{d}"
    );
    assert!(days.iter().any(|x| x["wait_p50_secs"].is_i64()), "{d}");
    assert_eq!(
        d["unanswered"][0]["question"], "夜市摆摊需要办什么执照",
        "{d}"
    );
    assert_eq!(d["unanswered"][0]["count"], 2, "grouped: {d}");
    let (st, v) = sup.get("/console/api/stats?days=abc");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let r = sup
        .request(Method::GET, "/console/api/stats.csv?days=7", false)
        .send()
        .expect("csv");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/csv"));
    let csv = r.text().expect("text");
    assert!(csv.starts_with("day,metric,key,value\n"), "{csv}");
    assert!(csv.contains(",handoff,explicit,1\n"), "{csv}");
    assert!(!csv.contains(&sid), "no session ids in the export");
    assert!(s
        .audit_actions()
        .iter()
        .any(|a| a.0 == "s1" && a.1 == "export"));
}

#[test]
fn the_queue_pins_crises_highlights_long_waits_and_retention_keeps_audit_and_aggregates() {
    let s = serve();
    let (sid, token, explicit) = s.escalated_citizen();
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/chat", s.base))
        .json(&json!({"message": "我真的撑不下去了，不想活了"}))
        .send()
        .expect("chat")
        .json()
        .expect("json");
    let crisis = v["handoff"]["ticket_id"]
        .as_str()
        .expect("crisis ticket")
        .to_string();
    let c = s.login("c1");
    let (_, q) = c.get("/console/api/queue");
    let ids: Vec<&str> = q["queue"]
        .as_array()
        .expect("q")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [crisis.as_str(), explicit.as_str()],
        "crisis first although it came later"
    );
    assert!(
        q["queue"]
            .as_array()
            .expect("q")
            .iter()
            .all(|i| i["over_sla"] == false),
        "{q}"
    );
    s.clock.advance(11 * 60_000);
    let (_, q) = c.get("/console/api/queue");
    assert!(
        q["queue"]
            .as_array()
            .expect("q")
            .iter()
            .all(|i| i["over_sla"] == true),
        "past the 10-minute SLA: {q}"
    );
    assert_eq!(
        c.post(
            &format!("/console/api/escalations/{explicit}/claim"),
            json!({})
        )
        .0,
        200
    );
    assert_eq!(
        c.post(
            &format!("/console/api/escalations/{explicit}/notes"),
            json!({"text": "备注"})
        )
        .0,
        200
    );

    // Retention by the same clock: 181 days later the conversation, its notes and events are
    // gone; the audit log and the daily aggregates stay.
    let db = s.db.clone();
    let clock = s.clock.clone();
    clock.advance(181 * 86_400_000);
    let (purged, audit, stats, session) = s.rt.block_on(async move {
        let ws = assistant::console::Workspace::new(
            db.clone(),
            Arc::new(assistant::bus::LocalBus::default()),
            clock,
            assistant::config::ConsoleConfig::default(),
            assistant::console::Sealer::from_key(&[7; 32]),
        );
        let purged = ws.purge_expired(180).await.expect("purge");
        let audit = db
            .audit_entries(&assistant::store::AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("audit");
        let stats = db.stats_since("2000-01-01").await.expect("stats");
        let sid = assistant::domain::SessionId::parse(&sid).expect("sid");
        let session = db.session(&sid).await.expect("session");
        (purged, audit, stats, session)
    });
    assert!(purged >= 2, "{purged}");
    assert!(session.is_none(), "the conversation is gone");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "note" && a.target == explicit),
        "audit rows stay"
    );
    assert!(
        stats
            .iter()
            .any(|r| r.metric == "handoff" && r.key == "crisis"),
        "aggregates stay"
    );
    let (st, _) = status_json(
        tests::service::client()
            .get(format!("{}/api/v1/sessions/{}", s.base, "0".repeat(32)))
            .header("x-session-token", &token)
            .send()
            .expect("gone"),
    );
    assert_eq!(st, 404);
}
