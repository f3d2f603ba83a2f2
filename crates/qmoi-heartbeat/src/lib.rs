//! # qmoi-heartbeat
//!
//! Dead-man's switches for cron jobs, backups and batch work (component `heartbeats`): a
//! job pings a URL when it starts, succeeds or fails; the monitor reports a check for
//! every job that is late, failed, ran too often, too short or too long.
//!
//! - [`config`]: `config/heartbeats.toml`; [`schedule`]: period or cron in a time zone.
//! - [`state`]: what the pings make of a check (pure, tested without a server).
//! - [`http`]: the ping listener (Healthchecks and Uptime Kuma URL shapes).
//! - [`store`]: `data/heartbeats.db`, the states and the history of runs.
//!
//! A ping is answered from memory; one writer saves states and runs in a batch every
//! second (and at stop). A ping that changes a check's status makes the report at once.

pub mod config;
pub mod http;
mod report;
pub mod schedule;
pub mod state;
pub mod store;

pub use config::HeartbeatsConfig;

use config::CheckConfig;
use qmoi_core::ratelimit::RateLimiter;
use qmoi_core::runner::{Background, Mode, Monitor, Outcome, RunContext, Stopping};
use qmoi_core::slo;
use qmoi_core::{CheckResult, Status};
use schedule::Schedule;
use state::{CheckState, Ping, Run};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Checks not ok whose recent runs a report shows at most (each is a query).
const MAX_CHECKS_WITH_RUNS: usize = 100;

/// Runs waiting for the writer at most (a second's worth at 20,000 pings/s).
const MAX_PENDING_RUNS: usize = 20_000;

/// Which key of a check an [`Index`] sorts by.
#[derive(Debug, Clone, Copy)]
enum Key {
    Uuid,
    PushToken,
    Name,
}

impl Key {
    fn of(self, c: &CheckConfig) -> Option<&str> {
        fn secret(s: Option<&qmoi_core::config::Secret>) -> Option<&str> {
            s.map(qmoi_core::config::Secret::expose).filter(|s| !s.is_empty())
        }
        match self {
            Key::Uuid => secret(c.uuid.as_ref()),
            Key::PushToken => secret(c.push_token.as_deref()),
            Key::Name => Some(c.name.as_str()),
        }
    }
}

/// The checks that have a key, as indices sorted by it: a lookup is a binary search. Four
/// bytes a check, instead of a map entry holding a copy of the key (10,000 checks: 40 kB
/// for what took about a megabyte a map).
struct Index(Key, Vec<u32>);

impl Index {
    fn new(checks: &[CheckConfig], key: Key) -> Self {
        let mut ids: Vec<u32> =
            (0..checks.len()).filter(|&i| key.of(&checks[i]).is_some()).filter_map(|i| u32::try_from(i).ok()).collect();
        ids.sort_unstable_by(|a, b| key.of(&checks[*a as usize]).cmp(&key.of(&checks[*b as usize])));
        ids.shrink_to_fit();
        Self(key, ids)
    }

    /// The check whose key is `k`.
    fn find(&self, checks: &[CheckConfig], k: &str) -> Option<usize> {
        let i = self.1.binary_search_by(|&i| self.0.of(&checks[i as usize]).unwrap_or_default().cmp(k)).ok()?;
        Some(self.1[i] as usize)
    }
}

/// Checks whose state changed, and runs that ended (of check `.0`).
type Pending = (HashSet<usize>, Vec<(usize, Run)>);

