//! The per-address join limit: a token bucket per client address, in a map of bounded size.

use std::collections::HashMap;
use std::net::IpAddr;

use model::Millis;

/// Counts joins per client address.
#[derive(Debug)]
pub struct AddressLimiter {
    per_min: u32,
    /// Addresses tracked at once; when full, the map starts over (a flood of addresses then gets
    /// a fresh allowance each, which the proof of work still prices).
    addresses_max: usize,
    buckets: HashMap<IpAddr, (f64, Millis)>,
}

impl AddressLimiter {
    pub fn new(per_min: u32, addresses_max: usize) -> AddressLimiter {
        assert!(addresses_max > 0, "a limiter tracks at least one address");
        AddressLimiter { per_min, addresses_max, buckets: HashMap::new() }
    }

    /// Whether `address` may join now (and takes one join from its allowance if so).
    pub fn allow(&mut self, address: IpAddr, now: Millis) -> bool {
        if self.per_min == 0 {
            return true;
        }
        if self.buckets.len() >= self.addresses_max && !self.buckets.contains_key(&address) {
            self.buckets.clear();
        }
        let capacity = self.per_min as f64;
        let (tokens, at) = self.buckets.entry(address).or_insert((capacity, now));
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
}
