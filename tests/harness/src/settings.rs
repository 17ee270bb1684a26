//! What a cluster is made of: its size, folder, secrets and the knobs its users turn, and where
//! the `boxoffice` binary is found.

use std::path::PathBuf;

/// Admin token of a cluster whose settings name no other ([`Secrets::HARNESS`]).
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The sandbox payment provider's API key in a cluster whose settings name no other.
pub const PAYMENT_API_KEY: &str = "sk_test_boxoffice";
/// The sandbox payment provider's webhook secret in a cluster whose settings name no other.
pub const WEBHOOK_SECRET: &str = "whsec_test_boxoffice";

/// The `[gateway]` lines of a harness cluster's rate limits, unless its settings name others:
/// none, and a long wait for a password-hashing slot. Tests, the chaos runner and the benchmark
/// drive many fans from one loopback address, sign fans up by the hundred and retry holds, so
/// the node's defaults would refuse them; `tests/tests/front_door.rs` tests the limits.
pub const HARNESS_LIMITS: &str = "signups_per_address_per_min = 0\nsignins_per_address_per_min = 0\n\
    signins_per_email_per_min = 0\nholds_per_address_per_min = 0\nholds_per_fan_per_min = 0\n\
    payments_per_address_per_min = 0\npayments_per_fan_per_min = 0\npassword_hash_wait_ms = 60000\n";

/// The secrets of a cluster.
#[derive(Clone, Copy, Debug)]
pub struct Secrets {
    /// Bearer token of the admin API.
    pub admin_token: &'static str,
    /// The secret the nodes sign fans' tokens with (the same on every node).
    pub cluster_secret: &'static str,
    /// The sandbox payment provider's API key.
    pub payment_api_key: &'static str,
    /// The secret the sandbox signs its webhooks with.
    pub webhook_secret: &'static str,
}

impl Secrets {
    /// The secrets of a cluster whose settings name no others: the integration tests' and the
    /// benchmark's.
    pub const HARNESS: Secrets = Secrets {
        admin_token: ADMIN_TOKEN,
        cluster_secret: "test-cluster-secret-0123456789",
        payment_api_key: PAYMENT_API_KEY,
        webhook_secret: WEBHOOK_SECRET,
    };
}

/// A certificate and key (PEM files) the nodes serve HTTPS with; the harness's client trusts the
/// certificate, which must name 127.0.0.1.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// How a cluster is made; [`Settings::default`] is the integration tests' cluster, and
/// [`Settings::in_folder`] a cluster that a runner drives for minutes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The `boxoffice` binary, which runs the nodes and the sandbox provider.
    pub bin: PathBuf,
    /// Where the configs, data folders and logs go; a temporary folder when `None` (removed
    /// when the cluster is dropped, unless `BOXOFFICE_KEEP_LOGS` is set).
    pub dir: Option<PathBuf>,
    pub nodes: u64,
    pub inventory_groups: u32,
    pub hold_ttl_ms: u64,
    /// `[raft] write_timeout_ms`; the node's default when `None`.
    pub write_timeout_ms: Option<u64>,
    /// Extra lines for the `[raft]` table.
    pub raft_extra: String,
    /// Extra lines for the `[gateway]` table.
    pub gateway_extra: String,
    /// The `[gateway]` lines of the rate limits and password-hashing slots: [`HARNESS_LIMITS`]
    /// by default; empty for the node's own defaults (a test that sets some of these fields in
    /// `gateway_extra` empties this, as TOML refuses a key given twice).
    pub gateway_limits: String,
    /// Lines for a `[room]` table (the waiting room's endpoint and limits); no table when empty.
    pub room_extra: String,
    /// Nodes in every node's config that `start` does not start (`restart` starts them later).
    pub not_started: Vec<u64>,
    pub secrets: Secrets,
    /// Whether the nodes take faults (clock skew, disk errors) through `PUT /admin/faults`.
    pub fault_injection: bool,
    /// `[gateway] reconcile_after_ms`: how old a pending payment is before the node asks the
    /// provider about it.
    pub reconcile_after_ms: u64,
    /// Whether the nodes log JSON lines rather than text.
    pub json_logs: bool,
    /// Longest the sandbox provider waits before it answers or sends a webhook.
    pub sandbox_delay_max_ms: u64,
    /// Webhooks out of every thousand the sandbox provider sends twice.
    pub sandbox_duplicate_per_mille: u32,
    /// Timeout of one request of the cluster's HTTP client ([`crate::Cluster::http`]).
    pub request_timeout_ms: u64,
    /// HTTPS on every node's gateway with these files (`None`: plain HTTP). The sandbox's
    /// webhooks still go to `http://`, so payments are not confirmed by webhook in such a cluster.
    pub tls: Option<TlsFiles>,
    /// A backup (`boxoffice ctl backup`) that every node starts from, put into its data folder
    /// by `boxoffice ctl restore` (`None`: the nodes start empty).
    pub restore_from: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bin: test_binary(),
            dir: None,
            nodes: 3,
            inventory_groups: 4,
            hold_ttl_ms: 600_000,
            write_timeout_ms: None,
            raft_extra: String::new(),
            gateway_extra: String::new(),
            gateway_limits: HARNESS_LIMITS.into(),
            room_extra: String::new(),
            not_started: Vec::new(),
            secrets: Secrets::HARNESS,
            fault_injection: false,
            reconcile_after_ms: 2_000,
            json_logs: false,
            sandbox_delay_max_ms: 300,
            sandbox_duplicate_per_mille: 200,
            request_timeout_ms: 15_000,
            tls: None,
            restore_from: None,
        }
    }
}

impl Settings {
    /// A cluster of `bin` kept in `dir` and driven by a runner for minutes (the chaos runner,
    /// the benchmark): nodes log JSON and take injected faults, a write gives up after 5 s,
    /// the sandbox provider waits up to 500 ms and sends one webhook in ten twice, and the
    /// runner's own requests time out after 5 s.
    pub fn in_folder(bin: PathBuf, dir: PathBuf) -> Settings {
        Settings {
            bin,
            dir: Some(dir),
            write_timeout_ms: Some(5_000),
            fault_injection: true,
            reconcile_after_ms: 3_000,
            json_logs: true,
            sandbox_delay_max_ms: 500,
            sandbox_duplicate_per_mille: 100,
            request_timeout_ms: 5_000,
            ..Settings::default()
        }
    }
}

/// The `boxoffice` binary for an integration test: `BOXOFFICE_BIN`, else the one in the target
/// folder above the test executable (`target/release/deps/<test>` gives
/// `target/release/boxoffice`).
pub fn test_binary() -> PathBuf {
    if let Ok(path) = std::env::var("BOXOFFICE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("boxoffice")).unwrap_or_default()
}

/// The `boxoffice` binary beside this executable (as `target/release/boxoffice` is beside
/// `target/release/boxoffice-chaos`).
pub fn sibling_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().map(|dir| dir.join("boxoffice")).unwrap_or_else(|| PathBuf::from("boxoffice"))
}
