//! The token bucket: `capacity` at once, refilled at `rate` tokens a second. Used per
//! client by the dashboard and per channel by the notifier. Time is the caller's clock in
//! seconds (`now`), so the bucket is tested without sleeping.

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
