//! The baseline tool modes of `qmoi-security`: `--init-baseline` (a full scan, with
//! progress) and `--accept` (findings into the baselines).

use crate::SecurityMonitor;
use crate::integrity::scan::Progress;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// `--init-baseline`: a new file baseline from a full scan (replacing the old one, a
/// tampered one too), and the host baseline as seen now.
pub fn init_baseline(monitor: &mut SecurityMonitor) -> ExitCode {
    let Some(integrity) = monitor.integrity_mut() else {
        eprintln!("qmoi-security: file integrity is disabled ([integrity] enabled = false)");
        return ExitCode::from(2);
    };
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let printer = spawn_progress(Arc::clone(&progress), started);
    let result = integrity.init(&progress);
    printer.store(true, Ordering::Relaxed);
    match result {
        Ok(scan) => {
            println!(
                "Baseline created: {} paths, {} files hashed ({}) in {:.2} s → {}",
                scan.files,
                scan.hashed_files,
                qmoi_core::human::bytes(scan.hashed_bytes as f64),
                started.elapsed().as_secs_f64(),
                monitor.data_dir().join(crate::integrity::BASELINE_FILE).display()
            );
            match monitor.accept_host() {
                Ok(what) => println!("Host baseline: {what}"),
                Err(e) => eprintln!("qmoi-security: cannot save the host baseline: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qmoi-security: {e}");
            ExitCode::from(3)
        }
    }
}

/// `--accept [FINDING…]`: the named findings (paths, `file:PATH`, `listener:…`,
/// `account:…` …) into the baselines; none: every file change and the host as seen now.
pub fn accept(monitor: &mut SecurityMonitor, args: Vec<String>) -> ExitCode {
    // Arguments are paths (`file:<path>`, as the checks name them, works too) or host
    // findings (`listener:…`, `account:…`, …); none: accept everything.
    let (host, paths): (Vec<String>, Vec<String>) = args
        .into_iter()
        .map(|a| a.strip_prefix("file:").map_or(a.clone(), str::to_string))
        .partition(|a| SecurityMonitor::is_host_finding(a));
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    if !host.is_empty() {
        match monitor.accept_findings(&host) {
            Ok(what) => println!("Accepted into the host baseline: {what}"),
            Err(e) => {
                eprintln!("qmoi-security: {e}");
                return ExitCode::from(3);
            }
        }
        if paths.is_empty() {
            return ExitCode::SUCCESS;
        }
    }
    let accepted = match monitor.integrity_mut() {
        Some(i) => i.accept(&paths),
        None => Ok(0),
    };
    match accepted {
        Ok(0) if !paths.is_empty() => {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            println!("Nothing to accept under {}: no file there differs from the baseline.", shown.join(", "));
        }
        Ok(n) => println!("Accepted {n} file change(s) into the baseline."),
        Err(e) => {
            eprintln!("qmoi-security: {e}");
            return ExitCode::from(3);
        }
    }
    if paths.is_empty() {
        match monitor.accept_host() {
            Ok(what) => println!("Host baseline now: {what}"),
            Err(e) => {
                eprintln!("qmoi-security: cannot save the host baseline: {e}");
                return ExitCode::from(3);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Print hashing progress to stderr every second until the returned flag is set.
fn spawn_progress(p: Arc<Progress>, started: Instant) -> Arc<std::sync::atomic::AtomicBool> {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::clone(&done);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let bytes = p.bytes.load(Ordering::Relaxed) as f64;
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "  … {} files hashed, {} ({}/s)",
                p.files.load(Ordering::Relaxed),
                qmoi_core::human::bytes(bytes),
                qmoi_core::human::bytes(bytes / secs)
            );
        }
    });
    done
}
