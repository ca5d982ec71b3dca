//! The generator worker: one thread owns the LLM; requests reach it through a bounded queue.
//!
//! Each request carries its own reply channel (the mistral.rs engine pattern). A full queue is
//! answered at once with [`Error::Busy`] instead of letting latency grow without bound, and a
//! dropped reply receiver (the client went away) stops that generation before its next token.
//!
//! The worker runs up to [`GeneratorOptions::max_batch`] requests at once. Each turn of its
//! loop admits waiting requests into free slots, runs one chunk of the oldest unfinished
//! prompt ([`GeneratorOptions::prefill_chunk`] tokens while other streams are running, the
//! whole prompt when none is), then one decoding pass for every running stream — one token
//! each, the weights read once for all of them. So a long prompt never freezes the streams
//! already running: they get a token between each of its chunks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::chat_template::ChatMessage;
use crate::llm::{GenerationParams, GenerationStats, Llm};
use crate::{Error, Result};

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The conversation, ending with the message to answer.
    pub messages: Vec<ChatMessage>,
    /// Limits and sampling.
    pub params: GenerationParams,
}

/// What a request's receiver gets, in order: text pieces, then exactly one `Done` or `Failed`.
#[derive(Debug)]
pub enum GenEvent {
    /// The next piece of the answer.
    Text(String),
    /// Generation ended normally.
    Done(GenerationStats),
    /// Generation failed.
    Failed(Error),
}

struct Job {
    request: GenerateRequest,
    reply: mpsc::UnboundedSender<GenEvent>,
    span: tracing::Span,
}

/// How the worker schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorOptions {
    /// Requests waiting beyond the running ones before [`Error::Busy`].
    pub queue_capacity: usize,
    /// Requests generated at once (one decoding pass for all). Models that cannot batch
    /// (gemma3) run one at a time.
    pub max_batch: usize,
    /// Prompt tokens prefilled per turn of the loop while other streams are running.
    pub prefill_chunk: usize,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 8,
            max_batch: 8,
            prefill_chunk: 128,
        }
    }
}

/// A request being generated.
struct Active {
    seq: crate::llm::Sequence,
    job: Job,
}

/// A handle to the worker; cheap to clone. The worker stops when every handle is dropped.
#[derive(Clone)]
pub struct Generator {
    tx: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    counts: Arc<WorkerCounts>,
    capacity: usize,
}

