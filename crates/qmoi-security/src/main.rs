//! `qmoi-security`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_security::integrity::scan::Progress;
use qmoi_security::{Options, SecurityConfig, SecurityMonitor};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// QMOI security monitor: file integrity (sealed baseline, BLAKE3, inotify), listening
/// sockets and connections, SSH brute force from the auth log, account and sudoers
/// changes, suspicious processes and kernel modules.
///
/// Without --once/--check it runs every interval, reports a file change within about a
/// second, and writes <report-dir>/security_latest.json until SIGTERM or Ctrl-C. The first
/// run creates the baselines in data/; accept later changes with --accept.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,

    /// Build a new file baseline from a full scan (replacing the old one, a tampered one
    /// too), print progress, and exit
    #[arg(long, conflicts_with_all = ["once", "check", "validate", "print_config", "accept"])]
    init_baseline: bool,

    /// Accept findings into the baselines, by the name of their check: a PATH (or
    /// `file:PATH`: it and everything under it), `listener:KEY`, `account:NAME`,
    /// `group:NAME`, `sudoers:PATH`, `module:NAME`. Without arguments accept every file
    /// change and the listeners, accounts and modules seen now. Then exit
    #[arg(long, value_name = "FINDING", num_args = 0.., conflicts_with_all = ["once", "check", "validate", "print_config"])]
    accept: Option<Vec<String>>,

    /// With --once or --check: rehash every file instead of trusting unchanged metadata
    #[arg(long)]
    full: bool,
}

fn main() -> ExitCode {
    qmoi_core::mem::single_arena();
    let cli = Cli::parse();
    let info = component::SECURITY;
    if cli.init_baseline || cli.accept.is_some() {
        return baseline_command(info, &cli);
    }
    let opts = Options {
        realtime: !(cli.args.once || cli.args.check),
        full_first: cli.full,
        own_dirs: vec![cli.args.common.report_dir.clone(), cli.args.common.log_dir.clone()],
        validate_only: cli.args.validate,
    };
    qmoi_core::runner::main::<SecurityConfig, _>(info, cli.args, |cfg| SecurityMonitor::new(cfg, opts))
}

/// `--init-baseline` and `--accept`.
fn baseline_command(info: &'static component::ComponentInfo, cli: &Cli) -> ExitCode {
    let (cfg, _source) = match qmoi_core::runner::load_config::<SecurityConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut monitor = match SecurityMonitor::new(&cfg, Options::default()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("qmoi-security: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.init_baseline {
        let Some(integrity) = monitor.integrity_mut() else {
            eprintln!("qmoi-security: file integrity is disabled ([integrity] enabled = false)");
            return ExitCode::from(2);
        };
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let printer = spawn_progress(Arc::clone(&progress), started);
        let result = integrity.init(&progress);
        printer.store(true, Ordering::Relaxed);
        return match result {
            Ok(scan) => {
                println!(
                    "Baseline created: {} paths, {} files hashed ({}) in {:.2} s → {}",
                    scan.files,
                    scan.hashed_files,
                    qmoi_core::human::bytes(scan.hashed_bytes as f64),
                    started.elapsed().as_secs_f64(),
                    monitor.data_dir().join(qmoi_security::integrity::BASELINE_FILE).display()
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
        };
    }
    // Arguments are paths (`file:<path>`, as the checks name them, works too) or host
    // findings (`listener:…`, `account:…`, …); none: accept everything.
    let args = cli.accept.clone().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
