//! Sealing of callback numbers (ChaCha20-Poly1305): what is stored is `hex(nonce ‖ ciphertext)`,
//! so a copy of the database alone reveals no number. The key is `console.callback_key` (64 hex
//! digits) or, unset, `<home>/callback.key`, made on first use with owner-only permissions.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Sealing errors.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The configured key is not 64 hex digits.
    #[error("console.callback_key: use 64 hex digits (32 bytes)")]
    BadKey,
    /// The key file could not be read or made.
    #[error("callback key file {path}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Stored text that does not open with this key (another key, or damaged).
    #[error("a sealed value does not open with this key")]
    Open,
}

/// Seals and opens short values.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// From 32 key bytes.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// From the configured hex key, else the key file under `home` (made when missing).
    pub fn load(configured: Option<&str>, home: &Path) -> Result<Self, SealError> {
        if let Some(hex_key) = configured {
            let bytes = hex::decode(hex_key.trim()).map_err(|_| SealError::BadKey)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
            return Ok(Self::from_key(&key));
        }
        let path = home.join("callback.key");
        let io = |source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKey)?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
                Ok(Self::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                std::fs::create_dir_all(home).map_err(io)?;
                write_private(&path, &hex::encode(key)).map_err(io)?;
                Ok(Self::from_key(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `hex(nonce ‖ ciphertext)` of `plain`, with a fresh random nonce.
    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        // Encryption of a short in-memory value cannot fail with a valid key.
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        hex::encode(out)
    }

    /// The value sealed in `sealed`.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = hex::decode(sealed).map_err(|_| SealError::Open)?;
        if bytes.len() < 12 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

/// Writes a file only its owner can read (on Unix).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_never_show_the_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Sealer::load(None, dir.path()).expect("key file made");
        let s1 = a.seal("13812345678");
        let s2 = a.seal("13812345678");
        assert_ne!(s1, s2, "a fresh nonce each time");
        assert!(!s1.contains("13812345678"));
        assert_eq!(a.open(&s1).expect("open"), "13812345678");
        // The same key file opens it again (a restart); another key does not.
        let again = Sealer::load(None, dir.path()).expect("key file read");
        assert_eq!(again.open(&s2).expect("open"), "13812345678");
        let other = Sealer::load(Some(&"ab".repeat(32)), dir.path()).expect("configured key");
        assert!(other.open(&s1).is_err());
        assert!(Sealer::load(Some("short"), dir.path()).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("callback.key"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }
}
