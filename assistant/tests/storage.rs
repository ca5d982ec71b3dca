//! Storage on both databases: SQLite always; PostgreSQL when `DATABASE_URL` points at one
//! (`.ci/run` installs and starts PostgreSQL and sets it, so CI runs both).

use std::collections::HashSet;

use assistant::domain::{Channel, SessionId, SessionToken};
use assistant::store::{Completion, Db};

async fn new_session(db: &Db) -> (SessionId, SessionToken) {
    let token = SessionToken::new();
    let id = db
        .create_session(Channel::Web, &token.hash())
        .await
        .expect("session");
    (id, token)
}

async fn suite(db: &Db) {
    // A session opens only with its own token; an unknown id looks the same as a wrong token.
    let (sid, token) = new_session(db).await;
    assert!(db
        .authorize(&sid, &token.hash())
        .await
        .expect("q")
        .is_some());
    assert!(db
        .authorize(&sid, &SessionToken::new().hash())
        .await
        .expect("q")
        .is_none());
    assert!(db
        .authorize(&SessionId::new(), &token.hash())
        .await
        .expect("q")
        .is_none());
    let stored = db.session(&sid).await.expect("q").expect("exists");
    assert_ne!(
        stored.token_hash.as_deref(),
        Some(token.expose()),
        "only the hash is stored"
    );

    // The question is committed on its own; the answer starts pending.
    let q = db
        .add_message(&sid, "user", "失业保险金怎么领？", Channel::Web, "complete")
        .await
        .expect("question");
    let a = db
        .add_message(&sid, "assistant", "", Channel::Web, "pending")
        .await
        .expect("answer");
    db.set_intent(&q, "policy").await.expect("intent");
    let msgs = db.messages(&sid).await.expect("messages");
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].seq, msgs[1].seq), (1, 2));
    assert_eq!(msgs[0].intent.as_deref(), Some("policy"));
    assert_eq!(msgs[1].status, "pending");
    assert!(db.turn_in_session(&sid, &a).await.expect("q"));
    assert!(
        !db.turn_in_session(&sid, &q).await.expect("q"),
        "a question is not a turn"
    );

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
            trace: "{\"hits\":[{\"doc_id\":\"d\",\"score\":0.9}]}".into(),
        },
    )
    .await
    .expect("complete");
    let msgs = db.messages(&sid).await.expect("messages");
    assert_eq!(msgs[1].status, "complete");
    assert_eq!(msgs[1].citations, "[{\"n\":1}]");
    assert!(db
        .trace(&a)
        .await
        .expect("trace")
        .is_some_and(|t| t.contains("\"score\":0.9")));
    assert_eq!(db.trace(&q).await.expect("trace").as_deref(), Some("{}"));

    // Profile and failure count are kept.
    db.update_session(&sid, "{\"city\":\"青岛市\"}", 1)
        .await
        .expect("update");
    let s2 = db.session(&sid).await.expect("get").expect("exists");
    assert_eq!(s2.failures, 1);
    assert!(s2.profile.contains("青岛市"));

    // Escalations: one open per session, queue positions in order of arrival.
    let (other, _) = new_session(db).await;
    let (e1, p1) = db
        .escalate(&sid, "explicit", "handoff", "转人工")
        .await
        .expect("escalate");
    let (e1b, p1b) = db
        .escalate(&sid, "explicit", "handoff", "转人工")
        .await
        .expect("again");
    assert_eq!(
        (e1.id.clone(), p1),
        (e1b.id, p1b),
        "the open escalation is reused"
    );
    let (e2, p2) = db
        .escalate(&other, "complaint", "handoff", "投诉")
        .await
        .expect("second");
    assert_eq!((p1, p2), (1, 2));
    let waiting = db.waiting().await.expect("queue");
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0].id, e1.id);

    db.add_feedback(&sid, Some(&a), -1, "不够详细")
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
        .add_feedback(&SessionId::new(), None, 1, "")
        .await
        .is_err());

    // Deleting a conversation removes everything of it, and its token stops working.
    assert!(db.delete_session(&sid).await.expect("delete"));
    assert!(db.messages(&sid).await.expect("m").is_empty());
    assert!(db.open_escalation(&sid).await.expect("e").is_none());
    assert!(db
        .authorize(&sid, &token.hash())
        .await
        .expect("q")
        .is_none());
    assert!(!db
        .all_texts()
        .await
        .expect("t")
        .iter()
        .any(|t| t == "不够详细"));
    assert!(
        !db.delete_session(&sid).await.expect("again"),
        "already gone"
    );
    // The other session's place moved up.
    let (_, p) = db
        .escalate(&other, "complaint", "handoff", "")
        .await
        .expect("same");
    assert_eq!(p, 1);
    db.set_escalation_status(&e2.id, "resolved")
        .await
        .expect("resolve");

    // Retention: sessions idle since before the cut-off are deleted, others stay.
    let (fresh, _) = new_session(db).await;
    assert!(db.purge_inactive(0).await.expect("purge none") == 0);
    let n = db
        .purge_inactive(assistant::store::now_ms() + 1)
        .await
        .expect("purge all");
    assert!(n >= 2, "{n}");
    assert!(db.session(&fresh).await.expect("q").is_none());
}

