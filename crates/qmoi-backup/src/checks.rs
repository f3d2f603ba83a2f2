//! The light checks of one target, each from what was listed: freshness, the scheduled
//! run, size and shrink, count against the retention. Pure functions; the heavy
//! verifications are in [`crate::verify`].

use crate::config::Target;
use crate::discover::Backup;
use crate::schedule::Schedule;
use crate::state::TargetState;
use chrono::{DateTime, Utc};
use qmoi_core::config::ConfigDuration;
use qmoi_core::human;
use qmoi_core::{CheckResult, Status};

/// `backup:<name>`: the newest backup exists and is younger than `max_age`.
pub fn freshness(t: &Target, newest: Option<&Backup>, where_: &str, now: DateTime<Utc>) -> CheckResult {
    let name = &t.name;
    let Some(b) = newest else {
        return CheckResult::new(
            format!("backup:{name}"),
            Status::Critical,
            format!("{name}: no backup found in {where_}"),
        )
        .with_title(format!("Backup missing: {name}"));
    };
    let age = (now - b.time).to_std().unwrap_or_default();
    let (status, what) = if age > t.critical_age() {
        (Status::Critical, format!("older than {}", ConfigDuration(t.critical_age())))
    } else if age > t.max_age.get() {
        (t.bad(), format!("older than {}", t.max_age))
    } else {
        (Status::Ok, format!("max age {}", t.max_age))
    };
    CheckResult::new(
        format!("backup:{name}"),
        status,
        format!("{name}: newest backup {} is {} old ({what})", b.name, human::duration(age.as_secs_f64())),
    )
    .with_value(age.as_secs_f64(), "seconds")
    .with_title(format!("Backup stale: {name}"))
}

/// `schedule:<name>`: the latest scheduled run whose grace is over produced a backup.
pub fn schedule(t: &Target, s: Option<&Schedule>, newest: Option<&Backup>, now: DateTime<Utc>) -> Option<CheckResult> {
    let name = &t.name;
    let (s, b) = (s?, newest?);
    let due = s.judged_run(now, chrono::Duration::from_std(t.grace.get()).unwrap_or_default())?;
    let local = due.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M %Z");
    Some(if b.time < due {
        CheckResult::new(
            format!("schedule:{name}"),
            t.bad(),
            format!("{name}: the run due at {local} produced no backup within {} (newest is from before it)", t.grace),
        )
        .with_title(format!("Scheduled backup missed: {name}"))
    } else {
        CheckResult::ok(format!("schedule:{name}"), format!("{name}: the run due at {local} happened"))
    })
}

/// `size:<name>`: the newest backup's size against `min_size` and the previous one
/// (files; restic reports the bytes processed). Records the size in `ts` either way.
pub fn size(t: &Target, ts: &mut TargetState, newest: Option<&Backup>) -> Option<CheckResult> {
    let name = &t.name;
    let b = newest?;
    let size = b.size?;
    ts.observe(&b.name, b.time, size);
    if t.min_size.is_none() && t.max_shrink_percent.is_none() {
        return None;
    }
    let mut problems = Vec::new();
    if let Some(min) = t.min_size
        && size < min
    {
        problems.push(format!("{} is smaller than min_size {}", human::bytes(size as f64), human::bytes(min as f64)));
    }
    if let (Some(limit), Some(prev)) = (t.max_shrink_percent, ts.previous())
        && prev.size > 0
    {
        let shrink = (1.0 - size as f64 / prev.size as f64) * 100.0;
        if shrink > limit {
            problems.push(format!(
                "{shrink:.0}% smaller than the previous backup {} ({} → {}; limit {limit}%)",
                prev.name,
                human::bytes(prev.size as f64),
                human::bytes(size as f64)
            ));
        }
    }
    let c = if problems.is_empty() {
        CheckResult::ok(format!("size:{name}"), format!("{name}: {} {}", b.name, human::bytes(size as f64)))
    } else {
        CheckResult::new(format!("size:{name}"), Status::Warning, format!("{name}: {} {}", b.name, problems.join("; ")))
            .with_title(format!("Backup shrunk or too small: {name}"))
    };
    Some(c.with_value(size as f64, "bytes"))
}

/// `count:<name>`: the number of backups within `min_count` / `max_count`.
pub fn count(t: &Target, n: usize) -> Option<CheckResult> {
    let name = &t.name;
    let c = match (t.min_count, t.max_count) {
        (None, None) => return None,
        (Some(min), _) if n < min => CheckResult::new(
            format!("count:{name}"),
            Status::Warning,
            format!("{name}: {n} backups, fewer than min_count {min}"),
        )
        .with_title(format!("Too few backups: {name}")),
        (_, Some(max)) if n > max => CheckResult::new(
            format!("count:{name}"),
            Status::Warning,
            format!("{name}: {n} backups, more than max_count {max} (is pruning running?)"),
        )
        .with_title(format!("Too many backups: {name}")),
        _ => CheckResult::ok(format!("count:{name}"), format!("{name}: {n} backups")),
    };
    Some(c.with_value(n as f64, "backups"))
}
