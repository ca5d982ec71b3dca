//! Trust, over HTTP on 127.0.0.1:0 with the real model: conversations belong to their
//! citizen, PII is masked however it is typed, input hygiene, turns that survive their
//! connection, races, and transport limits. Deadlines are generous; nothing asserts a
//! wall-clock time.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tests::service::{client, service, Citizen};

fn base() -> &'static str {
    &service().base
}

fn code(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().expect("a JSON error body");
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

/// Reads server-sent events: (id, name, data) until the stream ends or `stop` says so.
fn read_events(
    r: impl Read,
    mut stop: impl FnMut(&(Option<u64>, String, Value)) -> bool,
) -> Vec<(Option<u64>, String, Value)> {
    let mut out = Vec::new();
    let (mut id, mut name, mut data) = (None, String::new(), String::new());
    for line in BufReader::new(r).lines() {
        let Ok(line) = line else { break };
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            let ev = (
                id.take(),
                std::mem::take(&mut name),
                serde_json::from_str(&std::mem::take(&mut data)).expect("event json"),
            );
            let done = stop(&ev);
            out.push(ev);
            if done {
                break;
            }
        }
    }
    out
}

#[test]
fn another_client_cannot_touch_a_session_without_its_token() {
    let owner = Citizen::new(base());
    let v = owner.chat("你好");
    let turn = v["turn_id"].as_str().expect("turn").to_string();
    let stranger = Citizen::new(base());
    let unknown = Citizen {
        id: "0123456789abcdef0123456789abcdef".into(),
        ..stranger.clone()
    };
    let as_stranger = Citizen {
        token: stranger.token.clone(),
        ..owner.clone()
    };
    let no_token = |method: Method, path: &str| {
        client().request(
            method,
            format!("{}/api/v1/sessions/{}{path}", base(), owner.id),
        )
    };
    // Every call on the session: wrong token, no token, and an unknown id all look alike.
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, String::new(), None),
        (
            Method::POST,
            "/feedback".into(),
            Some(json!({"turn_id": turn, "rating": "down"})),
        ),
        (
            Method::POST,
            "/handoff".into(),
            Some(json!({"note": "冒充"})),
        ),
        (Method::GET, format!("/turns/{turn}/events"), None),
        (Method::DELETE, String::new(), None),
    ];
    for (method, path, body) in &calls {
        for (who, req) in [
            ("wrong token", as_stranger.request(method.clone(), path)),
            ("no token", no_token(method.clone(), path)),
            ("unknown id", unknown.request(method.clone(), path)),
        ] {
            let req = match body {
                Some(b) => req.json(b),
                None => req,
            };
            let got = code(req.send().expect("request"));
            assert_eq!(
                got,
                (404, "session_not_found".into()),
                "{who}: {method} {path}"
            );
        }
    }
    // Creating a session takes no fields: a body that tries to choose one is refused.
    for body in [
        json!({"session_id": owner.id}),
        json!({"channel": "wechat_mp"}),
    ] {
        let r = client()
            .post(format!("{}/api/v1/sessions", base()))
            .json(&body)
            .send()
            .expect("request");
        assert_eq!(code(r), (422, "invalid_request".into()), "{body}");
    }
    let r = client()
        .post(format!("{}/api/v1/sessions", base()))
        .json(&json!({}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 201);
    // Posting into the session with another token is refused the same way.
    let r = client()
        .post(format!("{}/api/v1/chat", base()))
        .header("x-session-token", &stranger.token)
        .json(&json!({"session_id": owner.id, "message": "你好"}))
        .send()
        .expect("request");
    assert_eq!(code(r), (404, "session_not_found".into()));
    // Nothing of that reached the session; the unknown id was not created by the handoff.
    let msgs = service().messages(&owner.id);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(service().session_row(&unknown.id).is_none());
    assert!(!service().waiting().iter().any(|e| e.session_id == owner.id));
    // The owner reads it, then deletes it; afterwards it is gone for everybody.
    let t: Value = owner
        .request(Method::GET, "")
        .send()
        .expect("r")
        .json()
        .expect("j");
    assert_eq!(t["messages"].as_array().map(Vec::len), Some(2), "{t}");
    let r = owner.request(Method::DELETE, "").send().expect("r");
    assert_eq!(r.status(), 200);
    assert_eq!(
        code(owner.request(Method::GET, "").send().expect("r")).0,
        404
    );
    assert!(service().session_row(&owner.id).is_none());
    assert!(service().stored_texts().iter().all(|t| !t.contains("冒充")));
}

