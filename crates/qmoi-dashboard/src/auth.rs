//! Bearer tokens and basic auth (argon2 password hashes), compared in constant time.
//!
//! Without configured tokens or users every client is an anonymous *reader*: the
//! dashboard can then only listen on loopback (enforced by config validation), and
//! admin actions (restart, acknowledge, silence) are refused, because any local user can
//! reach loopback while only the supervisor's user can use its control socket.

use crate::config::{AuthConfig, Role};
use crate::ratelimit::AuthFailures;
use base64::Engine as _;
use hmac::Mac as _;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Authenticated(Identity),
    /// No credentials presented (and auth is configured).
    Missing,
    /// Credentials presented but wrong.
    Invalid,
    /// This address failed too often: only credentials that need no password hashing
    /// (a token, a password verified before) are checked until then; seconds to wait.
    LockedOut(u64),
    /// Too many password verifications are running or waiting; try again shortly.
    Busy,
}

/// Password (argon2) verifications running at once. Each takes ~19 MiB and ~40 ms of a
/// core: 200 concurrent wrong passwords used to run 200 at once (RSS 0.15 → 3.95 GB).
const VERIFY_CONCURRENCY: usize = 2;
/// Verifications allowed to wait for a slot; beyond it a request gets 429 at once.
const VERIFY_QUEUE: usize = 8;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub struct Authenticator {
    /// Replaced whole by a reload ([`Authenticator::replace`]).
    creds: std::sync::RwLock<Arc<Credentials>>,
    /// Passwords already verified with argon2, so that a client sending basic auth on
    /// every request pays the (deliberately slow) hash once, not per request. Kept as a
    /// keyed digest (HMAC-SHA256 under a key made at start), never as the password.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    cache_key: [u8; 32],
    slots: tokio::sync::Semaphore,
    /// Verifications running or waiting.
    pending: AtomicUsize,
}

/// The tokens and users of `[dashboard.auth]`.
#[derive(PartialEq)]
struct Credentials {
    tokens: Vec<(String, Vec<u8>, Role)>,
    users: Vec<(String, String, Role)>,
    /// An argon2 hash of nothing in particular: an unknown user name is verified against
    /// it, so the answer takes as long as for a known one (no enumeration by timing).
    dummy_hash: Option<String>,
}

impl Credentials {
    fn of(cfg: &AuthConfig) -> Self {
        Self {
            tokens: cfg.tokens.iter().map(|t| (t.name.clone(), t.token.expose().as_bytes().to_vec(), t.role)).collect(),
            users: cfg.users.iter().map(|u| (u.name.clone(), u.password_hash.expose().to_string(), u.role)).collect(),
            dummy_hash: None,
        }
    }

