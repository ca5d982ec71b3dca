//! WeChat against a local fake of WeChat's servers, with fake retrieval and a scripted model
//! (no model files): signatures and safe mode on the reference vectors, the Official Account
//! (retries answered once, the 5-second rule, voice, hostile XML, safe mode end to end), the
//! access token's refresh, the outbox across a restart and on permanent errors, and the
//! mini-program (login, chat over the socket and over a chunked response, 转人工, a counselor's
//! reply on the socket or as a subscribe message).

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assistant::config::{Config, Secret};
use assistant::console::Role;
use assistant::serve::Running;
use assistant::store::Db;
use assistant::wechat::crypto::{signature, CryptoError, MessageCrypt};
use assistant::wechat::xml;
use serde_json::{json, Value};
use tests::console::{add_account, Console};
use tests::fake_wechat::{FakeWechat, Fault};
use tests::fakes::{assistant, FakeKb, FakeModel, Reply};
use tests::wait_for;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const TOKEN: &str = "AAAAA";
const APPID: &str = "wx49f0ab532d5d035a";
const AES_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const MINI_APPID: &str = "wxminiapp000001";
const TEMPLATE: &str = "tmpl-counselor-replied";
const PASSWORD: &str = "a-long-test-password";
const ANSWER: &str = "离校2年内未就业的高校毕业生可申请一次性求职创业补贴，标准为每人2000元[1]。";
const QUESTION: &str = "高校毕业生求职创业补贴每人多少钱？";

