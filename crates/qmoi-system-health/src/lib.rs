//! # qmoi-system-health
//!
//! Is the host healthy now? CPU (total and per core), load, memory and swap, disk space and
//! inodes per mount, network interfaces, connectivity (TCP connect, DNS), required
//! processes, zombies, open file descriptors, uptime and temperatures; and any Nagios /
//! Monitoring Plugins check configured ([`plugins`]).
//!
//! Each concern is one module under [`checks`]; [`SystemHealth`] runs them all and turns
//! them into one report. `sysinfo` provides CPU, memory, interfaces, processes and sensors;
//! `/proc` and `statvfs` are read directly for mounts (so a hung NFS mount can be bounded by
//! a timeout) and file descriptors.

pub mod checks;
pub mod config;
pub mod plugins;

pub use config::SystemHealthConfig;

use checks::Collected;
use qmoi_core::runner::{Monitor, Outcome, RunContext};
use std::time::{Duration, Instant};
use sysinfo::{Components, Networks, System};

/// The system health monitor. Keeps `sysinfo` state between runs, so CPU usage and network
/// rates are averages over the whole interval, not instantaneous samples.
pub struct SystemHealth {
    cfg: SystemHealthConfig,
    sys: Option<System>,
    networks: Option<Networks>,
    components: Option<Components>,
    /// When CPU and network counters were last sampled.
    sampled_at: Instant,
    plugins: plugins::State,
}

impl SystemHealth {
    pub fn new(cfg: SystemHealthConfig) -> Self {
        // sysinfo returns errors where a platform lacks a source; each check then reports
        // `unknown` for what it cannot see instead of the monitor refusing to start.
        let mut sys = System::new().ok();
        if let Some(s) = sys.as_mut() {
            s.refresh_cpu_usage();
        }
        let networks = Networks::new_with_refreshed_list().ok();
        let components = if cfg.temperature.enabled { Components::new_with_refreshed_list().ok() } else { None };
        Self { cfg, sys, networks, components, sampled_at: Instant::now(), plugins: plugins::State::default() }
    }
}

/// sysinfo needs two CPU samples at least this far apart.
const MIN_SAMPLE: Duration = Duration::from_millis(250);

impl Monitor for SystemHealth {
    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        let waited = self.sampled_at.elapsed();
        if waited < MIN_SAMPLE {
            tokio::time::sleep(MIN_SAMPLE - waited).await;
        }
        let elapsed = self.sampled_at.elapsed();
        self.sampled_at = Instant::now();
        let mut out = Collected::default();
        let cfg = &self.cfg;
        out.timed("cpu", |out| checks::cpu::check(cfg, self.sys.as_mut(), out));
        out.timed("load", |out| checks::load::check(cfg, self.sys.as_ref(), out));
        out.timed("memory", |out| checks::memory::check(cfg, self.sys.as_mut(), out));
        let since = Instant::now();
        checks::disk::check(cfg, ctx.check_timeout, &mut out).await;
        out.took("disk", since.elapsed());
        out.timed("network", |out| checks::network::check(cfg, self.networks.as_mut(), elapsed, out));
        let since = Instant::now();
        checks::connectivity::check(cfg, ctx.check_timeout, &mut out).await;
        out.took("connectivity", since.elapsed());
        out.timed("processes", |out| checks::processes::check(cfg, self.sys.as_mut(), out));
        out.timed("fds", |out| checks::fds::check(cfg, out));
        out.timed("uptime", checks::uptime::check);
        if cfg.temperature.enabled {
            out.timed("temperature", |out| checks::temperature::check(cfg, self.components.as_mut(), out));
        }
        if !cfg.plugins.is_empty() {
            let since = Instant::now();
            plugins::check(&cfg.plugins, &mut self.plugins, &mut out).await;
            out.took("plugins", since.elapsed());
        }
        out.into_outcome()
    }
}
