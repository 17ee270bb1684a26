//! Free loopback ports for a cluster's processes.

/// Free loopback ports, each kept bound until the whole set is released: released one by one,
/// the kernel could hand the same port out twice (or to something bound meanwhile, such as a
/// proxy), and two of a cluster's addresses would clash.
#[derive(Default)]
pub struct FreePorts(Vec<std::net::TcpListener>);

impl FreePorts {
    /// A free `127.0.0.1:port`, held until the set is dropped.
    pub fn addr(&mut self) -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        self.0.push(listener);
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_held_together_differ() {
        let mut ports = FreePorts::default();
        let addrs: std::collections::HashSet<String> = (0..20).map(|_| ports.addr().unwrap()).collect();
        assert_eq!(addrs.len(), 20);
    }
}
