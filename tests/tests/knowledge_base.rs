//! Ingest and search with the real embedder and the embedded Qdrant store: idempotency,
//! replacement, removal, persistence, and filters that never return a wrong city or an expired
//! listing.

use std::path::Path;

use assistant::knowledge_base::{FileReport, KnowledgeBase};
use chrono::NaiveDate;
use knowledge::chunking::ChunkConfig;
use models::embed::Embedder;
use retrieval::edge::EdgeStore;
use retrieval::hybrid::{JobQuery, PolicyQuery};
use retrieval::indexer::Outcome;
use retrieval::store::{Condition, Filter, Mode, POLICY_CHUNKS};

fn kb(dir: &Path) -> KnowledgeBase {
    let store = EdgeStore::open(dir).expect("open store");
    let embedder = Embedder::load(&tests::embedder_path()).expect("embedder");
    KnowledgeBase::with_store(Box::new(store), embedder, ChunkConfig::default()).expect("kb")
}

fn chunks_of(kb: &KnowledgeBase, doc_id: &str) -> usize {
    kb.store()
        .count(
            POLICY_CHUNKS,
            &Filter::default().and(Condition::AnyOf {
                key: "doc_id".into(),
                values: vec![doc_id.into()],
            }),
        )
        .expect("count")
}

