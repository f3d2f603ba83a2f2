//! Remote write from the real supervisor to the real engines: Prometheus 2.42 (its
//! remote-write receiver) and VictoriaMetrics, both on loopback ports. Every metric of
//! `/metrics` arrives with the `host`, `instance`, `job` and configured labels; a receiver
//! that is down for several intervals (while the supervisor is killed with -9 and started
//! again) gets the gap filled when it returns; a receiver that answers 404 has its samples
//! dropped and counted.

use qmoi_testkit::engines::{Prometheus, QueryApi, VictoriaMetrics, installed};
use qmoi_testkit::{Stack, http, signal, wait_for};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(30);

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A value of the supervisor's `/metrics`.
fn metric(addr: &str, line_start: &str) -> Option<f64> {
    let body = http("GET", addr, "/metrics", &[], None).body;
    body.lines().find(|l| l.starts_with(line_start))?.rsplit(' ').next()?.parse().ok()
}

/// The raw samples' timestamps of `selector` over the last `range`, from Prometheus.
fn sample_times(p: &Prometheus, selector: &str, range: &str) -> Vec<f64> {
    let r = p.query(&format!("{selector}[{range}]"));
    let Some(values) = r.first().and_then(|s| s["values"].as_array()) else { return Vec::new() };
    values.iter().filter_map(|v| v[0].as_f64()).collect()
}

#[test]
fn metrics_reach_prometheus_and_victoriametrics_and_outages_are_filled() {
    if !installed("prometheus", "prometheus") || !installed("victoria-metrics", "victoria-metrics") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut prom = Prometheus::start(tmp.path(), "127.0.0.1:0", "global:\n  scrape_interval: 15s\n", &[]);
    let vm = VictoriaMetrics::start(tmp.path(), "127.0.0.1:0");
    let cfg = format!(
        r#"
[dashboard]
port = 0
[report]
interval = 1
[remote_write]
interval = 1
host = "rw-host"
min_backoff = "200ms"
max_backoff = "1s"
labels = {{ dc = "test-dc" }}
[[remote_write.receivers]]
name = "prom"
url = "{}"
[[remote_write.receivers]]
name = "vm"
url = "{}"
labels = {{ store = "vm" }}
[[remote_write.receivers]]
name = "wrong-path"
url = "http://{}/api/v1/nope"
{}"#,
        prom.write_url(),
        vm.write_url(),
        prom.listen,
        qmoi_testkit::fake_component("system_health", &["--metric", "qmoi_load1=0.25"], "")
    );
    let mut stack = Stack::new(&cfg);
    stack.start();
    let addr = stack.dashboard_addr();

    // Both engines hold the stack's metrics with the push's labels.
    let got =
        wait_for(WAIT, "qmoi_load1 in Prometheus", || prom.query(r#"qmoi_load1{host="rw-host"}"#).into_iter().next());
    let m = &got["metric"];
    assert_eq!((m["instance"].as_str(), m["job"].as_str()), (Some("rw-host"), Some("qmoi")), "{got}");
    assert_eq!((m["dc"].as_str(), m["component"].as_str()), (Some("test-dc"), Some("system_health")), "{got}");
    assert_eq!(got["value"][1], "0.25");
    wait_for(WAIT, "the verdict in Prometheus", || prom.value(r#"qmoi_verdict{host="rw-host"}"#));
    let in_vm = wait_for(WAIT, "qmoi_load1 in VictoriaMetrics", || {
        vm.query(r#"qmoi_load1{host="rw-host",store="vm"}"#).into_iter().next()
    });
    assert_eq!(in_vm["metric"]["dc"], "test-dc", "{in_vm}");
    // The dashboard's own counters are pushed too: everything /metrics has.
    wait_for(WAIT, "qmoi_dashboard_* in VictoriaMetrics", || {
        vm.query(r#"{__name__=~"qmoi_dashboard_.+",host="rw-host"}"#).into_iter().next()
    });

    // The counters, on /metrics (through the supervisor's report).
    wait_for(WAIT, "sent samples counted", || {
        metric(&addr, r#"qmoi_remote_write_sent_samples_total{component="master_monitor",receiver="prom"}"#)
            .filter(|v| *v > 0.0)
    });
    // A 404 is not retried: the samples are dropped and counted, and the log says why.
    wait_for(WAIT, "samples refused by a wrong URL counted", || {
        metric(&addr, r#"qmoi_remote_write_failed_samples_total{component="master_monitor",receiver="wrong-path"}"#)
            .filter(|v| *v > 0.0)
    });
    assert_eq!(
        metric(&addr, r#"qmoi_remote_write_retries_total{component="master_monitor",receiver="wrong-path"}"#),
        Some(0.0)
    );
    let log = std::fs::read_to_string(stack.path("logs/master_monitor.log")).unwrap_or_default();
    assert!(log.contains("refused") && log.contains("404"), "{log}");

    // Outage: Prometheus gone for several intervals; meanwhile the supervisor is killed
    // with -9 and started again. Every sample of the outage must arrive when it returns.
    let down_at = now();
    prom.stop();
    wait_for(WAIT, "requests buffered while Prometheus is down", || {
        metric(&addr, r#"qmoi_remote_write_pending_requests{component="master_monitor",receiver="prom"}"#)
            .filter(|v| *v >= 3.0)
    });
    let pid = stack.child.as_ref().map(std::process::Child::id).unwrap();
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = stack.child.take().map(|mut c| c.wait());
    let buffered = std::fs::read_dir(stack.path("data/remote_write/prom")).map(|d| d.count()).unwrap_or(0);
    assert!(buffered >= 3, "the buffer is on disk after kill -9: {buffered} files");
    let _ = std::fs::remove_file(stack.path("run/dashboard.addr"));
    stack.start();
    let addr = stack.dashboard_addr();
    std::thread::sleep(Duration::from_secs(3));
    prom.restart();
    let up_at = now();
    wait_for(WAIT, "the buffer drained", || {
        metric(&addr, r#"qmoi_remote_write_pending_requests{component="master_monitor",receiver="prom"}"#)
            .filter(|v| *v == 0.0)
    });
    // The samples of the outage: the largest gap between two is the supervisor's own
    // restart (it pushed nothing while it was dead), not the receiver's outage.
    let range = format!("{}s", (now() - down_at + 30.0).ceil());
    let times = sample_times(&prom, r#"qmoi_last_report_timestamp_seconds{host="rw-host"}"#, &range);
    let during: Vec<f64> = times.iter().copied().filter(|t| *t > down_at && *t < up_at).collect();
    assert!(
        during.len() as f64 >= (up_at - down_at) * 0.5,
        "outage of {:.1}s: only {} samples from it in Prometheus: {times:?}\n{}",
        up_at - down_at,
        during.len(),
        prom.log()
    );
    let max_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    eprintln!(
        "outage {:.1}s: {} samples from it in Prometheus, largest gap {max_gap:.1}s",
        up_at - down_at,
        during.len()
    );
    assert!(max_gap < (up_at - down_at), "gap of {max_gap:.1}s in {times:?}");
    assert_eq!(
        metric(&addr, r#"qmoi_remote_write_dropped_samples_total{component="master_monitor",receiver="prom"}"#),
        Some(0.0),
        "nothing dropped: the buffer is far below its limit"
    );
}
