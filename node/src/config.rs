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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gateway::GatewayConfig;
use raft::{HostConfig, PeerConfig, RaftConfig};
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
        if let Some(problem) = self.gateway.problem() {
            bail!("[gateway] {problem}");
        }
        if self.gateway.cluster_secret.len() < 16 {
            bail!("[gateway] cluster_secret must be at least 16 characters, the same on every node");
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

    pub fn host(&self) -> HostConfig {
        let nodes: BTreeMap<_, _> = self.nodes.iter().map(|n| (n.id, n.clone())).collect();
        HostConfig { node_id: self.id, nodes, raft: self.raft.clone() }
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
        admin_token = "admin"
        cluster_secret = "0123456789abcdef"
    "#;

    #[test]
    fn a_complete_config_loads() {
        let config: NodeConfig = toml::from_str(GOOD).unwrap();
        config.check().unwrap();
        assert_eq!(config.host().nodes.len(), 2);
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
    }
}
