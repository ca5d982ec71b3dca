//! The router's labelled set (`eval/data/router.jsonl`): each message with the intent it
//! should get (and for handoffs, the reason). Prints precision and recall per intent, the
//! confusion pairs, and the count that must stay zero: labour-rights messages sent to job
//! search.

use std::collections::BTreeMap;
use std::path::Path;

use assistant::dialogue::router::{Route, Router};
use assistant::domain::{HandoffReason, Intent};

/// One labelled message.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Item {
    /// The message as a citizen types it.
    pub text: String,
    /// The intent it must get (`Intent::as_str`).
    pub intent: String,
    /// For handoffs: the reason (`HandoffReason::as_str`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Reads the set (JSON lines).
pub fn load(path: &Path) -> anyhow::Result<Vec<Item>> {
    crate::load_jsonl(path)
}

/// Precision and recall of one intent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IntentScore {
    /// The intent.
    pub intent: &'static str,
    /// Messages labelled with it.
    pub support: usize,
    /// Of those routed to it, the share labelled with it (1.0 when none were routed to it).
    pub precision: f64,
    /// Of those labelled with it, the share routed to it.
    pub recall: f64,
}

/// The whole result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Per intent.
    pub intents: Vec<IntentScore>,
    /// Share of handoff messages that got the labelled reason.
    pub reason_accuracy: f64,
    /// Labour-rights (wage dispute) messages routed to job search: must be 0.
    pub labour_to_job: usize,
    /// (expected, got, message) for every miss.
    pub misses: Vec<(String, String, String)>,
}

/// Routes every message with `route` and scores the result.
pub fn run(items: &[Item], route: impl Fn(&str) -> Route) -> Report {
    let mut routed: Vec<(String, Route)> = Vec::with_capacity(items.len());
    for it in items {
        routed.push((it.intent.clone(), route(&it.text)));
    }
    let mut intents = Vec::new();
    for intent in Intent::ALL {
        let name = intent.as_str();
        let support = items.iter().filter(|i| i.intent == name).count();
        let predicted = routed.iter().filter(|(_, r)| r.intent == intent).count();
        let correct = routed
            .iter()
            .filter(|(want, r)| want == name && r.intent == intent)
            .count();
        intents.push(IntentScore {
            intent: name,
            support,
            precision: if predicted == 0 {
                1.0
            } else {
                correct as f64 / predicted as f64
            },
            recall: if support == 0 {
                1.0
            } else {
                correct as f64 / support as f64
            },
        });
    }
    let with_reason: Vec<_> = items
        .iter()
        .zip(&routed)
        .filter(|(i, _)| i.reason.is_some())
        .collect();
    let reason_ok = with_reason
        .iter()
        .filter(|(i, (_, r))| r.handoff.map(HandoffReason::as_str) == i.reason.as_deref())
        .count();
    let labour_to_job = items
        .iter()
        .zip(&routed)
        .filter(|(i, (_, r))| {
            i.reason.as_deref() == Some("wage_dispute") && r.intent == Intent::Job
        })
        .count();
    let misses = items
        .iter()
        .zip(&routed)
        .filter(|(i, (_, r))| {
            i.intent != r.intent.as_str()
                || (i.reason.is_some()
                    && r.handoff.map(HandoffReason::as_str) != i.reason.as_deref())
        })
        .map(|(i, (_, r))| {
            let got = match r.handoff {
                Some(h) => format!("{}/{}", r.intent.as_str(), h.as_str()),
                None => r.intent.as_str().to_string(),
            };
            let want = match &i.reason {
                Some(h) => format!("{}/{h}", i.intent),
                None => i.intent.clone(),
            };
            (want, got, i.text.clone())
        })
        .collect();
    Report {
        intents,
        reason_accuracy: if with_reason.is_empty() {
            1.0
        } else {
            reason_ok as f64 / with_reason.len() as f64
        },
        labour_to_job,
        misses,
    }
}

/// Prints the report as a table.
pub fn print(report: &Report) {
    println!(
        "{:<14} {:>7} {:>9} {:>7}",
        "intent", "support", "precision", "recall"
    );
    for s in &report.intents {
        println!(
            "{:<14} {:>7} {:>9.3} {:>7.3}",
            s.intent, s.support, s.precision, s.recall
        );
    }
    println!("handoff reason accuracy {:.3}", report.reason_accuracy);
    println!(
        "labour-rights messages sent to job search: {}",
        report.labour_to_job
    );
    let mut by_pair: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (want, got, _) in &report.misses {
        *by_pair.entry((want.clone(), got.clone())).or_default() += 1;
    }
    for ((want, got), n) in by_pair {
        println!("  {want} -> {got}: {n}");
    }
    for (want, got, text) in &report.misses {
        println!("  miss: {text} ({want} -> {got})");
    }
}

/// The router of the product: exemplar vectors from `embed`, message vectors likewise.
pub fn product_router(
    embed: &dyn Fn(&[&str]) -> anyhow::Result<Vec<Vec<f32>>>,
) -> anyhow::Result<Router> {
    let texts: Vec<&str> = assistant::dialogue::router::EXEMPLARS
        .iter()
        .map(|(_, t)| *t)
        .collect();
    Ok(Router::new(embed(&texts)?))
}
