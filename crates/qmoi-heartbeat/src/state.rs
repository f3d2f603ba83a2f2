//! What a check's pings say, and what that makes its status: pure functions of the pings
//! and the clock, tested without a server or a database.
//!
//! A run is a `start` ping followed by its end (a success, `fail`, or an exit status),
//! paired by `rid` when the job sends one (overlapping runs), else the latest start.
//! The status, in order of precedence: **failed** (the last end was a failure),
//! **running too long** (a start older than `max_duration` without its end), **late**
//! (no success by the schedule's next time plus `grace`), **ran too often** (the last
//! success came sooner than `min_interval` after the one before), **ran too short** (the
//! last success came sooner than `min_duration` after its start); else ok. A check that
//! never pinged is ok and says it waits for its first ping (as Healthchecks' "new").

use crate::config::CheckConfig;
use crate::schedule::Schedule;
use chrono::{DateTime, Utc};
use qmoi_core::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Success,
    Start,
    Fail,
    /// Only recorded: changes nothing.
    Log,
    /// The job's exit status (0 is a success).
    Exit(u8),
}

impl Kind {
    pub fn as_str(self) -> String {
        match self {
            Self::Success => "success".into(),
            Self::Start => "start".into(),
            Self::Fail => "fail".into(),
            Self::Log => "log".into(),
            Self::Exit(n) => format!("exit {n}"),
        }
    }

    /// What [`Self::as_str`] wrote (`exit 3`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            _ => match s.strip_prefix("exit ") {
                Some(n) => n.parse().ok().map(Self::Exit),
                None => Self::from_word(Some(s)),
            },
        }
    }

    /// The path word after the key: none, `start`, `fail`, `log`, or 0-255.
    pub fn from_word(w: Option<&str>) -> Option<Self> {
        match w {
            None | Some("") => Some(Self::Success),
            Some("start") => Some(Self::Start),
            Some("fail") => Some(Self::Fail),
            Some("log") => Some(Self::Log),
            Some(n) if n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok().map(Self::Exit),
            _ => None,
        }
    }

    /// Which of [`PingCounts`] counts it.
    fn slot(self) -> usize {
        match self {
            Self::Success => 0,
            Self::Start => 1,
            Self::Fail => 2,
            Self::Log => 3,
            Self::Exit(_) => 4,
        }
    }

    fn ends_a_run(self) -> bool {
        matches!(self, Self::Success | Self::Fail | Self::Exit(_))
    }

    fn failed(self) -> bool {
        matches!(self, Self::Fail | Self::Exit(1..))
    }
}

/// One ping. Kept per check (10,000 of them): boxed strings, the address as an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub kind: Kind,
    pub at: DateTime<Utc>,
    /// The request body (capped), or an Uptime Kuma `msg`.
    pub body: Box<str>,
    /// Pairs a start with its end when runs overlap.
    pub rid: Option<Box<str>>,
    /// The client's address.
    pub from: IpAddr,
}

/// Pings taken, by kind: `success`, `start`, `fail`, `log`, `exit` (saved as a map of
/// those names; counts saturate at 2³² − 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingCounts([u32; 5]);

const KIND_NAMES: [&str; 5] = ["success", "start", "fail", "log", "exit"];

impl PingCounts {
    fn add(&mut self, k: Kind) {
        let n = &mut self.0[k.slot()];
        *n = n.saturating_add(1);
    }

    /// The count of the kind named `name`.
    pub fn get(&self, name: &str) -> u32 {
        KIND_NAMES.iter().position(|k| *k == name).map_or(0, |i| self.0[i])
    }

    /// (kind, count) of the kinds taken at least once.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        KIND_NAMES.iter().zip(self.0).filter(|(_, n)| *n > 0).map(|(k, n)| (*k, n))
    }
}

impl Serialize for PingCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for PingCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = Self::default();
        for (k, n) in map {
            if let Some(i) = KIND_NAMES.iter().position(|x| *x == k) {
                out.0[i] = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        Ok(out)
    }
}

