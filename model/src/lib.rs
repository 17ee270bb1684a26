//! The ticketing domain shared by every crate: identifiers, catalog and inventory records, the
//! commands that change them and the queries that read them.
//!
//! Nothing here does I/O. The types travel in three places: the raft log and the wire between
//! nodes (bincode), the rows of the state machine (bincode), and the HTTP API (JSON, camelCase).
//! Because bincode is not self-describing, no type here uses `skip_serializing_if`, `flatten` or
//! untagged enums.
//!
//! Layout:
//! - [`ids`]: identifiers, group numbering and the booking id's text form;
//! - [`catalog`]: venues with seat maps, performers, events, users;
//! - [`inventory`]: ticket states and bookings, and how a state reads at a given time;
//! - [`command`]: the commands a raft group applies and the outcome each returns;
//! - [`parts`]: events split over several inventory groups, and how a ticket or booking finds
//!   its part;
//! - [`query`]: the reads a group answers;
//! - [`room`]: the waiting room's places, settings, node reports and replicated state;
//! - [`search`]: event search queries and results;
//! - [`cluster`]: cluster status and the errors of cluster calls;
//! - [`duration`]: durations as people write them in settings and flags (`10m`, `90s`).

pub mod catalog;
pub mod cluster;
pub mod command;
pub mod duration;
pub mod ids;
pub mod inventory;
pub mod parts;
pub mod query;
pub mod room;
pub mod search;

pub use catalog::*;
pub use cluster::*;
pub use command::*;
pub use ids::*;
pub use inventory::*;
pub use parts::*;
pub use query::*;
pub use search::*;

/// Hard ceiling on the tickets one booking may hold, whatever the settings say. Settings pick a
/// lower per-event limit; this one bounds the work one command can make apply do.
pub const BOOKING_TICKETS_HARD_MAX: usize = 100;
/// Most of a fan's bookings for one event (released and expired ones included) that a per-fan
/// limit looks at; past it, apply counts the fan as over any limit (`FanLimit` with `held` at
/// `u32::MAX`): counting more would make every hold of theirs slower.
pub const FAN_BOOKINGS_PER_EVENT_MAX: usize = 1_000;

/// Hard ceiling on the seats of one venue: a large stadium has about 100,000.
pub const VENUE_SEATS_MAX: usize = 200_000;
/// Characters in a section's or a row's name or a seat's number (labels on a seat map).
pub const SEAT_LABEL_CHARS_MAX: usize = 32;

/// Milliseconds since the Unix epoch, the one time unit of the domain.
pub type Millis = u64;
