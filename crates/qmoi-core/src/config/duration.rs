//! Durations in config: a number of seconds (`60`, `0.5`) or a string with a unit
//! (`"500ms"`, `"90s"`, `"5m"`, `"2h"`, `"7d"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Parse `"90s"`, `"5m"`, `"1.5h"`, `"250ms"`, `"7d"` or a bare number of seconds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| {
            format!("'{s}' is not a duration (examples: 30, \"500ms\", \"90s\", \"5m\", \"2h\", \"7d\")")
        })?;
        let mult = match unit.trim() {
            "" | "s" | "sec" | "secs" => 1.0,
            "ms" => 0.001,
            "m" | "min" | "mins" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            other => {
                return Err(format!("'{s}' has an unknown unit '{other}' (use ms, s, m, h or d)"));
            }
        };
        from_secs_f64(n * mult).ok_or_else(|| out_of_range(s))
    }
}

/// The longest duration a config may hold: 100 years. Longer values are surely typos, and
/// arithmetic on them (`3 × interval`, a deadline from now) would overflow.
pub const MAX_SECS: u64 = 100 * 365 * 86_400;

fn out_of_range(v: impl fmt::Display) -> String {
    format!("duration '{v}' is out of range (at most 100 years)")
}

fn from_secs_f64(secs: f64) -> Option<ConfigDuration> {
    if secs.is_finite() && (0.0..=MAX_SECS as f64).contains(&secs) {
        Some(ConfigDuration(Duration::from_secs_f64(secs)))
    } else {
        None
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            let s = self.0.as_secs();
            if s != 0 && s.is_multiple_of(86_400) {
                write!(f, "{}d", s / 86_400)
            } else if s != 0 && s.is_multiple_of(3600) {
                write!(f, "{}h", s / 3600)
            } else if s != 0 && s.is_multiple_of(60) {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        }
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: seconds as a number, or a string like \"90s\", \"5m\", \"2h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    return Err(E::custom(format!("duration must not be negative, got '{v}'")));
                }
                self.visit_u64(v.unsigned_abs())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v > MAX_SECS {
                    return Err(E::custom(out_of_range(v)));
                }
                Ok(ConfigDuration::from_secs(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v < 0.0 {
                    return Err(E::custom(format!("duration must not be negative, got '{v}'")));
                }
                from_secs_f64(v).ok_or_else(|| E::custom(out_of_range(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_numbers() {
        let p = |s| ConfigDuration::parse(s).map(|d| d.0);
        assert_eq!(p("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(p("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(p("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(p("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(p("12"), Ok(Duration::from_secs(12)));
        assert!(p("5 parsecs").is_err());
        assert!(p("fast").is_err());
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(ConfigDuration::from_secs(300).to_string(), "5m");
        assert_eq!(ConfigDuration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(ConfigDuration::from_secs(45).to_string(), "45s");
    }

    #[test]
    fn negative_number_is_rejected_with_value() {
        #[derive(Deserialize)]
        struct T {
            #[allow(dead_code)]
            d: ConfigDuration,
        }
        let e = toml::from_str::<T>("d = -5").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("must not be negative, got '-5'"), "{e}");
        // Regression: the largest TOML integer passed and overflowed `3 × interval`.
        let e = toml::from_str::<T>("d = 9223372036854775807").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("'9223372036854775807' is out of range (at most 100 years)"), "{e}");
        assert!(toml::from_str::<T>("d = \"36501d\"").is_err());
        assert!(toml::from_str::<T>("d = 3153600000").is_ok());
    }
}
