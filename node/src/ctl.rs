//! `boxoffice ctl`: the operator's command line over the admin API.
//!
//! It finds the cluster by `--url` and `--token` (or `BOXOFFICE_URL` and
//! `BOXOFFICE_ADMIN_TOKEN`), so that the token `boxoffice dev` prints works as it is. Every
//! command prints a table for people, or with `--json` the API's answer for scripts; a refusal
//! of the API is shown with its problem's title and detail, and what to fix.
//!
//! - `status`: nodes, groups, roles, leaders and how far each replica lags its group's leader;
//! - `events create --file F`: events from a JSON file (`{"events": [...]}`, or one event);
//! - `backup --to DIR`: a backup of the node at `--url` into a new folder on that node's disk;
//! - `restore --from DIR --data DATA`: a backup into a stopped node's data folder (offline: no
//!   API, no token).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use model::{ClusterStatus, GroupId, NodeId, Role};
use serde_json::Value;

/// How long one request to the admin API may take.
const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Largest events file read (the API takes at most `BULK_EVENTS_MAX` events a request).
const EVENTS_FILE_BYTES_MAX: u64 = 64 << 20;

#[derive(Args)]
pub struct CtlArgs {
    /// The gateway of any node, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "BOXOFFICE_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// The cluster's admin token (`boxoffice dev` prints it).
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's answer as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Nodes, groups, roles, leaders per node and each replica's lag behind its leader.
    Status,
    /// Events of the catalog.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Back up the node at --url: its database, once every replica caught up with its leader,
    /// into a new folder on that node's disk.
    Backup {
        /// An absolute path on the node's machine that does not exist yet.
        #[arg(long)]
        to: String,
    },
    /// Put a backup into a node's data folder, for a node that is not running (no API: run it
    /// on the node's machine, for each node of the cluster to bring back).
    Restore {
        /// The backup's folder (with `db/` and `backup.json`).
        #[arg(long)]
        from: PathBuf,
        /// The node's data folder (`data_dir`); it must hold no database yet.
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Create events from a JSON file: `{"events": [...]}` or one event, as `POST /admin/events`
    /// takes it.
    Create {
        #[arg(long)]
        file: PathBuf,
    },
}

/// What a command answered: the API's JSON (printed with `--json`) and its text for people.
type Answer = (Value, String);

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    // A restore works offline: only the other commands need the API (and a token).
    let api = || Api::new(&args.url, args.token.as_deref());
    let (answer, text) = match &args.command {
        CtlCommand::Restore { from, data } => restore(from, data)?,
        CtlCommand::Status => status(&api()?).await?,
        CtlCommand::Events(EventsCommand::Create { file }) => create_events(&api()?, file).await?,
        CtlCommand::Backup { to } => backup(&api()?, to).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!("{}", text.trim_end());
    }
    Ok(())
}

async fn status(api: &Api) -> anyhow::Result<Answer> {
    let answer = api.get("/admin/cluster").await?;
    let status: ClusterStatus =
        serde_json::from_value(answer.clone()).context("the cluster's status is not what this ctl reads")?;
    Ok((answer, status_table(&status)))
}

async fn create_events(api: &Api, file: &Path) -> anyhow::Result<Answer> {
    let answer = api.post("/admin/events/bulk", &read_events(file)?).await?;
    let text = format!("created {} events, ids {}", answer["created"], answer["ids"]);
    Ok((answer, text))
}

async fn backup(api: &Api, to: &str) -> anyhow::Result<Answer> {
    // Progress on stderr: stdout is the answer.
    eprintln!("backing up the node at {}: each group catches up with its leader, then the copy", api.base);
    let answer = api.post("/admin/backup", &serde_json::json!({ "dir": to })).await?;
    let backup: model::Backup = serde_json::from_value(answer.clone()).context("a backup this ctl cannot read")?;
    let groups: Vec<String> = backup.groups.iter().map(|g| format!("{}@{}", g.group, g.applied_index)).collect();
    let text = format!(
        "node {} backed up into {} in {} ms; groups at their applied index: {}",
        backup.node,
        backup.dir,
        backup.took_ms,
        groups.join(" ")
    );
    Ok((answer, text))
}