/// What the worker has done, for metrics and for tests that must not rely on timing.
#[derive(Debug, Default)]
struct WorkerCounts {
    /// Tokens generated, over all requests (including ones stopped early).
    tokens: AtomicU64,
    /// Requests skipped because their receiver was gone before they left the queue.
    skipped: AtomicU64,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("queued", &self.queue_depth())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Generator {
    /// Starts the worker thread with default scheduling and a queue of `capacity`.
    pub fn spawn(llm: Llm, capacity: usize) -> Result<(Self, std::thread::JoinHandle<()>)> {
        Self::spawn_with(
            llm,
            GeneratorOptions {
                queue_capacity: capacity,
                ..GeneratorOptions::default()
            },
        )
    }

    /// Starts the worker thread, which takes ownership of `llm`. At most
    /// `opts.queue_capacity` requests wait in the queue (running ones do not count).
    pub fn spawn_with(
        llm: Llm,
        opts: GeneratorOptions,
    ) -> Result<(Self, std::thread::JoinHandle<()>)> {
        let capacity = opts.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let worker_queued = queued.clone();
        let counts = Arc::new(WorkerCounts::default());
        let worker_counts = counts.clone();
        let handle = std::thread::Builder::new()
            .name("leye-llm".into())
            .spawn(move || run(llm, rx, worker_queued, worker_counts, opts))
            .map_err(|e| Error::Io {
                action: "spawning",
                path: "leye-llm thread".into(),
                source: e,
            })?;
        Ok((
            Self {
                tx,
                queued,
                counts,
                capacity,
            },
            handle,
        ))
    }

    /// Queues a request and returns the receiver of its events. Fails with [`Error::Busy`]
    /// when the queue is full and [`Error::WorkerStopped`] when the worker is gone.
    pub fn submit(&self, request: GenerateRequest) -> Result<mpsc::UnboundedReceiver<GenEvent>> {
        let (reply, rx) = mpsc::unbounded_channel();
        let job = Job {
            request,
            reply,
            span: tracing::Span::current(),
        };
        // Count before sending so the worker's decrement can never run first.
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                match e {
                    mpsc::error::TrySendError::Full(_) => Err(Error::Busy {
                        queued: self.capacity,
                    }),
                    mpsc::error::TrySendError::Closed(_) => Err(Error::WorkerStopped),
                }
            }
        }
    }

    /// Generates and collects the whole answer.
    pub async fn generate(&self, request: GenerateRequest) -> Result<(String, GenerationStats)> {
        let mut rx = self.submit(request)?;
        let mut text = String::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                GenEvent::Text(t) => text.push_str(&t),
                GenEvent::Done(stats) => return Ok((text, stats)),
                GenEvent::Failed(e) => return Err(e),
            }
        }
        Err(Error::WorkerStopped)
    }

    /// Whether the worker has stopped (its thread ended); readiness reports it.
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    /// Requests waiting in the queue now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Tokens generated so far, over all requests, including those stopped early.
    pub fn tokens_generated(&self) -> u64 {
        self.counts.tokens.load(Ordering::SeqCst)
    }

    /// Requests dropped before prefill because nobody waited for them any more.
    pub fn skipped_requests(&self) -> u64 {
        self.counts.skipped.load(Ordering::SeqCst)
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

fn run(
    mut llm: Llm,
    mut rx: mpsc::Receiver<Job>,
    queued: Arc<AtomicUsize>,
    counts: Arc<WorkerCounts>,
    opts: GeneratorOptions,
) {
    let max_batch = opts.max_batch.clamp(1, llm.max_batch());
    let chunk = opts.prefill_chunk.max(1);
    // Admitted, prompt not yet fully run (oldest first) / decoding.
    let mut prefilling: std::collections::VecDeque<Active> = Default::default();
    let mut decoding: Vec<Active> = Vec::new();
    loop {
        // Admit: wait when idle, otherwise take what is already queued, up to the batch size.
        while prefilling.len() + decoding.len() < max_batch {
            let job = if prefilling.is_empty() && decoding.is_empty() {
                match rx.blocking_recv() {
                    Some(job) => job,
                    None => {
                        tracing::debug!("generator worker stopped");
                        return;
                    }
                }
            } else {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            queued.fetch_sub(1, Ordering::SeqCst);
            if job.reply.is_closed() {
                let _enter = job.span.enter();
                tracing::debug!("request abandoned while queued");
                counts.skipped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let begun = {
                let _enter = job.span.enter();
                guarded(|| {
                    let prompt = llm.render(&job.request.messages)?;
                    llm.begin(prompt, job.request.params.clone())
                })
            };
            match begun {
                Ok(seq) => prefilling.push_back(Active { seq, job }),
                Err(e) => fail(job, e),
            }
        }

        // One chunk of the oldest prompt; all of it when no stream is waiting on us.
        if let Some(mut a) = prefilling.pop_front() {
            if a.job.reply.is_closed() {
                // Nobody waits for it any more: its prompt is not worth running.
                let _enter = a.job.span.enter();
                tracing::debug!("request abandoned before its prompt was run");
                counts.skipped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let size = if decoding.is_empty() {
                usize::MAX
            } else {
                chunk
            };
            let step = {
                let _enter = a.job.span.enter();
                guarded(|| llm.prefill(&mut a.seq, size))
            };
            match step {
                Err(e) => fail(a.job, e),
                Ok(()) if !a.seq.is_prefilled() => prefilling.push_front(a),
                Ok(()) => {
                    if step_text(&llm, &mut a) {
                        decoding.push(a);
                    } else {
                        complete(&mut llm, a, &counts);
                    }
                }
            }
        }

        // Streams whose listener left stop before their next token is computed.
        let (left, kept): (Vec<Active>, Vec<Active>) =
            decoding.drain(..).partition(|a| a.job.reply.is_closed());
        decoding = kept;
        for mut a in left {
            a.seq.cancel();
            complete(&mut llm, a, &counts);
        }

        // One token for every running stream, in one pass.
        if !decoding.is_empty() {
            let step = {
                let mut seqs: Vec<&mut crate::llm::Sequence> =
                    decoding.iter_mut().map(|a| &mut a.seq).collect();
                guarded(|| llm.decode(&mut seqs))
            };
            match step {
                Err(e) => {
                    // The pass failed for all of them alike; the worker goes on.
                    for a in decoding.drain(..) {
                        fail(a.job, clone_error(&e));
                    }
                }
                Ok(()) => {
                    let mut still = Vec::with_capacity(decoding.len());
                    for mut a in decoding.drain(..) {
                        if step_text(&llm, &mut a) {
                            still.push(a);
                        } else {
                            complete(&mut llm, a, &counts);
                        }
                    }
                    decoding = still;
                }
            }
        }
    }
}

/// Runs a step of the model; a panic inside it fails the requests of that step, not the
/// worker (each sequence owns its keys and values, so nothing half-written carries over).
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("generation panicked");
            Err(Error::Internal(
                "the model panicked while generating".into(),
            ))
        }
    }
}

/// The same error for each request of a failed batch.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Busy { queued } => Error::Busy { queued: *queued },
        Error::WorkerStopped => Error::WorkerStopped,
        other => Error::Internal(other.to_string()),
    }
}

/// Chooses a request's next token and sends its text; whether it goes on.
fn step_text(llm: &Llm, a: &mut Active) -> bool {
    let _enter = a.job.span.enter();
    let reply = &a.job.reply;
    llm.advance(&mut a.seq, &mut |piece| send_text(reply, piece))
}

/// Sends a piece of text; `false` once the receiver is gone (the generation then stops).
fn send_text(reply: &mpsc::UnboundedSender<GenEvent>, piece: &str) -> bool {
    reply.send(GenEvent::Text(piece.to_string())).is_ok()
}

fn fail(job: Job, e: Error) {
    let _enter = job.span.enter();
    tracing::warn!(error = %e, "generation failed");
    // The receiver may be gone already; nothing else to do then.
    let _ = job.reply.send(GenEvent::Failed(e));
}

fn complete(llm: &mut Llm, a: Active, counts: &WorkerCounts) {
    let Active { seq, job } = a;
    let _enter = job.span.enter();
    let reply = job.reply.clone();
    let g = llm.finish(seq, &mut |piece| send_text(&reply, piece));
    counts
        .tokens
        .fetch_add(g.stats.completion_tokens as u64, Ordering::SeqCst);
    let _ = job.reply.send(GenEvent::Done(g.stats));
}
