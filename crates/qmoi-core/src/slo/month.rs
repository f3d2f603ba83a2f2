//! The monthly report (`--sla-report --month YYYY-MM`): per subject the month's
//! availability, what was counted, bad and excluded, the budget left, the downtime the bad
//! units stand for and the downtime allowed, met or not; as a table, CSV, JSON or a
//! printable HTML page.

use super::{HOUR, SloTarget, Store, allowed_error_ratio};

/// One subject (endpoint, check) in the monthly report (`--sla-report`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonthRow {
    pub name: String,
    pub objective_percent: f64,
    pub availability_percent: Option<f64>,
    /// Probes (endpoints) or seconds (heartbeats) counted.
    pub counted: u64,
    pub bad: u64,
    /// During maintenance windows (not counted).
    pub excluded: u64,
    pub budget_remaining_percent: f64,
    /// The month's time the bad units stand for (each unit for an equal share of it).
    pub downtime_minutes: f64,
    /// The downtime the objective allows over the month's counted time.
    pub allowed_downtime_minutes: f64,
    /// None without counted probes.
    pub met: Option<bool>,
}

/// The first second of `month` (`"2026-11"`, UTC) and of the month after it.
pub fn bounds(month: &str) -> Result<(i64, i64), String> {
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

/// The monthly report of every subject of `targets`, from the hour buckets of
/// `[from, to)`.
pub fn report(
    store: &Store,
    targets: &[(&str, &SloTarget)],
    (from, to): (i64, i64),
) -> rusqlite::Result<Vec<MonthRow>> {
    let minutes = (to - from) as f64 / 60.0;
    let mut rows = Vec::new();
    for (name, t) in targets {
        let c = store.sum(name, HOUR, from, to)?;
        let all = (c.total + c.excluded) as f64;
        let share = |n: u64| if all > 0.0 { n as f64 / all * minutes } else { 0.0 };
        rows.push(MonthRow {
            name: (*name).to_string(),
            objective_percent: t.objective,
            availability_percent: c.availability(),
            counted: c.total,
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

/// The columns after the subject's (`endpoint`, `check`).
const COLUMNS: [&str; 9] = [
    "objective_percent",
    "availability_percent",
    "counted",
    "bad",
    "excluded_maintenance",
    "budget_remaining_percent",
    "downtime_minutes",
    "allowed_downtime_minutes",
    "met",
];

fn fields(r: &MonthRow) -> [String; 10] {
    [
        r.name.clone(),
        format!("{}", r.objective_percent),
        cell(r.availability_percent, 4),
        r.counted.to_string(),
        r.bad.to_string(),
        r.excluded.to_string(),
        format!("{:.2}", r.budget_remaining_percent),
        format!("{:.1}", r.downtime_minutes),
        format!("{:.1}", r.allowed_downtime_minutes),
        met_word(r.met).to_string(),
    ]
}

/// CSV (RFC 4180: a field with a comma, quote or line break is quoted); the first
/// column is `subject` (`endpoint`, `check`).
pub fn render_csv(rows: &[MonthRow], subject: &str) -> String {
    let quote = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_string() }
    };
    let mut out = format!("{subject},{}\n", COLUMNS.join(","));
    for r in rows {
        out += &fields(r).iter().map(|f| quote(f)).collect::<Vec<_>>().join(",");
        out.push('\n');
    }
    out
}

/// A table for the terminal (names with control characters made visible); `unit` is
/// what is counted (`probes`, `seconds`).
pub fn render_table(rows: &[MonthRow], month: &str, subject: &str, unit: &str) -> String {
    use std::fmt::Write as _;
    let mut out = format!("SLA report for {month} (UTC)\n\n");
    let w = rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(8).clamp(8, 40);
    let _ = writeln!(
        out,
        "{:<w$}  {:>9}  {:>12}  {:>9}  {:>7}  {:>9}  {:>13}  {:>11}  {:>8}  MET",
        subject.to_uppercase(),
        "OBJECTIVE",
        "AVAILABILITY",
        unit.to_uppercase(),
        "BAD",
        "MAINTAIN",
        "BUDGET LEFT",
        "DOWNTIME",
        "ALLOWED"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w$}  {:>8}%  {:>11}%  {:>9}  {:>7}  {:>9}  {:>12.1}%  {:>7.1} min  {:>4.1} min  {}",
            crate::human::clip(&crate::human::escape_control(&r.name), w),
            r.objective_percent,
            cell(r.availability_percent, 3),
            r.counted,
            r.bad,
            r.excluded,
            r.budget_remaining_percent,
            r.downtime_minutes,
            r.allowed_downtime_minutes,
            met_word(r.met)
        );
    }
    if rows.is_empty() {
        out.push_str(&format!("(no {subject} has an objective: add slo = {{ objective = 99.9 }} to one)\n"));
    }
    out
}

/// A printable HTML page (every text escaped).
pub fn render_html(rows: &[MonthRow], month: &str, host: &str, subject: &str) -> String {
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
    let head: String =
        std::iter::once(&subject).chain(&COLUMNS).map(|c| format!("<th>{}</th>", esc(&c.replace('_', " ")))).collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SLA report {m} — {h}</title>\n\
         <style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         th,td{{border:1px solid #999;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         tr.missed td{{background:#fde2e2}}tr.met td:last-child{{color:#14532d}}\
         @media print{{body{{margin:0}}th{{background:#eee!important;-webkit-print-color-adjust:exact}}}}</style>\n\
         </head><body>\n<h1>SLA report {m}</h1>\n<p>Host {h}; month in UTC; what happened during maintenance windows is \
         not counted; downtime is the month's share of what was counted bad.</p>\n\
         <table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n</body></html>\n",
        m = esc(month),
        h = esc(host),
    )
}

/// `--sla-report`, `--month`, `--format`: flattened into a monitor's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Print the monthly SLA report of every objective (availability, error budget,
    /// downtime, met or not; maintenance windows excluded) and exit
    #[arg(long, conflicts_with_all = ["once", "check", "validate", "print_config"])]
    pub sla_report: bool,
    /// The month of --sla-report, YYYY-MM in UTC [default: the previous month]
    #[arg(long, value_name = "YYYY-MM", requires = "sla_report")]
    pub month: Option<String>,
    /// Output of --sla-report: table, csv, json or html (printable)
    #[arg(long, value_enum, default_value = "table", requires = "sla_report")]
    pub format: Format,
}

/// How `--sla-report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Html,
}

/// What one monitor's `--sla-report` is about.
pub struct Subjects<'a> {
    /// The monitor's component (its database's default name).
    pub component: &'a str,
    /// What one row is (`endpoint`, `check`) and what is counted (`probes`, `seconds`).
    pub subject: &'a str,
    pub unit: &'a str,
    pub targets: Vec<(&'a str, &'a SloTarget)>,
}

/// `--sla-report [--month YYYY-MM] [--format …]` of a monitor (`binary` names it in an
/// error): printed, exit 0; a bad month 2; a database that cannot be read 3.
pub fn run(binary: &str, settings: &super::SloSettings, s: &Subjects<'_>, args: &ReportArgs) -> std::process::ExitCode {
    match text(settings, s, args.month.as_deref(), args.format) {
        Ok(t) => {
            print!("{t}");
            std::process::ExitCode::SUCCESS
        }
        Err((code, e)) => {
            eprintln!("{binary}: {e}");
            std::process::ExitCode::from(code)
        }
    }
}

/// The report as text, or the exit status with the message.
fn text(
    settings: &super::SloSettings,
    s: &Subjects<'_>,
    month: Option<&str>,
    format: Format,
) -> Result<String, (u8, String)> {
    let month = month.map_or_else(
        || {
            use chrono::Datelike as _;
            let now = chrono::Utc::now().date_naive();
            let first = now.with_day(1).unwrap_or(now);
            (first - chrono::Duration::days(1)).format("%Y-%m").to_string()
        },
        str::to_string,
    );
    let range = bounds(&month).map_err(|e| (2, format!("--month: {e}")))?;
    let rows = if s.targets.is_empty() {
        Vec::new()
    } else {
        let path = settings.database_of(s.component);
        let store = Store::open_read_only(&path)
            .map_err(|e| (3, format!("cannot read the SLO database ({e}); the running monitor writes it")))?;
        report(&store, &s.targets, range).map_err(|e| (3, format!("{}: {e}", path.display())))?
    };
    let host = crate::report::hostname();
    Ok(match format {
        Format::Table => render_table(&rows, &month, s.subject, s.unit),
        Format::Csv => render_csv(&rows, s.subject),
        Format::Html => render_html(&rows, &month, &host, s.subject),
        Format::Json => {
            let doc =
                serde_json::json!({"month": month, "host": host, "unit": s.unit, s.subject.to_string() + "s": rows});
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
    })
}
