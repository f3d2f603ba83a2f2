//! The sampler's summaries of the interval: CPU modes, PSI, run queue, memory, disks,
//! interfaces, TCP.

use crate::PerfMonitor;
use crate::stats::Summary;
use qmoi_core::CheckResult;
use qmoi_core::report::metric_key;
use qmoi_core::runner::Collected;
use serde_json::json;
use std::collections::BTreeMap;

impl PerfMonitor {
    pub(crate) fn system(&mut self, out: &mut Collected) -> BTreeMap<String, Summary> {
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
}
