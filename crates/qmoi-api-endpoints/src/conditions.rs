//! Conditions on a probe result, written in the config as `"<subject> <op> <value>"`:
//!
//! | subject | meaning | example |
//! |---|---|---|
//! | `status` | HTTP status code | `status == 200`, `status in [200, 204]`, `status < 500` |
//! | `response_time` | latency, compared in milliseconds (`300ms`, `1.5s`) | `response_time < 300ms` |
//! | `body` | the response body (read up to `max_body_bytes`) | `body contains "ok"`, `body matches "^v[0-9]+"` |
//! | `header.<Name>` | a response header (case-insensitive name) | `header.Content-Type contains "json"`, `header.X-Id exists` |
//! | `$.<path>` | a JSON value in the body; `.length` of an array, object or string | `$.status == "up"`, `$.items.length > 0`, `$.data[0].id exists` |
//! | `cert_expiry` | days until the certificate expires (`14d`, or a number of days) | `cert_expiry > 14d` |
//!
//! Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in [..]`, `contains`, `matches` (regex),
//! `exists`. A failing condition is reported with what was seen:
//! `status == 200 failed: status was 503`.

use regex::Regex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Status,
    ResponseTime,
    Body,
    Header(String),
    Json(Vec<Seg>),
    CertExpiry,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Matches,
    Exists,
}

#[derive(Debug, Clone)]
enum Rhs {
    None,
    Value(serde_json::Value),
    List(Vec<serde_json::Value>),
    Regex(Regex),
}

/// One parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    subject: Subject,
    op: Op,
    rhs: Rhs,
}

/// What a probe saw, for conditions to look at.
#[derive(Debug, Default)]
pub struct Observation<'a> {
    pub status: Option<u16>,
    pub latency: Duration,
    pub body: Option<&'a str>,
    pub headers: Vec<(String, String)>,
    pub cert_expiry_days: Option<f64>,
}

fn parse_number_with_unit(s: &str, subject: &Subject) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    match subject {
        // Milliseconds.
        Subject::ResponseTime => match unit {
            "" | "ms" => Some(n),
            "s" => Some(n * 1000.0),
            "m" => Some(n * 60_000.0),
            _ => None,
        },
        // Days.
        Subject::CertExpiry => match unit {
            "" | "d" => Some(n),
            "h" => Some(n / 24.0),
            _ => None,
        },
        _ => unit.is_empty().then_some(n),
    }
}

fn parse_path(p: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut rest = p.strip_prefix('$').ok_or_else(|| format!("a JSON path starts with '$', got '{p}'"))?;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(format!("empty key in JSON path '{p}'"));
            }
            segs.push(Seg::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("unclosed '[' in JSON path '{p}'"))?;
            let idx =
                r[..end].trim().parse().map_err(|_| format!("'[{}]' is not an index in JSON path '{p}'", &r[..end]))?;
            segs.push(Seg::Index(idx));
            rest = &r[end + 1..];
        } else {
            return Err(format!("unexpected '{rest}' in JSON path '{p}'"));
        }
    }
    Ok(segs)
}

