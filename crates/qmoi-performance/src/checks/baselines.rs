//! EWMA baselines of the key series, with a degradation check.

use crate::PerfMonitor;
use crate::analysis;
use crate::stats::Summary;
use chrono::Utc;
use qmoi_core::CheckResult;
use qmoi_core::Status;
use qmoi_core::runner::Collected;
use serde_json::json;
use std::collections::BTreeMap;

impl PerfMonitor {
    pub(crate) fn baselines(&mut self, system: &BTreeMap<String, Summary>, out: &mut Collected) {
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
}
