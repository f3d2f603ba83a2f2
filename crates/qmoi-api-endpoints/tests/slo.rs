//! Service level objectives with the real binary: a synthetic history is written into the
//! SLO database (numbers chosen so that every expected figure is computed by hand below),
//! a real probe of a real failing HTTP server is added by `--once`, and the report's check,
//! alert, metrics and `details.slo` must match; a maintenance window of the component in
//! the dashboard's database excludes the next probe; `--sla-report` prints a month from a
//! synthetic month in every format.

mod common;

use axum::Router;
use axum::routing::get;
use qmoi_testkit::{check, read_json};
use rusqlite::{Connection, params};
use std::path::Path;
use std::process::Command;

const HOUR: i64 = 3600;
const MINUTE: i64 = 60;

fn failing_server() -> std::net::SocketAddr {
    common::serve_on_thread(|l| async move {
        let app = Router::new().route("/", get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }));
        let _ = axum::serve(l, app).await;
    })
}

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qmoi-api-endpoints"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The database as the monitor makes it (its own code creates it), open to seed it.
fn seed_db(path: &Path) -> Connection {
    drop(qmoi_core::slo::Store::open(path).unwrap_or_else(|e| panic!("{e}")));
    Connection::open(path).unwrap_or_else(|e| panic!("{e}"))
}

