//! nginx as a peer: the event's page served as a static file, the ceiling any read path of
//! Boxoffice can be held against (no application, no database, just a file in the page cache).
//!
//! Everything lives in `<dir>/nginx`, emptied first: `nginx.conf`, `www/` (the served file),
//! `error.log`, `nginx.pid` and nginx's temp folders.

use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::{find_binary, free_port, is_root, kill_group, log_tail, wait_until};

/// Bound on nginx serving the file after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running nginx (master and workers), killed on drop.
pub struct Nginx {
    /// The URL of the served file, e.g. `http://127.0.0.1:port/events/1`.
    pub url: String,
    child: Child,
}

impl Nginx {
    /// Starts nginx in `<dir>/nginx` serving `body` at `path` (e.g. `/events/1`) as
    /// `application/json`; returns once a GET of it answers 200.
    pub async fn start(dir: &Path, path: &str, body: &[u8]) -> anyhow::Result<Nginx> {
        let bin =
            find_binary("nginx").ok_or_else(|| anyhow!("nginx not found: install nginx (apt-get install -y nginx)"))?;
        let root = dir.join("nginx");
        super::fresh_dir(&root)?;
        let file = root.join("www").join(relative(path)?);
        std::fs::create_dir_all(file.parent().unwrap_or(&root))?;
        std::fs::write(&file, body).with_context(|| format!("cannot write {}", file.display()))?;
        let (port, conf, log) = (free_port()?, root.join("nginx.conf"), root.join("error.log"));
        std::fs::write(&conf, config(&root, port)).with_context(|| format!("cannot write {}", conf.display()))?;
        let mut cmd = Command::new(bin);
        // -e: the error log before the config is read, else nginx tries /var/log/nginx.
        cmd.arg("-e").arg(&log).arg("-c").arg(&conf).arg("-p").arg(&root);
        // Its own process group, so that drop kills the workers with the master.
        let child = cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let mut nginx =
            Nginx { url: format!("http://127.0.0.1:{port}{path}"), child: child.context("cannot start nginx")? };
        nginx.wait_ready(&log).await?;
        Ok(nginx)
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let (url, child) = (self.url.clone(), &mut self.child);
        let what = format!("nginx did not serve {url}");
        wait_until(START_TIMEOUT, &what, &[log], || {
            let exited = child.try_wait();
            let get = http.get(&url).send();
            async move {
                if let Some(status) = exited? {
                    bail!("nginx exited ({status}): {}", log_tail(log));
                }
                Ok(get.await.is_ok_and(|r| r.status() == reqwest::StatusCode::OK))
            }
        })
        .await
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// `path` as a relative file path under `www/`, refusing anything that would leave it.
fn relative(path: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(path.strip_prefix('/').ok_or_else(|| anyhow!("the served path {path:?} must start with /"))?);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("the served path {path:?} must name a file, without . or ..");
    }
    Ok(rel.to_path_buf())
}

/// The configuration: what a user serving one hot JSON file would write.
fn config(root: &Path, port: u16) -> String {
    let root = root.display();
    // As root the workers would drop to `nobody`, who may not reach the folder: stay root.
    let user = if is_root() { "user root;\n" } else { "" };
    format!(
        r#"{user}daemon off;
master_process on;
worker_processes 2;
error_log "{root}/error.log";
pid "{root}/nginx.pid";
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    sendfile on;
    tcp_nodelay on;
    # One file, read on every request: keep it open rather than open and stat it each time.
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root "{root}/www";
        location / {{ }}
    }}
}}
"#
    )
}
