//! The waiting room's keys and signed tokens, with nothing of the HTTP around them.
//!
//! Every key of the room is derived from the cluster secret with its own label
//! ([`derive_key`]), so that a token of one kind can never pass for another even if their
//! claims happened to decode alike. A signed token reads
//!
//! ```text
//! <prefix> "." base64url(json claims) "." base64url(HMAC-SHA256(key, <prefix> "." <middle>))
//! ```
//!
//! (base64url without padding). The prefix names the kind and its version (`a1` for admissions);
//! it is covered by the MAC. [`sign_claims`] and [`open_claims`] are the generic core, which the
//! room reuses for its own tickets and challenges; [`AdmissionSigner`] adds the admission's
//! claims and its expiry.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use model::room::Place;
use model::{EventId, Millis, UserId};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The label of the key admission tokens are signed with.
pub const ADMISSION_LABEL: &str = "boxoffice room admission v1";
/// The label of the key the room signs its tickets (a fan's place) with.
pub const TICKET_LABEL: &str = "boxoffice room ticket v1";
/// The label of the key the room signs its proof-of-work challenges with.
pub const CHALLENGE_LABEL: &str = "boxoffice room challenge v1";

/// The prefix of admission tokens.
pub const ADMISSION_PREFIX: &str = "a1";

/// Longest token accepted: anything longer is malformed before any decoding or hashing, so that
/// a client cannot make the gateway hash megabytes.
pub const TOKEN_BYTES_MAX: usize = 1024;

/// `HMAC-SHA256(secret, label)`: one key per use from the one cluster secret.
pub fn derive_key(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("hmac takes keys of any length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The key for `label` from the configured cluster secret. Without one, from a secret drawn once
/// per process: the gateway and the room of one node then still agree (their tokens work on that
/// node only), and nobody can forge tokens with the empty key.
pub fn room_key(cluster_secret: &str, label: &str) -> [u8; 32] {
    if !cluster_secret.is_empty() {
        return derive_key(cluster_secret.as_bytes(), label);
    }
    static LOCAL_SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = LOCAL_SECRET.get_or_init(|| {
        tracing::warn!("no cluster secret configured: waiting room tokens will only work on this node");
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        secret
    });
    derive_key(secret, label)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn mac_of(prefix: &str, key: &[u8; 32], middle: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes keys of any length");
    mac.update(prefix.as_bytes());
    mac.update(b".");
    mac.update(middle.as_bytes());
    mac
}

fn check_prefix(prefix: &str) {
    assert!(!prefix.is_empty() && !prefix.contains('.'), "a token prefix is a non-empty word without dots");
}

/// `claims` signed with `key` under `prefix` (given without its dot).
pub fn sign_claims<T: Serialize>(prefix: &str, key: &[u8; 32], claims: &T) -> String {
    check_prefix(prefix);
    let json = serde_json::to_vec(claims).expect("claims serialize to json");
    let middle = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac_of(prefix, key, &middle).finalize().into_bytes());
    format!("{prefix}.{middle}.{signature}")
}

/// The claims of `token` if it carries `prefix` and `key` signed it. The signature is checked
/// (in constant time) before the claims are decoded; expiry is the caller's to check.
pub fn open_claims<T: DeserializeOwned>(prefix: &str, key: &[u8; 32], token: &str) -> Result<T, AdmissionError> {
    check_prefix(prefix);
    if token.len() > TOKEN_BYTES_MAX {
        return Err(AdmissionError::Malformed);
    }
    let rest = token.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).ok_or(AdmissionError::Malformed)?;
    let (middle, signature) = rest.rsplit_once('.').ok_or(AdmissionError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| AdmissionError::Malformed)?;
    mac_of(prefix, key, middle).verify_slice(&signature).map_err(|_| AdmissionError::BadSignature)?;
    let json = URL_SAFE_NO_PAD.decode(middle).map_err(|_| AdmissionError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| AdmissionError::Malformed)
}

/// What an admission token says. Short names keep tokens short: `ev` the event, `uid` the fan,
/// `pl` the place the fan was admitted at, `exp` when the admission ends (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionClaims {
    #[serde(rename = "ev")]
    pub event: EventId,
    #[serde(rename = "uid")]
    pub user: UserId,
    /// The place in line: apply lets one booking be made per place.
    #[serde(rename = "pl")]
    pub place: Place,
    #[serde(rename = "exp")]
    pub expires_at: Millis,
}

/// Signs and checks admission tokens with the admission key.
#[derive(Clone)]
pub struct AdmissionSigner {
    key: [u8; 32],
}

impl AdmissionSigner {
    /// A signer whose key is derived from `secret`.
    pub fn new(secret: &[u8]) -> Self {
        AdmissionSigner { key: derive_key(secret, ADMISSION_LABEL) }
    }

    /// The signer for the configured cluster secret (see [`room_key`] for an empty one).
    pub fn for_cluster(cluster_secret: &str) -> Self {
        AdmissionSigner { key: room_key(cluster_secret, ADMISSION_LABEL) }
    }

