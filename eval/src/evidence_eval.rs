//! Evidence recall on the answer set, without the model: for each covered question, do the key
//! facts reach the passages retrieved, the prompt the model is given, and the sentence an
//! extractive answer would quote? A fact the prompt lacks cannot be in a grounded answer, so
//! this bounds key-fact accuracy and shows which stage loses a fact — in seconds, where the
//! whole answer run takes an hour on two cores.

use assistant::dialogue::evidence;
use assistant::dialogue::focus::rank_sentences;
use assistant::dialogue::seam::Retrieve;
use assistant::dialogue::verify::Verifier;
use assistant::dialogue::DialogueConfig;

use crate::answers_eval::{has_fact, Item};

/// Pool depths whose passages are checked for the facts (the reranked list, before selection).
pub const DEPTHS: [usize; 4] = [1, 3, 5, 10];

/// What reached each stage for one question.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Question id.
    pub id: String,
    /// Rank (1-based) of the first reranked passage of the expected document, if any in 10.
    pub doc_rank: Option<usize>,
    /// Whether every fact is in the first `d` reranked passages, per [`DEPTHS`].
    pub in_pool: Vec<bool>,
    /// Every fact is in the passages selected as evidence (whole text).
    pub in_evidence: bool,
    /// Every fact is in the prompt given to the model (focused passages).
    pub in_prompt: bool,
    /// Every fact is in the extractive answer (the best evidence sentence).
    pub in_extract: bool,
    /// Prompt length in characters.
    pub prompt_chars: usize,
    /// The extractive answer.
    pub extract: String,
    /// Score of the best-ranked evidence sentence.
    pub best_score: f32,
}

/// Runs every covered question of `items` through retrieval, selection and prompt building.
pub fn run(
    kb: &dyn Retrieve,
    items: &[Item],
    cfg: &DialogueConfig,
    explain: &[String],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for it in items.iter().filter(|i| i.covered) {
        let all = |text: &str| it.facts.iter().all(|f| has_fact(text, f));
        // One reranked list: its first `evidence_k` are the evidence (the reranker scores the
        // same candidates whatever the depth asked for).
        let (mut pool, _) = evidence::retrieve(kb, &it.question, DEPTHS[DEPTHS.len() - 1])?;
        let in_pool = DEPTHS
            .iter()
            .map(|&d| {
                let text: String = pool.iter().take(d).map(|h| h.text.as_str()).collect();
                all(&text)
            })
            .collect();
        let doc_rank = pool
            .iter()
            .position(|h| Some(&h.doc_id) == it.doc_id.as_ref())
            .map(|p| p + 1);
        pool.truncate(cfg.evidence_k);
        let ev = evidence::numbered(pool);
        let whole: String = ev.iter().map(|e| e.text.as_str()).collect();
        let ranked = rank_sentences(&it.question, &ev);
        if explain.contains(&it.id) {
            println!("{} {}", it.id, it.question);
            for e in &ev {
                println!(
                    "  [{}] 《{}》{}: {}…",
                    e.n,
                    e.title,
                    e.section,
                    e.text.chars().take(60).collect::<String>()
                );
            }
            for s in ranked.iter().take(6) {
                println!("  {:.3} [{}] {}", s.score, s.n, s.text);
            }
        }
        let prompt = assistant::dialogue::build_prompt(&it.question, &ev, cfg.passage_chars);
        let best_score = ranked.first().map_or(0.0, |s| s.score);
        let extract = Verifier::new(ev, &it.question)
            .extract("")
            .unwrap_or_default();
        rows.push(Row {
            id: it.id.clone(),
            doc_rank,
            in_pool,
            in_evidence: all(&whole),
            in_prompt: all(&prompt),
            in_extract: all(&extract),
            prompt_chars: prompt.chars().count(),
            extract,
            best_score,
        });
    }
    Ok(rows)
}

