//! `leye cards check|list` as an operator runs them: the bundled cards against the bundled
//! plan and the laws of `eval/data/laws/` given with `--docs`.

use std::path::Path;
use std::process::{Command, Output};

fn leye(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leye"))
        .args(args)
        .env("LEYE_HOME", home)
        .env_remove("LEYE_CONFIG")
        .current_dir(home)
        .output()
        .expect("run leye")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn laws() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/data/laws")
        .display()
        .to_string()
}

#[test]
fn check_passes_on_the_bundled_cards_and_fails_on_an_altered_span() {
    let home = tempfile::tempdir().expect("tempdir");
    let ok = leye(home.path(), &["cards", "check", "--docs", &laws()]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        !text(&ok).contains("未检查"),
        "every card checked: {}",
        text(&ok)
    );

    // Without the laws, their cards are reported as not checked (inactive), not as passed.
    let plan_only = leye(home.path(), &["cards", "check"]);
    assert!(plan_only.status.success(), "{}", text(&plan_only));
    assert!(text(&plan_only).contains("未检查"), "{}", text(&plan_only));

    // A card folder with one altered span.
    let cards = home.path().join("cards");
    std::fs::create_dir(&cards).expect("mkdir");
    let src = knowledge::benefits::bundled_dir().join("unemployment-insurance-benefit.toml");
    let altered = std::fs::read_to_string(src)
        .expect("card")
        .replace("缴纳失业保险费满一年的", "缴纳失业保险费满半年的");
    std::fs::write(cards.join("unemployment-insurance-benefit.toml"), altered).expect("write");
    let bad = Command::new(env!("CARGO_BIN_EXE_leye"))
        .args(["cards", "check", "--docs", &laws()])
        .env("LEYE_HOME", home.path())
        .env("LEYE_KNOWLEDGE__BENEFITS", &cards)
        .env_remove("LEYE_CONFIG")
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let out = text(&bad);
    assert!(
        out.contains("unemployment-insurance-benefit")
            && out.contains("who[0]")
            && out.contains("中华人民共和国社会保险法"),
        "{out}"
    );
}

#[test]
fn list_shows_which_cards_are_active() {
    let home = tempfile::tempdir().expect("tempdir");
    let lines = |o: &Output| String::from_utf8_lossy(&o.stdout).to_string();
    let line = |t: &str, id: &str| {
        t.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} listed: {t}"))
            .to_string()
    };
    // An empty knowledge base activates nothing: `list` reads what is ingested, not the
    // document folders of the configuration.
    let out = leye(home.path(), &["cards", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = lines(&out);
    assert!(line(&t, "gig-market").ends_with("not ingested"), "{t}");
    assert!(!t.lines().any(|l| l.ends_with(" active")), "{t}");

    // Files given with --docs count as if ingested (a preview).
    let plan = knowledge::DATA_DIR.to_string() + "/policies";
    let out = leye(home.path(), &["cards", "list", "--docs", &plan]);
    let t = lines(&out);
    assert!(line(&t, "gig-market").ends_with(" active"), "{t}");
    assert!(
        line(&t, "unemployment-insurance-benefit").contains("inactive"),
        "{t}"
    );
    let with_laws = leye(
        home.path(),
        &["cards", "list", "--docs", &plan, "--docs", &laws()],
    );
    let t = lines(&with_laws);
    assert!(t.lines().all(|l| l.ends_with(" active")), "{t}");
}

#[test]
fn draft_writes_reviewable_drafts_that_are_not_loaded() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = home.path().join("drafts");
    let doc = format!("{}/cn-2018-shehui-baoxian-fa.md", laws());
    let o = leye(
        home.path(),
        &["cards", "draft", &doc, "--out", out.to_str().expect("path")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let files: Vec<_> = std::fs::read_dir(&out)
        .expect("drafts")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!files.is_empty());
    assert!(files
        .iter()
        .all(|f| f.to_string_lossy().ends_with(".toml.draft")));
    // A folder of drafts loads no cards.
    assert!(knowledge::benefits::load_dir(&out)
        .expect("loads")
        .is_empty());
    let facts = leye(home.path(), &["cards", "facts"]);
    assert!(String::from_utf8_lossy(&facts.stdout).contains("months_insured"));
}
