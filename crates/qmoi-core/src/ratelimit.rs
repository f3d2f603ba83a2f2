//! The token bucket: `capacity` at once, refilled at `rate` tokens a second. Used per
//! channel by the notifier, and per client address by [`RateLimiter`] (the dashboard, the
//! heartbeat listener). Time is the caller's clock in seconds (`now`), so the bucket is
//! tested without sleeping.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Per-client token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained requests per second per client address.
    pub per_second: f64,
    /// Requests allowed in a burst.
    pub burst: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { enabled: true, per_second: 50.0, burst: 200.0 }
    }
}

/// A token bucket; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: f64,
}

impl TokenBucket {
    /// A full bucket at `now`. A rate of 0 or less never refills.
    pub fn full(capacity: f64, rate: f64, now: f64) -> Self {
        Self { tokens: capacity, capacity, rate: rate.max(0.0), last: now }
    }

    fn refill(&mut self, now: f64) {
        let elapsed = (now - self.last).max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Take one token: `Err(seconds)` until one is there (infinite when it never refills).
    pub fn take(&mut self, now: f64) -> Result<(), f64> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err((1.0 - self.tokens) / self.rate)
        } else {
            Err(f64::INFINITY)
        }
    }

    /// Would the bucket be full at `now`? (Then it is the same as no bucket.)
    pub fn full_at(&self, now: f64) -> bool {
        self.tokens + (now - self.last).max(0.0) * self.rate >= self.capacity
    }
}

/// A limit per client address (see [`RateLimitConfig`]), over at most [`MAX_CLIENTS`]
/// addresses.
pub struct RateLimiter {
    /// Replaced by a reload ([`RateLimiter::set`]).
    cfg: std::sync::RwLock<RateLimitConfig>,
    buckets: Mutex<Bounded<TokenBucket>>,
}

/// Clients tracked at most by each map.
pub const MAX_CLIENTS: usize = 10_000;

/// A map of at most [`MAX_CLIENTS`] addresses. When it is full, entries that no longer
/// matter are swept (at most once a second: a sweep is a scan), and if that frees
/// nothing an arbitrary entry gives way, so neither memory nor time per request grows
/// with the number of addresses a client can use.
pub struct Bounded<V> {
    pub map: HashMap<IpAddr, V>,
    last_sweep: Option<Instant>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Bounded<V> {
    pub fn new() -> Self {
        Self { map: HashMap::new(), last_sweep: None }
    }

    /// Make room for `ip`; `keep` says which entries still matter.
    pub fn make_room(&mut self, ip: IpAddr, keep: impl FnMut(&IpAddr, &mut V) -> bool) {
        if self.map.len() < MAX_CLIENTS || self.map.contains_key(&ip) {
            return;
        }
        if self.last_sweep.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            self.last_sweep = Some(Instant::now());
            self.map.retain(keep);
        }
        if self.map.len() >= MAX_CLIENTS
            && let Some(k) = self.map.keys().next().copied()
        {
            self.map.remove(&k);
        }
    }
}

/// Seconds on a monotonic clock (since the first call), for the buckets.
fn clock() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg: std::sync::RwLock::new(cfg), buckets: Mutex::new(Bounded::new()) }
    }

    /// Limit with `cfg` from now on (a reload); false when it is the same. Clients keep
    /// their buckets (a burst allowance is refilled at the new rate).
    pub fn set(&self, cfg: RateLimitConfig) -> bool {
        let mut c = self.cfg.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *c == cfg {
            return false;
        }
        *c = cfg;
        true
    }

    /// How many clients are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.len()
    }

    /// May this client make a request now? `Err(seconds)` says when it may again.
    pub fn allow(&self, ip: IpAddr) -> Result<(), f64> {
        let cfg = *self.cfg.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !cfg.enabled {
            return Ok(());
        }
        let now = clock();
        let (rate, burst) = (cfg.per_second, cfg.burst);
        let mut b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A bucket that has refilled is the same as no bucket.
        b.make_room(ip, |_, bucket| !bucket.full_at(now));
        b.map.entry(ip).or_insert_with(|| TokenBucket::full(burst, rate, now)).take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::full(3.0, 1.0, 0.0);
        assert!((0..3).all(|_| b.take(0.0).is_ok()), "the burst");
        let wait = b.take(0.0).err().unwrap_or_default();
        assert!((wait - 1.0).abs() < 1e-9, "{wait}");
        assert!(b.take(0.5).is_err());
        assert!(b.take(1.0).is_ok(), "one token a second");
        assert!(!b.full_at(1.0) && b.full_at(4.0));
        assert!(b.take(100.0).is_ok() && b.take(100.0).is_ok() && b.take(100.0).is_ok() && b.take(100.0).is_err());
        // A clock that goes back refills nothing and takes nothing away.
        let mut b = TokenBucket::full(1.0, 1.0, 10.0);
        assert!(b.take(10.0).is_ok());
        assert!(b.take(5.0).is_err() && b.take(10.5).is_err() && b.take(11.0).is_ok());
        let mut never = TokenBucket::full(1.0, 0.0, 0.0);
        assert!(never.take(0.0).is_ok());
        assert_eq!(never.take(1e9), Err(f64::INFINITY));
    }
}
