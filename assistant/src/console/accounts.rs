//! Counselor accounts: roles and passwords (argon2id).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;

/// What an account may do. Each role includes the ones below it: a supervisor is also a
/// counselor, an admin also a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The queue and the conversations they hold.
    Counselor,
    /// Every conversation, reassigning, the dashboard.
    Supervisor,
    /// Accounts and the audit log.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Counselor => "counselor",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// From a stored or typed name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "counselor" => Some(Role::Counselor),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// Account errors.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The password breaks the rules.
    #[error("password: {0}")]
    WeakPassword(&'static str),
    /// Hashing failed (out of memory, bad parameters).
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// Shortest accepted password, characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Checks a new password against the rules.
pub fn check_new_password(pw: &str) -> Result<(), AccountError> {
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::WeakPassword("use at least 10 characters"));
    }
    if pw.chars().count() > 256 {
        return Err(AccountError::WeakPassword("use at most 256 characters"));
    }
    if pw.chars().any(char::is_control) {
        return Err(AccountError::WeakPassword("no control characters"));
    }
    Ok(())
}

/// The argon2id PHC string of a password (random salt; the crate's default cost: 19 MiB,
/// 2 passes, OWASP's minimum).
pub fn hash_password(pw: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `pw` matches the stored hash (a malformed hash matches nothing).
pub fn verify_password(hash: &str, pw: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// A hash no password matches, verified for unknown login names so that their answer takes
/// as long as a wrong password's.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&format!("{:032x}", rand::random::<u128>())).unwrap_or_default()
    })
}

/// A random initial password (16 characters without look-alikes), printed once.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_the_right_password() {
        let a = hash_password("correct horse battery").expect("hash");
        let b = hash_password("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse batter"));
        assert!(!verify_password("not a hash", "anything"));
        assert!(!verify_password(decoy_hash(), ""));
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Role::Supervisor));
        assert!(Role::Supervisor.allows(Role::Counselor));
        assert!(!Role::Counselor.allows(Role::Supervisor));
        assert!(!Role::Supervisor.allows(Role::Admin));
        assert_eq!(Role::parse("supervisor"), Some(Role::Supervisor));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn weak_passwords_are_refused_and_generated_ones_pass() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("ten chars\u{7}!").is_err());
        let g = generate_password();
        assert_eq!(g.len(), 16);
        assert!(check_new_password(&g).is_ok());
    }
}
