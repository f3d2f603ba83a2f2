//! The real supervisor binary, in a temp folder, supervising real monitor processes:
//! `qmoi-system-health` and `qmoi-fake-monitor` (which crashes, hangs or leaks on demand).

use nix::sys::signal::Signal;
use qmoi_testkit::{Stack, alive, bin, read_json, signal, wait_for};
use std::time::{Duration, Instant};

/// Fast restart policy, and the dashboard on a port the system picks (tests run in parallel).
const FAST_RESTART: &str = r#"
[dashboard]
port = 0

[restart]
backoff_initial = "200ms"
backoff_max = "2s"
max_restarts = 3
window = "1m"
cooldown = "1h"
healthy_after = "1h"
stop_timeout = "1s"

[report]
interval = 1
"#;

/// A component entry that runs the fake monitor as `id`.
fn fake(id: &str, mode: &str, extra: &str) -> String {
    fake_with_args(id, &["--mode", mode], extra)
}

fn fake_with_args(id: &str, args: &[&str], extra: &str) -> String {
    qmoi_testkit::fake_component(id, args, extra)
}

fn real_system_health() -> String {
    "[monitoring_components.system_health]\ninterval = 1\n".to_string()
}

/// Wait until the master report lists an alert with this fingerprint; returns the report.
fn wait_master_alert(stack: &Stack, fingerprint: &str) -> serde_json::Value {
    wait_for(Duration::from_secs(5), &format!("alert {fingerprint} in the master report"), || {
        read_json(&stack.path("logs/master_monitor_latest.json"))
            .filter(|m| m["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["fingerprint"] == fingerprint)))
    })
}

#[test]
fn first_reports_startup_report_and_status_table() {
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", real_system_health()));
    stack.start();
    let report = wait_for(Duration::from_secs(10), "system_health_latest.json", || {
        read_json(&stack.path("logs/system_health_latest.json"))
    });
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["component"], "system_health");
    assert!(report["checks"].as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "disk_usage:/")), "{report}");
    let master = wait_for(Duration::from_secs(10), "master report listing system_health running", || {
        read_json(&stack.path("logs/master_monitor_latest.json"))
            .filter(|m| m["details"]["components"][0]["state"] == "running")
    });
    assert_eq!(master["component"], "master_monitor");
    let verdict = master["details"]["verdict"]["overall"].as_str().unwrap_or_default().to_string();
    assert!(["healthy", "degraded", "critical"].contains(&verdict.as_str()), "{master}");
    let startup: Vec<_> = std::fs::read_dir(stack.path("logs"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let startup: Vec<&String> =
        startup.iter().filter(|n| n.starts_with("monitoring_startup_") && n.ends_with(".json")).collect();
    assert_eq!(startup.len(), 1, "{startup:?}");
    let doc = read_json(&stack.path(&format!("logs/{}", startup[0]))).unwrap_or_default();
    assert_eq!(doc["start_order"], serde_json::json!(["system_health"]));

    let out = stack.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("COMPONENT") && text.contains("REPORT AGE") && text.contains("system_health"), "{text}");
    // The exit code is the verdict this same output states (it can change from moment to
    // moment on a busy machine: load is one of the checks).
    let stated =
        text.lines().next().and_then(|l| l.rsplit("verdict: ").next()).unwrap_or_default().trim().to_lowercase();
    let expected = match stated.as_str() {
        "healthy" => 0,
        "degraded" => 1,
        "critical" => 2,
        other => panic!("no verdict in the first line: '{other}' in {text}"),
    };
    assert_eq!(out.status.code(), Some(expected), "{text}");
    // --config is accepted after the verb too.
    let out = stack.run(&["status", "--config", "config/master_monitor.toml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("system_health"));
}

#[test]
fn killed_monitor_is_restarted_with_a_new_pid() {
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", real_system_health()));
    stack.start();
    let first = stack.running_pid("system_health");
    signal(first, Signal::SIGKILL);
    let second = wait_for(Duration::from_secs(5), "a new system_health pid", || {
        stack.pid_of("system_health").filter(|p| *p != first)
    });
    assert!(alive(second));
    let c = stack.component("system_health");
    assert_eq!(c["restarts"], 1);
    assert_eq!(c["recent_restarts"][0]["reason"], "exited: killed by SIGKILL");
    assert_eq!(c["recent_restarts"][0]["delay_ms"], 0, "the first restart is immediate");
}

#[test]
fn crash_loop_backs_off_then_fails_with_a_critical_alert() {
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", fake("system_health", "crash", "")));
    stack.start();
    let c = wait_for(Duration::from_secs(15), "system_health to fail", || {
        let c = stack.component("system_health");
        (c["state"] == "failed").then_some(c)
    });
    let note = c["note"].as_str().unwrap_or_default();
    assert!(note.contains("gave up after 3 restarts within 1m"), "{note}");
    let delays: Vec<u64> = c["recent_restarts"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["delay_ms"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(delays, vec![0, 200, 400, 0], "backoff doubles; the 4th exit gives up");
    assert!(c["stderr_tail"].as_array().is_some_and(|t| t.iter().any(|l| l == "fake monitor: simulated crash")), "{c}");
    let master = wait_for(Duration::from_secs(5), "failed alert in master report", || {
        read_json(&stack.path("logs/master_monitor_latest.json")).filter(|m| {
            m["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["fingerprint"] == "master_monitor/component_failed:system_health"))
        })
    });
    let alert = master["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["level"] == "critical").cloned())
        .unwrap_or_default();
    assert_eq!(alert["title"], "Monitor system_health failed");
    assert_eq!(master["details"]["verdict"]["overall"], "critical");
    // `status` says so, with exit status 2.
    let out = stack.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("system_health failed"));

    // reset clears the failure and starts it again (it crashes again: restarts grow).
    let before = c["restarts"].as_u64().unwrap_or(0);
    let out = stack.run(&["reset"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(5), "restarts after reset", || {
        (stack.component("system_health")["restarts"].as_u64().unwrap_or(0) > before).then_some(())
    });
}

#[test]
fn hung_monitor_is_restarted_as_stale_and_killed_if_it_ignores_sigterm() {
    let extra = "stale_after = \"2s\"";
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", fake("system_health", "hang-hard", extra)));
    stack.start();
    let first = stack.running_pid("system_health");
    let c = wait_for(Duration::from_secs(15), "a stale restart", || {
        let c = stack.component("system_health");
        (c["restarts"].as_u64().unwrap_or(0) >= 1).then_some(c)
    });
    let reason = c["recent_restarts"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("report not updated for") && reason.contains("stale_after 2s"), "{reason}");
    let last_exit = c["last_exit"].as_str().unwrap_or_default();
    assert!(last_exit.starts_with("killed after 1s"), "SIGTERM ignored, so SIGKILL: {last_exit}");
    assert!(!alive(first));
}

#[test]
fn config_error_exit_is_a_permanent_failure_with_the_monitors_message() {
    // Validation passes (the fake only fails when actually run), so start gets that far.
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", fake("system_health", "config-error", "")));
    stack.start();
    let c = wait_for(Duration::from_secs(10), "system_health failed", || {
        let c = stack.component("system_health");
        (c["state"] == "failed").then_some(c)
    });
    let note = c["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("configuration error (exit status 2)") && note.contains("key 'frobnicate'"), "{note}");
    std::thread::sleep(Duration::from_millis(800));
    let c = stack.component("system_health");
    assert_eq!(c["restarts"], 0, "never a restart loop: {c}");
    assert_eq!(c["state"], "failed");
}

#[test]
fn dependent_starts_only_after_its_dependency_is_ready() {
    let cfg = format!(
        "{}{}{FAST_RESTART}",
        fake_with_args("system_health", &["--start-delay", "1500ms"], ""),
        fake("security", "write", "depends_on = [\"system_health\"]")
    );
    let mut stack = Stack::new(&cfg);
    let t0 = Instant::now();
    stack.start();
    let early = wait_for(Duration::from_secs(5), "security waiting", || {
        let c = stack.component("security");
        c["note"].as_str().is_some_and(|n| n.contains("waiting for system_health")).then_some(c)
    });
    assert!(early["pid"].is_null(), "not spawned before its dependency is ready: {early}");
    stack.running_pid("security");
    assert!(t0.elapsed() >= Duration::from_millis(1500), "started before system_health's first report");
}

#[test]
fn watchdog_restarts_a_leaking_monitor_and_alerts() {
    let extra = "[monitoring_components.system_health.watchdog]\nmax_rss_mb = 40\nfor = \"1s\"\n";
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", fake("system_health", "leak", extra)));
    stack.start();
    let c = wait_for(Duration::from_secs(20), "a watchdog restart", || {
        let c = stack.component("system_health");
        (c["restarts"].as_u64().unwrap_or(0) >= 1).then_some(c)
    });
    let reason = c["recent_restarts"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("watchdog: RSS") && reason.contains("over the limit of 40 MiB for 1s"), "{reason}");
    wait_master_alert(&stack, "master_monitor/watchdog:system_health");
}

#[test]
fn sigkill_of_the_supervisor_leaves_no_monitor_behind() {
    let cfg = format!("{}{}{FAST_RESTART}", real_system_health(), fake("security", "write", ""));
    let mut stack = Stack::new(&cfg);
    let sup = stack.start();
    let pids = [stack.running_pid("system_health"), stack.running_pid("security")];
    signal(sup, Signal::SIGKILL);
    if let Some(c) = stack.child.as_mut() {
        let _ = c.wait();
    }
    for pid in pids {
        wait_for(Duration::from_secs(5), &format!("monitor {pid} to die with the supervisor"), || {
            (!alive(pid)).then_some(())
        });
    }
}

#[test]
fn sigterm_stops_everything_cleanly_with_no_torn_report() {
    let cfg = format!("{}{}{FAST_RESTART}", real_system_health(), fake("security", "hang", ""));
    let mut stack = Stack::new(&cfg);
    let sup = stack.start();
    let pids = [stack.running_pid("system_health"), stack.running_pid("security")];
    signal(sup, Signal::SIGTERM);
    let status = wait_for(Duration::from_secs(15), "the supervisor to exit", || {
        stack.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    assert_eq!(status.code(), Some(0), "{}", stack.supervisor_stderr());
    for pid in pids {
        assert!(!alive(pid), "monitor {pid} outlived the supervisor");
    }
    assert!(!stack.path("run/qmoi-supervisor.sock").exists(), "socket removed");
    for entry in std::fs::read_dir(stack.path("logs")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temp file left behind: {name}");
        if name.ends_with(".json") {
            assert!(read_json(&entry.path()).is_some(), "{name} is not valid JSON");
        }
    }
    // With no supervisor, status falls back to the report files.
    let out = stack.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("No supervisor is running; from the report files"), "{text}");
}

#[test]
fn restart_component_replaces_the_process_and_rejects_unknown_names() {
    let mut stack = Stack::new(&format!("{}{FAST_RESTART}", real_system_health()));
    stack.start();
    let first = stack.running_pid("system_health");
    let out = stack.run(&["restart-component", "system_health"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "restarting system_health");
    wait_for(Duration::from_secs(5), "a new pid", || stack.pid_of("system_health").filter(|p| *p != first));
    assert!(!alive(first));
    let out = stack.run(&["restart-component", "coffee"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("'coffee' is not a configured component (configured: system_health)")
    );
    let out = stack.run(&["--config", "config/master_monitor.toml", "restart-dashboard"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn restart_counter_resets_after_a_healthy_period() {
    let cfg =
        format!("{}{}", real_system_health(), FAST_RESTART.replace("healthy_after = \"1h\"", "healthy_after = \"1s\""));
    let mut stack = Stack::new(&cfg);
    stack.start();
    let first = stack.running_pid("system_health");
    signal(first, Signal::SIGKILL);
    wait_for(Duration::from_secs(5), "restart counted", || {
        (stack.component("system_health")["restarts_in_window"] == 1).then_some(())
    });
    wait_for(Duration::from_secs(8), "counter reset after healthy_after", || {
        let c = stack.component("system_health");
        (c["restarts_in_window"] == 0 && c["restarts"] == 1).then_some(())
    });
}

/// `validate` runs each monitor's own `--validate`, which builds the monitor: what only
/// building finds (a missing `hmac_key_file`) fails the pre-flight as it would fail the
/// start, and the pre-flight creates nothing.
#[test]
fn validate_finds_what_only_building_a_monitor_finds() {
    let stack = Stack::new(&format!("{}[monitoring_components.security]\ninterval = 60\n", real_system_health()));
    stack.write("config/system_health.toml", "connectivity = []\n");
    stack.write("config/security.toml", "hmac_key_file = \"secrets/none.key\"\n");
    let out = stack.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("security:") && err.contains("hmac_key_file") && err.contains("secrets/none.key"), "{err}");
    stack.write("config/security.toml", "");
    let out = stack.run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!stack.path("data/security.key").exists(), "validate created the security monitor's key");
}

#[test]
fn missing_binary_is_a_clear_failure_not_a_crash() {
    let cfg = format!(
        "{}[monitoring_components.security]\ncommand = \"/nonexistent/qmoi-security\"\n{FAST_RESTART}",
        real_system_health()
    );
    let mut stack = Stack::new(&cfg);
    let out = stack.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("security: command '/nonexistent/qmoi-security' does not exist")
    );
    stack.start();
    stack.running_pid("system_health");
    let c = wait_for(Duration::from_secs(5), "security failed", || {
        let c = stack.component("security");
        (c["state"] == "failed").then_some(c)
    });
    assert!(c["note"].as_str().is_some_and(|n| n.contains("/nonexistent/qmoi-security")), "{c}");
    assert_eq!(stack.component("system_health")["state"], "running");
}

/// Each malformed master config (25 kinds) makes `validate` and `start` exit 2 naming the
/// problem, before anything is started.
#[test]
fn malformed_configs_exit_2_with_a_message_naming_the_problem() {
    let cases: &[(&str, &[&str])] = &[
        ("syntax_error.toml", &["line 3, column 11", "enabled = = true"]),
        ("unknown_key.toml", &["line 2, column 1", "unknown field `intreval`"]),
        ("negative_interval.toml", &["line 2", "must not be negative, got '-5'"]),
        // Regression: the largest integer panicked (exit 101) computing 3 × interval.
        ("huge_interval.toml", &["line 2", "out of range (at most 100 years)"]),
        ("unknown_component.toml", &["unknown component 'coffee_machine'"]),
        ("dependency_cycle.toml", &["dependency cycle: security -> system_health -> security"]),
        ("short_token.toml", &["dashboard.auth.tokens[0].token", "at least 16 characters"]),
        ("bad_unit.toml", &["line 2, column 12", "unknown unit 'parsecs'"]),
        ("few_connections.toml", &["dashboard.max_connections", "at least 8, got '2'"]),
        ("long_header_timeout.toml", &["dashboard.header_read_timeout", "between 1s and 5m, got '1h'"]),
        ("bad_allowed_host.toml", &["dashboard.allowed_hosts[0]", "got 'http://x/y'"]),
        ("zero_restarts.toml", &["restart.max_restarts", "at least 1, got '0'"]),
        ("small_read_cap.toml", &["report.max_read_bytes", "at least 4096, got '10'"]),
        ("bad_priority.toml", &["line 2, column 12", "unknown variant `urgent`"]),
        ("duplicate_key.toml", &["line 3, column 1", "duplicate key"]),
        (
            "public_without_auth.toml",
            &["dashboard.host", "'0.0.0.0' is not a loopback address", "[[dashboard.auth.tokens]]"],
        ),
        ("port_type.toml", &["line 2, column 8", "expected u16"]),
        ("plain_password.toml", &["dashboard.auth.users[0].password_hash", "hash-password"]),
        ("bad_role.toml", &["line 4, column 8", "expected `read` or `admin`"]),
        // Regression: an empty file started nothing and reported HEALTHY with exit 0.
        ("empty.toml", &["monitoring_components", "no components configured"]),
        ("remote_write_without_dashboard.toml", &["key 'remote_write'", "enable [dashboard]"]),
        (
            "bad_remote_write.toml",
            &[
                "remote_write.receivers[0].url",
                "got 'prometheus:9090/api/v1/write'",
                "remote_write.receivers[0].bearer_token",
                "remote_write.labels.__name__",
            ],
        ),
        ("bad_fleet.toml", &["fleet.query_url", "got 'ftp://prometheus'", "fleet.lookback", "longer than stale_after"]),
        ("public_grpc.toml", &["grpc.host", "'0.0.0.0' is not a loopback address"]),
        (
            "bad_maintenance.toml",
            &[
                "maintenance[0].components",
                "'coffee' is not a monitor",
                "maintenance[0].cron",
                "maintenance[0].duration",
                "maintenance[0].reason",
            ],
        ),
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid_configs");
    for (file, expected) in cases {
        let text = std::fs::read_to_string(src.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut stack = Stack::new(&text);
        for verb in ["validate", "start"] {
            let out = stack.run(&[verb]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{file} {verb}: {err}");
            for e in *expected {
                assert!(err.contains(e), "{file} {verb}: expected '{e}' in: {err}");
            }
        }
        assert!(!stack.path("logs/system_health_latest.json").exists(), "{file}: nothing may start");
        stack.child = None;
    }
}

/// Regression: rewriting `logs/security_latest.json` with `"schema_version": 2` turned
/// CRITICAL into HEALTHY (`status` exit 0) and wrote its alerts to history as resolved.
/// Now the component is `unknown` (critical for a critical-priority one), its alerts stay
/// firing, marked stale, and `status`, the master report, the API and `/metrics` agree.
#[test]
fn an_unusable_report_never_reads_as_healthy() {
    // Security writes one critical report at once, the next only a minute later.
    let cfg = format!(
        "{FAST_RESTART}[monitoring_components.security]\ninterval = 60\npriority = \"critical\"\ncommand = \"{}\"\nargs = [\"--mode\", \"critical\", \"--component\", \"security\"]\n",
        bin("qmoi-fake-monitor").display()
    );
    let mut stack = Stack::new(&cfg);
    stack.start();
    let addr = stack.dashboard_addr();
    wait_for(Duration::from_secs(15), "a critical verdict", || {
        (stack.status()["verdict"]["overall"] == "critical").then_some(())
    });
    wait_for(Duration::from_secs(10), "the alert on the dashboard", || {
        let a = qmoi_testkit::http("GET", &addr, "/api/alerts", &[], None).json();
        (a["active"].as_array().map_or(0, Vec::len) == 1).then_some(())
    });
    let path = stack.path("logs/security_latest.json");
    let mut report = read_json(&path).unwrap_or_default();
    report["schema_version"] = 2.into();
    stack.write("logs/security_latest.json.tmp", &report.to_string());
    std::fs::rename(stack.path("logs/security_latest.json.tmp"), &path).unwrap();

    let c = wait_for(Duration::from_secs(10), "security unknown", || {
        let c = stack.component("security");
        (c["report_status"] == "unknown").then_some(c)
    });
    assert!(c["report_error"].as_str().is_some_and(|e| e.contains("schema_version")), "{c}");
    assert_eq!(c["critical_alerts"], 1, "{c}");
    let out = stack.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "status must exit critical: {}", String::from_utf8_lossy(&out.stdout));
    let api = qmoi_testkit::http("GET", &addr, "/api/monitor/status", &[], None).json();
    assert_eq!(api["verdict"]["overall"], "critical", "{api}");
    wait_for(Duration::from_secs(10), "the master report's verdict", || {
        let m = read_json(&stack.path("logs/master_monitor_latest.json"))?;
        (m["status"] == "critical").then_some(())
    });
    let alerts = wait_for(Duration::from_secs(10), "the alert marked stale, still firing", || {
        let a = qmoi_testkit::http("GET", &addr, "/api/alerts", &[], None).json();
        let active = a["active"].as_array().cloned().unwrap_or_default();
        (active.len() == 1 && active[0]["stale"] == true).then_some(a)
    });
    assert!(alerts["recent"].as_array().is_none_or(Vec::is_empty), "nothing resolved: {alerts}");
    let metrics = wait_for(Duration::from_secs(10), "/metrics to agree", || {
        let m = qmoi_testkit::http("GET", &addr, "/metrics", &[], None).body;
        (m.contains("qmoi_report_status{component=\"security\"} 3")
            && m.contains("qmoi_verdict{component=\"master_monitor\"} 2"))
        .then_some(m)
    });
    assert!(!metrics.contains("qmoi_report_status{component=\"security\"} 2"), "{metrics}");
}

/// Regression: a monitor crash-looping (a full disk) counted for nothing whenever the
/// snapshot caught it `starting` between restarts: the verdict read HEALTHY. Sampled
/// while it loops, the verdict is never healthy, and the reason names its last words.
#[test]
fn a_crash_loop_is_never_healthy() {
    let cfg = format!(
        "[dashboard]\nenabled = false\n[restart]\nbackoff_initial = \"100ms\"\nbackoff_max = \"300ms\"\nmax_restarts = 100\nwindow = \"10m\"\n[report]\ninterval = 1\n{}",
        fake("performance", "crash", "priority = \"high\"")
    );
    let mut stack = Stack::new(&cfg);
    stack.start();
    wait_for(Duration::from_secs(15), "two restarts", || {
        (stack.component("performance")["restarts_in_window"].as_u64() >= Some(2)).then_some(())
    });
    let mut states = std::collections::BTreeSet::new();
    let mut starting_reason = None;
    for _ in 0..30 {
        let s = stack.status();
        assert_ne!(s["verdict"]["overall"], "healthy", "{s}");
        let c = s["components"].as_array().and_then(|a| a.first().cloned()).unwrap_or_default();
        states.insert(c["state"].as_str().unwrap_or_default().to_string());
        if c["state"] == "starting" {
            starting_reason = s["verdict"]["reasons"][0].as_str().map(str::to_string);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(r) = starting_reason {
        assert!(r.contains("crash-looping") && r.contains("fake monitor: simulated crash"), "{r}");
    }
    eprintln!("states seen while looping: {states:?}");
}

/// Regression: `start` ran every monitor's `--print-config` first and refused to start
/// anything when one failed, so one broken monitor took the whole stack down (and one
/// that hung held every other back for 20 s). Now a monitor whose own config is invalid
/// is `failed` with its message after one start, a crashing one goes through backoff to
/// `failed`, a hanging one holds nothing back, and the others run. `validate` stays
/// strict.
#[test]
fn one_broken_monitor_never_takes_the_stack_down() {
    let cfg = format!(
        "{FAST_RESTART}{}{}[monitoring_components.backup]\ninterval = 1\ncommand = \"hang.sh\"\n{}",
        real_system_health(),
        fake("security", "crash", ""),
        fake("performance", "write", "")
    );
    let mut stack = Stack::new(&cfg);
    stack.write("config/system_health.toml", "[disk]\nwarning = 96\ncritical = 90\n");
    // Hangs for --print-config as for a run.
    stack.write("hang.sh", "#!/bin/sh\nexec sleep 60\n");
    let hang = stack.path("hang.sh");
    std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // validate first, without the hanging one (it would wait out its 20 s timeout).
    let without_backup = cfg.replace("[monitoring_components.backup]\ninterval = 1\ncommand = \"hang.sh\"\n", "");
    stack.write("config/master_monitor.toml", &without_backup);
    let out = stack.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "validate stays strict");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config/system_health.toml") && err.contains("key 'disk'"), "{err}");
    let cfg = cfg.replace("command = \"hang.sh\"", &format!("command = \"{}\"", hang.display()));
    stack.write("config/master_monitor.toml", &cfg);

    stack.start();
    // Well inside the 20 s the hanging pre-check used to hold everything back.
    wait_for(Duration::from_secs(10), "performance reporting", || {
        (stack.component("performance")["state"] == "running").then_some(())
    });
    let sh = wait_for(Duration::from_secs(10), "system_health failed", || {
        let c = stack.component("system_health");
        (c["state"] == "failed").then_some(c)
    });
    let note = sh["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("configuration error (exit status 2)") && note.contains("key 'disk'"), "{note}");
    assert_eq!(sh["restarts"], 0, "a config error is started once: {sh}");
    wait_master_alert(&stack, "master_monitor/component_failed:system_health");
    wait_for(Duration::from_secs(15), "security to give up", || {
        (stack.component("security")["state"] == "failed").then_some(())
    });
    assert_eq!(stack.component("performance")["state"], "running");
    let backup = stack.component("backup")["state"].as_str().unwrap_or_default().to_string();
    assert!(["starting", "stale", "restarting"].contains(&backup.as_str()), "the hanging one never ran: {backup}");
}

/// The original QMOI's commands and files work as written: `--status`,
/// `--restart-component NAME`, `--restart` (all), `--reset`, `--restart-dashboard`, and
/// `config/master_monitor_config.json` when there is no TOML file.
#[test]
fn seed_commands_and_config_work_as_written() {
    let fake = bin("qmoi-fake-monitor").display().to_string();
    let mut stack = Stack::new("");
    std::fs::remove_file(stack.path("config/master_monitor.toml")).unwrap();
    let comp = |id: &str| {
        format!(r#""{id}": {{"enabled": true, "interval": 1, "command": "{fake}", "args": ["--component", "{id}"]}}"#)
    };
    stack.write(
        "config/master_monitor_config.json",
        &format!(
            r#"{{"monitoring_components": {{{}, {}}}, "dashboard": {{"port": 0}}, "report": {{"interval": 1}}}}"#,
            comp("system_health"),
            comp("security")
        ),
    );
    stack.start();
    let sh = stack.running_pid("system_health");
    let sec = stack.running_pid("security");
    let run = |args: &[&str]| {
        let out = stack.run(args);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, text) = run(&["--status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("system_health") && text.contains("security"), "{text}");
    let (code, text) = run(&["--restart-component", "system_health"]);
    assert_eq!(code, Some(0), "{text}");
    let sh2 = wait_for(Duration::from_secs(10), "system_health restarted", || {
        stack.pid_of("system_health").filter(|p| *p != sh)
    });
    let (code, text) = run(&["--restart"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("restarting security, system_health"), "{text}");
    wait_for(Duration::from_secs(10), "both restarted", || {
        (stack.pid_of("system_health").is_some_and(|p| p != sh2) && stack.pid_of("security").is_some_and(|p| p != sec))
            .then_some(())
    });
    assert_eq!(run(&["--reset"]).0, Some(0));
    assert_eq!(run(&["--restart-dashboard"]).0, Some(0));
    let s = stack.status();
    assert!(s["supervisor"]["config"].as_str().is_some_and(|c| c.ends_with("master_monitor_config.json")), "{s}");
}

/// `alerts.auto_restart = false`: a monitor that exits is not restarted; it is `failed`
/// with a note that says why (a path that had no test).
#[test]
fn without_auto_restart_an_exited_monitor_stays_down() {
    let mut stack =
        Stack::new(&format!("{FAST_RESTART}[alerts]\nauto_restart = false\n{}", fake("performance", "crash", "")));
    stack.start();
    let c = wait_for(Duration::from_secs(10), "performance failed", || {
        let c = stack.component("performance");
        (c["state"] == "failed").then_some(c)
    });
    assert!(c["note"].as_str().is_some_and(|n| n.contains("not restarted (alerts.auto_restart = false)")), "{c}");
    std::thread::sleep(Duration::from_millis(1500));
    let c = stack.component("performance");
    assert_eq!((c["state"].as_str(), c["restarts"].as_u64()), (Some("failed"), Some(0)), "{c}");
}
