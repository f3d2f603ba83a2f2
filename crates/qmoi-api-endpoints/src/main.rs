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

    /// Probe one URL now, print the time of each phase (DNS, connect, TLS, first byte,
    /// total), and exit 0 when it succeeds (status below 400), 2 when it fails
    #[arg(long, value_name = "URL", conflicts_with_all = ["once", "check", "validate", "print_config"])]
    probe: Option<String>,

    /// Timeout for --probe
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = qmoi_core::cli::parse_duration, requires = "probe")]
    probe_timeout: qmoi_core::config::ConfigDuration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(url) = &cli.probe {
        return ad_hoc(url, cli.probe_timeout.get());
    }
    let Some(info) = component::find("api_endpoints") else {
        return ExitCode::from(3);
    };
    // Probing thousands of endpoints a second is real work: two worker threads.
    qmoi_core::runner::main_with_threads::<EndpointsConfig, _>(info, cli.args, 2, |cfg| {
        EndpointsMonitor::new(cfg.clone())
    })
}

/// `--probe URL`
fn ad_hoc(url: &str, timeout: std::time::Duration) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qmoi-api-endpoints: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.block_on(qmoi_api_endpoints::probe::phases::probe(url, timeout, 1024 * 1024)) {
        Ok(p) => {
            print!("{}", p.render(url, None));
            ExitCode::SUCCESS
        }
        Err((p, e)) => {
            print!("{}", p.render(url, Some(&e)));
            ExitCode::from(2)
        }
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
