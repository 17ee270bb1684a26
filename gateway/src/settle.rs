//! Settling payments (design rule 6): every payment the provider captured ends in a confirmed
//! booking or a refund, whoever learns of it first — the fan's own request, the provider's
//! webhook, or the reconciliation task that asks the provider about payments left pending.

use std::sync::{Arc, Weak};
use std::time::Duration;

use model::{Booking, BookingId, BookingState, Command, Consistency, GroupId, Outcome, Query, QueryResult, TicketId};

use crate::cluster::Cluster;
use crate::metrics::PaymentOutcome;
use crate::problem::Problem;
use crate::state::{unexpected, Shared};

/// Where a captured payment ended.
#[derive(Debug)]
pub enum Settled {
    Confirmed(Booking),
    /// The tickets went to others (or the booking was no longer payable): the money went back.
    Refunded {
        booking: Option<Booking>,
        tickets: Vec<TicketId>,
    },
}

/// Records that `payment` was captured for `booking`, and refunds it if it cannot buy it.
pub async fn captured<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    booking: BookingId,
    payment: &str,
    event: Option<String>,
) -> Result<Settled, Problem> {
    let command = Command::PaymentSucceeded { booking, payment: payment.into(), event };
    match state.write(group, command).await? {
        Outcome::Confirmed(b) => {
            tracing::info!(%booking, payment, "booking confirmed");
            Ok(Settled::Confirmed(b))
        }
        Outcome::AlreadyApplied => {
            let b = current(state, group, booking).await?;
            match b {
                Some(b) if is_paid_with(&b, payment) => Ok(Settled::Confirmed(b)),
                other => Ok(Settled::Refunded { booking: other, tickets: Vec::new() }),
            }
        }
        Outcome::HoldLost { booking: b, tickets } => {
            refund(state, group, booking, payment).await?;
            tracing::info!(%booking, payment, ?tickets, "late payment refunded: its tickets went to others");
            Ok(Settled::Refunded { booking: current(state, group, booking).await?.or(Some(b)), tickets })
        }
        Outcome::WrongState(b) if is_paid_with(&b, payment) => Ok(Settled::Confirmed(b)),
        Outcome::WrongState(b) => {
            refund(state, group, booking, payment).await?;
            tracing::info!(%booking, payment, "payment for a booking no longer payable refunded");
            Ok(Settled::Refunded { booking: current(state, group, booking).await?.or(Some(b)), tickets: Vec::new() })
        }
        Outcome::NoSuchBooking => {
            refund(state, group, booking, payment).await?;
            Ok(Settled::Refunded { booking: None, tickets: Vec::new() })
        }
        other => Err(unexpected("payment succeeded", &other)),
    }
}

/// Whether `payment` has confirmed `booking` already, as a linearizable read shows it: then
/// news of that payment changes nothing, and needs no write.
pub async fn confirmed_by<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    booking: BookingId,
    payment: &str,
) -> Result<bool, Problem> {
    Ok(current(state, group, booking).await?.is_some_and(|b| is_paid_with(&b, payment)))
}

fn is_paid_with(booking: &Booking, payment: &str) -> bool {
    matches!(&booking.state, BookingState::Confirmed { payment: p, .. } if p == payment)
}

async fn current<C: Cluster>(state: &Shared<C>, group: GroupId, id: BookingId) -> Result<Option<Booking>, Problem> {
    match state.read(group, Query::Booking(id), Consistency::Linearizable).await? {
        QueryResult::Booking(booking) => Ok(booking),
        other => Err(unexpected("booking", &other)),
    }
}

/// Refunds `payment` at the provider, then records it. A refund the provider cannot make now is
/// an error (503): the webhook is retried and the reconciliation task tries again.
async fn refund<C: Cluster>(
    state: &Shared<C>,
    group: GroupId,
    booking: BookingId,
    payment: &str,
) -> Result<(), Problem> {
    state.payments.refund(payment).await.map_err(|error| {
        tracing::error!(%booking, payment, %error, "refund failed; it will be tried again");
        Problem::unavailable(format!("the payment provider could not refund: {error}"))
    })?;
    state.metrics.count_payment(PaymentOutcome::Refunded);
    let command = Command::PaymentRefunded { booking, payment: payment.into(), event: None };
    state.write(group, command).await?;
    Ok(())
}

/// Asks the provider, now and then, about the payments of the groups this node leads that have
/// been pending for a while, and settles them: captured ones like a webhook would, failed or
/// abandoned ones back to payable. Stops when the gateway is dropped.
pub async fn reconcile<C: Cluster>(state: Weak<Shared<C>>) {
    loop {
        let Some(interval) = state.upgrade().map(|s| s.config.reconcile_interval_ms) else { return };
        tokio::time::sleep(Duration::from_millis(interval.max(100))).await;
        let Some(state) = state.upgrade() else { return };
        for group in 1..=state.cluster.inventory_groups() {
            if state.cluster.leads(group) {
                if let Err(problem) = reconcile_group(&state, group).await {
                    tracing::warn!(group, detail = problem.detail(), "reconciliation round failed");
                }
            }
        }
    }
}

/// Bookings one reconciliation round looks at per group.
const RECONCILE_BOOKINGS_MAX: u32 = 200;

async fn reconcile_group<C: Cluster>(state: &Arc<Shared<C>>, group: GroupId) -> Result<(), Problem> {
    let pending =
        match state.read(group, Query::PendingPayments { limit: RECONCILE_BOOKINGS_MAX }, Consistency::Stale).await? {
            QueryResult::Bookings(bookings) => bookings,
            other => return Err(unexpected("pending payments", &other)),
        };
    let now = state.now();
    for booking in pending {
        let BookingState::PaymentPending { payment, since } = &booking.state else { continue };
        if now < since + state.config.reconcile_after_ms {
            continue;
        }
        let intent = match state.payments.intent(payment).await {
            Ok(intent) => intent,
            Err(error) => {
                tracing::warn!(booking = %booking.id, payment, %error, "cannot ask the provider about a pending payment");
                continue;
            }
        };
        if intent.succeeded() {
            tracing::info!(booking = %booking.id, payment, "reconciliation found a captured payment");
            captured(state, group, booking.id, payment, None).await?;
            continue;
        }
        let abandoned = now >= booking.held_until + state.config.payment_abandon_after_ms;
        let failed = intent
            .last_payment_error
            .as_ref()
            .map(|e| e.code.clone())
            .or_else(|| abandoned.then(|| "abandoned".into()));
        if let Some(reason) = failed {
            let command = Command::PaymentFailed { booking: booking.id, payment: payment.clone(), reason, event: None };
            state.write(group, command).await?;
        }
    }
    Ok(())
}
