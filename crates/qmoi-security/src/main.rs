//! `qmoi-security`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_security::{Options, SecurityConfig, SecurityMonitor, tools};
use std::process::ExitCode;

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
        tools::init_baseline(&mut monitor)
    } else {
        tools::accept(&mut monitor, cli.accept.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