/// Every PII form of the issue, as a citizen might type it, and the raw digits a leak would
/// show.
const PII: &[(&str, &str)] = &[
    ("身份证370102199003071234", "370102199003071234"),
    ("身份证37010219900307123x", "37010219900307123"),
    ("身份证 370102 1990 0307 1234", "0307 1234"),
    ("老身份证370102900307123", "370102900307123"),
    (
        "身份证３７０１０２１９９００３０７１２３４",
        "３７０１０２１９９",
    ),
    ("手机13812345678", "13812345678"),
    ("手机+86 138-1234-5678", "1234-5678"),
    ("手机138\u{3000}1234\u{3000}5678", "1234\u{3000}5678"),
    ("手机138\u{200b}1234\u{200b}5678", "1234\u{200b}5678"),
    ("手机１３８１２３４５６７８", "１３８１２３４"),
    ("手机138.1234.5678", "1234.5678"),
    ("银行卡6222 0212 3456 7890 123", "3456 7890"),
    ("银行卡6222021234567890123", "6222021234567890123"),
    ("号码1381234567837010219900307123", "1381234567837010"),
    ("邮箱zhang.san@example.com", "zhang.san@example.com"),
    ("座机0531-88886666", "88886666"),
    ("我叫张三丰，", "张三丰"),
];

/// What the verifier needs and must survive masking unchanged.
const KEEP: &[&str] = &[
    "2024年至2028年",
    "5000-8000元",
    "鲁人社发〔2025〕9号",
    "第十二条",
    "第12条",
    "12.5%",
    "12333",
];

#[test]
fn every_pii_form_is_masked_in_the_database_the_transcript_and_the_logs() {
    let me = Citizen::new(base());
    let all: String = PII.iter().map(|(typed, _)| format!("{typed}，")).collect();
    // The message itself, a feedback comment and a handoff note all carry every form.
    let v = me.chat(&format!("请帮我登记：{all}谢谢"));
    let r = me
        .request(Method::POST, "/feedback")
        .json(&json!({"turn_id": v["turn_id"], "rating": "down", "comment": all}))
        .send()
        .expect("r");
    assert_eq!(r.status(), 200);
    let r = me
        .request(Method::POST, "/handoff")
        .json(&json!({"note": all}))
        .send()
        .expect("r");
    assert_eq!(r.status(), 200);
    let transcript = me
        .request(Method::GET, "")
        .send()
        .expect("r")
        .text()
        .expect("t");
    let stored = service().stored_texts().join("\n");
    let logs = service().log_text();
    for (typed, leak) in PII {
        for (place, text) in [
            ("database", &stored),
            ("transcript", &transcript),
            ("logs", &logs),
        ] {
            assert!(!text.contains(leak), "{typed:?} leaked into the {place}");
        }
    }
    // The citizen's own words around them survive, masked forms in their place.
    let question = &service().messages(&me.id)[0].text;
    assert!(
        question.starts_with("请帮我登记：身份证[身份证号]"),
        "{question}"
    );
    assert!(
        question.contains("[手机号]") && question.contains("[银行卡号]"),
        "{question}"
    );
    assert!(
        question.contains("[邮箱]") && question.contains("[电话]"),
        "{question}"
    );

    // Must-not-mask: stored exactly as sent.
    let keep = KEEP.join("，");
    let other = Citizen::new(base());
    let r = other
        .request(Method::POST, "/handoff")
        .json(&json!({"note": keep}))
        .send()
        .expect("r");
    assert_eq!(r.status(), 200);
    let msgs = service().messages(&other.id);
    assert_eq!(msgs[0].text, format!("转人工：{keep}"));
}