/// What the listener and the report share.
pub struct Shared {
    checks: Vec<CheckConfig>,
    schedules: Vec<Schedule>,
    by_uuid: Index,
    by_token: Index,
    by_name: Index,
    ping_key: Option<String>,
    max_body: usize,
    limiter: RateLimiter,
    states: Mutex<Vec<CheckState>>,
    /// What the writer saves next: checks whose state changed, runs that ended (of check
    /// `.0`).
    pending: Mutex<Pending>,
    /// Runs not saved to the history because more came in a second than it takes.
    runs_dropped: std::sync::atomic::AtomicU64,
    wake: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn new(cfg: &HeartbeatsConfig) -> Result<Self, String> {
        let s = Self {
            checks: cfg.checks.clone(),
            schedules: cfg.checks.iter().map(CheckConfig::schedule).collect::<Result<_, _>>()?,
            by_uuid: Index::new(&cfg.checks, Key::Uuid),
            by_token: Index::new(&cfg.checks, Key::PushToken),
            by_name: Index::new(&cfg.checks, Key::Name),
            ping_key: cfg.ping_key.as_ref().map(|k| k.expose().to_string()).filter(|k| !k.is_empty()),
            max_body: cfg.max_body,
            limiter: RateLimiter::new(cfg.rate_limit),
            states: Mutex::new(vec![CheckState::default(); cfg.checks.len()]),
            pending: Mutex::default(),
            runs_dropped: Default::default(),
            wake: Arc::new(Notify::new()),
        };
        Ok(s)
    }

    /// Per-address rate limit.
    fn allow(&self, ip: IpAddr) -> bool {
        self.limiter.allow(ip).is_ok()
    }

    /// `/ping/<key>[/<word>]` or `/ping/<ping_key>/<name>[/<word>]`: the check and what
    /// the ping says. `Err(404)` for an unknown key, `Err(400)` for a bad word.
    fn find_ping(&self, key: &str, rest: &[&str]) -> Result<(usize, state::Kind), axum::http::StatusCode> {
        use axum::http::StatusCode;
        let word = |w: Option<&&str>| state::Kind::from_word(w.copied()).ok_or(StatusCode::BAD_REQUEST);
        if let Some(i) = self.by_uuid.find(&self.checks, key) {
            if rest.len() > 1 {
                return Err(StatusCode::BAD_REQUEST);
            }
            return Ok((i, word(rest.first())?));
        }
        match (&self.ping_key, rest.first()) {
            (Some(k), Some(name)) if k == key => match self.by_name.find(&self.checks, name) {
                Some(i) => Ok((i, word(rest.get(1))?)),
                None => Err(StatusCode::NOT_FOUND),
            },
            _ => Err(StatusCode::NOT_FOUND),
        }
    }

    /// Take in a ping of check `i`; wake the report when the status changed.
    fn take(&self, i: usize, p: Ping) {
        let (cfg, sched) = (&self.checks[i], &self.schedules[i]);
        let now = p.at;
        let (before, after, run) = {
            let mut states = lock(&self.states);
            let st = &mut states[i];
            let before = st.cause(cfg, sched, now);
            let run = st.apply(cfg, p);
            (before, st.cause(cfg, sched, now), run)
        };
        {
            let mut pending = lock(&self.pending);
            pending.0.insert(i);
            if let Some(r) = run {
                // Bounded whatever the ping rate: past it, the oldest unsaved runs go (each
                // check's state, with its last runs, is still saved).
                if pending.1.len() >= MAX_PENDING_RUNS {
                    pending.1.drain(..MAX_PENDING_RUNS / 10);
                    self.runs_dropped.fetch_add((MAX_PENDING_RUNS / 10) as u64, std::sync::atomic::Ordering::Relaxed);
                }
                pending.1.push((i, r));
            }
        }
        if before != after {
            self.wake.notify_one();
        }
    }
}

/// The ping listener's routes over `cfg`'s checks, answering from memory with no
/// database or report behind them (the fuzz target drives it without a socket).
pub fn listener_routes(cfg: &HeartbeatsConfig) -> Result<axum::Router, String> {
    Ok(http::router(Arc::new(Shared::new(cfg)?)))
}