/// A finished (or failed) run, for the history (its check is known to whoever holds it).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub kind: Kind,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub duration_s: Option<f64>,
    pub body: String,
}

/// Everything remembered of one check (kept in the database across restarts). Sized for
/// 10,000 checks: 128 bytes, and one boxed ping once it pinged. A state saved by an
/// earlier version (with its runs, `recent`) reads as it is, without them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    /// The last ping, unless it ended a run: then it is `last_end` (see [`Self::last`]).
    pub last_ping: Option<Box<Ping>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Runs started and not ended, by rid ("" without one).
    pub open: BTreeMap<String, DateTime<Utc>>,
    /// The last end of a run.
    pub last_end: Option<Box<Ping>>,
    pub last_duration_s: Option<f64>,
    /// Set by the last success, cleared by the next one.
    pub too_often: Option<Box<str>>,
    pub too_short: Option<Box<str>>,
    pub pings: PingCounts,
}

/// Write `p` into `slot`'s box, else into `spare`, else into a new one.
fn put(slot: &mut Option<Box<Ping>>, p: Ping, spare: Option<Box<Ping>>) {
    match (slot.as_mut(), spare) {
        (Some(b), _) => **b = p,
        (None, Some(mut b)) => {
            *b = p;
            *slot = Some(b);
        }
        (None, None) => *slot = Some(Box::new(p)),
    }
}

/// Runs of a check that is not ok shown in the report (from the database).
pub const RECENT: usize = 5;

/// At most this many runs open at once per check (a job that only ever starts).
const MAX_OPEN: usize = 100;

fn dur(s: f64) -> String {
    qmoi_core::human::duration(s)
}

impl CheckState {
    /// The last ping.
    pub fn last(&self) -> Option<&Ping> {
        self.last_ping.as_deref().or(self.last_end.as_deref())
    }

