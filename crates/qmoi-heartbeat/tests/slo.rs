//! Objectives of heartbeats with the real daemon: a check's seconds are counted as the
//! status it had (ok after a success ping, bad after a `fail` ping) on top of a synthetic
//! hour written into the SLO database, the page fires once the failure burns the budget,
//! and `--sla-report` prints a synthetic month whose figures are round by construction.

use qmoi_testkit::{free_port, read_json, wait_for};
use rusqlite::{Connection, params};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const UUID: &str = "5a7c1e2b-0000-4000-8000-000000000042";
const HOUR: i64 = 3600;

fn seed(path: &Path, rows: &[(i64, i64, i64, i64)]) {
    // The database as the monitor makes it (its own code creates it).
    drop(qmoi_core::slo::Store::open(path).unwrap_or_else(|e| panic!("{e}")));
    let c = Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    let tx = c.unchecked_transaction().unwrap_or_else(|e| panic!("{e}"));
    for (res, start, total, bad) in rows {
        tx.execute("INSERT INTO buckets VALUES ('nightly', ?1, ?2, ?3, ?4, 0)", params![res, start, total, bad])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().unwrap_or_else(|e| panic!("{e}"));
}

fn ping(port: u16, word: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let path = if word.is_empty() { format!("/ping/{UUID}") } else { format!("/ping/{UUID}/{word}") };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn seconds_count_as_their_status_and_a_failure_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let now = chrono::Utc::now().timestamp();
    let hour = now - now.rem_euclid(HOUR);
    // The hour before this one: 3,600 seconds, 36 of them bad (1%, the whole allowance
    // of a 99% objective).
    seed(&d.join("slo.db"), &[(HOUR, hour - HOUR, 3600, 36)]);
    std::fs::write(
        d.join("hb.toml"),
        format!(
            "interval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\n[slo]\ndatabase = \"slo.db\"\n\
             [[checks]]\nname = \"nightly\"\nuuid = \"{UUID}\"\nperiod = \"1h\"\n\
             slo = {{ objective = 99.0, window = \"2h\" }}\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_qmoi-heartbeat"))
        .current_dir(d)
        .args(["--config", "hb.toml", "--report-dir", "logs", "--log-dir", "logs"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = qmoi_testkit::Kill(child);
    let report = || read_json(&d.join("logs/heartbeats_latest.json"));
    let slo = |r: &serde_json::Value| r["details"]["slo"][0].clone();
    wait_for(Duration::from_secs(10), "the first report", report);
    // Never pinged: not counted.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(slo(&report().unwrap())["total"], 3600, "a check that never pinged is not counted");

    ping(port, "");
    let ok = wait_for(Duration::from_secs(10), "good seconds", || {
        let s = slo(&report()?);
        (s["total"].as_u64()? >= 3603).then_some(s)
    });
    assert_eq!(ok["good"].as_u64().unwrap() + 36, ok["total"].as_u64().unwrap(), "only the seeded hour was bad: {ok}");
    assert!(ok["alerting"].is_null(), "{ok}");

    ping(port, "fail");
    let r = wait_for(Duration::from_secs(20), "the page", || {
        let r = report()?;
        (slo(&r)["alerting"] == "page").then_some(r)
    });
    let s = slo(&r);
    let (total, good) = (s["total"].as_u64().unwrap(), s["good"].as_u64().unwrap());
    assert!(total - good > 36, "failing seconds count as bad: {s}");
    // The minute buckets hold only this run: bad seconds ÷ all of them ÷ 1% allowed.
    let burn = s["burn_rates"]["5m"].as_f64().unwrap();
    assert!((14.4..=100.0).contains(&burn), "{s}");
    let c = qmoi_testkit::check(&r, "slo:nightly");
    assert_eq!(c["status"], "critical", "{c}");
    assert!(r["metrics"]["qmoi_slo_alerting{check=\"nightly\"}"] == 1.0, "{}", r["metrics"]);
}

#[test]
fn the_monthly_report_counts_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nov = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    // November: 720 hours of 3,600 seconds = 2,592,000 s; 259 bad in every 72nd hour (10
    // hours): 2,590 bad.
    let rows: Vec<(i64, i64, i64, i64)> =
        (0..720).map(|h| (HOUR, nov + h * HOUR, 3600, if h % 72 == 0 { 259 } else { 0 })).collect();
    seed(&d.join("slo.db"), &rows);
    std::fs::write(
        d.join("hb.toml"),
        format!(
            "[slo]\ndatabase = \"slo.db\"\n[[checks]]\nname = \"nightly\"\nuuid = \"{UUID}\"\n\
             slo = {{ objective = 99.9 }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qmoi-heartbeat"))
        .current_dir(d)
        .args(["--config", "hb.toml", "--sla-report", "--month", "2026-11", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // By hand: 2,590 bad of 2,592,000 s: availability 2,589,410 / 2,592,000 = 99.90008%
    // (met); the allowance is 0.1% = 2,592 s, 2,590 spent: 0.077% left; downtime 2,590 s
    // = 43.17 minutes against 43.2 allowed.
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "check,objective_percent,availability_percent,counted,bad,excluded_maintenance,budget_remaining_percent,\
             downtime_minutes,allowed_downtime_minutes,met",
            "nightly,99.9,99.9001,2592000,2590,0,0.08,43.2,43.2,yes",
        ],
        "{csv}"
    );
}
