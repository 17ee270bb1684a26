//! The benchmark's results: JSON for tools, a markdown table and an SVG chart for people.

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::LoadResult;

/// One system's figures in one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `a1` sell-out, `a2` churn, `b` event page, `c` mixed on-sale, `p` purchases, `s` search
    /// throughput, `sl` search latency at a fixed rate.
    pub scenario: String,
    pub system: String,
    pub result: LoadResult,
    /// What was checked after the run (e.g. "100000 tickets held once each").
    pub checked: String,
}

impl Row {
    /// The figure a scenario is judged by: decisions per second for a sell-out, granted holds
    /// per second for churn, purchases per second for purchases, the p99 latency for search at
    /// a fixed rate, answered requests per second otherwise.
    pub fn headline(&self) -> f64 {
        match self.scenario.as_str() {
            "a2" | "g" => self.result.granted_per_s,
            "p" => self.result.paid_per_s,
            "sl" => self.result.p99_ms,
            _ => self.result.per_s,
        }
    }

    /// How many times better Boxoffice's headline (`ours`) is than this row's: a rate divided
    /// by a rate, or a latency by Boxoffice's.
    fn ratio(&self, ours: f64) -> f64 {
        let tiny = f64::MIN_POSITIVE;
        if lower_is_better(&self.scenario) {
            self.headline() / ours.max(tiny)
        } else {
            ours / self.headline().max(tiny)
        }
    }
}

fn lower_is_better(scenario: &str) -> bool {
    scenario == "sl"
}

pub const SCENARIOS: [(&str, &str); 8] = [
    ("a1", "a1: sell-out of a hot event (one random ticket per hold, holds never expire)"),
    ("a2", "a2: churn (holds end after 2 s, the event never sells out)"),
    ("b", "b: the event page (Boxoffice's gateway, warm cache, against nginx serving the same JSON)"),
    ("c", "c: a mixed on-sale, 100 reads of the event page for every hold"),
    ("p", "p: purchases, each a hold of one random ticket then its payment (Boxoffice pays at the sandbox provider over HTTP; PostgreSQL marks the row sold)"),
    ("s", "search: the same mix of 24 fan searches (names, typos, prefixes, cities, categories, dates), as fast as they go"),
    ("sl", "search latency: the same mix at a fixed rate (open loop, latency from when each search was due)"),
    ("g", "g: one event's holds over 1, 2 and 4 groups of a 5-node cluster, against etcd (3 members, a lease and a compare-and-swap per hold); one random ticket a hold, 10-minute holds, until 40% are held"),
];

fn unit(scenario: &str) -> &'static str {
    match scenario {
        "a1" => "decisions/s",
        "a2" | "g" => "granted holds/s",
        "p" => "purchases/s",
        "s" => "searches/s",
        "sl" => "p99 ms",
        _ => "requests/s",
    }
}

/// The markdown table: one section per scenario, Boxoffice's ratio against each peer.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    for (scenario, title) in SCENARIOS {
        let rows: Vec<&Row> = rows.iter().filter(|r| r.scenario == scenario).collect();
        if rows.is_empty() {
            continue;
        }
        // Boxoffice's best row, where it has several (the groups of one event).
        let ours = rows.iter().filter(|r| r.system.starts_with("boxoffice")).map(|r| r.headline()).reduce(|a, b| {
            if lower_is_better(scenario) {
                a.min(b)
            } else {
                a.max(b)
            }
        });
        let _ = writeln!(out, "\n### {title}\n");
        let better = if lower_is_better(scenario) { "system ÷ Boxoffice" } else { "Boxoffice ÷ system" };
        let _ = writeln!(
            out,
            "| system | {} | {better} | time (s) | answered/s | granted | refused | p50 ms | p99 ms | errors | checked |",
            unit(scenario)
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for row in rows {
            let r = &row.result;
            let ratio = ours.map(|o| format!("{:.2}", row.ratio(o))).unwrap_or_default();
            let headline = if lower_is_better(scenario) {
                format!("{:.2}", row.headline())
            } else {
                format!("{:.0}", row.headline())
            };
            let _ = writeln!(
                out,
                "| {} | {headline} | {ratio} | {:.1} | {:.0} | {} | {} | {:.2} | {:.2} | {} | {} |",
                row.system, r.elapsed_s, r.per_s, r.granted, r.refused, r.p50_ms, r.p99_ms, r.errors, row.checked
            );
        }
    }
    out
}