    /// Take in a ping; the run it ends, if it ends one.
    pub fn apply(&mut self, cfg: &CheckConfig, p: Ping) -> Option<Run> {
        self.pings.add(p.kind);
        let rid = p.rid.as_deref().unwrap_or_default().to_string();
        let run = match p.kind {
            Kind::Log => None,
            Kind::Start => {
                if self.open.len() >= MAX_OPEN && !self.open.contains_key(&rid) {
                    // The oldest start goes: it will never be paired now.
                    if let Some(k) = self.open.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                        self.open.remove(&k);
                    }
                }
                self.open.insert(rid, p.at);
                None
            }
            k => {
                // The start of this run: by rid, else (no rid) the latest one without one.
                let started = self.open.remove(&rid);
                let duration = started.map(|s| (p.at - s).num_milliseconds().max(0) as f64 / 1000.0);
                self.last_duration_s = duration.or(self.last_duration_s);
                if !k.failed() {
                    self.too_often = match (cfg.min_interval, self.last_success) {
                        (Some(min), Some(prev)) if (p.at - prev).to_std().is_ok_and(|d| d < min.get()) => Some(
                            format!(
                                "ran too often: a success {} after the previous one (min_interval {min})",
                                dur((p.at - prev).num_milliseconds() as f64 / 1000.0)
                            )
                            .into(),
                        ),
                        _ => None,
                    };
                    self.too_short = match (cfg.min_duration, duration) {
                        (Some(min), Some(d)) if d < min.get().as_secs_f64() => {
                            Some(format!("ran too short: {} from start to success (min_duration {min})", dur(d)).into())
                        }
                        _ => None,
                    };
                    self.last_success = Some(p.at);
                }
                Some(Run {
                    kind: k,
                    started_at: started,
                    ended_at: p.at,
                    duration_s: duration,
                    body: p.body.chars().take(1000).collect(),
                })
            }
        };
        // One box a check: the ping that ended a run is both the last ping and the last end.
        // A box is written over, not replaced: a flood of pings allocates nothing, and the
        // boxes of 10,000 checks do not end up strewn among the flood's short-lived data.
        if p.kind.ends_a_run() {
            let spare = self.last_ping.take();
            put(&mut self.last_end, p, spare);
        } else {
            put(&mut self.last_ping, p, None);
        }
        run
    }

    /// What is wrong with the check at `now`, if anything: the conditions in their order
    /// of precedence, without building a message (the ping path asks this twice a ping).
    pub fn cause(&self, cfg: &CheckConfig, schedule: &Schedule, now: DateTime<Utc>) -> Cause {
        let Some(last) = self.last() else { return Cause::New };
        if self.last_end.as_ref().is_some_and(|e| e.kind.failed()) {
            return Cause::Failed;
        }
        if let (Some(max), Some(started)) = (cfg.max_duration, self.open.values().min())
            && (now - *started).to_std().is_ok_and(|d| d > max.get())
        {
            return Cause::RunningTooLong;
        }
        if self.due(schedule, last.at).is_some_and(|due| now > due + grace(cfg)) {
            return Cause::Late;
        }
        if self.too_often.is_some() {
            return Cause::RanTooOften;
        }
        if self.too_short.is_some() {
            return Cause::RanTooShort;
        }
        Cause::Ok
    }

    /// When the next success is due.
    fn due(&self, schedule: &Schedule, last_ping: DateTime<Utc>) -> Option<DateTime<Utc>> {
        schedule.next_after(self.last_success.or(self.open.values().min().copied()).unwrap_or(last_ping))
    }

    /// The check's status, what is wrong, and the message saying it, at `now`.
    pub fn evaluate(&self, cfg: &CheckConfig, schedule: &Schedule, now: DateTime<Utc>) -> (Status, Cause, String) {
        let cause = self.cause(cfg, schedule, now);
        let excerpt = |b: &str| {
            let b = b.trim();
            if b.is_empty() {
                String::new()
            } else {
                let cut: String = b.chars().take(200).collect();
                format!(": {}{}", qmoi_core::human::escape_control(&cut), if cut.len() < b.len() { "…" } else { "" })
            }
        };
        let ago = |t: DateTime<Utc>| dur((now - t).num_seconds().max(0) as f64);
        let name = &cfg.name;
        let message = match (cause, self.last(), &self.last_end) {
            (Cause::Failed, _, Some(end)) => {
                let how = match end.kind {
                    Kind::Exit(n) => format!("exited with status {n}"),
                    _ => "reported a failure".into(),
                };
                format!("{name}: {how} at {}{}", end.at.format("%Y-%m-%d %H:%M:%S UTC"), excerpt(&end.body))
            }
            (Cause::RunningTooLong, _, _) => format!(
                "{name}: running too long: started {} ago, no end yet (max_duration {})",
                self.open.values().min().map_or_else(String::new, |s| ago(*s)),
                cfg.max_duration.unwrap_or_default()
            ),
            (Cause::Late, Some(last), _) => {
                let since = self
                    .last_success
                    .map_or_else(|| "no success yet".to_string(), |s| format!("last success {} ago", ago(s)));
                let due = self.due(schedule, last.at).map_or_else(String::new, ago);
                format!("{name}: late: {since}, was due {due} ago ({}, grace {})", schedule.describe(), cfg.grace)
            }
            (Cause::RanTooOften, _, _) => format!("{name}: {}", self.too_often.as_deref().unwrap_or_default()),
            (Cause::RanTooShort, _, _) => format!("{name}: {}", self.too_short.as_deref().unwrap_or_default()),
            (Cause::New, _, _) => format!("{name}: waiting for its first ping ({})", schedule.describe()),
            _ => {
                let took = self.last_duration_s.map_or_else(String::new, |d| format!(", took {}", dur(d)));
                let when = self
                    .last_success
                    .map_or_else(|| "started, no success yet".into(), |s| format!("last success {} ago{took}", ago(s)));
                format!("{name}: {when} ({})", schedule.describe())
            }
        };
        (cause.status(cfg), cause, message)
    }
}

/// What is wrong with a check (in order of precedence), or that nothing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Never pinged: waiting for its first ping (ok).
    New,
    Failed,
    RunningTooLong,
    Late,
    RanTooOften,
    RanTooShort,
    Ok,
}