/// Copies the backup in `from` into the data folder `data` of a node that is not running.
fn restore(from: &Path, data: &Path) -> anyhow::Result<Answer> {
    let manifest = from.join(crate::cluster::BACKUP_MANIFEST);
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("{} is not a backup: it has no {}", from.display(), manifest.display()))?;
    let answer: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a backup's description", manifest.display()))?;
    let backup: model::Backup =
        serde_json::from_value(answer.clone()).with_context(|| format!("{} is not a backup", manifest.display()))?;
    let target = data.join(crate::cluster::BACKUP_DB);
    if target.exists() {
        bail!("{} exists: restore into a data folder without a database (move it aside first)", target.display());
    }
    std::fs::create_dir_all(data).with_context(|| format!("cannot make {}", data.display()))?;
    let files = copy_dir(&from.join(crate::cluster::BACKUP_DB), &target)?;
    let text = format!(
        "restored node {}'s backup of {} ({files} files) into {}; start the node on it, and every other node of \
         the cluster on a copy of the same backup",
        backup.node,
        backup.dir,
        target.display()
    );
    Ok((answer, text))
}

/// Copies the files of `from` into a new folder `to` (a database folder is flat); returns how many.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir(to).with_context(|| format!("cannot make {}", to.display()))?;
    let mut files = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            bail!("{} is not a file: a backup's database holds only files", entry.path().display());
        }
        std::fs::copy(entry.path(), to.join(entry.file_name()))
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        files += 1;
    }
    Ok(files)
}

/// The events of `file` as the bulk import takes them.
fn read_events(file: &Path) -> anyhow::Result<Value> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    if size > EVENTS_FILE_BYTES_MAX {
        bail!("{} has {size} bytes: split it into files of at most {EVENTS_FILE_BYTES_MAX}", file.display());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON: fix it and run again", file.display()))?;
    match value {
        Value::Object(ref map) if map.contains_key("events") => Ok(value),
        Value::Object(_) => Ok(serde_json::json!({ "events": [value] })),
        Value::Array(events) => Ok(serde_json::json!({ "events": events })),
        _ => bail!("{} holds neither an event nor {{\"events\": [...]}}", file.display()),
    }
}

/// The admin API of one gateway.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(url: &str, token: Option<&str>) -> anyhow::Result<Api> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            bail!("no admin token: pass --token or set BOXOFFICE_ADMIN_TOKEN (boxoffice dev prints it)");
        };
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {url} is not an http(s) address, e.g. http://127.0.0.1:8080");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .context("cannot make an http client")?;
        Ok(Api { base, token: token.to_string(), http })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.answer(path, self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.answer(path, self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    async fn answer(&self, path: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|error| {
            anyhow::anyhow!("cannot reach {}{path}: {error}; is the cluster running, and is --url right?", self.base)
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        // A problem's detail says the most; its title, or the status alone, when it has none.
        let said = body["detail"].as_str().or(body["title"].as_str()).unwrap_or("refused");
        let fix = match status.as_u16() {
            401 | 403 => ": check --token or BOXOFFICE_ADMIN_TOKEN",
            _ => "",
        };
        bail!("{path} answered {status}: {said}{fix}")
    }
}

/// The cluster as two tables: nodes (with their leaders), then groups (with each replica's role
/// and lag behind the group's leader, in log entries).
pub fn status_table(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let mut leaders: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut groups: BTreeMap<GroupId, Vec<(NodeId, &model::ReplicaStatus)>> = BTreeMap::new();
    for node in &status.nodes {
        for replica in &node.replicas {
            if replica.role == Role::Leader {
                *leaders.entry(node.id).or_default() += 1;
            }
            groups.entry(replica.group).or_default().push((node.id, replica));
        }
    }
    let _ =
        writeln!(out, "{:<6} {:<22} {:<22} {:<11} {:>8} {:>8}", "NODE", "HTTP", "RAFT", "STATE", "REPLICAS", "LEADERS");
    for node in &status.nodes {
        let state = if node.reachable { "up" } else { "unreachable" };
        let leading = leaders.get(&node.id).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<6} {:<22} {:<22} {:<11} {:>8} {:>8}",
            node.id,
            node.http_addr,
            node.raft_addr,
            state,
            node.replicas.len(),
            leading
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<6} {:<7} {:<6} REPLICAS (node:role:lag)", "GROUP", "LEADER", "TERM");
    for (group, replicas) in &groups {
        let leader = replicas.iter().find(|(_, r)| r.role == Role::Leader);
        let head = leader.and_then(|(_, r)| r.last_log_index).unwrap_or(0);
        let term = replicas.iter().map(|(_, r)| r.term).max().unwrap_or(0);
        let cells: Vec<String> = replicas
            .iter()
            .map(|(node, r)| {
                let lag = head.saturating_sub(r.applied_index.unwrap_or(0));
                format!("{node}:{}:{lag}", role_name(r.role))
            })
            .collect();
        let leader = leader.map_or("-".to_string(), |(node, _)| node.to_string());
        let _ = writeln!(out, "{group:<6} {leader:<7} {term:<6} {}", cells.join(" "));
    }
    out
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Shutdown => "shutdown",
    }
}

