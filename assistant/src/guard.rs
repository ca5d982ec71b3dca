//! The guard: PII masking and rate limits, applied before anything is stored, logged or put in
//! a prompt.
//!
//! Masked: mainland ID numbers (18 characters, the last may be X), mobile numbers (11 digits
//! starting 13–19, optionally +86), bank card numbers (16–19 digits, with or without spaces or
//! dashes between groups). Digits inside a longer run of digits are not split: a 20-digit run is
//! masked as a card-like number rather than leaving a tail behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use regex::Regex;

/// The placeholders written instead of PII.
pub const ID_MASK: &str = "[身份证号]";
/// Placeholder for a mobile number.
pub const PHONE_MASK: &str = "[手机号]";
/// Placeholder for a bank card number.
pub const CARD_MASK: &str = "[银行卡号]";

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        // `regex` has no look-around, so digit boundaries are matched as (^|\D) and put back.
        let build = |re: &str| Regex::new(re).expect("static pattern");
        vec![
            (build(r"(^|[^0-9])([1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx])($|[^0-9])"), ID_MASK),
            (build(r"(^|[^0-9])((?:[0-9]{4}[ -]){3,4}[0-9]{1,4})($|[^0-9])"), CARD_MASK),
            (build(r"(^|[^0-9])((?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2})($|[^0-9])"), PHONE_MASK),
            (build(r"(^|[^0-9])([0-9]{15,21})($|[^0-9])"), CARD_MASK),
        ]
    })
}

/// Masks ID, mobile and bank card numbers in `text`.
pub fn mask_pii(text: &str) -> String {
    let mut out = text.to_string();
    for (re, mask) in patterns() {
        // Matches that share a boundary character overlap; loop until none is left.
        loop {
            let next = re.replace_all(&out, |c: &regex::Captures| {
                format!("{}{mask}{}", &c[1], &c[3])
            });
            if next == out {
                break;
            }
            out = next.into_owned();
        }
    }
    out
}

/// Whether `text` still holds something that looks like PII (used by tests and as a
/// last check before logging).
pub fn has_pii(text: &str) -> bool {
    patterns().iter().any(|(re, _)| re.is_match(text))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_ids_phones_and_cards() {
        let t = "我的身份证370102199003071234，手机13812345678，卡号6222 0212 3456 7890 123，谢谢";
        let m = mask_pii(t);
        assert_eq!(
            m,
            "我的身份证[身份证号]，手机[手机号]，卡号[银行卡号]，谢谢"
        );
        assert!(!has_pii(&m));
        assert_eq!(mask_pii("号码 +86 138-1234-5678。"), "号码 [手机号]。");
        assert_eq!(mask_pii("37010219900307123X"), "[身份证号]");
        assert_eq!(mask_pii("6222021234567890123"), "[银行卡号]");
        // Ordinary numbers stay: amounts, years, 文号, hotline numbers.
        let plain = "补贴3000元，2025年，鲁人社发〔2025〕9号，拨打12333";
        assert_eq!(mask_pii(plain), plain);
    }

    #[test]
    fn adjacent_numbers_are_all_masked() {
        let m = mask_pii("13812345678,13912345678");
        assert_eq!(m, "[手机号],[手机号]");
    }

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
}