impl Cause {
    /// The check's status: its `level` for a cause, ok otherwise.
    pub fn status(self, cfg: &CheckConfig) -> Status {
        match self {
            Self::New | Self::Ok => Status::Ok,
            _ => cfg.level.status(),
        }
    }

    /// For an alert's title: "Heartbeat backup is late".
    pub fn title(self) -> &'static str {
        match self {
            Self::Failed => "failing",
            Self::RunningTooLong => "running too long",
            Self::Late => "late",
            Self::RanTooOften => "running too often",
            Self::RanTooShort => "running too short",
            Self::New | Self::Ok => "ok",
        }
    }
}

fn grace(cfg: &CheckConfig) -> chrono::Duration {
    chrono::Duration::from_std(cfg.grace.get()).unwrap_or_default()
}

/// A check config for tests: `name`, every `period` seconds, `grace` seconds.
#[cfg(test)]
pub(crate) fn test_check(name: &str, period: u64, grace: u64) -> CheckConfig {
    use qmoi_core::config::ConfigDuration;
    CheckConfig {
        name: name.into(),
        uuid: None,
        push_token: None,
        period: Some(ConfigDuration::from_secs(period)),
        cron: None,
        tz: None,
        grace: ConfigDuration::from_secs(grace),
        min_interval: None,
        min_duration: None,
        max_duration: None,
        level: qmoi_core::status::Severity::Critical,
        slo: None,
        labels: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use qmoi_core::config::ConfigDuration;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn ping(kind: Kind, s: i64, rid: Option<&str>) -> Ping {
        Ping { kind, at: at(s), body: "".into(), rid: rid.map(Into::into), from: [127, 0, 0, 1].into() }
    }

    fn eval(st: &CheckState, cfg: &CheckConfig, now: i64) -> (Status, String) {
        let (status, _, message) = st.evaluate(cfg, &cfg.schedule().unwrap(), at(now));
        (status, message)
    }

    #[test]
    fn new_on_time_late_and_back() {
        let cfg = test_check("nightly", 3600, 300);
        let mut st = CheckState::default();
        assert!(eval(&st, &cfg, 0).1.contains("waiting for its first ping"));
        st.apply(&cfg, ping(Kind::Success, 0, None));
        assert_eq!(eval(&st, &cfg, 3600 + 299).0, Status::Ok);
        let (s, m) = eval(&st, &cfg, 3600 + 301);
        assert_eq!(s, Status::Critical, "{m}");
        assert!(m.contains("late: last success 1h 5m ago"), "{m}");
        st.apply(&cfg, ping(Kind::Success, 4000, None));
        assert_eq!(eval(&st, &cfg, 4001).0, Status::Ok);
    }

    #[test]
    fn failures_exit_statuses_and_the_body() {
        let cfg = test_check("job", 3600, 300);
        let mut st = CheckState::default();
        st.apply(&cfg, Ping { body: "disk full\n".into(), ..ping(Kind::Exit(2), 10, None) });
        let (s, m) = eval(&st, &cfg, 20);
        assert_eq!(s, Status::Critical);
        assert!(m.contains("exited with status 2") && m.ends_with(": disk full"), "{m}");
        st.apply(&cfg, ping(Kind::Exit(0), 30, None));
        assert_eq!(eval(&st, &cfg, 40).0, Status::Ok);
        st.apply(&cfg, ping(Kind::Fail, 50, None));
        assert!(eval(&st, &cfg, 60).1.contains("reported a failure"));
        // A log ping changes nothing.
        st.apply(&cfg, ping(Kind::Log, 70, None));
        assert!(eval(&st, &cfg, 80).1.contains("reported a failure"));
        assert_eq!((st.pings.get("log"), st.pings.get("exit"), st.pings.get("fail")), (1, 2, 1));
        // Saved as a map of the kinds taken, read back the same; one box for the last ping.
        let json = serde_json::to_value(st.pings).unwrap();
        assert_eq!(json, serde_json::json!({"fail": 1, "log": 1, "exit": 2}));
        assert_eq!(serde_json::from_value::<PingCounts>(json).unwrap(), st.pings);
        assert!(st.last_ping.is_some() && st.last().is_some_and(|p| p.kind == Kind::Log));
    }

    #[test]
    fn too_often_too_short_too_long_and_overlapping_runs() {
        let mut cfg = test_check("etl", 3600, 300);
        cfg.min_interval = Some(ConfigDuration::from_secs(1800));
        cfg.min_duration = Some(ConfigDuration::from_secs(60));
        cfg.max_duration = Some(ConfigDuration::from_secs(600));
        let mut st = CheckState::default();
        st.apply(&cfg, ping(Kind::Start, 0, Some("a")));
        st.apply(&cfg, ping(Kind::Start, 100, Some("b")));
        // Run b ends first; run a is paired by its rid.
        let run = st.apply(&cfg, ping(Kind::Success, 300, Some("b"))).unwrap();
        assert_eq!((run.started_at, run.duration_s), (Some(at(100)), Some(200.0)));
        assert_eq!(eval(&st, &cfg, 301).0, Status::Ok);
        // Run a is still open after max_duration.
        let (s, m) = eval(&st, &cfg, 700);
        assert_eq!(s, Status::Critical);
        assert!(m.contains("running too long"), "{m}");
        // It ends 10 minutes after the previous success: too often.
        st.apply(&cfg, ping(Kind::Success, 900, Some("a")));
        let (_, m) = eval(&st, &cfg, 901);
        assert!(m.contains("ran too often: a success 10m 0s after the previous one"), "{m}");
        // A later run that takes 5 s: too short.
        st.apply(&cfg, ping(Kind::Start, 3000, None));
        st.apply(&cfg, ping(Kind::Success, 3005, None));
        let (_, m) = eval(&st, &cfg, 3006);
        assert!(m.contains("ran too short: 5s from start to success"), "{m}");
        // A normal run clears both.
        st.apply(&cfg, ping(Kind::Start, 6000, None));
        st.apply(&cfg, ping(Kind::Success, 6100, None));
        assert_eq!(eval(&st, &cfg, 6101).0, Status::Ok);
    }

    /// A state saved by the version that kept each check's last runs and counted pings
    /// in a map reads as it is, without the runs.
    #[test]
    fn a_state_saved_by_the_previous_layout_reads() {
        let old = r#"{"last_ping":{"kind":"success","at":"2027-01-15T08:00:00Z","body":"ok","rid":null,
            "from":"10.0.0.7"},"last_success":"2027-01-15T08:00:00Z","open":{},"last_end":{"kind":"success",
            "at":"2027-01-15T08:00:00Z","body":"ok","rid":null,"from":"10.0.0.7"},"last_duration_s":null,
            "too_often":null,"too_short":"ran too short","pings":{"success":41,"exit":2,"weird":1},
            "recent":[{"check":"job","kind":"success","started_at":null,"ended_at":"2027-01-15T08:00:00Z",
            "duration_s":null,"body":"ok"}]}"#;
        let st: CheckState = serde_json::from_str(old).unwrap();
        assert_eq!((st.pings.get("success"), st.pings.get("exit")), (41, 2));
        assert_eq!(st.last().map(|p| p.from), Some([10, 0, 0, 7].into()));
        assert_eq!(st.too_short.as_deref(), Some("ran too short"));
        assert_eq!(Kind::from_name("exit 3"), Some(Kind::Exit(3)));
        assert_eq!(Kind::from_name("success"), Some(Kind::Success));
        assert_eq!(Kind::from_name(&Kind::Fail.as_str()), Some(Kind::Fail));
    }

    #[test]
    fn path_words() {
        assert_eq!(Kind::from_word(None), Some(Kind::Success));
        assert_eq!(Kind::from_word(Some("start")), Some(Kind::Start));
        assert_eq!(Kind::from_word(Some("255")), Some(Kind::Exit(255)));
        assert_eq!(Kind::from_word(Some("256")), None);
        assert_eq!(Kind::from_word(Some("0042")), None);
        assert_eq!(Kind::from_word(Some("nope")), None);
    }
}
