//! A reader that reads a report in a tight loop while another thread rewrites it
//! thousands of times never sees a torn or invalid file.

use qmoi_core::report::{HistoryPolicy, ReadOutcome, Report, ReportWriter, read_report};
use qmoi_core::{CheckResult, Status};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn report(i: usize) -> Report {
    // Sizes vary from run to run, so a torn read would show up as broken JSON.
    let checks = (0..(i % 50) + 1).map(|n| CheckResult::ok(format!("check_{n}"), "x".repeat(n * 7 + i % 13))).collect();
    Report {
        schema_version: 1,
        component: "system_health".into(),
        host: "test".into(),
        generated_at: chrono::Utc::now(),
        interval_s: 1,
        duration_ms: i as u64,
        status: Status::Ok,
        summary: format!("write {i}"),
        checks,
        metrics: Default::default(),
        alerts: vec![],
        details: qmoi_core::report::Details::default(),
        streamed: Default::default(),
    }
}

#[test]
fn reader_never_sees_a_torn_report() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let policy = HistoryPolicy { enabled: false, ..HistoryPolicy::default() };
    let mut writer = ReportWriter::new(dir.path(), "system_health", policy);
    writer.write(&report(0))?;
    let path = writer.latest_path();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let reader = std::thread::spawn(move || {
        let (mut good, mut bad) = (0u64, Vec::new());
        while !done2.load(Ordering::Relaxed) {
            match read_report(&path) {
                ReadOutcome::Ok { .. } => good += 1,
                ReadOutcome::Unusable { reason } => bad.push(reason),
            }
        }
        (good, bad)
    });
    const WRITES: usize = 3000;
    for i in 1..=WRITES {
        writer.write(&report(i))?;
    }
    done.store(true, Ordering::Relaxed);
    let (good, bad) = reader.join().map_err(|_| "reader panicked")?;
    assert!(bad.is_empty(), "{} torn reads, first: {}", bad.len(), bad[0]);
    assert!(good > 100, "the reader read only {good} times");
    let last = read_report(&writer.latest_path());
    assert_eq!(last.report().map(|r| r.summary.as_str()), Some(format!("write {WRITES}").as_str()));
    Ok(())
}
