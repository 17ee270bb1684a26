//! Taking the fans' money: the provider trait, card numbers, and the built-in sandbox.
//!
//! Design rule 6: every captured payment ends in a confirmed booking or a refund. The booking
//! routes charge, then confirm, and refund when the confirmation does not take.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use model::BookingId;
use rand::Rng;

/// A boxed future, so that providers can be chosen at run time (`Arc<dyn PaymentProvider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A captured payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Declined {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("no charge {0}")]
    UnknownCharge(String),
    #[error("the provider failed: {0}")]
    Provider(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a card number has 12 to 19 digits (spaces and dashes between them are fine)")]
pub struct BadCardNumber;

/// A card number that has the shape of one: 12 to 19 digits. Its `Debug` shows only the last
/// four, so that a stray log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Card(String);

impl Card {
    pub fn parse(raw: &str) -> Result<Card, BadCardNumber> {
        let digits: String = raw.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
        let shaped = (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        if !shaped {
            return Err(BadCardNumber);
        }
        Ok(Card(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card(…{})", self.last4())
    }
}

pub trait PaymentProvider: Send + Sync + 'static {
    /// Capture `amount_cents` for `booking`.
    fn charge<'a>(
        &'a self,
        booking: BookingId,
        amount_cents: u64,
        card: &'a Card,
    ) -> BoxFuture<'a, Result<Charge, Declined>>;

    /// Give a captured payment back.
    fn refund<'a>(&'a self, charge_id: &'a str) -> BoxFuture<'a, Result<(), RefundError>>;
}

/// The test card that always pays.
pub const SANDBOX_CARD_OK: &str = "4242424242424242";
/// The test card that is always declined.
pub const SANDBOX_CARD_DECLINED: &str = "4000000000000002";

/// One charge the sandbox captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRecord {
    pub id: String,
    pub booking: BookingId,
    pub amount_cents: u64,
    pub card_last4: String,
    pub refunded: bool,
}

/// A provider that keeps its ledger in memory, for development and tests. It charges a booking
/// at most once while that charge stands (like an idempotency key at a real provider), so that
/// two payment requests racing for one booking, or a retry after a timeout, do not take the money
/// twice.
#[derive(Debug, Default)]
pub struct SandboxProvider {
    ledger: Mutex<Vec<ChargeRecord>>,
}

impl SandboxProvider {
    /// Every charge, refunded or not, in the order they were made.
    pub fn charges(&self) -> Vec<ChargeRecord> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The ids of the refunded charges.
    pub fn refunds(&self) -> Vec<String> {
        self.charges().into_iter().filter(|c| c.refunded).map(|c| c.id).collect()
    }

    fn charge_now(&self, booking: BookingId, amount_cents: u64, card: &Card) -> Result<Charge, Declined> {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(standing) = ledger.iter().find(|c| c.booking == booking && !c.refunded) {
            return Ok(Charge { id: standing.id.clone() });
        }
        match card.digits() {
            SANDBOX_CARD_OK => {}
            SANDBOX_CARD_DECLINED => return Err(Declined { reason: "the card was declined".into() }),
            _ => return Err(Declined { reason: format!("the sandbox only accepts the test card {SANDBOX_CARD_OK}") }),
        }
        let id = format!("ch_{:016x}", rand::thread_rng().gen::<u64>());
        let record =
            ChargeRecord { id: id.clone(), booking, amount_cents, card_last4: card.last4().into(), refunded: false };
        ledger.push(record);
        Ok(Charge { id })
    }

    fn refund_now(&self, charge_id: &str) -> Result<(), RefundError> {
        let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        let charge = ledger.iter_mut().find(|c| c.id == charge_id);
        let charge = charge.ok_or_else(|| RefundError::UnknownCharge(charge_id.into()))?;
        charge.refunded = true;
        Ok(())
    }
}

impl PaymentProvider for SandboxProvider {
    fn charge<'a>(
        &'a self,
        booking: BookingId,
        amount_cents: u64,
        card: &'a Card,
    ) -> BoxFuture<'a, Result<Charge, Declined>> {
        Box::pin(async move { self.charge_now(booking, amount_cents, card) })
    }

    fn refund<'a>(&'a self, charge_id: &'a str) -> BoxFuture<'a, Result<(), RefundError>> {
        Box::pin(async move { self.refund_now(charge_id) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKING: BookingId = BookingId { event: 1, nonce: 2 };

    fn card(number: &str) -> Card {
        Card::parse(number).unwrap()
    }

    #[test]
    fn card_numbers_have_twelve_to_nineteen_digits() {
        assert_eq!(card("4242 4242-4242 4242").digits(), SANDBOX_CARD_OK);
        assert!(Card::parse("123456789012").is_ok());
        assert!(Card::parse("1234567890123456789").is_ok());
        for bad in ["", "12345678901", "12345678901234567890", "4242abcd42424242", "４２４２４２４２４２４２"]
        {
            assert_eq!(Card::parse(bad), Err(BadCardNumber), "{bad}");
        }
    }

    #[test]
    fn a_card_shows_only_its_last_four_digits() {
        assert_eq!(format!("{:?}", card(SANDBOX_CARD_OK)), "Card(…4242)");
    }

    #[tokio::test]
    async fn the_test_card_pays_and_the_others_are_declined() {
        let sandbox = SandboxProvider::default();
        assert!(sandbox.charge(BOOKING, 100, &card(SANDBOX_CARD_DECLINED)).await.is_err());
        assert!(sandbox.charge(BOOKING, 100, &card("5555555555554444")).await.is_err());
        assert!(sandbox.charges().is_empty());
        let charge = sandbox.charge(BOOKING, 100, &card(SANDBOX_CARD_OK)).await.unwrap();
        let charges = sandbox.charges();
        assert_eq!(charges.len(), 1);
        assert_eq!((charges[0].id.as_str(), charges[0].amount_cents), (charge.id.as_str(), 100));
        assert_eq!(charges[0].card_last4, "4242");
    }

    #[tokio::test]
    async fn a_booking_is_charged_once_until_refunded() {
        let sandbox = SandboxProvider::default();
        let first = sandbox.charge(BOOKING, 100, &card(SANDBOX_CARD_OK)).await.unwrap();
        let again = sandbox.charge(BOOKING, 100, &card(SANDBOX_CARD_OK)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(sandbox.charges().len(), 1);
        sandbox.refund(&first.id).await.unwrap();
        assert_eq!(sandbox.refunds(), vec![first.id.clone()]);
        let after = sandbox.charge(BOOKING, 100, &card(SANDBOX_CARD_OK)).await.unwrap();
        assert_ne!(after, first);
    }

    #[tokio::test]
    async fn refunding_an_unknown_charge_fails() {
        let sandbox = SandboxProvider::default();
        assert_eq!(sandbox.refund("ch_nope").await, Err(RefundError::UnknownCharge("ch_nope".into())));
    }
}
