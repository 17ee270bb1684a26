//! Signed webhooks, the way Stripe signs them: a header `Sandbox-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<payload>">`, checked against a shared secret and a tolerance
//! window so that a captured webhook cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "sandbox-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed: expected `t=<seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature does not match the payload")]
    Mismatch,
    #[error("the signature is {age_s} s old, beyond the tolerance of {tolerance_s} s")]
    Stale { age_s: i64, tolerance_s: i64 },
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The header value signing `payload` at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let signature = mac(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(signature))
}

/// Checks `header` against `payload`, at `now` (Unix seconds), within `tolerance_s` either way.
pub fn verify(secret: &str, header: &str, payload: &[u8], now: i64, tolerance_s: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(hex::decode(s).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Constant-time comparison, against any of the signatures given (as during a key roll).
    let matches = signatures.iter().any(|s| mac(secret, timestamp, payload).verify_slice(s).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age_s = now - timestamp;
    if age_s.abs() > tolerance_s {
        return Err(SignatureError::Stale { age_s, tolerance_s });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_payload_verifies_and_a_tampered_one_does_not() {
        let header = sign("whsec", 1_000, b"{\"id\":1}");
        assert_eq!(verify("whsec", &header, b"{\"id\":1}", 1_010, 300), Ok(()));
        assert_eq!(verify("whsec", &header, b"{\"id\":2}", 1_010, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify("other", &header, b"{\"id\":1}", 1_010, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_and_malformed_signatures_are_refused() {
        let header = sign("whsec", 1_000, b"x");
        assert_eq!(
            verify("whsec", &header, b"x", 1_400, 300),
            Err(SignatureError::Stale { age_s: 400, tolerance_s: 300 })
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert!(
                matches!(verify("whsec", bad, b"x", 1, 300), Err(SignatureError::Malformed | SignatureError::Mismatch)),
                "{bad}"
            );
        }
    }
}
