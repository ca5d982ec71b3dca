//! Limits: token-bucket rates per IP or session, and a cap on the model requests one caller
//! may have queued or running at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token-bucket rate limiter keyed by IP or session.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` sustained, up to `burst` at once. `per_minute == 0` disables the limit.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(wait)` when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = self.per_minute as f64 / 60.0;
        let now = Instant::now();
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        // Forget idle keys now and then so the map cannot grow without bound.
        if buckets.len() > 10_000 {
            let full = self.burst as f64 / rate;
            buckets.retain(|_, (_, t)| now.duration_since(*t).as_secs_f64() < full);
        }
        let (tokens, last) = buckets
            .entry(key.to_string())
            .or_insert((self.burst as f64, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(self.burst as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }

    /// Key for an IP address.
    pub fn ip_key(ip: IpAddr) -> String {
        format!("ip:{ip}")
    }
}

/// Counts the model requests each caller has queued or running, and refuses more than
/// `limit`: one phone that re-sends while the first question still waits must not fill the
/// single model worker's queue for everybody else.
#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// One request counted by [`InFlight`]; dropping it (the turn ended) frees the slot.
#[derive(Debug)]
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    key: String,
}

impl InFlight {
    /// At most `limit` per key; 0 disables the cap.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `key`, or `None` when the caller already has `limit` in flight.
    pub fn try_acquire(self: &Arc<Self>, key: String) -> Option<InFlightGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if self.limit > 0 && *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(InFlightGuard {
            owner: self.clone(),
            key,
        })
    }

    /// Requests in flight for `key` now.
    #[cfg(test)]
    fn count(&self, key: &str) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_says_how_long_to_wait() {
        let r = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(r.check("a").is_ok());
        }
        let wait = r.check("a").expect_err("bucket empty");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(r.check("b").is_ok(), "keys are independent");
        assert!(RateLimiter::new(0, 1).check("a").is_ok(), "0 disables");
    }

    #[test]
    fn in_flight_caps_each_key_and_frees_on_drop() {
        let f = InFlight::new(2);
        let a = f.try_acquire("s".into()).expect("first");
        let _b = f.try_acquire("s".into()).expect("second");
        assert!(f.try_acquire("s".into()).is_none(), "third refused");
        assert!(
            f.try_acquire("t".into()).is_some(),
            "other keys are independent"
        );
        drop(a);
        assert_eq!(f.count("s"), 1);
        assert!(f.try_acquire("s".into()).is_some(), "a slot came back");
    }
}