/// Concurrency: many writers at once, repeated, must never collide or share a place.
async fn races(db: &Db) {
    // Concurrent messages on one session: all stored, each in its own place.
    let (sid, _) = new_session(db).await;
    let writes = (0..10).map(|i| {
        let db = db.clone();
        let sid = sid.clone();
        tokio::spawn(async move {
            db.add_message(&sid, "user", &format!("消息{i}"), Channel::Web, "complete")
                .await
        })
    });
    for w in writes.collect::<Vec<_>>() {
        w.await
            .expect("join")
            .expect("every concurrent message is stored");
    }
    let seqs: Vec<i64> = db
        .messages(&sid)
        .await
        .expect("m")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // Ten handoffs of one session at once: one escalation.
    let tries = (0..10).map(|_| {
        let db = db.clone();
        let sid = sid.clone();
        tokio::spawn(async move { db.escalate(&sid, "explicit", "handoff", "转人工").await })
    });
    let mut ids = HashSet::new();
    for t in tries.collect::<Vec<_>>() {
        ids.insert(t.await.expect("join").expect("escalate").0.id);
    }
    assert_eq!(ids.len(), 1, "one open escalation per session");
    let open: Vec<_> = db
        .waiting()
        .await
        .expect("q")
        .into_iter()
        .filter(|e| e.session_id == sid.as_str())
        .collect();
    assert_eq!(open.len(), 1);
    db.set_escalation_status(&open[0].id, "resolved")
        .await
        .expect("resolve");

    // Queue places under concurrency: distinct, 1..=n, in the order the database handed out.
    for round in 0..50 {
        let mut sessions = Vec::new();
        for _ in 0..6 {
            sessions.push(new_session(db).await.0);
        }
        let tries = sessions.iter().map(|s| {
            let db = db.clone();
            let s = s.clone();
            tokio::spawn(async move { db.escalate(&s, "explicit", "handoff", "").await })
        });
        let mut got = Vec::new();
        for t in tries.collect::<Vec<_>>() {
            got.push(t.await.expect("join").expect("escalate"));
        }
        let mut positions: Vec<i64> = got.iter().map(|(_, p)| *p).collect();
        positions.sort();
        assert_eq!(
            positions,
            (1..=6).collect::<Vec<_>>(),
            "round {round}: {got:?}"
        );
        got.sort_by_key(|(e, _)| e.queue_seq);
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "round {round}: places follow arrival order: {got:?}"
        );
        for (e, _) in got {
            db.set_escalation_status(&e.id, "resolved")
                .await
                .expect("resolve");
        }
    }
}

