//! Command-line arguments shared by every binary (each one's `--help` lists them).

use crate::config::ConfigDuration;
use std::path::PathBuf;

/// Flags every QMOI binary accepts. `global = true` so that, on the supervisor, they are
/// accepted before or after the verb.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Configuration file: TOML, or JSON when the name ends in `.json`
    /// [default: config/<component>.toml, built-in defaults if that file does not exist]
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Debug logging (very chatty) to stderr and the log file
    #[arg(long, global = true)]
    pub debug: bool,

    /// Informational logging to stderr as well as the log file
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Folder for log files
    #[arg(long, value_name = "DIR", global = true, default_value = "logs")]
    pub log_dir: PathBuf,

    /// Folder for reports (`<component>_latest.json` and history)
    #[arg(long, value_name = "DIR", global = true, default_value = "logs")]
    pub report_dir: PathBuf,
}

/// The flags of a monitor binary: [`CommonArgs`] plus the run modes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Run the checks once, write the report, and exit
    #[arg(long, conflicts_with_all = ["check", "validate"])]
    pub once: bool,

    /// Run the checks once and print a summary; exit 0 ok, 1 warning, 2 critical,
    /// 3 unknown (the Nagios plugin convention). Writes no report.
    #[arg(long, conflicts_with = "validate")]
    pub check: bool,

    /// Check the configuration file and exit: 0 when valid, 2 with every problem listed
    #[arg(long)]
    pub validate: bool,

    /// Print the effective configuration (defaults filled in, secrets masked) as JSON and exit
    #[arg(long, conflicts_with_all = ["once", "check", "validate"])]
    pub print_config: bool,

    /// Override the configured interval between runs (seconds, or "30s", "5m")
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<ConfigDuration>,
}

/// clap value parser for durations.
pub fn parse_duration(s: &str) -> Result<ConfigDuration, String> {
    let d = ConfigDuration::parse(s)?;
    if d.get().is_zero() {
        return Err(format!("must be greater than zero, got '{s}'"));
    }
    Ok(d)
}
