//! Top processes by CPU and memory, and the configured services.

use crate::PerfMonitor;
use crate::procs;
use chrono::Utc;
use qmoi_core::CheckResult;
use qmoi_core::human::bytes as fmt_bytes;
use qmoi_core::report::metric_key;
use qmoi_core::runner::Collected;
use serde_json::json;

impl PerfMonitor {
    pub(crate) async fn processes(&mut self, interval_s: f64, out: &mut Collected) {
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
}