    pub fn sign(&self, claims: &AdmissionClaims) -> String {
        sign_claims(ADMISSION_PREFIX, &self.key, claims)
    }

    /// The claims of `token` if it is ours and the admission still lasts at `now`.
    pub fn verify(&self, token: &str, now: Millis) -> Result<AdmissionClaims, AdmissionError> {
        let claims: AdmissionClaims = open_claims(ADMISSION_PREFIX, &self.key, token)?;
        if now >= claims.expires_at {
            return Err(AdmissionError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::room::CLASS_ONSALE;

    const NOW: Millis = 1_800_000_000_000;

    fn claims() -> AdmissionClaims {
        AdmissionClaims {
            event: 42,
            user: 7,
            place: Place { class: CLASS_ONSALE, primary: NOW - 5_000, node: 2, seq: 9 },
            expires_at: NOW + 600_000,
        }
    }

    fn signer() -> AdmissionSigner {
        AdmissionSigner::new(b"cluster secret")
    }

    #[test]
    fn a_signed_admission_verifies_with_its_claims() {
        let token = signer().sign(&claims());
        assert!(token.starts_with("a1."), "{token}");
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(signer().verify(&token, NOW), Ok(claims()));
    }

    #[test]
    fn claims_use_their_short_names() {
        let json = serde_json::to_value(claims()).unwrap();
        assert_eq!(json["ev"], 42);
        assert_eq!(json["uid"], 7);
        assert_eq!(json["pl"]["seq"], 9);
        assert_eq!(json["exp"], NOW + 600_000);
    }

    #[test]
    fn a_flipped_byte_anywhere_breaks_the_token() {
        let token = signer().sign(&claims());
        let first_dot = token.find('.').unwrap();
        for at in first_dot + 1..token.len() {
            let mut bytes = token.clone().into_bytes();
            if bytes[at] == b'.' {
                continue;
            }
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            let error = signer().verify(&forged, NOW).unwrap_err();
            assert!(matches!(error, AdmissionError::BadSignature | AdmissionError::Malformed), "at {at}: {error}");
        }
    }

    #[test]
    fn a_token_of_another_key_is_forged() {
        let token = AdmissionSigner::new(b"other secret").sign(&claims());
        assert_eq!(signer().verify(&token, NOW), Err(AdmissionError::BadSignature));
        let ticket_key = derive_key(b"cluster secret", TICKET_LABEL);
        let as_ticket = sign_claims(ADMISSION_PREFIX, &ticket_key, &claims());
        assert_eq!(signer().verify(&as_ticket, NOW), Err(AdmissionError::BadSignature));
    }

    #[test]
    fn an_admission_ends_exactly_at_its_expiry() {
        let token = signer().sign(&claims());
        assert!(signer().verify(&token, claims().expires_at - 1).is_ok());
        assert_eq!(signer().verify(&token, claims().expires_at), Err(AdmissionError::Expired));
    }

    #[test]
    fn another_prefix_is_malformed_even_with_the_right_key() {
        let key = derive_key(b"cluster secret", ADMISSION_LABEL);
        let ticket = sign_claims("t1", &key, &claims());
        assert_eq!(signer().verify(&ticket, NOW), Err(AdmissionError::Malformed));
        let renamed = ticket.replacen("t1.", "a1.", 1);
        assert_eq!(signer().verify(&renamed, NOW), Err(AdmissionError::BadSignature), "the prefix is signed");
        assert_eq!(open_claims::<AdmissionClaims>("t1", &key, &ticket), Ok(claims()));
    }

    #[test]
    fn an_oversized_token_is_malformed() {
        let token = signer().sign(&claims());
        let padded = format!("{token}{}", "A".repeat(TOKEN_BYTES_MAX));
        assert_eq!(signer().verify(&padded, NOW), Err(AdmissionError::Malformed));
        #[derive(Serialize, Deserialize)]
        struct Big {
            text: String,
        }
        let key = derive_key(b"k", CHALLENGE_LABEL);
        let big = sign_claims("c1", &key, &Big { text: "x".repeat(TOKEN_BYTES_MAX) });
        assert_eq!(open_claims::<Big>("c1", &key, &big).err(), Some(AdmissionError::Malformed));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for token in ["", ".", "a1", "a1.", "a1..", "a1.x", "a1.!!.??", "a1.\u{1F600}.\u{1F600}", "x1.a.b"] {
            assert!(signer().verify(token, NOW).is_err(), "{token}");
        }
    }

    #[test]
    fn keys_differ_by_label_and_secret() {
        let admission = derive_key(b"s", ADMISSION_LABEL);
        assert_ne!(admission, derive_key(b"s", TICKET_LABEL));
        assert_ne!(admission, derive_key(b"s", CHALLENGE_LABEL));
        assert_ne!(admission, derive_key(b"t", ADMISSION_LABEL));
        assert_eq!(room_key("s", ADMISSION_LABEL), admission);
        assert_eq!(room_key("", ADMISSION_LABEL), room_key("", ADMISSION_LABEL), "one local secret per process");
        assert_ne!(room_key("", ADMISSION_LABEL), derive_key(b"", ADMISSION_LABEL));
    }
}
