//! The cluster's own certificate authority, and the certificates it issues to nodes.
//!
//! Nodes authenticate each other on raft links with mutual TLS: each presents a certificate
//! issued by the cluster's CA, and the only name that counts in it is the DNS name
//! [`node_name`]`(id)`, `node-<id>.boxoffice`. A link is accepted from node `id` only if its
//! certificate chains to the CA and carries that name, so a certificate says which node it is,
//! whatever address it connects from (a proxy between nodes changes nothing). Every cluster has
//! a CA of its own: the CA, not the name, tells clusters apart.
//!
//! Keys are ECDSA P-256. [`Authority::generate`] makes a CA; [`Authority::issue`] a node's
//! certificate; [`make_cluster`] both, as files in one folder (what `boxoffice dev` and the test
//! harness do at start). Private keys are written readable by their owner only (0600).
//!
//! An [`Authority`] read back from PEM ([`Authority::from_pem`]) must have been made by
//! [`Authority::generate`]: its issuer name is rebuilt from this module's constant, not parsed.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData as _, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// The suffix of every node's name: `node-<id>.boxoffice`.
pub const NAME_SUFFIX: &str = "boxoffice";
/// The CA's common name, which is also the issuer name of every node certificate.
const CA_COMMON_NAME: &str = "boxoffice cluster CA";
/// How long a CA is valid: the cluster's lifetime, or until its operator replaces it.
pub const CA_VALIDITY_DAYS: i64 = 3_650;
/// How long a node's certificate is valid.
pub const NODE_VALIDITY_DAYS: i64 = 825;
/// How far back validity starts, so that a node whose clock runs a little behind accepts it.
const CLOCK_SKEW_HOURS: i64 = 1;

/// File names in a certificates folder.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

/// A node's certificate file in a certificates folder.
pub fn node_cert_file(id: u64) -> String {
    format!("node-{id}.crt")
}

/// A node's key file in a certificates folder.
pub fn node_key_file(id: u64) -> String {
    format!("node-{id}.key")
}

/// The DNS name a node's certificate carries, and the only one a peer checks.
pub fn node_name(id: u64) -> String {
    format!("node-{id}.{NAME_SUFFIX}")
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("the CA certificate is not PEM: {0}")]
    BadPem(String),
    #[error("cannot use {}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A cluster's certificate authority: its certificate and the key that signs nodes'.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Authority {
    /// A new CA with a fresh key.
    pub fn generate() -> Result<Authority, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params();
        let cert = params.self_signed(&key)?;
        Ok(Authority { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA [`Authority::generate`] made, from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = pem_body(cert_pem)?;
        let spki = key.subject_public_key_info();
        // The certificate holds its public key verbatim: a key that is not in it is not its key.
        if !der.windows(spki.len()).any(|w| w == spki.as_slice()) {
            return Err(PkiError::KeyMismatch);
        }
        Ok(Authority { issuer: Issuer::new(ca_params(), key), cert_pem: cert_pem.to_string() })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for node `id`, named [`node_name`]`(id)`, good for both ends of a link.
    pub fn issue(&self, id: u64) -> Result<Pem, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![node_name(id)])?;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(CLOCK_SKEW_HOURS);
        params.not_after = now + Duration::days(NODE_VALIDITY_DAYS);
        params.distinguished_name.push(DnType::CommonName, node_name(id));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A node dials the peers with higher ids and accepts the others: it is both.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
    }

    /// Writes the CA's certificate and key into `dir` ([`CA_CERT_FILE`], [`CA_KEY_FILE`]).
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        write_public(&dir.join(CA_CERT_FILE), &self.cert_pem)?;
        write_private(&dir.join(CA_KEY_FILE), &self.key_pem())
    }

    /// Reads the CA [`Authority::write`] wrote into `dir`.
    pub fn read(dir: &Path) -> Result<Authority, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
        };
        Authority::from_pem(&read(CA_CERT_FILE)?, &read(CA_KEY_FILE)?)
    }
}

/// The CA's parameters; the same every time, so that a CA read back signs as it was made.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(CLOCK_SKEW_HOURS);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// The DER inside one PEM block.
fn pem_body(pem: &str) -> Result<Vec<u8>, PkiError> {
    let body: String = pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| PkiError::BadPem(e.to_string()))
}

/// Writes a file anyone may read (a certificate).
pub fn write_public(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Io { path: path.to_path_buf(), source })
}

/// Writes a file only its owner may read or write (a private key), replacing any other.
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_path_buf(), source };
    // Removed first: opening an existing file keeps its permissions, which may be wider.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// Where a node's files are in a folder [`make_cluster`] filled.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files of node `id` in certificates folder `dir`.
pub fn node_files(dir: &Path, id: u64) -> NodeFiles {
    NodeFiles { ca_cert: dir.join(CA_CERT_FILE), cert: dir.join(node_cert_file(id)), key: dir.join(node_key_file(id)) }
}

/// Makes a new CA and a certificate for every node of `ids` in `dir` (created if missing).
pub fn make_cluster(dir: &Path, ids: impl IntoIterator<Item = u64>) -> Result<Authority, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.to_path_buf(), source })?;
    let ca = Authority::generate()?;
    ca.write(dir)?;
    for id in ids {
        write_node(&ca, dir, id)?;
    }
    Ok(ca)
}

/// Issues node `id` a certificate and writes it and its key into `dir`.
pub fn write_node(ca: &Authority, dir: &Path, id: u64) -> Result<NodeFiles, PkiError> {
    let pem = ca.issue(id)?;
    let files = node_files(dir, id);
    write_public(&files.cert, &pem.cert)?;
    write_private(&files.key, &pem.key)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_cluster_folder_holds_the_ca_and_every_node_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        make_cluster(dir.path(), [1, 2]).unwrap();
        for name in [CA_KEY_FILE, "node-1.key", "node-2.key"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let cert = std::fs::read_to_string(dir.path().join("node-2.crt")).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    }

    #[test]
    fn a_ca_read_back_issues_and_a_foreign_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_cluster(dir.path(), []).unwrap();
        let again = Authority::read(dir.path()).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        again.issue(7).unwrap();
        let other = Authority::generate().unwrap();
        assert!(matches!(Authority::from_pem(ca.cert_pem(), &other.key_pem()), Err(PkiError::KeyMismatch)));
    }
}
