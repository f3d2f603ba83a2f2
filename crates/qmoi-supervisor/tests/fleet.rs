//! The Fleet page's API against a real Prometheus that two real stacks push to: every
//! host with the verdict its own supervisor gives, its components that are not ok and its
//! alerts; a stopped host turns stale; no `[fleet]` means no page; an engine that is down
//! is a 502 naming it.

use qmoi_testkit::engines::{Prometheus, QueryApi, installed};
use qmoi_testkit::{Stack, fake_component, http, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

fn stack(host: &str, prom: &Prometheus, fleet: &str, monitors: &str) -> Stack {
    let cfg = format!(
        "[dashboard]\nport = 0\n[report]\ninterval = 1\n[remote_write]\ninterval = 1\nhost = \"{host}\"\n\
         [[remote_write.receivers]]\nurl = \"{}\"\n{fleet}\n{monitors}",
        prom.write_url()
    );
    let mut s = Stack::new(&cfg);
    s.start();
    s
}

fn fleet_hosts(addr: &str) -> Option<serde_json::Value> {
    let r = http("GET", addr, "/api/fleet", &[], None);
    (r.status == 200).then(|| r.json())
}

fn host<'a>(fleet: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    fleet["hosts"].as_array()?.iter().find(|h| h["host"] == name)
}

#[test]
fn the_fleet_page_shows_every_host_as_the_engine_sees_it() {
    if !installed("prometheus", "prometheus") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(tmp.path(), "127.0.0.1:0", "global:\n  scrape_interval: 15s\n", &[]);
    let alpha = stack(
        "alpha",
        &prom,
        "",
        &(fake_component("system_health", &["--mode", "warn"], "") + &fake_component("security", &[], "")),
    );
    let fleet_cfg =
        format!("[fleet]\nquery_url = \"http://{}\"\nstale_after = \"4s\"\nlookback = \"10m\"\n", prom.listen);
    let beta = stack("beta", &prom, &fleet_cfg, &fake_component("system_health", &["--mode", "critical"], ""));
    let (a_addr, b_addr) = (alpha.dashboard_addr(), beta.dashboard_addr());

    // Without [fleet] there is no Fleet page.
    let r = http("GET", &a_addr, "/api/fleet", &[], None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("[fleet] query_url"), "{}", r.body);

    // Both hosts, each with the verdict its own supervisor gives.
    let own = |addr: &str| http("GET", addr, "/api/monitor/status", &[], None).json()["verdict"]["overall"].clone();
    let fleet = wait_for(WAIT, "both hosts on the Fleet page with their own verdicts", || {
        let f = fleet_hosts(&b_addr)?;
        let (a, b) = (host(&f, "alpha")?, host(&f, "beta")?);
        (a["verdict"] == own(&a_addr) && b["verdict"] == own(&b_addr) && a["verdict"] != b["verdict"]).then_some(f)
    });
    let (a, b) = (host(&fleet, "alpha").unwrap(), host(&fleet, "beta").unwrap());
    assert_eq!(b["verdict"], "critical", "{fleet}");
    assert_eq!(fleet["hosts"][0]["host"], "beta", "the worst first: {fleet}");
    assert!(!a["stale"].as_bool().unwrap() && a["age_s"].as_f64().unwrap() < 4.0, "{a}");
    let not_ok = |h: &serde_json::Value| h["components_not_ok"].as_array().cloned().unwrap_or_default();
    assert!(not_ok(a).iter().any(|c| c["component"] == "system_health" && c["status"] == "warning"), "{a}");
    assert!(!not_ok(a).iter().any(|c| c["component"] == "security"), "security is ok: {a}");
    assert!(not_ok(b).iter().any(|c| c["component"] == "system_health" && c["status"] == "critical"), "{b}");
    assert!(b["critical_alerts"].as_u64().unwrap() >= 1 && a["warning_alerts"].as_u64().unwrap() >= 1, "{fleet}");
    assert_eq!(fleet["summary"]["hosts"], 2);
    // The engine agrees: it is where the page's numbers come from.
    assert_eq!(prom.value(r#"max(qmoi_verdict{host="beta"})"#), Some(2.0));

    // A host that stops is stale once its last report is older than stale_after.
    drop(alpha);
    let f = wait_for(WAIT, "alpha stale", || {
        let f = fleet_hosts(&b_addr)?;
        host(&f, "alpha")?["stale"].as_bool()?.then_some(f)
    });
    assert_eq!(f["summary"]["stale"], 1, "{f}");
    assert_eq!(f["hosts"][0]["host"], "alpha", "stale hosts first: {f}");

    // The engine gone: a 502 that names it.
    drop(prom);
    let r = wait_for(WAIT, "a 502 once the cached answer expired", || {
        let r = http("GET", &b_addr, "/api/fleet", &[], None);
        (r.status == 502).then_some(r)
    });
    assert!(r.body.contains("the fleet's query engine at http://127.0.0.1:"), "{}", r.body);
}
