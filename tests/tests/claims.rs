//! 政策申领 over HTTP, with fake retrieval and a scripted model (no model files) and the
//! bundled benefit cards active against the bundled plan and the laws of `eval/data/laws/`:
//! the interview asks only what matters (at most four questions, each with options), a
//! graduate gets the graduate items and not the veterans', a correction changes the result,
//! "不知道" leaves items "possibly" with what is missing, and a named benefit is answered
//! from its card.

use std::sync::Arc;

use serde_json::{json, Value};
use tests::fakes::{assistant, FakeKb, FakeModel};

struct Server {
    base: String,
    model: Arc<FakeModel>,
    _rt: tokio::runtime::Runtime,
    _home: tempfile::TempDir,
}

fn serve() -> Server {
    let home = tempfile::tempdir().expect("tempdir");
    let rt = tests::fakes::server_runtime();
    let mut cfg = tests::fakes::server_config(home.path());
    cfg.server.session_per_minute = 10_000;
    cfg.server.session_burst = 10_000;
    let model = Arc::new(FakeModel::default());
    let running = rt.block_on(async {
        let a = assistant(Arc::new(FakeKb::default()), model.clone(), home.path())
            .await
            .with_benefits(tests::fakes::bundled_benefits());
        assistant::app::Application::from_parts(cfg, a)
            .start(std::future::pending())
            .await
            .expect("start")
    });
    let base = format!("http://{}", running.addr);
    std::mem::forget(running);
    Server {
        base,
        model,
        _rt: rt,
        _home: home,
    }
}

impl Server {
    /// The profile stored for a session, as the database holds it.
    fn stored_profile(&self, session: &str) -> Value {
        let url = assistant::config::sqlite_url(self._home.path());
        let sid = assistant::domain::SessionId::parse(session).expect("sid");
        self._rt.block_on(async {
            let db = assistant::store::Db::open(&url).await.expect("db");
            let row = db.session(&sid).await.expect("read").expect("session");
            serde_json::from_str(&row.profile).expect("profile json")
        })
    }
}

struct Citizen {
    base: String,
    session: Option<(String, String)>,
}

impl Citizen {
    fn says(&mut self, text: &str) -> Value {
        let mut req = tests::service::client().post(format!("{}/api/v1/chat", self.base));
        let mut body = json!({"message": text});
        if let Some((sid, token)) = &self.session {
            req = req.header("x-session-token", token);
            body["session_id"] = json!(sid);
        }
        let v: Value = req.json(&body).send().expect("chat").json().expect("json");
        if self.session.is_none() {
            self.session = Some((
                v["session_id"].as_str().expect("sid").to_string(),
                v["session_token"].as_str().expect("token").to_string(),
            ));
        }
        v
    }
}

