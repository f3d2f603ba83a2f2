//! `qmoi-cloud`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_cloud::{CloudConfig, CloudMonitor};
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_core::runner::{MonitorConfig, Runner};
use std::process::ExitCode;

/// QMOI cloud monitor: AWS, Azure and GCP instances (state, status checks, CPU), volumes
/// and public IPs, month-to-date spend and forecast against a budget, cost anomalies, and
/// waste (unattached volumes, unassociated IPs, idle instances).
///
/// Credentials come from each provider's standard chain: AWS the SDK default chain
/// (environment, profile, SSO, instance role); Azure a service principal
/// (AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET) or managed identity; GCP a
/// service-account key file (GOOGLE_APPLICATION_CREDENTIALS) or the metadata server.
///
/// Without --once/--check it runs every interval and writes
/// <report-dir>/cloud_resources_latest.json until SIGTERM or Ctrl-C. It only reads.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,

    /// Look at this provider only (its name, or a type: aws, azure, gcp)
    #[arg(long, value_name = "NAME")]
    provider: Option<String>,
}

fn main() -> ExitCode {
    // One glibc arena: the SDK's and reqwest's threads (DNS lookups) would each get their
    // own, and keep its pages after a listing of thousands of instances.
    qmoi_core::mem::single_arena();
    let cli = Cli::parse();
    let info = component::CLOUD_RESOURCES;
    let only = cli.provider.clone();
    if !cli.args.check {
        return qmoi_core::runner::main::<CloudConfig, _>(info, cli.args, |cfg| {
            CloudMonitor::new(cfg, only.as_deref())
        });
    }
    // --check: the findings and the inventory they come from.
    let (cfg, _) = match qmoi_core::runner::load_config::<CloudConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let monitor = match CloudMonitor::new(&cfg, only.as_deref()) {
        Ok(m) => m.keep_inventory(),
        Err(e) => {
            eprintln!("qmoi-cloud: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qmoi-cloud: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    for p in monitor.providers() {
        eprintln!("Listing {} ({})…", p.name, p.kind.as_str());
    }
    let mut runner = Runner::new(info, monitor, cfg.interval(), cfg.check_timeout());
    let report = rt.block_on(runner.run_once(qmoi_core::runner::Mode::Check));
    print!("{}", qmoi_cloud::tables::inventory_tables(runner.monitor()));
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
