//! `qmoi-system-health`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_system_health::{SystemHealth, SystemHealthConfig};
use std::process::ExitCode;

/// QMOI system health monitor: CPU, load, memory and swap, disk space and inodes,
/// network interfaces, connectivity, required processes, zombies, open files, uptime
/// and temperatures.
///
/// Without --once/--check it runs every interval and writes
/// <report-dir>/system_health_latest.json until SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let info = component::SYSTEM_HEALTH;
    qmoi_core::runner::main::<SystemHealthConfig, _>(info, cli.args, |cfg| Ok(SystemHealth::new(cfg.clone())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
