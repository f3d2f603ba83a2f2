//! Service level objectives of endpoints: `slo = { objective = 99.9, window = "30d" }`.
//!
//! Every probe of an endpoint with an objective is counted (good or bad) in a minute
//! bucket and an hour bucket of `data/api_endpoints_slo.db` (SQLite), unless a
//! maintenance window of the `api_endpoints` component is in force: then it is counted as
//! excluded only. From the buckets, at each report:
//!
//! - *availability* over the window: good ÷ counted probes of its hours;
//! - *error budget*: the bad probes the objective allows over the window,
//!   `(1 − objective) × counted`; *remaining* is `1 − bad ÷ allowed` (negative: overspent);
//! - *burn rate* over a duration: its error rate ÷ `(1 − objective)` (1 spends the budget
//!   exactly over the window);
//! - *burn alerts* (the SRE workbook's multiwindow, multi-burn-rate alerts): a rule fires
//!   when the burn rate is at least `burn` over both its `long` and its `short` duration —
//!   by default a page (critical) at 14.4 over 1 h and 5 min, a ticket (warning) at 6 over
//!   6 h and 30 min.
//!
//! The monthly report (`--sla-report`) reads the hour buckets of a calendar month (UTC).

use crate::config::{BurnAlert, Endpoint, SloSettings, SloTarget};
use qmoi_core::config::ConfigDuration;
use qmoi_core::{AlertLevel, CheckResult, Status};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
/// Minute buckets are kept this long (the longest burn window is 48 h).
const KEEP_MINUTES_S: i64 = 2 * 86_400 + HOUR;

/// Probe counts of one bucket or window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub bad: u64,
    /// Probes during a maintenance window: not in `total` nor `bad`.
    pub excluded: u64,
}

impl Counts {
    pub fn add(&mut self, ok: bool, excluded: bool) {
        if excluded {
            self.excluded += 1;
        } else {
            self.total += 1;
            self.bad += u64::from(!ok);
        }
    }

    /// Good ÷ counted, in percent (None without counted probes).
    pub fn availability(&self) -> Option<f64> {
        (self.total > 0).then(|| (self.total - self.bad) as f64 / self.total as f64 * 100.0)
    }

    /// Error rate ÷ the rate `objective` allows (None without counted probes).
    pub fn burn_rate(&self, objective: f64) -> Option<f64> {
        (self.total > 0).then(|| (self.bad as f64 / self.total as f64) / allowed_error_ratio(objective))
    }

    /// What is left of the error budget, in percent of it: 100 untouched, 0 spent,
    /// negative overspent. 100 without counted probes.
    pub fn budget_remaining(&self, objective: f64) -> f64 {
        let allowed = allowed_error_ratio(objective) * self.total as f64;
        if self.total == 0 { 100.0 } else { (1.0 - self.bad as f64 / allowed) * 100.0 }
    }
}

fn allowed_error_ratio(objective: f64) -> f64 {
    (1.0 - objective / 100.0).max(f64::MIN_POSITIVE)
}

/// One endpoint's objective as the report shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SloStatus {
    pub name: String,
    pub objective_percent: f64,
    pub window: ConfigDuration,
    pub availability_percent: Option<f64>,
    pub good: u64,
    pub total: u64,
    pub excluded: u64,
    pub budget_remaining_percent: f64,
    /// Burn rate over each duration of the burn alerts (`"1h"`, `"5m"`, …).
    pub burn_rates: std::collections::BTreeMap<String, Option<f64>>,
    /// The first burn alert (in config order) that fires, if any.
    pub alerting: Option<String>,
}

