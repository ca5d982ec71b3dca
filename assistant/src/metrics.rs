//! Prometheus metrics, rendered as text at `/metrics`: requests by route and status, turns by
//! intent, handoffs by reason, time-to-first-token and turn-latency histograms, queue depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::{HandoffReason, Intent};

/// Histogram bucket bounds, seconds: CPU answers take seconds, not milliseconds.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0,
];

/// The state of the model queue (readiness and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Requests waiting now.
    pub queued: usize,
    /// How many may wait.
    pub capacity: usize,
    /// The worker has stopped: nothing will be answered.
    pub stopped: bool,
    /// Requests dropped before prefill because nobody waited for them any more.
    pub skipped: u64,
    /// Tokens generated so far, over all requests.
    pub tokens: u64,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (atomics hold integers).
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    turns: Mutex<BTreeMap<&'static str, u64>>,
    handoffs: Mutex<BTreeMap<&'static str, u64>>,
    ttft: Histogram,
    latency: Histogram,
    rate_limited: AtomicU64,
    crisis_alerts: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    let mut m = match m.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    *m.entry(k).or_insert(0) += 1;
}

impl Metrics {
    /// Counts an HTTP request by matched route and status.
    pub fn request(&self, route: &str, status: u16) {
        bump(&self.requests, (route.to_string(), status));
    }
    /// Counts a turn by intent.
    pub fn turn(&self, intent: Intent) {
        bump(&self.turns, intent.as_str());
    }
    /// Counts a handoff by reason.
    pub fn handoff(&self, reason: HandoffReason) {
        bump(&self.handoffs, reason.as_str());
    }
    /// Records time to the first answer text.
    pub fn ttft(&self, d: Duration) {
        self.ttft.observe(d);
    }
    /// Records a whole turn.
    pub fn turn_latency(&self, d: Duration) {
        self.latency.observe(d);
    }
    /// Counts a crisis nobody could take at once (outside service hours or nobody online).
    pub fn crisis_alert(&self) {
        self.crisis_alerts.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a 429.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition; `queue_depth` and `queue_capacity` come from the generator.
    pub fn render(&self, queue: &QueueState) -> String {
        let mut out = String::new();
        out.push_str("# HELP leye_http_requests_total HTTP requests by route and status.\n# TYPE leye_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "leye_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP leye_turns_total Conversation turns by intent.\n# TYPE leye_turns_total counter\n");
        if let Ok(m) = self.turns.lock() {
            for i in Intent::ALL {
                let n = m.get(i.as_str()).copied().unwrap_or(0);
                let _ = writeln!(out, "leye_turns_total{{intent=\"{}\"}} {n}", i.as_str());
            }
        }
        out.push_str("# HELP leye_handoffs_total Escalations to counselors by reason.\n# TYPE leye_handoffs_total counter\n");
        if let Ok(m) = self.handoffs.lock() {
            let total: u64 = m.values().sum();
            for (r, n) in m.iter() {
                let _ = writeln!(out, "leye_handoffs_total{{reason=\"{r}\"}} {n}");
            }
            if m.is_empty() {
                let _ = writeln!(out, "leye_handoffs_total{{reason=\"explicit\"}} {total}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP leye_rate_limited_total Requests answered 429.\n# TYPE leye_rate_limited_total counter\nleye_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP leye_crisis_alerts_total Crisis escalations nobody could take at once (outside service hours or nobody online).\n# TYPE leye_crisis_alerts_total counter\nleye_crisis_alerts_total {}",
            self.crisis_alerts.load(Ordering::Relaxed)
        );
        self.ttft.render(
            "leye_time_to_first_token_seconds",
            "Time from receiving a message to the first answer text.",
            &mut out,
        );
        self.latency.render(
            "leye_turn_latency_seconds",
            "Time from receiving a message to the end of the answer.",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP leye_llm_queue_depth Requests waiting for the model.\n# TYPE leye_llm_queue_depth gauge\nleye_llm_queue_depth {}\n# HELP leye_llm_queue_capacity Requests that may wait.\n# TYPE leye_llm_queue_capacity gauge\nleye_llm_queue_capacity {}",
            queue.queued, queue.capacity
        );
        let _ = writeln!(
            out,
            "# HELP leye_llm_skipped_total Requests dropped before prefill: nobody waited any more.\n# TYPE leye_llm_skipped_total counter\nleye_llm_skipped_total {}\n# HELP leye_llm_tokens_total Tokens generated.\n# TYPE leye_llm_tokens_total counter\nleye_llm_tokens_total {}",
            queue.skipped, queue.tokens
        );
        out
    }
}