fn put(c: &Connection, endpoint: &str, res: i64, start: i64, total: i64, bad: i64, maint: i64) {
    c.execute(
        "INSERT OR REPLACE INTO buckets VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![endpoint, res, start, total, bad, maint],
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn slo_row<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["details"]["slo"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no slo row {name}: {}", r["details"]))
}

#[test]
fn burn_alerts_and_budget_from_a_synthetic_history_and_maintenance_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let server = failing_server();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "interval = 1\nstate_file = \"state.json\"\n[slo]\ndatabase = \"slo.db\"\nmaintenance_database = \"history.db\"\n\
             [[endpoints]]\nname = \"checkout\"\nkind = \"http\"\nurl = \"http://{server}/\"\n\
             slo = {{ objective = 99.9, window = \"30d\" }}\n"
        ),
    )
    .unwrap();
    // Not across a minute boundary: the seeded minutes must be the last ones when the
    // probe lands (the run takes well under a second).
    let mut now = chrono::Utc::now().timestamp();
    if now.rem_euclid(MINUTE) > 50 {
        std::thread::sleep(std::time::Duration::from_secs(11));
        now = chrono::Utc::now().timestamp();
    }
    let (hour, minute) = (now - now.rem_euclid(HOUR), now - now.rem_euclid(MINUTE));
    let db = seed_db(&dir.path().join("slo.db"));
    // The window (30 days = 720 hours, the current one included): the 719 hours before
    // the current one, 60 good probes each = 43,140; the hour before the window has 1,000
    // bad probes that must not count.
    for h in 1..=719 {
        put(&db, "checkout", HOUR, hour - h * HOUR, 60, 0, 0);
    }
    put(&db, "checkout", HOUR, hour - 720 * HOUR, 1000, 1000, 0);
    // The last 59 minutes before the current one: one probe each, the one 3 minutes ago
    // bad.
    for m in 1..=59 {
        put(&db, "checkout", MINUTE, minute - m * MINUTE, 1, i64::from(m == 3), 0);
    }
    drop(db);

    let out = run_in(dir.path(), &["--config", "c.toml", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap();
    // The real probe (503: bad) is the one probe of the current minute and hour.
    //   window: 43,140 + 1 = 43,141 probes, 1 bad: availability 43,140 / 43,141;
    //           budget 0.1% × 43,141 = 43.141 bad probes allowed, 1 spent.
    //   1 h (60 minutes): 60 probes, 2 bad: 2/60 = 3.333% → burn 33.33 ≥ 14.4
    //   5 min: 5 probes, 2 bad: 40% → burn 400 ≥ 14.4: the page fires.
    //   6 h and 30 min hold only the minutes seeded: 60 probes, 2 bad → 33.33 ≥ 6.
    let s = slo_row(&r, "checkout");
    assert_eq!(
        (s["total"].as_u64(), s["good"].as_u64(), s["excluded"].as_u64()),
        (Some(43_141), Some(43_140), Some(0))
    );
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap_or(f64::NAN) - want).abs() < 1e-6;
    assert!(close(&s["availability_percent"], 43_140.0 / 43_141.0 * 100.0), "{s}");
    assert!(close(&s["budget_remaining_percent"], (1.0 - 1.0 / 43.141) * 100.0), "{s}");
    assert!(close(&s["burn_rates"]["1h"], 2.0 / 60.0 / 0.001), "{s}");
    assert!(close(&s["burn_rates"]["5m"], 2.0 / 5.0 / 0.001), "{s}");
    assert!(close(&s["burn_rates"]["6h"], 2.0 / 60.0 / 0.001), "{s}");
    assert_eq!(s["alerting"], "page", "{s}");
    let c = check(&r, "slo:checkout");
    assert_eq!(c["status"], "critical", "{c}");
    assert!(c["message"].as_str().is_some_and(|m| m.contains("burns 33.3× over 1h and 400.0× over 5m (page")), "{c}");
    assert!(
        r["alerts"].as_array().unwrap().iter().any(|a| a["fingerprint"] == "api_endpoints/slo:checkout"
            && a["level"] == "critical"
            && a["title"] == "SLO of checkout burns its error budget (page)"),
        "{}",
        r["alerts"]
    );
    let m = &r["metrics"];
    assert!(close(&m["qmoi_slo_error_budget_remaining_ratio{endpoint=\"checkout\"}"], 1.0 - 1.0 / 43.141), "{m}");
    assert!(close(&m["qmoi_slo_burn_rate{endpoint=\"checkout\",window=\"5m\"}"], 400.0), "{m}");
    assert_eq!(m["qmoi_slo_alerting{endpoint=\"checkout\"}"], 1.0);

    // A maintenance window of the component (the dashboard's table): the next probe is
    // excluded, the counted probes stay as they were.
    let h = Connection::open(dir.path().join("history.db")).unwrap();
    h.execute_batch(
        "CREATE TABLE maintenance (id INTEGER PRIMARY KEY, component TEXT NOT NULL, reason TEXT NOT NULL,
         created_by TEXT NOT NULL, created_at INTEGER NOT NULL, starts_at INTEGER NOT NULL, ends_at INTEGER NOT NULL,
         ended_at INTEGER)",
    )
    .unwrap();
    h.execute(
        "INSERT INTO maintenance (component, reason, created_by, created_at, starts_at, ends_at)
         VALUES ('api_endpoints', 'test', 'test', ?1, ?1, ?2)",
        params![now - 10, now + 3600],
    )
    .unwrap();
    drop(h);
    let out = run_in(dir.path(), &["--config", "c.toml", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap();
    let s = slo_row(&r, "checkout");
    assert_eq!((s["total"].as_u64(), s["excluded"].as_u64()), (Some(43_141), Some(1)), "{s}");
}

#[test]
fn the_monthly_report_from_a_synthetic_month() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[slo]\ndatabase = \"slo.db\"\n\
         [[endpoints]]\nname = \"checkout\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\nslo = { objective = 99.9 }\n\
         [[endpoints]]\nname = \"shop, eu\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\nslo = { objective = 99.5 }\n\
         [[endpoints]]\nname = \"no objective\"\nkind = \"tcp\"\ntarget = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let db = seed_db(&dir.path().join("slo.db"));
    // November 2026 (UTC): 720 hours of 60 probes = 43,200, 30 of them bad (10 in each of
    // three hours), 120 probes in a maintenance window; October's last hour and
    // December's first with bad probes that must not count.
    let nov = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    for h in 0..720 {
        let bad = if [5, 100, 700].contains(&h) { 10 } else { 0 };
        let maint = if h == 300 { 120 } else { 0 };
        put(&db, "checkout", HOUR, nov + h * HOUR, 60, bad, maint);
    }
    put(&db, "checkout", HOUR, nov - HOUR, 60, 60, 0);
    put(&db, "checkout", HOUR, nov + 720 * HOUR, 60, 60, 0);
    drop(db);

    // By hand, for checkout: availability 43,170 / 43,200 = 99.930555…% ≥ 99.9: met;
    // budget 0.1% × 43,200 = 43.2 allowed, 30 spent: 30.56% left; the month is 43,200
    // minutes over 43,320 probes (counted and in maintenance): the 30 bad ones stand for
    // 30 / 43,320 × 43,200 = 29.917 minutes; allowed 0.1% of the 43,200 / 43,320 × 43,200
    // counted minutes = 43.080.
    let out = run_in(dir.path(), &["--config", "c.toml", "--sla-report", "--month", "2026-11", "--format", "csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "endpoint,objective_percent,availability_percent,counted,bad,excluded_maintenance,budget_remaining_percent,\
             downtime_minutes,allowed_downtime_minutes,met",
            "checkout,99.9,99.9306,43200,30,120,30.56,29.9,43.1,yes",
            "\"shop, eu\",99.5,-,0,0,0,100.00,0.0,0.0,no data",
        ],
        "{csv}"
    );

    let out = run_in(dir.path(), &["--config", "c.toml", "--sla-report", "--month", "2026-11", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["month"], "2026-11");
    let row = &j["endpoints"][0];
    assert!((row["downtime_minutes"].as_f64().unwrap() - 30.0 / 43_320.0 * 43_200.0).abs() < 1e-9, "{row}");
    assert!((row["allowed_downtime_minutes"].as_f64().unwrap() - 43_200.0 / 43_320.0 * 43_200.0 * 0.001).abs() < 1e-9);
    assert_eq!(row["met"], true);

    let out = run_in(dir.path(), &["--config", "c.toml", "--sla-report", "--month", "2026-11", "--format", "html"]);
    let html = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(html.starts_with("<!doctype html>") && html.contains("@media print"), "{html}");
    assert!(html.contains("<tr class=\"met\"><td>checkout</td>") && html.contains("<td>shop, eu</td>"), "{html}");

    let out = run_in(dir.path(), &["--config", "c.toml", "--sla-report", "--month", "2026-11"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("SLA report for 2026-11 (UTC)") && table.contains("99.931%"), "{table}");

    let out = run_in(dir.path(), &["--config", "c.toml", "--sla-report", "--month", "2026-13"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'2026-13' is not a month"));
}