/// Work out one endpoint's status from its window and the burn durations' counts.
pub fn status(
    name: &str,
    target: &SloTarget,
    window: Counts,
    burn: &HashMap<i64, Counts>,
    rules: &[BurnAlert],
) -> SloStatus {
    let rate = |d: ConfigDuration| burn.get(&secs(d)).and_then(|c| c.burn_rate(target.objective));
    let mut burn_rates = std::collections::BTreeMap::new();
    for r in rules {
        for d in [r.long, r.short] {
            burn_rates.insert(d.to_string(), rate(d));
        }
    }
    let alerting = rules
        .iter()
        .find(|r| rate(r.long).is_some_and(|b| b >= r.burn) && rate(r.short).is_some_and(|b| b >= r.burn))
        .map(|r| r.name.clone());
    SloStatus {
        name: name.to_string(),
        objective_percent: target.objective,
        window: target.window,
        availability_percent: window.availability(),
        good: window.total - window.bad,
        total: window.total,
        excluded: window.excluded,
        budget_remaining_percent: window.budget_remaining(target.objective),
        burn_rates,
        alerting,
    }
}

fn secs(d: ConfigDuration) -> i64 {
    i64::try_from(d.get().as_secs()).unwrap_or(i64::MAX)
}

/// The SLO database: minute and hour buckets per endpoint.
pub struct Store {
    conn: Connection,
}

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS buckets (
        endpoint TEXT NOT NULL,
        res INTEGER NOT NULL,
        start INTEGER NOT NULL,
        total INTEGER NOT NULL,
        bad INTEGER NOT NULL,
        in_maintenance INTEGER NOT NULL,
        PRIMARY KEY (endpoint, res, start)
    ) WITHOUT ROWID;"];

