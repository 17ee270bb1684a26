//! wrk, the load generator the event page scenario measures with (a static file from nginx is
//! faster than the benchmark's own clients could read it): running it and reading its figures.

use anyhow::{bail, Context};

use crate::load::LoadResult;

/// Runs wrk (two threads, `clients` connections) and reads its figures.
pub async fn wrk(label: &str, url: &str, clients: usize, duration_ms: u64) -> anyhow::Result<LoadResult> {
    println!("  {label}: wrk for {} s", duration_ms / 1000);
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{clients}"), &format!("-d{}s", duration_ms / 1000), "--latency", url])
        .output()
        .await
        .context("wrk could not run: install it (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!("wrk failed: {text}");
    }
    parse_wrk(label, clients, duration_ms, &text)
}

fn wrk_ms(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    let value = line.split_whitespace().nth(1)?;
    let (number, scale) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(label: &str, clients: usize, duration_ms: u64, text: &str) -> anyhow::Result<LoadResult> {
    let per_s: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    let elapsed_s = duration_ms as f64 / 1000.0;
    Ok(LoadResult {
        label: label.into(),
        clients,
        elapsed_s,
        requests: (per_s * elapsed_s) as u64,
        granted: 0,
        refused: 0,
        reads: (per_s * elapsed_s) as u64,
        paid: 0,
        errors,
        per_s,
        granted_per_s: 0.0,
        paid_per_s: 0.0,
        p50_ms: wrk_ms(text, "50%").unwrap_or(0.0),
        p90_ms: wrk_ms(text, "90%").unwrap_or(0.0),
        p99_ms: wrk_ms(text, "99%").unwrap_or(0.0),
        p999_ms: 0.0,
        max_ms: wrk_ms(text, "Latency").unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 20s test @ http://127.0.0.1:8080/events/1
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   312.45us  101.23us   5.12ms   90.12%
    Req/Sec   100.12k     5.23k  110.00k    70.00%
  Latency Distribution
     50%  298.00us
     75%  350.00us
     90%  420.00us
     99%    1.02ms
  3985432 requests in 20.00s, 8.12GB read
  Non-2xx or 3xx responses: 12
Requests/sec: 199271.60
Transfer/sec:    415.80MB
";

    #[test]
    fn wrk_figures_are_read_in_milliseconds() {
        let result = parse_wrk("b nginx", 64, 20_000, OUTPUT).unwrap();
        assert_eq!((result.per_s, result.errors, result.clients), (199_271.6, 12, 64));
        assert_eq!(result.requests, 3_985_432);
        assert!((result.p50_ms - 0.298).abs() < 1e-9 && (result.p99_ms - 1.02).abs() < 1e-9, "{result:?}");
        assert!(parse_wrk("b nginx", 64, 20_000, "unable to connect").is_err());
    }
}
