//! Configuration loading shared by every binary.
//!
//! - TOML or JSON, chosen by the file extension (`.json` is JSON, anything else TOML), with
//!   the same schema for both, so the seed's JSON examples load as written.
//! - Raw config types use `#[serde(deny_unknown_fields)]`; parse errors name the file, the
//!   line and column (TOML and JSON both report them) and the key path.
//! - Strings that may come from the environment use [`EnvString`] / [`Secret`]: `${VAR}` is
//!   replaced while deserializing, so an unset variable is reported at its line and column.
//! - Semantic validation collects *all* problems into [`Problems`] before failing.

mod duration;
mod env;

pub use duration::ConfigDuration;
pub use env::{EnvString, Secret, expand_env, with_secrets_deferred};

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used. Binaries exit with status 2 on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem{}:\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems)]
    Invalid { path: PathBuf, problems: Problems },
}

/// One semantic problem in a config: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// All the problems found while validating one config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `key` is wrong, with a message that says what was expected.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { key: key.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// `Ok(())` when nothing was recorded, otherwise the error for `path`.
    pub fn into_result(self, path: &Path) -> Result<(), ConfigError> {
        if self.is_empty() { Ok(()) } else { Err(ConfigError::Invalid { path: path.to_path_buf(), problems: self }) }
    }

    /// Check a numeric threshold pair: both within `range`, and ordered so that
    /// `critical` is at least as bad as `warning` for the given direction.
    pub fn check_thresholds(&mut self, key: &str, warning: f64, critical: f64, below: bool, range: (f64, f64)) {
        for (name, v) in [("warning", warning), ("critical", critical)] {
            if !v.is_finite() || v < range.0 || v > range.1 {
                self.push(format!("{key}.{name}"), format!("must be between {} and {}, got '{v}'", range.0, range.1));
            }
        }
        let ordered = if below { critical <= warning } else { critical >= warning };
        if !ordered {
            let rel = if below { "at most" } else { "at least" };
            self.push(key.to_string(), format!("critical ({critical}) must be {rel} warning ({warning})"));
        }
    }

    /// A problem for each label of `labels` (at `key`) that is not a valid label.
    pub fn check_labels(&mut self, key: &str, labels: &crate::report::Labels) {
        for (k, v) in labels {
            if let Err(e) = crate::alerts::check_label(k, v) {
                self.push(format!("{key}.labels"), e);
            }
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - key '{}': {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// A config type that can check itself after parsing.
pub trait Validate {
    /// Record every problem found; keys are dotted paths (`disk.warning`).
    fn validate(&self, problems: &mut Problems);
}

/// Is this path read as JSON (by extension)?
pub fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Parse config text of the format given by `path`'s extension.
pub fn parse_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse { path: path.to_path_buf(), message };
    if is_json(path) {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let at = format!("line {}, column {}", inner.line(), inner.column());
            if key.is_empty() || key == "." {
                parse_err(format!("{at}: {inner}"))
            } else {
                parse_err(format!("{at}, key '{key}': {inner}"))
            }
        })
    } else {
        toml::from_str(text).map_err(|e| parse_err(toml_message(text, &e)))
    }
}

/// toml's own message already shows the line and a caret; prefix a one-line
/// "line L, column C" so the location is also there when the message is logged on one line.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end().to_string();
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim_end();
            format!("line {line}, column {col}: {msg}\n    {line} | {snippet}")
        }
        None => msg,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where a component's config is looked for in `dir` when none is named: `<id>.toml`, or
/// when there is none, the original QMOI's `<id>_config.json` (`master_monitor_config.json`,
/// `notification_config.json`), which load as written.
pub fn default_path(dir: &Path, id: &str) -> PathBuf {
    let toml = dir.join(format!("{id}.toml"));
    let seed = dir.join(format!("{id}_config.json"));
    if !toml.exists() && seed.exists() { seed } else { toml }
}

/// Read, parse and validate a config file.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = fs_err::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let cfg: T = parse_str(path, &text)?;
    let mut problems = Problems::new();
    cfg.validate(&mut problems);
    problems.into_result(path)?;
    Ok(cfg)
}

/// Load `explicit` if given (it must exist), else `default_path` if it exists, else the
/// type's defaults. Returns the path actually read, if any.
pub fn load_or_default<T: DeserializeOwned + Validate + Default>(
    explicit: Option<&Path>,
    default_path: &Path,
) -> Result<(T, Option<PathBuf>), ConfigError> {
    match explicit {
        Some(p) => load(p).map(|c| (c, Some(p.to_path_buf()))),
        None if default_path.exists() => load(default_path).map(|c| (c, Some(default_path.to_path_buf()))),
        None => {
            let cfg = T::default();
            let mut problems = Problems::new();
            cfg.validate(&mut problems);
            problems.into_result(Path::new("<built-in defaults>"))?;
            Ok((cfg, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        interval: Option<ConfigDuration>,
        #[serde(default)]
        #[allow(dead_code)]
        name: Option<EnvString>,
    }

    impl Validate for Sample {
        fn validate(&self, problems: &mut Problems) {
            if let Some(i) = self.interval
                && i.as_secs_f64() < 1.0
            {
                problems.push("interval", format!("must be at least 1 second, got '{i}'"));
            }
        }
    }

    #[test]
    fn toml_unknown_key_names_line_and_key() {
        let err = parse_str::<Sample>(Path::new("x.toml"), "interval = 5\nbogus = 1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("x.toml"), "{err}");
        assert!(err.contains("line 2, column 1"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn json_wrong_type_names_key_and_position() {
        let err = parse_str::<Sample>(Path::new("x.json"), "{\n  \"name\": 5\n}")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("key 'name'"), "{err}");
    }

    #[test]
    fn validation_collects_every_problem() {
        let mut p = Problems::new();
        p.check_thresholds("disk", 95.0, 85.0, false, (0.0, 100.0));
        p.check_thresholds("mem", 120.0, 130.0, false, (0.0, 100.0));
        assert_eq!(p.len(), 3, "{p}");
        let text = ConfigError::Invalid { path: "c.toml".into(), problems: p }.to_string();
        assert!(text.starts_with("c.toml: 3 problems:"), "{text}");
        assert!(text.contains("key 'mem.critical': must be between 0 and 100, got '130'"), "{text}");
    }

    #[test]
    fn load_reports_missing_file_with_path() {
        let err = load::<Sample>(Path::new("/nonexistent/q.toml")).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("/nonexistent/q.toml"));
    }
}
