//! The benchmark: Boxoffice against what a user would pick instead (PostgreSQL, Redis, nginx),
//! side by side in one run on one machine, because figures from separate runs on a shared
//! machine mean nothing.
//!
//! - [`load`]: the load engine (closed or open loop, HdrHistogram latencies, live progress);
//! - [`boxoffice`]: a benchmark cluster and its clients (holds, purchases that pay at the
//!   sandbox provider, page reads);
//! - [`peers`]: PostgreSQL (alone and with two synchronous standbys), Redis (default persistence
//!   and `appendfsync always`) and nginx, each started on loopback, and their clients.

pub mod boxoffice;
pub mod catalog;
pub mod http;
pub mod load;
pub mod peers;
pub mod report;
pub mod search;
