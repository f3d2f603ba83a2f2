//! `qmoi-supervisor`: see the crate docs in `lib.rs`.

use clap::{Parser, Subcommand};
use qmoi_core::cli::CommonArgs;
use qmoi_supervisor::{Error, control, load_plan};
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
    /// Check the master config and every enabled component's config, and find binaries
    Validate,
    /// Read a password on stdin and print its argon2id hash for dashboard.auth.users
    HashPassword,
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
        return hash_password();
    }
    let plan = match cli.verb {
        Verb::Status { .. }
        | Verb::RestartComponent { .. }
        | Verb::RestartAll
        | Verb::Reset
        | Verb::RestartDashboard => qmoi_supervisor::load_plan_for_control(&cli.common)?,
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
            answer(&plan, &control::Request::RestartComponent { component: name.clone() })
        }
        Verb::RestartAll => answer(&plan, &control::Request::RestartAll),
        Verb::Reset => answer(&plan, &control::Request::Reset),
        Verb::RestartDashboard => answer(&plan, &control::Request::RestartDashboard),
        Verb::Validate => validate(&plan),
        Verb::HashPassword => hash_password(),
    }
}

fn answer(plan: &qmoi_supervisor::config::Plan, req: &control::Request) -> Result<u8, Error> {
    match qmoi_supervisor::send(plan, req)? {
        None => {
            eprintln!(
                "qmoi-supervisor: no supervisor is running (nothing answers on {}/{})",
                plan.config.paths.run.display(),
                control::SOCKET_NAME
            );
            Ok(1)
        }
        Some(r) if r.ok => {
            println!("{}", r.message.unwrap_or_else(|| "done".into()));
            Ok(0)
        }
        Some(r) => {
            eprintln!("qmoi-supervisor: {}", r.error.unwrap_or_else(|| "request refused".into()));
            Ok(1)
        }
    }
}

/// `hash-password`: one line from stdin (so the password is not in the shell history).
fn hash_password() -> Result<u8, Error> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Error::Runtime(format!("cannot read the password: {e}")))?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        return Err(Error::Config("no password on stdin".into()));
    }
    let hash = qmoi_dashboard::auth::hash_password(pw).map_err(Error::Runtime)?;
    println!("{hash}");
    Ok(0)
}

fn validate(plan: &qmoi_supervisor::config::Plan) -> Result<u8, Error> {
    let source = plan.source.as_ref().map_or_else(|| "built-in defaults".into(), |p| p.display().to_string());
    println!("master config: OK ({source})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let mut problems = rt.block_on(qmoi_supervisor::validate_children(plan));
    for s in &plan.components {
        let state = if s.enabled { "" } else { " (disabled)" };
        match &s.binary {
            Ok(b) => println!(
                "  {}{state}: {} {}",
                s.id,
                b.display(),
                s.config.as_ref().map_or_else(String::new, |c| format!("--config {}", c.display()))
            ),
            Err(e) if s.enabled => problems.push(format!("{}: {e}", s.id)),
            Err(_) => println!("  {}{state}: binary not found", s.id),
        }
    }
    if problems.is_empty() {
        println!("all component configs OK");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        Ok(2)
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
