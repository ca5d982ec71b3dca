//! Storage on both databases: SQLite always; PostgreSQL when `DATABASE_URL` points at one
//! (`.ci/run` installs and starts PostgreSQL and sets it, so CI runs both).

use assistant::store::{Completion, Db};

async fn suite(db: &Db) {
    // Sessions are created on first use and found again.
    let s = db.ensure_session(None, "web").await.expect("session");
    let again = db
        .ensure_session(Some(&s.id), "web")
        .await
        .expect("same session");
    assert_eq!(again.id, s.id);
    let named = db
        .ensure_session(Some("abc-123"), "api")
        .await
        .expect("named");
    assert_eq!(named.id, "abc-123");

    // The question is committed on its own; the answer starts pending.
    let q = db
        .add_message(&s.id, "user", "失业保险金怎么领？", "web", "complete")
        .await
        .expect("question");
    let a = db
        .add_message(&s.id, "assistant", "", "web", "pending")
        .await
        .expect("answer");
    db.set_intent(&q, "policy").await.expect("intent");
    let msgs = db.messages(&s.id).await.expect("messages");
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].seq, msgs[1].seq), (1, 2));
    assert_eq!(msgs[0].intent.as_deref(), Some("policy"));
    assert_eq!(msgs[1].status, "pending");

    db.complete_message(
        &a,
        &Completion {
            text: "可以到当地人社部门申领。".into(),
            status: "complete",
            intent: "policy".into(),
            citations: "[{\"n\":1}]".into(),
            jobs: "[]".into(),
            rewritten: None,
            ttft_ms: Some(1200),
            latency_ms: 3000,
        },
    )
    .await
    .expect("complete");
    let msgs = db.messages(&s.id).await.expect("messages");
    assert_eq!(msgs[1].status, "complete");
    assert_eq!(msgs[1].citations, "[{\"n\":1}]");

    // Profile and failure count are kept.
    db.update_session(&s.id, "{\"city\":\"青岛市\"}", 1)
        .await
        .expect("update");
    let s2 = db.session(&s.id).await.expect("get").expect("exists");
    assert_eq!(s2.failures, 1);
    assert!(s2.profile.contains("青岛市"));

    // Escalations: one open per session, queue positions in order of arrival.
    let (e1, p1) = db
        .escalate(&s.id, "explicit", "handoff", "转人工")
        .await
        .expect("escalate");
    let (e1b, p1b) = db
        .escalate(&s.id, "explicit", "handoff", "转人工")
        .await
        .expect("again");
    assert_eq!(
        (e1.id.clone(), p1),
        (e1b.id, p1b),
        "the open escalation is reused"
    );
    let (_, p2) = db
        .escalate(&named.id, "complaint", "handoff", "投诉")
        .await
        .expect("second");
    assert_eq!((p1, p2), (1, 2));
    let waiting = db.waiting().await.expect("queue");
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0].id, e1.id);

    db.add_feedback(&s.id, Some(&a), -1, "不够详细")
        .await
        .expect("feedback");
    assert!(db
        .all_texts()
        .await
        .expect("texts")
        .iter()
        .any(|t| t == "不够详细"));

    // Feedback for a session that does not exist violates the foreign key.
    assert!(db
        .add_feedback("no-such-session", None, 1, "")
        .await
        .is_err());
}

#[tokio::test]
async fn sqlite_store_works_and_marks_cut_off_answers_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Db::sqlite_url(dir.path());
    let session;
    {
        let db = Db::open(&url).await.expect("open");
        suite(&db).await;
        session = db.ensure_session(None, "web").await.expect("session").id;
        db.add_message(&session, "user", "问题", "web", "complete")
            .await
            .expect("q");
        db.add_message(&session, "assistant", "回答到一半", "web", "pending")
            .await
            .expect("a");
        // The process "crashes" here: the pool is dropped without completing the answer.
    }
    let db = Db::open(&url).await.expect("reopen (migrations run once)");
    let msgs = db.messages(&session).await.expect("messages");
    assert_eq!(msgs[0].text, "问题", "the question survived");
    assert_eq!(msgs[1].status, "incomplete", "the cut-off answer is marked");
    // WAL is on.
    assert!(dir.path().join("leye.db-wal").exists() || dir.path().join("leye.db").exists());
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let e = Db::open("mysql://x").await.expect_err("unsupported");
    assert!(e.to_string().contains("sqlite://"), "{e}");
}

#[tokio::test]
async fn postgres_store_works_when_database_url_is_set() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: the PostgreSQL run is done by .ci/run, not here");
        return;
    };
    if !url.starts_with("postgres") {
        eprintln!("DATABASE_URL is not PostgreSQL; skipping the PostgreSQL run");
        return;
    }
    // A fresh database per run, so earlier runs cannot make the suite pass or fail.
    let name = format!(
        "leye_test_{}_{}",
        std::process::id(),
        assistant::store::now_ms()
    );
    let admin = Db::connect(&url).await.expect("connect to DATABASE_URL");
    admin
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    let test_url = format!("{base}/{name}");
    {
        let db = Db::open(&test_url).await.expect("open test database");
        suite(&db).await;
        let s = db.ensure_session(None, "web").await.expect("session").id;
        db.add_message(&s, "assistant", "x", "web", "pending")
            .await
            .expect("pending");
        drop(db);
        let db = Db::open(&test_url).await.expect("reopen");
        assert_eq!(db.messages(&s).await.expect("m")[0].status, "incomplete");
        db.close().await;
    }
    admin
        .execute_raw(&format!("DROP DATABASE {name}"))
        .await
        .expect("drop test database");
}
