//! The dashboard at `/`: the latest intents, refunds and events, newest first, refreshed every
//! few seconds. No login: the sandbox holds test data only.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::App;
use crate::html::{self, escape};
use crate::objects::{Intent, IntentStatus, Refund};
use crate::store::EventRecord;

/// Rows shown per table.
const ROWS: usize = 200;

pub async fn show(State(app): State<Arc<App>>) -> Response {
    let (intents, refunds, events, counts) = {
        let store = app.store();
        (store.recent_intents(ROWS), store.refunds(None, ROWS), store.recent_events(ROWS), store.counts())
    };
    let (intent_count, refund_count, event_count) = counts;
    let mut body = String::from("<h1>Sandbox payments <span class=\"badge\">test mode</span></h1>");
    let _ = write!(
        body,
        "<p class=\"muted\">{intent_count} payment intents, {refund_count} refunds, {event_count} events; \
         the newest {ROWS} of each below.</p>"
    );
    body.push_str(&intents_table(&intents));
    body.push_str(&refunds_table(&refunds));
    body.push_str(&events_table(&events));
    html::page(StatusCode::OK, "Sandbox payments", &body, "<meta http-equiv=\"refresh\" content=\"5\">")
}

fn intents_table(intents: &[Intent]) -> String {
    let mut table = String::from(
        "<div class=\"card\"><h2>Payment intents</h2><table><tr><th>created</th><th>id</th><th>booking</th>\
         <th>amount</th><th>status</th><th>refunded</th></tr>",
    );
    for intent in intents {
        let status = match (&intent.status, &intent.last_payment_error) {
            (IntentStatus::Succeeded, _) => "<span class=\"ok\">succeeded</span>".to_string(),
            (_, Some(error)) => format!("<span class=\"bad\">declined: {}</span>", escape(error.decline_code)),
            (_, None) => "requires payment method".to_string(),
        };
        let refunded = match intent.amount_refunded {
            0 => String::new(),
            amount => html::money(amount, &intent.currency),
        };
        let _ = write!(
            table,
            "<tr><td>{}</td><td><a href=\"checkout/{id}\"><code>{id}</code></a></td><td><code>{}</code></td>\
             <td>{}</td><td>{status}</td><td>{refunded}</td></tr>",
            html::date(intent.created),
            escape(&intent.booking_id),
            html::money(intent.amount, &intent.currency),
            id = escape(&intent.id),
        );
    }
    table.push_str("</table></div>");
    table
}

fn refunds_table(refunds: &[Refund]) -> String {
    let mut table = String::from(
        "<div class=\"card\"><h2>Refunds</h2><table><tr><th>created</th><th>id</th><th>payment intent</th>\
         <th>booking</th><th>amount</th><th>status</th></tr>",
    );
    for refund in refunds {
        let _ = write!(
            table,
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td>\
             <td class=\"ok\">{}</td></tr>",
            html::date(refund.created),
            escape(&refund.id),
            escape(&refund.payment_intent),
            escape(&refund.booking_id),
            html::money(refund.amount, &refund.currency),
            escape(refund.status),
        );
    }
    table.push_str("</table></div>");
    table
}

fn events_table(events: &[EventRecord]) -> String {
    let mut table = String::from(
        "<div class=\"card\"><h2>Events</h2><table><tr><th>created</th><th>id</th><th>type</th>\
         <th>attempts</th><th>delivery</th></tr>",
    );
    for record in events {
        let delivery = match (record.deliveries, record.failed) {
            (0, true) => "<span class=\"bad\">failed</span>".to_string(),
            (0, false) => "pending".to_string(),
            (1, _) => "<span class=\"ok\">delivered</span>".to_string(),
            (n, _) => format!("<span class=\"ok\">delivered {n} times</span>"),
        };
        let _ = write!(
            table,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{delivery}</td></tr>",
            html::date(record.event.created),
            escape(&record.event.id),
            escape(record.event.kind),
            record.attempts_total,
        );
    }
    table.push_str("</table></div>");
    table
}
