//! The two things the dialogue needs from outside: retrieval ([`Retrieve`]) and the model
//! ([`Generate`]). The product implements them with the knowledge base (candle embedder +
//! Qdrant) and the model worker; tests implement them in a few lines, so routing, the
//! evidence gate, the verifier and the HTTP error mapping run in milliseconds without models.

use models::generator::{GenEvent, GenerateRequest, Generator};
use retrieval::hybrid::{JobHit, JobQuery, PolicyHit, PolicyQuery};
use tokio::sync::mpsc;

use crate::knowledge_base::KnowledgeBase;
pub use crate::metrics::QueueState;

/// Search over the policy documents and job listings, and the query embedder.
pub trait Retrieve: Send + Sync {
    /// Embeds texts as search queries (one unit vector each).
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, models::Error>;
    /// Policy passages for a question, best first. In `Mode::Hybrid` the product reranks
    /// (hybrid and BM25 candidates, [`retrieval::rerank`]); other modes are the plain ranking.
    fn search_policies(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>, retrieval::Error>;
    /// Job listings for a search, best first.
    fn search_jobs(&self, q: &JobQuery) -> Result<Vec<JobHit>, retrieval::Error>;
    /// The district names that occur in the job listings.
    fn districts(&self) -> Result<Vec<String>, retrieval::Error>;
}

/// The language model behind a queue.
pub trait Generate: Send + Sync {
    /// Queues a request; its events arrive on the receiver. Dropping the receiver cancels it.
    fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, models::Error>;
    /// The queue now.
    fn queue(&self) -> QueueState;
}

impl Retrieve for KnowledgeBase {
    fn embed_queries(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, models::Error> {
        self.embedder().embed(texts, true)
    }

    fn search_policies(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>, retrieval::Error> {
        if q.mode == retrieval::store::Mode::Hybrid {
            self.retriever().search_policies_reranked(q)
        } else {
            self.retriever().search_policies(q)
        }
    }

    fn search_jobs(&self, q: &JobQuery) -> Result<Vec<JobHit>, retrieval::Error> {
        self.retriever().search_jobs(q)
    }

    fn districts(&self) -> Result<Vec<String>, retrieval::Error> {
        let hits = self.store().scroll(
            retrieval::store::JOBS,
            &retrieval::store::Filter::default(),
            200_000,
        )?;
        let mut d: Vec<String> = hits
            .iter()
            .filter_map(|h| h.payload.get("district").and_then(|v| v.as_str()))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        d.sort();
        d.dedup();
        Ok(d)
    }
}

impl Generate for Generator {
    fn submit(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, models::Error> {
        Generator::submit(self, request)
    }

    fn queue(&self) -> QueueState {
        QueueState {
            queued: self.queue_depth(),
            capacity: self.capacity(),
            stopped: self.is_stopped(),
            skipped: self.skipped_requests(),
            tokens: self.tokens_generated(),
        }
    }
}