#[cfg(test)]
mod tests {
    use model::{NodeStatus, ReplicaStatus};

    use super::*;

    fn replica(group: GroupId, node: NodeId, role: Role, applied: u64, last: u64) -> ReplicaStatus {
        ReplicaStatus {
            group,
            node,
            role,
            term: 3,
            leader: Some(1),
            applied_index: Some(applied),
            last_log_index: Some(last),
            snapshot_index: None,
            purged_index: None,
        }
    }

    #[test]
    fn the_table_names_every_node_and_group_with_roles_leaders_and_lag() {
        let node = |id: NodeId, replicas, reachable| NodeStatus {
            id,
            raft_addr: format!("127.0.0.1:700{id}"),
            http_addr: format!("127.0.0.1:808{id}"),
            reachable,
            replicas,
        };
        let status = ClusterStatus {
            node: 1,
            inventory_groups: 1,
            nodes: vec![
                node(1, vec![replica(0, 1, Role::Leader, 10, 10), replica(1, 1, Role::Follower, 7, 8)], true),
                node(2, vec![replica(0, 2, Role::Follower, 9, 10), replica(1, 2, Role::Leader, 12, 12)], true),
                node(3, vec![], false),
            ],
        };
        let table = status_table(&status);
        assert!(table.contains("unreachable"), "{table}");
        let (nodes, groups) = table.split_once("\n\n").expect("two tables");
        let group1 = groups.lines().find(|l| l.starts_with("1 ")).expect("a row for group 1");
        assert!(group1.contains("1:follower:5") && group1.contains("2:leader:0"), "{group1}");
        let node2 = nodes.lines().find(|l| l.starts_with("2 ")).expect("a row for node 2");
        assert!(node2.trim_end().ends_with('1'), "node 2 leads one group: {node2}");
    }

    #[test]
    fn an_events_file_may_hold_one_event_a_list_or_the_bulk_body() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let one = read_events(&write("one.json", r#"{"name":"a"}"#)).unwrap();
        assert_eq!(one["events"].as_array().unwrap().len(), 1);
        let list = read_events(&write("list.json", r#"[{"name":"a"},{"name":"b"}]"#)).unwrap();
        assert_eq!(list["events"].as_array().unwrap().len(), 2);
        let bulk = read_events(&write("bulk.json", r#"{"events":[{"name":"a"}]}"#)).unwrap();
        assert_eq!(bulk["events"].as_array().unwrap().len(), 1);
        let bad = read_events(&write("bad.json", "{nope")).unwrap_err().to_string();
        assert!(bad.contains("is not JSON"), "{bad}");
    }
}
