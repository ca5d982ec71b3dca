//! The guard: everything a client sends passes here before it is stored, logged or put in a
//! prompt.
//!
//! - [`pii`]: masking of ID, phone, card and other numbers, e-mail, names given as names.
//! - [`text`]: input hygiene (control and invisible characters) and log escaping.
//! - [`limits`]: rate limits and the per-caller cap on model requests in flight.
//! - [`client_ip`]: the client's address behind trusted reverse proxies.

pub mod client_ip;
pub mod limits;
pub mod pii;
pub mod text;

pub use limits::{InFlight, InFlightGuard, RateLimiter};
pub use pii::{has_pii, mask_pii};
pub use text::{clean_input, for_log};

/// A field a citizen wrote, as it may be stored: cleaned, then masked.
pub fn citizen_text(s: &str) -> String {
    mask_pii(&clean_input(s))
}
