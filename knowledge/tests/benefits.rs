//! The bundled benefit cards against their sources: every quoted span is found verbatim in
//! the 2025 plan (bundled) or in the laws of `eval/data/laws/`; an altered span fails naming
//! card, field and document; a card is active only while its document is present.

use std::path::{Path, PathBuf};

use knowledge::benefits::check::{check_all, check_card, is_active, DocText};
use knowledge::benefits::rules::{evaluate, Eligibility, Fact, Facts};
use knowledge::benefits::{bundled_dir, load_dir, Card};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs_in(dir: &Path) -> Vec<DocText> {
    let (docs, errors) = knowledge::benefits::check::load_documents(&[dir.to_path_buf()]);
    assert!(errors.is_empty(), "{errors:?}");
    docs
}

fn all_docs() -> Vec<DocText> {
    let mut d = docs_in(&root().join("knowledge/data/policies"));
    d.extend(docs_in(&root().join("eval/data/laws")));
    d
}

fn cards() -> Vec<Card> {
    load_dir(&bundled_dir()).expect("the bundled cards load")
}

#[test]
fn every_bundled_card_checks_out_verbatim() {
    let cards = cards();
    assert!(cards.len() >= 30, "{} cards", cards.len());
    let problems = check_all(&cards, &all_docs());
    assert!(
        problems.is_empty(),
        "{}",
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The five groups of the plan are all served.
    for group in [
        "graduate", "migrant", "flexible", "veteran", "disabled", "women", "elderly",
    ] {
        let fact = format!("group.{group}");
        assert!(
            cards.iter().any(|c| c
                .who
                .iter()
                .any(|w| w.fact.as_deref() == Some(fact.as_str()))),
            "no card for {group}"
        );
    }
}

#[test]
fn an_altered_span_fails_naming_card_field_and_document() {
    let mut card = cards()
        .into_iter()
        .find(|c| c.id == "unemployment-insurance-benefit")
        .expect("card");
    card.who[0].quote = "失业前用人单位和本人已经缴纳失业保险费满两年的".into();
    let problems = check_card(&card, &all_docs());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!(p.card, "unemployment-insurance-benefit");
    assert!(p.field.starts_with("who[0]"), "{}", p.field);
    assert_eq!(p.doc, "中华人民共和国社会保险法");
    assert!(p.to_string().contains("满两年"), "{p}");
}

#[test]
fn a_card_is_active_only_while_its_document_is_present() {
    let plan_only = docs_in(&root().join("knowledge/data/policies"));
    let cards = cards();
    let ui = cards
        .iter()
        .find(|c| c.id == "unemployment-insurance-benefit")
        .expect("card");
    let gig = cards.iter().find(|c| c.id == "gig-market").expect("card");
    assert!(!is_active(ui, &plan_only), "the law is not ingested");
    assert!(is_active(gig, &plan_only), "the plan is bundled");
    assert!(is_active(ui, &all_docs()));
    // Matched by title (the law has no 文号), not by file name.
    let mut renamed = all_docs();
    for d in &mut renamed {
        if d.title == "中华人民共和国社会保险法" {
            d.title = "社会保险法（另一份副本）".into();
        }
    }
    assert!(!is_active(ui, &renamed));
}

#[test]
fn a_graduate_gets_graduate_items_and_not_veteran_ones() {
    let cards = cards();
    let mut f = Facts::default();
    f.set("group.graduate", Fact::Bool(true))
        .set("group.veteran", Fact::Bool(false))
        .set("city", Fact::Text("济南市".into()));
    let status = |id: &str| evaluate(cards.iter().find(|c| c.id == id).expect(id), &f);
    assert_eq!(status("graduate-internship"), Eligibility::Qualified);
    assert_eq!(
        status("graduate-empowerment-platform"),
        Eligibility::Qualified
    );
    assert!(matches!(
        status("veteran-free-training"),
        Eligibility::NotQualified { .. }
    ));
    assert!(matches!(
        status("unemployment-insurance-benefit"),
        Eligibility::Possibly { ref missing } if missing.contains(&"months_insured".to_string())
    ));
}

#[test]
fn bad_card_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("x.toml"),
        "id = \"y\"\nname = \"n\"\nkind = \"benefit\"\nissuer = \"i\"\n[source]\ntitle = \"t\"\n[what]\ntext = \"a\"\nquote = \"abcd\"\n",
    )
    .expect("write");
    let e = load_dir(dir.path()).expect_err("id must match the file");
    assert!(e.to_string().contains("x.toml"), "{e}");
    std::fs::write(
        dir.path().join("x.toml"),
        "id = \"x\"\nname = \"n\"\nkind = \"benefit\"\nissuer = \"i\"\n[source]\ntitle = \"t\"\n[[who]]\nlabel = \"l\"\nfact = \"shoe_size\"\nop = \"min\"\nvalue = 1\nquote = \"abcd\"\n[what]\ntext = \"a\"\nquote = \"abcd\"\n",
    )
    .expect("write");
    let e = load_dir(dir.path()).expect_err("unknown fact");
    assert!(e.to_string().contains("shoe_size"), "{e}");
}

#[test]
fn drafts_quote_their_article_verbatim_and_are_not_loadable_as_they_are() {
    let doc =
        knowledge::parse::parse_file(&root().join("eval/data/laws/cn-2018-shehui-baoxian-fa.md"))
            .expect("parse");
    let drafts = knowledge::benefits::draft::drafts(&doc, "sil");
    let ui = drafts
        .iter()
        .find(|d| d.article == "第四十五条")
        .unwrap_or_else(|| {
            panic!(
                "a draft for 第四十五条: {:?}",
                drafts.iter().map(|d| &d.article).collect::<Vec<_>>()
            )
        });
    assert!(
        ui.toml.contains("从失业保险基金中领取失业保险金"),
        "{}",
        ui.toml
    );
    let text = DocText::from_document(&doc);
    let value: toml::Value = toml::from_str(&ui.toml).expect("valid TOML");
    let quote = value["what"]["quote"].as_str().expect("quote");
    assert!(
        text.text
            .contains(&knowledge::benefits::check::normalise(quote)),
        "{quote}"
    );
    // Conditions come without facts: a person must choose them before the card loads.
    if value.get("who").is_some() {
        assert!(Card::parse(&ui.toml, "sil-1.toml").is_err());
    }
}
