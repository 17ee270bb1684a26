//! The chaos runner's cluster: the harness's `boxoffice node` processes with a fault-injecting
//! [`Proxy`] on every link between them.
//!
//! The node that dials a link (the lower id) is given the address of a proxy in front of the
//! other node, so that every link can be cut, slowed or made to lose messages. Processes are
//! killed, paused and resumed through the harness; clocks and disks are faulted through the
//! nodes' test-only admin endpoint ([`harness::Cluster::faults`]).

use std::collections::BTreeMap;
use std::future::Future;

use harness::{Links, Secrets};

use crate::proxy::{LinkFaults, Proxy};

/// The chaos runner's secrets.
pub const SECRETS: Secrets = Secrets {
    admin_token: "chaos-admin-token",
    cluster_secret: "chaos-cluster-secret-0123456789",
    payment_api_key: "sk_test_chaos",
    webhook_secret: "whsec_test_chaos",
};

/// A cluster whose links run through proxies.
pub type Cluster = harness::Cluster<Proxies>;

/// The proxy of each link, by (lower id, higher id).
#[derive(Default)]
pub struct Proxies(BTreeMap<(u64, u64), Proxy>);

impl Links for Proxies {
    fn route(
        &mut self,
        dialer: u64,
        target: u64,
        raft_addr: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send {
        let target_addr = raft_addr.to_string();
        async move {
            let proxy = Proxy::start(target_addr).await?;
            let addr = proxy.addr.clone();
            self.0.insert((dialer.min(target), dialer.max(target)), proxy);
            Ok(addr)
        }
    }
}

impl Proxies {
    /// The faults of the link between two nodes.
    pub fn link(&self, a: u64, b: u64) -> Option<&LinkFaults> {
        self.0.get(&(a.min(b), a.max(b))).map(|p| p.faults.as_ref())
    }

    /// Every link, by (lower id, higher id), and its faults.
    pub fn iter(&self) -> impl Iterator<Item = ((u64, u64), &LinkFaults)> {
        self.0.iter().map(|(k, p)| (*k, p.faults.as_ref()))
    }
}
