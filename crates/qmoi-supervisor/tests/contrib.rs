//! What `contrib/` ships for Prometheus and Grafana, checked with the real tools:
//! `promtool check rules` / `promtool test rules` (a unit test for every alerting rule),
//! `promtool check config` on the scrape example, the Grafana dashboards against the
//! dashboard model's required fields, and every panel's PromQL run against a real
//! Prometheus that scrapes one real QMOI stack and receives remote writes from another
//! (Grafana itself is not packaged for Debian: its queries are what can be tested here).

use qmoi_testkit::engines::{Prometheus, QueryApi, installed, urlencode};
use qmoi_testkit::{Kill, Stack, free_port, http, wait_for};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib").join(rel)
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool").args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("promtool: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn alerting_rules_pass_promtool_check_and_their_unit_tests() {
    if !installed("promtool", "prometheus") {
        return;
    }
    let dir = contrib("prometheus");
    let out = promtool(&["check", "rules", "qmoi-rules.yml"], &dir);
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
    let out = promtool(&["test", "rules", "qmoi-rules.test.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
    // Every rule has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("qmoi-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("qmoi-rules.test.yml")).unwrap();
    for name in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let firing = tests.lines().collect::<Vec<_>>().windows(3).any(|w| {
            w[0].trim() == format!("alertname: {name}") && w[1].trim() == "exp_alerts:" && w[2].contains("exp_labels")
        });
        assert!(firing, "rule {name} has no test in which it fires");
    }
}

#[test]
fn the_scrape_config_example_passes_promtool() {
    if !installed("promtool", "prometheus") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in ["qmoi-rules.yml", "qmoi-targets.yml"] {
        std::fs::copy(contrib("prometheus").join(f), tmp.path().join(f)).unwrap();
    }
    let token = tmp.path().join("qmoi.token");
    std::fs::write(&token, "read-token-0123456789\n").unwrap();
    let cfg = std::fs::read_to_string(contrib("prometheus/prometheus.yml")).unwrap();
    assert!(cfg.contains("/etc/prometheus/qmoi.token"));
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        cfg.replace("/etc/prometheus/qmoi.token", &token.display().to_string()),
    )
    .unwrap();
    let out = promtool(&["check", "config", "prometheus.yml"], tmp.path());
    assert!(out.contains("SUCCESS") && out.contains("9 rules found"), "{out}");
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    ["qmoi-host.json", "qmoi-fleet.json"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(contrib("grafana").join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n.to_string(), serde_json::from_str(&text).unwrap_or_else(|e| panic!("{n}: {e}")))
        })
        .collect()
}

/// Every target of every panel: (dashboard, panel title, expr).
fn queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, d) in dashboards() {
        for p in d["panels"].as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let (title, expr) = (p["title"].as_str().unwrap_or_default(), t["expr"].as_str().unwrap_or_default());
                out.push((name.clone(), title.to_string(), expr.to_string()));
            }
        }
    }
    out
}

/// The fields Grafana's dashboard model requires (schema v39), and what makes these two
/// usable on any Prometheus data source: the `datasource` and `host` variables, every
/// query through the variable, unique panel ids, panels on the 24-column grid.
#[test]
fn grafana_dashboards_have_the_models_required_fields() {
    for (name, d) in dashboards() {
        for key in ["uid", "title", "schemaVersion", "version", "panels", "templating", "time", "tags"] {
            assert!(!d[key].is_null(), "{name}: no {key}");
        }
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{name}");
        let vars = d["templating"]["list"].as_array().unwrap();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).unwrap_or_else(|| panic!("{name}: no ${n}"));
        assert_eq!(var("datasource")["type"], "datasource");
        assert_eq!(var("datasource")["query"], "prometheus");
        assert_eq!(var("host")["type"], "query");
        assert_eq!(var("host")["datasource"]["uid"], "${datasource}");
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{name}: a panel without a title");
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{name}: panel id {} twice", p["id"]);
            assert!(["stat", "table", "timeseries"].contains(&p["type"].as_str().unwrap()), "{name}/{title}");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(w > 0 && h > 0 && x + w <= 24, "{name}/{title}: {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{name}/{title} overlaps another panel at ({cx},{cy})");
                }
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}/{title}: no query");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(refs.insert(t["refId"].as_str().unwrap()), "{name}/{title}: refId twice");
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}/{title}");
                assert!(t["expr"].as_str().unwrap().contains("$host"), "{name}/{title}: not filtered by $host");
            }
        }
    }
}

fn substitute(expr: &str, host: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "15s")
        .replace("$host", host)
}

