//! `qmoi-api-endpoints`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_api_endpoints::{EndpointsConfig, EndpointsMonitor};
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: thousands of probe tasks allocate and free on two
/// threads, and a report for thousands of endpoints is built and freed every interval.
/// glibc kept that memory in its arenas (RSS twice the live heap), and `malloc_trim`
/// stalled every allocating thread for tens of milliseconds (probe start lateness p99
/// 55-63 ms instead of 3 ms). mimalloc returns freed pages to the kernel by itself.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc reads its options from the environment when the process starts, before
/// `main`: commit arena memory as it is used rather than up front
/// (`MIMALLOC_ARENA_EAGER_COMMIT=0`), and give freed pages back at once rather than after a
/// delay (`MIMALLOC_PURGE_DELAY=0`). With 5,000 endpoints that is 39 MiB of RSS instead of
/// 56 MiB (scripts/bench-endpoints.sh) for about 1% more CPU. When they are not set, the
/// binary executes itself again with them (same process id, same arguments); a value the
/// operator set is kept.
///
/// Setting them through mimalloc's API in `main` instead (`mi_option_set`) is too late:
/// the runtime has allocated by then, and with 5,000 endpoints the median RSS was 35.5 MiB
/// instead of 27.0 (VmHWM 47.8 instead of 37.8; measured 2026-12-06). The re-execution
/// goes through the binary's real path, not `/proc/self/exe`, so the process keeps its own
/// name in `ps`, `top` and the security monitor (it showed as `exe`).
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    if cfg!(feature = "system-alloc") || std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    // The running file's path; when it was replaced or deleted since (" (deleted)"), the
    // magic link still reaches the running file, under the name `exe`.
    let exe = std::fs::read_link("/proc/self/exe")
        .ok()
        .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(" (deleted)"))
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg0(argv0).args(args).env("MIMALLOC_ARENA_EAGER_COMMIT", "0");
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        cmd.env("MIMALLOC_PURGE_DELAY", "0");
    }
    // Only returns on failure; then run with mimalloc's defaults.
    let _ = cmd.exec();
}

/// QMOI API endpoint monitor: availability, latency and error rate of HTTP, TCP, DNS, TLS
/// and ICMP endpoints, with conditions (status, response time, body, JSON, headers,
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

    #[command(flatten)]
    sla: qmoi_core::slo::month::ReportArgs,
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if let Some(url) = &cli.probe {
        return ad_hoc(url, cli.probe_timeout.get());
    }
    let info = component::API_ENDPOINTS;
    if cli.sla.sla_report {
        return sla_report(info, &cli);
    }
    // Probing thousands of endpoints a second is real work: two worker threads.
    qmoi_core::runner::main_with_threads::<EndpointsConfig, _>(info, cli.args, 2, |cfg| {
        EndpointsMonitor::new(cfg.clone())
    })
}

/// `--sla-report [--month YYYY-MM] [--format …]`: 0 printed, 2 a bad month or config, 3
/// the database cannot be read.
fn sla_report(info: &component::ComponentInfo, cli: &Cli) -> ExitCode {
    let (cfg, _) = match qmoi_core::runner::load_config::<EndpointsConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let subjects = qmoi_core::slo::month::Subjects {
        component: info.id,
        subject: "endpoint",
        unit: "probes",
        targets: cfg.endpoints.iter().filter_map(|e| Some((e.name.as_str(), e.slo.as_ref()?))).collect(),
    };
    qmoi_core::slo::month::run(info.binary, &cfg.slo, &subjects, &cli.sla)
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