/// The heartbeat monitor.
pub struct Heartbeats {
    cfg: HeartbeatsConfig,
    shared: Arc<Shared>,
    store: Option<Arc<Mutex<store::Store>>>,
    notes: Vec<String>,
    /// Bound in `start` (daemon mode): a port in use is an error at once.
    listener: Option<std::net::TcpListener>,
    /// The checks' service level objectives, counted in seconds of status.
    objectives: slo::Objectives,
    /// The previous report: its time, and whether each check with an objective was ok
    /// then (`None`: not counted, as a check that never pinged). The seconds until this
    /// report count as that status.
    last_tick: Option<(i64, Vec<Option<bool>>)>,
}

impl Heartbeats {
    pub fn new(mut cfg: HeartbeatsConfig) -> Result<Self, String> {
        let shared = Arc::new(Shared::new(&cfg)?);
        // The checks live in `shared`: 10,000 of them are not kept twice.
        cfg.checks = Vec::new();
        let objectives = slo::Objectives::new(cfg.slo.clone(), qmoi_core::component::HEARTBEATS.id);
        Ok(Self { cfg, shared, store: None, notes: Vec::new(), listener: None, objectives, last_tick: None })
    }

    /// Count the seconds since the previous report for each objective, as the status it
    /// had then; work out every objective, its check (and one for a database problem)
    /// added to `checks`. `now_ok[i]`: check `i` is ok now (`None`: has no objective, or
    /// is not counted).
    fn objectives(
        &mut self,
        now: i64,
        now_ok: Vec<Option<bool>>,
        checks: &mut Vec<CheckResult>,
    ) -> Vec<slo::SloStatus> {
        if let Some((then, was)) = self.last_tick.take() {
            let tally = self.objectives.tally();
            for (i, ok) in was.iter().enumerate() {
                if let Some(ok) = ok {
                    let c = &self.shared.checks[i];
                    tally.span(i, (&c.name, c.labels()), then, now, *ok);
                }
            }
        }
        self.last_tick = Some((now, now_ok));
        let targets: Vec<Option<(&str, &slo::SloTarget)>> =
            self.shared.checks.iter().map(|c| c.slo.as_deref().map(|t| (c.name.as_str(), t))).collect();
        let (statuses, problem) = self.objectives.report(&targets, now);
        checks.extend(statuses.iter().map(|s| slo::check(s, self.objectives.rules())));
        if let Some(p) = problem {
            checks.push(
                CheckResult::new("slo", Status::Warning, p).with_title("Service level objectives cannot be kept"),
            );
        }
        statuses
    }
}

impl Heartbeats {
    /// The newest runs of each check that is not ok (the first [`MAX_CHECKS_WITH_RUNS`]
    /// of them), newest first: the ones not saved yet, then the database's. Not kept in
    /// memory per check: 10,000 checks with five runs each took 20 MiB.
    fn recent_runs(&self, evaluated: &[(Status, String)]) -> HashMap<usize, Vec<Run>> {
        let wanted: Vec<usize> = evaluated
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| *s != Status::Ok)
            .map(|(i, _)| i)
            .take(MAX_CHECKS_WITH_RUNS)
            .collect();
        let mut out: HashMap<usize, Vec<Run>> = HashMap::with_capacity(wanted.len());
        if wanted.is_empty() {
            return out;
        }
        for (i, r) in lock(&self.shared.pending).1.iter().rev() {
            if let Ok(k) = wanted.binary_search(i) {
                let runs = out.entry(wanted[k]).or_default();
                if runs.len() < state::RECENT {
                    runs.push(r.clone());
                }
            }
        }
        let Some(store) = &self.store else { return out };
        let store = lock(store);
        for i in wanted {
            let runs = out.entry(i).or_default();
            let more = state::RECENT - runs.len();
            if more == 0 {
                continue;
            }
            match store.recent(&self.shared.checks[i].name, more) {
                Ok(r) => runs.extend(r),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read the recent runs.");
                    break;
                }
            }
        }
        out.retain(|_, r| !r.is_empty());
        out
    }
}

