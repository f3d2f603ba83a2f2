//! # qmoi-system-health
//!
//! Is the host healthy now? CPU (total and per core), load, memory and swap, disk space and
//! inodes per mount, network interfaces, connectivity (TCP connect, DNS), required
//! processes, zombies, open file descriptors, uptime and temperatures.
//!
//! Each concern is one module under [`checks`]; [`SystemHealth`] runs them all and turns
//! them into one report. `sysinfo` provides CPU, memory, interfaces, processes and sensors;
//! `/proc` and `statvfs` are read directly for mounts (so a hung NFS mount can be bounded by
//! a timeout) and file descriptors.

pub mod checks;
pub mod config;

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
        Self { cfg, sys, networks, components, sampled_at: Instant::now() }
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
        checks::cpu::check(&self.cfg, self.sys.as_mut(), &mut out);
        checks::load::check(&self.cfg, self.sys.as_ref(), &mut out);
        checks::memory::check(&self.cfg, self.sys.as_mut(), &mut out);
        checks::disk::check(&self.cfg, ctx.check_timeout, &mut out).await;
        checks::network::check(&self.cfg, self.networks.as_mut(), elapsed, &mut out);
        checks::connectivity::check(&self.cfg, ctx.check_timeout, &mut out).await;
        checks::processes::check(&self.cfg, self.sys.as_mut(), &mut out);
        checks::fds::check(&self.cfg, &mut out);
        checks::uptime::check(&mut out);
        if self.cfg.temperature.enabled {
            checks::temperature::check(&self.cfg, self.components.as_mut(), &mut out);
        }
        out.into_outcome()
    }
}
