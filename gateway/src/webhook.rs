//! Signed webhooks, the way Stripe signs them: a header `Sandbox-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<payload>">`, checked against a shared secret and a tolerance
//! window so that a captured webhook cannot be replayed later.
//!
//! Anyone can send a webhook, so its check costs the same whatever the header says: the header is
//! parsed once within `HEADER_BYTES_MAX` and `SIGNATURES_MAX`, a stale timestamp is refused before
//! anything is hashed, and the MAC is computed once and compared in constant time with each of
//! the (few) candidates. A header of thousands of candidates is refused unread.

use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "sandbox-signature";

/// The most `v1=` signatures one header may carry: a provider sends one, two while it rolls its
/// key; more is an attempt to make the node hash or compare for nothing.
pub const SIGNATURES_MAX: usize = 4;

/// The longest header accepted, in bytes: a timestamp and `SIGNATURES_MAX` signatures fit in
/// about 300, with room left for spaces and a few fields of other schemes (`v0=`).
pub const HEADER_BYTES_MAX: usize = 1_024;

/// Hex digits of one signature: an HMAC-SHA256 is 32 bytes.
const SIGNATURE_HEX_LEN: usize = 64;

type Signature = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed ({0}): expected `t=<seconds>,v1=<64 hex digits>`")]
    Malformed(&'static str),
    #[error("the signature does not match the payload")]
    Mismatch,
    #[error("the signature is {age_s} s old, beyond the tolerance of {tolerance_s} s")]
    Stale { age_s: i64, tolerance_s: i64 },
}

/// A header, read: its timestamp and its candidate signatures, at most `SIGNATURES_MAX`.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    timestamp: i64,
    signatures: Vec<Signature>,
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

