//! What an operator and a test do to a running cluster through its APIs: admin writes, faults, a
//! ready-made event (its bodies are the demo crate's typed admin bodies, its seats a
//! [`grid_seat_map`]), fans signed in, and the sandbox provider's view of payments.

use anyhow::{anyhow, bail};
use demo::bodies::{EventBody, PerformerBody, VenueBody};
use model::{Row, Seat, SeatMap, Section};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::fan::Fan;

impl<L> Cluster<L> {
    /// An admin request through node `id` with a JSON body, expecting success; the answer's
    /// JSON (null when it has none).
    pub async fn admin_send(&self, id: u64, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url(id));
        let request = self.http.request(method.clone(), url).bearer_auth(self.settings.secrets.admin_token);
        let response = request.json(&body).send().await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} on node {id}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sets faults on one node through its test-only admin endpoint (`PUT /admin/faults`).
    pub async fn faults(&self, id: u64, faults: Value) -> anyhow::Result<()> {
        self.admin_send(id, reqwest::Method::PUT, "/admin/faults", faults).await.map(|_| ())
    }

    /// An admin POST through node `id`, expecting 201.
    pub async fn admin(&self, id: u64, path: &str, body: Value) -> anyhow::Result<Value> {
        self.admin_post(&self.url(id), path, &body).await
    }

    async fn admin_post(&self, base: &str, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        let request = self.http.post(format!("{base}{path}")).bearer_auth(self.settings.secrets.admin_token);
        let response = request.json(body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::CREATED {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Makes a venue of `seats` seats in rows of 20, a performer, and an event there; returns
    /// the event's JSON as the admin API answered (its `id` among the fields; its group is
    /// `model::group_for_new_event`).
    pub async fn seed_event(&self, seats: usize) -> anyhow::Result<Value> {
        self.seed_event_in(seats, None).await
    }

    /// As [`Self::seed_event`], the event's tickets spread over `groups` inventory groups
    /// (whole rows of 20 each) when given.
    pub async fn seed_event_in(&self, seats: usize, groups: Option<u32>) -> anyhow::Result<Value> {
        let base = self.url(self.running()[0]);
        let venue = VenueBody {
            name: "Test Hall".into(),
            address: "1 Main St".into(),
            city: "Testville".into(),
            seat_map: grid_seat_map("Floor", 5_000, seats, 20, |r| format!("R{}", r + 1)),
        };
        let venue = self.admin_post(&base, "/admin/venues", &venue).await?;
        let performer =
            PerformerBody { name: "The Testers".into(), description: "a band".into(), genre: "rock".into() };
        let performer = self.admin_post(&base, "/admin/performers", &performer).await?;
        let event = EventBody {
            name: "Test Night".into(),
            description: "a show".into(),
            category: "concert".into(),
            // 2030-01-01T20:00:00Z
            starts_at_ms: 1_893_528_000_000,
            venue_id: id_of(&venue)?,
            performer_ids: vec![id_of(&performer)?],
            price_cents: None,
            groups,
        };
        self.admin_post(&base, "/admin/events", &event).await
    }

    /// Signs up and signs in a fan through node `id`.
    pub async fn fan(&self, id: u64, name: impl AsRef<str>) -> anyhow::Result<Fan> {
        let name = name.as_ref();
        let base = self.url(id);
        let email = format!("{name}@fans.test");
        let password = format!("{name}-password");
        let response = self
            .http
            .post(format!("{base}/users"))
            .json(&json!({"name": name, "email": email, "password": password}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("sign up {name}: {} {}", response.status(), response.text().await?);
        }
        let response = self
            .http
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("sign in {name}: {} {}", response.status(), response.text().await?);
        }
        let session: Value = response.json().await?;
        let token = session["token"].as_str().ok_or_else(|| anyhow!("no token in {session}"))?.to_string();
        let user = session["userId"].as_u64().ok_or_else(|| anyhow!("no userId in {session}"))?;
        Ok(Fan { user, token, http: self.http.clone() })
    }

    /// What the sandbox provider knows of a payment (`GET /v1/payment_intents/{id}`).
    pub async fn payment(&self, id: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1/payment_intents/{id}", self.sandbox_url);
        Ok(self.http.get(url).bearer_auth(self.settings.secrets.payment_api_key).send().await?.json().await?)
    }

    /// The refunds of a payment at the sandbox provider.
    pub async fn refunds(&self, payment: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/v1/refunds?paymentIntent={payment}", self.sandbox_url);
        let body: Value =
            self.http.get(url).bearer_auth(self.settings.secrets.payment_api_key).send().await?.json().await?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }
}

/// The `id` of what an admin POST created.
fn id_of(created: &Value) -> anyhow::Result<u64> {
    created["id"].as_u64().ok_or_else(|| anyhow!("no id in {created}"))
}

/// A seat map of one section, `section` at `price_cents` a seat, of `seats` seats in rows of
/// `row_seats` (the last one shorter), row `r` (from 0) named `row_name(r)`, seat `s` of it
/// numbered `s + 1` and drawn at (`s`, `r`).
pub fn grid_seat_map(
    section: &str,
    price_cents: u64,
    seats: usize,
    row_seats: usize,
    row_name: impl Fn(usize) -> String,
) -> SeatMap {
    let rows = (0..seats.div_ceil(row_seats))
        .map(|r| {
            let count = (seats - r * row_seats).min(row_seats);
            let seats = (0..count).map(|s| Seat { number: (s + 1).to_string(), x: s as f32, y: r as f32 }).collect();
            Row { name: row_name(r), seats }
        })
        .collect();
    SeatMap { sections: vec![Section { name: section.into(), price_cents, rows }] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_fills_rows_and_ends_with_the_rest() {
        let map = grid_seat_map("Floor", 5_000, 45, 20, |r| format!("R{}", r + 1));
        let rows = &map.sections[0].rows;
        assert_eq!(rows.iter().map(|r| r.seats.len()).collect::<Vec<_>>(), [20, 20, 5]);
        assert_eq!((rows[2].name.as_str(), rows[2].seats[4].number.as_str()), ("R3", "5"));
        assert_eq!((rows[2].seats[4].x, rows[2].seats[4].y), (4.0, 2.0));
        assert_eq!(grid_seat_map("A", 1, 0, 20, |_| String::new()).sections[0].rows.len(), 0);
    }
}
