//! The hosted checkout page the fan's browser opens: `GET /checkout/{id}` shows the amount and a
//! card field (prefilled with the card that pays); its form posts to `POST /checkout/{id}`,
//! which confirms as the API does and shows the success or the decline (with the form again).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::{Id, RawBody};
use crate::html::{self, escape};
use crate::objects::{Intent, IntentStatus, CARD_OK};

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/checkout/{id}", get(show).post(pay))
}

async fn show(State(app): State<Arc<App>>, Id(id): Id) -> Response {
    let intent = app.store().intent(&id);
    match intent {
        Ok(intent) => render(&intent, None, StatusCode::OK),
        Err(error) => missing(&error),
    }
}

async fn pay(State(app): State<Arc<App>>, Id(id): Id, body: Result<RawBody, ApiError>) -> Response {
    let card = match body {
        Ok(RawBody(bytes)) => form_field(&bytes, "cardNumber").unwrap_or_default(),
        Err(error) => return missing(&error),
    };
    match app.confirm(&id, &card) {
        Ok(intent) => {
            let notice = intent.last_payment_error.as_ref().map(|e| e.message.clone());
            render(&intent, notice.as_deref(), StatusCode::OK)
        }
        Err(error) => {
            let intent = app.store().intent(&id);
            match intent {
                Ok(intent) => render(&intent, Some(&error.message), error.status),
                Err(error) => missing(&error),
            }
        }
    }
}

fn missing(error: &ApiError) -> Response {
    let body =
        format!("<div class=\"card narrow\"><h1>Checkout</h1><p class=\"bad\">{}</p></div>", escape(&error.message));
    html::page(error.status, "Checkout", &body, "")
}

/// The page for `intent`, with `notice` (a decline, a bad number) above the form.
fn render(intent: &Intent, notice: Option<&str>, status: StatusCode) -> Response {
    let amount = html::money(intent.amount, &intent.currency);
    let mut body = String::new();
    body.push_str("<div class=\"card narrow\"><p><span class=\"badge\">sandbox: test mode</span></p>");
    let _ = write!(
        body,
        "<div class=\"amount\">{amount}</div><p class=\"muted\">booking <code>{}</code><br>payment <code>{}</code></p>",
        escape(&intent.booking_id),
        escape(&intent.id)
    );
    if let Some(notice) = notice {
        let _ = write!(body, "<p class=\"bad\">{}</p>", escape(notice));
    }
    if intent.status == IntentStatus::Succeeded {
        body.push_str(&paid(intent));
    } else {
        body.push_str(&form(&amount, notice.is_some()));
    }
    if let Some(url) = &intent.return_url {
        let label = if intent.status == IntentStatus::Succeeded { "Back to the shop" } else { "Cancel and go back" };
        let _ = write!(body, "<p><a href=\"{}\">{label}</a></p>", escape(&return_link(url, &intent.id)));
    }
    body.push_str("</div>");
    html::page(status, &format!("Pay {amount}"), &body, "")
}

fn paid(intent: &Intent) -> String {
    let mut text = String::from("<p class=\"ok\"><strong>Payment succeeded.</strong> Thank you!</p>");
    if intent.amount_refunded > 0 {
        let refunded = html::money(intent.amount_refunded, &intent.currency);
        let _ = write!(text, "<p class=\"muted\">{refunded} refunded.</p>");
    }
    text
}

fn form(amount: &str, declined: bool) -> String {
    let heading = if declined { "Try another card" } else { "Pay by card" };
    format!(
        "<form method=\"post\"><h2>{heading}</h2><label for=\"card\">Card number</label>\
         <input type=\"text\" id=\"card\" name=\"cardNumber\" value=\"4242 4242 4242 4242\" inputmode=\"numeric\" \
         autocomplete=\"off\" maxlength=\"40\"><button type=\"submit\">Pay {amount}</button></form>\
         <p class=\"muted\">Test cards: {CARD_OK} pays; 4000 0000 0000 0002 is declined; \
         4000 0000 0000 9995 has insufficient funds.</p>"
    )
}

/// `url` with `payment_intent=<id>` added to its query, as Stripe does.
fn return_link(url: &str, intent: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}payment_intent={intent}")
}

/// The first value of `name` in a form-encoded body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let body = String::from_utf8_lossy(body);
    body.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| decode(key) == name).map(|(_, v)| decode(v))
}

/// Undoes form encoding: `+` is a space, `%XX` a byte; anything malformed is kept as it is.
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%').then(|| bytes.get(i + 1..i + 3)).flatten().and_then(|h| hex::decode(h).ok());
        match (bytes[i], escaped) {
            (_, Some(decoded)) => {
                out.extend_from_slice(&decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        let body = b"other=1&cardNumber=4242+4242%2D4242%204242&cardNumber=x";
        assert_eq!(form_field(body, "cardNumber").as_deref(), Some("4242 4242-4242 4242"));
        assert_eq!(form_field(b"cardNumber=%zz%4", "cardNumber").as_deref(), Some("%zz%4"));
        assert_eq!(form_field(b"nothing", "cardNumber"), None);
        assert_eq!(form_field(&[0xff, b'=', b'1'], "cardNumber"), None);
    }

    #[test]
    fn the_return_link_names_the_payment() {
        assert_eq!(return_link("https://shop.test/b/1", "pi_1"), "https://shop.test/b/1?payment_intent=pi_1");
        assert_eq!(return_link("https://shop.test/?b=1", "pi_1"), "https://shop.test/?b=1&payment_intent=pi_1");
    }
}
