//! Rate limits and the password-hashing slots: what keeps one client from taking the gateway
//! from the others.
//!
//! - Sign-ups, sign-ins, holds and payments are limited per client address (an IPv4 address or
//!   an IPv6 /64, as the TCP peer) and, where the request carries a fan's token, per fan; sign-ins
//!   also per account (email), which bounds password guessing however many addresses guess. A
//!   request over a limit gets a 429 problem with `Retry-After` (the routes' middleware is
//!   `routes::limited`).
//! - Each limit is a GCRA allowance (`governor`'s keyed limiter): a burst of `n` refilled evenly
//!   over a minute. Its memory stays bounded: [`sweep`] drops every few seconds the keys whose
//!   allowance is full again (idle for at most a minute), so the map holds only the keys active in
//!   the last minute, which the address limits themselves bound.
//! - Argon2id hashes (19 MiB, tens of milliseconds each) run on blocking threads, at most
//!   [`PasswordSlots`] at once; a request that cannot get a slot within a short wait gets a 503,
//!   so a flood of sign-ins cannot take every core from the holds.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use model::UserId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::GatewayConfig;
use crate::problem::Problem;

/// How often idle keys are dropped from the limiters.
const SWEEP_INTERVAL_MS: u64 = 10_000;

/// One limit over keys of type `K`; no limit when built from a rate of 0.
pub struct Limiter<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    /// `per_min` a minute for each key (a burst of that many); 0: no limit.
    pub fn per_min(per_min: u32) -> Self {
        Self::with_quota(NonZeroU32::new(per_min).map(Quota::per_minute))
    }

    fn with_quota(quota: Option<Quota>) -> Self {
        Limiter { limiter: quota.map(RateLimiter::keyed), clock: DefaultClock::default() }
    }

    /// Takes one from `key`'s allowance, or says how long until there is one.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops the keys whose allowance is full again: they behave as if never seen.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// What a request does, as far as its limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignUp,
    SignIn,
    Hold,
    Payment,
}

impl Action {
    fn doing(self) -> &'static str {
        match self {
            Action::SignUp => "sign-ups",
            Action::SignIn => "sign-ins",
            Action::Hold => "holds",
            Action::Payment => "payments",
        }
    }
}

/// Every limit of the gateway.
pub struct Limits {
    signups_per_address: Limiter<IpAddr>,
    signins_per_address: Limiter<IpAddr>,
    signins_per_email: Limiter<u64>,
    /// Keys emails by a keyed hash: an entry costs a few bytes however long the email.
    email_hasher: RandomState,
    holds_per_address: Limiter<IpAddr>,
    holds_per_fan: Limiter<UserId>,
    payments_per_address: Limiter<IpAddr>,
    payments_per_fan: Limiter<UserId>,
    pub passwords: PasswordSlots,
}

impl Limits {
    pub fn new(config: &GatewayConfig) -> Limits {
        Limits {
            signups_per_address: Limiter::per_min(config.signups_per_address_per_min),
            signins_per_address: Limiter::per_min(config.signins_per_address_per_min),
            signins_per_email: Limiter::per_min(config.signins_per_email_per_min),
            email_hasher: RandomState::new(),
            holds_per_address: Limiter::per_min(config.holds_per_address_per_min),
            holds_per_fan: Limiter::per_min(config.holds_per_fan_per_min),
            payments_per_address: Limiter::per_min(config.payments_per_address_per_min),
            payments_per_fan: Limiter::per_min(config.payments_per_fan_per_min),
            passwords: PasswordSlots::new(
                config.password_hashes_in_flight_max,
                Duration::from_millis(config.password_hash_wait_ms),
            ),
        }
    }

    /// The per-address and per-fan limits of `action` (sign-ups and sign-ins have no fan yet).
    fn of(&self, action: Action) -> (&Limiter<IpAddr>, Option<&Limiter<UserId>>) {
        match action {
            Action::SignUp => (&self.signups_per_address, None),
            Action::SignIn => (&self.signins_per_address, None),
            Action::Hold => (&self.holds_per_address, Some(&self.holds_per_fan)),
            Action::Payment => (&self.payments_per_address, Some(&self.payments_per_fan)),
        }
    }

    /// Takes one sign-in from the account of `email` (normalized).
    pub fn sign_in_to(&self, email: &str) -> Result<(), Problem> {
        let key = self.email_hasher.hash_one(email);
        self.signins_per_email
            .check(&key)
            .map_err(|wait| Problem::too_many_requests("too many sign-ins to this account: wait and try again", wait))
    }

    /// Checks `action` by `address` and, if known, by `fan`.
    pub fn check(&self, action: Action, address: Option<IpAddr>, fan: Option<UserId>) -> Result<(), Problem> {
        let (by_address, by_fan) = self.of(action);
        if let Some(address) = address {
            let detail = || format!("too many {} from this address: wait and try again", action.doing());
            by_address.check(&address_key(address)).map_err(|wait| Problem::too_many_requests(detail(), wait))?;
        }
        if let (Some(by_fan), Some(fan)) = (by_fan, fan) {
            let detail = || format!("too many {} by this fan: wait and try again", action.doing());
            by_fan.check(&fan).map_err(|wait| Problem::too_many_requests(detail(), wait))?;
        }
        Ok(())
    }

