//! Per-client limits of the dashboard: the request rate (`RateLimiter`, in qmoi-core: the
//! heartbeat listener has it too) and failed authentications.

pub use qmoi_core::ratelimit::{Bounded, MAX_CLIENTS, RateLimiter};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

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
    use qmoi_core::ratelimit::RateLimitConfig;

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
