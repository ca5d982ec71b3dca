//! WeChat's message signatures and safe-mode encryption.
//!
//! - URL check and plain mode: `signature = hex(sha1(sorted [token, timestamp, nonce]))`.
//! - Safe mode: `msg_signature = hex(sha1(sorted [token, timestamp, nonce, Encrypt]))`; the
//!   key is `base64(EncodingAESKey + "=")` (32 bytes), the IV its first 16 bytes, AES-256-CBC
//!   with PKCS#7 padding to 32-byte blocks; the plaintext is 16 random bytes, the XML's length
//!   (4 bytes, big-endian), the XML, then the appid — which must be ours.
//!
//! Checked against the vectors in `tests/data/wechat_crypto_vectors.json`.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use sha1::{Digest, Sha1};

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// WeChat pads to 32 bytes, not to AES's 16.
const PAD_BLOCK: usize = 32;

/// Why a message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 characters of base64 for 32 bytes.
    #[error("the EncodingAESKey must be 43 base64 characters (32 bytes)")]
    BadKey,
    /// `Encrypt` is not base64 or not whole AES blocks.
    #[error("the encrypted message is not base64 of whole AES blocks")]
    BadCiphertext,
    /// The padding after decryption is not PKCS#7.
    #[error("bad padding")]
    BadPadding,
    /// The decrypted layout (length field) does not fit.
    #[error("the decrypted message is malformed")]
    Malformed,
    /// The message was made for another app.
    #[error("the message is for another appid")]
    WrongAppId,
}

/// `hex(sha1(concat(sorted parts)))`.
pub fn signature(parts: &[&str]) -> String {
    let mut v: Vec<&str> = parts.to_vec();
    v.sort_unstable();
    let mut h = Sha1::new();
    for p in v {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Whether `given` is the signature of `parts` (compared in constant time).
pub fn verify(parts: &[&str], given: &str) -> bool {
    let want = signature(parts);
    crate::domain::constant_time_eq(
        want.as_bytes(),
        given.trim().to_ascii_lowercase().as_bytes(),
    )
}

/// The safe-mode cipher of one app.
#[derive(Clone)]
pub struct MessageCrypt {
    key: [u8; 32],
    appid: String,
}

impl std::fmt::Debug for MessageCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypt")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl MessageCrypt {
    /// From the 43-character EncodingAESKey and our appid.
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<Self, CryptoError> {
        let k = encoding_aes_key.trim();
        if k.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        // WeChat's keys are not canonical base64 (the last character carries stray bits).
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{k}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            key,
            appid: appid.to_string(),
        })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Opens an `Encrypt` field: the XML inside, after checking padding and appid.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::BadCiphertext)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::BadCiphertext);
        }
        let plain = Dec::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadCiphertext)?;
        let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        if plain[plain.len() - pad..]
            .iter()
            .any(|&b| b as usize != pad)
        {
            return Err(CryptoError::BadPadding);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CryptoError::Malformed);
        }
        let len = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
        let rest = &body[20..];
        if len > rest.len() {
            return Err(CryptoError::Malformed);
        }
        let (xml, appid) = rest.split_at(len);
        if !crate::domain::constant_time_eq(appid, self.appid.as_bytes()) {
            return Err(CryptoError::WrongAppId);
        }
        String::from_utf8(xml.to_vec()).map_err(|_| CryptoError::Malformed)
    }

    /// Seals an XML reply with the given 16 random bytes (random in the service; fixed in
    /// the test vectors).
    pub fn encrypt_with(&self, xml: &str, random16: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(xml.len() + self.appid.len() + 52);
        plain.extend_from_slice(random16);
        plain.extend_from_slice(&(xml.len() as u32).to_be_bytes());
        plain.extend_from_slice(xml.as_bytes());
        plain.extend_from_slice(self.appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let n = plain.len();
        let sealed = Enc::new(&self.key.into(), &self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, n)
            .map(|c| c.to_vec())
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }

    /// Seals an XML reply with fresh random bytes.
    pub fn encrypt(&self, xml: &str) -> String {
        self.encrypt_with(xml, &rand::random::<[u8; 16]>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_to_32_bytes_and_round_trips() {
        let c =
            MessageCrypt::new("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wxapp").expect("key");
        for n in [0, 1, 11, 12, 31, 32, 33, 100] {
            let xml = "x".repeat(n);
            let sealed = c.encrypt(&xml);
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&sealed)
                .expect("b64");
            assert_eq!(raw.len() % 32, 0);
            assert_eq!(c.decrypt(&sealed).expect("open"), xml);
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            MessageCrypt::new("short", "a").err(),
            Some(CryptoError::BadKey)
        );
        assert_eq!(
            MessageCrypt::new(&"!".repeat(43), "a").err(),
            Some(CryptoError::BadKey)
        );
    }
}
