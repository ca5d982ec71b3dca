//! The dialogue: one citizen message in, a stream of events out.
//!
//! ```text
//! mask -> store question -> profile + follow-up rewrite -> route
//!   handoff            -> escalation + queue position (+ 12333 / crisis hotline lines)
//!   smalltalk, refusal -> fixed replies saying what the assistant can do
//!   job                -> filters + semantic query -> listing cards (relaxed search labelled)
//!   policy, startup    -> retrieve -> evidence gate -> prompt [1]..[k] -> stream, verified
//!                         sentence by sentence -> citations
//!   claim              -> facts from the profile -> rules over the active benefit cards ->
//!                         the next question (with options), or the result lists
//! -> store answer
//! ```
//! The citizen's message is committed before anything else happens; the answer row is written
//! `pending` and completed at the end (or marked `incomplete` if nobody listens any more).
//!
//! Files: this one holds the turn flow and its wire types; [`router`] the intent, [`memory`]
//! the profile and follow-up rewrite, [`jobs`] job search, `evidence` the gate, `prompt` the
//! prompt, `answer` the verified streaming of a grounded answer, [`verify`] the verifier;
//! escalations are [`crate::handoff`]'s.

mod answer;
mod assist;
pub mod claims;
pub mod evidence;
pub mod focus;
pub mod jobs;
pub mod memory;
mod prompt;
pub mod router;
pub mod seam;
pub mod verify;

pub use assist::{AiSummary, Draft};
pub use prompt::build_prompt;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::domain::{Caller, Channel, SessionId, SessionToken};
use crate::guard::{citizen_text, for_log, mask_pii};
use crate::handoff::Handoffs;
use crate::metrics::Metrics;
use crate::store::{Completion, Db, DbError};
use jobs::JobCard;
use memory::Profile;
use router::{HandoffReason, Intent, Router};
use seam::{Generate, Retrieve};
use verify::Citation;

pub use crate::config::DialogueConfig;

/// One incoming message from a caller that has proven who it is.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// Who asks: the session (it must exist: see [`Assistant::create_session`]) and channel.
    pub caller: Caller,
    /// The citizen's text as received; cleaned and masked here before anything else.
    pub message: String,
    /// Profile the channel already knows (merged into the session's).
    pub profile: Option<Profile>,
}

pub use crate::handoff::{HandoffInfo, CRISIS_LINE};

