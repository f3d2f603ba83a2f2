//! The cloud monitor against the moto AWS emulator (PyPI `moto[server]`; scripts/test.sh
//! creates its venv and sets QMOI_TEST_PYTHON), started on a loopback port by each test:
//! resources are created through the emulator with boto3 (tests/common/moto_seed.py),
//! CloudWatch is seeded with PutMetricData and Cost Explorer through moto's
//! `/moto-api/static/ce/…` endpoint, then the real `qmoi-cloud` binary runs against it. Without moto the tests say so and skip,
//! unless QMOI_REQUIRE_EXTERNAL=1 makes that a failure.

mod common;

use chrono::{Datelike, NaiveDate, Utc};
use common::{Env, alert_fingerprints, alert_level, has_check, metric, names, status};
use qmoi_testkit::{Kill, check, free_port, require_external, wait_for};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Moto {
    _child: Kill,
    url: String,
    python: PathBuf,
}

fn python_with_moto() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> =
        std::env::var_os("QMOI_TEST_PYTHON").map(PathBuf::from).into_iter().chain([PathBuf::from("python3")]).collect();
    candidates.into_iter().find(|p| {
        Command::new(p).args(["-c", "import moto.server"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

fn start_moto() -> Option<Moto> {
    let Some(py) = python_with_moto() else {
        assert!(!require_external(), "moto is not installed (scripts/test.sh creates its venv)");
        eprintln!("SKIPPED: moto not installed; run scripts/test.sh");
        return None;
    };
    let port = free_port();
    let child = Command::new(&py)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let child = Kill(child);
    wait_for(Duration::from_secs(60), "moto listening", || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
    Some(Moto { _child: child, url: format!("http://127.0.0.1:{port}"), python: py })
}

impl Moto {
    /// Run `steps` (tests/common/moto_seed.py: boto3 against the emulator) and return
    /// what they saved.
    fn seed(&self, steps: serde_json::Value) -> serde_json::Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/moto_seed.py");
        let mut child = Command::new(&self.python)
            .args([script, &self.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, steps.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("writing to moto_seed.py: {e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("moto_seed.py: {e}"));
        assert!(out.status.success(), "seeding moto failed: {steps}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("moto_seed.py: {e}"))
    }
}

/// A saved id of a seeding.
fn id(saved: &serde_json::Value, name: &str) -> String {
    saved[name].as_str().unwrap_or_else(|| panic!("no {name} in {saved}")).to_string()
}

/// Seed Cost Explorer: one result of daily unblended costs.
fn seed_cost(moto: &str, days: &[(NaiveDate, f64)]) {
    let rows: Vec<serde_json::Value> = days
        .iter()
        .map(|(d, a)| {
            serde_json::json!({
                "TimePeriod": {"Start": d.format("%Y-%m-%d").to_string(), "End": (*d + chrono::Days::new(1)).format("%Y-%m-%d").to_string()},
                "Total": {"UnblendedCost": {"Amount": format!("{a:.2}"), "Unit": "USD"}},
                "Estimated": false,
            })
        })
        .collect();
    let body = serde_json::json!({"results": [{"ResultsByTime": rows}]}).to_string();
    let addr = moto.trim_start_matches("http://");
    let r = qmoi_testkit::http(
        "POST",
        addr,
        "/moto-api/static/ce/cost-and-usage-results",
        &[("Content-Type", "application/json")],
        Some(&body),
    );
    assert_eq!(r.status, 201, "seeding Cost Explorer: {}", r.body);
}

#[test]
fn inventory_states_utilisation_waste_and_cost_from_moto() {
    let Some(moto) = start_moto() else { return };
    let today = Utc::now().date_naive();
    let (hour, day, min5) = (3600, 86_400, 300);
    let ids = moto.seed(serde_json::json!([
        {"op": "launch", "name": "web-1", "tags": {"qmoi-critical": "true"}, "as": "web"},
        {"op": "launch", "name": "idle-1", "as": "idle"},
        {"op": "launch", "name": "busy-1", "as": "busy"},
        {"op": "stop", "id": "$web"},
        {"op": "volume", "size": 50, "zone": "us-east-1a", "as": "loose_volume"},
        {"op": "volume", "size": 10, "zone": "us-east-1a", "as": "used_volume"},
        {"op": "attach", "volume": "$used_volume", "instance": "$busy"},
        {"op": "address", "as": "free_ip"},
        {"op": "address", "as": "used_ip"},
        {"op": "associate", "allocation": "$used_ip", "instance": "$busy"},
        // idle-1: 2% for 8 days; busy-1: 99% over the last hour.
        {"op": "cpu", "id": "$idle", "value": 2.0, "span": 8 * day, "step": hour},
        {"op": "cpu", "id": "$busy", "value": 99.0, "span": 55 * 60, "step": min5},
        {"op": "launch", "region": "eu-west-1", "name": "eu-1", "as": "eu"},
        {"op": "cpu", "region": "eu-west-1", "id": "$eu", "value": 40.0, "span": 55 * 60, "step": min5},
    ]));
    let (web, busy, eu) = (id(&ids, "web"), id(&ids, "busy"), id(&ids, "eu"));
    // 10 a day for 30 days, 45 yesterday (an anomaly), 3 so far today.
    let days: Vec<(NaiveDate, f64)> = (0..=31u64)
        .rev()
        .map(|back| {
            let d = today - chrono::Days::new(back);
            (
                d,
                if back == 1 {
                    45.0
                } else if back == 0 {
                    3.0
                } else {
                    10.0
                },
            )
        })
        .collect();
    seed_cost(&moto.url, &days);
    let month_to_date: f64 =
        days.iter().filter(|(d, _)| d.month() == today.month() && d.year() == today.year()).map(|(_, a)| a).sum();

    let env = Env::new(&format!(
        r#"
[[providers]]
name = "aws"
type = "aws"
regions = ["us-east-1", "eu-west-1"]
endpoint_url = "{}"
monthly_budget = 200.0
"#,
        moto.url
    ));
    let mut env = env;
    env.set("AWS_ACCESS_KEY_ID", "testing");
    env.set("AWS_SECRET_ACCESS_KEY", "testing");
    let r = env.once();
    let all = names(&r);
    assert_eq!(r["status"], "critical", "{all}");
    assert_eq!(status(&r, "provider:aws"), "ok", "{all}");
    // The stopped critical instance (tagged qmoi-critical) is critical.
    let web_check = check(&r, &format!("instance:aws:{web}"));
    assert_eq!(web_check["status"], "critical", "{all}");
    assert!(web_check["message"].as_str().unwrap_or("").contains("web-1"), "{web_check}");
    // CPU: busy-1 at 99% is critical; eu-1 at 40% raises nothing.
    let busy_cpu = check(&r, &format!("cpu:aws:{busy}"));
    assert_eq!(busy_cpu["status"], "critical");
    assert!((busy_cpu["value"].as_f64().unwrap_or(0.0) - 99.0).abs() < 0.5, "{busy_cpu}");
    assert!(!has_check(&r, &format!("cpu:aws:{}", eu)), "{all}");
    let eu_cpu = metric(&r, &format!("qmoi_cloud_instance_cpu_percent{{provider=\"aws\",instance=\"{}\"}}", eu));
    assert!(eu_cpu.is_some_and(|v| (v - 40.0).abs() < 0.5), "{eu_cpu:?}");
    // Counts per region and state.
    let count = |region: &str, state: &str| {
        metric(&r, &format!("qmoi_cloud_instances{{provider=\"aws\",region=\"{region}\",state=\"{state}\"}}"))
    };
    assert_eq!(count("us-east-1", "running"), Some(2.0));
    assert_eq!(count("us-east-1", "stopped"), Some(1.0));
    assert_eq!(count("eu-west-1", "running"), Some(1.0));
    // Waste: the loose volume, the free address and idle-1, as info alerts; nothing for
    // the attached volume, the associated address or the busy instance.
    let fps = alert_fingerprints(&r);
    let waste = |kind: &str, id: &str| format!("cloud_resources/waste:aws:{kind}:{id}");
    assert_eq!(
        alert_level(&r, &waste("unattached_volume", &id(&ids, "loose_volume"))).as_deref(),
        Some("info"),
        "{fps:?}"
    );
    assert_eq!(alert_level(&r, &waste("unassociated_ip", &id(&ids, "free_ip"))).as_deref(), Some("info"), "{fps:?}");
    assert_eq!(alert_level(&r, &waste("idle_instance", &id(&ids, "idle"))).as_deref(), Some("info"), "{fps:?}");
    assert!(!fps.contains(&waste("unassociated_ip", &id(&ids, "used_ip"))), "{fps:?}");
    assert!(!fps.contains(&waste("idle_instance", &busy)), "{fps:?}");
    assert_eq!(fps.iter().filter(|f| f.contains("/waste:")).count(), 3, "{fps:?}");
    // Cost: month to date, the budget (forecast well above 200) and yesterday's anomaly.
    let mtd = metric(&r, "qmoi_cloud_cost_month_to_date{provider=\"aws\"}").unwrap_or(-1.0);
    assert!((mtd - month_to_date).abs() < 0.01, "month to date {mtd}, expected {month_to_date}");
    let budget = check(&r, "budget:aws");
    assert_eq!(budget["status"], "critical", "{budget}");
    assert!(budget["value"].as_f64().unwrap_or(0.0) > 100.0, "{budget}");
    assert_eq!(status(&r, "cost_anomaly:aws"), "warning", "{all}");
    // The inventory table.
    let rows = r["details"]["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 4);
    let web_row = rows.iter().find(|x| x["id"] == web.as_str()).unwrap_or_else(|| panic!("no row for web-1"));
    assert_eq!(web_row["name"], "web-1");
    assert_eq!(web_row["state"], "stopped");
    assert_eq!(web_row["critical"], true);
    assert_eq!(
        r["details"]["volumes_total"], 6,
        "the emulator's root volume of each of the 4 instances and the two created"
    );

    // Second run: web-1 started again clears its alert; the cost comes from the disk cache
    // (the emulator now answers differently, and is not asked).
    let mut changed = days.clone();
    for d in &mut changed {
        d.1 = 1000.0;
    }
    seed_cost(&moto.url, &changed);
    moto.seed(serde_json::json!([{"op": "start", "id": web}]));
    let r2 = env.once();
    assert_eq!(status(&r2, &format!("instance:aws:{}", web)), "ok", "{}", names(&r2));
    assert!(!alert_fingerprints(&r2).contains(&format!("cloud_resources/instance:aws:{}", web)));
    let mtd2 = metric(&r2, "qmoi_cloud_cost_month_to_date{provider=\"aws\"}").unwrap_or(-1.0);
    assert!((mtd2 - month_to_date).abs() < 0.01, "the cached cost was not used: {mtd2}");
    let cache = qmoi_testkit::read_json(&env.path("data/cloud_cost_cache.json")).unwrap_or_default();
    assert!(cache["providers"]["aws"]["fetched_at"].is_string(), "{cache}");

    // Reset the emulator: everything is gone, and the report says so.
    let reset = qmoi_testkit::http("POST", moto.url.trim_start_matches("http://"), "/moto-api/reset", &[], None);
    assert_eq!(reset.status, 200);
    let r3 = env.once();
    assert_eq!(r3["details"]["instances_total"], 0, "{}", names(&r3));
    assert_eq!(status(&r3, "provider:aws"), "ok");
    assert!(alert_fingerprints(&r3).iter().all(|f| !f.contains("/instance:") && !f.contains("/cpu:")));

    // --check prints the inventory table and exits with the report's status.
    let out = env.run(&["--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("aws: 0 instance(s)"), "{text}");
    assert!(text.contains("provider:aws"), "{text}");
}

#[test]
fn missing_credentials_and_a_dead_endpoint_are_errors_of_their_provider_only() {
    let Some(moto) = start_moto() else { return };
    let app = id(&moto.seed(serde_json::json!([{"op": "launch", "name": "app-1", "as": "app"}])), "app");
    let closed = free_port();
    let env = Env::new(&format!(
        r#"
request_timeout = "3s"
[[providers]]
name = "good"
type = "aws"
profile = "moto"
regions = ["us-east-1"]
endpoint_url = "{url}"
cost = false

[[providers]]
name = "nocreds"
type = "aws"
profile = "nobody"
regions = ["us-east-1"]
endpoint_url = "{url}"

[[providers]]
name = "dead"
type = "aws"
profile = "moto"
regions = ["us-east-1"]
endpoint_url = "http://127.0.0.1:{closed}"
"#,
        url = moto.url
    ));
    // Credentials only from a profile; the process has none in its environment.
    std::fs::write(
        env.path("home/aws-credentials"),
        "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    std::fs::write(env.path("home/aws-config"), "[profile moto]\nregion = us-east-1\n").unwrap();
    let mut env = env;
    env.removed.extend(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"].map(String::from));
    let r = env.once();
    let all = names(&r);
    // The good provider is unaffected.
    let good = check(&r, "provider:good");
    assert_eq!(good["status"], "ok", "{all}");
    assert!(good["message"].as_str().unwrap_or("").contains("1 instance"), "{good}");
    assert!(r["details"]["instances"].as_array().is_some_and(|a| a.iter().any(|i| i["id"] == app.as_str())));
    // No credentials: the provider is unknown and says why.
    let nocreds = check(&r, "provider:nocreds");
    assert_eq!(nocreds["status"], "unknown", "{all}");
    let msg = nocreds["message"].as_str().unwrap_or("").to_lowercase();
    assert!(msg.contains("credential") || msg.contains("profile"), "{msg}");
    // A dead endpoint: unknown, named unreachable, per API.
    let dead = check(&r, "provider:dead");
    assert_eq!(dead["status"], "unknown", "{all}");
    assert!(dead["message"].as_str().unwrap_or("").contains("unreachable"), "{dead}");
    let dead_apis = r["checks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["name"].as_str().is_some_and(|n| n.starts_with("api:dead:"))).count());
    assert!(dead_apis.unwrap_or(0) >= 4, "{all}");
    assert_eq!(status(&r, "cost:dead"), "unknown", "{all}");
    // Unknown checks raise warnings: an operator hears of it.
    assert_eq!(alert_level(&r, "cloud_resources/provider:dead").as_deref(), Some("warning"));
    // --provider limits a run to one provider.
    let out = env.run(&["--check", "--provider", "good"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("provider:dead"), "{text}");
    let out = env.run(&["--check", "--provider", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no enabled provider named or of type 'nope'"));
}