/// Prints the share of questions whose facts reach each stage, and the misses of the prompt.
pub fn print(items: &[Item], rows: &[Row]) {
    let n = rows.len().max(1) as f64;
    let share = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / n;
    println!("{} covered questions", rows.len());
    for (i, d) in DEPTHS.iter().enumerate() {
        println!(
            "facts in reranked top-{d:<2}   {:.3}   expected document first ≤ {d}: {:.3}",
            share(&|r| r.in_pool[i]),
            share(&|r| r.doc_rank.is_some_and(|k| k <= *d))
        );
    }
    println!("facts in the evidence     {:.3}", share(&|r| r.in_evidence));
    println!("facts in the prompt       {:.3}", share(&|r| r.in_prompt));
    println!("facts in the extract      {:.3}", share(&|r| r.in_extract));
    let mut chars: Vec<usize> = rows.iter().map(|r| r.prompt_chars).collect();
    chars.sort_unstable();
    println!(
        "prompt length p50 {} chars, max {}",
        chars.get(chars.len() / 2).copied().unwrap_or(0),
        chars.last().copied().unwrap_or(0)
    );
    for r in rows.iter().filter(|r| !r.in_prompt) {
        let it = items.iter().find(|i| i.id == r.id);
        println!(
            "  {} not in prompt (top-10 {}, doc rank {:?}): {}  facts {:?}",
            r.id,
            r.in_pool[DEPTHS.len() - 1],
            r.doc_rank,
            it.map_or("", |i| i.question.as_str()),
            it.map(|i| &i.facts)
        );
    }
}

/// An uncovered question the gate lets through, and how well its best evidence sentence
/// matches it: what an extractive answer would rest on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Passed {
    /// Question id.
    pub id: String,
    /// Score of the best-ranked evidence sentence.
    pub best_score: f32,
    /// The extractive answer.
    pub extract: String,
}

/// Every uncovered question of `items` that passes the gate, with its best sentence's score.
pub fn uncovered_passed(
    kb: &dyn Retrieve,
    items: &[Item],
    cfg: &DialogueConfig,
) -> anyhow::Result<Vec<Passed>> {
    let mut out = Vec::new();
    for it in items.iter().filter(|i| !i.covered) {
        let (hits, gate) = evidence::retrieve(kb, &it.question, cfg.evidence_k)?;
        if !gate.passes(cfg) {
            continue;
        }
        let ev = evidence::numbered(hits);
        let best_score = rank_sentences(&it.question, &ev)
            .first()
            .map_or(0.0, |s| s.score);
        let extract = Verifier::new(ev, &it.question)
            .extract("")
            .unwrap_or_default();
        out.push(Passed {
            id: it.id.clone(),
            best_score,
            extract,
        });
    }
    Ok(out)
}

/// Prints, for floors on the best sentence's score, how many covered questions fall below
/// (and how many of those the extract would have answered) against how many uncovered
/// questions that pass the gate fall below: what withholding the extract under such a floor
/// would cost and catch. (None is set: on the answer set every uncovered question the gate
/// lets through scores above the floors that keep the covered extracts.)
pub fn print_floors(rows: &[Row], passed: &[Passed]) {
    println!(
        "{} uncovered questions pass the gate; best-sentence scores:",
        passed.len()
    );
    for p in passed {
        println!(
            "  {} {:.3} {}",
            p.id,
            p.best_score,
            p.extract.chars().take(50).collect::<String>()
        );
    }
    println!("floor   covered below (extract right)   uncovered passed below");
    for floor in [0.08f32, 0.10, 0.12, 0.15, 0.18, 0.20, 0.25] {
        let below: Vec<&Row> = rows.iter().filter(|r| r.best_score < floor).collect();
        println!(
            "{floor:.2}    {:>3} ({:>3})                       {:>3}",
            below.len(),
            below.iter().filter(|r| r.in_extract).count(),
            passed.iter().filter(|p| p.best_score < floor).count()
        );
    }
}