fn ids(v: &Value, list: &str) -> Vec<String> {
    v["claim"][list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Answers every question with `reply(question)` until the result; returns (questions, result).
fn interview(
    c: &mut Citizen,
    first: &str,
    reply: impl Fn(&Value) -> String,
) -> (Vec<Value>, Value) {
    let mut v = c.says(first);
    let mut questions = Vec::new();
    for _ in 0..10 {
        assert_eq!(v["intent"], "claim", "{v}");
        let q = v["claim"]["question"].clone();
        if q.is_null() {
            return (questions, v);
        }
        assert!(!q["options"].as_array().expect("options").is_empty(), "{q}");
        assert!(
            v["answer"].as_str().unwrap_or("").contains("回复数字"),
            "{v}"
        );
        questions.push(q.clone());
        v = c.says(&reply(&q));
    }
    panic!("the interview did not end: {v}");
}

#[test]
fn a_graduate_in_jinan_is_asked_what_matters_and_gets_graduate_items() {
    let s = serve();
    let mut c = Citizen {
        base: s.base.clone(),
        session: None,
    };
    let (questions, result) = interview(
        &mut c,
        "我是高校毕业生，在济南，能享受什么政策？",
        |q| {
            // "不是" to everything: the graduate items stay, the rest does not apply.
            let opts = q["options"].as_array().expect("options");
            let no = opts
                .iter()
                .position(|o| {
                    o.as_str().unwrap_or("").starts_with("不") || o.as_str() == Some("还没有")
                })
                .map(|i| i + 1)
                .unwrap_or(opts.len());
            no.to_string()
        },
    );
    assert!(questions.len() <= 4, "{questions:?}");
    assert!(
        questions.iter().all(|q| q["fact"] != "group"),
        "the group was said already: {questions:?}"
    );
    let qualified = ids(&result, "qualified");
    for id in ["graduate-internship", "graduate-empowerment-platform"] {
        assert!(qualified.contains(&id.to_string()), "{qualified:?}");
    }
    for list in ["qualified", "possibly"] {
        assert!(
            ids(&result, list)
                .iter()
                .all(|id| !id.starts_with("veteran")),
            "no veteran items: {result}"
        );
    }
    let answer = result["answer"].as_str().expect("answer");
    assert!(answer.contains("大学生实习和青年就业见习"), "{answer}");
    assert!(
        result["citations"]
            .as_array()
            .expect("citations")
            .iter()
            .any(|x| x["doc_number"] == "鲁人社发〔2025〕9号"),
        "{result}"
    );
    assert_eq!(s.model.calls(), 0, "no model in the decision or the lists");
}

#[test]
fn dont_know_leaves_possibly_items_with_what_is_missing_and_a_correction_updates() {
    let s = serve();
    let mut c = Citizen {
        base: s.base.clone(),
        session: None,
    };
    let (questions, result) = interview(&mut c, "我被公司裁员了，能领什么？", |_| {
        "不知道".into()
    });
    assert!(questions.len() <= 4, "{questions:?}");
    let possibly = result["claim"]["possibly"]
        .as_array()
        .expect("possibly")
        .clone();
    let ui = possibly
        .iter()
        .find(|c| c["id"] == "unemployment-insurance-benefit")
        .unwrap_or_else(|| panic!("unemployment insurance is possibly: {result}"));
    assert!(
        ui["missing"].to_string().contains("失业保险费"),
        "what decides it: {ui}"
    );
    assert!(
        !ids(&result, "qualified").contains(&"unemployment-insurance-benefit".to_string()),
        "unknown is not yes"
    );
    // The citizen corrects: contributions and registration known now.
    let v = c.says("我交了三年失业保险，已经办了失业登记");
    assert_eq!(v["intent"], "claim", "{v}");
    let qualified = ids(&v, "qualified");
    assert!(
        qualified.contains(&"unemployment-insurance-benefit".to_string()),
        "{v}"
    );
    assert!(
        v["answer"].as_str().unwrap_or("").contains("失业保险金"),
        "{v}"
    );
}

#[test]
fn a_named_benefit_is_answered_from_its_card_and_claims_need_active_cards() {
    let s = serve();
    let mut c = Citizen {
        base: s.base.clone(),
        session: None,
    };
    let v = c.says("失业保险金怎么申请？需要什么材料？");
    assert_eq!(v["intent"], "claim", "{v}");
    let answer = v["answer"].as_str().expect("answer");
    for part in [
        "终止或者解除劳动关系的证明",
        "公共就业服务机构",
        "社会保险经办机构",
        "第四十五条",
    ] {
        assert!(answer.contains(part), "{part}: {answer}");
    }
    assert_eq!(v["citations"][0]["title"], "中华人民共和国社会保险法");
    assert_eq!(s.model.calls(), 0);
}

#[test]
fn the_widget_answers_questions_with_chips_and_shows_result_cards_in_chromium() {
    use std::time::Duration;
    let s = serve();
    let mut b = tests::cdp::Browser::launch(&format!("{}/", s.base))
        .expect("headless Chromium (installed by .ci/run)");
    b.wait_for(
        "!!document.querySelector('.leye-ack')",
        Duration::from_secs(20),
    )
    .expect("privacy notice");
    let problems = b.accessibility_problems().expect("audit");
    assert!(problems.is_empty(), "the privacy notice: {problems:#?}");
    b.eval("document.querySelector('.leye-ack').click()")
        .expect("acknowledge");
    b.eval(
        "(() => { const i = document.querySelector('.leye-bar input');
                  i.value = '我是退役军人，在济南，能享受什么政策？';
                  document.querySelector('.leye-send').click(); return true; })()",
    )
    .expect("ask");
    // Each question comes with chips; a tap answers it. Answer "no"-like options until the
    // result cards appear.
    let mut taps = 0;
    loop {
        let state = b
            .wait_for(
                "(() => { const bots = document.querySelectorAll('.leye-bot');
                          const last = bots[bots.length - 1];
                          if (!last || !last.querySelector('.leye-fb')) return '';
                          if (last.querySelector('.leye-benefit')) return 'cards';
                          const chips = last.querySelectorAll('.leye-chip:not([disabled])');
                          return chips.length ? 'chips' : ''; })()",
                Duration::from_secs(20),
            )
            .expect("a question or the result");
        if state == "cards" {
            break;
        }
        assert!(taps < 5, "at most four questions");
        b.eval(
            "(() => { const bots = document.querySelectorAll('.leye-bot');
                      const chips = [...bots[bots.length - 1].querySelectorAll('.leye-chip')];
                      const no = chips.find(c => c.textContent.startsWith('不') || c.textContent.startsWith('还')) || chips[chips.length - 1];
                      no.click(); return no.textContent; })()",
        )
        .expect("tap a chip");
        taps += 1;
    }
    let cards = b
        .eval(
            "(() => { const bots = document.querySelectorAll('.leye-bot');
                      const last = bots[bots.length - 1];
                      return [...last.querySelectorAll('.leye-benefit')].map(c => c.getAttribute('aria-label') + '|' + c.querySelector('.leye-src').textContent); })()",
        )
        .expect("cards");
    let cards: Vec<String> = serde_json::from_value(cards).expect("list");
    assert!(
        cards.iter().any(|c| c
            .starts_with("退役军人免费职业教育和技能培训|来源：《中华人民共和国退役军人保障法》")),
        "{cards:?}"
    );
    assert!(
        cards.iter().all(|c| !c.starts_with("大学生实习")),
        "{cards:?}"
    );
    let list = b
        .eval("document.querySelector('[data-claim-list]').getAttribute('data-claim-list')")
        .expect("list");
    assert!(
        list.as_str().unwrap_or("").starts_with("申领清单"),
        "{list}"
    );
    // The chips went out as the citizen's messages.
    let users = b
        .eval("[...document.querySelectorAll('.leye-user')].length")
        .expect("users");
    assert_eq!(users.as_u64(), Some(1 + taps as u64));
    // Answers are announced by screen readers as they arrive.
    assert_eq!(
        b.eval("document.querySelector('.leye-log').getAttribute('aria-live')")
            .expect("eval"),
        json!("polite")
    );
    // Every text has enough contrast and every control a name, in both text sizes.
    let problems = b.accessibility_problems().expect("audit");
    assert!(problems.is_empty(), "{problems:#?}");
    // Large text for older users.
    b.eval("document.querySelector('.leye-large-toggle').click()")
        .expect("toggle");
    assert_eq!(
        b.eval("document.querySelector('.leye').classList.contains('leye-large')")
            .expect("eval"),
        Value::Bool(true)
    );
    let problems = b.accessibility_problems().expect("audit");
    assert!(problems.is_empty(), "{problems:#?}");
    // The audit sees what it must: pale text and an unnamed icon button are reported.
    b.eval(
        "(() => { const w = document.querySelector('.leye');
                  const s = document.createElement('span'); s.style.color = '#bbb'; s.textContent = '浅色';
                  const x = document.createElement('button'); x.className = 'probe';
                  w.append(s, x); return true; })()",
    )
    .expect("inject");
    let problems = b.accessibility_problems().expect("audit");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.starts_with("contrast")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("button.probe")),
        "{problems:#?}"
    );
}