#[test]
fn input_hygiene_forged_channels_controls_and_media_types() {
    let logs_before = service().log_text().len();
    // A forged channel is not a field we take: refused like any unknown field, never logged.
    let forged = "wechat_mp\n2030-01-01T00:00:00Z  INFO FORGED-LOG-LINE\u{1b}[2J";
    for path in ["/api/v1/chat", "/api/v1/chat/stream"] {
        let r = client()
            .post(format!("{}{path}", base()))
            .json(&json!({"message": "你好", "channel": forged}))
            .send()
            .expect("r");
        assert_eq!(code(r), (422, "invalid_request".into()), "{path}");
    }
    let me = Citizen::new(base());
    for (path, body) in [
        ("/feedback", json!({"rating": "up", "channel": forged})),
        ("/handoff", json!({"note": "x", "channel": forged})),
    ] {
        let r = me
            .request(Method::POST, path)
            .json(&body)
            .send()
            .expect("r");
        assert_eq!(code(r), (422, "invalid_request".into()), "{path}");
    }
    // The channel comes from the endpoint.
    me.chat("你好");
    let t: Value = me
        .request(Method::GET, "")
        .send()
        .expect("r")
        .json()
        .expect("j");
    assert_eq!(t["channel"], "web");
    // NUL and control characters are stripped; invisible-only text is empty.
    me.chat("你好\u{0}\u{7}\u{1b}");
    let msgs = service().messages(&me.id);
    assert_eq!(msgs[2].text, "你好");
    let (status, v) = me.chat_status("\u{200b}\u{200d}\u{3000}\u{feff}\u{0}");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("empty_message"))
    );
    // `application/jsonfoo` is not JSON; `application/json; charset=utf-8` is.
    for (ct, want) in [
        ("application/jsonfoo", 415),
        ("text/plain", 415),
        ("application/json; charset=utf-8", 200),
    ] {
        let r = client()
            .post(format!("{}/api/v1/sessions/{}/feedback", base(), me.id))
            .header("x-session-token", &me.token)
            .header("content-type", ct)
            .body(r#"{"rating":"up"}"#)
            .send()
            .expect("r");
        assert_eq!(r.status().as_u16(), want, "{ct}");
    }
    // No log line starts with what a client wrote.
    let logs = service().log_text();
    assert!(
        !logs.contains("FORGED-LOG-LINE"),
        "client text reached the logs"
    );
    let new = &logs.as_bytes()[logs_before.min(logs.len())..];
    assert!(!new.contains(&0x1b), "an escape character reached the logs");
}

#[test]
fn a_dropped_stream_resumes_with_every_event_exactly_once() {
    let me = Citizen::new(base());
    let r = client()
        .post(format!("{}/api/v1/chat/stream", base()))
        .header("x-session-token", &me.token)
        .json(&json!({"session_id": me.id, "message": "高校毕业生可以得到哪些就业创业服务？"}))
        .send()
        .expect("request");
    assert!(r.status().is_success());
    // Read the first events, then drop the connection mid-answer.
    let first = read_events(r, |(_, name, _)| name == "token" || name == "done");
    let turn = first
        .iter()
        .find(|(_, n, _)| n == "meta")
        .map(|(_, _, d)| d["turn_id"].as_str().expect("turn").to_string())
        .expect("meta");
    let last = first
        .iter()
        .filter_map(|(id, _, _)| *id)
        .max()
        .expect("numbered events");
    let r = me
        .request(Method::GET, &format!("/turns/{turn}/events"))
        .header("last-event-id", last.to_string())
        .send()
        .expect("resume");
    assert_eq!(r.status(), 200);
    let rest = read_events(r, |_| false);
    let ids: Vec<u64> = first
        .iter()
        .chain(&rest)
        .map(|(id, _, _)| id.expect("every turn event has an id"))
        .collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event twice: {ids:?}");
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no event missing"
    );
    let all: Vec<_> = first.iter().chain(&rest).collect();
    let names: Vec<&str> = all.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let text: String = all
        .iter()
        .filter(|(_, n, _)| n == "token")
        .map(|(_, _, d)| d["text"].as_str().unwrap_or_default())
        .collect();
    let done = &all.last().expect("done").2;
    assert_eq!(text, done["answer"], "{names:?}");
    // A resume from the start replays the same events; a bad id is refused.
    let again = read_events(
        me.request(Method::GET, &format!("/turns/{turn}/events"))
            .send()
            .expect("replay"),
        |_| false,
    );
    assert_eq!(again.len(), ids.len());
    let r = me
        .request(Method::GET, &format!("/turns/{turn}/events"))
        .header("last-event-id", "x")
        .send()
        .expect("r");
    assert_eq!(code(r), (400, "invalid_last_event_id".into()));
}

