//! Boxoffice's side of the benchmark: a cluster of `boxoffice node` processes with one big
//! event, fans signed in, and the clients that hold its tickets and read its page.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use demo::bodies::{EventBody, PerformerBody, VenueBody};
use harness::{grid_seat_map, Cluster, Settings, ADMIN_TOKEN};
use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;

use crate::http::Conn;
use crate::load::{Answer, Worker};

/// Seats per row of the benchmark's venue.
const ROW_SEATS: usize = 50;
/// When the benchmark's events start: 2035-06-01T20:00:00Z.
const EVENT_STARTS_AT_MS: u64 = 2_064_340_800_000;

/// A running benchmark cluster.
pub struct Boxoffice {
    pub cluster: Cluster,
    pub http: reqwest::Client,
    venue: u64,
    performer: u64,
}

impl Boxoffice {
    /// Starts `nodes` nodes (synced logs on every node) and a venue of `seats` seats.
    pub async fn start(
        bin: PathBuf,
        dir: PathBuf,
        nodes: u64,
        seats: u32,
        hold_ttl_ms: u64,
        gateway_extra: &str,
    ) -> anyhow::Result<Boxoffice> {
        let settings = Settings {
            nodes,
            inventory_groups: 4,
            hold_ttl_ms,
            // Each benchmark client holds thousands of seats: no per-fan limit.
            gateway_extra: format!("tickets_per_fan_max = 0\n{gateway_extra}"),
            ..Settings::in_folder(bin, dir)
        };
        let cluster = Cluster::start(settings).await?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
        let base = cluster.url(1);
        let seat_map = grid_seat_map("Floor", 9_900, seats as usize, ROW_SEATS, |r| (r + 1).to_string());
        let venue =
            VenueBody { name: "Bench Stadium".into(), address: String::new(), city: "Benchville".into(), seat_map };
        let venue = admin_post(&http, &base, "/admin/venues", &venue).await?;
        let performer =
            PerformerBody { name: "The Benchmarks".into(), description: String::new(), genre: "pop".into() };
        let performer = admin_post(&http, &base, "/admin/performers", &performer).await?;
        Ok(Boxoffice { cluster, http, venue, performer })
    }

    /// Puts a new event on sale at the venue; every one of its tickets is available.
    pub async fn new_event(&self, name: &str) -> anyhow::Result<u64> {
        self.new_event_in(name, None).await
    }

    /// As [`Boxoffice::new_event`], its rows spread over `groups` inventory groups if given.
    pub async fn new_event_in(&self, name: &str, groups: Option<u32>) -> anyhow::Result<u64> {
        let body = EventBody {
            name: name.into(),
            description: "the benchmark's hot on-sale".into(),
            category: "concert".into(),
            starts_at_ms: EVENT_STARTS_AT_MS,
            venue_id: self.venue,
            performer_ids: vec![self.performer],
            price_cents: None,
            groups,
        };
        admin_post(&self.http, &self.cluster.url(1), "/admin/events", &body).await
    }

    /// Every node's gateway.
    pub fn bases(&self) -> Vec<String> {
        self.cluster.nodes.iter().map(|n| self.cluster.url(n.id)).collect()
    }

    /// One client per fan holding tickets of `event`, each kept on one gateway, the clients
    /// spread evenly over the gateways.
    pub fn holds(&self, tokens: &[String], event: u64, tickets: u32) -> Vec<Hold> {
        let bases = self.bases();
        tokens
            .iter()
            .enumerate()
            .map(|(n, t)| Hold::new(&bases[n % bases.len()], event, t.clone(), tickets, n as u64))
            .collect()
    }

    /// Signs `fans` fans up and in, spread over the gateways; returns their tokens.
    pub async fn fans(&self, fans: usize) -> anyhow::Result<Vec<String>> {
        let mut tokens = Vec::with_capacity(fans);
        for n in 0..fans {
            let node = 1 + (n as u64 % self.cluster.settings.nodes);
            tokens.push(self.cluster.fan(node, format!("benchfan{n}-{}", rand::random::<u32>())).await?.token);
        }
        Ok(tokens)
    }

    /// Checks that no ticket of `event` is held or sold by two bookings and that there are
    /// exactly `granted` live holds; returns the number of tickets held.
    pub async fn verify(&self, event: u64, granted: u64, holds_expire: bool) -> anyhow::Result<u64> {
        let state = self.cluster.admin_get(1, &format!("/admin/events/{event}/state")).await?;
        check_holds(&state, event, granted, holds_expire)
    }

    /// Checks what [`Boxoffice::verify`] does for holds that never expire, and that exactly
    /// `paid` bookings of `event` are confirmed: every purchase the clients saw, and no other.
    pub async fn verify_sales(&self, event: u64, granted: u64, paid: u64) -> anyhow::Result<u64> {
        let state = self.cluster.admin_get(1, &format!("/admin/events/{event}/state")).await?;
        check_holds(&state, event, granted, false)?;
        let bookings = state["bookings"].as_array().ok_or_else(|| anyhow!("no bookings in the event state"))?;
        let confirmed = bookings.iter().filter(|b| b["status"] == "confirmed").count() as u64;
        if confirmed != paid {
            bail!("{paid} payments confirmed a booking but event {event} has {confirmed} confirmed bookings");
        }
        Ok(confirmed)
    }
}

