//! Mutual TLS on the links between nodes: who a peer is, proven by a certificate from the
//! cluster's CA.
//!
//! Every node holds a certificate issued by the cluster's own CA that names it
//! ([`pki::node_name`]: `node-<id>.boxoffice`). The dialer checks that the server's certificate
//! chains to the CA and names the node it dialed; the acceptor requires a client certificate
//! that chains to the CA (the CA is the only root) and then, in [`names_node`], that it names
//! the node the hello claims to be. Addresses count for nothing, so a proxy between nodes changes
//! nothing. TLS 1.3 only, on ring.

use std::sync::Arc;

use model::NodeId;
use rustls::client::verify_server_name;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA certificate is not usable as a root: {0}")]
    BadCa(String),
    #[error("this node's certificate and key are not usable: {0}")]
    BadCert(String),
    #[error("this node's certificate does not name node {0} (it must carry the DNS name {1})")]
    NotThisNode(NodeId, String),
}

/// The TLS settings of one node's links, both ways.
#[derive(Debug, Clone)]
pub struct LinkTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl LinkTls {
    /// Links for node `me`: `chain` (its certificate first) and `key` as one of the cluster's
    /// CAs `cas` issued them. More than one CA is trusted only while the CA is rotated (every
    /// node trusts the old and the new one until every certificate is from the new one). Fails if the certificate does not name `me`, so a node started with another
    /// node's files says so at once instead of being refused by every peer.
    pub fn new(
        me: NodeId,
        cas: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<LinkTls, TlsError> {
        let leaf = chain.first().ok_or_else(|| TlsError::BadCert("no certificate".into()))?;
        if !names_node(leaf, me) {
            return Err(TlsError::NotThisNode(me, pki::node_name(me)));
        }
        let provider = provider();
        if cas.is_empty() {
            return Err(TlsError::BadCa("no CA certificate".into()));
        }
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca).map_err(|e| TlsError::BadCa(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::BadCa(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::BadCert(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsError::BadCert(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::BadCert(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::BadCert(e.to_string()))?;
        Ok(LinkTls { server: Arc::new(server), client: Arc::new(client) })
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.client.clone())
    }
}

/// The name the dialer asks the server's certificate for.
pub(crate) fn server_name(peer: NodeId) -> ServerName<'static> {
    ServerName::try_from(pki::node_name(peer)).expect("a node name is a valid DNS name")
}

/// Whether `cert` names node `id`. Says nothing of who issued it: the handshake checked that.
pub fn names_node(cert: &CertificateDer<'_>, id: NodeId) -> bool {
    ParsedCertificate::try_from(cert).is_ok_and(|parsed| verify_server_name(&parsed, &server_name(id)).is_ok())
}

/// The provider rustls uses here (ring); exposed so tests build clients alike.
pub fn provider() -> Arc<CryptoProvider> {
    // Deprecated only for lacking post-quantum key exchange, which aws-lc-rs brings with its C
    // build; links between a cluster's own nodes do without.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::*;

    pub(crate) fn der(pem: &pki::Pem) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let cert = CertificateDer::from_pem_slice(pem.cert.as_bytes()).unwrap();
        (vec![cert], PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap())
    }

    #[test]
    fn a_certificate_names_its_node_and_no_other() {
        let ca = pki::Authority::generate().unwrap();
        let (chain, key) = der(&ca.issue(2).unwrap());
        assert!(names_node(&chain[0], 2));
        assert!(!names_node(&chain[0], 1) && !names_node(&chain[0], 22));
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        assert!(LinkTls::new(2, vec![ca_der.clone()], chain.clone(), key.clone_key()).is_ok());
        let wrong = LinkTls::new(1, vec![ca_der], chain, key);
        assert!(matches!(wrong, Err(TlsError::NotThisNode(1, _))), "{wrong:?}");
    }

    /// Whether a handshake from `client` (as node 1) to `server` (as node 2) succeeds.
    async fn handshake(client: &LinkTls, server: &LinkTls) -> bool {
        let (near, far) = tokio::io::duplex(64 << 10);
        let accept = server.acceptor().accept(far);
        let connect = client.connector().connect(server_name(2), near);
        let (accepted, connected) = tokio::join!(accept, connect);
        accepted.is_ok() && connected.is_ok()
    }

    #[tokio::test]
    async fn while_the_ca_is_rotated_nodes_of_either_ca_link_and_strangers_do_not() {
        let (old, new, other) = (
            pki::Authority::generate().unwrap(),
            pki::Authority::generate().unwrap(),
            pki::Authority::generate().unwrap(),
        );
        let root = |ca: &pki::Authority| CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        let node = |id: u64, issuer: &pki::Authority, trusted: Vec<CertificateDer<'static>>| {
            let (chain, key) = der(&issuer.issue(id).unwrap());
            LinkTls::new(id, trusted, chain, key).unwrap()
        };
        let both = vec![root(&old), root(&new)];
        let (one_old, two_new) = (node(1, &old, both.clone()), node(2, &new, both.clone()));
        assert!(handshake(&one_old, &two_new).await, "old and new certificates link while both are trusted");
        let two_new_only = node(2, &new, vec![root(&new)]);
        assert!(!handshake(&one_old, &two_new_only).await, "once the old CA is dropped, its certificates are not");
        let stranger = node(1, &other, vec![root(&other), root(&new)]);
        assert!(!handshake(&stranger, &two_new).await, "a third CA is trusted by nobody");
        let (chain, key) = der(&old.issue(1).unwrap());
        assert!(matches!(LinkTls::new(1, Vec::new(), chain, key), Err(TlsError::BadCa(_))), "no CA at all");
    }
}
