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
pub mod config;
pub mod procs;
pub mod sample;
pub mod stats;

pub use config::PerformanceConfig;

use analysis::{Leaks, State};
use chrono::Utc;
use qmoi_core::human::{bytes as fmt_bytes, duration as fmt_dur};
use qmoi_core::report::metric_key;
use qmoi_core::runner::{Collected, Monitor, Outcome, RunContext};
use qmoi_core::{CheckResult, Status};
use sample::Sampler;
use serde_json::json;
use stats::Summary;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type CommandResult = (f64, String, Status);

pub struct PerfMonitor {
    cfg: PerformanceConfig,
    sampler: Arc<Mutex<Sampler>>,
    sampling: bool,
    procs: procs::ProcTable,
    logs: Vec<accesslog::LogState>,
    state: State,
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
            state: State::load(&state_path),
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

    fn system(&mut self, out: &mut Collected) -> BTreeMap<String, Summary> {
        let (series, missing) = match self.sampler.lock() {
            Ok(mut s) => (s.take(), std::mem::take(&mut s.missing)),
            Err(_) => Default::default(),
        };
        let mut rows = Vec::new();
        let mut by_name: BTreeMap<String, Summary> = BTreeMap::new();
        for ((name, labels), mut v) in series {
            let Some(sum) = Summary::of(&mut v) else { continue };
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            for (stat, x) in [("min", sum.min), ("avg", sum.avg), ("max", sum.max), ("p95", sum.p95), ("p99", sum.p99)]
            {
                let mut with = l.clone();
                with.push(("stat", stat));
                out.metric(name, &with, x);
            }
            let key = metric_key(name, &l);
            rows.push(json!({"metric": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(), "summary": sum}));
            by_name.insert(key, sum);
        }
        let get = |k: &str| by_name.get(k).copied();
        let busy = get("qmoi_perf_cpu_percent{mode=\"busy\"}");
        let mut parts = Vec::new();
        if let Some(b) = busy {
            parts.push(format!("CPU busy avg {:.1}% (max {:.1}%)", b.avg, b.max));
        }
        if let Some(w) = get("qmoi_perf_cpu_percent{mode=\"iowait\"}") {
            parts.push(format!("iowait {:.1}%", w.avg));
        }
        if let Some(r) = get("qmoi_perf_procs_running") {
            parts.push(format!("run queue avg {:.1}", r.avg));
        }
        for res in ["cpu", "memory", "io"] {
            if let Some(p) = get(&format!("qmoi_perf_pressure_percent{{resource=\"{res}\",kind=\"some\"}}")) {
                parts.push(format!("PSI {res} {:.1}%", p.avg));
            }
        }
        let n = by_name.values().map(|s| s.n).max().unwrap_or(0);
        let msg =
            if parts.is_empty() { "no samples yet".to_string() } else { format!("{} ({n} samples)", parts.join(", ")) };
        out.checks.push(CheckResult::ok("system", msg));
        out.details.insert("system".into(), json!({"series": rows, "unavailable": missing}));
        by_name
    }

