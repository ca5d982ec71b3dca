//! A grounded answer: evidence through the gate; the evidence sentence that answers strongly
//! said first, with its source (the lead); the prompt to the model, unless the lead already
//! says all the model could add; the model's answer streamed sentence by sentence through the
//! verifier; citations at the end. While the request waits for the model the listeners are
//! watched too, so an abandoned request leaves the queue before it is prefilled.

use models::chat_template::ChatMessage;
use models::generator::{GenEvent, GenerateRequest};
use models::llm::FinishReason;
use tokio::sync::mpsc;

use super::focus::{self, AnswerType};
use super::prompt::{build_prompt, SYSTEM_PROMPT};
use super::verify::{self, Verifier};
use super::{say, Assistant, Event, Outcome, TurnError};
use crate::guard::{for_log, mask_pii};

impl Assistant {
    /// A grounded answer, or the not-covered reply (and the count towards a handoff).
    pub(super) async fn answer(
        &self,
        query: &str,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        if !self.grounded(query, query, tx, out).await? {
            say(tx, out, super::NOT_COVERED_REPLY).await;
            out.not_covered = true;
        }
        Ok(())
    }

    /// Answers `query` from the evidence retrieved for `search` (the query itself, or the query
    /// with the terms of the regulations that cover its kind of case) when the gate finds it
    /// covers it; `false` (and nothing said) when it does not.
    pub(super) async fn grounded(
        &self,
        query: &str,
        search: &str,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<bool, TurnError> {
        let Some(evidence) = self.evidence(search, out).await? else {
            return Ok(false);
        };
        let mut verifier = Verifier::new(evidence.clone(), query);
        // The evidence sentence that answers the question strongly is said now, with its
        // source, before the model is even asked: the citizen reads the answer after
        // retrieval, not after generation. What the model writes then only adds to it.
        let led = match verifier.lead() {
            Some(x) => {
                if !say(tx, out, &x).await {
                    out.cancelled = true;
                    return Ok(true);
                }
                true
            }
            None => false,
        };
        // The verifier shows only sentences resting on an evidence sentence that answers the
        // question; when the lead already said every one of them, nothing the model could
        // write would be shown, and its turn is left to other citizens.
        let mut generated = !(led && verifier.leaves_nothing_to_add());
        if generated {
            let prompt = build_prompt(query, &evidence, self.cfg.passage_chars);
            let request = GenerateRequest {
                messages: vec![
                    ChatMessage::system(SYSTEM_PROMPT),
                    ChatMessage::user(prompt),
                ],
                params: self.cfg.generation.clone(),
            };
            match self.generator.submit(request) {
                Ok(rx) => {
                    if !self.verified(rx, &mut verifier, led, tx, out).await? {
                        return Ok(true);
                    }
                }
                // The model's queue is full, but the lead already answers: what is shed is
                // only what the model might have added.
                Err(models::Error::Busy { queued }) if led => {
                    tracing::warn!(queued, "model queue full; the answer is the lead alone");
                    generated = false;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            tracing::debug!("the lead holds every sentence that answers; no generation");
        }
        out.trace
            .insert("generated".into(), serde_json::json!(generated));
        self.complete(query, &mut verifier, tx, out).await;
        Ok(true)
    }

    /// Streams the model's answer through the verifier, sentence by sentence. `false` when
    /// the citizen left (nothing more is said; dropping `rx` stops generation).
    async fn verified(
        &self,
        mut rx: mpsc::UnboundedReceiver<GenEvent>,
        verifier: &mut Verifier,
        led: bool,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<bool, TurnError> {
        let mut pending = String::new();
        let mut failed = None;
        let mut cut_off = false;
        let mut first_from_model = true;
        loop {
            // While the request waits in the model queue no text arrives: watch the listeners
            // too, so an abandoned request leaves the queue before it is ever prefilled.
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => {
                    out.cancelled = true;
                    return Ok(false);
                }
            };
            let Some(ev) = ev else { break };
            match ev {
                GenEvent::Text(piece) => {
                    if tx.is_closed() {
                        // The client is gone: dropping the receiver stops generation.
                        out.cancelled = true;
                        return Ok(false);
                    }
                    pending.push_str(&piece);
                    // The small model sometimes echoes the instruction's placeholder.
                    if pending.contains("[编号]") {
                        pending = pending.replace("[编号]", "");
                    }
                    // Emit every complete sentence once it is verified.
                    let mut sentences = verify::split_sentences(&pending);
                    let tail = match sentences.last() {
                        Some(s) if !s.ends_with(['。', '！', '？', '；', '\n', '!', '?']) => {
                            sentences.pop().unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    pending = tail;
                    for s in sentences {
                        let shown = verifier.sentence(&s);
                        tracing::debug!(
                            sentence = %for_log(&mask_pii(&s)),
                            verdict = ?verifier.verdicts.last(),
                            "verified"
                        );
                        let Some(v) = shown else { continue };
                        // A blank line before anything the model wrote is no part of the answer.
                        if v.trim().is_empty() && first_from_model {
                            continue;
                        }
                        let v = after_lead(v, led && first_from_model);
                        first_from_model = false;
                        if !say(tx, out, &v).await {
                            // Dropping the receiver stops generation before the next token.
                            return Ok(false);
                        }
                    }
                }
                GenEvent::Done(stats) => {
                    cut_off = stats.finish == FinishReason::Length;
                    tracing::info!(
                        prompt_tokens = stats.prompt_tokens,
                        completion_tokens = stats.completion_tokens,
                        model_ttft_ms = stats.time_to_first_token.as_millis() as u64,
                        "generated"
                    );
                }
                GenEvent::Failed(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(TurnError::Model(e));
        }
        // A sentence the token limit cut off ("……按照规定享受一次性") is never shown: its
        // words are all in the evidence, but the fact it was about to state is missing. The
        // extractive answer below supplies it when nothing else does.
        if cut_off {
            tracing::debug!(chars = pending.chars().count(), "cut-off sentence dropped");
        } else if !pending.trim().is_empty() {
            if let Some(v) = verifier.sentence(&pending) {
                say(tx, out, &after_lead(v, led && first_from_model)).await;
            }
        }
        Ok(true)
    }

    /// Ends a grounded answer: the extractive answer where what was said lacks what was asked,
    /// then the citations of every source used, and the verdicts in the trace.
    async fn complete(
        &self,
        query: &str,
        verifier: &mut Verifier,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) {
        // Nothing the model wrote could be tied to a source, or what it wrote lacks the kind
        // of fact asked for (a duration, a number, a place, a time): the evidence sentence that
        // answers best, with its document and article, beats a vacuous answer.
        let asked = focus::answer_type(query);
        let lacks_fact = !matches!(
            asked,
            AnswerType::Other | AnswerType::Name | AnswerType::Steps
        ) && !verify::split_sentences(&out.text)
            .iter()
            // Markers and list ordinals are no quantity: "1. 最长能领个月[1]" holds no
            // duration.
            .any(|s| focus::has_answer_beyond(asked, &verify::claim(s), query));
        // One evidence sentence answers the question clearly, and the model wrote around it
        // (a neighbouring article, the general rule): that sentence is the answer.
        let missed_best = verifier.missed_strong_answer();
        // A name asked for ("哪个平台") that the answer does not say, though the sentence that
        // answers gives it.
        let missed_name = verifier.missed_asked_name(&out.text);
        if verifier.cited_nothing() || lacks_fact || missed_best || missed_name {
            let sep = if out.text.is_empty() { "" } else { "\n" };
            if let Some(x) = verifier.extract(&out.text) {
                say(tx, out, &format!("{sep}{x}")).await;
            }
        }
        out.citations = verifier.citations();
        out.trace.insert(
            "verdicts".into(),
            serde_json::json!(verifier
                .verdicts
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()),
        );
        out.trace.insert(
            "cited".into(),
            serde_json::json!(out.citations.iter().map(|c| c.n).collect::<Vec<_>>()),
        );
        let _ = tx.send(Event::Citations(out.citations.clone())).await;
    }
}

/// What the model adds starts on a line of its own after the lead: `first_after_lead` is true
/// for the first sentence shown after it.
fn after_lead(shown: String, first_after_lead: bool) -> String {
    if first_after_lead && !shown.starts_with('\n') {
        format!("\n{shown}")
    } else {
        shown
    }
}