/// Starts a streamed question on a raw socket and returns it once the turn's `meta` event
/// has arrived (so the turn is routed and on its way to the model).
fn start_raw(c: &Citizen, question: &str) -> TcpStream {
    let addr = base().trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(&addr).expect("connect");
    let body = json!({"session_id": c.id, "message": question}).to_string();
    write!(
        sock,
        "POST /api/v1/chat/stream HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Session-Token: {}\r\nContent-Length: {}\r\n\r\n{body}",
        c.token,
        body.len()
    )
    .expect("send");
    sock.set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: meta") {
        let n = sock.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "stream ended before meta: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    sock
}

fn queue_depth() -> u64 {
    let m = client()
        .get(format!("{}/metrics", base()))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    m.lines()
        .find_map(|l| l.strip_prefix("leye_llm_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
        .expect("queue depth metric")
}

#[test]
fn abandoned_queued_requests_are_dropped_and_the_next_question_is_answered() {
    let assistant = &service().running.state.assistant;
    let skipped_before = assistant.model_queue().skipped;
    let citizens: Vec<Citizen> = (0..20).map(|_| Citizen::new(base())).collect();
    // Everybody hangs up as soon as the turn has started (its question stored, its request on
    // its way to the model). Hanging up at once, not after all twenty have started, keeps the
    // count below from depending on how fast the first prompts run: each listener has been
    // gone for the grace period long before the worker reaches its request.
    for c in &citizens {
        let s = start_raw(c, "灵活就业人员就业创业服务平台有哪些举措？");
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    // The queue empties without generating 20 answers nobody reads.
    let deadline = Instant::now() + Duration::from_secs(600);
    let ended = |c: &Citizen| {
        let m = service().messages(&c.id);
        m.len() == 2 && m[1].status != "pending"
    };
    while !(citizens.iter().all(ended) && queue_depth() == 0) {
        assert!(Instant::now() < deadline, "abandoned turns never ended");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut never_generated = 0;
    for c in &citizens {
        let m = service().messages(&c.id);
        assert_eq!(m[0].text, "灵活就业人员就业创业服务平台有哪些举措？");
        assert_eq!(m[1].status, "incomplete", "{:?}", m[1]);
        // A request dropped before prefill leaves nothing from the model: at most the lead,
        // the evidence sentence said before the model was asked (what the model adds to it
        // starts on a new line).
        if !m[1].text.contains('\n') {
            never_generated += 1;
        }
    }
    assert!(
        never_generated >= 14,
        "queued requests are dropped before prefill: {never_generated} of 20 never generated"
    );
    let skipped = assistant.model_queue().skipped - skipped_before;
    eprintln!(
        "abandoned: {never_generated} of 20 never generated, {skipped} skipped before prefill"
    );
    assert!(
        skipped >= 14,
        "the model worker skipped only {skipped} abandoned requests without prefilling them"
    );
    // The model is free again: the next question is answered.
    let v = Citizen::new(base()).chat("高校毕业生可以得到哪些就业创业服务？");
    assert!(!v["citations"].as_array().expect("c").is_empty(), "{v}");
}

#[test]
fn concurrent_messages_and_handoffs_on_one_session_never_fail() {
    let me = Citizen::new(base());
    // Concurrent messages on one existing session: all answered, each stored in its place.
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let me = me.clone();
            std::thread::spawn(move || me.chat_status("你好"))
        })
        .collect();
    for t in threads {
        let (status, v) = t.join().expect("thread");
        assert_eq!(status, 200, "{v}");
    }
    let seqs: Vec<i64> = service().messages(&me.id).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    // Concurrent first messages each get their own session.
    let threads: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(|| {
                let r = client()
                    .post(format!("{}/api/v1/chat", base()))
                    .json(&json!({"message": "你好"}))
                    .send()
                    .expect("r");
                (r.status().as_u16(), r.json::<Value>().expect("json"))
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in threads {
        let (status, v) = t.join().expect("thread");
        assert_eq!(status, 200, "{v}");
        ids.insert(v["session_id"].as_str().expect("sid").to_string());
    }
    assert_eq!(ids.len(), 5);
    // Ten handoffs at once: one escalation.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let me = me.clone();
            std::thread::spawn(move || {
                let r = me
                    .request(Method::POST, "/handoff")
                    .json(&json!({}))
                    .send()
                    .expect("r");
                (r.status().as_u16(), r.json::<Value>().expect("json"))
            })
        })
        .collect();
    let mut tickets = BTreeSet::new();
    for t in threads {
        let (status, v) = t.join().expect("thread");
        assert_eq!(status, 200, "{v}");
        tickets.insert(v["ticket_id"].as_str().expect("ticket").to_string());
    }
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let open = service()
        .waiting()
        .into_iter()
        .filter(|e| e.session_id == me.id)
        .count();
    assert_eq!(open, 1);
}

#[test]
fn slow_and_oversized_requests_are_cut_off_with_json_errors() {
    let addr = base().trim_start_matches("http://").to_string();
    // A client that never finishes its headers is disconnected after the header timeout.
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("partial head");
    slow.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("t");
    let mut buf = Vec::new();
    match slow.read_to_end(&mut buf) {
        Ok(_) => {
            let text = String::from_utf8_lossy(&buf);
            assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // A connection that sends nothing at all is closed too.
    let mut idle = TcpStream::connect(&addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("t");
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);

    // An oversized Content-Length gets 413 at once, before any body is sent.
    let mut big = TcpStream::connect(&addr).expect("connect");
    write!(
        big,
        "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    )
    .expect("head");
    big.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("t");
    let mut head = [0u8; 512];
    let n = big.read(&mut head).expect("response");
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("body_too_large") || n == head.len(), "{text}");

    // 405, 414 and 431 answer in the JSON error shape.
    let r = client()
        .delete(format!("{}/api/v1/chat", base()))
        .send()
        .expect("r");
    assert_eq!(code(r), (405, "method_not_allowed".into()));
    let long = "a".repeat(service().config.server.max_uri_bytes + 10);
    let r = client()
        .get(format!("{}/api/v1/sessions/{long}", base()))
        .send()
        .expect("r");
    assert_eq!(code(r), (414, "uri_too_long".into()));
    let r = client()
        .get(format!("{}/healthz", base()))
        .header(
            "x-padding",
            "p".repeat(service().config.server.max_header_bytes),
        )
        .send()
        .expect("r");
    assert_eq!(code(r), (431, "headers_too_large".into()));
}

#[test]
fn forwarded_for_counts_only_from_trusted_proxies_and_metrics_can_be_closed() {
    let limited = |cfg: &mut assistant::config::Config| {
        cfg.server.ip_per_minute = 1;
        cfg.server.ip_burst = 3;
    };
    // Not a trusted proxy: X-Forwarded-For is ignored, everybody shares the peer's bucket.
    let (untrusted, base1) = service().second_listener(limited);
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            client()
                .get(format!("{base1}/api/v1/privacy"))
                .header("x-forwarded-for", format!("198.51.100.{i}"))
                .send()
                .expect("r")
                .status()
                .as_u16()
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    // From a trusted proxy, each forwarded client has its own bucket.
    let (trusted, base2) = service().second_listener(|cfg| {
        limited(cfg);
        cfg.server.trusted_proxies = vec![
            "127.0.0.1".parse().expect("range"),
            "::1".parse().expect("range"),
        ];
        cfg.server.metrics_token = Some(assistant::config::Secret::new("metrics-token-0123456789"));
    });
    for i in 0..5 {
        let r = client()
            .get(format!("{base2}/api/v1/privacy"))
            .header("x-forwarded-for", format!("203.0.113.9, 198.51.100.{i}"))
            .send()
            .expect("r");
        assert_eq!(r.status(), 200, "client {i}");
    }
    // With a metrics token, /metrics wants it (also from loopback).
    let r = client().get(format!("{base2}/metrics")).send().expect("r");
    assert_eq!(code(r), (403, "forbidden".into()));
    let r = client()
        .get(format!("{base2}/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .expect("r");
    assert_eq!(r.status(), 200);
    service()
        .runtime
        .block_on(async move {
            untrusted.shutdown().await?;
            trusted.shutdown().await
        })
        .expect("shut down the extra listeners");
}
