//! End-to-end encryption of data track frames with a room-wide shared key, as LiveKit's SDKs
//! do it (their native `DataPacketCryptor`, the JS SDK's `DataCryptor`), so that a frame
//! dtbridge encrypts decrypts in theirs and the other way round:
//!
//! - the shared key's bytes are the password of PBKDF2-HMAC-SHA256 with the salt
//!   `LKFrameEncryptionKey` and 100,000 iterations, which gives a 128-bit AES key;
//! - a frame's payload is sealed with AES-128-GCM, no associated data, the 16-byte tag
//!   appended; the 12-byte IV and the key's index (0 to 15) travel in the data track packet's
//!   E2EE extension, which `livekit-datatrack` writes and reads.
//!
//! The server forwards the packets and never holds the key. Keys are never printed: the
//! types holding them redact their `Debug`.

use livekit_datatrack::backend::{
    DecryptionError, DecryptionProvider, EncryptedPayload, EncryptionError, EncryptionProvider,
};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// Key indexes the SDKs keep (their key ring); a frame names its key by index.
pub const MAX_KEYS: usize = 16;
/// The SDKs' default ratchet salt, used as PBKDF2's salt.
const SALT: &[u8] = b"LKFrameEncryptionKey";
const PBKDF2_ITERATIONS: NonZeroU32 = NonZeroU32::new(100_000).unwrap();
const TAG_LEN: usize = 16;

/// The room's shared keys by index: a frame is encrypted with the last one and decrypted with
/// the one its index names, so a key can be replaced by adding one at the next index while
/// frames sealed with the old one are still on their way.
pub struct SharedKeys {
    keys: Vec<LessSafeKey>,
}

impl SharedKeys {
    /// Keys from a key file's text: one key per line, the first line being index 0. A line's
    /// bytes (without its line break) are the key, as given to an SDK's `shared_key`.
    pub fn parse(text: &[u8]) -> Result<SharedKeys, String> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .collect();
        if lines.len() > MAX_KEYS {
            return Err(format!(
                "{} keys, at most {MAX_KEYS} (key indexes 0 to {})",
                lines.len(),
                MAX_KEYS - 1
            ));
        }
        if let Some(empty) = lines.iter().position(|line| line.is_empty()) {
            return Err(if lines.len() == 1 {
                "empty: it holds the shared key, one key per line".to_string()
            } else {
                format!("line {} is empty: every line is a key (line 1 is key index 0)", empty + 1)
            });
        }
        Ok(SharedKeys { keys: lines.into_iter().map(derive_key).collect() })
    }

    /// The index frames are encrypted with: the last key's.
    pub fn current_index(&self) -> u8 {
        (self.keys.len() - 1) as u8
    }

    fn get(&self, index: u8) -> Option<&LessSafeKey> {
        self.keys.get(usize::from(index))
    }
}

impl fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedKeys({} keys, redacted)", self.keys.len())
    }
}

/// The AES key the SDKs derive from a shared key.
fn derive_key(shared_key: &[u8]) -> LessSafeKey {
    let mut key = [0u8; 16];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        PBKDF2_ITERATIONS,
        SALT,
        shared_key,
        &mut key,
    );
    let key = UnboundKey::new(&AES_128_GCM, &key).expect("16 bytes is an AES-128 key");
    LessSafeKey::new(key)
}

/// Seals this participant's frames with the current key.
#[derive(Debug)]
pub struct Encryptor {
    keys: Arc<SharedKeys>,
    random: SystemRandom,
}

impl Encryptor {
    /// Seals with the current key of `keys`.
    pub fn new(keys: Arc<SharedKeys>) -> Self {
        Self { keys, random: SystemRandom::new() }
    }
}

impl EncryptionProvider for Encryptor {
    fn encrypt(&self, payload: bytes::Bytes) -> Result<EncryptedPayload, EncryptionError> {
        let failed = |reason: &str| EncryptionError::Failed { reason: reason.to_string() };
        let key_index = self.keys.current_index();
        let key = self.keys.get(key_index).ok_or_else(|| failed("no key"))?;
        // Random IVs: every participant of the room seals with the same key, so counters
        // would repeat across them; 96 random bits do not in any realistic number of frames.
        let mut iv = [0u8; 12];
        self.random.fill(&mut iv).map_err(|_| failed("no random bytes for the IV"))?;
        let mut sealed = Vec::with_capacity(payload.len() + TAG_LEN);
        sealed.extend_from_slice(&payload);
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut sealed)
            .map_err(|_| failed("AES-GCM sealing failed"))?;
        Ok(EncryptedPayload { payload: sealed.into(), iv, key_index })
    }
}

/// Why a publisher's frames could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecryptFailure {
    /// The frames are encrypted and no key is configured.
    NoKey,
    /// The frames name a key index with no key configured.
    UnknownKeyIndex,
    /// The key of the frames' index does not open them: the publisher's key is different.
    WrongKey,
}

impl DecryptFailure {
    fn explain(self) -> &'static str {
        match self {
            Self::NoKey => {
                "they are end-to-end encrypted and no key is configured: set [livekit] \
                 e2ee_key_file or DTBRIDGE_E2EE_KEY to the room's shared key"
            }
            Self::UnknownKeyIndex => {
                "they name a key index the key file has no line for: add the publisher's \
                 newer key as the next line of the key file"
            }
            Self::WrongKey => {
                "the configured key does not open them: the publisher uses a different key"
            }
        }
    }
}

/// Frames of one publisher that could not be decrypted, for a summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Undecryptable {
    /// The publisher's identity.
    pub publisher: String,
    /// Why.
    pub reason: DecryptFailure,
    /// Frames dropped for that reason.
    pub frames: u64,
}