/// Two counselors claim the same escalation at once, 50 times: exactly one wins each time and
/// the row names the winner; the loser's claim changes nothing.
async fn claims(db: &Db) {
    let now = assistant::store::now_ms();
    let a = db
        .add_counselor("race-a", "甲", "counselor", "x", now)
        .await
        .expect("add")
        .expect("new");
    let b = db
        .add_counselor("race-b", "乙", "counselor", "x", now)
        .await
        .expect("add")
        .expect("new");
    assert!(
        db.add_counselor("race-a", "重名", "counselor", "x", now)
            .await
            .expect("add")
            .is_none(),
        "a taken name is refused"
    );
    for round in 0..50 {
        let (sid, _) = new_session(db).await;
        let (e, _) = db
            .escalate(&sid, "explicit", "handoff", "")
            .await
            .expect("escalate");
        let ta = {
            let (db, id, c) = (db.clone(), e.id.clone(), a.id.clone());
            tokio::spawn(async move { db.claim(&id, &c, now).await })
        };
        let tb = {
            let (db, id, c) = (db.clone(), e.id.clone(), b.id.clone());
            tokio::spawn(async move { db.claim(&id, &c, now).await })
        };
        let wa = ta.await.expect("join").expect("claim a");
        let wb = tb.await.expect("join").expect("claim b");
        assert!(wa ^ wb, "round {round}: exactly one wins (a {wa}, b {wb})");
        let row = db.escalation(&e.id).await.expect("q").expect("row");
        let winner = if wa { &a.id } else { &b.id };
        assert_eq!(row.assignee.as_ref(), Some(winner), "round {round}");
        assert_eq!(row.status, "assigned");
        assert!(db
            .close_escalation(&e.id, "resolved", Some("answered"), now)
            .await
            .expect("close"));
        assert!(
            !db.close_escalation(&e.id, "resolved", Some("answered"), now)
                .await
                .expect("close"),
            "closed once"
        );
    }
    // The audit log: appended in order, filtered by name, action and time on both databases.
    for (i, (who, action)) in [
        ("race-a", "claim"),
        ("race-b", "reply"),
        ("race-a", "reply"),
    ]
    .iter()
    .enumerate()
    {
        db.audit(&assistant::store::AuditRow {
            seq: 0,
            at: 1_000 + i as i64,
            counselor_id: None,
            username: who.to_string(),
            action: action.to_string(),
            target: "e".into(),
            detail: String::new(),
            client_ip: "127.0.0.1".into(),
        })
        .await
        .expect("audit");
    }
    let f = |username: Option<&str>, action: Option<&str>, since: Option<i64>| {
        assistant::store::AuditFilter {
            username: username.map(str::to_string),
            action: action.map(str::to_string),
            since,
            until: Some(2_000),
            limit: 100,
        }
    };
    let all = db.audit_entries(&f(None, None, None)).await.expect("audit");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    assert_eq!(
        db.audit_entries(&f(Some("race-a"), None, None))
            .await
            .expect("a")
            .len(),
        2
    );
    assert_eq!(
        db.audit_entries(&f(Some("race-a"), Some("reply"), None))
            .await
            .expect("a")
            .len(),
        1
    );
    assert_eq!(
        db.audit_entries(&f(None, None, Some(1_001)))
            .await
            .expect("a")
            .len(),
        2
    );
}

#[tokio::test]
async fn sqlite_store_works_and_marks_cut_off_answers_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Db::sqlite_url(dir.path());
    let session;
    {
        let db = Db::open(&url).await.expect("open");
        suite(&db).await;
        session = new_session(&db).await.0;
        db.add_message(&session, "user", "问题", Channel::Web, "complete")
            .await
            .expect("q");
        db.add_message(&session, "assistant", "回答到一半", Channel::Web, "pending")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_orders_and_uniqueness_hold_under_concurrency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&Db::sqlite_url(dir.path())).await.expect("open");
    races(&db).await;
    claims(&db).await;
}

