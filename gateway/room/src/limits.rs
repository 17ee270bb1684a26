//! The join limits, per client address and per fan: a token bucket per key, in a map of bounded
//! size.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use model::{Millis, UserId};

/// Counts joins per key.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    per_min: u32,
    /// Keys tracked at once; when full, the map starts over (a flood of addresses then gets a
    /// fresh allowance each, which the proof of work still prices).
    keys_max: usize,
    buckets: HashMap<K, (f64, Millis)>,
}

/// Counts joins per client address.
pub type AddressLimiter = KeyedLimiter<IpAddr>;
/// Counts joins per fan.
pub type FanLimiter = KeyedLimiter<UserId>;

impl<K: Hash + Eq + Copy> KeyedLimiter<K> {
    pub fn new(per_min: u32, keys_max: usize) -> KeyedLimiter<K> {
        assert!(keys_max > 0, "a limiter tracks at least one key");
        KeyedLimiter { per_min, keys_max, buckets: HashMap::new() }
    }

    /// Whether `key` may join now (and takes one join from its allowance if so).
    pub fn allow(&mut self, key: K, now: Millis) -> bool {
        if self.per_min == 0 {
            return true;
        }
        if self.buckets.len() >= self.keys_max && !self.buckets.contains_key(&key) {
            self.buckets.clear();
        }
        let capacity = self.per_min as f64;
        let (tokens, at) = self.buckets.entry(key).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_sub(*at) as f64 * capacity / 60_000.0).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_then_waits() {
        let mut limiter = AddressLimiter::new(3, 10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a, 0)));
        assert!(!limiter.allow(a, 0));
        assert!(limiter.allow(b, 0), "another address has its own allowance");
        assert!(limiter.allow(a, 20_000), "a third of a minute gives one join back");
        assert!(!limiter.allow(a, 20_000));
    }

    #[test]
    fn a_fan_gets_its_allowance_whatever_its_address() {
        let mut limiter = FanLimiter::new(2, 10);
        assert!(limiter.allow(7, 0) && limiter.allow(7, 0));
        assert!(!limiter.allow(7, 0));
        assert!(limiter.allow(8, 0), "another fan has its own allowance");
        let mut off = FanLimiter::new(0, 1);
        assert!((0..1_000).all(|_| off.allow(7, 0)), "0 is no limit");
    }
}
