//! `qmoi-performance`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_performance::{PerfMonitor, PerformanceConfig};
use std::process::ExitCode;

/// QMOI performance monitor: CPU, pressure (PSI), run queue, disks, network and TCP
/// retransmits sampled every second and summarised per report; top processes and
/// services; response times and throughput from access logs; baselines with degradation
/// alerts, predictions of when disks and memory fill, and recommendations.
///
/// Without --once/--check it runs every interval and writes
/// <report-dir>/performance_latest.json until SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let info = component::PERFORMANCE;
    qmoi_core::runner::main::<PerformanceConfig, _>(info, cli.args, PerfMonitor::new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
