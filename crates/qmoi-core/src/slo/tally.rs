//! A monitor's side of its objectives: what it counts between two reports ([`Tally`],
//! shared with the tasks that probe or receive pings), and at each report the counts
//! written and every objective worked out ([`Objectives`]).

use super::{BurnAlert, Counts, MINUTE, Maintenance, SloSettings, SloStatus, SloTarget, Store, secs, status};
use crate::report::Labels;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The counts not written yet, by (subject index, minute start), and the maintenance
/// windows they are checked against.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Mutex<HashMap<(usize, i64), Counts>>,
    maintenance: RwLock<Maintenance>,
}

impl Tally {
    /// A maintenance window of the component, of `subject` or of its `labels`, is in
    /// force at `t` (what happens then counts for no availability).
    pub fn in_maintenance(&self, t: i64, subject: &str, labels: &Labels) -> bool {
        self.maintenance.read().unwrap_or_else(PoisonError::into_inner).in_force(t, subject, labels)
    }

    /// Count one event (a probe) of subject `idx` (named `name`, with `labels`) at `now`;
    /// whether it counted (false: inside a maintenance window).
    pub fn count(&self, idx: usize, (name, labels): (&str, &Labels), now: i64, ok: bool) -> bool {
        let excluded = self.in_maintenance(now, name, labels);
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.entry((idx, now - now.rem_euclid(MINUTE))).or_default().add(1, ok, excluded);
        !excluded
    }

    /// Count the seconds of `[from, to)` of subject `idx` (named `name`, with `labels`) as
    /// good or bad, each minute's share in its own bucket (seconds inside a maintenance
    /// window excluded).
    pub fn span(&self, idx: usize, (name, labels): (&str, &Labels), from: i64, to: i64, ok: bool) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut t = from;
        while t < to {
            let minute = t - t.rem_euclid(MINUTE);
            let end = (minute + MINUTE).min(to);
            let excluded = self.in_maintenance(t, name, labels);
            p.entry((idx, minute)).or_default().add(u64::try_from(end - t).unwrap_or(0), ok, excluded);
            t = end;
        }
    }

    fn take(&self) -> HashMap<(usize, i64), Counts> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Put counts that could not be written back, to be written with the next ones.
    fn give_back(&self, counts: HashMap<(usize, i64), Counts>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, c) in counts {
            p.entry(k).or_default().merge(c);
        }
    }
}

/// The objectives of one monitor: the database, and each report's statuses.
pub struct Objectives {
    settings: SloSettings,
    /// Whose maintenance windows exclude (`api_endpoints`, `heartbeats`).
    component: &'static str,
    /// Behind a lock only so that the report can be built on another thread.
    store: Option<Mutex<Store>>,
    tally: Arc<Tally>,
    /// `--check`: read what is there, write nothing.
    read_only: bool,
}

impl Objectives {
    pub fn new(settings: SloSettings, component: &'static str) -> Self {
        Self { settings, component, store: None, tally: Arc::default(), read_only: false }
    }

    fn read_maintenance(&self, now: i64) -> Result<(), String> {
        let m = Maintenance::read(Path::new(self.settings.maintenance_database.as_str()), self.component, now)?;
        *self.tally.maintenance.write().unwrap_or_else(PoisonError::into_inner) = m;
        Ok(())
    }

    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    pub fn rules(&self) -> &[BurnAlert] {
        &self.settings.burn_alerts
    }

    /// Read the maintenance windows, and open the database when `any` subject has an
    /// objective (`--check`: read only, and only if it exists).
    pub fn start(&mut self, any: bool, read_only: bool) -> Result<(), String> {
        self.read_only = read_only;
        // The first events are checked against the windows in force now.
        if let Err(e) = self.read_maintenance(chrono::Utc::now().timestamp()) {
            tracing::warn!(error = %e, "Cannot read the maintenance windows; everything counts.");
        }
        if !any {
            return Ok(());
        }
        let path = self.settings.database_of(self.component);
        self.store = match (read_only, path.exists()) {
            (false, _) => Some(Mutex::new(Store::open(&path)?)),
            (true, true) => Some(Mutex::new(Store::open_read_only(&path)?)),
            (true, false) => None,
        };
        Ok(())
    }