impl Condition {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (subj, rest) =
            t.split_once(char::is_whitespace).ok_or_else(|| format!("'{t}' is not '<subject> <op> <value>'"))?;
        let rest = rest.trim_start();
        let (op_s, rhs_s) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let rhs_s = rhs_s.trim();
        let subject = match subj {
            "status" => Subject::Status,
            "response_time" => Subject::ResponseTime,
            "body" => Subject::Body,
            "cert_expiry" => Subject::CertExpiry,
            s if s.starts_with("header.") && s.len() > 7 => Subject::Header(s[7..].to_ascii_lowercase()),
            s if s.starts_with('$') => Subject::Json(parse_path(s)?),
            other => {
                return Err(format!(
                    "unknown subject '{other}' in '{t}' (use status, response_time, body, header.<Name>, $.<json path>, cert_expiry)"
                ));
            }
        };
        let op = match op_s {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "in" => Op::In,
            "contains" => Op::Contains,
            "matches" => Op::Matches,
            "exists" => Op::Exists,
            other => {
                return Err(format!(
                    "unknown operator '{other}' in '{t}' (use == != < <= > >= in contains matches exists)"
                ));
            }
        };
        let bad = |why: &str| format!("'{t}': {why}");
        let rhs = match op {
            Op::Exists => {
                if !rhs_s.is_empty() {
                    return Err(bad("'exists' takes no value"));
                }
                Rhs::None
            }
            Op::Matches => {
                let s: String = serde_json::from_str(rhs_s).map_err(|_| bad("'matches' needs a quoted regex"))?;
                Rhs::Regex(Regex::new(&s).map_err(|e| bad(&format!("bad regex: {e}")))?)
            }
            Op::In => {
                let v: serde_json::Value =
                    serde_json::from_str(rhs_s).map_err(|_| bad("'in' needs a list like [200, 204]"))?;
                match v {
                    serde_json::Value::Array(a) => Rhs::List(a),
                    _ => return Err(bad("'in' needs a list like [200, 204]")),
                }
            }
            _ if rhs_s.is_empty() => return Err(bad("a value is missing")),
            _ => match serde_json::from_str::<serde_json::Value>(rhs_s) {
                Ok(v) if !matches!(subject, Subject::ResponseTime | Subject::CertExpiry) || v.is_number() => {
                    Rhs::Value(v)
                }
                _ => match parse_number_with_unit(rhs_s, &subject) {
                    Some(n) => Rhs::Value(serde_json::json!(n)),
                    None => return Err(bad(&format!("'{rhs_s}' is not a value (numbers, \"strings\", 300ms, 14d)"))),
                },
            },
        };
        let numeric_only = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        if numeric_only && !matches!(&rhs, Rhs::Value(v) if v.is_number()) {
            return Err(bad("<, <=, > and >= need a number"));
        }
        if matches!(op, Op::Contains) && !matches!(&rhs, Rhs::Value(serde_json::Value::String(_))) {
            return Err(bad("'contains' needs a quoted string"));
        }
        Ok(Self { text: t.to_string(), subject, op, rhs })
    }

    /// `Ok` when the condition holds, else why not (what was seen).
    pub fn check(&self, o: &Observation<'_>, json: &mut Option<Option<serde_json::Value>>) -> Result<(), String> {
        let seen: Option<serde_json::Value> = match &self.subject {
            Subject::Status => o.status.map(|s| serde_json::json!(s)),
            Subject::ResponseTime => Some(serde_json::json!(o.latency.as_secs_f64() * 1000.0)),
            Subject::Body => o.body.map(|b| serde_json::json!(b)),
            Subject::Header(name) => {
                o.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| serde_json::json!(v))
            }
            Subject::CertExpiry => o.cert_expiry_days.map(|d| serde_json::json!(d)),
            Subject::Json(path) => {
                let doc = json.get_or_insert_with(|| o.body.and_then(|b| serde_json::from_str(b).ok()));
                doc.as_ref().and_then(|d| resolve(d, path))
            }
        };
        let describe = |v: &Option<serde_json::Value>| match (v, &self.subject) {
            (None, Subject::Json(_)) if json.as_ref().is_some_and(Option::is_none) => {
                "the body is not JSON".to_string()
            }
            (None, _) => "absent".to_string(),
            (Some(serde_json::Value::String(s)), _) => format!("'{}'", qmoi_core::human::clip(s, 80)),
            (Some(v), Subject::ResponseTime) => format!("{:.0} ms", v.as_f64().unwrap_or(f64::NAN)),
            (Some(v), Subject::CertExpiry) => format!("{:.1} days", v.as_f64().unwrap_or(f64::NAN)),
            (Some(v), _) => qmoi_core::human::clip(&v.to_string(), 80),
        };
        let holds = match (&self.op, &seen, &self.rhs) {
            (Op::Exists, s, _) => s.is_some() && !matches!(s, Some(serde_json::Value::Null)),
            (_, None, _) => false,
            (Op::Eq, Some(s), Rhs::Value(v)) => json_eq(s, v),
            (Op::Ne, Some(s), Rhs::Value(v)) => !json_eq(s, v),
            (Op::In, Some(s), Rhs::List(l)) => l.iter().any(|v| json_eq(s, v)),
            (Op::Contains, Some(serde_json::Value::String(s)), Rhs::Value(serde_json::Value::String(v))) => {
                s.contains(v.as_str())
            }
            (Op::Contains, Some(serde_json::Value::Array(a)), Rhs::Value(v)) => a.iter().any(|x| json_eq(x, v)),
            (Op::Matches, Some(serde_json::Value::String(s)), Rhs::Regex(r)) => r.is_match(s),
            (Op::Lt | Op::Le | Op::Gt | Op::Ge, Some(s), Rhs::Value(v)) => match (s.as_f64(), v.as_f64()) {
                (Some(a), Some(b)) => match self.op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                },
                _ => false,
            },
            _ => false,
        };
        if holds {
            Ok(())
        } else {
            let what = match &self.subject {
                Subject::Status => "status",
                Subject::ResponseTime => "response time",
                Subject::Body => "body",
                Subject::Header(_) => "header",
                Subject::Json(_) => "value",
                Subject::CertExpiry => "certificate expiry",
            };
            Err(format!("{} failed: {what} was {}", self.text, describe(&seen)))
        }
    }
}