impl Store {
    /// Open (creating it and its folder) for writing.
    pub fn open(path: &Path) -> Result<Self, String> {
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| named(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| named(&e))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| named(&e))?;
        qmoi_core::sqlite::migrate(&conn, &path.display().to_string(), MIGRATIONS).map_err(|e| named(&e))?;
        Ok(Self { conn })
    }

    /// Open an existing database to read (`--sla-report` beside a running monitor).
    pub fn open_read_only(path: &Path) -> Result<Self, String> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
        Ok(Self { conn })
    }

    /// Add the probes counted since the last call: `(endpoint, minute start) → counts`,
    /// into their minute and hour buckets, in one transaction; then drop minute buckets
    /// older than two days and hour buckets older than `keep`.
    pub fn add(&mut self, pending: &HashMap<(String, i64), Counts>, now: i64, keep: i64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO buckets (endpoint, res, start, total, bad, in_maintenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (endpoint, res, start) DO UPDATE SET total = total + excluded.total,
                 bad = bad + excluded.bad, in_maintenance = in_maintenance + excluded.in_maintenance",
            )?;
            for ((name, minute), c) in pending {
                let (t, b, x) = (to_i64(c.total), to_i64(c.bad), to_i64(c.excluded));
                up.execute(params![name, MINUTE, minute, t, b, x])?;
                up.execute(params![name, HOUR, minute - minute.rem_euclid(HOUR), t, b, x])?;
            }
            tx.execute("DELETE FROM buckets WHERE res = ?1 AND start < ?2", params![MINUTE, now - KEEP_MINUTES_S])?;
            tx.execute("DELETE FROM buckets WHERE res = ?1 AND start < ?2", params![HOUR, now - keep])?;
        }
        tx.commit()
    }

    /// Counts of the buckets of resolution `res` starting in `[from, to)`.
    pub fn sum(&self, endpoint: &str, res: i64, from: i64, to: i64) -> rusqlite::Result<Counts> {
        let mut st = self.conn.prepare_cached(
            "SELECT SUM(total), SUM(bad), SUM(in_maintenance) FROM buckets
             WHERE endpoint = ?1 AND res = ?2 AND start >= ?3 AND start < ?4",
        )?;
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> =
            st.query_row(params![endpoint, res, from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        let (t, b, x) = row.unwrap_or_default();
        let u = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(Counts { total: u(t), bad: u(b), excluded: u(x) })
    }

    /// The last `window` up to `now`: the hours (the current one included) it covers.
    pub fn window(&self, endpoint: &str, window: ConfigDuration, now: i64) -> rusqlite::Result<Counts> {
        let hour = now - now.rem_euclid(HOUR);
        let hours = ceil_div(secs(window), HOUR).max(1);
        self.sum(endpoint, HOUR, hour - (hours - 1) * HOUR, hour + HOUR)
    }

    /// The last `secs` up to `now`, by minutes (the current one included).
    pub fn recent(&self, endpoint: &str, secs: i64, now: i64) -> rusqlite::Result<Counts> {
        let minute = now - now.rem_euclid(MINUTE);
        let minutes = ceil_div(secs, MINUTE).max(1);
        self.sum(endpoint, MINUTE, minute - (minutes - 1) * MINUTE, minute + MINUTE)
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Windows of the `api_endpoints` component's maintenance, as the dashboard keeps them
/// (`data/history.db`, table `maintenance`): probes in one are excluded from objectives.
#[derive(Debug, Default, Clone)]
pub struct Maintenance {
    windows: Vec<(i64, i64)>,
}

impl Maintenance {
    /// Read the windows in force or to come (a missing database or table: none).
    pub fn read(path: &Path, now: i64) -> Result<Self, String> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let named = |e: rusqlite::Error| format!("{}: {e}", path.display());
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(named)?;
        let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
        let exists = conn
            .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'maintenance'", [], |_| Ok(()))
            .optional()
            .map_err(named)?
            .is_some();
        if !exists {
            return Ok(Self::default());
        }
        let mut st = conn
            .prepare(
                "SELECT starts_at, ends_at FROM maintenance
                 WHERE component = 'api_endpoints' AND ended_at IS NULL AND ends_at > ?1",
            )
            .map_err(named)?;
        let windows = st
            .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(named)?
            .collect::<Result<_, _>>()
            .map_err(named)?;
        Ok(Self { windows })
    }

    pub fn in_force(&self, t: i64) -> bool {
        self.windows.iter().any(|(s, e)| *s <= t && t < *e)
    }
}

/// What the probe tasks share with the report: the counts not written yet, and the
/// maintenance windows a probe is checked against.
#[derive(Debug, Default)]
pub struct Tally {
    /// (endpoint index, minute start) → counts.
    pending: Mutex<HashMap<(usize, i64), Counts>>,
    maintenance: RwLock<Maintenance>,
}

impl Tally {
    /// A maintenance window of the component is in force at `t`: probes count for no
    /// availability.
    pub fn in_maintenance(&self, t: i64) -> bool {
        self.maintenance.read().unwrap_or_else(PoisonError::into_inner).in_force(t)
    }

    /// Count one probe of endpoint `idx` at `now`.
    pub fn count(&self, idx: usize, now: i64, ok: bool) {
        let excluded = self.in_maintenance(now);
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.entry((idx, now - now.rem_euclid(MINUTE))).or_default().add(ok, excluded);
    }

    fn take(&self) -> HashMap<(usize, i64), Counts> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Put counts that could not be written back, to be written with the next ones.
    fn give_back(&self, counts: HashMap<(usize, i64), Counts>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, c) in counts {
            let e = p.entry(k).or_default();
            e.total += c.total;
            e.bad += c.bad;
            e.excluded += c.excluded;
        }
    }
}

/// The monitor's side of the objectives: the database, and each report's statuses.
pub struct Objectives {
    settings: SloSettings,
    /// Behind a lock only so that the report can be built on another thread.
    store: Option<Mutex<Store>>,
    tally: Arc<Tally>,
    /// `--check`: read what is there, write nothing.
    read_only: bool,
}

impl Objectives {
    pub fn new(settings: SloSettings) -> Self {
        Self { settings, store: None, tally: Arc::default(), read_only: false }
    }

    fn read_maintenance(&self, now: i64) -> Result<(), String> {
        let m = Maintenance::read(Path::new(self.settings.maintenance_database.as_str()), now)?;
        *self.tally.maintenance.write().unwrap_or_else(PoisonError::into_inner) = m;
        Ok(())
    }

    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    pub fn rules(&self) -> &[BurnAlert] {
        &self.settings.burn_alerts
    }

    /// Open the database when some endpoint has an objective (`--check`: read only, and
    /// only if it exists).
    pub fn start(&mut self, any: bool, read_only: bool) -> Result<(), String> {
        self.read_only = read_only;
        // The first probes are checked against the windows in force now.
        if let Err(e) = self.read_maintenance(chrono::Utc::now().timestamp()) {
            tracing::warn!(error = %e, "Cannot read the maintenance windows; every probe counts.");
        }
        if !any {
            return Ok(());
        }
        let path = Path::new(self.settings.database.as_str());
        self.store = match (read_only, path.exists()) {
            (false, _) => Some(Mutex::new(Store::open(path)?)),
            (true, true) => Some(Mutex::new(Store::open_read_only(path)?)),
            (true, false) => None,
        };
        Ok(())
    }

    /// Write what the probes counted, read the maintenance windows again, and work out
    /// each objective of `endpoints` (those with one, in order). A problem with either
    /// database is returned beside what could be worked out (nothing counted is lost:
    /// it is written with the next report).
    pub fn report(&mut self, endpoints: &[Arc<Endpoint>], now: i64) -> (Vec<SloStatus>, Option<String>) {
        let mut problem = self.read_maintenance(now).err().map(|e| format!("cannot read the maintenance windows: {e}"));
        let Some(store) = self.store.as_ref() else { return (Vec::new(), problem) };
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = self.tally.take();
        if !self.read_only && !counts.is_empty() {
            let named: HashMap<(String, i64), Counts> =
                counts.iter().filter_map(|((i, m), c)| Some(((endpoints.get(*i)?.name.clone(), *m), *c))).collect();
            if let Err(e) = store.add(&named, now, secs(self.settings.keep)) {
                problem = Some(format!("cannot write {}: {e}", self.settings.database));
                self.tally.give_back(counts);
            }
        }
        let mut durations: Vec<i64> =
            self.settings.burn_alerts.iter().flat_map(|r| [secs(r.long), secs(r.short)]).collect();
        durations.sort_unstable();
        durations.dedup();
        let mut out = Vec::new();
        for e in endpoints {
            let Some(target) = &e.slo else { continue };
            let read = || -> rusqlite::Result<SloStatus> {
                let window = store.window(&e.name, target.window, now)?;
                let mut burn = HashMap::new();
                for d in &durations {
                    burn.insert(*d, store.recent(&e.name, *d, now)?);
                }
                Ok(status(&e.name, target, window, &burn, &self.settings.burn_alerts))
            };
            match read() {
                Ok(s) => out.push(s),
                Err(err) => problem = Some(format!("cannot read {}: {err}", self.settings.database)),
            }
        }
        (out, problem)
    }
}

/// The check of one objective: critical or warning while a burn alert fires, warning
/// once the budget is spent, ok otherwise.
pub fn check(s: &SloStatus, rules: &[BurnAlert]) -> CheckResult {
    let name = &s.name;
    let avail = s.availability_percent.map_or_else(|| "no probes counted yet".to_string(), |a| format!("{a:.3}%"));
    let summary = format!(
        "{avail} over {} (objective {}%), {:.1}% of the error budget left",
        s.window, s.objective_percent, s.budget_remaining_percent
    );
    let key = format!("slo:{name}");
    if let Some(r) = s.alerting.as_ref().and_then(|a| rules.iter().find(|r| &r.name == a)) {
        let rate = |d: ConfigDuration| s.burn_rates.get(&d.to_string()).copied().flatten().unwrap_or(f64::NAN);
        let status = if r.level == AlertLevel::Critical { Status::Critical } else { Status::Warning };
        return CheckResult::new(
            key,
            status,
            format!(
                "{name}: the error budget burns {:.1}× over {} and {:.1}× over {} ({}: at least {}×); {summary}",
                rate(r.long),
                r.long,
                rate(r.short),
                r.short,
                r.name,
                r.burn
            ),
        )
        .with_title(format!("SLO of {name} burns its error budget ({})", r.name))
        .with_value((s.budget_remaining_percent * 10.0).round() / 10.0, "percent");
    }
    let c = if s.total > 0 && s.budget_remaining_percent <= 0.0 {
        CheckResult::new(key, Status::Warning, format!("{name}: error budget spent: {summary}"))
            .with_title(format!("SLO of {name}: error budget spent"))
    } else {
        CheckResult::ok(key, format!("{name}: {summary}"))
    };
    c.with_value((s.budget_remaining_percent * 10.0).round() / 10.0, "percent")
}

/// The metrics of one objective.
pub fn metrics(s: &SloStatus, put: &mut dyn FnMut(&str, f64) -> std::io::Result<()>) -> std::io::Result<()> {
    use qmoi_core::report::metric_key as key;
    let e = ("endpoint", s.name.as_str());
    put(&key("qmoi_slo_objective_ratio", &[e]), s.objective_percent / 100.0)?;
    if let Some(a) = s.availability_percent {
        put(&key("qmoi_slo_availability_ratio", &[e, ("window", &s.window.to_string())]), a / 100.0)?;
    }
    put(&key("qmoi_slo_error_budget_remaining_ratio", &[e]), s.budget_remaining_percent / 100.0)?;
    put(&key("qmoi_slo_probes_total", &[e]), s.total as f64)?;
    put(&key("qmoi_slo_probes_bad_total", &[e]), (s.total - s.good) as f64)?;
    for (w, r) in &s.burn_rates {
        if let Some(r) = r {
            put(&key("qmoi_slo_burn_rate", &[e, ("window", w)]), *r)?;
        }
    }
    put(&key("qmoi_slo_alerting", &[e]), if s.alerting.is_some() { 1.0 } else { 0.0 })
}

/// One endpoint in the monthly report (`--sla-report`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonthRow {
    pub endpoint: String,
    pub objective_percent: f64,
    pub availability_percent: Option<f64>,
    pub probes: u64,
    pub bad: u64,
    /// Probes during maintenance windows (not counted).
    pub excluded: u64,
    pub budget_remaining_percent: f64,
    /// The month's time the bad probes stand for (each probe for an equal share of it).
    pub downtime_minutes: f64,
    /// The downtime the objective allows over the month's counted time.
    pub allowed_downtime_minutes: f64,
    /// None without counted probes.
    pub met: Option<bool>,
}

