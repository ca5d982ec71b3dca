//! The generator worker: one thread owns the LLM; requests reach it through a bounded queue.
//!
//! Each request carries its own reply channel (the mistral.rs engine pattern). A full queue is
//! answered at once with [`Error::Busy`] instead of letting latency grow without bound, and a
//! dropped reply receiver (the client went away) stops that generation before its next token.

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
    /// Starts the worker thread, which takes ownership of `llm`. At most `capacity` requests
    /// wait in the queue (the one being generated does not count).
    pub fn spawn(llm: Llm, capacity: usize) -> Result<(Self, std::thread::JoinHandle<()>)> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let worker_queued = queued.clone();
        let counts = Arc::new(WorkerCounts::default());
        let worker_counts = counts.clone();
        let handle = std::thread::Builder::new()
            .name("leye-llm".into())
            .spawn(move || run(llm, rx, worker_queued, worker_counts))
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
) {
    while let Some(job) = rx.blocking_recv() {
        queued.fetch_sub(1, Ordering::SeqCst);
        let _enter = job.span.enter();
        if job.reply.is_closed() {
            tracing::debug!("request abandoned while queued");
            counts.skipped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let reply = job.reply.clone();
        // A panic inside the model code fails this request, not the worker: every generation
        // starts from a cleared KV cache, so no state carries over to the next request.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            llm.generate(&job.request.messages, &job.request.params, |piece| {
                reply.send(GenEvent::Text(piece.to_string())).is_ok()
            })
        }));
        let last = match result {
            Ok(Ok(g)) => {
                counts
                    .tokens
                    .fetch_add(g.stats.completion_tokens as u64, Ordering::SeqCst);
                GenEvent::Done(g.stats)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "generation failed");
                GenEvent::Failed(e)
            }
            Err(_) => {
                tracing::error!("generation panicked");
                GenEvent::Failed(Error::Internal(
                    "the model panicked while generating".into(),
                ))
            }
        };
        // The receiver may be gone already; nothing else to do then.
        let _ = job.reply.send(last);
    }
    tracing::debug!("generator worker stopped");
}