/// Reads `header` without hashing anything; refuses it whole once it is over a limit.
fn parse(header: &str) -> Result<Header, SignatureError> {
    if header.len() > HEADER_BYTES_MAX {
        return Err(SignatureError::Malformed("the header is too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::with_capacity(SIGNATURES_MAX);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed("bad timestamp"))?)
            }
            Some(("v1", s)) => {
                if signatures.len() == SIGNATURES_MAX {
                    return Err(SignatureError::Malformed("too many signatures"));
                }
                signatures.push(decode_signature(s)?);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    debug_assert!(signatures.len() <= SIGNATURES_MAX);
    Ok(Header { timestamp, signatures })
}

fn decode_signature(hex_digits: &str) -> Result<Signature, SignatureError> {
    if hex_digits.len() != SIGNATURE_HEX_LEN {
        return Err(SignatureError::Malformed("a signature is not 64 hex digits"));
    }
    let mut signature = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut signature)
        .map_err(|_| SignatureError::Malformed("a signature is not 64 hex digits"))?;
    Ok(signature)
}

/// Checks `header` against `payload`, at `now` (Unix seconds), within `tolerance_s` either way.
/// Cheapest refusal first: the header's shape, then its age, then the one MAC.
pub fn verify(secret: &str, header: &str, payload: &[u8], now: i64, tolerance_s: i64) -> Result<(), SignatureError> {
    let header = parse(header)?;
    let age_s = now.saturating_sub(header.timestamp);
    if age_s.saturating_abs() > tolerance_s {
        return Err(SignatureError::Stale { age_s, tolerance_s });
    }
    let expected = mac(secret, header.timestamp, payload).finalize();
    // Every candidate is compared, each in constant time (`CtOutput`'s equality), so the time
    // taken tells nothing of which one matched or how much of it (any may, as during a key roll).
    let matches = header
        .signatures
        .iter()
        .fold(false, |matched, candidate| matched | (CtOutput::new((*candidate).into()) == expected));
    if !matches {
        return Err(SignatureError::Mismatch);
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
        let short = "t=1,v1=00".to_string();
        let odd = format!("t=1,v1={}", "z".repeat(64));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", short.as_str(), odd.as_str()] {
            assert!(matches!(verify("whsec", bad, b"x", 1, 300), Err(SignatureError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn any_of_a_few_signatures_may_match_as_during_a_key_roll() {
        let good = sign("whsec", 1_000, b"x");
        let old = sign("old", 1_000, b"x");
        let rolled = format!("{old},{}", good.split_once(',').unwrap().1);
        assert_eq!(verify("whsec", &rolled, b"x", 1_000, 300), Ok(()));
        assert_eq!(parse(&rolled).unwrap().signatures.len(), 2);
    }

    #[test]
    fn a_stale_timestamp_is_refused_before_the_signatures_are_looked_at() {
        let zeros = format!("t=1,v1={}", "0".repeat(64));
        assert!(matches!(verify("whsec", &zeros, b"x", 10_000, 300), Err(SignatureError::Stale { .. })));
        // A timestamp at the ends of i64 neither overflows nor passes.
        let far = format!("t={},v1={}", i64::MIN, "0".repeat(64));
        assert!(matches!(verify("whsec", &far, b"x", i64::MAX, 300), Err(SignatureError::Stale { .. })));
    }

    #[test]
    fn a_header_over_its_limits_is_refused_unread() {
        let candidate = format!(",v1={}", "0".repeat(64));
        let five = format!("t=1{}", candidate.repeat(SIGNATURES_MAX + 1));
        assert!(five.len() <= HEADER_BYTES_MAX, "the count, not the length, refuses this one");
        assert_eq!(parse(&five), Err(SignatureError::Malformed("too many signatures")));
        let four = format!("t=1{}", candidate.repeat(SIGNATURES_MAX));
        assert_eq!(parse(&four).unwrap().signatures.len(), SIGNATURES_MAX);
        let thousands = format!("t=1{}", candidate.repeat(5_000));
        assert_eq!(parse(&thousands), Err(SignatureError::Malformed("the header is too long")));
    }
}

/// Property-based fuzzing of the parser and the check: bounded so it runs in seconds.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const NOW_S: i64 = 1_700_000_000;

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// Header-like strings: fields of the right keys and shapes, mixed with noise.
    fn header_like() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            "t=-?[0-9]{0,21}",
            "v1=[0-9a-fA-F]{0,70}",
            "v1=[0-9a-f]{64}",
            "[a-z0-9]{0,3}=[^,]{0,8}",
            "\\PC{0,12}",
        ];
        prop::collection::vec(field, 0..8).prop_map(|fields| fields.join(","))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_headers_never_panic(header in "\\PC{0,200}", payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify("whsec", &header, &payload, NOW_S, 300);
        }

        #[test]
        fn header_like_strings_never_panic_and_never_verify_unsigned(header in header_like(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let result = verify("whsec", &header, &payload, NOW_S, i64::MAX);
            prop_assert!(result.is_err(), "a random header verified: {header}");
            if let Ok(parsed) = parse(&header) {
                prop_assert!(!parsed.signatures.is_empty() && parsed.signatures.len() <= SIGNATURES_MAX);
            }
        }

        #[test]
        fn a_signed_payload_always_verifies(
            secret in "[ -~]{0,40}",
            payload in prop::collection::vec(any::<u8>(), 0..256),
            skew_s in -300i64..=300,
        ) {
            let header = sign(&secret, NOW_S + skew_s, &payload);
            prop_assert_eq!(verify(&secret, &header, &payload, NOW_S, 300), Ok(()));
        }

        #[test]
        fn a_mutated_signature_or_payload_never_verifies(
            payload in prop::collection::vec(any::<u8>(), 1..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            mutate_payload in any::<bool>(),
        ) {
            let header = sign("whsec", NOW_S, &payload);
            let (header, payload) = if mutate_payload {
                let mut payload = payload;
                let i = at.index(payload.len());
                payload[i] ^= flip;
                (header, payload)
            } else {
                // Change one hex digit of the signature to another hex digit.
                let mut bytes = header.into_bytes();
                let start = bytes.len() - SIGNATURE_HEX_LEN;
                let i = start + at.index(SIGNATURE_HEX_LEN);
                let digits = b"0123456789abcdef";
                let was = digits.iter().position(|d| *d == bytes[i]).expect("sign writes lowercase hex");
                bytes[i] = digits[(was + 1 + flip as usize % 15) % 16];
                (String::from_utf8(bytes).expect("ascii"), payload)
            };
            prop_assert_eq!(verify("whsec", &header, &payload, NOW_S, 300), Err(SignatureError::Mismatch));
        }
    }
}