/// The first second of `month` (`"2026-11"`, UTC) and of the month after it.
pub fn month_bounds(month: &str) -> Result<(i64, i64), String> {
    let bad = || format!("'{month}' is not a month: write YYYY-MM, e.g. 2026-11");
    let (y, m) = month.trim().split_once('-').ok_or_else(bad)?;
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = chrono::NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
    let next = if m == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
    }
    .ok_or_else(bad)?;
    let ts = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).ok_or_else(bad);
    Ok((ts(start)?, ts(next)?))
}

/// The monthly report of every endpoint of `endpoints` with an objective, from the hour
/// buckets of `[from, to)`.
pub fn month_report(store: &Store, endpoints: &[Endpoint], (from, to): (i64, i64)) -> rusqlite::Result<Vec<MonthRow>> {
    let minutes = (to - from) as f64 / 60.0;
    let mut rows = Vec::new();
    for e in endpoints {
        let Some(t) = &e.slo else { continue };
        let c = store.sum(&e.name, HOUR, from, to)?;
        let all = (c.total + c.excluded) as f64;
        let share = |n: u64| if all > 0.0 { n as f64 / all * minutes } else { 0.0 };
        rows.push(MonthRow {
            endpoint: e.name.clone(),
            objective_percent: t.objective,
            availability_percent: c.availability(),
            probes: c.total,
            bad: c.bad,
            excluded: c.excluded,
            budget_remaining_percent: c.budget_remaining(t.objective),
            downtime_minutes: share(c.bad),
            allowed_downtime_minutes: share(c.total) * allowed_error_ratio(t.objective),
            met: c.availability().map(|a| a >= t.objective),
        });
    }
    Ok(rows)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn met_word(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "yes",
        Some(false) => "no",
        None => "no data",
    }
}