fn flush(shared: &Shared, store: &Mutex<store::Store>, keep: usize) {
    let (dirty, runs) = std::mem::take(&mut *lock(&shared.pending));
    if dirty.is_empty() && runs.is_empty() {
        return;
    }
    let states: Vec<(&str, CheckState)> = {
        let s = lock(&shared.states);
        dirty.iter().map(|&i| (shared.checks[i].name.as_str(), s[i].clone())).collect()
    };
    let name = |i: usize| shared.checks.get(i).map_or("", |c| c.name.as_str());
    if let Err(e) = lock(store).save(&states, &runs, keep, &name) {
        tracing::error!(error = %e, "Cannot save heartbeat states; they are kept in memory and saved at the next try.");
        let mut p = lock(&shared.pending);
        p.0.extend(dirty);
        let mut back = runs;
        back.append(&mut p.1);
        p.1 = back;
    }
}

impl Monitor for Heartbeats {
    fn start(&mut self, mode: Mode) -> Result<(), String> {
        if mode == Mode::Daemon {
            let l = std::net::TcpListener::bind(&self.cfg.listen).map_err(|e| {
                format!(
                    "cannot listen for pings on {}: {e} (another program on that port? change listen)",
                    self.cfg.listen
                )
            })?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            self.listener = Some(l);
        }
        let store = store::Store::open(std::path::Path::new(&self.cfg.database))?;
        let (mut saved, bad) = store.load()?;
        self.notes = bad;
        self.notes.extend(store.note.clone());
        {
            let mut states = lock(&self.shared.states);
            for (i, c) in self.shared.checks.iter().enumerate() {
                if let Some(s) = saved.remove(&c.name) {
                    states[i] = s;
                }
            }
        }
        self.store = Some(Arc::new(Mutex::new(store)));
        let any = self.shared.checks.iter().any(|c| c.slo.is_some());
        self.objectives.start(any, mode == Mode::Check)
    }

    fn waker(&self) -> Option<Arc<Notify>> {
        Some(self.shared.wake.clone())
    }

