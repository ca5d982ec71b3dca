//! Domain types shared by every layer, parsed once at the edge: a leaf module everyone may
//! import (it imports nothing of ours).
//!
//! The central choice: a conversation belongs to whoever holds its secret. Session ids are made
//! by the server only ([`SessionId::new`]); a [`SessionToken`] is handed to the creator once and
//! stored only as its SHA-256 ([`TokenHash`]). A request proves who it is with a [`Caller`];
//! the channel comes from the endpoint or credential, never from the request body.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A session id made by the server: 32 lowercase hex digits (128 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A new random id.
    pub fn new() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// Parses an id given by a client; anything but 32 hex digits is refused, so a
    /// client-chosen name can never become a session.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text is not a server-made id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct InvalidId;

/// A message (turn) id: same shape as a session id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TurnId(String);

impl TurnId {
    /// Parses a client-given turn id.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        SessionId::parse(s).map(|s| Self(s.0))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret that proves a caller owns a session. Its `Debug` never shows the value, so it
/// cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// A new random token (256 bits, hex).
    pub fn new() -> Self {
        let a = rand::random::<u128>();
        let b = rand::random::<u128>();
        Self(format!("{a:032x}{b:032x}"))
    }

    /// Wraps a token presented by a client. Any text is accepted here: a wrong token simply
    /// hashes to something that matches nothing.
    pub fn from_client(s: &str) -> Self {
        Self(s.trim().to_string())
    }

    /// The value, to hand to the session's creator exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: SHA-256 of the token, hex.
    pub fn hash(&self) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl Default for SessionToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

/// SHA-256 of a session token, hex; compared in constant time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    /// Wraps a stored hash.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The hash as text (for storage).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, so response time says nothing about how much matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

/// Compares two byte strings without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a conversation comes from. Derived from the endpoint or credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The web widget and any HTTP client of `/api/v1/chat*`.
    Web,
    /// The WeChat mini-program API.
    Miniprogram,
    /// The WeChat Official Account.
    WechatMp,
    /// `leye ask` in a terminal.
    Cli,
    /// The benchmark runner.
    Bench,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Miniprogram => "miniprogram",
            Channel::WechatMp => "wechat_mp",
            Channel::Cli => "cli",
            Channel::Bench => "bench",
        }
    }

    /// Reads a stored name; unknown names (older rows) read as `web`.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "miniprogram" => Channel::Miniprogram,
            "wechat_mp" => Channel::WechatMp,
            "cli" => Channel::Cli,
            "bench" => Channel::Bench,
            _ => Channel::Web,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is making a request, as proven by its credential. Only citizen sessions exist now; a
/// WeChat user and a counselor become further variants, each with its own proof, and every
/// place that acts for a caller takes this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A citizen who proved ownership of this session (its token over HTTP; the operator at
    /// the terminal for `leye ask`).
    Citizen {
        /// The session.
        session: SessionId,
        /// The channel, from the endpoint or credential (never from a request body).
        channel: Channel,
    },
}

impl Caller {
    /// The conversation the caller acts on.
    pub fn session(&self) -> &SessionId {
        match self {
            Caller::Citizen { session, .. } => session,
        }
    }

    /// The channel the caller came through.
    pub fn channel(&self) -> Channel {
        match self {
            Caller::Citizen { channel, .. } => *channel,
        }
    }
}

/// A citizen's 👍/👎.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Helpful.
    Up,
    /// Not helpful.
    Down,
}

impl Rating {
    /// Stored as +1 / -1.
    pub fn score(self) -> i64 {
        match self {
            Rating::Up => 1,
            Rating::Down => -1,
        }
    }
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A policy question (subsidies, insurance, conditions, how to apply).
    Policy,
    /// Looking for a job.
    Job,
    /// Starting a business.
    Startup,
    /// Wants (or needs) a person.
    Handoff,
    /// Greetings, thanks, who are you.
    Smalltalk,
    /// Not about employment, or an attempt to subvert the assistant.
    OutOfScope,
    /// What can I get (政策申领): the benefit cards and the eligibility interview.
    Claim,
}

impl Intent {
    /// The stored / metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Policy => "policy",
            Intent::Job => "job",
            Intent::Startup => "startup",
            Intent::Handoff => "handoff",
            Intent::Smalltalk => "smalltalk",
            Intent::OutOfScope => "out_of_scope",
            Intent::Claim => "claim",
        }
    }

    /// Every intent (metrics are pre-registered with zero).
    pub const ALL: [Intent; 7] = [
        Intent::Policy,
        Intent::Job,
        Intent::Startup,
        Intent::Handoff,
        Intent::Smalltalk,
        Intent::OutOfScope,
        Intent::Claim,
    ];
}

/// Why a conversation goes to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The citizen asked for a person.
    Explicit,
    /// A complaint.
    Complaint,
    /// Unpaid wages or a labour dispute.
    WageDispute,
    /// Self-harm or crisis.
    Crisis,
    /// The assistant failed to answer several times in a row.
    RepeatedFailure,
}

impl HandoffReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Explicit => "explicit",
            HandoffReason::Complaint => "complaint",
            HandoffReason::WageDispute => "wage_dispute",
            HandoffReason::Crisis => "crisis",
            HandoffReason::RepeatedFailure => "repeated_failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_server_made_hex_only() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(id.as_str()), Ok(id.clone()));
        for bad in ["abc-123", "../../etc", "", &"a".repeat(33), &"A".repeat(32)] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_hash_and_never_print() {
        let t = SessionToken::new();
        assert_eq!(t.expose().len(), 64);
        assert!(t
            .hash()
            .matches(&SessionToken::from_client(t.expose()).hash()));
        assert!(!t.hash().matches(&SessionToken::new().hash()));
        assert!(!format!("{t:?}").contains(t.expose()));
        assert_ne!(t.hash().as_str(), t.expose());
    }
}