fn vectors() -> Value {
    let text = std::fs::read_to_string(tests::data("wechat_crypto_vectors.json")).expect("vectors");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn signatures_and_safe_mode_match_the_reference_vectors() {
    let v = vectors();
    let u = &v["url_check"];
    let s = |k: &str| u[k].as_str().expect(k).to_string();
    assert_eq!(
        signature(&[&s("token"), &s("timestamp"), &s("nonce")]),
        "f464b24fc39322e44b38aa78f5edd27bd1441696"
    );
    assert_eq!(s("signature"), "f464b24fc39322e44b38aa78f5edd27bd1441696");

    let key = v["encoding_aes_key"].as_str().expect("key");
    let appid = v["appid"].as_str().expect("appid");
    let token = v["token"].as_str().expect("token");
    let crypt = MessageCrypt::new(key, appid).expect("cipher");
    let d = &v["decrypt"];
    let g = |k: &str| d[k].as_str().expect(k);
    assert_eq!(
        signature(&[token, g("timestamp"), g("nonce"), g("encrypt")]),
        g("msg_signature")
    );
    assert_eq!(
        crypt.decrypt(g("encrypt")).expect("decrypt"),
        g("plaintext_xml")
    );

    let e = &v["encrypt"];
    let h = |k: &str| e[k].as_str().expect(k);
    let random: [u8; 16] = h("random16").as_bytes().try_into().expect("16 bytes");
    let sealed = crypt.encrypt_with(h("plaintext_xml"), &random);
    assert_eq!(sealed, h("encrypt"));
    assert_eq!(
        signature(&[token, h("timestamp"), h("nonce"), &sealed]),
        h("msg_signature")
    );

    // Another app's key opens the blocks but the appid inside is not ours.
    let other = MessageCrypt::new(key, "wx0000000000000000").expect("cipher");
    assert_eq!(other.decrypt(g("encrypt")), Err(CryptoError::WrongAppId));
    // Flipping the high bit of the second-to-last block's last byte flips the padding byte.
    use base64::Engine;
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(g("encrypt"))
        .expect("b64");
    let n = raw.len();
    raw[n - 17] ^= 0x80;
    let tampered = base64::engine::general_purpose::STANDARD.encode(&raw);
    assert_eq!(crypt.decrypt(&tampered), Err(CryptoError::BadPadding));
    assert_eq!(
        crypt.decrypt("not base64!"),
        Err(CryptoError::BadCiphertext)
    );
    assert_eq!(crypt.decrypt("AAAA"), Err(CryptoError::BadCiphertext));
}

struct Server {
    base: String,
    db: Db,
    model: Arc<FakeModel>,
    fake: Arc<FakeWechat>,
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    home: tempfile::TempDir,
}

/// The subsidy and how it is applied for: with two answering sentences the model is asked
/// after the lead (one would be the whole answer, and these tests count and pace the model's
/// turns).
fn kb() -> Arc<FakeKb> {
    Arc::new(FakeKb {
        passages: vec![
            FakeKb::passage(
                "山东省就业补贴办法",
                "第五条",
                "对离校2年内未就业的高校毕业生，给予一次性求职创业补贴，标准为每人2000元。",
            ),
            FakeKb::passage(
                "山东省就业补贴办法",
                "第六条",
                "高校毕业生求职创业补贴由毕业学校统一申请，经人社部门审核后发放。",
            ),
        ],
        dense: 0.9,
        ..FakeKb::default()
    })
}

fn wechat_config(home: &std::path::Path, api_base: &str) -> Config {
    let mut cfg = tests::fakes::server_config(home);
    cfg.server.sessions_per_minute = 10_000;
    cfg.server.sessions_burst = 10_000;
    let w = &mut cfg.wechat;
    w.api_base = api_base.into();
    w.outbox_retry_base_ms = 200;
    w.outbox_retry_max_secs = 1;
    w.mp.enabled = true;
    w.mp.appid = APPID.into();
    w.mp.secret = Some(Secret::new("mp-secret-value"));
    w.mp.token = Some(Secret::new(TOKEN));
    w.mp.encoding_aes_key = Some(Secret::new(AES_KEY));
    w.mp.reply_budget_ms = 2000;
    w.mp.menu_replies
        .insert("HOTLINE".into(), "人社服务热线：12333".into());
    w.miniprogram.enabled = true;
    w.miniprogram.appid = MINI_APPID.into();
    w.miniprogram.secret = Some(Secret::new("mini-secret-value"));
    w.miniprogram.subscribe_template_id = Some(TEMPLATE.into());
    cfg
}

fn start(rt: &tokio::runtime::Runtime, cfg: Config, model: Arc<FakeModel>) -> (Running, Db) {
    rt.block_on(async {
        let a = assistant(kb(), model, &cfg.home)
            .await
            .with_benefits(tests::fakes::bundled_benefits());
        let db = a.db().clone();
        let running = assistant::app::Application::from_parts(cfg, a)
            .start(std::future::pending())
            .await
            .expect("start");
        (running, db)
    })
}

fn serve_with(model: FakeModel, change: impl FnOnce(&mut Config)) -> Server {
    let home = tempfile::tempdir().expect("tempdir");
    let rt = tests::fakes::server_runtime();
    let fake = FakeWechat::start(&rt);
    let mut cfg = wechat_config(home.path(), &fake.base);
    change(&mut cfg);
    let model = Arc::new(model);
    let (running, db) = start(&rt, cfg, model.clone());
    Server {
        base: format!("http://{}", running.addr),
        db,
        model,
        fake,
        rt,
        running: Some(running),
        home,
    }
}

fn serve(model: FakeModel) -> Server {
    serve_with(model, |_| {})
}

fn text_message(openid: &str, msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>1714036504</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

/// POSTs a plain-mode message signed like WeChat does: (status, body).
fn post_mp(base: &str, body: &str) -> (u16, String) {
    post_mp_signed(base, body, TOKEN)
}

fn post_mp_signed(base: &str, body: &str, token: &str) -> (u16, String) {
    let (ts, nonce) = ("1714036504", "1514711492");
    let sig = signature(&[token, ts, nonce]);
    let r = tests::service::client()
        .post(format!(
            "{base}/wechat/mp?signature={sig}&timestamp={ts}&nonce={nonce}&openid=o1"
        ))
        .header("content-type", "text/xml")
        .body(body.to_string())
        .send()
        .expect("post");
    let status = r.status().as_u16();
    (status, r.text().expect("body"))
}

fn reply_content(body: &str) -> String {
    xml::parse(body)
        .unwrap_or_else(|e| panic!("{e}: {body}"))
        .text("Content")
        .to_string()
}

#[test]
fn the_url_check_echoes_only_when_signed() {
    let s = serve(FakeModel::default());
    let v = vectors();
    let u = &v["url_check"];
    let q = format!(
        "signature={}&timestamp={}&nonce={}&echostr=hello123",
        u["signature"].as_str().expect("sig"),
        u["timestamp"].as_str().expect("ts"),
        u["nonce"].as_str().expect("nonce")
    );
    let r = tests::service::client()
        .get(format!("{}/wechat/mp?{q}", s.base))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().expect("body"), "hello123");
    let bad = q.replace("f464b24f", "0464b24f");
    let r = tests::service::client()
        .get(format!("{}/wechat/mp?{bad}", s.base))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn a_message_delivered_three_times_is_answered_once() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    let body = text_message("openid-zhang", 1001, QUESTION);
    let (st, first) = post_mp(&s.base, &body);
    assert_eq!(st, 200, "{first}");
    let answer = reply_content(&first);
    assert!(answer.contains("2000元"), "{answer}");
    assert!(
        answer.contains("《山东省就业补贴办法》"),
        "sources as short lines: {answer}"
    );
    for _ in 0..2 {
        let (st, again) = post_mp(&s.base, &body);
        assert_eq!(st, 200);
        // WeChat retries only when it did not get the first response: the same text again.
        assert_eq!(reply_content(&again), answer);
    }
    assert_eq!(s.model.calls(), 1, "one turn for three deliveries");
    let user_messages: usize = s.rt.block_on(async {
        let sessions = s.db.all_texts().await.expect("texts");
        sessions
            .iter()
            .filter(|t| t.contains("高校毕业生求职创业补贴"))
            .count()
    });
    assert_eq!(user_messages, 1, "the question is stored once");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        s.fake.custom_texts().is_empty(),
        "nothing pushed: it was answered inline"
    );
}

