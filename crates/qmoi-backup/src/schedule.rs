//! When a backup is expected: `"daily 02:00"`, `"hourly :15"`, `"weekly sun 03:30"`,
//! `"every 6h"`, in local time. The monitor asks for the latest expected run before now;
//! when that run plus `grace` has passed and no backup is newer than it, the run was missed.

use chrono::{DateTime, Datelike, Duration, Local, NaiveTime, TimeZone, Timelike, Utc, Weekday};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Hourly {
        minute: u32,
    },
    Daily {
        at: NaiveTime,
    },
    Weekly {
        day: Weekday,
        at: NaiveTime,
    },
    /// Every `secs` seconds since the epoch (UTC-aligned: `every 6h` = 00:00, 06:00 … UTC).
    Every {
        secs: i64,
    },
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a schedule (examples: 'daily 02:00', 'hourly :15', 'weekly sun 03:30', 'every 6h')")
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| bad());
        match words.as_slice() {
            ["hourly"] => Ok(Self::Hourly { minute: 0 }),
            ["hourly", m] => {
                let minute: u32 = m.trim_start_matches(':').parse().map_err(|_| bad())?;
                if minute > 59 {
                    return Err(bad());
                }
                Ok(Self::Hourly { minute })
            }
            ["daily", t] => Ok(Self::Daily { at: time(t)? }),
            ["weekly", d, t] => Ok(Self::Weekly { day: d.parse().map_err(|_| bad())?, at: time(t)? }),
            ["every", d] => {
                let d = qmoi_core::config::ConfigDuration::parse(d).map_err(|_| bad())?;
                let secs = i64::try_from(d.get().as_secs()).map_err(|_| bad())?;
                if secs < 60 {
                    return Err(format!("'{s}': the period must be at least 1m"));
                }
                Ok(Self::Every { secs })
            }
            _ => Err(bad()),
        }
    }

    /// The run to judge at `now`: the latest one whose `grace` is over. Within the grace of
    /// the newest run, that is the one before it, which must have produced a backup by now.
    pub fn judged_run(&self, now: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
        self.last_due(now - grace)
    }

    /// The latest time at or before `now` a backup run was due (local time).
    pub fn last_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.last_due_in(now, &Local)
    }

    /// [`Schedule::last_due`] in time zone `tz`. A local time that does not exist that day
    /// (`02:30` when the clocks jump from 02:00 to 03:00) is due at the first minute that
    /// does, as cron runs such jobs; a time that exists twice is due the first time.
    /// (A nonexistent time used to make the whole day's check vanish.)
    pub fn last_due_in<Tz: TimeZone>(&self, now: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(tz);
        let at_local = |date: chrono::NaiveDate, t: NaiveTime| {
            let wanted = date.and_time(t);
            (0..=4 * 60).find_map(|m| {
                tz.from_local_datetime(&(wanted + Duration::minutes(m))).earliest().map(|d| d.with_timezone(&Utc))
            })
        };
        match *self {
            // The latest whole minute whose local minute is `minute` (stepping back in real
            // time, so an hour that happens twice, or an offset of :30, is no special case;
            // `with_minute` on a local time that exists twice gave nothing).
            Self::Hourly { minute } => {
                let base = now.timestamp() - now.timestamp().rem_euclid(60);
                (0..=120).find_map(|k| {
                    DateTime::from_timestamp(base - 60 * k, 0).filter(|t| t.with_timezone(tz).minute() == minute)
                })
            }
            Self::Daily { at } => {
                let today = at_local(local.date_naive(), at)?;
                Some(if today > now { at_local(local.date_naive() - Duration::days(1), at)? } else { today })
            }
            Self::Weekly { day, at } => {
                let back = (7 + local.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
                let date = local.date_naive() - Duration::days(i64::from(back));
                let t = at_local(date, at)?;
                Some(if t > now { at_local(date - Duration::days(7), at)? } else { t })
            }
            Self::Every { secs } => {
                let ts = now.timestamp();
                DateTime::from_timestamp(ts - ts.rem_euclid(secs), 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert!(matches!(Schedule::parse("daily 02:00"), Ok(Schedule::Daily { .. })));
        assert_eq!(Schedule::parse("hourly :15"), Ok(Schedule::Hourly { minute: 15 }));
        assert!(matches!(Schedule::parse("weekly sun 03:30"), Ok(Schedule::Weekly { day: Weekday::Sun, .. })));
        assert_eq!(Schedule::parse("every 6h"), Ok(Schedule::Every { secs: 21_600 }));
        for bad in ["daily", "daily 25:00", "hourly :75", "monthly 1", "every 10s", ""] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_due_is_never_in_the_future_and_within_one_period() {
        let now = Utc::now();
        for s in ["daily 02:00", "hourly :15", "weekly sun 03:30", "every 6h"] {
            let sch = Schedule::parse(s).unwrap_or(Schedule::Every { secs: 60 });
            let due = sch.last_due(now).unwrap_or(now);
            assert!(due <= now, "{s}");
            assert!(now - due <= Duration::days(7) + Duration::hours(1), "{s}");
        }
        let every = Schedule::Every { secs: 3600 };
        let t = DateTime::from_timestamp(7200 + 59, 0).unwrap_or(now);
        assert_eq!(every.last_due(t).map(|d| d.timestamp()), Some(7200));
    }

    /// Regression: `daily 02:30` lost the whole day's check on the day the clocks spring
    /// forward over 02:30 (the local time does not exist). Daily and weekly schedules at
    /// fixed instants across both changes of 2026 in Europe/Berlin.
    #[test]
    fn schedules_across_both_dst_changes() {
        use chrono_tz::Europe::Berlin;
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        let due = |sch: &str, now: &str| {
            Schedule::parse(sch).ok().and_then(|s| s.last_due_in(utc(now), &Berlin)).map(|d| d.to_rfc3339())
        };
        // 2026-03-29: 02:00 CET → 03:00 CEST. 02:30 does not exist: due at 03:00 CEST.
        assert_eq!(due("daily 02:30", "2026-03-29T12:00:00Z").as_deref(), Some("2026-03-29T01:00:00+00:00"));
        assert_eq!(due("weekly sun 02:30", "2026-03-29T12:00:00Z").as_deref(), Some("2026-03-29T01:00:00+00:00"));
        // Before it, the day before's 02:30 CET.
        assert_eq!(due("daily 02:30", "2026-03-29T00:30:00Z").as_deref(), Some("2026-03-28T01:30:00+00:00"));
        // The day after: 02:30 CEST again.
        assert_eq!(due("daily 02:30", "2026-03-30T12:00:00Z").as_deref(), Some("2026-03-30T00:30:00+00:00"));
        // 2026-10-25: 03:00 CEST → 02:00 CET. 02:30 happens twice: due the first time.
        assert_eq!(due("daily 02:30", "2026-10-25T12:00:00Z").as_deref(), Some("2026-10-25T00:30:00+00:00"));
        assert_eq!(due("weekly sun 02:30", "2026-10-25T12:00:00Z").as_deref(), Some("2026-10-25T00:30:00+00:00"));
        assert_eq!(due("daily 04:00", "2026-10-25T12:00:00Z").as_deref(), Some("2026-10-25T03:00:00+00:00"));
        // Hourly keeps its minute through both.
        assert_eq!(due("hourly :15", "2026-03-29T01:20:00Z").as_deref(), Some("2026-03-29T01:15:00+00:00"));
        assert_eq!(due("hourly :15", "2026-10-25T01:20:00Z").as_deref(), Some("2026-10-25T01:15:00+00:00"));
    }

    #[test]
    fn the_judged_run_is_the_latest_whose_grace_is_over() {
        let every = Schedule::Every { secs: 3600 };
        let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let grace = Duration::minutes(5);
        // Two minutes after the 05:00 run: its grace is not over, the 04:00 run is judged.
        assert_eq!(every.judged_run(at(5 * 3600 + 120), grace), Some(at(4 * 3600)));
        // Six minutes after: the 05:00 run.
        assert_eq!(every.judged_run(at(5 * 3600 + 360), grace), Some(at(5 * 3600)));
    }
}