    fn same(&self, other: &Self) -> bool {
        self.tokens == other.tokens && self.users == other.users
    }
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig) -> Self {
        let mut cache_key = [0u8; 32];
        {
            use argon2::password_hash::rand_core::RngCore as _;
            argon2::password_hash::rand_core::OsRng.fill_bytes(&mut cache_key);
        }
        Self {
            creds: std::sync::RwLock::new(Arc::new(Self::credentials(cfg))),
            verified: Mutex::new(HashMap::new()),
            cache_key,
            slots: tokio::sync::Semaphore::new(VERIFY_CONCURRENCY),
            pending: AtomicUsize::new(0),
        }
    }

    fn credentials(cfg: &AuthConfig) -> Credentials {
        let mut c = Credentials::of(cfg);
        if !c.users.is_empty() {
            c.dummy_hash = hash_password("qmoi-no-such-user").ok();
        }
        c
    }

    fn creds(&self) -> Arc<Credentials> {
        self.creds.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Take the tokens and users of `cfg` from the next request on (a reload); false
    /// when they are the same as now (nothing is replaced). Passwords verified before
    /// are verified again.
    pub fn replace(&self, cfg: &AuthConfig) -> bool {
        if self.creds().same(&Credentials::of(cfg)) {
            return false;
        }
        let new = Arc::new(Self::credentials(cfg));
        *self.creds.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new;
        if let Ok(mut m) = self.verified.lock() {
            m.clear();
        }
        true
    }

    pub fn enabled(&self) -> bool {
        let c = self.creds();
        !c.tokens.is_empty() || !c.users.is_empty()
    }

    fn digest(&self, name: &str, password: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(&self.cache_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Check an `Authorization` header value from `ip`. A valid token, or a password
    /// verified before, is always accepted, whatever this address's failures; a wrong one
    /// is counted in `failures`. A password that needs verifying counts as a failure from
    /// the moment its verification starts (forgiven when it succeeds), so a burst of
    /// concurrent guesses meets the lockout after ten, not after all have been hashed.
    pub async fn check(&self, header: Option<&str>, failures: &AuthFailures, ip: IpAddr) -> AuthOutcome {
        let creds = self.creds();
        if creds.tokens.is_empty() && creds.users.is_empty() {
            return AuthOutcome::Authenticated(Identity { name: "anonymous".into(), role: Role::Read });
        }
        let Some(h) = header.map(str::trim) else { return AuthOutcome::Missing };
        if let Some(token) = strip_prefix_ci(h, "bearer ") {
            let token = token.trim().as_bytes();
            // Compare against every token so the time does not tell which one matched.
            let mut found = None;
            for (name, t, role) in &creds.tokens {
                if bool::from(t.as_slice().ct_eq(token)) {
                    found = Some(Identity { name: name.clone(), role: *role });
                }
            }
            return match found {
                Some(id) => AuthOutcome::Authenticated(id),
                None => failures.failed(ip).map_or_else(AuthOutcome::LockedOut, |()| AuthOutcome::Invalid),
            };
        }
        let Some(b64) = strip_prefix_ci(h, "basic ") else {
            return failures.failed(ip).map_or_else(AuthOutcome::LockedOut, |()| AuthOutcome::Invalid);
        };
        let Some((user, password)) = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|t| t.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        else {
            return failures.failed(ip).map_or_else(AuthOutcome::LockedOut, |()| AuthOutcome::Invalid);
        };
        let user_entry = creds.users.iter().find(|(n, _, _)| *n == user).cloned();
        let digest = self.digest(&user, &password);
        if user_entry.is_some() {
            let cached = self.verified.lock().ok().and_then(|m| m.get(&user).map(|d| bool::from(d.ct_eq(&digest))));
            if cached == Some(true)
                && let Some((name, _, role)) = user_entry
            {
                return AuthOutcome::Authenticated(Identity { name, role });
            }
        }
        // The slow path: counted as a failure before it starts.
        if let Err(wait) = failures.failed(ip) {
            return AuthOutcome::LockedOut(wait);
        }
        if self.pending.fetch_add(1, Ordering::SeqCst) >= VERIFY_CONCURRENCY + VERIFY_QUEUE {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            failures.forgive(ip);
            return AuthOutcome::Busy;
        }
        let hash = match &user_entry {
            Some((_, hash, _)) => Some(hash.clone()),
            None => creds.dummy_hash.clone(),
        };
        let ok = match (self.slots.acquire().await, hash) {
            (Ok(_slot), Some(hash)) => {
                tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.unwrap_or(false)
            }
            _ => false,
        };
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The burst is over: give argon2's blocks back to the system.
            qmoi_core::mem::release_free_memory();
        }
        match user_entry {
            Some((name, _, role)) if ok => {
                failures.forgive(ip);
                if let Ok(mut m) = self.verified.lock() {
                    m.insert(name.clone(), digest);
                }
                AuthOutcome::Authenticated(Identity { name, role })
            }
            _ => AuthOutcome::Invalid,
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// Verify `password` against an argon2 PHC string.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Hash a password for `dashboard.auth.users[].password_hash` (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TokenEntry, UserEntry};
    use qmoi_core::config::Secret;

    #[tokio::test]
    async fn tokens_and_basic_users() -> Result<(), String> {
        let hash = hash_password("correct horse")?;
        let cfg = AuthConfig {
            tokens: vec![TokenEntry {
                name: "prom".into(),
                token: Secret::new("0123456789abcdef-read"),
                role: Role::Read,
            }],
            users: vec![UserEntry { name: "ops".into(), password_hash: Secret::new(hash), role: Role::Admin }],
        };
        let a = Authenticator::new(&cfg);
        let f = AuthFailures::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(a.check(None, &f, ip).await, AuthOutcome::Missing);
        assert_eq!(
            a.check(Some("Bearer 0123456789abcdef-read"), &f, ip).await,
            AuthOutcome::Authenticated(Identity { name: "prom".into(), role: Role::Read })
        );
        assert_eq!(a.check(Some("Bearer 0123456789abcdef-reaX"), &f, ip).await, AuthOutcome::Invalid);
        let basic = |u: &str, p: &str| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        };
        for _ in 0..2 {
            // second time from the cache
            assert_eq!(
                a.check(Some(&basic("ops", "correct horse")), &f, ip).await,
                AuthOutcome::Authenticated(Identity { name: "ops".into(), role: Role::Admin })
            );
        }
        assert_eq!(a.check(Some(&basic("ops", "wrong")), &f, ip).await, AuthOutcome::Invalid);
        assert_eq!(a.check(Some(&basic("nobody", "correct horse")), &f, ip).await, AuthOutcome::Invalid);
        assert_eq!(a.check(Some("Digest x"), &f, ip).await, AuthOutcome::Invalid);
        Ok(())
    }

    /// Regression: ten wrong tokens locked out every client of the address, valid tokens
    /// included; and concurrent wrong passwords were all hashed at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn valid_credentials_pass_a_lockout_and_guesses_are_bounded() -> Result<(), String> {
        let hash = hash_password("correct horse")?;
        let cfg = AuthConfig {
            tokens: vec![TokenEntry {
                name: "admin".into(),
                token: Secret::new("0123456789abcdef-admin"),
                role: Role::Admin,
            }],
            users: vec![UserEntry { name: "ops".into(), password_hash: Secret::new(hash), role: Role::Admin }],
        };
        let a = std::sync::Arc::new(Authenticator::new(&cfg));
        let f = std::sync::Arc::new(AuthFailures::default());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let basic = |u: &str, p: &str| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        };
        // A password verified once is cached before the lockout.
        assert!(matches!(a.check(Some(&basic("ops", "correct horse")), &f, ip).await, AuthOutcome::Authenticated(_)));
        for _ in 0..crate::ratelimit::MAX_FAILURES {
            assert_eq!(a.check(Some("Bearer wrong-wrong-wrong-wrong"), &f, ip).await, AuthOutcome::Invalid);
        }
        assert!(matches!(a.check(Some("Bearer wrong-wrong-wrong-wrong"), &f, ip).await, AuthOutcome::LockedOut(_)));
        assert!(matches!(a.check(Some("Bearer 0123456789abcdef-admin"), &f, ip).await, AuthOutcome::Authenticated(_)));
        assert!(matches!(a.check(Some(&basic("ops", "correct horse")), &f, ip).await, AuthOutcome::Authenticated(_)));
        assert!(matches!(a.check(Some(&basic("ops", "guess")), &f, ip).await, AuthOutcome::LockedOut(_)));

        // 50 concurrent guesses from a fresh address: at most MAX_FAILURES are verified.
        let other: IpAddr = [127, 0, 0, 9].into();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let (a, f, h) = (a.clone(), f.clone(), basic("ops", &format!("guess {i}")));
            set.spawn(async move { a.check(Some(&h), &f, other).await });
        }
        let outcomes = set.join_all().await;
        let verified = outcomes.iter().filter(|o| **o == AuthOutcome::Invalid).count();
        assert!(verified <= crate::ratelimit::MAX_FAILURES as usize, "{outcomes:?}");
        assert!(
            outcomes.iter().all(|o| matches!(o, AuthOutcome::Invalid | AuthOutcome::LockedOut(_) | AuthOutcome::Busy))
        );
        Ok(())
    }
}