#[test]
fn a_retry_takes_over_a_delivery_that_died_before_storing_its_question() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    // The first delivery recorded the key a minute ago, then the process died.
    let then = assistant::store::now_ms() - 60_000;
    s.rt.block_on(s.db.dedup("msg:7007", then, 1))
        .expect("record");
    let (st, body) = post_mp(&s.base, &text_message("openid-qian", 7007, QUESTION));
    assert_eq!(st, 200);
    assert!(
        reply_content(&body).contains("2000元"),
        "answered, not lost: {body}"
    );
    assert_eq!(s.model.calls(), 1);
}

#[test]
fn an_answer_slower_than_the_budget_is_success_then_exactly_one_customer_service_message() {
    let s = serve_with(
        FakeModel::with([Reply::Slow(Duration::from_millis(1500), ANSWER)]),
        |c| c.wechat.mp.reply_budget_ms = 300,
    );
    let started = Instant::now();
    let (st, body) = post_mp(&s.base, &text_message("openid-li", 2002, QUESTION));
    assert_eq!((st, body.as_str()), (200, "success"));
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "replied within the budget"
    );
    let sent = wait_for("the customer-service message", || {
        let t = s.fake.custom_texts();
        (!t.is_empty()).then_some(t)
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.fake.custom_texts(), sent, "exactly one push");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "openid-li");
    assert!(sent[0].1.contains("2000元"), "{sent:?}");
    // A retry of the same message after the budget starts nothing new.
    let (_, again) = post_mp(&s.base, &text_message("openid-li", 2002, QUESTION));
    assert_eq!(again, "success");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(s.fake.custom_texts().len(), 1);
    assert_eq!(s.model.calls(), 1);
}

#[test]
fn a_voice_message_is_answered_from_its_recognised_text_and_other_types_politely() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    let voice = format!(
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[openid-wang]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[{QUESTION}]]></Recognition><MsgId>3003</MsgId></xml>"
    );
    let (st, body) = post_mp(&s.base, &voice);
    assert_eq!(st, 200);
    assert!(reply_content(&body).contains("2000元"), "{body}");
    let prompt = format!(
        "{:?}",
        s.model
            .requests
            .lock()
            .expect("requests")
            .last()
            .expect("a request")
            .messages
    );
    assert!(prompt.contains("高校毕业生求职创业补贴"), "{prompt}");

    let image = "<xml><ToUserName>gh</ToUserName><FromUserName>openid-wang</FromUserName><CreateTime>2</CreateTime><MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MsgId>3004</MsgId></xml>";
    let (st, body) = post_mp(&s.base, image);
    assert_eq!(st, 200);
    let text = reply_content(&body);
    assert!(
        text.contains("文字和语音") && text.contains("4 转人工"),
        "{text}"
    );
    let unknown = "<xml><ToUserName>gh</ToUserName><FromUserName>openid-wang</FromUserName><CreateTime>3</CreateTime><MsgType>shake</MsgType><MsgId>3005</MsgId></xml>";
    let (st, body) = post_mp(&s.base, unknown);
    assert_eq!(st, 200);
    assert!(reply_content(&body).contains("文字和语音"));
    let follow = "<xml><ToUserName>gh</ToUserName><FromUserName>openid-new</FromUserName><CreateTime>4</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>";
    assert!(reply_content(&post_mp(&s.base, follow).1).contains("乐业助手"));
    let click = "<xml><ToUserName>gh</ToUserName><FromUserName>openid-new</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>HOTLINE</EventKey></xml>";
    assert_eq!(
        reply_content(&post_mp(&s.base, click).1),
        "人社服务热线：12333"
    );
    let leave = "<xml><ToUserName>gh</ToUserName><FromUserName>openid-new</FromUserName><CreateTime>6</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>";
    assert_eq!(post_mp(&s.base, leave).1, "success");
    // A numbered quick reply stands for its text: 4 asks for a person.
    let four = text_message("openid-new", 3006, "4");
    let text = reply_content(&post_mp(&s.base, &four).1);
    assert!(
        text.contains("转接") || text.contains("职业指导师"),
        "{text}"
    );
    assert_eq!(
        s.model.calls(),
        1,
        "only the voice question reached the model"
    );
}