/// [`Boxoffice::verify`] over an event's state (`GET /admin/events/{id}/state`).
fn check_holds(state: &Value, event: u64, granted: u64, holds_expire: bool) -> anyhow::Result<u64> {
    let tickets = state["tickets"].as_array().ok_or_else(|| anyhow!("no tickets in the event state"))?;
    let bookings = state["bookings"].as_array().ok_or_else(|| anyhow!("no bookings in the event state"))?;
    let mut owner = std::collections::HashMap::new();
    for booking in bookings {
        for ticket in booking["tickets"].as_array().into_iter().flatten() {
            let live = booking["status"] == "held" || booking["status"] == "confirmed";
            if live && owner.insert(ticket.as_u64(), booking["id"].clone()).is_some() {
                bail!("ticket {ticket} of event {event} is held by two live bookings");
            }
        }
    }
    if !holds_expire && (tickets.len() as u64 != granted || bookings.len() as u64 != granted) {
        bail!(
            "{granted} holds were granted but the event has {} held tickets and {} bookings",
            tickets.len(),
            bookings.len()
        );
    }
    Ok(tickets.len() as u64)
}

async fn admin_post(http: &reqwest::Client, base: &str, path: &str, body: &impl Serialize) -> anyhow::Result<u64> {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {path}: {status} {body}");
    }
    body["id"].as_u64().ok_or_else(|| anyhow!("POST {path}: no id in the answer"))
}

/// A fan holding one random ticket per request, over its own connection to one gateway.
pub struct Hold {
    conn: Conn,
    path: String,
    token: String,
    tickets: u32,
    rng: StdRng,
}

impl Hold {
    pub fn new(base: &str, event: u64, token: String, tickets: u32, seed: u64) -> Hold {
        let path = format!("/events/{event}/bookings");
        Hold { conn: Conn::new(base), path, token, tickets, rng: StdRng::seed_from_u64(seed) }
    }
}

impl Hold {
    /// Holds one random ticket: granted or refused, with the answer's body.
    async fn hold_one(&mut self) -> anyhow::Result<(Answer, Bytes)> {
        let ticket = self.rng.gen_range(0..self.tickets);
        let body = format!("{{\"ticketIds\":[{ticket}]}}");
        let (status, answer) = self.conn.send(Method::POST, &self.path, Some(&self.token), Some(body)).await?;
        match status.as_u16() {
            201 => Ok((Answer::Granted, answer)),
            409 => Ok((Answer::Refused, answer)),
            other => Err(anyhow!("hold answered {other}")),
        }
    }
}

impl Worker for Hold {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        Ok(self.hold_one().await?.0)
    }
}

/// The sandbox provider's card that always pays.
const CARD_PAYS: &str = "4242424242424242";

/// A fan buying one random ticket at a time, over its own connection to one gateway: holds
/// until a hold is granted, then pays for it with the test card that pays (the gateway confirms
/// at the payment provider at once and answers with the booking confirmed).
pub struct Buy {
    hold: Hold,
    /// The booking held and not paid yet: the next request pays for it.
    unpaid: Option<String>,
}

impl Buy {
    pub fn new(hold: Hold) -> Buy {
        Buy { hold, unpaid: None }
    }

    async fn hold_one(&mut self) -> anyhow::Result<Answer> {
        let (answer, body) = self.hold.hold_one().await?;
        if answer == Answer::Granted {
            let body: Value = serde_json::from_slice(&body).context("a hold's answer")?;
            let booking = body["bookingId"].as_str().ok_or_else(|| anyhow!("no bookingId in {body}"))?;
            self.unpaid = Some(booking.to_string());
        }
        Ok(answer)
    }

    async fn pay(&mut self, booking: &str) -> anyhow::Result<Answer> {
        let path = format!("/bookings/{booking}/payment");
        let body = format!("{{\"cardNumber\":\"{CARD_PAYS}\"}}");
        let hold = &mut self.hold;
        let (status, answer) = hold.conn.send(Method::POST, &path, Some(&hold.token), Some(body)).await?;
        if status.as_u16() != 200 {
            bail!("payment for {booking} answered {status}: {}", String::from_utf8_lossy(&answer));
        }
        Ok(Answer::Paid)
    }
}

impl Worker for Buy {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        match self.unpaid.take() {
            Some(booking) => self.pay(&booking).await,
            None => self.hold_one().await,
        }
    }
}

/// A GET of one path per request over its own connection, expecting 200.
pub struct Get {
    conn: Conn,
    path: String,
}

impl Get {
    pub fn new(base: &str, path: String) -> Get {
        Get { conn: Conn::new(base), path }
    }
}

impl Worker for Get {
    async fn next(&mut self) -> anyhow::Result<Answer> {
        let (status, _) = self.conn.send(Method::GET, &self.path, None, None).await?;
        if status.as_u16() != 200 {
            bail!("GET answered {status}");
        }
        Ok(Answer::Read)
    }
}
