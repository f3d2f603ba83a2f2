//! When a check's next success is due: a period after the last one, or the next time of
//! its cron expression in its time zone (`qmoi_core::cron`).

use chrono::{DateTime, Utc};
use qmoi_core::config::ConfigDuration;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(chrono::Duration),
    Cron(Box<qmoi_core::cron::CronTz>),
}

impl Schedule {
    /// From a check's keys: `period` (default one day) or `cron` with `tz` (default UTC).
    pub fn new(period: Option<ConfigDuration>, cron: Option<&str>, tz: Option<&str>) -> Result<Self, String> {
        match (period, cron) {
            (Some(_), Some(_)) => Err("give either period or cron, not both".into()),
            (_, Some(expr)) => Ok(Self::Cron(Box::new(qmoi_core::cron::CronTz::parse(expr, tz)?))),
            (p, None) => {
                let d = p.map_or(std::time::Duration::from_secs(86_400), ConfigDuration::get);
                if d < std::time::Duration::from_secs(1) {
                    return Err(format!("must be at least 1s, got '{}'", ConfigDuration(d)));
                }
                let d = chrono::Duration::from_std(d).map_err(|e| format!("period too long: {e}"))?;
                if tz.is_some() {
                    return Err("tz applies to cron only".into());
                }
                Ok(Self::Every(d))
            }
        }
    }

    /// When the success after one at `last` is due (`None`: the expression has no
    /// further time).
    pub fn next_after(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => last.checked_add_signed(*d),
            Self::Cron(c) => c.next_after(last),
        }
    }

    /// As the docs and reports show it.
    pub fn describe(&self) -> String {
        match self {
            Self::Every(d) => format!("every {}", ConfigDuration(d.to_std().unwrap_or_default())),
            Self::Cron(c) => c.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_and_cron_in_a_time_zone() {
        let every = Schedule::new(Some(ConfigDuration::from_secs(3600)), None, None).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        assert_eq!(every.next_after(t), Some(t + chrono::Duration::hours(1)));
        // 03:00 in Berlin: 02:00 UTC in winter, 01:00 UTC after the switch on 29 March.
        let c = Schedule::new(None, Some("0 3 * * *"), Some("Europe/Berlin")).unwrap();
        assert_eq!(c.next_after(t), Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()));
        let before = Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
        assert_eq!(c.next_after(before), Some(Utc.with_ymd_and_hms(2026, 3, 28, 2, 0, 0).unwrap()));
        assert!(Schedule::new(None, Some("61 * * * *"), None).unwrap_err().contains("not a cron expression"));
        assert!(Schedule::new(None, Some("* * * * *"), Some("Mars/Olympus")).unwrap_err().contains("IANA"));
        assert!(Schedule::new(Some(ConfigDuration::from_secs(60)), Some("* * * * *"), None).is_err());
        assert_eq!(Schedule::new(None, None, None).unwrap().describe(), "every 1d");
    }
}
