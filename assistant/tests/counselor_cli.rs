//! `leye counselor …` as an operator runs it: the real binary against a SQLite database in a
//! temporary home.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use assistant::console::accounts::verify_password;
use assistant::store::Db;

fn leye(home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leye"));
    cmd.args(args)
        .env("LEYE_HOME", home)
        .env("LEYE_DATABASE__URL", Db::sqlite_url(home))
        .env_remove("LEYE_CONFIG")
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run leye");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("leye output")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn accounts_are_added_listed_disabled_and_reset_with_argon2id_hashes() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let out = leye(h, &["counselor", "add", "zhang", "--name", "张老师"], None);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("initial password (shown once): "))
        .expect("the initial password is printed once")
        .to_string();
    assert_eq!(password.len(), 16);

    let db = Db::open(&Db::sqlite_url(h)).await.expect("db");
    let c = db
        .counselor_by_username("zhang")
        .await
        .expect("q")
        .expect("added");
    assert_eq!(
        (c.role.as_str(), c.display_name.as_str()),
        ("counselor", "张老师")
    );
    assert!(
        c.password_hash.starts_with("$argon2id$"),
        "{}",
        c.password_hash
    );
    assert!(verify_password(&c.password_hash, &password));

    // A taken name, a bad role and a weak password from stdin are clear errors.
    let again = leye(h, &["counselor", "add", "zhang", "--name", "重名"], None);
    assert!(
        !again.status.success() && text(&again).contains("taken"),
        "{}",
        text(&again)
    );
    let role = leye(
        h,
        &["counselor", "add", "li", "--name", "李", "--role", "root"],
        None,
    );
    assert!(
        !role.status.success() && text(&role).contains("--role"),
        "{}",
        text(&role)
    );
    let weak = leye(
        h,
        &[
            "counselor",
            "add",
            "wang",
            "--name",
            "王",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(
        !weak.status.success() && text(&weak).contains("10 characters"),
        "{}",
        text(&weak)
    );
    let ok = leye(
        h,
        &[
            "counselor",
            "add",
            "wang",
            "--name",
            "王主管",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        Some("a-chosen-password-1\n"),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        !text(&ok).contains("a-chosen-password-1"),
        "a password from stdin is not echoed"
    );

    let list = leye(h, &["counselor", "list"], None);
    let listed = text(&list);
    assert!(
        listed.contains("zhang") && listed.contains("wang") && listed.contains("supervisor"),
        "{listed}"
    );

    let dis = leye(h, &["counselor", "disable", "zhang"], None);
    assert!(dis.status.success(), "{}", text(&dis));
    assert!(text(&leye(h, &["counselor", "list"], None)).contains("disabled"));
    let none = leye(h, &["counselor", "disable", "nobody"], None);
    assert!(!none.status.success());

    let reset = leye(
        h,
        &["counselor", "reset-password", "wang", "--password-stdin"],
        Some("another-password-2\n"),
    );
    assert!(reset.status.success(), "{}", text(&reset));
    let w = db
        .counselor_by_username("wang")
        .await
        .expect("q")
        .expect("wang");
    assert!(verify_password(&w.password_hash, "another-password-2"));
    assert!(!verify_password(&w.password_hash, "a-chosen-password-1"));
}
