//! The bundled corpus and the law corpus of the evaluation (`eval/data/laws/`) parse and
//! chunk as a person would expect.

use std::path::{Path, PathBuf};

use knowledge::chunking::{chunk, ChunkConfig};
use knowledge::parse::parse_file;

fn shared_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/data/laws")
}

#[test]
fn the_2025_plan_chunks_along_its_hierarchy() {
    let d = parse_file(&Path::new(knowledge::DATA_DIR).join("policies/sd-2025-leye-shandong.md"))
        .expect("parse");
    let chunks = chunk(&d, &ChunkConfig::default());
    let gig = chunks
        .iter()
        .find(|c| c.text.contains("一县一家"))
        .expect("the gig-market passage");
    assert_eq!(
        gig.section(),
        "二、打造重点群体就业创业服务平台 > （三）打造灵活就业人员就业创业服务平台"
    );
    let grad = chunks
        .iter()
        .find(|c| c.text.contains("2028年底"))
        .expect("the graduates passage");
    assert_eq!(
        grad.section(),
        "二、打造重点群体就业创业服务平台 > （一）打造高校毕业生就业创业服务平台"
    );
    for c in &chunks {
        assert!(
            c.text.chars().count() <= 500,
            "{} chars",
            c.text.chars().count()
        );
    }
}

#[test]
fn every_shared_law_parses_and_articles_are_found() {
    let dir = shared_policies();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("eval/data/laws") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let d = parse_file(&path).expect("parse");
        assert!(!d.metadata.title.is_empty(), "{}", path.display());
        assert!(!d.metadata.region.is_empty(), "{}: region", path.display());
        let chunks = chunk(&d, &ChunkConfig::default());
        assert!(!chunks.is_empty());
        n += 1;
        if d.metadata.title.contains("就业促进法") {
            let c = chunks
                .iter()
                .find(|c| c.text.contains("劳动者依法享有平等就业和自主择业的权利"))
                .expect("article 3");
            assert_eq!(c.section(), "第一章 总则");
            assert!(
                c.article.as_deref().is_some_and(|a| a.contains("第三条")
                    || a.starts_with("第一条")
                    || a.starts_with("第二条")),
                "{:?}",
                c.article
            );
        }
    }
    // The 16 laws and regulations (the 2025 plan is the bundled one, tested above).
    assert!(n >= 16, "found {n} documents");
}

#[test]
fn bundled_job_listings_load_cleanly_and_match_their_generator() {
    let path = Path::new(knowledge::DATA_DIR).join("jobs/sample_jobs.jsonl");
    let text = std::fs::read_to_string(&path).expect("bundled listings");
    let report = knowledge::jobs::load_jsonl(&text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.listings.len() >= 300);
    // The generator is the gen-jobs binary; cargo builds it for this test.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gen-jobs"))
        .output()
        .expect("run gen-jobs");
    assert!(out.status.success(), "gen-jobs failed");
    let regenerated = String::from_utf8(out.stdout).expect("UTF-8 listings");
    assert_eq!(text, regenerated, "knowledge/data/jobs/sample_jobs.jsonl is stale: run `cargo run -p knowledge --bin gen-jobs > knowledge/data/jobs/sample_jobs.jsonl`");
}
