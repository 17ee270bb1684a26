//! The cluster harness: real clusters of real `boxoffice node` processes on loopback, with the
//! sandbox payment provider, for the integration tests (`tests/tests`), the chaos runner and the
//! benchmark. It sees the system only as clients and operators do: processes, config files,
//! HTTP (the admin API's bodies are the `demo` crate's).
//!
//! Layout:
//! - [`settings`]: what a cluster is made of ([`Settings`]: size, folder, [`Secrets`], the
//!   knobs of the tests' and of a runner's clusters) and where the `boxoffice` binary is;
//! - [`config`]: a node's TOML config file;
//! - [`ports`]: free loopback ports, held until the processes bind them;
//! - [`process`]: starting nodes and the sandbox provider, signals, log tails;
//! - [`cluster`]: [`Cluster`], start (again on other ports when one was taken), kill, pause,
//!   resume, restart, reaping processes that exited, waiting for leaders and catch-up, the
//!   admin API's view of the groups, and [`Links`], what stands between the nodes (nothing, or
//!   the chaos runner's proxies);
//! - [`admin`]: admin writes and faults, a ready-made event, a seat map of rows of seats, fans
//!   signed in, the provider's view of payments;
//! - [`fan`]: a fan's requests and their answers, ticket statuses, the provider's checkout page,
//!   signed webhooks;
//! - [`room`]: a fan's client of the waiting room over QUIC (fan tokens, joins, tickets,
//!   admissions), the room's admin and public views, holds under an admission;
//! - [`clients`]: the independent clients of `tests/clients` (Python with aioquic, Playwright
//!   over Chromium, axe-core), run to their end for their JSON lines;
//! - [`dev`]: `boxoffice dev` as a process its tests start, wait for and stop, and a fan
//!   signed in on it;
//! - [`sse`]: a client of server-sent event streams (the seat map's, the room's fallback);
//! - [`interrupt`]: stopping a runner on SIGINT or SIGTERM without leaving processes behind.
//!
//! When a test fails (panics) with a cluster alive, the tail of every node's log is printed;
//! `BOXOFFICE_KEEP_LOGS` keeps a temporary cluster's folder.

pub mod admin;
pub mod clients;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod fan;
pub mod interrupt;
pub mod ports;
pub mod process;
pub mod room;
pub mod settings;
pub mod sse;

pub use admin::grid_seat_map;
pub use cluster::{Cluster, Direct, Links, Node};
pub use fan::{answer, checkout, signed_webhook, ticket_statuses, ticket_statuses_when, Answer, Fan};
pub use interrupt::interrupted;
pub use reqwest::StatusCode;
pub use room::{
    fan_token, get_room, hold_admitted, join, put_room, resume, room_info, room_info_when, wait_admitted,
    wait_clocks_in_step, Admission, AdmissionClaims, FanStream, Joined, Place, Placed, RoomClient, RoomError, RoomInfo,
    RoomNode, RoomPool,
};
pub use settings::{
    sibling_binary, test_binary, Secrets, Settings, TlsFiles, ADMIN_TOKEN, HARNESS_LIMITS, PAYMENT_API_KEY,
    WEBHOOK_SECRET,
};