const COLUMNS: [&str; 10] = [
    "endpoint",
    "objective_percent",
    "availability_percent",
    "probes",
    "bad",
    "excluded_maintenance",
    "budget_remaining_percent",
    "downtime_minutes",
    "allowed_downtime_minutes",
    "met",
];

fn fields(r: &MonthRow) -> [String; 10] {
    [
        r.endpoint.clone(),
        format!("{}", r.objective_percent),
        cell(r.availability_percent, 4),
        r.probes.to_string(),
        r.bad.to_string(),
        r.excluded.to_string(),
        format!("{:.2}", r.budget_remaining_percent),
        format!("{:.1}", r.downtime_minutes),
        format!("{:.1}", r.allowed_downtime_minutes),
        met_word(r.met).to_string(),
    ]
}

/// CSV (RFC 4180: a field with a comma, quote or line break is quoted).
pub fn render_csv(rows: &[MonthRow]) -> String {
    let quote = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_string() }
    };
    let mut out = COLUMNS.join(",") + "\n";
    for r in rows {
        out += &fields(r).iter().map(|f| quote(f)).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

/// A table for the terminal (names with control characters made visible).
pub fn render_table(rows: &[MonthRow], month: &str) -> String {
    use std::fmt::Write as _;
    let mut out = format!("SLA report for {month} (UTC)\n\n");
    let w = rows.iter().map(|r| r.endpoint.chars().count()).max().unwrap_or(8).clamp(8, 40);
    let _ = writeln!(
        out,
        "{:<w$}  {:>9}  {:>12}  {:>9}  {:>7}  {:>9}  {:>13}  {:>10}  {:>8}  MET",
        "ENDPOINT", "OBJECTIVE", "AVAILABILITY", "PROBES", "BAD", "MAINTAIN", "BUDGET LEFT", "DOWNTIME", "ALLOWED"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w$}  {:>8}%  {:>11}%  {:>9}  {:>7}  {:>9}  {:>12.1}%  {:>7.1} min  {:>4.1} min  {}",
            qmoi_core::human::clip(&qmoi_core::human::escape_control(&r.endpoint), w),
            r.objective_percent,
            cell(r.availability_percent, 3),
            r.probes,
            r.bad,
            r.excluded,
            r.budget_remaining_percent,
            r.downtime_minutes,
            r.allowed_downtime_minutes,
            met_word(r.met)
        );
    }
    if rows.is_empty() {
        out.push_str("(no endpoint has an objective: add slo = { objective = 99.9 } to an endpoint)\n");
    }
    out
}

