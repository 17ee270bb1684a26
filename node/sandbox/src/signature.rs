//! How the sandbox signs a webhook, the way Stripe does: a header `Sandbox-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">` with the shared webhook secret. The
//! gateway checks it (`gateway::webhook`); a test in the node checks that the two agree.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "sandbox-signature";

/// The header value signing `payload` at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_time_and_the_payload() {
        // Computed apart, with Python's hmac module.
        let expected = "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";
        assert_eq!(sign("whsec_test", 1_700_000_000, br#"{"id":"evt_1"}"#), expected);
    }
}
