//! The node's configuration file (TOML), documented in the README.
//!
//! ```toml
//! id = 1
//! data_dir = "/var/lib/boxoffice"
//! raft_addr = "10.0.0.1:7001"   # where this node's raft transport listens
//! http_addr = "10.0.0.1:8080"   # where this node's gateway listens
//!
//! [[nodes]]                     # every node of the cluster, this one included
//! id = 1
//! raft_addr = "10.0.0.1:7001"
//! http_addr = "10.0.0.1:8080"
//!
//! [raft]                        # optional; see raft::RaftConfig for every setting
//! inventory_groups = 16
//!
//! [tls]                         # required: raft links are mutual TLS (`boxoffice certs`)
//! ca_cert_path = "certs/ca.crt" # the cluster's CA: the only issuer a peer is accepted from
//! cert_path = "certs/node-1.crt"  # this node's certificate, naming `node-1.boxoffice`
//! key_path = "certs/node-1.key"   # its private key (PEM; keep it 0600)
//!
//! [gateway]                     # see gateway::GatewayConfig
//! admin_token = "…"
//! cluster_secret = "…"          # the same on every node: it signs fans' tokens
//! hold_ttl_ms = 600000
//!
//! [room]                        # optional; the waiting room's QUIC endpoint
//! addr = "10.0.0.1:4433"        # UDP; default: the gateway's host, a free port
//! advertise_host = "fans.example.com"  # what fans dial; default: the bound address
//! cert_path = "room.crt"        # PEM; without both paths a self-signed certificate is made
//! key_path = "room.key"
//! ```
//!
//! `[tls]` is mandatory: a node without it refuses to start and says how to make the files.
//! A node's certificate must name its own id (checked at start); see `raft::tls` for what a
//! peer checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gateway::GatewayConfig;
use raft::{HostConfig, LinkTls, PeerConfig, RaftConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: u64,
    pub data_dir: PathBuf,
    pub raft_addr: String,
    pub http_addr: String,
    pub nodes: Vec<PeerConfig>,
    #[serde(default)]
    pub raft: RaftConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub room: RoomSection,
    /// Mandatory; optional here only so that its absence is named with what to do.
    #[serde(default)]
    pub tls: Option<TlsSection>,
}

/// The files of the raft links' mutual TLS, PEM, as `boxoffice certs` writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The cluster's CA certificate: peers are accepted only with a certificate it issued. While
    /// the CA is rotated, the file holds the old and the new one (see docs/security.md).
    pub ca_cert_path: PathBuf,
    /// This node's certificate (chain, leaf first), naming `node-<id>.boxoffice`.
    pub cert_path: PathBuf,
    /// This node's private key.
    pub key_path: PathBuf,
}

impl TlsSection {
    /// The files read and checked into node `id`'s link TLS.
    pub fn load(&self, id: u64) -> anyhow::Result<LinkTls> {
        // One CA, or while the CA is rotated the old and the new one in one file.
        let cas = pem_certificates("ca_cert_path", &self.ca_cert_path)?;
        let chain = pem_certificates("cert_path", &self.cert_path)?;
        warn_if_readable_by_others(&self.key_path);
        let key = PrivateKeyDer::from_pem_file(&self.key_path)
            .with_context(|| format!("[tls] key_path {}: no PEM private key", self.key_path.display()))?;
        LinkTls::new(id, cas, chain, key).with_context(|| {
            format!("[tls] cert_path {}, key_path {}", self.cert_path.display(), self.key_path.display())
        })
    }
}

/// Every certificate of the PEM file at `path`, the `[tls]` setting `name`.
fn pem_certificates(name: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("[tls] {name} {}: no PEM certificate", path.display()))
}

/// A private key others can read is logged, not refused: the operator decides.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "private key readable by others: chmod 600 it");
        }
    }
}

/// The waiting room's endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomSection {
    /// UDP address of the QUIC endpoint; empty: the gateway's host with a free port.
    pub addr: String,
    /// The host fans dial, if not the bound address (behind NAT, or a DNS name).
    pub advertise_host: Option<String>,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// Validity of a self-signed certificate: browsers accept a pinned one of at most 14 days.
    pub cert_days: u32,
    /// Joins one client address may make per minute (0: no limit).
    pub joins_per_address_per_min: u32,
    /// Joins one fan may make per minute, over every address and transport (0: no limit).
    pub joins_per_fan_per_min: u32,
    /// QUIC connections the endpoint holds at once.
    pub connections_max: usize,
    /// Fans whose estimated wait is longer are parked (told when to come back) instead of held.
    pub park_wait_ms: u64,
    /// The QUIC socket's receive buffer (the kernel caps it at `net.core.rmem_max`): every fan's
    /// datagrams arrive at this one socket.
    pub socket_buffer_bytes: usize,
}

impl Default for RoomSection {
    fn default() -> Self {
        RoomSection {
            addr: String::new(),
            advertise_host: None,
            cert_path: None,
            key_path: None,
            cert_days: 13,
            joins_per_address_per_min: 600,
            joins_per_fan_per_min: 30,
            connections_max: 200_000,
            park_wait_ms: 10 * 60 * 1000,
            socket_buffer_bytes: 8 << 20,
        }
    }
}

