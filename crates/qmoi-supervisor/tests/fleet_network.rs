//! `scripts/fleet.sh 3`: three full QMOI stacks in network namespaces with Prometheus,
//! VictoriaMetrics, a two-replica Alertmanager cluster and a webhook receiver (docs/FLEET.md,
//! "The fleet test"), with this build's binaries. Needs root, as CI runs; elsewhere it
//! is skipped unless `QMOI_REQUIRE_EXTERNAL` is set.

use std::process::Command;

#[test]
fn three_hosts_in_namespaces_pass_every_fleet_step() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!qmoi_testkit::require_external(), "the fleet test needs root (network namespaces); CI runs as root");
        eprintln!("SKIPPED: the fleet test needs root");
        return;
    }
    for (tool, pkg) in [("prometheus", "prometheus"), ("victoria-metrics", "victoria-metrics")] {
        if !qmoi_testkit::engines::installed(tool, pkg) {
            return;
        }
    }
    if !qmoi_testkit::require_tool(&["prometheus-alertmanager", "ip", "unshare"], "scripts/test.sh installs them") {
        return;
    }
    let bin_dir = qmoi_testkit::bin("qmoi-supervisor").parent().map(std::path::Path::to_path_buf).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(repo.join("scripts/fleet.sh"))
        .arg("3")
        .env("QMOI_BIN_DIR", &bin_dir)
        .current_dir(&repo)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "scripts/fleet.sh 3 failed:\n{text}");
    for step in [
        "PASS  verdicts in Prometheus, VictoriaMetrics and on the Fleet page",
        "PASS  every Grafana panel query returns data",
        "PASS  a critical host is notified exactly once, with its host label",
        "PASS  a stopped stack: stale on the Fleet page, QmoiStackDown through Alertmanager",
        "PASS  one Alertmanager replica killed: the alert still arrives, once",
    ] {
        assert!(text.contains(step), "missing: {step}\n{text}");
    }
    // Nothing of the network is left: no namespace, no bridge of that run.
    let prefix = text.split("(namespaces ").nth(1).and_then(|r| r.split('-').next()).unwrap_or("qf-none").to_string();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains(&format!("{prefix}-")), "namespaces left behind");
    let links = Command::new("ip").args(["link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&format!("{prefix}br")), "bridge left behind");
}
