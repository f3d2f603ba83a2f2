//! `qmoi-supervisor`: see the crate docs in `lib.rs`.

use clap::{Parser, Subcommand};
use qmoi_core::cli::CommonArgs;
use qmoi_supervisor::{Error, control, load_plan, verbs};
use std::process::ExitCode;

/// QMOI master monitor: starts, watches and restarts the QMOI monitors and gives the
/// overall health verdict.
///
/// Run `qmoi-supervisor start` from the installation folder (where `config/` is); it runs
/// in the foreground until SIGTERM or Ctrl-C. The other verbs talk to the running
/// supervisor over its control socket (`run/qmoi-supervisor.sock`).
#[derive(Debug, Parser)]
#[command(version, about, long_about, after_help = COMPATIBILITY)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Start every enabled monitor and supervise them (foreground; systemd-friendly)
    Start,
    /// Show each component and the overall verdict; exit 0 healthy, 1 degraded,
    /// 2 critical. Reads the report files when no supervisor is running.
    Status {
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop and start one monitor now (clears its failure and restart counter)
    RestartComponent {
        /// Component id, e.g. system_health
        name: String,
    },
    /// Clear restart counters, backoff and failures; start failed monitors again
    Reset,
    /// Stop and start every enabled monitor now
    RestartAll,
    /// Restart the dashboard's HTTP server without touching the monitors
    RestartDashboard,
    /// Read the configuration again and apply what changed (as SIGHUP does): only the
    /// monitors whose entry, config file or binary changed restart; an invalid new
    /// configuration changes nothing. Exit 0 applied, 1 refused
    Reload,
    /// Check the master config and every enabled component's config, and find binaries
    Validate,
    /// Read a password on stdin and print its argon2id hash for dashboard.auth.users
    HashPassword,
    /// Maintenance windows: a component that counts for nothing in the verdict and whose
    /// alerts are not notified while one is in force
    Maintenance {
        #[command(subcommand)]
        cmd: MaintenanceCmd,
    },
}

#[derive(Debug, Subcommand)]
enum MaintenanceCmd {
    /// Open a window now, e.g. `maintenance add --for 2h --component backup --reason "disk swap"`
    /// or `maintenance add --for 1h --label team=payments --reason "release"`
    #[command(group = clap::ArgGroup::new("scope").required(true).multiple(true).args(["component", "label"]))]
    Add {
        /// How long: 30m, 2h, 1d
        #[arg(long = "for", value_name = "DURATION", value_parser = qmoi_core::cli::parse_duration)]
        duration: qmoi_core::config::ConfigDuration,
        /// The component, e.g. backup (absent with --label: every component)
        #[arg(long)]
        component: Option<String>,
        /// Only the checks and alerts with this label (an endpoint's or heartbeat check's
        /// `labels`); repeat for several, all must match: `--label team=payments`
        #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
        label: Vec<(String, String)>,
        /// Only this endpoint, heartbeat check, backup target … of the component (its
        /// checks and alerts are those named `<kind>:<subject>`), e.g. `--component
        /// api_endpoints --subject checkout`
        #[arg(long)]
        subject: Option<String>,
        /// Why (shown on the dashboard and in `status`)
        #[arg(long)]
        reason: String,
    },
    /// List the windows in force or to come
    List,
    /// End a window now
    End {
        /// The window's id (from `maintenance list`)
        id: i64,
    },
}

/// `--label team=payments`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    let mut labels = qmoi_core::alerts::parse_labels(s)?;
    match labels.len() {
        1 => labels.pop_first().ok_or_else(|| "give name=value".to_string()),
        _ => Err(format!("give one name=value per --label, got '{s}'")),
    }
}

const COMPATIBILITY: &str = "Compatibility: the original QMOI's spellings work too: --status, \
--restart-component <NAME>, --reset, --restart-dashboard and --restart (= restart-all).";

/// The original QMOI's flags, as the verbs they stand for: `--status` is `status`,
/// `--restart` is `restart-all`, and so on. Any other argument is left as it is.
fn seed_aliases(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| {
            let verb = match a.to_str() {
                Some("--status") => "status",
                Some("--restart-component") => "restart-component",
                Some("--reset") => "reset",
                Some("--restart-dashboard") => "restart-dashboard",
                Some("--restart") => "restart-all",
                _ => return a,
            };
            verb.into()
        })
        .collect()
}

fn main() -> ExitCode {
    // Password checks and big reports allocate blocks of megabytes: map each, so a burst
    // gives its memory back when it ends.
    qmoi_core::mem::map_large_allocations(1 << 20);
    // The overview is built on a short-lived thread every second (off the async
    // workers); with an arena per thread, glibc kept the pages of several arenas.
    qmoi_core::mem::single_arena();
    let cli = Cli::parse_from(seed_aliases(std::env::args_os()));
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("qmoi-supervisor: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<u8, Error> {
    if let Verb::HashPassword = cli.verb {
        return verbs::hash_password();
    }
    let plan = match cli.verb {
        // The new configuration may be what is broken: the running supervisor says why
        // (at the default socket when the file cannot be read for its [paths]).
        Verb::Reload => qmoi_supervisor::load_plan_for_control(&cli.common).unwrap_or_else(|e| {
            eprintln!("qmoi-supervisor: {e}");
            qmoi_supervisor::config::Plan::new(qmoi_supervisor::config::builtin_default(), None)
        }),
        Verb::Status { .. }
        | Verb::RestartComponent { .. }
        | Verb::RestartAll
        | Verb::Reset
        | Verb::RestartDashboard
        | Verb::Maintenance { .. } => qmoi_supervisor::load_plan_for_control(&cli.common)?,
        _ => load_plan(&cli.common)?,
    };
    match &cli.verb {
        Verb::Start => qmoi_supervisor::start(&cli.common).map(|()| 0),
        Verb::Status { json } => {
            let o = qmoi_supervisor::overview(&plan, &cli.common.report_dir)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&o).map_err(|e| Error::Runtime(e.to_string()))?);
            } else {
                print!("{}", qmoi_supervisor::render::render(&o));
            }
            Ok(o.verdict.overall.exit_code())
        }
        Verb::RestartComponent { name } => {
            if !plan.components.iter().any(|c| &c.id == name) {
                let ids: Vec<&str> = plan.components.iter().map(|c| c.id.as_str()).collect();
                return Err(Error::Config(format!(
                    "'{name}' is not a configured component (configured: {})",
                    ids.join(", ")
                )));
            }
            verbs::answer(&plan, &control::Request::RestartComponent { component: name.clone() })
        }
        Verb::RestartAll => verbs::answer(&plan, &control::Request::RestartAll),
        Verb::Reset => verbs::answer(&plan, &control::Request::Reset),
        Verb::RestartDashboard => verbs::answer(&plan, &control::Request::RestartDashboard),
        Verb::Reload => verbs::answer(&plan, &control::Request::Reload),
        Verb::Validate => verbs::validate(&plan),
        Verb::HashPassword => verbs::hash_password(),
        Verb::Maintenance { cmd } => {
            let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_default();
            let req = match cmd {
                MaintenanceCmd::Add { duration, component, label, subject, reason } => {
                    control::Request::MaintenanceAdd {
                        component: component.clone().unwrap_or_default(),
                        subject: subject.clone(),
                        labels: label.iter().cloned().collect(),
                        for_s: duration.get().as_secs(),
                        reason: reason.clone(),
                        by,
                    }
                }
                MaintenanceCmd::List => control::Request::MaintenanceList,
                MaintenanceCmd::End { id } => control::Request::MaintenanceEnd { id: *id, by },
            };
            verbs::answer(&plan, &req)
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