impl NodeConfig {
    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: NodeConfig =
            toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))?;
        config.check().with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    /// Everything a node needs to be true of its settings before it starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(problem) = self.raft.problem() {
            bail!("[raft]: {problem}");
        }
        if let Some(problem) = self.gateway.problem() {
            bail!("[gateway]: {problem}");
        }
        let mut ids = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !ids.insert(node.id) {
                bail!("node {} appears twice in [[nodes]]", node.id);
            }
        }
        if !ids.contains(&self.id) {
            bail!("this node's id {} is not in [[nodes]]; list every node, this one included", self.id);
        }
        if self.room.cert_path.is_some() != self.room.key_path.is_some() {
            bail!("[room] give both cert_path and key_path, or neither (a self-signed certificate)");
        }
        if let Some(problem) = self.gateway.secrets_problem() {
            bail!("[gateway] {problem} (cluster_secret is the same on every node)");
        }
        if self.tls.is_none() {
            let id = self.id;
            bail!(
                "[tls] is missing: nodes talk raft over mutual TLS only. Make the cluster's CA once with \
                 `boxoffice certs ca --out certs` and this node's certificate with `boxoffice certs node --ca \
                 certs --id {id} --out certs`, then set [tls] ca_cert_path = \"certs/ca.crt\", cert_path = \
                 \"certs/node-{id}.crt\", key_path = \"certs/node-{id}.key\" (see the README)"
            );
        }
        Ok(())
    }

    /// The UDP address of the room's endpoint.
    pub fn room_addr(&self) -> String {
        if !self.room.addr.is_empty() {
            return self.room.addr.clone();
        }
        let host = self.http_addr.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host);
        format!("{host}:0")
    }

    /// The raft host's settings, with the TLS files read and checked.
    pub fn host(&self) -> anyhow::Result<HostConfig> {
        let nodes: BTreeMap<_, _> = self.nodes.iter().map(|n| (n.id, n.clone())).collect();
        let tls = self.tls.as_ref().context("[tls] is missing")?.load(self.id)?;
        Ok(HostConfig { node_id: self.id, nodes, raft: self.raft.clone(), tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        id = 2
        data_dir = "/tmp/x"
        raft_addr = "127.0.0.1:7002"
        http_addr = "127.0.0.1:8082"
        [[nodes]]
        id = 1
        raft_addr = "127.0.0.1:7001"
        http_addr = "127.0.0.1:8081"
        [[nodes]]
        id = 2
        raft_addr = "127.0.0.1:7002"
        http_addr = "127.0.0.1:8082"
        [raft]
        inventory_groups = 4
        [gateway]
        admin_token = "admin-token-0123456789"
        cluster_secret = "0123456789abcdef"
        [tls]
        ca_cert_path = "CERTS/ca.crt"
        cert_path = "CERTS/node-2.crt"
        key_path = "CERTS/node-2.key"
    "#;

    /// The good config with its TLS files made in `dir`.
    fn good(dir: &Path) -> String {
        pki::make_cluster(dir, [1, 2]).unwrap();
        GOOD.replace("CERTS", &dir.display().to_string())
    }

    #[test]
    fn a_complete_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let config: NodeConfig = toml::from_str(&good(dir.path())).unwrap();
        config.check().unwrap();
        assert_eq!(config.host().unwrap().nodes.len(), 2);
        assert_eq!(config.raft.inventory_groups, 4);
        assert_eq!(config.gateway.hold_ttl_ms, 600_000, "unset settings keep their defaults");
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = GOOD.replace("inventory_groups = 4", "inventory_group = 4");
        let error = toml::from_str::<NodeConfig>(&unknown).unwrap_err().to_string();
        assert!(error.contains("inventory_group"), "{error}");
        let missing_self: NodeConfig =
            toml::from_str(&GOOD.replace("id = 2\n        data_dir", "id = 3\n        data_dir")).unwrap();
        assert!(missing_self.check().unwrap_err().to_string().contains("not in [[nodes]]"));
        let weak: NodeConfig = toml::from_str(&GOOD.replace("0123456789abcdef", "short")).unwrap();
        assert!(weak.check().unwrap_err().to_string().contains("cluster_secret"));
        let forgetful: NodeConfig =
            toml::from_str(&GOOD.replace("[gateway]\n", "[gateway]\n        idempotency_window_ms = 10\n")).unwrap();
        assert!(forgetful.check().unwrap_err().to_string().contains("idempotency_window_ms"));
    }

    #[test]
    fn tls_is_mandatory_and_must_name_this_node() {
        let plain = GOOD.split("[tls]").next().unwrap();
        let error = toml::from_str::<NodeConfig>(plain).unwrap().check().unwrap_err().to_string();
        assert!(error.contains("[tls] is missing") && error.contains("boxoffice certs node"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let swapped = good(dir.path()).replace("node-2.", "node-1.");
        let error = format!("{:#}", toml::from_str::<NodeConfig>(&swapped).unwrap().host().unwrap_err());
        assert!(error.contains("does not name node 2"), "{error}");
        let missing = GOOD.replace("CERTS", "/nonexistent");
        let error = format!("{:#}", toml::from_str::<NodeConfig>(&missing).unwrap().host().unwrap_err());
        assert!(error.contains("ca_cert_path /nonexistent/ca.crt"), "{error}");
    }
}
