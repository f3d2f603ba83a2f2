//! System samples taken every `sample_interval` from `/proc`: CPU modes, context
//! switches, run queue, pressure stall (PSI), memory and swap activity, per-device disk
//! throughput / IOPS / latency / utilisation, per-interface throughput and drops, TCP
//! retransmits. Counters become rates over the time between two samples; every sample of
//! the report interval is kept, so the report's max and p99 show short spikes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A series: metric name and labels.
pub type Key = (&'static str, Vec<(&'static str, String)>);

/// Counters read at one instant.
#[derive(Debug, Default, Clone)]
struct Counters {
    at: Option<Instant>,
    cpu: Vec<u64>,
    ctxt: u64,
    psi: HashMap<String, u64>,
    pswpin: u64,
    pswpout: u64,
    disks: HashMap<String, [u64; 6]>,
    nets: HashMap<String, [u64; 4]>,
    tcp: (u64, u64),
}

#[derive(Debug)]
pub struct Sampler {
    prev: Counters,
    ignore_devices: Vec<String>,
    ignore_interfaces: Vec<String>,
    /// Samples of the current report interval.
    pub series: BTreeMap<Key, Vec<f64>>,
    pub samples: u64,
    /// Sources that could not be read (named once per report).
    pub missing: BTreeMap<&'static str, String>,
}

impl Sampler {
    pub fn new(ignore_devices: Vec<String>, ignore_interfaces: Vec<String>) -> Self {
        Self {
            prev: Counters::default(),
            ignore_devices,
            ignore_interfaces,
            series: BTreeMap::new(),
            samples: 0,
            missing: BTreeMap::new(),
        }
    }