/// A stack with every shipped monitor at a short interval, a backup folder, the cloud
/// monitor on moto (the AWS emulator) and an endpoint (its own dashboard).
fn full_stack(host: &str, push_to: Option<&str>, moto: &str, port: u16) -> Stack {
    let push = push_to.map_or(String::new(), |url| {
        format!("[remote_write]\ninterval = 1\nhost = \"{host}\"\n[[remote_write.receivers]]\nurl = \"{url}\"\n")
    });
    let monitors: String =
        ["system_health", "performance", "security", "backup", "cloud_resources", "api_endpoints", "notification"]
            .iter()
            .map(|id| format!("[monitoring_components.{id}]\ninterval = 2\n"))
            .collect();
    let mut s = Stack::new(&format!("[dashboard]\nport = {port}\n[report]\ninterval = 1\n{push}{monitors}"));
    let d = s.dir.path().to_path_buf();
    s.write("watched/file.conf", "x = 1\n");
    s.write("backups/db-1.tar.gz", "not really an archive, but a fresh file\n");
    s.write(
        "config/security.toml",
        &format!("data_dir = \"data\"\n[[integrity.paths]]\npath = \"{}\"\n", d.join("watched").display()),
    );
    s.write(
        "config/backup.toml",
        &format!(
            "data_dir = \"data\"\nverify_interval = \"1h\"\n[[targets]]\nname = \"db\"\npath = \"{}\"\npattern = \"db-*.tar.gz\"\nmax_age = \"1h\"\n",
            d.join("backups").display()
        ),
    );
    s.write(
        "config/cloud_resources.toml",
        &format!(
            "data_dir = \"data\"\n[[providers]]\nname = \"aws\"\ntype = \"aws\"\nregions = [\"us-east-1\"]\nendpoint_url = \"{moto}\"\nmonthly_budget = 100.0\n"
        ),
    );
    s.write(
        "config/api_endpoints.toml",
        &format!("probe_interval = \"1s\"\n[[endpoints]]\nname = \"dashboard\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/healthz\"\n"),
    );
    let home = d.join("home");
    for (k, v) in [
        ("HOME", home.display().to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_CONFIG_FILE", home.join("aws-config").display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials").display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ] {
        s.env.push((k.to_string(), v));
    }
    s.start();
    s
}

#[test]
fn every_grafana_panel_returns_data_from_a_prometheus_fed_by_real_stacks() {
    if !installed("prometheus", "prometheus") {
        return;
    }
    let Some(py) = qmoi_testkit::python_with(&["moto.server"]) else { return };
    let moto_port = free_port();
    let _moto = Kill(
        Command::new(py)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(60), "moto", || std::net::TcpStream::connect(("127.0.0.1", moto_port)).ok());
    let moto = format!("http://127.0.0.1:{moto_port}");
    let tmp = tempfile::tempdir().unwrap();
    // Both stacks are scraped (as the fleet test does); one pushes as well.
    let (scraped_port, pushing_port) = (free_port(), free_port());
    std::fs::write(
        tmp.path().join("targets.yml"),
        format!(
            "- targets: [\"127.0.0.1:{scraped_port}\"]\n  labels: {{host: scraped-1}}\n\
             - targets: [\"127.0.0.1:{pushing_port}\"]\n  labels: {{host: pushed-1}}\n"
        ),
    )
    .unwrap();
    let prom = Prometheus::start(
        tmp.path(),
        "127.0.0.1:0",
        &format!(
            "global:\n  scrape_interval: 2s\nscrape_configs:\n  - job_name: qmoi\n    file_sd_configs:\n      - files: ['{}']\n",
            tmp.path().join("targets.yml").display()
        ),
        &[],
    );
    let _scraped = full_stack("scraped-1", None, &moto, scraped_port);
    let _pushing = full_stack("pushed-1", Some(&prom.write_url()), &moto, pushing_port);

    // The host variable's query (label_values) finds both.
    wait_for(Duration::from_secs(60), "both hosts in label_values(qmoi_verdict, host)", || {
        let r = http(
            "GET",
            &prom.listen,
            &format!("/api/v1/label/host/values?match[]={}", urlencode("qmoi_verdict")),
            &[],
            None,
        );
        (r.body.contains("scraped-1") && r.body.contains("pushed-1")).then_some(())
    });
    // Every query of every panel has data, for each host (the fleet's with every host too).
    let mut pending: Vec<(String, String, String)> = Vec::new();
    for (dash, title, expr) in queries() {
        for host in ["scraped-1", "pushed-1", ".*"] {
            // The host dashboard shows one host; a host that does not push has no
            // remote-write backlog to show.
            if (dash == "qmoi-host.json" && host == ".*") || (title == "Remote-write backlog" && host == "scraped-1") {
                continue;
            }
            pending.push((format!("{dash} / {title} / host {host}"), substitute(&expr, host), expr.clone()));
        }
    }
    let total = pending.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        pending.retain(|(_, q, _)| prom.query(q).is_empty());
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let missing: Vec<String> = pending.iter().map(|(what, q, _)| format!("{what}: {q}")).collect();
    assert!(missing.is_empty(), "{} of {total} panel queries return nothing:\n{}", missing.len(), missing.join("\n"));
    eprintln!("{total} panel queries (both dashboards, each host) return data");
}