#[test]
fn bad_signatures_and_hostile_xml_are_refused_without_processing() {
    let s = serve(FakeModel::default());
    let (st, _) = post_mp_signed(&s.base, &text_message("o", 1, "你好"), "wrong-token");
    assert_eq!(st, 403);
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&lol2;</Content><MsgId>9</MsgId></xml>"#;
    let external = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>"#;
    for body in [
        bomb,
        external,
        "<xml><Content>unclosed",
        "plain text",
        "",
        "<xml></xml>",
    ] {
        let (st, text) = post_mp(&s.base, body);
        assert_eq!(st, 400, "{body:?} -> {text}");
        assert!(!text.contains("root:"), "{text}");
    }
    // A body over server.max_body_bytes is refused from its Content-Length, before it is read.
    let addr = s.base.trim_start_matches("http://").to_string();
    let sig = signature(&[TOKEN, "1", "2"]);
    let mut conn = TcpStream::connect(&addr).expect("connect");
    use std::io::Write;
    write!(
        conn,
        "POST /wechat/mp?signature={sig}&timestamp=1&nonce=2 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nContent-Length: 1200000\r\n\r\n<xml>"
    )
    .expect("write");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).expect("a response");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(s.model.calls(), 0);
    // Still serving.
    let (st, body) = post_mp(&s.base, &text_message("o", 3, "你好"));
    assert_eq!(st, 200, "{body}");
}

#[test]
fn safe_mode_messages_are_decrypted_and_answered_encrypted() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    let crypt = MessageCrypt::new(AES_KEY, APPID).expect("cipher");
    let inner = text_message("openid-safe", 4004, QUESTION);
    let encrypted = crypt.encrypt(&inner);
    let (ts, nonce) = ("1714036600", "778899");
    let post = |encrypted: &str| {
        let msg_sig = signature(&[TOKEN, ts, nonce, encrypted]);
        let sig = signature(&[TOKEN, ts, nonce]);
        let body = format!("<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
        let r = tests::service::client()
            .post(format!("{}/wechat/mp?signature={sig}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_sig}", s.base))
            .body(body)
            .send()
            .expect("post");
        (r.status().as_u16(), r.text().expect("body"))
    };
    let (st, body) = post(&encrypted);
    assert_eq!(st, 200, "{body}");
    let outer = xml::parse(&body).expect("envelope");
    let enc = outer.text("Encrypt");
    assert_eq!(
        signature(&[TOKEN, outer.text("TimeStamp"), outer.text("Nonce"), enc]),
        outer.text("MsgSignature")
    );
    let reply = crypt.decrypt(enc).expect("our reply opens with our key");
    assert!(reply_content(&reply).contains("2000元"), "{reply}");
    assert!(!body.contains("2000元"), "the reply travels encrypted");

    let foreign = MessageCrypt::new(AES_KEY, "wx0000000000000000")
        .expect("cipher")
        .encrypt(&text_message("openid-safe", 4005, QUESTION));
    let (st, _) = post(&foreign);
    assert_eq!(st, 400, "another appid is refused");
    assert_eq!(s.model.calls(), 1);
}

#[test]
fn an_expired_access_token_is_refreshed_and_the_call_retried_once() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = FakeWechat::start(&rt);
    let app = assistant::wechat::WechatApp::new(
        &fake.base,
        APPID,
        Secret::new("s"),
        Duration::from_secs(5),
    );
    rt.block_on(async {
        app.custom_send_text("o1", "一").await.expect("first");
        fake.inject([Fault::ExpiredToken]);
        app.custom_send_text("o1", "二")
            .await
            .expect("refreshed and retried");
        fake.inject([Fault::ExpiredToken, Fault::ExpiredToken]);
        let e = app
            .custom_send_text("o1", "三")
            .await
            .expect_err("only one retry");
        assert!(e.is_token_expired(), "{e}");
    });
    assert_eq!(fake.answers("custom/send"), vec![0, 42001, 0, 42001, 42001]);
    assert_eq!(fake.tokens(), 3);
    let texts: Vec<String> = fake.custom_texts().into_iter().map(|t| t.1).collect();
    assert_eq!(texts, ["一", "二"]);
}

#[test]
fn outbox_rows_pending_at_shutdown_are_delivered_once_after_restart() {
    // WeChat unreachable: a port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut s = serve_with(
        FakeModel::with([Reply::Slow(Duration::from_millis(600), ANSWER)]),
        |c| {
            c.wechat.api_base = format!("http://{dead}");
            c.wechat.mp.reply_budget_ms = 200;
            c.wechat.outbox_retry_base_ms = 3000;
            c.wechat.outbox_retry_max_secs = 3;
        },
    );
    let (_, body) = post_mp(&s.base, &text_message("openid-zhao", 5005, QUESTION));
    assert_eq!(body, "success");
    let db = s.db.clone();
    wait_for("a failed first try", || {
        let failed_once = s.rt.block_on(async { sqlx_attempts(&db).await });
        (failed_once >= 1).then_some(())
    });
    let running = s.running.take().expect("running");
    s.rt.block_on(running.shutdown()).expect("shutdown");

    let cfg = wechat_config(s.home.path(), &s.fake.base);
    let (running, db) = start(&s.rt, cfg, s.model.clone());
    let sent = wait_for("delivery after the restart", || {
        let t = s.fake.custom_texts();
        (!t.is_empty()).then_some(t)
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.fake.custom_texts(), sent, "delivered once");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.contains("2000元"));
    let counts = s.rt.block_on(db.outbox_counts()).expect("counts");
    assert_eq!(counts, (0, 1, 0), "(pending, sent, failed)");
    s.rt.block_on(running.shutdown()).expect("shutdown");
}