#[tokio::test]
async fn a_database_from_before_tokens_is_migrated_and_its_sessions_stay_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Db::sqlite_url(dir.path());
    // Version 1 only, with a client-chosen session id and two open escalations of it.
    {
        let db = Db::connect(&url).await.expect("connect");
        old_migrator(&db, 1).await;
        for sql in [
            "INSERT INTO sessions (id, channel, profile, failures, created_at, updated_at) VALUES ('abc-123', 'api', '{}', 0, 1, 1)",
            "INSERT INTO messages (id, session_id, seq, role, text, channel, status, created_at) VALUES ('m1', 'abc-123', 1, 'user', '你好', 'api', 'complete', 1)",
            "INSERT INTO escalations (id, session_id, status, reason, intent, summary, created_at, updated_at) VALUES ('e1', 'abc-123', 'waiting', 'explicit', 'handoff', '', 5, 5)",
            "INSERT INTO escalations (id, session_id, status, reason, intent, summary, created_at, updated_at) VALUES ('e2', 'abc-123', 'waiting', 'explicit', 'handoff', '', 5, 5)",
        ] {
            db.execute_raw(sql).await.expect(sql);
        }
        db.close().await;
    }
    let db = Db::open(&url).await.expect("migrate to the current schema");
    assert_eq!(
        db.schema_versions().await.expect("versions"),
        [1, 2, 3, 4, 5],
        "version 1 recorded from the old migrator, later versions applied"
    );
    let waiting = db.waiting().await.expect("q");
    assert_eq!(waiting.len(), 1, "duplicates closed: {waiting:?}");
    assert_eq!(waiting[0].id, "e1");
    // New escalations queue after the old one.
    let token = SessionToken::new();
    let sid = db
        .create_session(Channel::Web, &token.hash())
        .await
        .expect("s");
    let (_, p) = db
        .escalate(&sid, "explicit", "handoff", "")
        .await
        .expect("e");
    assert_eq!(p, 2);
}

/// What the migrator before sqlx's did: a `schema_migrations` table, and each file split on
/// `;` and run statement by statement, up to `version`.
async fn old_migrator(db: &Db, version: usize) {
    db.execute_raw(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .expect("table");
    let files = [
        (
            1,
            "conversations",
            include_str!("../migrations/0001_conversations.sql"),
        ),
        (2, "trust", include_str!("../migrations/0002_trust.sql")),
    ];
    for (v, name, sql) in &files[..version] {
        for stmt in sql.split(';') {
            let stmt: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if !stmt.trim().is_empty() {
                db.execute_raw(&stmt).await.expect("old schema");
            }
        }
        db.execute_raw(&format!(
            "INSERT INTO schema_migrations VALUES ({v}, '{name}', 0)"
        ))
        .await
        .expect("record");
    }
}

/// A database the old migrator brought fully up to date: nothing is re-run (which would fail
/// on the existing tables), its data stays, and later starts check the recorded checksums.
async fn old_complete_database_is_taken_over(url: &str) {
    {
        let db = Db::connect(url).await.expect("connect");
        old_migrator(&db, 2).await;
        db.close().await;
    }
    let db = Db::open(url).await.expect("take over");
    assert_eq!(
        db.schema_versions().await.expect("versions"),
        [1, 2, 3, 4, 5]
    );
    let (s, t) = new_session(&db).await;
    db.close().await;
    let db = Db::open(url).await.expect("second start");
    assert!(db.authorize(&s, &t.hash()).await.expect("read").is_some());
    db.close().await;
}

#[tokio::test]
async fn sqlite_database_of_the_old_migrator_is_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    old_complete_database_is_taken_over(&Db::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn an_edited_migration_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = Db::sqlite_url(dir.path());
    let db = Db::open(&url).await.expect("open");
    db.execute_raw("UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 1")
        .await
        .expect("tamper");
    db.close().await;
    let e = Db::open(&url).await.expect_err("checksum mismatch");
    assert!(format!("{e:?}").contains("VersionMismatch(1)"), "{e:?}");
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let e = Db::open("mysql://x").await.expect_err("unsupported");
    assert!(e.to_string().contains("sqlite://"), "{e}");
}

/// A fresh PostgreSQL database per run, so earlier runs cannot make a test pass or fail;
/// `None` when `DATABASE_URL` is not PostgreSQL (the PostgreSQL runs are done by .ci/run).
async fn postgres(tag: &str) -> Option<(Db, String, Db)> {
    let (url, name, admin) = postgres_empty(tag).await?;
    let db = Db::open(&url).await.expect("open test database");
    Some((db, name, admin))
}

/// A fresh PostgreSQL database that nobody has opened yet: (url, name, admin connection).
async fn postgres_empty(tag: &str) -> Option<(String, String, Db)> {
    // CI sets DATABASE_URL (.ci/run starts PostgreSQL): there a missing one is a failure,
    // not a silently green test.
    let in_ci = std::env::var_os("CI").is_some();
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            !in_ci,
            "CI is set but DATABASE_URL is not: the PostgreSQL run would be skipped"
        );
        eprintln!("DATABASE_URL not set: the PostgreSQL run is done by .ci/run, not here");
        return None;
    };
    if !url.starts_with("postgres") {
        assert!(!in_ci, "CI is set but DATABASE_URL is not PostgreSQL");
        eprintln!("DATABASE_URL is not PostgreSQL; skipping the PostgreSQL run");
        return None;
    }
    let name = format!(
        "leye_test_{tag}_{}_{}",
        std::process::id(),
        assistant::store::now_ms()
    );
    let admin = Db::connect(&url).await.expect("connect to DATABASE_URL");
    admin
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url);
    Some((format!("{base}/{name}"), name, admin))
}