    /// Read the maintenance windows again, write what was counted, and work out each
    /// objective: `targets[i]` is subject `i`'s name and objective, if it has one. A
    /// problem with either database is returned beside what could be worked out
    /// (nothing counted is lost: it is written with the next report).
    pub fn report(&mut self, targets: &[Option<(&str, &SloTarget)>], now: i64) -> (Vec<SloStatus>, Option<String>) {
        let mut problem = self.read_maintenance(now).err().map(|e| format!("cannot read the maintenance windows: {e}"));
        let Some(store) = self.store.as_ref() else { return (Vec::new(), problem) };
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = &store.note {
            problem.get_or_insert_with(|| n.clone());
        }
        let counts = self.tally.take();
        if !self.read_only && !counts.is_empty() {
            let named: HashMap<(String, i64), Counts> = counts
                .iter()
                .filter_map(|((i, m), c)| Some(((targets.get(*i).copied().flatten()?.0.to_string(), *m), *c)))
                .collect();
            if let Err(e) = store.add(&named, now, secs(self.settings.keep)) {
                problem = Some(format!("cannot write {}: {e}", self.settings.database_of(self.component).display()));
                self.tally.give_back(counts);
            }
        }
        let mut durations: Vec<i64> =
            self.settings.burn_alerts.iter().flat_map(|r| [secs(r.long), secs(r.short)]).collect();
        durations.sort_unstable();
        durations.dedup();
        let mut out = Vec::new();
        for (name, target) in targets.iter().flatten() {
            let read = || -> rusqlite::Result<SloStatus> {
                let window = store.window(name, target.window, now)?;
                let mut burn = HashMap::new();
                for d in &durations {
                    burn.insert(*d, store.recent(name, *d, now)?);
                }
                Ok(status(name, target, window, &burn, &self.settings.burn_alerts))
            };
            match read() {
                Ok(s) => out.push(s),
                Err(err) => {
                    problem =
                        Some(format!("cannot read {}: {err}", self.settings.database_of(self.component).display()))
                }
            }
        }
        (out, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_split_at_minute_boundaries_and_maintenance() {
        let t = Tally::default();
        let m0: i64 = 1_800_000_000; // a minute start
        let window = |starts_at, ends_at, subject: Option<&str>, labels: &str| crate::maintenance::Window {
            component: "c".into(),
            scope: crate::alerts::Scope {
                subject: subject.map(str::to_string),
                labels: crate::alerts::parse_labels(labels).unwrap(),
            },
            starts_at,
            ends_at,
        };
        *t.maintenance.write().unwrap() = Maintenance::from_windows(vec![
            window(m0 + 120, m0 + 180, None, ""),
            window(m0, m0 + 60, Some("b"), ""),
            window(m0, m0 + 60, None, "team=payments"),
        ]);
        let none = Labels::new();
        let payments = crate::alerts::parse_labels("team=payments,env=prod").unwrap();
        // 50 s of the first minute, all of the second, 30 s of the third (in maintenance).
        t.span(0, ("a", &none), m0 + 10, m0 + 150, false);
        let p = t.take();
        assert_eq!(p[&(0, m0)], Counts { total: 50, bad: 50, excluded: 0 });
        assert_eq!(p[&(0, m0 + 60)], Counts { total: 60, bad: 60, excluded: 0 });
        assert_eq!(p[&(0, m0 + 120)], Counts { total: 0, bad: 0, excluded: 30 });
        t.count(1, ("a", &none), m0 + 5, true);
        t.count(1, ("a", &none), m0 + 6, false);
        assert_eq!(t.take()[&(1, m0)], Counts { total: 2, bad: 1, excluded: 0 });
        // A window of subject b only: b's probes are excluded, a's are not; one of
        // team=payments: what carries that label is excluded too.
        assert!(t.count(1, ("a", &none), m0 + 7, true), "counted");
        assert!(!t.count(2, ("b", &none), m0 + 7, false), "not counted: its window");
        assert!(!t.count(3, ("c", &payments), m0 + 7, false), "not counted: a window of its label");
        let p = t.take();
        assert_eq!((p[&(1, m0)].total, p[&(2, m0)].excluded, p[&(3, m0)].excluded), (1, 1, 1));
    }
}
