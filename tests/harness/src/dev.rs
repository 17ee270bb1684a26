//! `boxoffice dev` as its users run it, for the tests of the embedded default: started on a
//! port and a data folder, waited for until it says it is up, stopped with SIGTERM (it must exit
//! cleanly), and killed if a test ends before it stops it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process;

/// How long `boxoffice dev` may take to come up (the demo catalog loaded whole).
const UP_TIMEOUT_S: u64 = 180;
/// How long it may take to stop after SIGTERM.
const STOP_TIMEOUT_S: u64 = 30;

/// A running `boxoffice dev`; killed when dropped unless [`Dev::stop`] stopped it.
pub struct Dev {
    child: Option<Child>,
    /// Its output, appended to by every run on the same folder.
    log: PathBuf,
}

impl Dev {
    /// Starts `boxoffice dev --http addr --data data`, appending its output to `log`.
    pub fn start(addr: &str, data: &Path, log: &Path) -> Dev {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(crate::test_binary())
            .args(["dev", "--http", addr, "--data"])
            .arg(data)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Dev { child: Some(child), log: log.to_path_buf() }
    }

    /// Waits until the log says `boxoffice dev is up` `runs` times (once per run on the log).
    pub async fn wait_up(&self, runs: usize) {
        let deadline = Instant::now() + Duration::from_secs(UP_TIMEOUT_S);
        while std::fs::read_to_string(&self.log).unwrap_or_default().matches("boxoffice dev is up").count() < runs {
            assert!(Instant::now() < deadline, "boxoffice dev did not come up within {UP_TIMEOUT_S} s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops it with SIGTERM; it must exit cleanly in time.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        process::signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(STOP_TIMEOUT_S);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "boxoffice dev exits cleanly on SIGTERM: {status}");
                return;
            }
            if Instant::now() > deadline {
                process::kill(child);
                panic!("boxoffice dev did not stop within {STOP_TIMEOUT_S} s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            process::kill(child);
        }
    }
}

/// Signs a fan up and in on `base`: its token and id.
pub async fn signed_in_fan(http: &reqwest::Client, base: &str, name: &str) -> (String, u64) {
    let email = format!("{name}@fans.test");
    let body = serde_json::json!({"name": name, "email": email, "password": "a-fan-password"});
    assert_eq!(http.post(format!("{base}/users")).json(&body).send().await.unwrap().status(), 201);
    let login = serde_json::json!({"email": email, "password": "a-fan-password"});
    let session: Value = http.post(format!("{base}/sessions")).json(&login).send().await.unwrap().json().await.unwrap();
    (session["token"].as_str().unwrap().to_string(), session["userId"].as_u64().unwrap())
}