#[test]
fn a_sensitive_fact_said_in_passing_is_stored_only_after_consent() {
    let s = serve();
    let ask = |answer: &str| {
        let mut c = Citizen {
            base: s.base.clone(),
            session: None,
        };
        let v = c.says("我是残疾人，能享受什么政策？");
        let q = &v["claim"]["question"];
        assert!(
            q["fact"].as_str().unwrap_or("").starts_with("consent:"),
            "consent is asked first: {v}"
        );
        assert!(
            v["answer"].as_str().unwrap_or("").contains("敏感个人信息"),
            "{v}"
        );
        let (_, result) = interview(&mut c, answer, |_| "不知道".into());
        let sid = c.session.clone().expect("session").0;
        (result, s.stored_profile(&sid))
    };
    let (agreed, agreed_profile) = ask("同意");
    assert_eq!(
        agreed_profile["claim"]["facts"]["group.disabled"],
        json!(true),
        "{agreed_profile}"
    );
    assert_eq!(
        agreed_profile["group"],
        json!("disabled"),
        "{agreed_profile}"
    );
    assert!(
        ids(&agreed, "qualified").contains(&"disabled-free-employment-services".to_string()),
        "{agreed}"
    );
    let (refused, refused_profile) = ask("不同意");
    // Refused: neither the 申领 facts nor the job-search group keep the disability.
    assert!(
        refused_profile["claim"]["unanswered"]
            .to_string()
            .contains("group.disabled"),
        "{refused_profile}"
    );
    assert_eq!(refused_profile["group"], Value::Null, "{refused_profile}");
    assert_eq!(
        refused_profile["claim"]["facts"]["group.disabled"],
        Value::Null,
        "{refused_profile}"
    );
    assert!(
        !ids(&refused, "qualified").contains(&"disabled-free-employment-services".to_string()),
        "{refused}"
    );
    assert!(
        refused["claim"]["possibly"]
            .as_array()
            .expect("possibly")
            .iter()
            .any(|c| c["id"] == "disabled-free-employment-services"
                && c["missing"].to_string().contains("残疾人")),
        "the result says what the refused fact would change: {refused}"
    );
}