/// What a turn streams, in order: `Meta`, `Token`s, then any of `Citations`, `Jobs`,
/// `Handoff`, then `Done` (or `Error`).
#[derive(Debug, Clone)]
pub enum Event {
    /// Ids and routing.
    Meta {
        /// Session.
        session_id: String,
        /// Turn (the answer's message id).
        turn_id: String,
        /// Intent.
        intent: Intent,
        /// The question as rewritten for retrieval.
        rewritten: Option<String>,
    },
    /// A piece of the answer.
    Token(String),
    /// Sources of the answer.
    Citations(Vec<Citation>),
    /// The 政策申领 interview: the next question with its options, or the result cards.
    Claim(claims::ClaimView),
    /// Listing cards; `relaxed` says how the search was widened when it was.
    Jobs {
        /// Cards.
        jobs: Vec<JobCard>,
        /// Label of the relaxed search.
        relaxed: Option<String>,
    },
    /// The conversation went to the counselor queue.
    Handoff(HandoffInfo),
    /// The turn ended.
    Done {
        /// The full answer as stored.
        answer: String,
    },
    /// The turn failed.
    Error {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
}

/// How wage and labour regulations state an employer's duty to pay: added to the search of a
/// wage dispute.
const WAGE_DUTY_TERMS: &str = "用人单位应当按时足额支付劳动者工资，不得克扣或者无故拖欠";

/// The reply when no ingested document covers a policy question (the evidence gate said no):
/// the assistant does not guess.
pub const NOT_COVERED_REPLY: &str = "抱歉，现有的政策文件中没有找到与您问题相关的内容，我不能凭猜测回答。您可以点击“转人工”请职业指导师解答，或拨打12333人社服务热线咨询。";

/// Why a turn could not run. Each failure keeps its source, so the edge logs the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The model queue is full.
    #[error("the assistant is busy, please retry shortly")]
    Busy,
    /// The session does not exist (deleted meanwhile).
    #[error("session not found")]
    SessionNotFound,
    /// The model or the embedder failed.
    #[error("the model failed")]
    Model(#[source] models::Error),
    /// Retrieval failed.
    #[error("retrieval failed")]
    Retrieval(#[from] retrieval::Error),
    /// Blocking work panicked or was cancelled.
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl From<models::Error> for TurnError {
    fn from(e: models::Error) -> Self {
        match e {
            models::Error::Busy { .. } => TurnError::Busy,
            other => TurnError::Model(other),
        }
    }
}

/// A turn once its question is stored and routed.
struct Routed {
    /// Questions in a row the assistant could not answer, before this one.
    failures: i64,
    profile: Profile,
    /// The question rewritten for retrieval (follow-ups), when it was.
    rewritten: Option<String>,
    /// What is searched: the rewritten question, else the question.
    query: String,
    route: router::Route,
    /// The answer's message id.
    turn_id: String,
    /// The 政策申领 step decided for this turn (the profile already holds its state).
    claim: Option<ClaimStep>,
}

/// What a claim turn shows.
#[derive(Debug, Clone)]
enum ClaimStep {
    /// One named card, answered directly.
    Card(Box<knowledge::benefits::Card>),
    /// The next question, or the result.
    Interview(claims::ClaimView),
}

/// The assembled assistant.
pub struct Assistant {
    kb: Arc<dyn Retrieve>,
    generator: Arc<dyn Generate>,
    router: Router,
    db: Db,
    cfg: DialogueConfig,
    metrics: Arc<Metrics>,
    handoffs: Handoffs,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// District names present in the job listings (for reading a district out of a question).
    districts: Vec<String>,
    /// The active benefit cards (empty: claim questions take the policy path).
    benefits: Arc<claims::Benefits>,
}

const CAPABILITIES: &str =
    "我可以帮您：查询就业创业政策（如补贴、社保、培训）及申领条件，查找山东各市的招聘岗位，\
了解创业扶持，也可以为您转接人工职业指导师。";

impl Assistant {
    /// Assembles the assistant. `router` holds the exemplar vectors (see [`Assistant::router_for`]).
    pub fn new(
        kb: Arc<dyn Retrieve>,
        generator: Arc<dyn Generate>,
        router: Router,
        db: Db,
        cfg: DialogueConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Without district names a question still works; only its district is not read.
        let districts = kb.districts().unwrap_or_else(|e| {
            tracing::warn!(error = %crate::http::error::error_chain(&e), "job districts unavailable");
            Vec::new()
        });
        let handoffs = Handoffs::new(db.clone(), metrics.clone(), cfg.service_hours.clone());
        Self {
            kb,
            generator,
            router,
            db,
            cfg,
            metrics,
            handoffs,
            sessions: Mutex::new(HashMap::new()),
            districts,
            benefits: Arc::default(),
        }
    }

    /// The same assistant with these active benefit cards (政策申领).
    pub fn with_benefits(mut self, benefits: claims::Benefits) -> Self {
        self.benefits = Arc::new(benefits);
        self
    }

    /// The active benefit cards.
    pub fn benefits(&self) -> &claims::Benefits {
        &self.benefits
    }

    /// A second assistant over the same knowledge base, model worker, router, database and
    /// metrics (a second listener in the same process, e.g. during a rolling restart; tests).
    pub fn share(&self) -> Self {
        Self {
            kb: self.kb.clone(),
            generator: self.generator.clone(),
            router: self.router.clone(),
            db: self.db.clone(),
            cfg: self.cfg.clone(),
            metrics: self.metrics.clone(),
            handoffs: self.handoffs.clone(),
            benefits: self.benefits.clone(),
            sessions: Mutex::new(HashMap::new()),
            districts: self.districts.clone(),
        }
    }

    /// The same assistant, telling the counselor workspace of each escalation (the console's
    /// queue, callback offers and crisis alerts outside service hours).
    pub fn with_workspace(mut self, workspace: crate::console::Workspace) -> Self {
        self.handoffs = self.handoffs.with_workspace(workspace);
        self
    }

    /// Builds the router by embedding its exemplars.
    pub fn router_for(kb: &dyn Retrieve) -> Result<Router, models::Error> {
        let texts: Vec<&str> = router::EXEMPLARS.iter().map(|(_, t)| *t).collect();
        Ok(Router::new(kb.embed_queries(&texts)?))
    }

    /// The conversation store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The model queue (readiness and metrics).
    pub fn model_queue(&self) -> seam::QueueState {
        self.generator.queue()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn today(&self) -> chrono::NaiveDate {
        self.cfg
            .today
            .unwrap_or_else(|| chrono::Local::now().date_naive())
    }

    fn session_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = match self.sessions.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() > 50_000 {
            // Drop locks nobody holds so the map stays bounded.
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    /// Creates a session for a new caller on `channel`; the token goes to that caller only
    /// and is stored as its hash.
    pub async fn create_session(
        &self,
        channel: Channel,
    ) -> Result<(SessionId, SessionToken), DbError> {
        let token = SessionToken::new();
        let id = self.db.create_session(channel, &token.hash()).await?;
        Ok((id, token))
    }

    /// Runs one turn, sending its events to `tx`. A closed `tx` (nobody listening any more)
    /// stops the turn, also while it waits for the model, and stores what was answered so far
    /// as `incomplete`.
    pub async fn turn(&self, req: TurnRequest, tx: mpsc::Sender<Event>) -> Result<(), TurnError> {
        let started = Instant::now();
        let channel = req.caller.channel();
        let sid = req.caller.session().clone();
        let text = citizen_text(&req.message);
        let span = tracing::info_span!("turn", session = %sid, channel = %channel);
        async move {
            let lock = self.session_lock(sid.as_str());
            let _one_turn_at_a_time = lock.lock().await;
            let routed = self
                .store_and_route(&sid, channel, &text, req.profile.as_ref())
                .await?;
            let _ = tx
                .send(Event::Meta {
                    session_id: sid.to_string(),
                    turn_id: routed.turn_id.clone(),
                    intent: routed.route.intent,
                    rewritten: routed.rewritten.clone(),
                })
                .await;
            let mut out = Outcome::default();
            let result = self.respond(&sid, &routed, &text, &tx, &mut out).await;
            self.settle(&sid, &routed, &text, &tx, &mut out).await?;
            if tx.is_closed() {
                out.cancelled = true;
            }
            self.store_answer(&routed, started, &out, result.is_err())
                .await?;
            result?;
            let _ = tx.send(Event::Done { answer: out.text }).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Stores the question, learns the profile, rewrites a follow-up, routes, and stores the
    /// pending answer row. Runs under the session's lock: the session is read once, here.
    async fn store_and_route(
        &self,
        sid: &SessionId,
        channel: Channel,
        text: &str,
        known: Option<&Profile>,
    ) -> Result<Routed, TurnError> {
        let session = self
            .db
            .session(sid)
            .await?
            .ok_or(TurnError::SessionNotFound)?;
        // Earlier messages first: the question is committed before any work on the answer.
        let history = self.db.messages(sid).await?;
        let question_id = self
            .db
            .add_message(sid, "user", text, channel, "complete")
            .await?;

        let mut profile: Profile = match serde_json::from_str(&session.profile) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %for_log(&e.to_string()), "stored profile unreadable; starting a new one");
                Profile::default()
            }
        };
        if let Some(p) = known {
            // Only Shandong's cities are filters; anything else from a channel is ignored.
            if let Some(c) = p.city.as_deref().and_then(memory::find_city) {
                profile.city = Some(c);
            }
            if let Some(g) = p.group.filter(|g| profile.may_store(*g)) {
                profile.group = Some(g);
            }
        }
        profile.learn(text);
        let previous = history
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.rewritten.clone().unwrap_or_else(|| m.text.clone()));
        let rewritten = memory::rewrite(previous.as_deref(), text);
        let query = rewritten.clone().unwrap_or_else(|| text.to_string());

        let kb = self.kb.clone();
        let q = query.clone();
        let qvec = blocking(move || {
            kb.embed_queries(&[q.as_str()])
                .map(|mut v| v.pop().unwrap_or_default())
        })
        .await?;
        let mut route = self.router.route(&query, Some(&qvec));
        // A rewritten follow-up keeps the topic of the question it follows.
        if rewritten.is_some() && route.intent == Intent::OutOfScope && !route.injection {
            route.intent = Intent::Policy;
        }
        let claim = self.claim_step(&mut profile, text, &route);
        if claim.is_some() && route.intent != Intent::Handoff {
            route.intent = Intent::Claim;
        }
        self.metrics.turn(route.intent);
        self.db.count("intent", route.intent.as_str()).await;
        self.db
            .set_intent(&question_id, route.intent.as_str())
            .await?;
        let turn_id = self
            .db
            .add_message(sid, "assistant", "", channel, "pending")
            .await?;
        tracing::info!(
            intent = route.intent.as_str(),
            rewritten = rewritten.is_some(),
            "routed"
        );
        Ok(Routed {
            failures: session.failures,
            profile,
            rewritten,
            query,
            route,
            turn_id,
            claim,
        })
    }

    /// Decides the 政策申领 step of a turn and updates the interview state in the profile:
    /// an answer to the pending question, a question naming one benefit, a claim question, or
    /// a correction of a fact after a result. `None`: not a claim turn (or no active cards).
    fn claim_step(
        &self,
        profile: &mut Profile,
        text: &str,
        route: &router::Route,
    ) -> Option<ClaimStep> {
        use chrono::Datelike;
        if self.benefits.is_empty() || route.intent == Intent::Handoff {
            return None;
        }
        let year = self
            .cfg
            .today
            .unwrap_or_else(|| chrono::Local::now().date_naive())
            .year();
        let state = &mut profile.claim;
        let mut interview = false;
        let mut disabled_agreed = false;
        // A sensitive fact is stored only after the citizen agreed: the question asked about
        // it says why, and a fact they mentioned by themselves gets a consent question.
        let consent_of =
            |state: &claims::ClaimState, f: &str| state.consented.iter().any(|c| c == f);
        if let Some(fact) = state
            .asking
            .as_deref()
            .and_then(|a| a.strip_prefix(claims::CONSENT))
            .map(str::to_string)
        {
            match claims::read_consent(text) {
                Some(agreed) => {
                    state.asking = None;
                    if agreed {
                        state
                            .facts
                            .set(&fact, knowledge::benefits::rules::Fact::Bool(true));
                        disabled_agreed = fact == claims::DISABLED_FACT;
                        state.consented.push(fact);
                    } else if !state.unanswered.contains(&fact) {
                        state.unanswered.push(fact);
                    }
                    interview = true;
                }
                None => state.asking = None,
            }
        }
        if let Some(fact) = state.asking.take() {
            match claims::read_reply(&fact, text) {
                claims::Reply::Facts(facts) => {
                    for (k, v) in facts {
                        // Answering a question that said why it asks is the consent.
                        if claims::SENSITIVE_FACTS.contains(&k.as_str()) && !consent_of(state, &k) {
                            state.consented.push(k.clone());
                        }
                        if k == claims::DISABLED_FACT
                            && matches!(v, knowledge::benefits::rules::Fact::Bool(true))
                        {
                            disabled_agreed = true;
                        }
                        state.facts.set(&k, v);
                    }
                    interview = true;
                }
                claims::Reply::DontKnow | claims::Reply::Decline => {
                    if !state.unanswered.contains(&fact) {
                        state.unanswered.push(fact);
                    }
                    interview = true;
                }
                claims::Reply::NotAnAnswer => {}
            }
        }
        let learned = claims::learn_facts(&mut state.facts, text, year);
        // Sensitive facts said in passing are not stored before consent; the first of them
        // is asked about when this turn is a claim turn.
        let mut needs_consent = None;
        for f in claims::SENSITIVE_FACTS {
            if state.facts.get(f).is_some() && !consent_of(state, f) {
                state.facts.0.remove(*f);
                if needs_consent.is_none() && !state.unanswered.iter().any(|u| u == f) {
                    needs_consent = Some(f.to_string());
                }
            }
        }
        let mut correction = false;
        if !interview {
            if let Some(card) = self.benefits.named(text) {
                return Some(ClaimStep::Card(Box::new(card.clone())));
            }
            if route.intent == Intent::Claim {
                // A new interview: the questions count again.
                state.asked = 0;
                interview = true;
            } else if state.open && learned {
                // "我其实是2023年毕业的": the result is recomputed, without new questions.
                interview = true;
                correction = true;
            }
        }
        if !interview {
            return None;
        }
        let mut view = claims::step(&self.benefits, state);
        if correction {
            view.question = None;
        }
        if let Some(f) = needs_consent {
            view.question = Some(claims::consent_question(&f));
        }
        match &view.question {
            Some(q) => {
                state.asking = Some(q.fact.clone());
                state.asked += 1;
            }
            None => {
                state.open = true;
                state.asked = 0;
            }
        }
        // The consent covers the job-search profile too (its group filter), unless another
        // group is already there.
        if disabled_agreed && profile.group.is_none() {
            profile.group = Some(knowledge::jobs::Group::Disabled);
        }
        Some(ClaimStep::Interview(view))
    }

    /// Shows a claim step: the question with its options, or the result (each qualified card
    /// cited), or one named card.
    async fn claim(
        &self,
        routed: &Routed,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        let Some(step) = &routed.claim else {
            return self.answer(&routed.query, tx, out).await;
        };
        let cite = |cards: Vec<&knowledge::benefits::Card>| -> Vec<Citation> {
            cards
                .into_iter()
                .enumerate()
                .map(|(i, c)| Citation {
                    n: i + 1,
                    doc_id: String::new(),
                    title: c.source.title.clone(),
                    doc_number: c.source.doc_number.clone(),
                    section: c.source.articles.join("、"),
                    quote: c.what.quote.clone(),
                })
                .collect()
        };
        match step {
            ClaimStep::Card(card) => {
                let text = claims::card_text(card, &routed.profile.claim.facts);
                let _ = tx
                    .send(Event::Claim(claims::ClaimView {
                        qualified: vec![claims::view(card)],
                        ..Default::default()
                    }))
                    .await;
                say(tx, out, &text).await;
                out.citations = cite(vec![card]);
            }
            ClaimStep::Interview(view) => {
                let _ = tx.send(Event::Claim(view.clone())).await;
                match &view.question {
                    Some(q) => {
                        say(tx, out, &claims::question_text(q)).await;
                    }
                    None => {
                        say(tx, out, &claims::result_text(view)).await;
                        let cards: Vec<&knowledge::benefits::Card> = view
                            .qualified
                            .iter()
                            .filter_map(|v| self.benefits.cards().iter().find(|c| c.id == v.id))
                            .collect();
                        out.citations = cite(cards);
                    }
                }
            }
        }
        if !out.citations.is_empty() {
            let _ = tx.send(Event::Citations(out.citations.clone())).await;
        }
        Ok(())
    }

    /// The answer for the routed intent, streamed to `tx` and collected in `out`.
    async fn respond(
        &self,
        sid: &SessionId,
        routed: &Routed,
        text: &str,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        let intent = routed.route.intent;
        match intent {
            Intent::Handoff => {
                let reason = routed.route.handoff.unwrap_or(HandoffReason::Explicit);
                if reason == HandoffReason::WageDispute {
                    // What the ingested wage and labour regulations say, when they cover it;
                    // the 12333 / labour-inspection line and the counselor follow either way.
                    // People tell their case in their own words ("拿产品抵工资", "老板跑了");
                    // the regulations state the employer's duty in theirs, so the search adds
                    // those words.
                    let search = format!("{} {WAGE_DUTY_TERMS}", routed.query);
                    self.grounded(&routed.query, &search, tx, out).await?;
                }
                self.handoff(sid, reason, intent, text, tx, out).await
            }
            Intent::Smalltalk => {
                let msg = format!("您好！我是乐业助手。{CAPABILITIES}请问有什么可以帮您？");
                say(tx, out, &msg).await;
                Ok(())
            }
            Intent::OutOfScope => {
                let msg = format!("抱歉，这个问题不在我的服务范围内。{CAPABILITIES}");
                say(tx, out, &msg).await;
                Ok(())
            }
            Intent::Job => self.jobs(&routed.query, &routed.profile, tx, out).await,
            Intent::Policy | Intent::Startup => self.answer(&routed.query, tx, out).await,
            Intent::Claim => self.claim(routed, tx, out).await,
        }
    }

    /// After the answer: counts questions the assistant could not answer, hands off at the
    /// limit, and stores the profile and the count.
    async fn settle(
        &self,
        sid: &SessionId,
        routed: &Routed,
        text: &str,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        if out.not_covered {
            let group = crate::console::stats::question_group(text);
            self.db.count("unanswered", &group).await;
        }
        let mut failures = if out.not_covered {
            routed.failures + 1
        } else {
            0
        };
        // A second "not covered" in a row: offer the person right away.
        if out.not_covered && failures >= self.cfg.max_failures && out.handoff.is_none() {
            let intent = routed.route.intent;
            self.handoff(sid, HandoffReason::RepeatedFailure, intent, text, tx, out)
                .await?;
        }
        if out.handoff.is_some() {
            // A person takes over; the count starts again after them.
            failures = 0;
        }
        let profile = serde_json::to_string(&routed.profile).unwrap_or_else(|_| "{}".into());
        self.db.update_session(sid, &profile, failures).await?;
        Ok(())
    }

    /// Completes the pending answer row (`incomplete` when nobody listened to the end or the
    /// turn failed) and records the timings.
    async fn store_answer(
        &self,
        routed: &Routed,
        started: Instant,
        out: &Outcome,
        failed: bool,
    ) -> Result<(), TurnError> {
        let latency = started.elapsed();
        let status = if out.cancelled || failed {
            "incomplete"
        } else {
            "complete"
        };
        self.db
            .complete_message(
                &routed.turn_id,
                &Completion {
                    text: mask_pii(&out.text),
                    status,
                    intent: routed.route.intent.as_str().into(),
                    citations: serde_json::to_string(&out.citations).unwrap_or_default(),
                    jobs: serde_json::to_string(&out.jobs).unwrap_or_default(),
                    rewritten: routed.rewritten.clone(),
                    ttft_ms: out
                        .first_token
                        .map(|t| t.duration_since(started).as_millis() as i64),
                    latency_ms: latency.as_millis() as i64,
                    trace: serde_json::Value::Object(out.trace.clone()).to_string(),
                },
            )
            .await?;
        if let Some(t) = out.first_token {
            self.metrics.ttft(t.duration_since(started));
        }
        self.metrics.turn_latency(latency);
        Ok(())
    }

    /// An explicit handoff request from the channel's 转人工 button on an existing session:
    /// the escalation is created (or the open one returned) and the request is stored in the
    /// transcript. It never creates a session.
    pub async fn request_handoff(
        &self,
        caller: &Caller,
        note: &str,
    ) -> Result<HandoffInfo, TurnError> {
        match self.handoffs.request(caller, &citizen_text(note)).await {
            // Deleted since the caller proved it: the first insert finds no session.
            Err(DbError::NotFound("session")) => Err(TurnError::SessionNotFound),
            r => Ok(r?),
        }
    }

    async fn handoff(
        &self,
        session_id: &SessionId,
        reason: HandoffReason,
        intent: Intent,
        text: &str,
        tx: &mpsc::Sender<Event>,
        out: &mut Outcome,
    ) -> Result<(), TurnError> {
        let (info, msg) = self
            .handoffs
            .escalate(session_id, reason, intent, text)
            .await?;
        say(tx, out, &msg).await;
        out.handoff = Some(info.clone());
        let _ = tx.send(Event::Handoff(info)).await;
        Ok(())
    }
}

/// Distinct district names of the indexed listings (read once at start-up).
/// Runs blocking model or store work off the async workers, inside the caller's span; a
/// panic becomes [`TurnError::Task`], an error keeps its type.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, TurnError>
where
    T: Send + 'static,
    E: Into<TurnError> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await?
        .map_err(Into::into)
}

/// What a turn produced, for storage.
#[derive(Debug, Default)]
struct Outcome {
    text: String,
    citations: Vec<Citation>,
    jobs: Vec<JobCard>,
    handoff: Option<HandoffInfo>,
    first_token: Option<Instant>,
    not_covered: bool,
    cancelled: bool,
    /// What retrieval found and what the answer used (stored with the turn).
    trace: serde_json::Map<String, serde_json::Value>,
}

/// Sends a piece of the answer; false (and the turn marked cancelled) when the client is gone.
async fn say(tx: &mpsc::Sender<Event>, out: &mut Outcome, text: &str) -> bool {
    if out.first_token.is_none() {
        out.first_token = Some(Instant::now());
    }
    out.text.push_str(text);
    let sent = tx.send(Event::Token(text.to_string())).await.is_ok();
    if !sent {
        out.cancelled = true;
    }
    sent
}
