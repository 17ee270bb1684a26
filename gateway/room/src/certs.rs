//! The room endpoint's TLS certificate: a self-signed one made at start, or one read from PEM files.
//!
//! Clients do not check a chain of trust: they pin the SHA-256 of the DER certificate (hex),
//! which the cluster publishes with each node's endpoint. Browsers accept a pinned certificate
//! (WebTransport's `serverCertificateHashes`) only if its key is ECDSA P-256 and it is valid for
//! at most 14 days, so [`RoomCert::self_signed`] makes exactly that kind, and a node renews it
//! before it lapses.

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// Longest validity browsers accept for a certificate pinned by its hash.
pub const PINNED_VALIDITY_DAYS_MAX: u32 = 14;

/// How far back a self-signed certificate's validity starts, so that a client whose clock runs
/// a little behind still accepts it.
pub const CLOCK_SKEW_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("no certificate in {path}")]
    NoCertificate { path: String },
    #[error("no private key in {path}: {detail}")]
    NoKey { path: String, detail: String },
    #[error("bad pem in {path}: {detail}")]
    BadPem { path: String, detail: String },
    #[error("cannot read the validity of the certificate in {path}: {detail}")]
    BadCertificate { path: String, detail: String },
}

/// A certificate chain and its key, as the endpoint's TLS configuration takes them.
#[derive(Debug)]
pub struct RoomCert {
    /// The leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf's DER, lowercase hex: what clients pin.
    pub sha256_hex: String,
    /// End of the leaf's validity (ms since the epoch), so that a node knows when to renew it.
    pub not_after_ms: u64,
}

impl Clone for RoomCert {
    fn clone(&self) -> Self {
        RoomCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            sha256_hex: self.sha256_hex.clone(),
            not_after_ms: self.not_after_ms,
        }
    }
}

impl RoomCert {
    /// An ECDSA P-256 certificate for `names` (DNS names, and IP addresses where a name parses as
    /// one), valid from an hour ago for `days` days. More than 14 days is allowed (a test shows
    /// that browsers refuse it) but logged: pinned by hash, such a certificate fails in browsers.
    pub fn self_signed(names: &[String], days: u32) -> Result<RoomCert, CertError> {
        if days > PINNED_VALIDITY_DAYS_MAX {
            tracing::warn!(days, days_max = PINNED_VALIDITY_DAYS_MAX, "browsers refuse a pinned certificate this long");
        }
        let mut params = CertificateParams::new(names.to_vec())?;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::milliseconds(CLOCK_SKEW_MS as i64);
        params.not_after = now + Duration::days(i64::from(days));
        params.distinguished_name.push(DnType::CommonName, "boxoffice waiting room");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        let der = cert.der().clone();
        Ok(RoomCert {
            sha256_hex: sha256_hex(&der),
            not_after_ms: unix_ms(params.not_after),
            chain: vec![der],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The chain (leaf first) and the key from PEM files, e.g. from an operator's own CA.
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<RoomCert, CertError> {
        let cert_pem = read(cert_path)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::BadPem { path: cert_path.display().to_string(), detail: e.to_string() })?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::NoCertificate { path: cert_path.display().to_string() });
        };
        let key_pem = read(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| CertError::NoKey { path: key_path.display().to_string(), detail: e.to_string() })?;
        let not_after_ms = not_after_ms(leaf)
            .map_err(|detail| CertError::BadCertificate { path: cert_path.display().to_string(), detail })?;
        Ok(RoomCert { sha256_hex: sha256_hex(leaf), not_after_ms, chain, key })
    }
}

/// The TLS crypto of the room (servers and test clients alike): ring's, as the workspace builds no
/// aws-lc (a C build). rustls 0.23.48 deprecates ring's provider because it has no post-quantum
/// key exchange; the room accepts that, its traffic being short-lived places in line.
#[allow(deprecated)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate, lowercase hex: the pin.
pub fn sha256_hex(der: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(der.as_ref()))
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read { path: path.display().to_string(), source })
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The leaf's `notAfter`, read by walking its DER down to `tbsCertificate.validity`.
fn not_after_ms(leaf: &CertificateDer<'_>) -> Result<u64, String> {
    let (_, cert, _) = der_item(leaf.as_ref(), 0x30).ok_or("not a der sequence")?;
    let (_, tbs, _) = der_item(cert, 0x30).ok_or("no tbsCertificate")?;
    let mut rest = tbs;
    let (tag, _, after) = der_any(rest).ok_or("empty tbsCertificate")?;
    if tag == 0xa0 {
        rest = after; // the explicit version
    }
    for _ in 0..3 {
        rest = der_any(rest).ok_or("truncated tbsCertificate")?.2; // serial, signature, issuer
    }
    let (_, validity, _) = der_item(rest, 0x30).ok_or("no validity")?;
    let (_, _, validity) = der_any(validity).ok_or("no notBefore")?;
    let (tag, text, _) = der_any(validity).ok_or("no notAfter")?;
    let text = std::str::from_utf8(text).map_err(|_| "notAfter is not text")?;
    Ok(unix_ms(der_time(tag, text).ok_or_else(|| format!("bad notAfter {text:?}"))?))
}

/// One DER element with the expected tag: (tag, content, what follows).
fn der_item(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    der_any(input).filter(|item| item.0 == tag)
}

/// One DER element of any tag: (tag, content, what follows).
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let width = usize::from(first & 0x7f);
        if width == 0 || width > 4 || input.len() < width {
            return None;
        }
        let (bytes, rest) = input.split_at(width);
        input = rest;
        bytes.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b))
    };
    (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn der_time(tag: u8, text: &str) -> Option<OffsetDateTime> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, digits.get(2..)?)
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<u8> { rest.get(2 * i..2 * i + 2)?.parse().ok() };
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(1)?).ok()?;
    Some(date.with_hms(field(2)?, field(3)?, field(4)?).ok()?.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_pinned_by_its_sha256() {
        let cert = RoomCert::self_signed(&["localhost".into(), "127.0.0.1".into()], 10).unwrap();
        assert_eq!(cert.chain.len(), 1);
        assert_eq!(cert.sha256_hex, sha256_hex(&cert.chain[0]));
        assert_eq!(cert.sha256_hex.len(), 64);
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let days_ms = 10 * 24 * 60 * 60 * 1000;
        assert!(cert.not_after_ms.abs_diff(now_ms + days_ms) < 60_000, "valid for ten days");
        assert_eq!(not_after_ms(&cert.chain[0]).unwrap() / 1000, cert.not_after_ms / 1000);
    }

    #[test]
    fn pem_files_give_back_the_same_certificate() {
        let names = vec!["room.test".to_string()];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = CertificateParams::new(names).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("room-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let read = RoomCert::from_pem_files(&cert_path, &key_path).unwrap();
        assert_eq!(read.sha256_hex, sha256_hex(cert.der()));
        assert!(params.not_after.year() > 2050, "a GeneralizedTime, past UTCTime's years");
        assert_eq!(read.not_after_ms, unix_ms(params.not_after));
        let missing = RoomCert::from_pem_files(&dir.join("none.pem"), &key_path).unwrap_err();
        assert!(missing.to_string().contains("none.pem"), "{missing}");
        let no_key = RoomCert::from_pem_files(&cert_path, &cert_path).unwrap_err();
        assert!(matches!(no_key, CertError::NoKey { .. }), "{no_key}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
