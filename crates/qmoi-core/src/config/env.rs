//! `${ENV_VAR}` substitution and secrets.
//!
//! Substitution happens while deserializing, inside the string value, so an unset variable
//! is reported by the parser at the line and column of the value that names it.
//! `$${` is a literal `${`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Replace every `${NAME}` in `s` with the environment variable `NAME`.
/// `${NAME:-default}` uses `default` when `NAME` is unset or empty.
pub fn expand_env(s: &str) -> Result<String, String> {
    expand_with(s, |k| std::env::var(k).ok())
}

fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body.find('}').ok_or_else(|| format!("unterminated '${{' in '{s}' (write '$${{' for a literal)"))?;
        let spec = &body[..end];
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("'${{{spec}}}' is not a valid environment variable reference"));
        }
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!("environment variable '{name}' is not set (referenced as '${{{name}}}')"));
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A config string with `${ENV}` expanded.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct EnvString(pub String);

impl EnvString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EnvString {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw).map(EnvString).map_err(serde::de::Error::custom)
    }
}

impl Serialize for EnvString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A secret from config (password, token, webhook URL). Expanded like [`EnvString`], but
/// its `Debug`, `Display` and `Serialize` all print `***`, so it cannot leak into logs,
/// reports, API responses or error messages by accident. Use [`Secret::expose`] where the
/// real value is needed (to authenticate), and nowhere else.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret {
    value: String,
    /// Read under [`with_secrets_deferred`] with its `${ENV}` unset: the value is empty
    /// and must not be used or validated.
    deferred: bool,
}

thread_local! {
    static DEFER_SECRETS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (a config load) with secrets whose `${ENV}` is unset read as *deferred*
/// instead of failing. For commands that only talk to the running supervisor
/// (`status`, `restart-component`): the operator's shell need not hold the dashboard's
/// secrets to use them.
pub fn with_secrets_deferred<R>(f: impl FnOnce() -> R) -> R {
    let before = DEFER_SECRETS.with(|d| d.replace(true));
    let r = f();
    DEFER_SECRETS.with(|d| d.set(before));
    r
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self { value: s.into(), deferred: false }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Its `${ENV}` was unset while secrets were deferred: nothing to check or use.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match expand_env(&raw) {
            Ok(value) => Ok(Secret { value, deferred: false }),
            // Only an unset variable is deferred: with every variable set, it would expand.
            Err(_) if DEFER_SECRETS.with(std::cell::Cell::get) && expand_with(&raw, |_| Some("set".into())).is_ok() => {
                Ok(Secret { value: String::new(), deferred: true })
            }
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("db-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_literals() {
        assert_eq!(expand_with("x ${HOST}:5432", env), Ok("x db-1:5432".into()));
        assert_eq!(expand_with("${MISSING:-fallback}", env), Ok("fallback".into()));
        assert_eq!(expand_with("${EMPTY:-d}", env), Ok("d".into()));
        assert_eq!(expand_with("cost $5 $${HOST}", env), Ok("cost $5 ${HOST}".into()));
    }

    #[test]
    fn unset_variable_is_named() {
        let e = expand_with("${NOPE}", env).err().unwrap_or_default();
        assert!(e.contains("'NOPE' is not set"), "{e}");
        assert!(expand_with("${bad name}", env).is_err());
        assert!(expand_with("${OPEN", env).is_err());
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"***\""));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn unset_secrets_are_deferred_only_when_asked() {
        #[derive(Deserialize)]
        struct T {
            s: Secret,
        }
        let text = "s = \"${QMOI_TEST_SURELY_UNSET_SECRET}\"";
        assert!(toml::from_str::<T>(text).is_err());
        let t = with_secrets_deferred(|| toml::from_str::<T>(text)).map_err(|e| e.to_string());
        assert!(t.as_ref().is_ok_and(|t| t.s.is_deferred() && t.s.is_empty()), "{:?}", t.err());
        // A malformed reference is still an error, and the mode ends with the closure.
        assert!(with_secrets_deferred(|| toml::from_str::<T>("s = \"${OPEN\"")).is_err());
        assert!(toml::from_str::<T>(text).is_err());
    }
}
