//! Per-client token buckets: `per_second` sustained, `burst` at once; 429 beyond.

use crate::config::RateLimitConfig;
use qmoi_core::ratelimit::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<Bounded<TokenBucket>>,
}

/// Clients tracked at most by each map.
pub const MAX_CLIENTS: usize = 10_000;

/// A map of at most [`MAX_CLIENTS`] addresses. When it is full, entries that no longer
/// matter are swept (at most once a second: a sweep is a scan), and if that frees
/// nothing an arbitrary entry gives way, so neither memory nor time per request grows
/// with the number of addresses a client can use.
struct Bounded<V> {
    map: HashMap<IpAddr, V>,
    last_sweep: Option<Instant>,
}

impl<V> Bounded<V> {
    fn new() -> Self {
        Self { map: HashMap::new(), last_sweep: None }
    }

    /// Make room for `ip`; `keep` says which entries still matter.
    fn make_room(&mut self, ip: IpAddr, keep: impl FnMut(&IpAddr, &mut V) -> bool) {
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
        Self { cfg, buckets: Mutex::new(Bounded::new()) }
    }

    /// How many clients are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.len()
    }

    /// May this client make a request now? `Err(seconds)` says when it may again.
    pub fn allow(&self, ip: IpAddr) -> Result<(), f64> {
        if !self.cfg.enabled {
            return Ok(());
        }
        let now = clock();
        let (rate, burst) = (self.cfg.per_second, self.cfg.burst);
        let mut b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A bucket that has refilled is the same as no bucket.
        b.make_room(ip, |_, bucket| !bucket.full_at(now));
        b.map.entry(ip).or_insert_with(|| TokenBucket::full(burst, rate, now)).take(now)
    }
}

/// Failed authentications per client: after `MAX_FAILURES` within `WINDOW`, the client's
/// *failing* attempts are refused (429) until the window has passed, so passwords and
/// tokens cannot be guessed at the speed of the general rate limit. Valid credentials are
/// never refused by it (see `Authenticator::check`).
pub struct AuthFailures {
    map: Mutex<Bounded<(u32, Instant)>>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for AuthFailures {
    fn default() -> Self {
        Self { map: Mutex::new(Bounded::new()) }
    }
}

impl AuthFailures {
    /// `Err(seconds)` while this client is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let b = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match b.map.get(&ip) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err((WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Count one failure (or one attempt that may fail: see [`Self::forgive`]), unless the
    /// client is locked out already: then `Err(seconds)` and nothing is counted. Checking
    /// and counting under one lock, so concurrent attempts cannot all slip past the check.
    pub fn failed(&self, ip: IpAddr) -> Result<(), u64> {
        let mut b = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        b.make_room(ip, |_, (_, since)| since.elapsed() < WINDOW);
        let e = b.map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        if e.0 >= MAX_FAILURES {
            return Err((WINDOW - e.1.elapsed()).as_secs().max(1));
        }
        e.0 += 1;
        Ok(())
    }

    /// Take back one counted attempt that turned out to succeed (or never ran).
    pub fn forgive(&self, ip: IpAddr) {
        let mut b = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = b.map.get_mut(&ip) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    /// How many clients are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_client() {
        let r = RateLimiter::new(RateLimitConfig { enabled: true, per_second: 1.0, burst: 3.0 });
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!((0..3).all(|_| r.allow(a).is_ok()));
        assert!(r.allow(a).is_err());
        assert!(r.allow(b).is_ok(), "another client has its own bucket");
    }

    #[test]
    fn repeated_auth_failures_lock_the_client_out() {
        let f = AuthFailures::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(f.failed(a).is_ok());
        }
        assert!(f.check(a).is_ok());
        assert!(f.failed(a).is_ok());
        assert!(f.check(a).is_err());
        assert!(f.failed(a).is_err(), "a locked-out client's failures are refused, not counted");
        assert!(f.check([127, 0, 0, 2].into()).is_ok());
    }

    /// Regression: both maps grew without bound under many client addresses.
    #[test]
    fn many_addresses_keep_both_maps_bounded() {
        let r = RateLimiter::new(RateLimitConfig { enabled: true, per_second: 0.001, burst: 2.0 });
        let f = AuthFailures::default();
        for i in 0..(MAX_CLIENTS as u32 + 5_000) {
            let ip: IpAddr = std::net::Ipv6Addr::from(u128::from(i) + 1).into();
            let _ = r.allow(ip);
            let _ = f.failed(ip);
        }
        assert!(r.tracked() <= MAX_CLIENTS, "{}", r.tracked());
        assert!(f.tracked() <= MAX_CLIENTS, "{}", f.tracked());
    }
}