/// Tries made on the outbox's rows so far.
async fn sqlx_attempts(db: &Db) -> i64 {
    db.outbox_attempts().await.expect("attempts")
}

fn claim_and_reply(
    base: &str,
    db: &Db,
    rt: &tokio::runtime::Runtime,
    text: &str,
) -> (Console, String) {
    rt.block_on(add_account(db, "c1", "张老师", Role::Counselor, PASSWORD));
    let c = Console::login(base, "c1", PASSWORD).expect("sign in");
    let (_, q) = c.get("/console/api/queue");
    let esc = q["queue"][0]["id"]
        .as_str()
        .expect("an escalation")
        .to_string();
    let (st, v) = c.post(&format!("/console/api/escalations/{esc}/claim"), json!({}));
    assert_eq!(st, 200, "{v}");
    let (st, v) = c.post(
        &format!("/console/api/escalations/{esc}/reply"),
        json!({"text": text}),
    );
    assert_eq!(st, 200, "{v}");
    (c, esc)
}

#[test]
fn a_counselor_reply_reaches_an_official_account_user_and_outside_the_window_becomes_a_note() {
    let s = serve(FakeModel::default());
    let (_, body) = post_mp(&s.base, &text_message("openid-sun", 6006, "我要转人工"));
    assert!(reply_content(&body).contains("职业指导师"), "{body}");
    let (c, esc) = claim_and_reply(
        &s.base,
        &s.db,
        &s.rt,
        "您好，我是张老师，请问您在哪个城市？",
    );
    let texts = wait_for("the reply as a customer-service message", || {
        let t = s.fake.custom_texts();
        t.iter()
            .any(|x| x.1.contains("请问您在哪个城市"))
            .then_some(t)
    });
    assert!(texts.iter().all(|t| t.0 == "openid-sun"));
    assert!(
        texts
            .iter()
            .any(|t| t.1.starts_with("【职业指导师 张老师】")),
        "{texts:?}"
    );

    // The citizen has not written for 48 hours: WeChat refuses (45015); not retried, noted.
    s.fake.inject([Fault::Errcode(45015)]);
    let (st, _) = c.post(
        &format!("/console/api/escalations/{esc}/reply"),
        json!({"text": "明天上午给您回电"}),
    );
    assert_eq!(st, 200);
    let notes = wait_for("the undelivered note", || {
        let notes = s.rt.block_on(s.db.notes(&esc)).expect("notes");
        notes
            .iter()
            .any(|n| n.text.contains("未送达"))
            .then_some(notes)
    });
    assert!(
        notes
            .iter()
            .any(|n| n.text.contains("明天上午给您回电") && n.text.contains("48小时")),
        "{notes:?}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        s.fake
            .answers("custom/send")
            .iter()
            .filter(|c| **c == 45015)
            .count(),
        1,
        "not retried"
    );
    let (_, detail) = c.get(&format!("/console/api/escalations/{esc}"));
    let shown = detail["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .any(|n| n["author"] == "系统" && n["text"].as_str().unwrap_or("").contains("未送达"));
    assert!(shown, "shown in the console as a system note: {detail}");
}

fn login_mini(base: &str, code: &str) -> String {
    let r = tests::service::client()
        .post(format!("{base}/api/v1/miniprogram/login"))
        .json(&json!({"code": code}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().expect("json");
    assert!(
        !v.to_string().contains("openid"),
        "the openid never reaches the client: {v}"
    );
    v["token"].as_str().expect("token").to_string()
}

fn socket(base: &str, token: &str) -> WebSocket<MaybeTlsStream<TcpStream>> {
    let url = format!("{}/api/v1/ws", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tungstenite::connect(req).expect("connect");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
    }
    ws
}

fn send(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, v: Value) {
    ws.send(Message::Text(v.to_string())).expect("send");
}

/// Frames until one satisfies `stop` (inclusive).
fn frames_until(
    ws: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    stop: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let m = ws.read().expect("a frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).expect("json frame");
            let done = stop(&v);
            out.push(v);
            if done {
                return out;
            }
        }
    }
}

#[test]
fn mini_program_login_chat_over_the_socket_handoff_and_counselor_replies() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    let r = tests::service::client()
        .post(format!("{}/api/v1/miniprogram/login", s.base))
        .json(&json!({"code": "bad-code"}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 401);
    let token = login_mini(&s.base, "alice-1");
    let q = s
        .fake
        .code_queries
        .lock()
        .expect("q")
        .last()
        .cloned()
        .expect("a call");
    assert_eq!(q["appid"], MINI_APPID);
    assert_eq!(q["secret"], "mini-secret-value");

    let mut ws = socket(&s.base, &token);
    send(
        &mut ws,
        json!({"type": "chat", "message": QUESTION, "ref": 1}),
    );
    let frames = frames_until(&mut ws, |f| f["event"] == "done");
    let names: Vec<&str> = frames.iter().filter_map(|f| f["event"].as_str()).collect();
    assert_eq!(names[..3], ["ready", "session", "meta"], "{names:?}");
    assert!(
        names.contains(&"token") && names.contains(&"citations"),
        "{names:?}"
    );
    let sid = frames[1]["data"]["session_id"]
        .as_str()
        .expect("sid")
        .to_string();
    let done = frames.last().expect("done");
    assert!(
        done["data"]["answer"]
            .as_str()
            .unwrap_or("")
            .contains("2000元"),
        "{done}"
    );
    // Turn events are numbered for resuming.
    let ids: Vec<u64> = frames.iter().filter_map(|f| f["id"].as_u64()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());

    send(
        &mut ws,
        json!({"type": "watch", "session_id": sid, "after": 0}),
    );
    send(
        &mut ws,
        json!({"type": "chat", "session_id": sid, "message": "转人工"}),
    );
    let frames = frames_until(&mut ws, |f| f["event"] == "done");
    assert!(frames.iter().any(|f| f["event"] == "handoff"), "{frames:?}");

    let (c, esc) = claim_and_reply(&s.base, &s.db, &s.rt, "您好，我是张老师");
    let frames = frames_until(&mut ws, |f| f["event"] == "counselor_message");
    let msg = frames.last().expect("reply");
    assert_eq!(msg["data"]["text"], "您好，我是张老师");
    assert_eq!(msg["session_id"], sid.as_str());
    assert!(frames.iter().any(|f| f["event"] == "counselor_joined"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        s.fake.subscribe_messages().is_empty(),
        "the socket got it: no subscribe message"
    );

    // The session routes accept the login token for the user's own session only.
    let transcript = tests::service::client()
        .get(format!("{}/api/v1/sessions/{sid}", s.base))
        .bearer_auth(&token)
        .send()
        .expect("transcript");
    assert_eq!(transcript.status().as_u16(), 200);
    let other = login_mini(&s.base, "bob-1");
    let refused = tests::service::client()
        .get(format!("{}/api/v1/sessions/{sid}", s.base))
        .bearer_auth(&other)
        .send()
        .expect("transcript");
    assert_eq!(refused.status().as_u16(), 404);

    // The mini-program closed: the next reply becomes a subscribe message.
    drop(ws);
    std::thread::sleep(Duration::from_millis(300));
    let (st, _) = c.post(
        &format!("/console/api/escalations/{esc}/reply"),
        json!({"text": "材料请带身份证原件"}),
    );
    assert_eq!(st, 200);
    let sub = wait_for("the subscribe message", || {
        let m = s.fake.subscribe_messages();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(sub[0]["touser"], "openid-alice");
    assert_eq!(sub[0]["template_id"], TEMPLATE);
    assert!(sub[0]["page"].as_str().unwrap_or("").contains(&sid));
    assert_eq!(sub[0]["data"]["thing2"]["value"], "材料请带身份证原件");

    // A reconnect resumes the counselor events after the last one seen, without asking again.
    let mut ws = socket(&s.base, &token);
    send(
        &mut ws,
        json!({"type": "watch", "session_id": sid, "after": msg["seq"]}),
    );
    let frames = frames_until(&mut ws, |f| f["event"] == "counselor_message");
    assert_eq!(
        frames.last().expect("f")["data"]["text"],
        "材料请带身份证原件"
    );
    assert!(
        frames
            .iter()
            .all(|f| f["data"]["text"] != "您好，我是张老师"),
        "nothing seen twice"
    );
}

#[test]
fn a_socket_without_a_header_authenticates_with_its_first_frame_and_resumes_a_turn() {
    let s = serve(FakeModel::with([Reply::Slow(
        Duration::from_millis(500),
        ANSWER,
    )]));
    let token = login_mini(&s.base, "carol-1");
    let url = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("connect");
    send(&mut ws, json!({"type": "auth", "token": "wrong"}));
    let f = frames_until(&mut ws, |_| true);
    assert_eq!(f[0]["data"]["code"], "login_required");

    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("connect");
    send(&mut ws, json!({"type": "auth", "token": token}));
    send(&mut ws, json!({"type": "chat", "message": QUESTION}));
    let first = frames_until(&mut ws, |f| f["event"] == "meta");
    let meta = first.last().expect("meta");
    let turn = meta["turn_id"].as_str().expect("turn").to_string();
    let sid = meta["data"]["session_id"]
        .as_str()
        .expect("sid")
        .to_string();
    let last_id = meta["id"].as_u64().expect("id");
    drop(ws);
    // Reconnect and resume the turn: no second question reaches the model.
    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("connect");
    send(&mut ws, json!({"type": "auth", "token": token}));
    send(
        &mut ws,
        json!({"type": "resume", "session_id": sid, "turn_id": turn, "after": last_id}),
    );
    let rest = frames_until(&mut ws, |f| f["event"] == "done");
    let ids: Vec<u64> = rest.iter().filter_map(|f| f["id"].as_u64()).collect();
    assert_eq!(ids.first().copied(), Some(last_id + 1), "{rest:?}");
    assert!(rest.last().expect("done")["data"]["answer"]
        .as_str()
        .unwrap_or("")
        .contains("2000元"));
    assert_eq!(s.model.calls(), 1);
    send(&mut ws, json!({"type": "nonsense"}));
    let f = frames_until(&mut ws, |f| f["event"] == "error");
    assert_eq!(f.last().expect("e")["data"]["code"], "bad_frame");
}

#[test]
fn the_chunked_stream_carries_the_same_events() {
    let s = serve(FakeModel::with([Reply::Text(ANSWER)]));
    let token = login_mini(&s.base, "dave-1");
    let mut r = tests::service::client()
        .post(format!("{}/api/v1/miniprogram/chat", s.base))
        .bearer_auth(&token)
        .json(&json!({"message": QUESTION}))
        .send()
        .expect("chat");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("chunked")
    );
    let mut body = String::new();
    r.read_to_string(&mut body).expect("body");
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"session"), "{body}");
    assert!(
        names.contains(&"meta") && names.last() == Some(&"done"),
        "{names:?}"
    );
    assert!(body.contains("2000元"));
    let r = tests::service::client()
        .post(format!("{}/api/v1/miniprogram/chat", s.base))
        .json(&json!({"message": QUESTION}))
        .send()
        .expect("chat");
    assert_eq!(r.status().as_u16(), 401, "login required");
}

fn protocol_js() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assistant/wechat/miniprogram/utils/protocol.js");
    std::fs::read_to_string(path).expect("protocol.js")
}

fn browser_with_protocol(url: &str) -> tests::cdp::Browser {
    let mut b = tests::cdp::Browser::launch(url).expect("headless Chromium (installed by .ci/run)");
    b.eval(&protocol_js()).expect("load protocol.js");
    assert_eq!(
        b.eval("typeof LeyeProtocol.ChunkedStream").expect("eval"),
        "function"
    );
    b
}

#[test]
fn chunked_streams_decode_whatever_the_split_points_in_chromium() {
    let mut b = browser_with_protocol("about:blank");
    // Property: for random event streams (Chinese, 4-byte emoji, keep-alive comments, LF or
    // CRLF line ends) cut at random byte offsets, the decoded events equal the sent ones.
    let result = b
        .eval(
            r#"(function () {
  function rng(seed) { return function () { seed |= 0; seed = seed + 0x6D2B79F5 | 0; var t = Math.imul(seed ^ seed >>> 15, 1 | seed); t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t; return ((t ^ t >>> 14) >>> 0) / 4294967296; }; }
  var pieces = ["失业保险金", "🎉", "a", "，", "2000元", "é", "\"", "\\", "𠀋", " ", "job"];
  var names = ["meta", "token", "citations", "jobs", "handoff", "done", "counselor_message"];
  var failures = [];
  var cases = 0, splits = 0;
  for (var seed = 1; seed <= 400; seed++) {
    var r = rng(seed);
    var crlf = r() < 0.3, nl = crlf ? "\r\n" : "\n";
    var sent = [], wire = "";
    var n = 1 + Math.floor(r() * 8);
    for (var i = 0; i < n; i++) {
      var text = "";
      var m = Math.floor(r() * 12);
      for (var k = 0; k < m; k++) text += pieces[Math.floor(r() * pieces.length)];
      var ev = { event: names[Math.floor(r() * names.length)], id: String(i + 1), data: { text: text, n: i } };
      sent.push(ev);
      if (r() < 0.3) wire += ":" + nl + nl;
      wire += "id: " + ev.id + nl + "event: " + ev.event + nl + "data: " + JSON.stringify(ev.data) + nl + nl;
    }
    var bytes = new TextEncoder().encode(wire);
    var s = new LeyeProtocol.ChunkedStream();
    var got = [];
    var at = 0;
    while (at < bytes.length) {
      var len = Math.floor(r() * 9);
      if (r() < 0.1) len = Math.floor(r() * 64);
      got = got.concat(s.push(bytes.slice(at, at + len)));
      at += len;
      splits++;
    }
    cases++;
    var want = JSON.stringify(sent), have = JSON.stringify(got);
    if (want !== have) failures.push({ seed: seed, want: want, have: have });
  }
  // A 3-byte character split 1+2 and 2+1, and a 4-byte one split 1+3.
  var d = new LeyeProtocol.Utf8Decoder();
  var t = d.decode(new Uint8Array([0xe5])) + d.decode(new Uint8Array([0xb0, 0xb1, 0xe4, 0xb8])) + d.decode(new Uint8Array([0x9a, 0xf0])) + d.decode(new Uint8Array([0x9f, 0x8e, 0x89]));
  return { cases: cases, splits: splits, failures: failures.slice(0, 3), nfail: failures.length, split_chars: t };
})()"#,
        )
        .expect("property run");
    assert_eq!(result["nfail"], 0, "{result}");
    assert_eq!(result["cases"], 400);
    assert!(result["splits"].as_u64().unwrap_or(0) > 4000, "{result}");
    assert_eq!(result["split_chars"], "就业🎉");
}

