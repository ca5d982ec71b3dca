//! Stand-ins for retrieval and the model behind the dialogue's seam
//! ([`assistant::dialogue::seam`]): a handful of passages, a scripted model. With them the
//! routing, the evidence gate, the verifier and the HTTP error mapping are tested in
//! milliseconds; the real models are tested in the other test binaries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assistant::config::Config;
use assistant::dialogue::seam::{Generate, QueueState, Retrieve};
use assistant::dialogue::{Assistant, DialogueConfig};
use assistant::metrics::Metrics;
use assistant::store::Db;
use models::generator::{GenEvent, GenerateRequest};
use models::llm::{FinishReason, GenerationStats};
use retrieval::hybrid::{JobHit, JobQuery, PolicyHit, PolicyQuery};
use retrieval::store::Mode;
use tokio::sync::mpsc;

/// A vector for any text: character bigrams hashed into 64 dimensions, unit length. Texts that
/// share words get close vectors, which is all the router's fallback needs.
pub fn toy_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    let chars: Vec<char> = text.chars().collect();
    for w in chars.windows(2) {
        let h = (w[0] as u32).wrapping_mul(31).wrapping_add(w[1] as u32);
        v[(h % 64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / n).collect()
}

/// Retrieval over fixed passages: every search returns them all, ranked by shared characters;
/// the dense score of the best is whatever the test sets.
#[derive(Default)]
pub struct FakeKb {
    /// The passages.
    pub passages: Vec<PolicyHit>,
    /// The dense (e5) score reported for the best passage.
    pub dense: f32,
    /// Job listings; a search returns those of its cities.
    pub jobs: Vec<JobHit>,
    /// Districts known to the listings.
    pub districts: Vec<String>,
    /// The job searches made.
    pub job_searches: Mutex<Vec<JobQuery>>,
    /// The policy searches made (query text).
    pub policy_searches: Mutex<Vec<String>>,
}

impl FakeKb {
    /// One passage of a named document and article.
    pub fn passage(title: &str, article: &str, text: &str) -> PolicyHit {
        PolicyHit {
            score: 1.0,
            doc_id: title.to_string(),
            title: title.to_string(),
            doc_number: String::new(),
            region: String::new(),
            section: article.to_string(),
            article: Some(article.to_string()),
            text: text.to_string(),
        }
    }
}

impl Retrieve for FakeKb {
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, models::Error> {
        Ok(texts.iter().map(|t| toy_vector(t)).collect())
    }

    fn search_policies(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>, retrieval::Error> {
        self.policy_searches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(q.text.clone());
        let shared = |h: &PolicyHit| q.text.chars().filter(|c| h.text.contains(*c)).count();
        let mut hits = self.passages.clone();
        hits.sort_by_key(|h| std::cmp::Reverse(shared(h)));
        hits.truncate(q.limit);
        if let Some(first) = hits.first_mut() {
            first.score = if q.mode == Mode::Dense {
                self.dense
            } else {
                1.0
            };
        }
        Ok(hits)
    }

    fn search_jobs(&self, q: &JobQuery) -> Result<Vec<JobHit>, retrieval::Error> {
        self.job_searches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(q.clone());
        // The city filter, as the store applies it; other filters are the tests' business.
        Ok(self
            .jobs
            .iter()
            .filter(|h| q.cities.is_empty() || q.cities.contains(&h.listing.city))
            .take(q.limit)
            .cloned()
            .collect())
    }

    fn districts(&self) -> Result<Vec<String>, retrieval::Error> {
        Ok(self.districts.clone())
    }
}

/// What the scripted model does with the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Streams this text, a few characters at a time.
    Text(&'static str),
    /// The queue is full.
    Busy,
    /// Generation fails after it started.
    Fail,
    /// Streams this text after the delay (a slow answer, driven by the test, not by a real
    /// model's speed).
    Slow(Duration, &'static str),
    /// Streams this text and ends on the token limit (`FinishReason::Length`), as a model
    /// cut off mid-sentence does.
    CutOff(&'static str),
    /// Streams this text once the test lets go of the lock: a model still queued or
    /// prefilling, for as long as the test wants, without timing anything.
    Held(Arc<Mutex<()>>, &'static str),
}

/// A model that answers from a script and remembers every request.
#[derive(Default)]
pub struct FakeModel {
    /// Replies, in order; an empty script answers "好的。".
    pub script: Mutex<VecDeque<Reply>>,
    /// The requests received.
    pub requests: Mutex<Vec<GenerateRequest>>,
}

impl FakeModel {
    /// A model that gives these replies in order.
    pub fn with(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            script: Mutex::new(replies.into_iter().collect()),
            requests: Mutex::default(),
        }
    }

    /// How many requests reached the model.
    pub fn calls(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

fn stats() -> GenerationStats {
    stats_ending(FinishReason::Stop)
}

fn stats_ending(finish: FinishReason) -> GenerationStats {
    GenerationStats {
        prompt_tokens: 1,
        completion_tokens: 1,
        finish,
        prefill: Duration::ZERO,
        time_to_first_token: Duration::ZERO,
        total: Duration::ZERO,
        reused_tokens: 0,
    }
}

impl Generate for FakeModel {
    fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, models::Error> {
        let reply = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(Reply::Text("好的。"));
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        let (tx, rx) = mpsc::unbounded_channel();
        match reply {
            Reply::Busy => return Err(models::Error::Busy { queued: 1 }),
            Reply::Text(t) | Reply::CutOff(t) => {
                let chars: Vec<char> = t.chars().collect();
                for piece in chars.chunks(3) {
                    let _ = tx.send(GenEvent::Text(piece.iter().collect()));
                }
                let finish = match reply {
                    Reply::CutOff(_) => FinishReason::Length,
                    _ => FinishReason::Stop,
                };
                let _ = tx.send(GenEvent::Done(stats_ending(finish)));
            }
            Reply::Slow(delay, t) => {
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = tx.send(GenEvent::Text(t.into()));
                    let _ = tx.send(GenEvent::Done(stats()));
                });
            }
            Reply::Held(gate, t) => {
                std::thread::spawn(move || {
                    drop(gate.lock().unwrap_or_else(|p| p.into_inner()));
                    let _ = tx.send(GenEvent::Text(t.into()));
                    let _ = tx.send(GenEvent::Done(stats()));
                });
            }
            Reply::Fail => {
                let _ = tx.send(GenEvent::Text("开始".into()));
                let _ = tx.send(GenEvent::Failed(models::Error::WorkerStopped));
            }
        }
        Ok(rx)
    }

    fn queue(&self) -> QueueState {
        QueueState {
            capacity: 8,
            ..QueueState::default()
        }
    }
}

/// An assistant over the fakes with a fresh SQLite database in `home`.
pub async fn assistant(
    kb: Arc<FakeKb>,
    model: Arc<FakeModel>,
    home: &std::path::Path,
) -> Assistant {
    let db = Db::open(&Db::sqlite_url(home)).await.expect("open db");
    let router = Assistant::router_for(kb.as_ref()).expect("router");
    let cfg = DialogueConfig {
        today: Some("2026-06-01".parse().expect("date")),
        ..Config::default().dialogue
    };
    Assistant::new(kb, model, router, db, cfg, Arc::new(Metrics::default()))
}

/// The bundled benefit cards, active against the bundled plan and the laws of
/// `eval/data/laws/` (what an operator who ingested those laws has).
pub fn bundled_benefits() -> assistant::dialogue::claims::Benefits {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (docs, errors) = knowledge::benefits::check::load_documents(&[
        root.join("knowledge/data/policies"),
        root.join("eval/data/laws"),
    ]);
    assert!(errors.is_empty(), "{errors:?}");
    let cards = knowledge::benefits::load_dir(&knowledge::benefits::bundled_dir()).expect("cards");
    assistant::dialogue::claims::Benefits::active(cards, &docs)
}

/// The runtime a test server over the fakes runs on (it serves as long as the runtime lives).
pub fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The configuration of a test server over the fakes: data in `home`, a free port on
/// 127.0.0.1, and the per-IP limits out of the way (every request comes from one address).
pub fn server_config(home: &std::path::Path) -> Config {
    let mut cfg = Config {
        home: home.to_path_buf(),
        ..Config::default()
    };
    cfg.server.bind = "127.0.0.1:0".into();
    cfg.server.ip_per_minute = 10_000;
    cfg.server.ip_burst = 10_000;
    cfg
}
