//! `qmoi-backup`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_backup::{BackupConfig, BackupMonitor};
use qmoi_core::Report;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_core::runner::{Mode, Monitor, RunContext};
use std::process::ExitCode;

/// QMOI backup monitor: freshness (max age and the expected schedule), size, shrink and
/// retention of backups in folders or restic/Borg repositories, and verification of the
/// newest one: checksums, a full read of the archive (tar, tar.gz, tar.zst, zip), a restore
/// test compared with a manifest or the source, or the repository's own check.
///
/// Without --once/--check it runs every interval and writes
/// <report-dir>/backup_latest.json until SIGTERM or Ctrl-C. It never modifies a backup.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,

    /// Verify TARGET fully now (every configured level, whatever the schedule), print the
    /// result and exit 0 ok, 1 warning, 2 critical, 3 unknown
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["once", "check", "validate", "print_config", "list"])]
    verify: Option<String>,

    /// List every target and the backups it sees, newest first, and exit
    #[arg(long, conflicts_with_all = ["once", "check", "validate", "print_config"])]
    list: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let info = component::BACKUP;
    if cli.verify.is_none() && !cli.list {
        // The daemon verifies in the background; --once and --check wait for the result.
        let daemon = !(cli.args.once || cli.args.check);
        return qmoi_core::runner::main::<BackupConfig, _>(info, cli.args, |cfg| {
            BackupMonitor::new(cfg).map(|m| if daemon { m.in_background() } else { m })
        });
    }
    let (cfg, _) = match qmoi_core::runner::load_config::<BackupConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut monitor = match BackupMonitor::new(&cfg) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("qmoi-backup: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qmoi-backup: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let timeout = cfg.timeout.get();
    if cli.list {
        return rt.block_on(qmoi_backup::tools::list(&monitor, timeout));
    }
    let target = cli.verify.unwrap_or_default();
    if let Err(e) = monitor.force_verify(&target) {
        eprintln!("qmoi-backup: {e}");
        return ExitCode::from(2);
    }
    eprintln!("Verifying {target} (every configured level)…");
    let outcome = rt.block_on(monitor.run(&RunContext {
        check_timeout: timeout,
        since_last: None,
        woken: false,
        mode: Mode::Once,
    }));
    let suffix = format!(":{target}");
    let checks: Vec<_> = outcome.checks.into_iter().filter(|c| c.name.ends_with(&suffix)).collect();
    let report = Report::from_checks(info.id, checks);
    print!("{}", qmoi_core::runner::render_check(&report));
    ExitCode::from(u8::try_from(report.status.exit_code()).unwrap_or(3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
