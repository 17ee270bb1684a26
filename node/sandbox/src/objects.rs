//! The API's objects (payment intents, refunds, events), the requests that make them, and the
//! test cards' rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// The card that always pays.
pub const CARD_OK: &str = "4242424242424242";
/// The card that is always declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// The card declined for insufficient funds.
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";

/// The largest amount, in the currency's smallest unit (as at Stripe: 999,999.99 dollars).
const AMOUNT_MAX: i64 = 99_999_999;
const BOOKING_ID_MAX: usize = 200;
const RETURN_URL_MAX: usize = 2_048;

/// `pi_`, `re_` or `evt_` and 24 hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 12]>()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    Succeeded,
}

/// Why the last confirmation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentError {
    pub code: &'static str,
    pub decline_code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    pub id: String,
    pub object: &'static str,
    pub amount: u64,
    pub currency: String,
    pub booking_id: String,
    pub status: IntentStatus,
    pub checkout_url: String,
    pub created: i64,
    pub last_payment_error: Option<PaymentError>,
    pub amount_refunded: u64,
    pub return_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: String,
    pub object: &'static str,
    pub payment_intent: String,
    pub amount: u64,
    pub currency: String,
    pub booking_id: String,
    pub status: &'static str,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventData {
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub object: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub created: i64,
    pub data: EventData,
}

/// `POST /v1/payment_intents`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntent {
    pub amount: i64,
    pub currency: String,
    pub booking_id: String,
    #[serde(default)]
    pub return_url: Option<String>,
}

impl CreateIntent {
    pub fn check(&self) -> Result<(), ApiError> {
        if !(1..=AMOUNT_MAX).contains(&self.amount) {
            return Err(ApiError::invalid_param("amount", "is a whole number of cents from 1 to 99999999"));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ApiError::invalid_param("currency", "is a three-letter iso code such as \"usd\""));
        }
        let booking = &self.booking_id;
        if booking.is_empty() || booking.chars().count() > BOOKING_ID_MAX || booking.chars().any(char::is_control) {
            return Err(ApiError::invalid_param("bookingId", "has 1 to 200 characters, none of them control ones"));
        }
        if let Some(url) = &self.return_url {
            check_return_url(url)?;
        }
        Ok(())
    }
}

/// Only http(s) URLs, so that the checkout page never links to `javascript:` or the like.
fn check_return_url(url: &str) -> Result<(), ApiError> {
    let http = url.starts_with("http://") || url.starts_with("https://");
    let plain = !url.chars().any(|c| c.is_control() || c.is_whitespace());
    if !http || !plain || url.len() > RETURN_URL_MAX {
        return Err(ApiError::invalid_param("returnUrl", "is an http or https url of at most 2048 characters"));
    }
    Ok(())
}

/// `POST /v1/payment_intents/{id}/confirm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Confirm {
    pub card_number: String,
}

/// `POST /v1/refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRefund {
    pub payment_intent: String,
}

/// What a card does when charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardOutcome {
    Pays,
    Declined(PaymentError),
}

/// The test cards' rules: spaces and dashes are ignored; a number without 12 to 19 digits is
/// invalid; 4242… pays, every other number is declined.
pub fn charge_card(raw: &str) -> Result<CardOutcome, ApiError> {
    let digits: String = raw.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_number());
    }
    let declined = |decline_code, message: &str| {
        CardOutcome::Declined(PaymentError { code: "card_declined", decline_code, message: message.into() })
    };
    Ok(match digits.as_str() {
        CARD_OK => CardOutcome::Pays,
        CARD_DECLINED => declined("generic_decline", "your card was declined"),
        CARD_INSUFFICIENT_FUNDS => declined("insufficient_funds", "your card has insufficient funds"),
        _ => declined("generic_decline", "your card was declined: the sandbox pays only with 4242 4242 4242 4242"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CreateIntent {
        CreateIntent { amount: 1_250, currency: "usd".into(), booking_id: "b-1".into(), return_url: None }
    }

    #[test]
    fn the_test_cards_pay_decline_or_are_invalid() {
        assert_eq!(charge_card("4242 4242-4242 4242"), Ok(CardOutcome::Pays));
        let declined = |raw| match charge_card(raw) {
            Ok(CardOutcome::Declined(error)) => error.decline_code,
            other => panic!("{other:?}"),
        };
        assert_eq!(declined(CARD_DECLINED), "generic_decline");
        assert_eq!(declined(CARD_INSUFFICIENT_FUNDS), "insufficient_funds");
        assert_eq!(declined("5555555555554444"), "generic_decline");
        for bad in ["", "12345678901", "12345678901234567890", "4242abcd42424242", "４２４２４２４２４２４２"]
        {
            assert_eq!(charge_card(bad), Err(ApiError::invalid_number()), "{bad}");
        }
    }

    #[test]
    fn intent_requests_are_checked() {
        assert_eq!(request().check(), Ok(()));
        let bad = [
            CreateIntent { amount: 0, ..request() },
            CreateIntent { amount: -5, ..request() },
            CreateIntent { currency: "dollars".into(), ..request() },
            CreateIntent { booking_id: String::new(), ..request() },
            CreateIntent { booking_id: "a\nb".into(), ..request() },
            CreateIntent { return_url: Some("javascript:alert(1)".into()), ..request() },
            CreateIntent { return_url: Some("https://x.test/a b".into()), ..request() },
        ];
        for request in bad {
            assert_eq!(request.check().map_err(|e| e.status.as_u16()), Err(400), "{request:?}");
        }
    }

    #[test]
    fn ids_have_a_prefix_and_24_hex_digits() {
        let id = new_id("pi");
        assert_eq!(id.len(), 27);
        assert!(id.starts_with("pi_") && id[3..].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