    fn forget_idle(&self) {
        self.signups_per_address.forget_idle();
        self.signins_per_address.forget_idle();
        self.signins_per_email.forget_idle();
        self.holds_per_address.forget_idle();
        self.holds_per_fan.forget_idle();
        self.payments_per_address.forget_idle();
        self.payments_per_fan.forget_idle();
    }
}

/// The key of a client address: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6 by its /64,
/// the block one host usually has (else each host would have 2^64 fresh allowances).
pub fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Drops idle keys every few seconds while the gateway (which holds `limits`) lives.
pub async fn sweep(limits: Weak<Limits>) {
    let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
    loop {
        tick.tick().await;
        let Some(limits) = limits.upgrade() else { return };
        limits.forget_idle();
    }
}

/// One slot per core but one, and at least one: hashing never takes every core from the
/// runtimes that answer holds.
pub fn default_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1)
}

/// Slots for password hashes: argon2id runs on blocking threads, at most this many at once.
pub struct PasswordSlots {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl PasswordSlots {
    /// `max` slots (0: [`default_slots`]), waited for at most `wait`.
    pub fn new(max: usize, wait: Duration) -> PasswordSlots {
        let max = if max == 0 { default_slots() } else { max };
        PasswordSlots { slots: Arc::new(Semaphore::new(max)), wait }
    }

    /// A slot, held until the permit is dropped (move it into the blocking task, so that it is
    /// freed when the hash is done even if the client has gone); a 503 if none frees in time.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Problem> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Problem::unavailable("too many sign-ups and sign-ins at once: try again in a second")),
        }
    }

    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_key_gets_its_burst_then_waits_its_share_of_a_minute() {
        let limiter = Limiter::per_min(3);
        assert!((0..3).all(|_| limiter.check(&1u64).is_ok()));
        let wait = limiter.check(&1).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.check(&2).is_ok(), "another key has its own allowance");
        assert_eq!(limiter.keys(), 2);
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limiter = Limiter::per_min(0);
        assert!((0..10_000).all(|_| limiter.check(&1u64).is_ok()));
        assert_eq!(limiter.keys(), 0);
    }

    #[test]
    fn idle_keys_are_forgotten_and_busy_ones_kept() {
        let quota = Quota::with_period(Duration::from_millis(20)).unwrap().allow_burst(NonZeroU32::new(2).unwrap());
        let limiter = Limiter::with_quota(Some(quota));
        for key in 0..1_000u64 {
            limiter.check(&key).unwrap();
        }
        assert_eq!(limiter.keys(), 1_000);
        std::thread::sleep(Duration::from_millis(60));
        limiter.check(&7).unwrap();
        limiter.check(&7).unwrap();
        limiter.forget_idle();
        assert_eq!(limiter.keys(), 1, "only the key still short of its burst is kept");
        assert!(limiter.check(&7).is_err(), "and it keeps its count");
    }

    #[test]
    fn limits_count_per_address_and_per_fan() {
        let config = GatewayConfig {
            holds_per_address_per_min: 3,
            holds_per_fan_per_min: 2,
            signups_per_address_per_min: 1,
            ..GatewayConfig::default()
        };
        let limits = Limits::new(&config);
        let (a, b) = (Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert!(limits.check(Action::Hold, a, Some(1)).is_ok());
        assert!(limits.check(Action::Hold, a, Some(1)).is_ok());
        let refused = limits.check(Action::Hold, b, Some(1)).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.detail().contains("this fan"), "{refused}");
        assert!(limits.check(Action::Hold, a, Some(2)).is_ok(), "the address has a third");
        let refused = limits.check(Action::Hold, a, Some(3)).unwrap_err();
        assert!(refused.detail().contains("this address"), "{refused}");
        assert!(limits.check(Action::SignUp, a, None).is_ok(), "sign-ups have their own allowance");
        assert!(limits.check(Action::SignUp, a, None).is_err());
        assert!(limits.check(Action::Payment, a, Some(1)).is_ok(), "payments too");
    }

    #[test]
    fn sign_ins_are_counted_per_account() {
        let limits = Limits::new(&GatewayConfig { signins_per_email_per_min: 2, ..GatewayConfig::default() });
        assert!(limits.sign_in_to("ann@example.com").is_ok());
        assert!(limits.sign_in_to("ann@example.com").is_ok());
        let refused = limits.sign_in_to("ann@example.com").unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.sign_in_to("bob@example.com").is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a.into()), address_key(b.into()));
        assert_ne!(address_key(a.into()), address_key(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(address_key(mapped.into()), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    }

    #[tokio::test]
    async fn password_slots_bound_hashes_in_flight_and_refuse_after_the_wait() {
        let slots = PasswordSlots::new(2, Duration::from_millis(50));
        let first = slots.acquire().await.unwrap();
        let _second = slots.acquire().await.unwrap();
        assert_eq!(slots.available(), 0);
        let refused = slots.acquire().await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert!(slots.acquire().await.is_ok(), "a freed slot is taken again");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(PasswordSlots::new(0, Duration::ZERO).available(), (cores - 1).max(1));
    }
}
