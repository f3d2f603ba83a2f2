//! Bearer tokens and basic auth (argon2 password hashes), compared in constant time.
//!
//! Without configured tokens or users every client is an anonymous *reader*: the
//! dashboard can then only listen on loopback (enforced by config validation), and
//! admin actions (restart, acknowledge, silence) are refused, because any local user can
//! reach loopback while only the supervisor's user can use its control socket.

use crate::config::{AuthConfig, Role};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Authenticated(Identity),
    /// No credentials presented (and auth is configured).
    Missing,
    /// Credentials presented but wrong.
    Invalid,
}

pub struct Authenticator {
    tokens: Vec<(String, Vec<u8>, Role)>,
    users: Vec<(String, String, Role)>,
    /// Passwords already verified with argon2, so that a client sending basic auth on
    /// every request pays the (deliberately slow) hash once, not per request.
    verified: Mutex<HashMap<String, Vec<u8>>>,
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig) -> Self {
        Self {
            tokens: cfg.tokens.iter().map(|t| (t.name.clone(), t.token.expose().as_bytes().to_vec(), t.role)).collect(),
            users: cfg.users.iter().map(|u| (u.name.clone(), u.password_hash.expose().to_string(), u.role)).collect(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    /// Check an `Authorization` header value.
    pub async fn check(&self, header: Option<&str>) -> Outcome {
        if !self.enabled() {
            return Outcome::Authenticated(Identity { name: "anonymous".into(), role: Role::Read });
        }
        let Some(h) = header.map(str::trim) else { return Outcome::Missing };
        if let Some(token) = strip_prefix_ci(h, "bearer ") {
            let token = token.trim().as_bytes();
            // Compare against every token so the time does not tell which one matched.
            let mut found = None;
            for (name, t, role) in &self.tokens {
                if bool::from(t.as_slice().ct_eq(token)) {
                    found = Some(Identity { name: name.clone(), role: *role });
                }
            }
            return found.map_or(Outcome::Invalid, Outcome::Authenticated);
        }
        if let Some(b64) = strip_prefix_ci(h, "basic ") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return Outcome::Invalid };
            let Ok(text) = String::from_utf8(raw) else { return Outcome::Invalid };
            let Some((user, password)) = text.split_once(':') else { return Outcome::Invalid };
            let Some((name, hash, role)) = self.users.iter().find(|(n, _, _)| n == user).cloned() else {
                return Outcome::Invalid;
            };
            let cached = self
                .verified
                .lock()
                .ok()
                .and_then(|m| m.get(&name).map(|p| bool::from(p.as_slice().ct_eq(password.as_bytes()))));
            if cached == Some(true) {
                return Outcome::Authenticated(Identity { name, role });
            }
            let pw = password.to_string();
            let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &pw)).await.unwrap_or(false);
            if ok {
                if let Ok(mut m) = self.verified.lock() {
                    m.insert(name.clone(), password.as_bytes().to_vec());
                }
                return Outcome::Authenticated(Identity { name, role });
            }
            return Outcome::Invalid;
        }
        Outcome::Invalid
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
        assert_eq!(a.check(None).await, Outcome::Missing);
        assert_eq!(
            a.check(Some("Bearer 0123456789abcdef-read")).await,
            Outcome::Authenticated(Identity { name: "prom".into(), role: Role::Read })
        );
        assert_eq!(a.check(Some("Bearer 0123456789abcdef-reaX")).await, Outcome::Invalid);
        let basic = |u: &str, p: &str| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        };
        for _ in 0..2 {
            // second time from the cache
            assert_eq!(
                a.check(Some(&basic("ops", "correct horse"))).await,
                Outcome::Authenticated(Identity { name: "ops".into(), role: Role::Admin })
            );
        }
        assert_eq!(a.check(Some(&basic("ops", "wrong"))).await, Outcome::Invalid);
        assert_eq!(a.check(Some(&basic("nobody", "correct horse"))).await, Outcome::Invalid);
        assert_eq!(a.check(Some("Digest x")).await, Outcome::Invalid);
        Ok(())
    }
}
