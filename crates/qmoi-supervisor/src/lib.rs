//! # qmoi-supervisor
//!
//! The master monitor (docs/ARCHITECTURE.md, "The component state machine"): starts every enabled monitor in dependency order,
//! watches and restarts them, aggregates their reports into the overall verdict in
//! `master_monitor_latest.json`, and answers `status`, `restart-component`, `reset` and
//! `restart-dashboard` on its control socket.
//!
//! - [`config`]: the master config and the resolved [`config::Plan`].
//! - [`supervise`]: one task per component (the state machine).
//! - [`process`]: spawning children that cannot outlive the supervisor.
//! - [`verdict`], [`overview`], [`master_report`]: from states and reports to the verdict.
//! - [`control`], [`render`]: the control socket and the `status` table.
//! - `monitors`: the running components' tasks, and how a reload brings them in line.
//! - [`reload`]: what changed between the running plan and the files (live reload).
//! - `run`: the running supervisor (start-up, aggregation, dashboard, shutdown).

pub mod config;
pub mod control;
pub mod master_report;
mod monitors;
pub mod overview;
pub mod process;
pub mod reload;
pub mod render;
mod run;
pub mod state;
pub mod supervise;
pub mod verbs;
pub mod verdict;

use config::{MasterConfig, Plan};
use overview::Overview;
use qmoi_core::cli::CommonArgs;
use qmoi_core::config::ConfigError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why `start` or a verb ended, with its exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration or usage error: exit status 2.
    #[error("{0}")]
    Config(String),
    /// Anything else: exit status 3.
    #[error("{0}")]
    Runtime(String),
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Runtime(_) => 3,
        }
    }
}

/// Load and validate the master config (`--config`, else `config/master_monitor.toml`,
/// else built-in defaults) and resolve it into a plan.
pub fn load_plan(common: &CommonArgs) -> Result<Plan, Error> {
    // config/master_monitor.toml, or the original QMOI's config/master_monitor_config.json.
    let default = qmoi_core::config::default_path(Path::new("config"), qmoi_core::component::MASTER_MONITOR);
    let (cfg, source) = match common.config.as_deref() {
        Some(p) => (qmoi_core::config::load::<MasterConfig>(p)?, Some(p.to_path_buf())),
        None if default.exists() => (qmoi_core::config::load::<MasterConfig>(&default)?, Some(default)),
        None => (config::builtin_default(), None),
    };
    Ok(Plan::new(cfg, source))
}

/// [`load_plan`] for commands that only talk to the running supervisor over its socket
/// (`status`, `restart-component`, `reset`, `restart-dashboard`): a secret whose
/// `${ENV}` is unset in the operator's shell is not needed, so it is not an error.
pub fn load_plan_for_control(common: &CommonArgs) -> Result<Plan, Error> {
    qmoi_core::config::with_secrets_deferred(|| load_plan(common))
}

/// Ask each enabled component's binary to check its own config (`--validate`, which
/// also builds the monitor: an unreadable key or CA file, a template that does not
/// compile). Returns one message per problem.
pub async fn validate_children(plan: &Plan) -> Vec<String> {
    let mut problems: Vec<String> = ask_each(plan, "--validate").await.into_values().filter_map(|r| r.err()).collect();
    problems.sort();
    problems
}

/// Each enabled component's effective configuration as the binary itself reads it
/// (`--print-config`: defaults filled in, secrets masked), which also validates it.
/// `Err` lists every component whose configuration is invalid.
pub async fn effective_configs(plan: &Plan) -> Result<BTreeMap<String, serde_json::Value>, Vec<String>> {
    let mut configs = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, r) in component_configs(plan).await {
        match r {
            Ok(v) => {
                configs.insert(id, v);
            }
            Err(e) => problems.push(e),
        }
    }
    problems.sort();
    if problems.is_empty() { Ok(configs) } else { Err(problems) }
}

/// [`effective_configs`] per component: its effective config, or why the binary could
/// not print it (invalid config, a crash, a hang), as `"<id>: <message>"`.
pub async fn component_configs(plan: &Plan) -> BTreeMap<String, Result<serde_json::Value, String>> {
    ask_each(plan, "--print-config")
        .await
        .into_iter()
        .map(|(id, r)| {
            let v = r.and_then(|out| {
                serde_json::from_slice::<serde_json::Value>(&out)
                    .map_err(|e| format!("{id}: --print-config printed no JSON: {e}"))
            });
            (id, v)
        })
        .collect()
}

/// Run each enabled component's binary with its `--config` and `flag`, all at once, each
/// for at most 20 s: its standard output, or why it failed as `"<id>: <message>"` (its
/// standard error, its exit status, a crash, a hang). A missing binary is left out: it
/// is reported separately, and it is not a configuration error.
async fn ask_each(plan: &Plan, flag: &'static str) -> BTreeMap<String, Result<Vec<u8>, String>> {
    let mut set = tokio::task::JoinSet::new();
    for spec in plan.components.iter().filter(|s| s.enabled) {
        let spec = spec.clone();
        set.spawn(async move {
            let bin = spec.binary.as_ref().ok()?.clone();
            let mut cmd = tokio::process::Command::new(&bin);
            if let Some(c) = &spec.config {
                cmd.arg("--config").arg(c);
            }
            cmd.arg(flag).stdin(std::process::Stdio::null()).kill_on_drop(true);
            let what = format!("{} {flag}", bin.display());
            let r = match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
                Ok(Ok(out)) if out.status.success() => Ok(out.stdout),
                Ok(Ok(out)) => {
                    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    Err(format!("{}: {}", spec.id, if err.is_empty() { out.status.to_string() } else { err }))
                }
                Ok(Err(e)) => Err(format!("{}: cannot run {what}: {e}", spec.id)),
                Err(_) => Err(format!("{}: {what} did not finish within 20s", spec.id)),
            };
            Some((spec.id.clone(), r))
        });
    }
    set.join_all().await.into_iter().flatten().collect()
}

fn socket_path(plan: &Plan) -> PathBuf {
    plan.config.paths.run.join(control::SOCKET_NAME)
}

/// `qmoi-supervisor start`: run in the foreground until SIGTERM/SIGINT.
pub fn start(common: &CommonArgs) -> Result<(), Error> {
    let plan = load_plan(common)?;
    qmoi_core::report::set_max_read_bytes(plan.config.report.max_read_bytes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run::run(plan, common.clone()))
}

/// Send a request to the running supervisor. `Ok(None)` when none runs.
pub fn send(plan: &Plan, req: &control::Request) -> Result<Option<control::Response>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    rt.block_on(control::request(&socket_path(plan), req)).map_err(Error::Runtime)
}

/// The overview from the running supervisor, or from the report files when none runs.
pub fn overview(plan: &Plan, report_dir: &Path) -> Result<Overview, Error> {
    match send(plan, &control::Request::Status)? {
        Some(resp) => match (resp.ok, resp.overview) {
            (true, Some(o)) => Ok(*o),
            _ => Err(Error::Runtime(resp.error.unwrap_or_else(|| "the supervisor sent no status".into()))),
        },
        None => Ok(overview::from_reports(plan, report_dir)),
    }
}
