//! Resumable turns: a turn's events are numbered and kept in a bounded buffer, so a phone that
//! loses its connection can come back and continue where it left off, and a turn whose
//! listeners are all gone is abandoned after a grace period instead of holding the model.
//!
//! The turn itself writes to an `mpsc` channel as before; a pump task moves its events into a
//! [`TurnBuffer`]. Listeners ([`Subscription`]) read from the buffer after the last id they
//! saw. When nobody has listened for `abandon_grace`, the pump drops the channel's receiver:
//! the dialogue sees its sender closed and stops (a queued request is never prefilled, a
//! running one stops before its next token), and the answer is stored `incomplete`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::dialogue::Event;

/// Limits of the turn buffers.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events kept per turn; older ones are dropped (a resume from before them is refused).
    pub max_events: usize,
    /// How long a finished turn can still be resumed.
    pub keep_after_done: Duration,
    /// How long a turn runs on with nobody listening before it is abandoned.
    pub abandon_grace: Duration,
    /// Turns kept at most (finished ones are dropped first).
    pub max_turns: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_events: 2048,
            keep_after_done: Duration::from_secs(120),
            abandon_grace: Duration::from_secs(10),
            max_turns: 10_000,
        }
    }
}

#[derive(Debug, Default)]
struct BufState {
    events: VecDeque<(u64, Event)>,
    /// Id of the last event pushed (ids start at 1).
    last_id: u64,
    done_at: Option<Instant>,
}

/// The numbered events of one turn.
#[derive(Debug)]
pub struct TurnBuffer {
    session: String,
    max_events: usize,
    state: Mutex<BufState>,
    /// Bumped on every push and at the end, to wake listeners.
    version: watch::Sender<u64>,
    /// Listeners connected now.
    listeners: watch::Sender<usize>,
}

/// Why a resume cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// Events after the given id were already dropped from the bounded buffer.
    Gap,
}

impl TurnBuffer {
    fn new(session: String, max_events: usize) -> Arc<Self> {
        Arc::new(Self {
            session,
            max_events: max_events.max(16),
            state: Mutex::new(BufState::default()),
            version: watch::channel(0).0,
            listeners: watch::channel(0).0,
        })
    }

    /// The session the turn belongs to.
    pub fn session(&self) -> &str {
        &self.session
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, ev: Event) {
        let id = {
            let mut s = self.lock();
            s.last_id += 1;
            let id = s.last_id;
            s.events.push_back((id, ev));
            while s.events.len() > self.max_events {
                s.events.pop_front();
            }
            id
        };
        self.version.send_replace(id);
    }

    fn finish(&self) {
        let v = {
            let mut s = self.lock();
            s.done_at.get_or_insert_with(Instant::now);
            s.last_id
        };
        // `send_replace` notifies even when the value is unchanged: listeners wake to the end.
        self.version.send_replace(v);
    }

    fn done_at(&self) -> Option<Instant> {
        self.lock().done_at
    }

    /// A listener that receives every event after `after` (0: from the start).
    pub fn subscribe(self: &Arc<Self>, after: u64) -> Result<Subscription, ResumeError> {
        {
            let s = self.lock();
            let first = s.events.front().map_or(s.last_id + 1, |(id, _)| *id);
            if after + 1 < first {
                return Err(ResumeError::Gap);
            }
        }
        Ok(self.attach(after))
    }

    fn attach(self: &Arc<Self>, after: u64) -> Subscription {
        self.listeners.send_modify(|n| *n += 1);
        Subscription {
            buffer: self.clone(),
            after,
            version: self.version.subscribe(),
        }
    }

