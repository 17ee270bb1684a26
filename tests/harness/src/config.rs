//! A node's TOML config file, as the harness writes it.

use std::fmt::Write as _;
use std::path::Path;

use crate::settings::{Secrets, Settings};

/// One node's addresses as the others dial them.
pub struct Peer<'a> {
    pub id: u64,
    /// Where this node dials the peer's raft listener (its own address, or something put in
    /// between, such as a proxy).
    pub raft_addr: &'a str,
    pub http_addr: &'a str,
}

/// What differs from node to node.
pub struct NodeConfig<'a> {
    pub id: u64,
    pub data_dir: &'a Path,
    pub raft_addr: &'a str,
    pub http_addr: &'a str,
    /// Every node of the cluster, this one included, as this one dials them.
    pub peers: &'a [Peer<'a>],
    /// The sandbox payment provider's base URL.
    pub sandbox_url: &'a str,
    /// The cluster's certificates folder ([`pki::make_cluster`]): the `[tls]` files.
    pub certs: &'a Path,
}

/// The config file of one node.
pub fn node_config(settings: &Settings, node: &NodeConfig) -> String {
    let mut peers = String::new();
    for peer in node.peers {
        let _ = writeln!(
            peers,
            "[[nodes]]\nid = {}\nraft_addr = \"{}\"\nhttp_addr = \"{}\"\n",
            peer.id, peer.raft_addr, peer.http_addr
        );
    }
    let (id, raft_addr, http_addr, data) = (node.id, node.raft_addr, node.http_addr, node.data_dir.display());
    let head =
        format!("id = {id}\ndata_dir = \"{data}\"\nraft_addr = \"{raft_addr}\"\nhttp_addr = \"{http_addr}\"\n\n");
    let Settings {
        inventory_groups,
        raft_extra,
        hold_ttl_ms,
        fault_injection,
        reconcile_after_ms,
        gateway_extra,
        gateway_limits,
        ..
    } = settings;
    let write_timeout = settings.write_timeout_ms.map(|ms| format!("write_timeout_ms = {ms}\n")).unwrap_or_default();
    let raft = format!(
        "[raft]\ninventory_groups = {inventory_groups}\nheartbeat_interval_ms = 100\nelection_timeout_min_ms = 500\n\
         election_timeout_max_ms = 1000\n{write_timeout}{raft_extra}\n\n"
    );
    let Secrets { admin_token, cluster_secret, payment_api_key, webhook_secret } = settings.secrets;
    let sandbox_url = node.sandbox_url;
    let gateway = format!(
        "[gateway]\nadmin_token = \"{admin_token}\"\ncluster_secret = \"{cluster_secret}\"\nhold_ttl_ms = {hold_ttl_ms}\n\
         fault_injection_enabled = {fault_injection}\npayment_api_url = \"{sandbox_url}\"\n\
         payment_api_key = \"{payment_api_key}\"\npayment_webhook_secret = \"{webhook_secret}\"\n\
         reconcile_interval_ms = 1000\nreconcile_after_ms = {reconcile_after_ms}\n{gateway_extra}\n{gateway_limits}\n"
    );
    let gateway = match &settings.tls {
        Some(tls) => format!(
            "{gateway}tls_cert_path = \"{}\"\ntls_key_path = \"{}\"\n",
            tls.cert_path.display(),
            tls.key_path.display()
        ),
        None => gateway,
    };
    let room = match settings.room_extra.as_str() {
        "" => String::new(),
        extra => format!("\n[room]\n{extra}\n"),
    };
    let files = pki::node_files(node.certs, node.id);
    let tls = format!(
        "\n[tls]\nca_cert_path = \"{}\"\ncert_path = \"{}\"\nkey_path = \"{}\"\n",
        files.ca_cert.display(),
        files.cert.display(),
        files.key.display()
    );
    format!("{head}{peers}\n{raft}{gateway}{room}{tls}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_names_every_peer_and_the_settings() {
        let settings = Settings {
            write_timeout_ms: Some(5_000),
            gateway_extra: "tickets_per_fan_max = 0".into(),
            room_extra: "joins_per_address_per_min = 5".into(),
            ..Settings::default()
        };
        let peers = [
            Peer { id: 1, raft_addr: "127.0.0.1:1", http_addr: "127.0.0.1:2" },
            Peer { id: 2, raft_addr: "127.0.0.1:9", http_addr: "127.0.0.1:4" },
        ];
        let node = NodeConfig {
            id: 1,
            data_dir: Path::new("/tmp/node1"),
            raft_addr: "127.0.0.1:1",
            http_addr: "127.0.0.1:2",
            peers: &peers,
            sandbox_url: "http://127.0.0.1:5",
            certs: Path::new("/tmp/certs"),
        };
        let text = node_config(&settings, &node);
        assert!(text.parse::<toml::Table>().is_ok(), "{text}");
        assert!(text.starts_with("id = 1\ndata_dir = \"/tmp/node1\"\n"), "{text}");
        assert!(text.contains("[[nodes]]\nid = 2\nraft_addr = \"127.0.0.1:9\"\nhttp_addr = \"127.0.0.1:4\"\n"));
        assert!(text.contains("election_timeout_max_ms = 1000\nwrite_timeout_ms = 5000\n"), "{text}");
        assert!(text.contains("admin_token = \"test-admin-token\"\n"));
        assert!(text.contains("payment_api_url = \"http://127.0.0.1:5\"\n"));
        assert!(text.contains("reconcile_after_ms = 2000\ntickets_per_fan_max = 0\n"), "{text}");
        let table = text.parse::<toml::Table>().unwrap();
        assert_eq!(table["room"]["joins_per_address_per_min"].as_integer(), Some(5), "{text}");
        assert_eq!(table["tls"]["cert_path"].as_str(), Some("/tmp/certs/node-1.crt"), "{text}");
        assert_eq!(table["gateway"]["holds_per_fan_per_min"].as_integer(), Some(0), "limits off: {text}");
        let limited = Settings { gateway_limits: String::new(), ..settings.clone() };
        let limited = node_config(&limited, &node).parse::<toml::Table>().unwrap();
        assert!(limited["gateway"].get("holds_per_fan_per_min").is_none(), "the node's defaults");
        let plain = node_config(&Settings::default(), &node);
        assert!(!plain.contains("[room]"), "no room table without room settings: {plain}");
    }
}