    async fn processes(&mut self, interval_s: f64, out: &mut Collected) {
        let now_s = Utc::now().timestamp_millis() as f64 / 1000.0;
        let window = self.cfg.recommendations.leak_window.as_secs_f64();
        let procs = self.procs.scan();
        let mut by_cpu: Vec<&procs::Proc> = procs.iter().collect();
        by_cpu.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        let mut by_mem: Vec<&procs::Proc> = procs.iter().collect();
        by_mem.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes));
        let top = self.cfg.top_processes;
        for p in by_mem.iter().take(top) {
            self.leaks.observe(&format!("{} (pid {})", p.name, p.pid), now_s, p.rss_bytes as f64, window);
        }
        out.details.insert(
            "top_processes".into(),
            json!({"by_cpu": by_cpu.iter().take(top).collect::<Vec<_>>(), "by_memory": by_mem.iter().take(top).collect::<Vec<_>>(), "total": procs.len()}),
        );
        let mut rows = Vec::new();
        for s in self.cfg.services.clone() {
            let pids = match procs::service_pids(&s, &procs) {
                Ok(p) => p,
                Err(e) => {
                    out.checks.push(CheckResult::unknown(format!("service:{}", s.name), e));
                    continue;
                }
            };
            let mine: Vec<&procs::Proc> = procs.iter().filter(|p| pids.contains(&p.pid)).collect();
            if mine.is_empty() {
                out.checks.push(
                    CheckResult::unknown(format!("service:{}", s.name), format!("{}: no process found", s.name))
                        .with_title(format!("Service {} not found", s.name)),
                );
                continue;
            }
            let cpu: f64 = mine.iter().map(|p| p.cpu_percent).sum();
            let rss: u64 = mine.iter().map(|p| p.rss_bytes).sum();
            let threads: u64 = mine.iter().map(|p| p.threads).sum();
            let fds: Option<u64> = mine.iter().map(|p| procs::fd_count(p.pid)).sum();
            let mut io = (0.0, 0.0, true);
            for p in &mine {
                match self.procs.io_rate(p, interval_s) {
                    Some((r, w)) => {
                        io.0 += r;
                        io.1 += w;
                    }
                    None => io.2 = false,
                }
            }
            let name = s.name.as_str();
            out.metric("qmoi_perf_service_cpu_percent", &[("service", name)], cpu);
            out.metric("qmoi_perf_service_rss_bytes", &[("service", name)], rss as f64);
            out.metric("qmoi_perf_service_threads", &[("service", name)], threads as f64);
            if let Some(f) = fds {
                out.metric("qmoi_perf_service_open_fds", &[("service", name)], f as f64);
            }
            if io.2 {
                out.metric("qmoi_perf_service_read_bytes_per_second", &[("service", name)], io.0);
                out.metric("qmoi_perf_service_write_bytes_per_second", &[("service", name)], io.1);
            }
            self.leaks.observe(&format!("service {name}"), now_s, rss as f64, window);
            // A restart: the pids changed. Remember the p99 before it.
            let mut sorted = pids.clone();
            sorted.sort_unstable();
            if let Some((old, p99)) = self.services.get(name)
                && *old != sorted
                && let Some(p) = p99
            {
                self.before_restart.insert(name.to_string(), *p);
            }
            let p99 = s.access_log.as_ref().and_then(|l| {
                out.metrics
                    .get(&metric_key(
                        "qmoi_perf_http_latency_seconds",
                        &[("log", l), ("group", "all"), ("quantile", "0.99")],
                    ))
                    .copied()
            });
            self.services.insert(name.to_string(), (sorted, p99));
            out.checks.push(CheckResult::ok(
                format!("service:{name}"),
                format!(
                    "{name}: {} process(es), CPU {cpu:.1}%, RSS {}, {threads} threads{}",
                    mine.len(),
                    fmt_bytes(rss as f64),
                    fds.map_or_else(String::new, |f| format!(", {f} open files"))
                ),
            ));
            rows.push(json!({"name": name, "pids": pids, "cpu_percent": cpu, "rss_bytes": rss, "threads": threads, "open_fds": fds,
                "read_bytes_per_second": io.2.then_some(io.0), "write_bytes_per_second": io.2.then_some(io.1)}));
        }
        self.leaks.prune(now_s - window);
        out.details.insert("services".into(), json!(rows));
    }

    fn access_logs(&mut self, interval_s: f64, out: &mut Collected) {
        let mut rows = Vec::new();
        for log in &mut self.logs {
            log.poll();
            let groups = log.take(interval_s);
            let name = log.cfg.name.clone();
            if let Some(e) = &log.error {
                out.checks.push(
                    CheckResult::unknown(format!("access_log:{name}"), format!("{name}: cannot read {e}"))
                        .with_title(format!("Access log {name} unreadable")),
                );
            }
            for g in &groups {
                fn l<'a>(
                    name: &'a str,
                    group: &'a str,
                    extra: Option<(&'static str, &'a str)>,
                ) -> Vec<(&'static str, &'a str)> {
                    let mut v = vec![("log", name), ("group", group)];
                    v.extend(extra);
                    v
                }
                let (n, gr) = (name.as_str(), g.group.as_str());
                out.metric("qmoi_perf_http_requests_per_second", &l(n, gr, None), g.requests_per_second);
                out.metric("qmoi_perf_http_error_rate_percent", &l(n, gr, None), g.error_rate_percent);
                for (class, count) in &g.status {
                    out.metric("qmoi_perf_http_responses", &l(n, gr, Some(("class", class))), *count as f64);
                }
                if let Some(lat) = &g.latency {
                    for (q, v) in [("0.5", lat.p50), ("0.95", lat.p95), ("0.99", lat.p99)] {
                        out.metric("qmoi_perf_http_latency_seconds", &l(n, gr, Some(("quantile", q))), v);
                    }
                }
            }
            if log.error.is_none()
                && let Some(all) = groups.first()
            {
                let mut problems = Vec::new();
                if let Some(w) = log.cfg.error_rate_warning
                    && all.error_rate_percent > w
                {
                    problems.push(format!("error rate {:.1}% (warning above {w}%)", all.error_rate_percent));
                }
                if let (Some(w), Some(lat)) = (log.cfg.p99_warning, &all.latency)
                    && lat.p99 > w.as_secs_f64()
                {
                    problems.push(format!("p99 {:.0} ms (warning above {w})", lat.p99 * 1000.0));
                }
                let lat = all.latency.as_ref().map_or_else(String::new, |l| {
                    format!(
                        ", p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                        l.p50 * 1000.0,
                        l.p95 * 1000.0,
                        l.p99 * 1000.0
                    )
                });
                let base = format!(
                    "{name}: {} requests ({:.1}/s), {:.1}% 5xx{lat}",
                    all.requests, all.requests_per_second, all.error_rate_percent
                );
                out.checks.push(if problems.is_empty() {
                    CheckResult::ok(format!("access_log:{name}"), base)
                } else {
                    CheckResult::new(
                        format!("access_log:{name}"),
                        Status::Warning,
                        format!("{base}: {}", problems.join("; ")),
                    )
                    .with_title(format!("Slow or failing responses in {name}"))
                });
            }
            rows.push(json!({"name": name, "path": log.cfg.path.as_str(), "parsed_lines": log.parsed, "unparsed_lines": log.unparsed,
                "rotations": log.rotations(), "error": log.error, "last_poll_ms": log.last_poll_ms, "groups": groups}));
        }
        out.details.insert("access_logs".into(), json!(rows));
    }

    async fn commands(&mut self, out: &mut Collected) {
        let mut rows = Vec::new();
        for (i, c) in self.cfg.commands.clone().iter().enumerate() {
            let due = self.commands[i].0.is_none_or(|t| t.elapsed() >= c.every.get());
            if due {
                let started = Instant::now();
                let mut cmd = tokio::process::Command::new(&c.command);
                cmd.args(&c.args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped());
                // Tied to this monitor's life: a probe never outlives it (or the supervisor).
                let result = match qmoi_core::child::spawn(cmd).await {
                    Err(e) => (f64::NAN, format!("cannot run {}: {e}", c.command), Status::Unknown),
                    Ok(child) => match tokio::time::timeout(c.timeout.get(), child.wait_with_output()).await {
                        Err(_) => (
                            c.timeout.as_secs_f64(),
                            format!("did not finish within {} (killed)", c.timeout),
                            Status::Warning,
                        ),
                        Ok(Err(e)) => (f64::NAN, e.to_string(), Status::Unknown),
                        Ok(Ok(o)) => {
                            let secs = started.elapsed().as_secs_f64();
                            if o.status.success() {
                                let slow = c.warning.is_some_and(|w| secs > w.as_secs_f64());
                                (
                                    secs,
                                    format!("took {}", fmt_secs(secs)),
                                    if slow { Status::Warning } else { Status::Ok },
                                )
                            } else {
                                let err = String::from_utf8_lossy(&o.stderr);
                                (
                                    secs,
                                    format!(
                                        "failed ({}) after {}: {}",
                                        o.status,
                                        fmt_secs(secs),
                                        err.lines().last().unwrap_or("")
                                    ),
                                    Status::Warning,
                                )
                            }
                        }
                    },
                };
                self.commands[i] = (Some(Instant::now()), Some(result));
            }
            if let Some((secs, msg, status)) = &self.commands[i].1 {
                out.metric("qmoi_perf_command_duration_seconds", &[("command", &c.name)], *secs);
                let warn = c.warning.map_or_else(String::new, |w| format!(" (warning above {w})"));
                out.checks.push(
                    CheckResult::new(format!("command:{}", c.name), *status, format!("{}: {msg}{warn}", c.name))
                        .with_title(format!("Command {} slow or failing", c.name)),
                );
                rows.push(json!({"name": c.name, "seconds": secs, "result": msg}));
            }
        }
        out.details.insert("commands".into(), json!(rows));
    }

    fn baselines(&mut self, system: &BTreeMap<String, Summary>, out: &mut Collected) {
        if !self.cfg.baseline.enabled {
            return;
        }
        let now = Utc::now();
        let mut watched: Vec<(String, f64)> = Vec::new();
        for (k, s) in system {
            let relevant = k.starts_with("qmoi_perf_cpu_percent{mode=\"busy\"")
                || k.starts_with("qmoi_perf_cpu_percent{mode=\"iowait\"")
                || k.starts_with("qmoi_perf_pressure_percent")
                || k.starts_with("qmoi_perf_procs_running")
                || k.starts_with("qmoi_perf_tcp_retransmit_percent")
                || k.starts_with("qmoi_perf_disk_await_ms");
            if relevant {
                watched.push((format!("{k} avg"), s.avg));
            }
        }
        for (k, v) in &out.metrics {
            if k.starts_with("qmoi_perf_http_latency_seconds") && k.contains("quantile=\"0.99\"")
                || k.starts_with("qmoi_perf_http_error_rate_percent")
            {
                watched.push((k.clone(), *v));
            }
        }
        let mut rows = Vec::new();
        for (metric, value) in watched {
            if let Some(d) = analysis::baseline(&mut self.state, &metric, value, now, &self.cfg.baseline) {
                out.checks.push(
                    CheckResult::new(
                        format!("degradation:{metric}"),
                        Status::Warning,
                        format!(
                            "{metric} is {:.3} for {} intervals, baseline {:.3} ± {:.3} ({:.1} deviations, limit {})",
                            d.value, d.intervals, d.baseline, d.deviation, d.score, self.cfg.baseline.k
                        ),
                    )
                    .with_title(format!("Performance degradation: {metric}")),
                );
                rows.push(d);
            }
        }
        out.details.insert("degradations".into(), json!(rows));
    }

    fn predictions(&mut self, out: &mut Collected) {
        if !self.cfg.prediction.enabled {
            return;
        }
        let p = &self.cfg.prediction;
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        let window = p.window.as_secs_f64();
        let mut rows = Vec::new();
        let mut resources: Vec<(String, f64, f64, &'static str)> = Vec::new();
        for m in mounts(&p.mounts) {
            if let Ok(st) = nix::sys::statvfs::statvfs(m.as_str()) {
                let frag = st.fragment_size() as f64;
                let total = st.blocks() as f64 * frag;
                let used = total - st.blocks_available() as f64 * frag;
                if total > 0.0 {
                    resources.push((format!("disk:{m}"), used, total, "bytes"));
                }
                let files = st.files() as f64;
                if files > 0.0 {
                    resources.push((format!("inodes:{m}"), files - st.files_available() as f64, files, "inodes"));
                }
            }
        }
        if let Ok(mi) = std::fs::read_to_string("/proc/meminfo") {
            let f = |n: &str| {
                mi.lines()
                    .find(|l| l.starts_with(n))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let (Some(t), Some(a)) = (f("MemTotal:"), f("MemAvailable:")) {
                resources.push(("memory".into(), (t - a) * 1024.0, t * 1024.0, "bytes"));
            }
        }
        let tracked = resources.len();
        for (res, used, total, unit) in resources {
            let Some(pred) = analysis::predict(&mut self.state, &res, now, used, total, window) else { continue };
            out.metric(
                "qmoi_perf_predicted_seconds_to_full",
                &[("resource", &res)],
                pred.seconds_to_full.unwrap_or(f64::INFINITY),
            );
            if let Some(secs) = pred.seconds_to_full {
                let status = if secs < p.critical_within.as_secs_f64() {
                    Status::Critical
                } else if secs < p.warn_within.as_secs_f64() {
                    Status::Warning
                } else {
                    Status::Ok
                };
                // Only a trend that explains the data is worth an alert.
                if status != Status::Ok && pred.r2 >= 0.5 {
                    let rate = if unit == "bytes" {
                        format!("{}/h", fmt_bytes(pred.rate_per_hour))
                    } else {
                        format!("{:.0} {unit}/h", pred.rate_per_hour)
                    };
                    out.checks.push(
                        CheckResult::new(
                            format!("prediction:{res}"),
                            status,
                            format!(
                                "{res} full in about {} at the current rate ({rate}; {:.1}% used; fit over {} points, R² {:.2})",
                                fmt_dur(secs),
                                pred.used / pred.total * 100.0,
                                pred.points,
                                pred.r2
                            ),
                        )
                        .with_value(secs, "seconds")
                        .with_title(format!("{res} will fill up soon")),
                    );
                }
            }
            rows.push(pred);
        }
        let mut ok_msg = format!("{tracked} resources tracked, {} with enough history for a trend", rows.len());
        if let Some(soonest) = rows
            .iter()
            .filter_map(|r| r.seconds_to_full.map(|s| (s, r.resource.clone())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
        {
            ok_msg.push_str(&format!("; soonest full: {} in about {}", soonest.1, fmt_dur(soonest.0)));
        }
        out.checks.push(CheckResult::ok("predictions", ok_msg));
        out.details.insert("predictions".into(), json!(rows));
    }

    fn recommendations(&mut self, system: &BTreeMap<String, Summary>, out: &mut Collected) {
        let r = &self.cfg.recommendations;
        if !r.enabled {
            return;
        }
        let mut recs = Vec::new();
        let mut rec = |out: &mut Collected, key: String, title: String, evidence: String| {
            out.checks.push(
                CheckResult::new(format!("recommendation:{key}"), Status::Warning, evidence.clone())
                    .with_title(title.clone()),
            );
            recs.push(json!({"key": key, "title": title, "evidence": evidence}));
        };
        for l in self.leaks.suspects(r.leak_mib_per_hour, r.leak_window.as_secs_f64()) {
            rec(
                out,
                format!("leak:{}", l.process),
                format!("Possible memory leak: {}", l.process),
                format!(
                    "{} grew steadily by {:.1} MiB/h over {} ({} samples, R² {:.2}), now {}; restart it and look for a leak",
                    l.process,
                    l.mib_per_hour,
                    fmt_dur(l.over_seconds),
                    l.points,
                    l.r2,
                    fmt_bytes(l.rss_bytes)
                ),
            );
        }
        if let Some(s) = system.get("qmoi_perf_cpu_percent{mode=\"steal\"}")
            && s.avg > r.steal_percent
        {
            rec(
                out,
                "cpu_steal".into(),
                "CPU steal: the host is oversubscribed".into(),
                format!(
                    "the hypervisor took {:.1}% of CPU time on average (max {:.1}%) this interval; move the VM or ask for dedicated cores",
                    s.avg, s.max
                ),
            );
        }
        for (k, s) in system.range("qmoi_perf_disk_util_percent".to_string()..) {
            if !k.starts_with("qmoi_perf_disk_util_percent") {
                break;
            }
            if s.avg > r.io_util_percent {
                let dev = k.split('"').nth(1).unwrap_or(k).to_string();
                rec(
                    out,
                    format!("io_saturation:{dev}"),
                    format!("I/O saturation on {dev}"),
                    format!(
                        "{dev} was busy {:.0}% of the time on average this interval (p95 {:.0}%); spread the I/O or use faster storage",
                        s.avg, s.p95
                    ),
                );
            }
        }
        let swapin = system.get("qmoi_perf_swap_in_pages_per_second").map_or(0.0, |s| s.avg);
        self.swapin_streak = if swapin > 0.0 { self.swapin_streak + 1 } else { 0 };
        if self.swapin_streak >= r.swapin_intervals {
            rec(
                out,
                "swap_in".into(),
                "Sustained swap-in: not enough memory".into(),
                format!(
                    "pages were read back from swap for {} intervals in a row ({swapin:.1} pages/s now); add memory or reduce the working set",
                    self.swapin_streak
                ),
            );
        }
        for (svc, before) in self.before_restart.clone() {
            let Some((_, Some(now_p99))) = self.services.get(&svc) else { continue };
            if *now_p99 > 2.0 * before {
                rec(
                    out,
                    format!("latency_after_restart:{svc}"),
                    format!("{svc} is slower since its restart"),
                    format!(
                        "p99 latency {:.0} ms now, {:.0} ms before the restart ({:.1}×); compare the deployed versions or configuration",
                        now_p99 * 1000.0,
                        before * 1000.0,
                        now_p99 / before.max(1e-9)
                    ),
                );
            }
        }
        out.checks.push(CheckResult::ok("recommendations", format!("{} recommendation(s)", recs.len())));
        out.details.insert("recommendations".into(), json!(recs));
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 1.0 { format!("{:.0} ms", s * 1000.0) } else { format!("{s:.2} s") }
}

/// Mount points to predict: the configured ones, or every real (disk-backed) file system.
fn mounts(configured: &[String]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    // overlay: a container's root, whose usage is the host disk's.
    const REAL: [&str; 9] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "overlay"];
    let mut out: Vec<String> = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && REAL.contains(&f[2])).then(|| f[1].replace("\\040", " "))
        })
        .collect();
    out.sort();
    out.dedup();
    out
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
        let system = self.system(&mut out);
        self.access_logs(interval_s, &mut out);
        self.processes(interval_s, &mut out).await;
        self.commands(&mut out).await;
        self.baselines(&system, &mut out);
        self.predictions(&mut out);
        self.recommendations(&system, &mut out);
        if let Err(e) = self.state.save(&self.state_path) {
            out.checks.push(
                CheckResult::new("state", Status::Warning, format!("cannot save {}: {e}", self.state_path.display()))
                    .with_title("Performance monitor state cannot be saved"),
            );
        }
        out.into_outcome()
    }
}
