//! Job search on labelled questions (`eval/data/jobs.jsonl`): each question with the ids of
//! every valid listing that meets its constraints (city, trade, pay), computed from the sample
//! listings. Prints constraint precision (returned exact matches that meet every constraint),
//! top-5 hit rate (a question with matches gets at least one in its five), and how often
//! "none" was said when nothing matches.

use std::path::Path;

use assistant::dialogue::jobs::{self, JobAnswer};
use assistant::dialogue::memory::Profile;
use assistant::dialogue::seam::Retrieve;
use chrono::NaiveDate;

/// One labelled job question.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Item {
    /// The question.
    pub text: String,
    /// Every listing that meets its constraints on the evaluation day.
    pub expected: Vec<String>,
}

/// Reads the set (JSON lines).
pub fn load(path: &Path) -> anyhow::Result<Vec<Item>> {
    crate::load_jsonl(path)
}

/// The figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scores {
    /// Questions.
    pub n: usize,
    /// Exact matches returned, over all questions.
    pub returned: usize,
    /// Of those, meeting every constraint.
    pub precise: usize,
    /// Questions with matches.
    pub with_matches: usize,
    /// Of those, with at least one expected listing among the five.
    pub hits: usize,
    /// Questions without matches.
    pub without: usize,
    /// Of those, answered "none" (no exact match shown).
    pub none_said: usize,
    /// (question, what went wrong).
    pub misses: Vec<(String, String)>,
}

/// Runs every question through the product's job search.
pub fn run(kb: &dyn Retrieve, items: &[Item], today: NaiveDate) -> anyhow::Result<Scores> {
    let districts = kb.districts()?;
    let mut s = Scores {
        n: items.len(),
        ..Scores::default()
    };
    for it in items {
        let JobAnswer { cards, relaxed, .. } =
            jobs::search(kb, &it.text, &Profile::default(), today, &districts)?;
        let exact: Vec<&str> = if relaxed.is_none() {
            cards.iter().map(|c| c.id.as_str()).collect()
        } else {
            Vec::new()
        };
        s.returned += exact.len();
        let wrong: Vec<&str> = exact
            .iter()
            .copied()
            .filter(|id| !it.expected.iter().any(|e| e == id))
            .collect();
        s.precise += exact.len() - wrong.len();
        if !wrong.is_empty() {
            s.misses.push((
                it.text.clone(),
                format!("not matching: {}", wrong.join(", ")),
            ));
        }
        if it.expected.is_empty() {
            s.without += 1;
            if exact.is_empty() {
                s.none_said += 1;
            }
        } else {
            s.with_matches += 1;
            if exact.iter().any(|id| it.expected.iter().any(|e| e == id)) {
                s.hits += 1;
            } else {
                s.misses
                    .push((it.text.clone(), "no expected listing in the five".into()));
            }
        }
    }
    Ok(s)
}

/// Prints the figures.
pub fn print(s: &Scores) {
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    println!("{} job questions", s.n);
    println!(
        "constraint precision {:.3} ({} of {} exact matches meet every constraint)",
        ratio(s.precise, s.returned),
        s.precise,
        s.returned
    );
    println!(
        "top-5 hit rate {:.3} ({} of {} questions with matches)",
        ratio(s.hits, s.with_matches),
        s.hits,
        s.with_matches
    );
    println!(
        "\"none\" said {:.3} ({} of {} questions without matches)",
        ratio(s.none_said, s.without),
        s.none_said,
        s.without
    );
    for (q, why) in &s.misses {
        println!("  miss: {q}: {why}");
    }
}