    fn background(&mut self, mut stopping: Stopping) -> Option<Background> {
        let shared = self.shared.clone();
        let store = self.store.clone()?;
        let keep = self.cfg.keep_runs;
        let listen = self.cfg.listen.clone();
        let std_listener = self.listener.take()?;
        Some(Box::pin(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(%listen, error = %e, "Cannot listen for pings.");
                    return;
                }
            };
            tracing::info!(%listen, checks = shared.checks.len(), "Listening for pings.");
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let limits =
                qmoi_core::serve::Limits { max_connections: 512, header_read_timeout: Duration::from_secs(10) };
            let server = tokio::spawn(qmoi_core::serve::run(
                listener,
                None,
                http::router(shared.clone()),
                limits,
                Arc::default(),
                stop_rx,
            ));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let (s, st) = (shared.clone(), store.clone());
                        let _ = tokio::task::spawn_blocking(move || flush(&s, &st, keep)).await;
                    }
                    () = stopping.wait() => break,
                }
            }
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
            let _ = tokio::task::spawn_blocking(move || flush(&shared, &store, keep)).await;
        }))
    }

    async fn run(&mut self, _ctx: &RunContext) -> Outcome {
        let now = chrono::Utc::now();
        let n = self.shared.checks.len();
        let mut checks = Vec::with_capacity(n + self.notes.len() + 1);
        let mut evaluated = Vec::with_capacity(n);
        let mut now_ok = Vec::with_capacity(n);
        for (i, c) in self.shared.checks.iter().enumerate() {
            // Each check's state under the lock for a moment: a ping never waits long.
            let (status, cause, message) = lock(&self.shared.states)[i].evaluate(c, &self.shared.schedules[i], now);
            now_ok.push(c.slo.as_ref().and((cause != state::Cause::New).then_some(status == Status::Ok)));
            let mut check = CheckResult::new(format!("heartbeat:{}", c.name), status, message.clone());
            if status != Status::Ok {
                check = check.with_title(format!("Heartbeat {} is {}", c.name, cause.title())).with_labels(c.labels());
            }
            checks.push(check);
            evaluated.push((status, message));
        }
        for n in &self.notes {
            checks.push(CheckResult::new("database", Status::Warning, n.clone()));
        }
        let before = checks.len();
        let slos = self.objectives(now.timestamp(), now_ok, &mut checks);
        // The objectives' checks (`slo:<name>`) carry their heartbeat check's labels.
        let shared = &self.shared;
        qmoi_core::alerts::label_by_subject(&mut checks[before..], |name| {
            shared.by_name.find(&shared.checks, name).map(|i| shared.checks[i].labels()).filter(|l| !l.is_empty())
        });
        let recent = self.recent_runs(&evaluated);
        let stream = report::ChecksStream {
            shared: self.shared.clone(),
            evaluated,
            listen: self.cfg.listen.clone(),
            slos,
            runs_dropped: self.shared.runs_dropped.load(std::sync::atomic::Ordering::Relaxed),
            recent,
        };
        Outcome { checks, streamed: qmoi_core::report::Streamed::new(stream), ..Outcome::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_titles_name_the_cause() {
        use chrono::TimeZone;
        use state::{Cause, Kind};
        let at = |s: i64| chrono::Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let ping = |kind, s| Ping { kind, at: at(s), body: "".into(), rid: None, from: [127, 0, 0, 1].into() };
        let mut cfg = state::test_check("job", 3600, 60);
        cfg.min_duration = Some(qmoi_core::config::ConfigDuration::from_secs(60));
        cfg.max_duration = Some(qmoi_core::config::ConfigDuration::from_secs(600));
        let sched = cfg.schedule().unwrap();
        let cause = |st: &CheckState, now| {
            let (_, c, m) = st.evaluate(&cfg, &sched, at(now));
            (c, c.title(), m)
        };
        let mut st = CheckState::default();
        assert_eq!(cause(&st, 0).0, Cause::New);
        st.apply(&cfg, ping(Kind::Success, 0));
        let (c, title, m) = cause(&st, 3700);
        assert_eq!((c, title), (Cause::Late, "late"), "{m}");
        st.apply(&cfg, ping(Kind::Exit(2), 3800));
        assert_eq!(cause(&st, 3801).1, "failing");
        st.apply(&cfg, ping(Kind::Start, 3900));
        st.apply(&cfg, ping(Kind::Success, 3905));
        assert_eq!(cause(&st, 3906).1, "running too short");
        st.apply(&cfg, ping(Kind::Start, 4000));
        assert_eq!(cause(&st, 4700).1, "running too long");
    }

    #[test]
    fn ping_urls_find_their_check() {
        use axum::http::StatusCode;
        let mut a = state::test_check("backup", 3600, 60);
        a.uuid = Some(qmoi_core::config::Secret::new("0123456789abcdef-uuid"));
        let cfg = HeartbeatsConfig {
            ping_key: Some(qmoi_core::config::Secret::new("project-ping-key-0123")),
            checks: vec![a, state::test_check("etl", 60, 60)],
            ..HeartbeatsConfig::default()
        };
        let s = Shared::new(&cfg).unwrap();
        assert_eq!(s.find_ping("0123456789abcdef-uuid", &[]), Ok((0, state::Kind::Success)));
        assert_eq!(s.find_ping("0123456789abcdef-uuid", &["start"]), Ok((0, state::Kind::Start)));
        assert_eq!(s.find_ping("0123456789abcdef-uuid", &["3"]), Ok((0, state::Kind::Exit(3))));
        assert_eq!(s.find_ping("0123456789abcdef-uuid", &["nope"]), Err(StatusCode::BAD_REQUEST));
        assert_eq!(s.find_ping("project-ping-key-0123", &["etl"]), Ok((1, state::Kind::Success)));
        assert_eq!(s.find_ping("project-ping-key-0123", &["etl", "fail"]), Ok((1, state::Kind::Fail)));
        assert_eq!(s.find_ping("project-ping-key-0123", &["nope"]), Err(StatusCode::NOT_FOUND));
        assert_eq!(s.find_ping("unknown", &[]), Err(StatusCode::NOT_FOUND));
    }
}
