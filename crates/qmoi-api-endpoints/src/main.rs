//! `qmoi-api-endpoints`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_api_endpoints::{EndpointsConfig, EndpointsMonitor};
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use std::process::ExitCode;

/// QMOI API endpoint monitor: availability, latency and error rate of HTTP, TCP, DNS and
/// TLS endpoints, with conditions (status, response time, body, JSON, headers,
/// certificate expiry) and flap-free up/down thresholds.
///
/// Without --once/--check it probes every endpoint on its own schedule and writes
/// <report-dir>/api_endpoints_latest.json every interval until SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(info) = component::find("api_endpoints") else {
        return ExitCode::from(3);
    };
    qmoi_core::runner::main::<EndpointsConfig, _>(info, cli.args, |cfg| EndpointsMonitor::new(cfg.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
