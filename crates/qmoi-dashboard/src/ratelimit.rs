//! Per-client token buckets: `per_second` sustained, `burst` at once; 429 beyond.

use crate::config::RateLimitConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients tracked at most; beyond it, idle (full) buckets are forgotten.
const MAX_CLIENTS: usize = 10_000;

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg, buckets: Mutex::new(HashMap::new()) }
    }

    /// May this client make a request now? `Err(seconds)` says when it may again.
    pub fn allow(&self, ip: IpAddr) -> Result<(), f64> {
        if !self.cfg.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_CLIENTS && !map.contains_key(&ip) {
            let (rate, burst) = (self.cfg.per_second, self.cfg.burst);
            map.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = map.entry(ip).or_insert((self.cfg.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.cfg.per_second).min(self.cfg.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / self.cfg.per_second)
        }
    }
}

/// Failed authentications per client: after `MAX_FAILURES` within `WINDOW`, the client is
/// refused (429) until the window has passed, so passwords and tokens cannot be guessed
/// at the speed of the general rate limit.
pub struct AuthFailures {
    map: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for AuthFailures {
    fn default() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }
}

impl AuthFailures {
    /// `Err(seconds)` while this client is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&ip) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err((WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
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
            f.failed(a);
        }
        assert!(f.check(a).is_ok());
        f.failed(a);
        assert!(f.check(a).is_err());
        assert!(f.check([127, 0, 0, 2].into()).is_ok());
    }
}
