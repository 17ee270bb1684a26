//! The benchmark `boxoffice-bench`: Boxoffice against what a user would pick instead
//! (PostgreSQL, Redis, nginx), side by side in one run on one machine, because figures from
//! separate runs on a shared machine mean nothing. See docs/benchmarks.
//!
//! Layout:
//! - [`options`]: the command line, with the scenarios (`a1` sell-out, `a2` churn, `b` event
//!   page, `c` mixed on-sale, `p` purchases, `s` search, `w` waiting room, `m` seat map) and the systems as
//!   typed values;
//! - [`run`]: one run, every scenario against every system, each system alone in turn, and the
//!   result files;
//! - [`load`]: the load engine (closed or open loop, HdrHistogram latencies, live progress);
//! - [`http`]: the lean HTTP/1.1 client the load engine's Boxoffice clients use;
//! - [`boxoffice`]: a benchmark cluster and its clients (holds, purchases that pay at the
//!   sandbox provider, page reads);
//! - [`peers`]: PostgreSQL (alone and with two synchronous standbys), Redis (default persistence
//!   and `appendfsync always`) and nginx, each started on loopback, their clients and workers;
//! - [`wrk`]: running wrk, which measures the event page, and reading its figures;
//! - [`catalog`] and [`search`]: the generated catalog, and the search benchmark over it;
//! - [`room`]: the waiting room (`w`), tens of thousands of fans on QUIC and the HTTP fallback;
//! - [`seatmap`]: the live seat map (`m`), tens of thousands of seat streams while holds run;
//! - [`report`]: the results as JSON, a markdown table and an SVG chart.
//!
//! The peers' tests (`tests/peers.rs`) need the PostgreSQL, Redis and nginx servers installed,
//! so they are built only with the `peers` feature: `scripts/bench` runs them before the
//! benchmark (`cargo test --release -p bench --features peers --test peers`).

pub mod boxoffice;
pub mod catalog;
pub mod http;
pub mod load;
pub mod options;
pub mod peers;
pub mod report;
pub mod room;
pub mod run;
pub mod search;
pub mod seatmap;
pub mod wrk;
