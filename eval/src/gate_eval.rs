//! The evidence gate on labelled questions: `eval/data/gate.jsonl` (covered / not covered by
//! the corpus) plus every policy question of `retrieval.jsonl` (covered by construction).
//! Prints the operating point of the configured thresholds (false not-covered, false
//! answered) and a sweep around it.

use std::path::Path;

use assistant::dialogue::evidence::{self, GateFigures};
use assistant::dialogue::seam::Retrieve;
use assistant::dialogue::DialogueConfig;

/// One labelled question.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Item {
    /// The question.
    pub question: String,
    /// Whether a document of the corpus answers it.
    pub covered: bool,
}

/// Reads the gate set and adds the retrieval set's policy questions as covered.
pub fn load(gate: &Path, retrieval: &Path) -> anyhow::Result<Vec<Item>> {
    let mut items: Vec<Item> = crate::load_jsonl(gate)?;
    for item in crate::retrieval_eval::load(retrieval)? {
        if let crate::retrieval_eval::Item::Policy { question, .. } = item {
            items.push(Item {
                question,
                covered: true,
            });
        }
    }
    Ok(items)
}

/// Figures of one question.
pub fn figures(kb: &dyn Retrieve, items: &[Item], k: usize) -> anyhow::Result<Vec<GateFigures>> {
    items
        .iter()
        .map(|it| Ok(evidence::retrieve(kb, &it.question, k)?.1))
        .collect()
}

/// (false not-covered rate, false answered rate) at thresholds `cfg`.
pub fn operating_point(items: &[Item], figs: &[GateFigures], cfg: &DialogueConfig) -> (f64, f64) {
    rates(items, figs, |f| f.passes(cfg))
}

/// (false not-covered rate, false answered rate) when `pass` decides.
fn rates(items: &[Item], figs: &[GateFigures], pass: impl Fn(&GateFigures) -> bool) -> (f64, f64) {
    let (mut fn_, mut cov, mut fp, mut unc) = (0, 0, 0, 0);
    for (it, f) in items.iter().zip(figs) {
        let pass = pass(f);
        if it.covered {
            cov += 1;
            fn_ += usize::from(!pass);
        } else {
            unc += 1;
            fp += usize::from(pass);
        }
    }
    (
        fn_ as f64 / cov.max(1) as f64,
        fp as f64 / unc.max(1) as f64,
    )
}

/// Prints the configured operating point, the misses, and a sweep.
pub fn print(items: &[Item], figs: &[GateFigures], cfg: &DialogueConfig) {
    let covered = items.iter().filter(|i| i.covered).count();
    println!(
        "{} questions: {covered} covered, {} not covered",
        items.len(),
        items.len() - covered
    );
    let (fnr, fpr) = operating_point(items, figs, cfg);
    println!(
        "configured (min_dense_score {:.2}; in one evidence sentence min_term_overlap {:.2} or ≥{} shared terms): false not-covered {:.3}, false answered {:.3}",
        cfg.min_dense_score,
        cfg.min_term_overlap,
        evidence::MIN_SHARED_TERMS,
        fnr,
        fpr
    );
    for (it, f) in items.iter().zip(figs) {
        if it.covered != f.passes(cfg) {
            println!(
                "  {} {}  dense {:.3} coverage {:.2} shared {}",
                if it.covered {
                    "false not-covered:"
                } else {
                    "false answered:  "
                },
                it.question,
                f.best_dense,
                f.coverage,
                f.shared
            );
        }
    }
    // The dense score barely separates the two kinds with e5-small (0.85–0.92 for both), so
    // the sweep is over the term rule: share of key terms in one sentence × shared terms.
    println!("sweep: min_term_overlap × shared terms in one sentence → (false not-covered, false answered)");
    for shared in [2usize, 3, 4, 5] {
        let mut row = format!("  ≥{shared} terms:");
        for overlap in [0.3f32, 0.4, 0.5, 0.6] {
            let (a, b) = rates(items, figs, |f| {
                f.passes_at(cfg.min_dense_score, overlap, shared)
            });
            row.push_str(&format!("  {overlap:.1}→({a:.3},{b:.3})"));
        }
        println!("{row}");
    }
}
