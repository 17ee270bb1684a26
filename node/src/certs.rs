//! `boxoffice certs`: the files of a cluster's mutual TLS between nodes.
//!
//! - `boxoffice certs ca --out DIR`: a new CA for a new cluster (`ca.crt`, and `ca.key`, 0600);
//!   refused if `DIR` holds a CA already, since a new one would lock out every node the old one
//!   certified;
//! - `boxoffice certs node --ca DIR --id N [--out DIR2]`: node N's certificate and key
//!   (`node-N.crt`, `node-N.key` 0600), issued by the CA in `DIR`, written to `DIR2` (default:
//!   `DIR`). Run again to replace them.
//!
//! Each node then needs its own `node-N.*` and the CA's certificate (never the CA's key), named
//! in its config's `[tls]` section. See `pki` for what the certificates hold.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Make a new cluster's certificate authority: DIR/ca.crt and DIR/ca.key (keep it safe).
    Ca {
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue node ID a certificate from the CA in --ca: OUT/node-ID.crt and OUT/node-ID.key.
    Node {
        /// The folder holding ca.crt and ca.key.
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        id: u64,
        /// Where the node's files go (default: the CA's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Ca { out } => make_ca(&out),
        CertsCommand::Node { ca, id, out } => make_node(&ca, id, out.as_deref().unwrap_or(&ca)),
    }
}

fn make_ca(out: &Path) -> anyhow::Result<()> {
    let key = out.join(pki::CA_KEY_FILE);
    if key.exists() {
        bail!(
            "{} exists: a new CA would lock out every node the old one certified; remove it first, or pick another \
             folder",
            key.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    pki::Authority::generate()?.write(out)?;
    println!(
        "made the cluster's CA: {} and {} (0600: keep it off the nodes)",
        out.join(pki::CA_CERT_FILE).display(),
        key.display()
    );
    Ok(())
}

fn make_node(ca_dir: &Path, id: u64, out: &Path) -> anyhow::Result<()> {
    let ca = pki::Authority::read(ca_dir)
        .with_context(|| format!("cannot read the CA in {} (make one with `boxoffice certs ca`)", ca_dir.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let files = pki::write_node(&ca, out, id)?;
    println!(
        "made node {id}'s certificate for {}: {} and {} (0600)",
        pki::node_name(id),
        files.cert.display(),
        files.key.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_is_made_once_and_issues_nodes() {
        let dir = tempfile::tempdir().unwrap();
        make_ca(dir.path()).unwrap();
        let again = make_ca(dir.path()).unwrap_err().to_string();
        assert!(again.contains("would lock out"), "{again}");
        let nodes = dir.path().join("nodes");
        make_node(dir.path(), 3, &nodes).unwrap();
        assert!(nodes.join("node-3.crt").exists() && nodes.join("node-3.key").exists());
        let missing = make_node(&nodes, 3, &nodes).unwrap_err().to_string();
        assert!(missing.contains("boxoffice certs ca"), "{missing}");
    }
}
