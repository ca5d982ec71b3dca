//! The event bus between the people of a conversation: counselors' replies and status changes
//! go to the citizen's event stream (`GET /api/v1/sessions/{id}/events`), citizens' messages
//! and queue changes go to the console's stream. [`LocalBus`] is in-process (one replica); a
//! PostgreSQL `LISTEN/NOTIFY` bus for several replicas implements the same [`EventBus`].
//!
//! Events for citizens are also stored (`session_events`, numbered per session) before they
//! are published, so a stream resumes from the database after a drop or a restart; the bus
//! only wakes listeners up. Console events carry ids and kinds, never text: the console reads
//! what changed through its authenticated API.

use serde::Serialize;
use tokio::sync::broadcast;

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Topic {
    /// One citizen's conversation (its session id).
    Session(String),
    /// Every signed-in counselor.
    Console,
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct BusEvent {
    /// Who it is for.
    pub topic: Topic,
    /// Its place in the session's stored events (citizen events), for `Last-Event-ID`.
    pub seq: Option<i64>,
    /// Event name (`counselor_joined`, `counselor_message`, `status`, `queue`…).
    pub name: String,
    /// JSON payload.
    pub data: serde_json::Value,
}

/// Publish and subscribe.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Sends to every current subscriber (none listening is not an error).
    fn publish(&self, event: BusEvent);
    /// Every event from now on; a subscriber filters by topic. A slow subscriber that falls
    /// more than the bus's capacity behind gets `Lagged` and re-reads what it missed from the
    /// database.
    fn subscribe(&self) -> broadcast::Receiver<BusEvent>;
}

/// The in-process bus: one broadcast channel.
#[derive(Debug)]
pub struct LocalBus {
    tx: broadcast::Sender<BusEvent>,
}

impl LocalBus {
    /// Holding up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: BusEvent) {
        // An error only means nobody listens right now.
        let _ = self.tx.send(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_events_published_after_they_subscribed() {
        let bus = LocalBus::default();
        bus.publish(BusEvent {
            topic: Topic::Console,
            seq: None,
            name: "queue".into(),
            data: serde_json::json!({}),
        });
        let mut rx = bus.subscribe();
        bus.publish(BusEvent {
            topic: Topic::Session("s".into()),
            seq: Some(1),
            name: "status".into(),
            data: serde_json::json!({"status": "assigned"}),
        });
        let ev = rx.recv().await.expect("event");
        assert_eq!(ev.topic, Topic::Session("s".into()));
        assert_eq!(ev.seq, Some(1));
        assert!(rx.try_recv().is_err(), "only one event after subscribing");
    }
}