/// A printable HTML page (every text escaped).
pub fn render_html(rows: &[MonthRow], month: &str, host: &str) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut body = String::new();
    for r in rows {
        let class = match r.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "nodata",
        };
        body += &format!(
            "<tr class=\"{class}\">{}</tr>\n",
            fields(r).iter().map(|f| format!("<td>{}</td>", esc(f))).collect::<String>()
        );
    }
    let head: String = COLUMNS.iter().map(|c| format!("<th>{}</th>", esc(&c.replace('_', " ")))).collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SLA report {m} — {h}</title>\n\
         <style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         th,td{{border:1px solid #999;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         tr.missed td{{background:#fde2e2}}tr.met td:last-child{{color:#14532d}}\
         @media print{{body{{margin:0}}th{{background:#eee!important;-webkit-print-color-adjust:exact}}}}</style>\n\
         </head><body>\n<h1>SLA report {m}</h1>\n<p>Host {h}; month in UTC; probes during maintenance windows are \
         not counted; downtime is the month's share the bad probes stand for.</p>\n\
         <table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n</body></html>\n",
        m = esc(month),
        h = esc(host),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, long: &str, short: &str, burn: f64) -> BurnAlert {
        BurnAlert {
            name: name.into(),
            level: qmoi_core::AlertLevel::Critical,
            long: ConfigDuration::parse(long).unwrap(),
            short: ConfigDuration::parse(short).unwrap(),
            burn,
        }
    }

    /// The figures of the SRE workbook's example, by hand: a 99.9% objective over 30
    /// days allows 0.1% bad probes.
    #[test]
    fn budget_and_burn_rates_by_hand() {
        let target = SloTarget { objective: 99.9, window: ConfigDuration::parse("30d").unwrap() };
        // 43,200 probes in the window (one a minute for 30 days), 21 bad: the budget is
        // 43.2 bad probes, 21 of them spent: 51.39% left; availability 43,179 / 43,200.
        let window = Counts { total: 43_200, bad: 21, excluded: 60 };
        assert!((window.budget_remaining(99.9) - (1.0 - 21.0 / 43.2) * 100.0).abs() < 1e-9);
        assert!((window.availability().unwrap() - 99.951_388_888).abs() < 1e-6);
        // The last hour: 60 probes, 1 bad → error rate 1/60 = 1.667% → burn 16.67 ≥ 14.4.
        // The last 5 minutes: 5 probes, 1 bad → 20% → burn 200.
        let mut burn = HashMap::new();
        burn.insert(3600, Counts { total: 60, bad: 1, excluded: 0 });
        burn.insert(300, Counts { total: 5, bad: 1, excluded: 0 });
        burn.insert(6 * 3600, Counts { total: 360, bad: 1, excluded: 0 });
        burn.insert(1800, Counts { total: 30, bad: 1, excluded: 0 });
        let rules = [rule("page", "1h", "5m", 14.4), rule("ticket", "6h", "30m", 6.0)];
        let s = status("checkout", &target, window, &burn, &rules);
        assert_eq!(s.alerting.as_deref(), Some("page"));
        assert!((s.burn_rates["1h"].unwrap() - 1.0 / 60.0 / 0.001).abs() < 1e-6);
        assert!((s.burn_rates["5m"].unwrap() - 200.0).abs() < 1e-6);
        // 6 h: 1/360 / 0.001 = 2.78 < 6: the ticket alone would not fire.
        assert!((s.burn_rates["6h"].unwrap() - 1.0 / 360.0 / 0.001).abs() < 1e-6);
        assert_eq!((s.good, s.total, s.excluded), (43_179, 43_200, 60));
        // The short window recovered (no bad probe in the last 5 minutes): no page.
        burn.insert(300, Counts { total: 5, bad: 0, excluded: 0 });
        assert_eq!(status("checkout", &target, window, &burn, &rules).alerting, None);
        // Overspent: 100 bad of an allowance of 43.2 → -131.48%.
        let over = Counts { total: 43_200, bad: 100, excluded: 0 };
        assert!((over.budget_remaining(99.9) - (1.0 - 100.0 / 43.2) * 100.0).abs() < 1e-9);
        assert_eq!(Counts::default().budget_remaining(99.9), 100.0);
        assert_eq!(Counts::default().availability(), None);
    }

    #[test]
    fn buckets_add_up_by_minute_and_hour_and_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("slo.db")).unwrap();
        let h = 1_800_000_000 - 1_800_000_000 % HOUR;
        let mut pending = HashMap::new();
        for (minute, ok, excl) in [(h, true, false), (h, false, false), (h + 60, true, false), (h + 120, false, true)] {
            pending.entry(("a".to_string(), minute)).or_insert_with(Counts::default).add(ok, excl);
        }
        s.add(&pending, h + 150, 400 * 86_400).unwrap();
        s.add(&pending, h + 150, 400 * 86_400).unwrap(); // the same again: counts add up
        let window = s.window("a", ConfigDuration::parse("30d").unwrap(), h + 150).unwrap();
        assert_eq!(window, Counts { total: 6, bad: 2, excluded: 2 });
        assert_eq!(s.recent("a", 60, h + 150).unwrap(), Counts { total: 0, bad: 0, excluded: 2 });
        assert_eq!(s.recent("a", 120, h + 150).unwrap(), Counts { total: 2, bad: 0, excluded: 2 });
        assert_eq!(s.recent("a", 180, h + 150).unwrap(), Counts { total: 6, bad: 2, excluded: 2 });
        // Three days later the minutes are gone, the hour stays.
        s.add(&HashMap::new(), h + 3 * 86_400, 400 * 86_400).unwrap();
        assert_eq!(s.sum("a", MINUTE, 0, i64::MAX).unwrap(), Counts::default());
        assert_eq!(s.sum("a", HOUR, 0, i64::MAX).unwrap().total, 6);
    }
}