    /// Resolves once nobody has listened for `grace` in a row.
    async fn abandoned(&self, grace: Duration) {
        let mut rx = self.listeners.subscribe();
        loop {
            if rx.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            match tokio::time::timeout(grace, rx.wait_for(|n| *n > 0)).await {
                Err(_) => return,
                Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// One listener of a turn. Dropping it (the connection closed) counts the listener out.
#[derive(Debug)]
pub struct Subscription {
    buffer: Arc<TurnBuffer>,
    after: u64,
    version: watch::Receiver<u64>,
}

impl Subscription {
    /// The next event and its id; `None` when the turn has ended and everything was read.
    /// `Err(Gap)` when this listener fell so far behind that the buffer dropped its events.
    pub async fn next(&mut self) -> Result<Option<(u64, Event)>, ResumeError> {
        loop {
            {
                let s = self.buffer.lock();
                if let Some((id, ev)) = s.events.iter().find(|(id, _)| *id > self.after) {
                    if *id > self.after + 1 {
                        return Err(ResumeError::Gap);
                    }
                    self.after = *id;
                    return Ok(Some((*id, ev.clone())));
                }
                if s.done_at.is_some() {
                    return Ok(None);
                }
            }
            if self.version.changed().await.is_err() {
                return Ok(None);
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.buffer
            .listeners
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The buffers of recent turns, by turn id.
#[derive(Debug)]
pub struct TurnHub {
    cfg: HubConfig,
    turns: Mutex<HashMap<String, Arc<TurnBuffer>>>,
}

impl TurnHub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Self {
        Self {
            cfg,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Takes over the event channel of a turn just started for `session` and returns the
    /// first listener (the caller that started it). The turn is findable by id once its
    /// `Meta` event has named it.
    pub fn track(self: &Arc<Self>, session: String, mut rx: mpsc::Receiver<Event>) -> Subscription {
        let buffer = TurnBuffer::new(session, self.cfg.max_events);
        // Counted before the pump starts, so the grace cannot run out before anyone listened.
        let first = buffer.attach(0);
        let hub = self.clone();
        let grace = self.cfg.abandon_grace;
        let buf = buffer.clone();
        tokio::spawn(async move {
            // One future for the whole turn: recreating it per event would restart the grace
            // every time a token arrives.
            let abandoned = buf.abandoned(grace);
            tokio::pin!(abandoned);
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => {
                            if let Event::Meta { turn_id, .. } = &ev {
                                hub.insert(turn_id.clone(), buf.clone());
                            }
                            buf.push(ev);
                        }
                        None => break,
                    },
                    _ = &mut abandoned => {
                        tracing::info!("nobody listening: turn abandoned");
                        // Closing the channel tells the dialogue to stop.
                        drop(rx);
                        break;
                    }
                }
            }
            buf.finish();
        });
        first
    }

    fn insert(&self, turn_id: String, buffer: Arc<TurnBuffer>) {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let keep = self.cfg.keep_after_done;
        turns.retain(|_, b| b.done_at().is_none_or(|t| t.elapsed() < keep));
        if turns.len() >= self.cfg.max_turns {
            // Still full of running turns: forget the oldest finished ones first, then any.
            let mut finished: Vec<(String, Instant)> = turns
                .iter()
                .filter_map(|(k, b)| b.done_at().map(|t| (k.clone(), t)))
                .collect();
            finished.sort_by_key(|(_, t)| *t);
            for (k, _) in finished
                .into_iter()
                .take(turns.len() + 1 - self.cfg.max_turns)
            {
                turns.remove(&k);
            }
        }
        turns.insert(turn_id, buffer);
    }

    /// The buffer of a recent turn.
    pub fn get(&self, turn_id: &str) -> Option<Arc<TurnBuffer>> {
        let turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let b = turns.get(turn_id)?;
        match b.done_at() {
            Some(t) if t.elapsed() >= self.cfg.keep_after_done => None,
            _ => Some(b.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(turn: &str) -> Event {
        Event::Meta {
            session_id: "s".into(),
            turn_id: turn.into(),
            intent: crate::dialogue::router::Intent::Policy,
            rewritten: None,
        }
    }

    #[tokio::test]
    async fn a_resumed_listener_gets_every_event_once() {
        let hub = Arc::new(TurnHub::new(HubConfig::default()));
        let (tx, rx) = mpsc::channel(8);
        let mut first = hub.track("s".into(), rx);
        tx.send(meta("t1")).await.expect("send");
        tx.send(Event::Token("a".into())).await.expect("send");
        let (id1, _) = first.next().await.expect("ok").expect("meta");
        let (id2, _) = first.next().await.expect("ok").expect("token");
        assert_eq!((id1, id2), (1, 2));
        drop(first);
        tx.send(Event::Token("b".into())).await.expect("send");
        tx.send(Event::Done {
            answer: "ab".into(),
        })
        .await
        .expect("send");
        drop(tx);
        let buf = hub.get("t1").expect("known turn");
        let mut again = buf.subscribe(2).expect("no gap");
        let mut ids = Vec::new();
        while let Some((id, _)) = again.next().await.expect("ok") {
            ids.push(id);
        }
        assert_eq!(ids, vec![3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_nobody_listens_to_is_abandoned_after_the_grace() {
        let cfg = HubConfig {
            abandon_grace: Duration::from_secs(5),
            ..HubConfig::default()
        };
        let hub = Arc::new(TurnHub::new(cfg));
        let (tx, rx) = mpsc::channel(8);
        let first = hub.track("s".into(), rx);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!tx.is_closed(), "a listener keeps the turn alive");
        drop(first);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!tx.is_closed(), "within the grace the turn goes on");
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            tx.is_closed(),
            "after the grace the dialogue is told to stop"
        );
    }

    #[tokio::test]
    async fn a_listener_too_far_behind_is_told_so() {
        let hub = Arc::new(TurnHub::new(HubConfig {
            max_events: 16,
            ..HubConfig::default()
        }));
        let (tx, rx) = mpsc::channel(64);
        let _first = hub.track("s".into(), rx);
        tx.send(meta("t2")).await.expect("send");
        for i in 0..40 {
            tx.send(Event::Token(i.to_string())).await.expect("send");
        }
        drop(tx);
        // Wait until the pump has moved everything.
        let buf = loop {
            if let Some(b) = hub.get("t2") {
                if b.done_at().is_some() {
                    break b;
                }
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(buf.subscribe(1).err(), Some(ResumeError::Gap));
        assert!(buf.subscribe(30).is_ok());
    }
}