/// Horizontal bars, one panel per scenario, each bar labelled with its figure.
pub fn svg(rows: &[Row], title: &str) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 230.0;
    const BAR: f64 = 22.0;
    let panels: Vec<(&str, Vec<&Row>)> = SCENARIOS
        .iter()
        .map(|(s, t)| (*t, rows.iter().filter(|r| r.scenario == *s).collect::<Vec<_>>()))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let height = 50.0 + panels.iter().map(|(_, r)| 40.0 + r.len() as f64 * (BAR + 6.0)).sum::<f64>();
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut y = 50.0;
    for (panel, rows) in panels {
        let _ = writeln!(out, r#"<text x="10" y="{}" font-weight="bold">{}</text>"#, y + 14.0, escape(panel));
        y += 24.0;
        let max = rows.iter().map(|r| r.headline()).fold(1.0, f64::max);
        for row in rows {
            let w = (WIDTH - LABEL - 160.0) * row.headline() / max;
            let color = if row.system.starts_with("boxoffice") { "#5b21b6" } else { "#9ca3af" };
            let _ = writeln!(out, r#"<text x="10" y="{}">{}</text>"#, y + 15.0, escape(&row.system));
            let _ = writeln!(out, r#"<rect x="{LABEL}" y="{y}" width="{w:.1}" height="{BAR}" fill="{color}"/>"#);
            let figure = if lower_is_better(&row.scenario) {
                format!("p99 {:.1} ms (shorter is better)", row.result.p99_ms)
            } else {
                format!("{:.0} {} · p99 {:.1} ms", row.headline(), unit(&row.scenario), row.result.p99_ms)
            };
            let _ = writeln!(out, r#"<text x="{:.1}" y="{}">{}</text>"#, LABEL + w + 6.0, y + 15.0, escape(&figure));
            y += BAR + 6.0;
        }
        y += 16.0;
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, system: &str, per_s: f64) -> Row {
        let result = LoadResult {
            label: system.into(),
            clients: 64,
            elapsed_s: 10.0,
            requests: 100,
            granted: 50,
            refused: 50,
            reads: 0,
            paid: 0,
            errors: 0,
            per_s,
            granted_per_s: per_s / 2.0,
            paid_per_s: 0.0,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            p999_ms: 4.0,
            max_ms: 5.0,
        };
        Row { scenario: scenario.into(), system: system.into(), result, checked: "ok".into() }
    }

    #[test]
    fn the_table_gives_boxoffice_ratio_against_each_peer() {
        let rows = vec![row("a1", "boxoffice (3 nodes)", 3000.0), row("a1", "postgres", 1000.0)];
        let table = markdown(&rows, "# results");
        assert!(table.contains("| postgres | 1000 | 3.00 |"), "{table}");
        assert!(table.contains("| boxoffice (3 nodes) | 3000 | 1.00 |"), "{table}");
        assert!(!table.contains("### b:"), "scenarios without rows are left out");
    }

    #[test]
    fn a_latency_ratio_says_how_many_times_slower_the_peer_is() {
        let mut ours = row("sl", "boxoffice", 100.0);
        ours.result.p99_ms = 4.0;
        let mut peer = row("sl", "postgres", 100.0);
        peer.result.p99_ms = 40.0;
        let table = markdown(&[ours, peer], "# results");
        assert!(table.contains("system ÷ Boxoffice"), "{table}");
        assert!(table.contains("| postgres | 40.00 | 10.00 |"), "{table}");
    }

    #[test]
    fn the_chart_draws_a_bar_per_system() {
        let chart = svg(&[row("a2", "boxoffice", 10.0), row("a2", "redis <aof>", 20.0)], "holds");
        assert_eq!(chart.matches("<rect x=").count(), 2);
        assert!(chart.contains("redis &lt;aof&gt;"));
    }
}