async fn drop_postgres(db: Db, name: String, admin: Db) {
    db.close().await;
    admin
        .execute_raw(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
}

#[tokio::test]
async fn postgres_store_works_when_database_url_is_set() {
    let Some((db, name, admin)) = postgres("suite").await else {
        return;
    };
    suite(&db).await;
    let (s, _) = new_session(&db).await;
    db.add_message(&s, "assistant", "x", Channel::Web, "pending")
        .await
        .expect("pending");
    let url = format!(
        "{}/{name}",
        std::env::var("DATABASE_URL")
            .expect("set")
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .expect("url")
    );
    db.close().await;
    let db = Db::open(&url).await.expect("reopen");
    assert_eq!(db.messages(&s).await.expect("m")[0].status, "incomplete");
    drop_postgres(db, name, admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_replicas_starting_together_migrate_once() {
    let Some((url, name, admin)) = postgres_empty("replicas").await else {
        return;
    };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Db::open(&url).await })
        })
        .collect();
    let mut dbs = Vec::new();
    for o in opens {
        dbs.push(o.await.expect("join").expect("every replica starts"));
    }
    assert_eq!(
        dbs[0].schema_versions().await.expect("versions"),
        [1, 2, 3, 4, 5]
    );
    for db in dbs.drain(1..) {
        db.close().await;
    }
    drop_postgres(dbs.remove(0), name, admin).await;
}