#[test]
fn ingest_is_idempotent_replaces_changes_removes_and_persists() {
    let store_dir = tempfile::tempdir().expect("store dir");
    let docs = tempfile::tempdir().expect("docs dir");
    let file = docs.path().join("notice.md");
    let v1 = "---\ntitle: 测试通知\nregion: 山东省\n---\n\n一、就业服务\n\n（一）零工市场。各县建设公共零工市场，提供即时快招服务。\n\n（二）技能培训。对失业人员开展免费技能培训。\n";
    std::fs::write(&file, v1).expect("write");
    let kb1 = kb(store_dir.path());
    let outcome = |r: FileReport| match r {
        FileReport::Document { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    };
    let added = outcome(kb1.ingest_file(&file, &mut |_, _| {}));
    let Outcome::Added(n1) = added else {
        panic!("{added:?}")
    };
    assert_eq!(chunks_of(&kb1, "notice"), n1);
    assert_eq!(
        outcome(kb1.ingest_file(&file, &mut |_, _| {})),
        Outcome::Unchanged
    );

    // A changed document replaces its chunks: the old text is gone, the new one found.
    let v2 = v1.replace("（二）技能培训。对失业人员开展免费技能培训。", "（二）创业担保贷款。符合条件的创业者可申请贷款。\n\n（三）见习岗位。组织高校毕业生参加就业见习。");
    std::fs::write(&file, v2).expect("write");
    let Outcome::Replaced(n2) = outcome(kb1.ingest_file(&file, &mut |_, _| {})) else {
        panic!("expected replacement")
    };
    assert_eq!(chunks_of(&kb1, "notice"), n2, "no stale chunks remain");
    let hits = kb1
        .retriever()
        .search_policies(&PolicyQuery::new("技能培训", 10))
        .expect("search");
    assert!(
        hits.iter().all(|h| !h.text.contains("免费技能培训")),
        "old text is gone: {hits:?}"
    );
    let hits = kb1
        .retriever()
        .search_policies(&PolicyQuery::new("创业担保贷款怎么申请", 3))
        .expect("search");
    assert!(hits[0].text.contains("创业担保贷款"), "{hits:?}");
    assert_eq!(hits[0].section, "一、就业服务 > （二）创业担保贷款");
    drop(kb1);

    // Reopened, the index is still there; then removal.
    let kb2 = kb(store_dir.path());
    assert_eq!(chunks_of(&kb2, "notice"), n2);
    assert_eq!(
        outcome(kb2.ingest_file(&file, &mut |_, _| {})),
        Outcome::Unchanged
    );
    assert_eq!(kb2.remove("notice").expect("remove"), n2);
    assert_eq!(chunks_of(&kb2, "notice"), 0);
}

#[test]
fn job_search_never_returns_a_wrong_city_or_an_expired_listing() {
    let store_dir = tempfile::tempdir().expect("store dir");
    let kb = kb(store_dir.path());
    let jobs = Path::new(knowledge::DATA_DIR).join("jobs/sample_jobs.jsonl");
    match kb.ingest_file(&jobs, &mut |_, _| {}) {
        FileReport::Jobs {
            indexed, errors, ..
        } => assert!(indexed >= 300 && errors.is_empty()),
        other => panic!("{other:?}"),
    }
    // A second ingest skips every listing.
    match kb.ingest_file(&jobs, &mut |_, _| {}) {
        FileReport::Jobs {
            indexed, unchanged, ..
        } => assert_eq!((indexed, unchanged), (0, 320)),
        other => panic!("{other:?}"),
    }
    let today = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
    let listings =
        knowledge::jobs::load_jsonl(&std::fs::read_to_string(&jobs).expect("read")).listings;
    let expired = listings.iter().filter(|l| l.expires_at < today).count();
    assert!(expired > 0, "the sample has expired listings to exclude");
    for city in ["青岛市", "济南市", "菏泽市"] {
        for (text, mode) in [
            ("电焊工", Mode::Hybrid),
            ("家政保洁 兼职", Mode::Dense),
            ("外卖骑手 日结", Mode::Sparse),
        ] {
            let q = JobQuery {
                text: text.into(),
                cities: vec![city.into()],
                districts: vec![],
                types: vec![],
                min_salary: None,
                max_salary: None,
                groups: vec![],
                educations: Vec::new(),
                today,
                limit: 30,
                mode,
            };
            let hits = kb.retriever().search_jobs(&q).expect("search");
            for h in &hits {
                assert_eq!(h.listing.city, city, "{text}: wrong city");
                assert!(
                    h.listing.is_valid_on(today),
                    "{text}: expired or future listing {}",
                    h.listing.id
                );
            }
            if mode != Mode::Sparse {
                assert!(!hits.is_empty(), "{city} {text} {mode:?}");
            }
        }
    }
    // Without a city filter, expired listings still never appear, even when they match best.
    let expired_title = listings
        .iter()
        .find(|l| l.expires_at < today)
        .expect("one")
        .title
        .clone();
    let q = JobQuery {
        text: expired_title,
        cities: vec![],
        districts: vec![],
        types: vec![],
        min_salary: None,
        max_salary: None,
        groups: vec![],
        educations: Vec::new(),
        today,
        limit: 100,
        mode: Mode::Hybrid,
    };
    let hits = kb.retriever().search_jobs(&q).expect("search");
    assert!(!hits.is_empty() && hits.iter().all(|h| h.listing.is_valid_on(today)));
    // Type, group and salary filters.
    let q = JobQuery {
        text: "零工".into(),
        cities: vec![],
        districts: vec![],
        types: vec![knowledge::jobs::EmploymentType::Gig],
        min_salary: Some((200, knowledge::jobs::SalaryUnit::Day)),
        max_salary: None,
        groups: vec![knowledge::jobs::Group::Flexible],
        educations: Vec::new(),
        today,
        limit: 50,
        mode: Mode::Hybrid,
    };
    let hits = kb.retriever().search_jobs(&q).expect("search");
    assert!(!hits.is_empty());
    for h in &hits {
        let l = &h.listing;
        assert_eq!(l.employment_type, knowledge::jobs::EmploymentType::Gig);
        assert_eq!(l.salary_unit, knowledge::jobs::SalaryUnit::Day);
        assert!(l.salary_max >= 200 && l.groups.contains(&knowledge::jobs::Group::Flexible));
    }
}

#[test]
fn policy_search_finds_the_2025_plan_with_its_section() {
    let store_dir = tempfile::tempdir().expect("store dir");
    let kb = kb(store_dir.path());
    let doc = Path::new(knowledge::DATA_DIR).join("policies/sd-2025-leye-shandong.md");
    assert!(matches!(
        kb.ingest_file(&doc, &mut |_, _| {}),
        FileReport::Document {
            outcome: Outcome::Added(_),
            ..
        }
    ));
    let hits = kb
        .retriever()
        .search_policies(&PolicyQuery::new("零工市场怎么建设？", 3))
        .expect("search");
    assert_eq!(hits[0].doc_number, "鲁人社发〔2025〕9号");
    assert_eq!(
        hits[0].section,
        "二、打造重点群体就业创业服务平台 > （三）打造灵活就业人员就业创业服务平台"
    );
    // Region filters: a region the document is not for excludes it.
    let mut q = PolicyQuery::new("零工市场", 3);
    q.regions = vec!["北京市".into()];
    assert!(kb
        .retriever()
        .search_policies(&q)
        .expect("search")
        .is_empty());
    q.regions = vec!["山东省".into(), "全国".into()];
    assert!(!kb
        .retriever()
        .search_policies(&q)
        .expect("search")
        .is_empty());
}

/// A benefit card is active while its source document is in the knowledge base: matched by
/// 文号 or title and by its quoted spans in the stored chunks, never by file name. An operator's
/// own copy of a law, ingested under any name, activates the cards that quote it; removing it
/// or ingesting an altered copy deactivates them.
#[test]
fn benefit_cards_follow_what_is_ingested() {
    use knowledge::benefits::check::is_active;
    let home = tests::home_with_bundled_index();
    let kb = kb(&home.path().join("qdrant"));
    let cards = knowledge::benefits::load_dir(&knowledge::benefits::bundled_dir()).expect("cards");
    let card = |id: &str| cards.iter().find(|c| c.id == id).expect("card").clone();
    let (plan_card, law_card) = (card("gig-market"), card("unemployment-insurance-benefit"));
    let law_cards: Vec<_> = cards
        .iter()
        .filter(|c| c.source.key() == law_card.source.key())
        .collect();
    assert!(
        law_cards.len() >= 3,
        "cards quoting the social insurance law"
    );

    let docs = kb.documents().expect("documents");
    assert!(is_active(&plan_card, &docs), "the bundled plan is ingested");
    assert!(!is_active(&law_card, &docs), "the law is not ingested yet");

    // The operator's copy, under a file name of their own.
    let law = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../eval/data/laws/cn-2018-shehui-baoxian-fa.md"),
    )
    .expect("law");
    let own = tempfile::tempdir().expect("dir");
    let file = own.path().join("社保法-本单位存档.md");
    std::fs::write(&file, &law).expect("write");
    assert!(matches!(
        kb.ingest_file(&file, &mut |_, _| {}),
        FileReport::Document { .. }
    ));
    let docs = kb.documents().expect("documents");
    for c in &law_cards {
        assert!(
            is_active(c, &docs),
            "{} active once its law is ingested",
            c.id
        );
    }

    // A copy whose wording differs from the card's quote does not activate it.
    std::fs::write(
        &file,
        law.replace("缴纳失业保险费满一年的", "缴纳失业保险费满两年的"),
    )
    .expect("write");
    assert!(matches!(
        kb.ingest_file(&file, &mut |_, _| {}),
        FileReport::Document { .. }
    ));
    let docs = kb.documents().expect("documents");
    assert!(
        !is_active(&law_card, &docs),
        "altered copy in the knowledge base"
    );

    kb.remove("社保法-本单位存档").expect("remove");
    let docs = kb.documents().expect("documents");
    assert!(law_cards.iter().all(|c| !is_active(c, &docs)), "removed");
    assert!(is_active(&plan_card, &docs), "the plan stays");
}