#[test]
fn the_socket_client_reconnects_and_resumes_without_asking_again_in_chromium() {
    let s = serve(FakeModel::with([Reply::Slow(
        Duration::from_millis(1500),
        ANSWER,
    )]));
    let token = login_mini(&s.base, "erin-1");
    // A page of the server's own origin (a blank page may not open sockets to localhost).
    let mut b = browser_with_protocol(&format!("{}/healthz", s.base));
    let ws = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
    b.eval(&format!(
        r#"(function () {{
  window.seen = [];
  window.opens = 0;
  var transport = {{ open: function (h) {{
      var sock = new WebSocket({ws:?});
      sock.onopen = function () {{ window.opens++; h.open(); }};
      sock.onmessage = function (m) {{ h.message(m.data); }};
      sock.onclose = function () {{ h.close(); }};
      return {{ send: function (t) {{ sock.send(t); }}, close: function () {{ sock.close(); }} }};
  }} }};
  window.client = new LeyeProtocol.SocketClient(transport, {{ token: {token:?}, onEvent: function (ev) {{ window.seen.push(ev); }} }});
  window.client.connect();
  window.client.ask({QUESTION:?});
  return true;
}})()"#
    ))
    .expect("start the client");
    if let Err(e) = b.wait_for(
        "window.seen.some(function (e) { return e.event === 'meta'; })",
        Duration::from_secs(20),
    ) {
        panic!(
            "the turn started: {e}; seen {:?}; opens {:?}",
            b.eval("JSON.stringify(window.seen)"),
            b.eval("window.opens")
        );
    }
    // The network drops mid-answer.
    b.eval("window.client.drop(); true").expect("drop");
    let answer = b
        .wait_for(
            "(function () { var d = window.seen.filter(function (e) { return e.event === 'done'; }); return d.length ? d[0].data.answer : ''; })()",
            Duration::from_secs(30),
        )
        .expect("the answer after the reconnect");
    assert!(answer.as_str().unwrap_or("").contains("2000元"), "{answer}");
    let opens = b.eval("window.opens").expect("opens");
    assert!(opens.as_u64().unwrap_or(0) >= 2, "reconnected: {opens}");
    let ids = b
        .eval("window.seen.filter(function (e) { return e.id != null; }).map(function (e) { return e.id; })")
        .expect("ids");
    let ids: Vec<u64> = ids
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "each event once, in order"
    );
    let dones = b
        .eval("window.seen.filter(function (e) { return e.event === 'done'; }).length")
        .expect("dones");
    assert_eq!(dones, 1);
    assert_eq!(s.model.calls(), 1, "the question was not sent again");
}

#[test]
fn on_the_official_account_claim_questions_are_numbered_and_a_number_answers_them() {
    let s = serve(FakeModel::default());
    let (_, body) = post_mp(
        &s.base,
        &text_message("openid-claim", 8001, "我是退役军人，能享受什么政策？"),
    );
    let first = reply_content(&body);
    assert!(first.contains("回复数字：1 "), "{first}");
    // "2" answers the pending question (its second option), not the account's quick reply 2.
    let (_, body) = post_mp(&s.base, &text_message("openid-claim", 8002, "2"));
    let second = reply_content(&body);
    assert!(!second.contains("岗位"), "not a job search: {second}");
    assert!(
        second.contains("回复数字") || second.contains("您可以享受"),
        "the interview goes on: {second}"
    );
    assert_ne!(first, second);
}
