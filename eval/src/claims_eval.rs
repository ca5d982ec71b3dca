//! 政策申领 scenarios: a citizen's words and/or facts → the benefit cards they qualify for.
//! Measures the fact reading ([`assistant::dialogue::claims::learn_facts`]) and the rules
//! engine over the bundled cards together: precision and recall of "qualified", cards
//! predicted qualified that the scenario says are excluded, and the confusion per card.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assistant::dialogue::claims::{learn_facts, Benefits};
use knowledge::benefits::rules::{evaluate, Eligibility, Fact, Facts};
use serde::Deserialize;

/// One scenario.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// Name.
    pub id: String,
    /// What the citizen says, message by message.
    #[serde(default)]
    pub say: Vec<String>,
    /// Facts given as a profile (applied after the messages).
    #[serde(default)]
    pub facts: BTreeMap<String, Fact>,
    /// Cards the citizen qualifies for (complete: anything else predicted is an error).
    pub qualified: Vec<String>,
    /// Cards the citizen is excluded from (predicting them qualified is the worst error).
    #[serde(default)]
    pub not_qualified: Vec<String>,
}

/// Loads a JSONL set.
pub fn load(path: &Path) -> anyhow::Result<Vec<Scenario>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Per-card counts.
#[derive(Debug, Default, Clone)]
pub struct CardCounts {
    /// Predicted and expected qualified.
    pub tp: usize,
    /// Predicted qualified, not expected.
    pub fp: usize,
    /// Expected qualified, not predicted.
    pub fn_: usize,
    /// Predicted qualified although labelled excluded.
    pub excluded: usize,
}

/// The result.
#[derive(Debug, Default)]
pub struct Report {
    /// Scenarios run.
    pub scenarios: usize,
    /// Per card.
    pub cards: BTreeMap<String, CardCounts>,
    /// Lines describing each miss.
    pub misses: Vec<String>,
}

impl Report {
    fn sum(&self, f: impl Fn(&CardCounts) -> usize) -> usize {
        self.cards.values().map(f).sum()
    }
    /// Precision of "qualified".
    pub fn precision(&self) -> f64 {
        let tp = self.sum(|c| c.tp) as f64;
        let fp = self.sum(|c| c.fp) as f64;
        if tp + fp == 0.0 {
            1.0
        } else {
            tp / (tp + fp)
        }
    }
    /// Recall of "qualified".
    pub fn recall(&self) -> f64 {
        let tp = self.sum(|c| c.tp) as f64;
        let fn_ = self.sum(|c| c.fn_) as f64;
        if tp + fn_ == 0.0 {
            1.0
        } else {
            tp / (tp + fn_)
        }
    }
    /// Predicted qualified although excluded.
    pub fn excluded(&self) -> usize {
        self.sum(|c| c.excluded)
    }
}

/// Runs the scenarios over the active cards; `year` dates graduation years.
pub fn run(set: &[Scenario], benefits: &Benefits, year: i32) -> Report {
    let mut r = Report {
        scenarios: set.len(),
        ..Report::default()
    };
    for c in benefits.cards() {
        r.cards.entry(c.id.clone()).or_default();
    }
    for s in set {
        let mut facts = Facts::default();
        for m in &s.say {
            learn_facts(&mut facts, &assistant::guard::citizen_text(m), year);
        }
        for (k, v) in &s.facts {
            facts.set(k, v.clone());
        }
        let predicted: BTreeSet<String> = benefits
            .cards()
            .iter()
            .filter(|c| evaluate(c, &facts) == Eligibility::Qualified)
            .map(|c| c.id.clone())
            .collect();
        let expected: BTreeSet<String> = s.qualified.iter().cloned().collect();
        for id in predicted.union(&expected) {
            let e = r.cards.entry(id.clone()).or_default();
            match (predicted.contains(id), expected.contains(id)) {
                (true, true) => e.tp += 1,
                (true, false) => {
                    e.fp += 1;
                    if s.not_qualified.contains(id) {
                        e.excluded += 1;
                        r.misses
                            .push(format!("{}: {id} predicted qualified but excluded", s.id));
                    } else {
                        r.misses
                            .push(format!("{}: {id} predicted qualified, not expected", s.id));
                    }
                }
                (false, true) => {
                    e.fn_ += 1;
                    r.misses.push(format!(
                        "{}: {id} expected qualified, got {:?}",
                        s.id,
                        benefits
                            .cards()
                            .iter()
                            .find(|c| &c.id == id)
                            .map(|c| evaluate(c, &facts))
                    ));
                }
                (false, false) => {}
            }
        }
    }
    r
}

/// Prints the report.
pub fn print(r: &Report) {
    println!("{} scenarios", r.scenarios);
    println!(
        "qualified: precision {:.3}  recall {:.3}  predicted qualified but excluded: {}",
        r.precision(),
        r.recall(),
        r.excluded()
    );
    println!(
        "{:<40} {:>4} {:>4} {:>4} {:>4}",
        "card", "tp", "fp", "fn", "excl"
    );
    for (id, c) in &r.cards {
        println!(
            "{id:<40} {:>4} {:>4} {:>4} {:>4}",
            c.tp, c.fp, c.fn_, c.excluded
        );
    }
    for m in &r.misses {
        println!("  miss: {m}");
    }
}
