//! Service level objectives through the whole stack: the real supervisor runs the real
//! `qmoi-api-endpoints` with an endpoint whose every probe fails (a closed port), so its
//! error budget burns at 1,000× (every probe bad against a 0.1% allowance): the page
//! fires, `GET /api/slo` shows it, `/metrics` has the `qmoi_slo_*` series, and once a
//! maintenance window of the component is opened with the CLI, probes are counted as
//! excluded instead.

use qmoi_testkit::{Stack, bin, free_port, http, wait_for};
use std::time::Duration;

#[test]
fn a_burning_objective_pages_and_maintenance_excludes_probes() {
    let closed = free_port();
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[report]\ninterval = 1\n\
         [monitoring_components.api_endpoints]\ninterval = 1\ncommand = \"{}\"\n",
        bin("qmoi-api-endpoints").display()
    ));
    stack.write(
        "config/api_endpoints.toml",
        &format!(
            "interval = 1\nprobe_interval = \"200ms\"\n[[endpoints]]\nname = \"checkout\"\nkind = \"tcp\"\n\
             target = \"127.0.0.1:{closed}\"\ntimeout = \"100ms\"\nslo = {{ objective = 99.9, window = \"7d\" }}\n"
        ),
    );
    stack.start();
    let addr = stack.dashboard_addr();
    let row = wait_for(Duration::from_secs(30), "the page on /api/slo", || {
        let r = http("GET", &addr, "/api/slo", &[], None);
        let slos = r.json()["slos"].clone();
        let row = slos.as_array()?.iter().find(|s| s["name"] == "checkout")?.clone();
        (row["alerting"] == "page").then_some(row)
    });
    assert_eq!(row["component"], "api_endpoints");
    assert_eq!(row["good"], 0, "{row}");
    assert!((row["burn_rates"]["5m"].as_f64().unwrap() - 1000.0).abs() < 1e-6, "{row}");
    assert!(row["budget_remaining_percent"].as_f64().unwrap() < 0.0, "overspent: {row}");
    let metrics = http("GET", &addr, "/metrics", &[], None).body;
    assert!(metrics.contains("qmoi_slo_alerting{component=\"api_endpoints\",endpoint=\"checkout\"} 1"), "{metrics}");
    assert!(
        metrics.contains("qmoi_slo_burn_rate{component=\"api_endpoints\",endpoint=\"checkout\",window=\"1h\"} 1000"),
        "{metrics}"
    );
    assert!(metrics.contains("# HELP qmoi_slo_error_budget_remaining_ratio Share of the error budget left"));
    let alerts = http("GET", &addr, "/api/alerts", &[], None).json();
    assert!(
        alerts["active"].as_array().unwrap().iter().any(|a| a["alert"]["fingerprint"] == "api_endpoints/slo:checkout"
            || a["fingerprint"] == "api_endpoints/slo:checkout"),
        "{alerts}"
    );

    let out =
        stack.run(&["maintenance", "add", "--for", "1h", "--component", "api_endpoints", "--reason", "network work"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let total = row["total"].as_u64().unwrap();
    // The window is read at the next report (every second here); from then on probes are
    // excluded and the count of counted ones stops growing.
    let excluded = wait_for(Duration::from_secs(20), "probes counted as excluded", || {
        let r = http("GET", &addr, "/api/slo", &[], None).json();
        let row = r["slos"].as_array()?.iter().find(|s| s["name"] == "checkout")?.clone();
        (row["excluded"].as_u64()? >= 5).then_some(row)
    });
    let counted = excluded["total"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let later = http("GET", &addr, "/api/slo", &[], None).json();
    let later = later["slos"].as_array().unwrap().iter().find(|s| s["name"] == "checkout").cloned().unwrap();
    assert!(counted >= total && later["total"].as_u64() == Some(counted), "{excluded} then {later}");
    assert!(later["excluded"].as_u64() > excluded["excluded"].as_u64(), "{later}");
}
