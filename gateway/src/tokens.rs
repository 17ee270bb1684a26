//! Fan tokens and shared secrets, with nothing of the HTTP around them.
//!
//! A fan token is `base64url(json {"uid","exp"}) "." base64url(HMAC-SHA256(cluster_secret, first
//! part))`. Every node shares the secret, so any node accepts a token another one issued, and no
//! node has to remember sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use model::{Millis, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a fan token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub uid: UserId,
    /// When the token stops being valid, in milliseconds since the epoch.
    pub exp: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// Signs and checks fan tokens with the cluster secret.
pub struct TokenSigner {
    key: Vec<u8>,
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        TokenSigner { key: secret.to_vec() }
    }

    /// A signer with a key nobody else knows: for a gateway configured without a secret, so that
    /// its tokens cannot be forged with the empty key.
    pub fn random() -> Self {
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        TokenSigner { key }
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("hmac takes keys of any length");
        mac.update(payload);
        mac
    }

    pub fn sign(&self, claims: Claims) -> String {
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of `token` if it is ours and still valid at `now`. The signature is checked
    /// (in constant time) before the payload is even decoded.
    pub fn verify(&self, token: &str, now: Millis) -> Result<Claims, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        self.mac(payload.as_bytes()).verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Whether two secrets are equal, in time that does not depend on where they differ: both are
/// hashed first, so the comparison always runs over 32 bytes whatever the lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    let difference = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"cluster secret")
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let claims = Claims { uid: 42, exp: NOW + 1 };
        assert_eq!(signer().verify(&signer().sign(claims), NOW), Ok(claims));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_forged() {
        let token = TokenSigner::new(b"other secret").sign(Claims { uid: 42, exp: NOW + 1 });
        assert_eq!(signer().verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_breaks_the_signature() {
        let token = signer().sign(Claims { uid: 42, exp: NOW + 1 });
        let (_, signature) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"uid":1,"exp":9999999999999}"#);
        let forged = format!("{forged_payload}.{signature}");
        assert_eq!(signer().verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_expires_exactly_at_its_expiry() {
        let token = signer().sign(Claims { uid: 42, exp: NOW });
        assert_eq!(signer().verify(&token, NOW - 1).map(|c| c.uid), Ok(42));
        assert_eq!(signer().verify(&token, NOW), Err(TokenError::Expired));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for token in ["", ".", "abc", "a.b.c", "!!!.???", "\u{1F600}.\u{1F600}"] {
            assert!(signer().verify(token, NOW).is_err(), "{token}");
        }
    }

    #[test]
    fn random_signers_do_not_accept_each_others_tokens() {
        let token = TokenSigner::random().sign(Claims { uid: 1, exp: NOW + 1 });
        assert_eq!(TokenSigner::random().verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("admin-token", "admin-token"));
        assert!(!same_secret("admin-token", "admin-tokem"));
        assert!(!same_secret("admin-token", "admin-token-longer"));
        assert!(!same_secret("", "x"));
    }
}
