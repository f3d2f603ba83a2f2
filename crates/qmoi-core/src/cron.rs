//! Cron expressions in an IANA time zone (feature `cron`): croner for the expression
//! (5 fields, or 6 with seconds; `L`, `#`, `W`, names), chrono-tz for the zone, so
//! `0 3 * * *` in `Europe/Berlin` follows daylight saving. Used by heartbeat schedules and
//! recurring maintenance windows.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct CronTz {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
    /// As written (croner spells names as numbers).
    expr: String,
}

impl CronTz {
    /// `expr` in `tz` (default UTC); the error names what is wrong.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Self, String> {
        let tz: chrono_tz::Tz = tz
            .unwrap_or("UTC")
            .parse()
            .map_err(|_| format!("tz '{}' is not an IANA time zone (e.g. 'Europe/Berlin')", tz.unwrap_or("")))?;
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| format!("'{expr}' is not a cron expression: {e}"))?;
        Ok(Self { cron, tz, expr: expr.trim().to_string() })
    }

    /// The first time after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.tz), false).ok().map(|x| x.with_timezone(&Utc))
    }

    /// The last time at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&self.tz), true).ok().map(|x| x.with_timezone(&Utc))
    }

    /// `cron '0 3 * * *' (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        format!("cron '{}' ({})", self.expr, self.tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_follow_the_zone_across_daylight_saving() {
        let c = CronTz::parse("0 3 * * *", Some("Europe/Berlin")).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        assert_eq!(c.next_after(t), Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()));
        assert_eq!(c.last_at_or_before(t), Some(Utc.with_ymd_and_hms(2026, 3, 28, 2, 0, 0).unwrap()));
        let exact = Utc.with_ymd_and_hms(2026, 3, 28, 2, 0, 0).unwrap();
        assert_eq!(c.last_at_or_before(exact), Some(exact), "inclusive");
        assert!(CronTz::parse("61 * * * *", None).unwrap_err().contains("not a cron expression"));
        assert!(CronTz::parse("* * * * *", Some("Mars/Olympus")).unwrap_err().contains("IANA"));
        assert_eq!(CronTz::parse("0 2 * * sun", None).unwrap().describe(), "cron '0 2 * * sun' (UTC)");
    }
}
