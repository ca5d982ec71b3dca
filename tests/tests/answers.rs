//! Answers that help, with the real model: a regulation ingested at start beside the bundled
//! knowledge (as an operator would add one), five questions on it, each answered with its key
//! fact and the regulation cited; a labour-rights question in everyday words gets the
//! regulation's answer, the 12333 line and a person, never job cards.

use std::path::PathBuf;
use std::sync::Arc;

use assistant::app::Application;
use assistant::config::Config;
use assistant::dialogue::{Assistant, Event, TurnRequest};
use assistant::domain::{Caller, Channel, Intent};
use tokio::sync::mpsc;

const LAW_TITLE: &str = "山东省劳动合同条例";

fn law() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/data/laws/sd-2013-laodong-hetong-tiaoli.md")
}

struct Turn {
    intent: Intent,
    answer: String,
    cited: Vec<String>,
    handoff: bool,
    jobs: bool,
}

async fn ask(a: &Assistant, question: &str) -> Turn {
    let (sid, _) = a.create_session(Channel::Web).await.expect("session");
    let (tx, mut rx) = mpsc::channel(512);
    let req = TurnRequest {
        caller: Caller::Citizen {
            session: sid,
            channel: Channel::Web,
        },
        message: question.into(),
        profile: None,
    };
    a.turn(req, tx).await.expect("turn");
    let mut t = Turn {
        intent: Intent::Policy,
        answer: String::new(),
        cited: Vec::new(),
        handoff: false,
        jobs: false,
    };
    while let Some(e) = rx.recv().await {
        match e {
            Event::Meta { intent, .. } => t.intent = intent,
            Event::Done { answer } => t.answer = answer,
            Event::Citations(c) => t.cited = c.into_iter().map(|c| c.title).collect(),
            Event::Handoff(_) => t.handoff = true,
            Event::Jobs { .. } => t.jobs = true,
            _ => {}
        }
    }
    eprintln!("Q: {question}\nA: {}\n   cited {:?}", t.answer, t.cited);
    t
}

#[test]
fn a_regulation_added_at_start_answers_its_questions_and_labour_rights_get_a_person() {
    let home = tests::home_with_bundled_index();
    let mut cfg = Config {
        home: home.path().to_path_buf(),
        ..Config::default()
    };
    cfg.llm.path = Some(tests::llm_path());
    cfg.embedder.path = Some(tests::embedder_path());
    cfg.database.url = Some(assistant::store::Db::sqlite_url(home.path()));
    cfg.knowledge.paths.push(law());
    cfg.validate().expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let progress: assistant::app::Progress = Arc::new(|l: &str| eprintln!("[start] {l}"));
        let app = Application::build(&cfg, progress).await.expect("build");
        let a = app.assistant();
        let t = ask(a, "老板拿厂里的产品抵工资，说没钱发，这样合法吗？").await;
        assert_eq!(t.intent, Intent::Handoff);
        assert!(t.handoff, "a person is offered");
        assert!(!t.jobs, "never job cards");
        assert!(t.answer.contains("12333"), "{}", t.answer);
        // The regulation's own answer on paying wages comes first, from the regulation.
        assert!(t.cited.iter().any(|c| c == LAW_TITLE), "{:?}", t.cited);
        // What the regulation says stands before the hotline and handoff text.
        let regulation = t
            .answer
            .split("遇到拖欠工资或劳动争议")
            .next()
            .unwrap_or_default();
        assert!(regulation.contains("工资"), "{}", t.answer);
        // The key fact of each answer, and every answer cites the regulation.
        let mut with_fact = 0;
        let mut report = Vec::new();
        for (question, fact) in [
            ("入职以后多长时间内必须签书面劳动合同？", "一个月"),
            (
                "劳动合同到期后我还在干，单位超过一个月不续签，每月要付几倍工资？",
                "二倍",
            ),
            ("单位给的工资能低于最低工资标准吗？", "最低工资标准"),
            ("试用期内想辞职，要提前几天通知单位？", "三日"),
            (
                "用人单位解除劳动合同应当支付经济补偿的，什么时候支付？",
                "工作交接",
            ),
        ] {
            let t = ask(a, question).await;
            assert!(
                t.cited.iter().any(|c| c == LAW_TITLE),
                "{question}: the regulation is cited: {:?}",
                t.cited
            );
            if t.answer.contains(fact) {
                with_fact += 1;
            } else {
                report.push(format!("{question} → {}", t.answer));
            }
        }
        eprintln!(
            "key facts: {with_fact} of 5; missed:\n{}",
            report.join("\n")
        );
        assert_eq!(with_fact, 5, "key facts in {with_fact} of 5 answers");
    });
}