#[tokio::test]
async fn postgres_database_of_the_old_migrator_is_taken_over() {
    let Some((url, name, admin)) = postgres_empty("old").await else {
        return;
    };
    old_complete_database_is_taken_over(&url).await;
    let db = Db::connect(&url).await.expect("connect");
    drop_postgres(db, name, admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_orders_and_uniqueness_hold_under_concurrency() {
    let Some((db, name, admin)) = postgres("races").await else {
        return;
    };
    races(&db).await;
    claims(&db).await;
    drop_postgres(db, name, admin).await;
}

/// WeChat storage: users by openid (one per kind and openid, even when two first messages
/// race), login tokens, owned sessions, message keys seen once, and the outbox claimed by
/// concurrent workers without a row taken twice.
async fn wechat_store(db: &Db) {
    use assistant::domain::TokenHash;
    use assistant::store::{Dedup, OutboxStatus};
    let now = assistant::store::now_ms();
    let (a, b) = tokio::join!(
        db.wechat_user("mp", "openid-1", now),
        db.wechat_user("mp", "openid-1", now)
    );
    let (a, b) = (a.expect("user"), b.expect("user"));
    assert_eq!(a.id, b.id, "one user per openid");
    let mini = db
        .wechat_user("miniprogram", "openid-1", now)
        .await
        .expect("user");
    assert_ne!(mini.id, a.id, "the mini-program's openid is another user");

    let token = SessionToken::new();
    db.add_wechat_token(&mini.id, &token.hash(), now, now + 60_000)
        .await
        .expect("token");
    let found = db
        .wechat_user_by_token(&token.hash(), now)
        .await
        .expect("lookup")
        .expect("valid");
    assert_eq!(found.id, mini.id);
    assert!(
        db.wechat_user_by_token(&token.hash(), now + 120_000)
            .await
            .expect("lookup")
            .is_none(),
        "expired"
    );
    let sid = db
        .create_owned_session(Channel::Miniprogram, &mini.id)
        .await
        .expect("session");
    assert!(db
        .authorize(&sid, &token.hash())
        .await
        .expect("auth")
        .is_some());
    assert!(db
        .authorize(&sid, &TokenHash::from_stored("0".repeat(64)))
        .await
        .expect("auth")
        .is_none());
    assert_eq!(
        db.wechat_user_of_session(&sid)
            .await
            .expect("owner")
            .map(|u| u.id),
        Some(mini.id.clone())
    );

    let results: Vec<Dedup> = futures_join_all((0..6).map(|_| db.dedup("msg:77", now, 10_000)))
        .await
        .into_iter()
        .map(|r| r.expect("dedup"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == Dedup::New).count(),
        1,
        "{results:?}"
    );
    // Not yet taken and recent: a retry waits; old (its delivery died): the retry takes it.
    assert_eq!(
        db.dedup("msg:77", now + 5_000, 10_000)
            .await
            .expect("retry"),
        Dedup::Seen(None)
    );
    assert_eq!(
        db.dedup("msg:77", now + 20_000, 10_000)
            .await
            .expect("retry"),
        Dedup::New
    );
    db.dedup_reply("msg:77", "答复").await.expect("reply");
    assert_eq!(
        db.dedup("msg:77", now + 90_000, 10_000)
            .await
            .expect("again"),
        Dedup::Seen(Some("答复".into()))
    );
    db.dedup("msg:78", now, 10_000).await.expect("new");
    db.dedup_taken("msg:78").await.expect("taken");
    assert_eq!(
        db.dedup("msg:78", now + 90_000, 10_000)
            .await
            .expect("again"),
        Dedup::Seen(None)
    );

    for i in 0..20 {
        db.outbox_push(
            "custom_send",
            &format!("{{\"text\":\"{i}\"}}"),
            Some(&sid),
            now,
        )
        .await
        .expect("push");
    }
    let claims = futures_join_all((0..4).map(|_| db.outbox_claim(now, 60_000, 8))).await;
    let mut ids = HashSet::new();
    let mut total = 0;
    for c in claims {
        for r in c.expect("claim") {
            total += 1;
            assert!(ids.insert(r.id.clone()), "row {} claimed twice", r.id);
        }
    }
    assert_eq!(total, 20, "every row claimed exactly once");
    assert!(
        db.outbox_claim(now, 60_000, 8)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    // A lease that ran out (a dead worker) is taken again.
    let again = db
        .outbox_claim(now + 61_000, 60_000, 50)
        .await
        .expect("claim");
    assert_eq!(again.len(), 20);
    for (i, r) in again.iter().enumerate() {
        let status = if i % 2 == 0 {
            OutboxStatus::Sent
        } else {
            OutboxStatus::Pending
        };
        db.outbox_mark(&r.id, status, now + 500_000, "")
            .await
            .expect("mark");
    }
    assert_eq!(db.outbox_counts().await.expect("counts"), (10, 10, 0));
    assert!(
        db.outbox_claim(now + 62_000, 60_000, 50)
            .await
            .expect("c")
            .is_empty(),
        "backing off"
    );
    assert_eq!(
        db.outbox_claim(now + 600_000, 60_000, 50)
            .await
            .expect("c")
            .len(),
        10
    );
    assert_eq!(db.outbox_attempts().await.expect("attempts"), 20);
}

async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<F> = fs.collect();
    let mut out = Vec::new();
    // Polled together: started before any is awaited to the end.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for d in done {
        out.extend(d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_wechat_store() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&Db::sqlite_url(home.path())).await.expect("open");
    wechat_store(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_wechat_store() {
    let Some((db, name, admin)) = postgres("wechat").await else {
        return;
    };
    wechat_store(&db).await;
    drop_postgres(db, name, admin).await;
}
