//! The demo catalog and its loader: a fixed set of fictional venues, performers and events that
//! fills an empty cluster through the admin HTTP API, so that a fresh cluster has something to
//! sell; and the admin API's request bodies, which other crates that create catalog data use too.
//!
//! [`generate`] is a pure function of the time it is given: ten venues in ten cities (three clubs
//! of ~400 seats in a grid, five theaters of 1,500–2,500 seats with Orchestra, Mezzanine and
//! Balcony on arcs, an arena of ~15,000 seats with a floor and two tiers around it, and a stadium
//! of ~50,000 seats around a pitch), 32 performers and 91 events over the next six months. The
//! lists are fixed, so two runs give the same catalog (and the same times, when they are given a
//! time on the same UTC day). [`load`] sends that catalog to a gateway.
//!
//! Layout:
//! - `lists`: the fixed venue, performer and show lists and their spec types;
//! - `geometry`: the seat-map builders (clubs, theaters, the arena, the stadium): sections, rows,
//!   coordinates;
//! - `catalog`: [`generate`], the lists turned into a [`DemoCatalog`], and each record's body;
//! - [`bodies`]: the typed bodies of `POST /admin/venues`, `/admin/performers` and `/admin/events`;
//! - `loader`: [`load`] and [`load_with`] through the admin API, with a timeout per request and a
//!   retry budget while the cluster elects its leaders; [`LoadError`] says why it stopped.

pub mod bodies;
mod catalog;
mod geometry;
mod lists;
mod loader;

pub use catalog::{generate, DemoCatalog, DemoEvent, DemoPerformer, DemoVenue, VenueKind};
pub use lists::HORIZON_DAYS;
pub use loader::{
    load, load_with, open_room, DemoSummary, LoadError, LoadOptions, Unavailable, REQUEST_TIMEOUT, RETRY_BUDGET,
    ROOM_EVENT,
};
