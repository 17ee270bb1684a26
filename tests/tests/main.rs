//! The integration tests: each module starts real clusters of `boxoffice node` processes on
//! loopback through the `harness` crate and talks to them as fans and operators do.
//!
//! - [`race`]: fans racing for the same tickets; all or nothing;
//! - [`failover`]: the leader killed under load; a new cluster without its first node;
//! - [`expiry`]: holds end by time alone; late payments;
//! - [`bad_input`]: every kind of bad input is a 4xx problem, never a 5xx;
//! - [`payments`]: hosted checkout, webhooks, refunds, idempotent retries, best available;
//! - [`search`]: typos, prefixes, dates, filters, facets, a new event within a second;
//! - [`dev`]: `boxoffice dev`, the embedded default, across a restart.

mod bad_input;
mod dev;
mod expiry;
mod failover;
mod payments;
mod race;
mod search;