/// Numbers compare by value (200 == 200.0); everything else structurally.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn resolve(doc: &serde_json::Value, path: &[Seg]) -> Option<serde_json::Value> {
    let mut cur = doc;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match (seg, cur) {
            (Seg::Key(k), serde_json::Value::Object(m)) if m.contains_key(k) => cur = &m[k],
            (Seg::Key(k), v) if last && k == "length" => {
                return match v {
                    serde_json::Value::Array(a) => Some(serde_json::json!(a.len())),
                    serde_json::Value::Object(o) => Some(serde_json::json!(o.len())),
                    serde_json::Value::String(s) => Some(serde_json::json!(s.chars().count())),
                    _ => None,
                };
            }
            (Seg::Index(n), serde_json::Value::Array(a)) if *n < a.len() => cur = &a[*n],
            _ => return None,
        }
    }
    Some(cur.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cond: &str, o: &Observation<'_>) -> Result<(), String> {
        let c = Condition::parse(cond)?;
        c.check(o, &mut None)
    }

    #[test]
    fn status_latency_body_and_headers() {
        let o = Observation {
            status: Some(503),
            latency: Duration::from_millis(420),
            body: Some("{\"status\":\"down\",\"items\":[1,2],\"data\":[{\"id\":7}]}"),
            headers: vec![("content-type".into(), "application/json".into())],
            cert_expiry_days: Some(10.5),
        };
        assert_eq!(check("status == 200", &o), Err("status == 200 failed: status was 503".into()));
        assert!(check("status < 600", &o).is_ok());
        assert!(check("status in [500, 503]", &o).is_ok());
        assert_eq!(
            check("response_time < 300ms", &o),
            Err("response_time < 300ms failed: response time was 420 ms".into())
        );
        assert!(check("response_time < 1s", &o).is_ok());
        assert!(check("body contains \"down\"", &o).is_ok());
        assert!(check("body matches \"^\\\\{\"", &o).is_ok());
        assert!(check("header.Content-Type contains \"json\"", &o).is_ok());
        assert!(check("header.X-Missing exists", &o).is_err());
        assert_eq!(check("$.status == \"up\"", &o), Err("$.status == \"up\" failed: value was 'down'".into()));
        assert!(check("$.items.length > 1", &o).is_ok());
        assert!(check("$.data[0].id == 7", &o).is_ok());
        assert!(check("$.data[3].id exists", &o).is_err());
        assert_eq!(
            check("cert_expiry > 14d", &o),
            Err("cert_expiry > 14d failed: certificate expiry was 10.5 days".into())
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_said_so() {
        let o = Observation { body: Some("<html>"), ..Observation::default() };
        assert_eq!(
            check("$.status == \"up\"", &o),
            Err("$.status == \"up\" failed: value was the body is not JSON".into())
        );
    }

    #[test]
    fn bad_conditions_are_explained() {
        for (c, why) in [
            ("statuss == 200", "unknown subject 'statuss'"),
            ("status === 200", "unknown operator '==='"),
            ("status ==", "a value is missing"),
            ("response_time < fast", "is not a value"),
            ("body matches \"(\"", "bad regex"),
            ("status in 200", "needs a list"),
            ("status > \"x\"", "need a number"),
            ("$.a[x] exists", "is not an index"),
        ] {
            let e = Condition::parse(c).err().unwrap_or_default();
            assert!(e.contains(why), "{c}: {e}");
        }
    }
}
