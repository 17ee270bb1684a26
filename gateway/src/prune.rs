//! Forgetting what fans and the payment provider make a group remember: the first answer under
//! each `Idempotency-Key` and the webhook event ids applied, once `idempotency_window_ms` has
//! passed (ARCHITECTURE.md, invariant 12).
//!
//! Every `prune_interval_ms` this node, for each inventory group it leads, asks its replica for
//! the stamp of the oldest record, and when that is past the window proposes
//! `Command::Prune`, again while apply says more are due (up to a few per round). The node's
//! clock only decides whether to ask: what is forgotten is decided by apply, from the entry's
//! stamp, the same on every replica.

use std::sync::{Arc, Weak};
use std::time::Duration;

use model::{Command, Consistency, GroupId, Outcome, Query, QueryResult};

use crate::cluster::Cluster;
use crate::config::PRUNE_INTERVAL_MIN_MS;
use crate::problem::Problem;
use crate::state::{unexpected, Shared};

/// Prunes one round proposes to a group at most: a larger backlog waits for the next round, so
/// that the other groups this node leads get their turn.
const PRUNES_PER_ROUND_MAX: u32 = 16;

/// Prunes the groups this node leads, every `prune_interval_ms`, until the gateway is dropped.
pub async fn prune<C: Cluster>(state: Weak<Shared<C>>) {
    loop {
        let Some(interval) = state.upgrade().map(|s| s.config.prune_interval_ms) else { return };
        tokio::time::sleep(Duration::from_millis(interval.max(PRUNE_INTERVAL_MIN_MS))).await;
        let Some(state) = state.upgrade() else { return };
        for group in 1..=state.cluster.inventory_groups() {
            if state.cluster.leads(group) {
                if let Err(problem) = prune_group(&state, group).await {
                    tracing::warn!(group, detail = problem.detail(), "prune failed");
                }
            }
        }
    }
}

/// Proposes prunes to `group` while its replica has records past the window.
async fn prune_group<C: Cluster>(state: &Arc<Shared<C>>, group: GroupId) -> Result<(), Problem> {
    let oldest = match state.read(group, Query::OldestRemembered, Consistency::Stale).await? {
        QueryResult::OldestRemembered(oldest) => oldest,
        other => return Err(unexpected("oldest remembered record", &other)),
    };
    let window_ms = state.config.idempotency_window_ms;
    if oldest.is_none_or(|oldest| state.now() < oldest.saturating_add(window_ms)) {
        return Ok(());
    }
    let command = Command::Prune { window_ms, records_max: state.config.prune_records_max };
    for _ in 0..PRUNES_PER_ROUND_MAX {
        match state.write(group, command.clone()).await? {
            Outcome::Pruned { records, more } => {
                state.metrics.count_pruned(records);
                tracing::debug!(group, records, more, "remembered records pruned");
                if !more {
                    break;
                }
            }
            other => return Err(unexpected("prune", &other)),
        }
    }
    Ok(())
}
