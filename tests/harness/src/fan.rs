//! A fan's side of the API, as the integration tests speak it: the fan's requests, their
//! answers, ticket statuses as a node shows them, the provider's checkout page, and webhooks
//! signed as the provider signs them.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An answer: status, content type and JSON body (or null).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    pub fn is_problem(&self) -> bool {
        self.content_type.starts_with("application/problem+json")
            && self.body["status"].as_u64() == Some(self.status.as_u16() as u64)
            && self.body["title"].is_string()
    }
}

pub async fn answer(response: reqwest::Response) -> anyhow::Result<Answer> {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, content_type, body })
}

/// One signed-in fan ([`crate::Cluster::fan`] signs one up).
#[derive(Clone)]
pub struct Fan {
    pub user: u64,
    pub token: String,
    pub http: reqwest::Client,
}

impl Fan {
    pub async fn hold(&self, base: &str, event: u64, tickets: &[u32]) -> anyhow::Result<Answer> {
        let url = format!("{base}/events/{event}/bookings");
        answer(self.http.post(url).bearer_auth(&self.token).json(&json!({"ticketIds": tickets})).send().await?).await
    }

    pub async fn booking(&self, base: &str, booking: &str) -> anyhow::Result<Answer> {
        answer(self.http.get(format!("{base}/bookings/{booking}")).bearer_auth(&self.token).send().await?).await
    }

    pub async fn release(&self, base: &str, booking: &str) -> anyhow::Result<Answer> {
        answer(self.http.delete(format!("{base}/bookings/{booking}")).bearer_auth(&self.token).send().await?).await
    }

    pub async fn pay(&self, base: &str, booking: &str, card: &str) -> anyhow::Result<Answer> {
        let url = format!("{base}/bookings/{booking}/payment");
        answer(self.http.post(url).bearer_auth(&self.token).json(&json!({"cardNumber": card})).send().await?).await
    }

    /// Starts paying without a card: the answer names the checkout page.
    pub async fn start_payment(&self, base: &str, booking: &str, key: Option<&str>) -> anyhow::Result<Answer> {
        let mut request =
            self.http.post(format!("{base}/bookings/{booking}/payment")).bearer_auth(&self.token).json(&json!({}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        answer(request.send().await?).await
    }

    /// Waits (up to 15 s) until the booking reads `status`; returns it as last read.
    pub async fn booking_when(&self, base: &str, booking: &str, status: &str) -> anyhow::Result<Answer> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let read = self.booking(base, booking).await?;
            if read.body["status"] == status || Instant::now() > deadline {
                return Ok(read);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The statuses of an event's tickets, by ticket id, as one node sees them.
pub async fn ticket_statuses(http: &reqwest::Client, base: &str, event: u64) -> anyhow::Result<Vec<String>> {
    let body: Value = http.get(format!("{base}/events/{event}/tickets")).send().await?.json().await?;
    let tickets = body["tickets"].as_array().ok_or_else(|| anyhow!("no tickets in {body}"))?;
    let mut statuses = vec![String::new(); tickets.len()];
    for ticket in tickets {
        let id = ticket["id"].as_u64().ok_or_else(|| anyhow!("ticket without id"))? as usize;
        statuses[id] = ticket["status"].as_str().unwrap_or_default().to_string();
    }
    Ok(statuses)
}

/// Ticket statuses as `base` sees them once `ready` holds of them (reads may trail the leader by
/// a moment), or the last ones read after 5 s.
pub async fn ticket_statuses_when(
    http: &reqwest::Client,
    base: &str,
    event: u64,
    ready: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let statuses = ticket_statuses(http, base, event).await?;
        if ready(&statuses) || Instant::now() > deadline {
            return Ok(statuses);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pays on the provider's hosted checkout page, as a fan's browser would: a form post.
pub async fn checkout(http: &reqwest::Client, checkout_url: &str, card: &str) -> anyhow::Result<String> {
    let page = http.get(checkout_url).send().await?;
    if !page.status().is_success() {
        bail!("checkout page: {}", page.status());
    }
    let response = http
        .post(checkout_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("cardNumber={card}"))
        .send()
        .await?;
    Ok(response.text().await?)
}

/// A webhook body signed as the provider signs it, at `timestamp` (Unix seconds).
pub fn signed_webhook(secret: &str, timestamp: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_signature_names_its_time_and_an_hmac() {
        let header = signed_webhook("whsec", 1_700_000_000, "{}");
        let (time, mac) = header.split_once(",v1=").unwrap();
        assert_eq!(time, "t=1700000000");
        assert!(mac.len() == 64 && mac.chars().all(|c| c.is_ascii_hexdigit()), "{header}");
        assert_ne!(signed_webhook("whsec", 1_700_000_001, "{}"), header);
    }
}
