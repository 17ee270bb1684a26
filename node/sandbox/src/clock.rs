//! The sandbox's one clock: objects and delivery attempts are stamped in Unix seconds, as at
//! Stripe. The store never reads it; its callers pass the time in.

/// Unix seconds, now.
pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}
