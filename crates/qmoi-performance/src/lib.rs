//! # qmoi-performance
//!
//! "How fast is the host, how is that changing, and what will run out next?"
//!
//! - [`sample`]: `/proc` read every `sample_interval` (1 s): CPU modes, PSI, run queue,
//!   context switches, swap activity, disks, interfaces, TCP retransmits; every sample of
//!   the interval is summarised (min/avg/max/p50/p95/p99), so short spikes are not lost.
//! - [`procs`]: top processes by CPU and memory, configured services.
//! - [`accesslog`]: requests/s, status classes, error rate and latency percentiles from
//!   nginx/Apache/JSON access logs, followed across rotation.
//! - [`analysis`]: EWMA baselines with a degradation alert, linear predictions of when a
//!   disk (bytes, inodes) or memory fills, and recommendations with their evidence
//!   (possible leak, swap-in, CPU steal, I/O saturation, latency doubled after a restart).

pub mod accesslog;
pub mod analysis;
mod checks;
pub mod config;
pub mod procs;
pub mod sample;
pub mod stats;

pub use config::PerformanceConfig;

use analysis::{Leaks, PerfState};
use qmoi_core::runner::{Collected, Monitor, Outcome, RunContext};
use qmoi_core::{CheckResult, Status};
use sample::Sampler;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) type CommandResult = (f64, String, Status);

pub struct PerfMonitor {
    cfg: PerformanceConfig,
    sampler: Arc<Mutex<Sampler>>,
    sampling: bool,
    procs: procs::ProcTable,
    logs: Vec<accesslog::LogState>,
    state: PerfState,
    state_path: PathBuf,
    leaks: Leaks,
    /// Per command: when it last ran, and its result (seconds, message, status).
    commands: Vec<(Option<Instant>, Option<CommandResult>)>,
    last_report: Option<Instant>,
    swapin_streak: u32,
    /// Per service: its pids at the last look and the p99 of its access log then.
    services: HashMap<String, (Vec<u32>, Option<f64>)>,
    /// Per service: the p99 before its last restart (for "doubled after a restart").
    before_restart: HashMap<String, f64>,
}

impl std::fmt::Debug for PerfMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfMonitor").finish()
    }
}

impl PerfMonitor {
    pub fn new(cfg: &PerformanceConfig) -> Result<Self, String> {
        let state_path = PathBuf::from(cfg.data_dir.as_str()).join("performance_state.json");
        Ok(Self {
            sampler: Arc::new(Mutex::new(Sampler::new(cfg.ignore_devices.clone(), cfg.ignore_interfaces.clone()))),
            sampling: false,
            procs: procs::ProcTable::default(),
            logs: cfg.access_logs.iter().cloned().map(accesslog::LogState::new).collect(),
            state: PerfState::load(&state_path),
            state_path,
            leaks: Leaks::default(),
            commands: vec![(None, None); cfg.commands.len()],
            last_report: None,
            swapin_streak: 0,
            services: HashMap::new(),
            before_restart: HashMap::new(),
            cfg: cfg.clone(),
        })
    }

    /// Start the sampling task (once, on the first run: the runtime exists from then on).
    fn start_sampling(&mut self) {
        if self.sampling {
            return;
        }
        self.sampling = true;
        let s = Arc::clone(&self.sampler);
        let every = self.cfg.sample_interval.get();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Ok(mut s) = s.lock() {
                    s.sample();
                }
            }
        });
    }
}

impl Monitor for PerfMonitor {
    async fn run(&mut self, _ctx: &RunContext) -> Outcome {
        let interval_s = self.last_report.map_or(self.cfg.interval.as_secs_f64(), |t| t.elapsed().as_secs_f64());
        self.last_report = Some(Instant::now());
        let first = !self.sampling;
        self.start_sampling();
        if first {
            // --once / --check or the first report: two samples, so rates exist.
            let gap = self.cfg.sample_interval.get().min(Duration::from_secs(1));
            if let Ok(mut s) = self.sampler.lock() {
                s.sample();
            }
            self.procs.scan();
            tokio::time::sleep(gap).await;
            if let Ok(mut s) = self.sampler.lock() {
                s.sample();
            }
        }
        let mut out = Collected::default();
        let system = out.timed("system", |out| self.system(out));
        out.timed("access_logs", |out| self.access_logs(interval_s, out));
        let since = Instant::now();
        self.processes(interval_s, &mut out).await;
        out.took("processes", since.elapsed());
        let since = Instant::now();
        self.commands(&mut out).await;
        out.took("commands", since.elapsed());
        out.timed("baselines", |out| self.baselines(&system, out));
        out.timed("predictions", |out| self.predictions(out));
        out.timed("recommendations", |out| self.recommendations(&system, out));
        if let Err(e) = self.state.save(&self.state_path) {
            out.checks.push(
                CheckResult::new("state", Status::Warning, format!("cannot save {}: {e}", self.state_path.display()))
                    .with_title("Performance monitor state cannot be saved"),
            );
        }
        out.into_outcome()
    }
}