    fn push(&mut self, name: &'static str, labels: Vec<(&'static str, String)>, v: f64) {
        if v.is_finite() {
            self.series.entry((name, labels)).or_default().push(v);
        }
    }

    /// Take the samples of the interval that ends now.
    pub fn take(&mut self) -> BTreeMap<Key, Vec<f64>> {
        std::mem::take(&mut self.series)
    }

    /// Read every source once; with a previous reading, record the rates.
    pub fn sample(&mut self) {
        let now = Instant::now();
        let mut c = Counters { at: Some(now), ..Counters::default() };
        self.read_stat(&mut c);
        self.read_pressure(&mut c);
        self.read_memory();
        Self::read_vmstat(&mut c);
        self.read_disks(&mut c);
        self.read_nets(&mut c);
        Self::read_tcp(&mut c);
        let prev = std::mem::take(&mut self.prev);
        if let Some(prev_at) = prev.at {
            let dt = now.duration_since(prev_at).as_secs_f64().max(1e-3);
            self.rates(&prev, &c, dt);
            self.samples += 1;
        }
        self.prev = c;
    }

    /// `/proc/stat`: CPU ticks, context switches, runnable and blocked processes.
    fn read_stat(&mut self, c: &mut Counters) {
        match std::fs::read_to_string("/proc/stat") {
            Ok(stat) => {
                for line in stat.lines() {
                    let mut f = line.split_whitespace();
                    match f.next() {
                        Some("cpu") => c.cpu = f.filter_map(|x| x.parse().ok()).collect(),
                        Some("ctxt") => c.ctxt = f.next().and_then(|x| x.parse().ok()).unwrap_or(0),
                        Some("procs_running") => {
                            let v = f.next().and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
                            self.push("qmoi_perf_procs_running", vec![], v);
                        }
                        Some("procs_blocked") => {
                            let v = f.next().and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
                            self.push("qmoi_perf_procs_blocked", vec![], v);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                self.missing.insert("cpu", format!("/proc/stat: {e}"));
            }
        }
    }

    /// `/proc/pressure/*`: PSI totals (a kernel without PSI is noted once).
    fn read_pressure(&mut self, c: &mut Counters) {
        for res in ["cpu", "memory", "io"] {
            match std::fs::read_to_string(format!("/proc/pressure/{res}")) {
                Ok(text) => {
                    for line in text.lines() {
                        let kind = if line.starts_with("some") { "some" } else { "full" };
                        if let Some(total) = line.split_whitespace().find_map(|f| f.strip_prefix("total=")) {
                            c.psi.insert(format!("{res}/{kind}"), total.parse().unwrap_or(0));
                        }
                    }
                }
                Err(_) => {
                    self.missing.insert("pressure", "no /proc/pressure (kernel without PSI, or psi=0)".into());
                }
            }
        }
    }

    /// `/proc/meminfo`: memory in use.
    fn read_memory(&mut self) {
        if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
            let field = |name: &str| {
                meminfo
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let (Some(total), Some(avail)) = (field("MemTotal:"), field("MemAvailable:"))
                && total > 0.0
            {
                self.push("qmoi_perf_memory_used_percent", vec![], (1.0 - avail / total) * 100.0);
            }
        }
    }

    /// `/proc/vmstat`: pages swapped in and out.
    fn read_vmstat(c: &mut Counters) {
        if let Ok(vmstat) = std::fs::read_to_string("/proc/vmstat") {
            for line in vmstat.lines() {
                let mut f = line.split_whitespace();
                match (f.next(), f.next().and_then(|v| v.parse::<u64>().ok())) {
                    (Some("pswpin"), Some(v)) => c.pswpin = v,
                    (Some("pswpout"), Some(v)) => c.pswpout = v,
                    _ => {}
                }
            }
        }
    }

    /// `/proc/diskstats`: whole devices only (partitions would count the same I/O twice).
    fn read_disks(&self, c: &mut Counters) {
        if let Ok(ds) = std::fs::read_to_string("/proc/diskstats") {
            for line in ds.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 14 {
                    continue;
                }
                let dev = f[2];
                if dev.starts_with("loop")
                    || dev.starts_with("ram")
                    || self.ignore_devices.iter().any(|i| dev.starts_with(i.as_str()))
                {
                    continue;
                }
                // Whole devices only (partitions would count the same I/O twice).
                if !std::path::Path::new(&format!("/sys/block/{dev}")).exists() {
                    continue;
                }
                let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
                // [I/Os completed, sectors read, sectors written, ms spent on I/O, ms busy].
                c.disks.insert(dev.to_string(), [n(3) + n(7), n(5), n(9), n(6) + n(10), n(12), 0]);
            }
        }
    }

    /// `/proc/net/dev`: bytes and errors per interface.
    fn read_nets(&self, c: &mut Counters) {
        if let Ok(nd) = std::fs::read_to_string("/proc/net/dev") {
            for line in nd.lines().skip(2) {
                let Some((name, rest)) = line.split_once(':') else { continue };
                let name = name.trim();
                if self.ignore_interfaces.iter().any(|i| i == name) {
                    continue;
                }
                let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                if f.len() >= 12 {
                    c.nets.insert(name.to_string(), [f[0], f[8], f[3], f[11]]);
                }
            }
        }
    }

    /// `/proc/net/snmp`: TCP segments sent and retransmitted.
    fn read_tcp(c: &mut Counters) {
        if let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") {
            let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
            if tcp.len() == 2 {
                let names: Vec<&str> = tcp[0].split_whitespace().collect();
                let vals: Vec<&str> = tcp[1].split_whitespace().collect();
                let get =
                    |n: &str| names.iter().position(|x| *x == n).and_then(|i| vals.get(i)).and_then(|v| v.parse().ok());
                c.tcp = (get("OutSegs").unwrap_or(0), get("RetransSegs").unwrap_or(0));
            }
        }
    }

    fn rates(&mut self, p: &Counters, c: &Counters, dt: f64) {
        // CPU: user nice system idle iowait irq softirq steal.
        if c.cpu.len() >= 8 && p.cpu.len() >= 8 {
            let d: Vec<f64> = c.cpu.iter().zip(&p.cpu).take(8).map(|(a, b)| a.saturating_sub(*b) as f64).collect();
            let total: f64 = d.iter().sum();
            if total > 0.0 {
                let pct = |x: f64| x / total * 100.0;
                self.push("qmoi_perf_cpu_percent", vec![("mode", "busy".into())], pct(total - d[3] - d[4]));
                self.push("qmoi_perf_cpu_percent", vec![("mode", "user".into())], pct(d[0] + d[1]));
                self.push("qmoi_perf_cpu_percent", vec![("mode", "system".into())], pct(d[2] + d[5] + d[6]));
                self.push("qmoi_perf_cpu_percent", vec![("mode", "iowait".into())], pct(d[4]));
                self.push("qmoi_perf_cpu_percent", vec![("mode", "steal".into())], pct(d[7]));
            }
        }
        self.push("qmoi_perf_context_switches_per_second", vec![], c.ctxt.saturating_sub(p.ctxt) as f64 / dt);
        for (k, v) in &c.psi {
            if let Some(old) = p.psi.get(k) {
                // total= is microseconds stalled: percent of the time between samples.
                let (res, kind) = k.split_once('/').unwrap_or((k, ""));
                let pct = v.saturating_sub(*old) as f64 / (dt * 1e6) * 100.0;
                self.push(
                    "qmoi_perf_pressure_percent",
                    vec![("resource", res.into()), ("kind", kind.into())],
                    pct.min(100.0),
                );
            }
        }
        self.push("qmoi_perf_swap_in_pages_per_second", vec![], c.pswpin.saturating_sub(p.pswpin) as f64 / dt);
        self.push("qmoi_perf_swap_out_pages_per_second", vec![], c.pswpout.saturating_sub(p.pswpout) as f64 / dt);
        for (dev, now) in &c.disks {
            let Some(old) = p.disks.get(dev) else { continue };
            let d = |i: usize| now[i].saturating_sub(old[i]) as f64;
            let l = || vec![("device", dev.clone())];
            let ios = d(0);
            self.push("qmoi_perf_disk_read_bytes_per_second", l(), d(1) * 512.0 / dt);
            self.push("qmoi_perf_disk_write_bytes_per_second", l(), d(2) * 512.0 / dt);
            self.push("qmoi_perf_disk_iops", l(), ios / dt);
            if ios > 0.0 {
                self.push("qmoi_perf_disk_await_ms", l(), d(3) / ios);
            }
            self.push("qmoi_perf_disk_util_percent", l(), (d(4) / (dt * 1000.0) * 100.0).min(100.0));
        }
        for (ifc, now) in &c.nets {
            let Some(old) = p.nets.get(ifc) else { continue };
            let d = |i: usize| now[i].saturating_sub(old[i]) as f64 / dt;
            let l = || vec![("interface", ifc.clone())];
            self.push("qmoi_perf_net_rx_bytes_per_second", l(), d(0));
            self.push("qmoi_perf_net_tx_bytes_per_second", l(), d(1));
            self.push("qmoi_perf_net_drops_per_second", l(), d(2) + d(3));
        }
        let out = c.tcp.0.saturating_sub(p.tcp.0) as f64;
        let re = c.tcp.1.saturating_sub(p.tcp.1) as f64;
        self.push("qmoi_perf_tcp_retransmits_per_second", vec![], re / dt);
        if out > 0.0 {
            self.push("qmoi_perf_tcp_retransmit_percent", vec![], re / out * 100.0);
        }
    }
}