/// Opens remote participants' frames, and counts the ones it cannot open: those are dropped,
/// never passed on as if they were the frame.
#[derive(Debug, Default)]
pub struct Decryptor {
    keys: Option<Arc<SharedKeys>>,
    failures: Mutex<HashMap<(String, DecryptFailure), u64>>,
}

impl Decryptor {
    /// Opens with `keys`; with none, every encrypted frame is dropped as [`DecryptFailure::NoKey`].
    pub fn new(keys: Option<Arc<SharedKeys>>) -> Self {
        Self { keys, failures: Mutex::default() }
    }

    /// Frames dropped so far, by publisher and reason.
    pub fn undecryptable(&self) -> Vec<Undecryptable> {
        let mut all: Vec<Undecryptable> = crate::util::lock(&self.failures)
            .iter()
            .map(|((publisher, reason), &frames)| Undecryptable {
                publisher: publisher.clone(),
                reason: *reason,
                frames,
            })
            .collect();
        all.sort_by(|a, b| a.publisher.cmp(&b.publisher));
        all
    }

    fn open(&self, payload: EncryptedPayload) -> Result<bytes::Bytes, DecryptFailure> {
        let keys = self.keys.as_ref().ok_or(DecryptFailure::NoKey)?;
        let key = keys.get(payload.key_index).ok_or(DecryptFailure::UnknownKeyIndex)?;
        let mut sealed = Vec::from(payload.payload);
        let nonce = Nonce::assume_unique_for_key(payload.iv);
        let len = key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| DecryptFailure::WrongKey)?
            .len();
        sealed.truncate(len);
        Ok(sealed.into())
    }

    /// Counts a failure; the first of each publisher and reason is logged, the rest only
    /// counted (a wrong key fails every frame).
    fn count(&self, publisher: &str, reason: DecryptFailure, key_index: u8) {
        let mut failures = crate::util::lock(&self.failures);
        let frames = failures.entry((publisher.to_string(), reason)).or_insert(0);
        *frames += 1;
        if *frames == 1 {
            tracing::error!(
                "frames from '{}' cannot be decrypted (key index {key_index}) and are dropped: {}",
                crate::text::printable(publisher),
                reason.explain()
            );
        }
    }
}

impl DecryptionProvider for Decryptor {
    fn decrypt(
        &self,
        payload: EncryptedPayload,
        sender_identity: String,
    ) -> Result<bytes::Bytes, DecryptionError> {
        let key_index = payload.key_index;
        self.open(payload).map_err(|reason| {
            self.count(&sender_identity, reason, key_index);
            DecryptionError::Failed { reason: reason.explain().to_string() }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Arc<SharedKeys> {
        Arc::new(SharedKeys::parse(text.as_bytes()).unwrap())
    }

    fn roundtrip(sender: &str, receiver: Option<&str>) -> Result<bytes::Bytes, DecryptFailure> {
        let sealed =
            Encryptor::new(keys(sender)).encrypt(b"frame payload".as_ref().into()).unwrap();
        Decryptor::new(receiver.map(keys)).open(sealed)
    }

    #[test]
    fn a_frame_opens_with_the_same_key_only() {
        assert_eq!(roundtrip("secret\n", Some("secret")).unwrap().as_ref(), b"frame payload");
        assert_eq!(roundtrip("secret", Some("other")), Err(DecryptFailure::WrongKey));
        assert_eq!(roundtrip("secret", None), Err(DecryptFailure::NoKey));
        assert_eq!(roundtrip("old\nnew", Some("old")), Err(DecryptFailure::UnknownKeyIndex));
        assert_eq!(roundtrip("old\nnew", Some("x\nnew")).unwrap().as_ref(), b"frame payload");
    }

    #[test]
    fn sealed_frames_carry_the_current_index_and_a_fresh_iv() {
        let encryptor = Encryptor::new(keys("a\r\nb\r\nc\r\n"));
        let one = encryptor.encrypt(b"x".as_ref().into()).unwrap();
        let two = encryptor.encrypt(b"x".as_ref().into()).unwrap();
        assert_eq!(one.key_index, 2);
        assert_eq!(one.payload.len(), 1 + TAG_LEN);
        assert_ne!(one.iv, two.iv);
        assert_ne!(one.payload, two.payload);
    }

    /// The SDKs' derivation, checked against an independent PBKDF2-HMAC-SHA256 vector
    /// (password "secret", salt "LKFrameEncryptionKey", 100,000 iterations, first 16 bytes)
    /// computed with Python's `hashlib.pbkdf2_hmac`.
    #[test]
    fn the_key_is_derived_as_the_sdks_derive_it() {
        let mut key = [0u8; 16];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            PBKDF2_ITERATIONS,
            SALT,
            b"secret",
            &mut key,
        );
        assert_eq!(hex(&key), PBKDF2_SECRET_VECTOR);
    }

    const PBKDF2_SECRET_VECTOR: &str = "14ff4f61904663aad993812ea485edbd";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn bad_key_files_are_refused() {
        assert!(SharedKeys::parse(b"").unwrap_err().contains("empty"));
        assert!(SharedKeys::parse(b"\n").unwrap_err().contains("empty"));
        assert!(SharedKeys::parse(b"a\n\nb\n").unwrap_err().contains("line 2 is empty"));
        let many = "k\n".repeat(MAX_KEYS + 1);
        assert!(SharedKeys::parse(many.as_bytes()).unwrap_err().contains("at most 16"));
        assert_eq!(
            SharedKeys::parse("k\n".repeat(MAX_KEYS).as_bytes()).unwrap().current_index(),
            15
        );
    }

    #[test]
    fn keys_are_never_printed() {
        let debug = format!("{:?}", keys("hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
