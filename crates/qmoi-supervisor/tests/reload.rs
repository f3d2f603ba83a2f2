//! Live reload on the real supervisor and a real monitor process: `qmoi-supervisor
//! reload` and SIGHUP restart only the components whose entry, config file or binary
//! changed (the others keep their pid), start added ones, stop removed ones, apply the
//! dashboard's tokens without dropping a live client, and refuse an invalid configuration
//! whole (status, master report alert, `status` table) while the old one keeps running. A
//! monitor run alone reloads on SIGHUP with its pid, or keeps its configuration and
//! raises an alert when the new one is invalid.

use nix::sys::signal::Signal;
use qmoi_testkit::{Kill, Stack, bin, fake_component, http, read_json, signal, wait_for};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

const OLD_TOKEN: &str = "reload-old-admin-token-0001";
const NEW_TOKEN: &str = "reload-new-admin-token-0002";

fn master(token: &str, port_line: &str, monitors: &str) -> String {
    format!(
        "[dashboard]\n{port_line}\n[[dashboard.auth.tokens]]\nname = \"admin\"\ntoken = \"{token}\"\nrole = \"admin\"\n\
         [report]\ninterval = 1\n{monitors}"
    )
}

fn pid_of(stack: &Stack, id: &str) -> Option<u64> {
    stack.component(id)["pid"].as_u64()
}

/// The message of the fake monitor's one check in its latest report.
fn fake_message(stack: &Stack, id: &str) -> String {
    read_json(&stack.path(&format!("logs/{id}_latest.json")))
        .and_then(|r| r["checks"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn reload(stack: &Stack) -> (Option<i32>, String) {
    let out = stack.run(&["reload"]);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_reload_restarts_only_what_changed_and_refuses_an_invalid_config() {
    let before = fake_component("system_health", &[], "")
        + &fake_component("security", &[], "")
        + &fake_component("performance", &[], "")
        + &fake_component("cloud_resources", &[], "");
    let mut stack = Stack::new(&master(OLD_TOKEN, "port = 0", &before));
    stack.write("config/security.toml", "label = \"v1\"\n");
    let sup = stack.start();
    let addr = stack.dashboard_addr();
    let pids = wait_for(Duration::from_secs(30), "every monitor running", || {
        let p: Vec<u64> = ["system_health", "security", "performance", "cloud_resources"]
            .iter()
            .map(|id| pid_of(&stack, id))
            .collect::<Option<Vec<_>>>()?;
        (fake_message(&stack, "security").contains("(v1)")).then_some(p)
    });
    let auth = |t: &str| format!("Bearer {t}");
    assert_eq!(http("GET", &addr, "/api/config", &[("Authorization", &auth(OLD_TOKEN))], None).status, 200);
    // A live client of the dashboard, to see that the reload does not drop it.
    let mut sse = TcpStream::connect(&addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    sse.write_all(
        format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nAccept: text/event-stream\r\n\r\n",
            auth(OLD_TOKEN)
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = sse.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // security's own file changes, performance's entry changes, backup is added, cloud
    // removed, system_health untouched; the dashboard gets a new token.
    let after = fake_component("system_health", &[], "")
        + &fake_component("security", &[], "")
        + &fake_component("performance", &["--metric", "reloaded=1"], "")
        + &fake_component("backup", &[], "");
    stack.write("config/master_monitor.toml", &master(NEW_TOKEN, "port = 0", &after));
    stack.write("config/security.toml", "label = \"v2\"\n");
    let (code, text) = reload(&stack);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("security: restarted (") && text.contains("security.toml changed"), "{text}");
    assert!(text.contains("performance: restarted (its [monitoring_components.performance] entry changed)"), "{text}");
    assert!(text.contains("backup: started (added)"), "{text}");
    assert!(text.contains("cloud_resources: stopped (removed from the configuration)"), "{text}");
    assert!(text.contains("dashboard.auth applied"), "{text}");
    assert!(!text.contains("system_health"), "an unchanged component is not touched: {text}");

    let s = wait_for(Duration::from_secs(30), "the new configuration running", || {
        let s = stack.status();
        let ids: Vec<&str> = s["components"].as_array()?.iter().filter_map(|c| c["id"].as_str()).collect();
        let backup_up = s["components"].as_array()?.iter().any(|c| c["id"] == "backup" && c["state"] == "running");
        let sec_new = fake_message(&stack, "security").contains("(v2)");
        let perf_up = pid_of(&stack, "performance").is_some_and(|p| p != pids[2]);
        (!ids.contains(&"cloud_resources") && backup_up && sec_new && perf_up).then_some(s)
    });
    assert_eq!(pid_of(&stack, "system_health"), Some(pids[0]), "unchanged keeps its pid: {s}");
    assert_ne!(pid_of(&stack, "security"), Some(pids[1]));
    assert!(!qmoi_testkit::alive(u32::try_from(pids[3]).unwrap()), "the removed monitor is stopped");
    assert_eq!(s["supervisor"]["reload"]["ok"], true, "{s}");
    // The token is the new one; the live client stayed connected.
    assert_eq!(http("GET", &addr, "/api/config", &[("Authorization", &auth(OLD_TOKEN))], None).status, 401);
    assert_eq!(http("GET", &addr, "/api/config", &[("Authorization", &auth(NEW_TOKEN))], None).status, 200);
    let n = sse.read(&mut buf).unwrap_or(0);
    assert!(n > 0, "the SSE client still receives events after the reload");

    // Invalid: a wrong type in security's file, and performance's entry changed too.
    // Nothing at all changes, and it is said where and why.
    let perf_pid = pid_of(&stack, "performance");
    let sec_pid = pid_of(&stack, "security");
    stack.write("config/security.toml", "label = 5\n");
    let invalid = after.replace("reloaded=1", "reloaded=2");
    stack.write("config/master_monitor.toml", &master(NEW_TOKEN, "port = 0", &invalid));
    let (code, text) = reload(&stack);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("nothing changed") && text.contains("security") && text.contains("label"), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pid_of(&stack, "performance"), perf_pid, "an invalid reload restarts nothing");
    assert_eq!(pid_of(&stack, "security"), sec_pid);
    assert!(fake_message(&stack, "security").contains("(v2)"));
    let s = stack.status();
    assert_eq!(s["supervisor"]["reload"]["ok"], false, "{s}");
    assert!(s["supervisor"]["reload"]["errors"][0].as_str().is_some_and(|e| e.contains("label")), "{s}");
    let table = String::from_utf8_lossy(&stack.run(&["status"]).stdout).into_owned();
    assert!(table.contains("config reload FAILED"), "{table}");
    wait_for(Duration::from_secs(10), "the reload alert in the master report", || {
        let r = read_json(&stack.path("logs/master_monitor_latest.json"))?;
        r["alerts"].as_array()?.iter().any(|a| a["fingerprint"] == "master_monitor/config_reload").then_some(())
    });

    // A master config that does not parse: refused with its file and line.
    stack.write("config/master_monitor.toml", "[dashboard\nport = 0\n");
    let (code, text) = reload(&stack);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("master_monitor.toml") && text.contains("line 1"), "{text}");

    // Fixed, by SIGHUP this time; a changed dashboard port waits for a restart.
    stack.write("config/security.toml", "label = \"v3\"\n");
    stack.write("config/master_monitor.toml", &master(NEW_TOKEN, "port = 1", &after));
    signal(sup, Signal::SIGHUP);
    let s = wait_for(Duration::from_secs(30), "a successful reload by SIGHUP", || {
        let s = stack.status();
        (s["supervisor"]["reload"]["ok"] == true && fake_message(&stack, "security").contains("(v3)")).then_some(s)
    });
    let pending = s["supervisor"]["reload"]["pending_restart"].to_string();
    assert!(pending.contains("dashboard.port"), "{s}");
    assert_eq!(pid_of(&stack, "performance"), perf_pid, "performance's entry is as it was: {s}");
    assert_eq!(pid_of(&stack, "system_health"), Some(pids[0]));
    wait_for(Duration::from_secs(10), "the reload alert resolved", || {
        let r = read_json(&stack.path("logs/master_monitor_latest.json"))?;
        (!r["alerts"].as_array()?.iter().any(|a| a["fingerprint"] == "master_monitor/config_reload")).then_some(())
    });
    // Still the same supervisor, still on the same address.
    assert_eq!(s["supervisor"]["pid"].as_u64(), Some(u64::from(sup)));
    assert_eq!(http("GET", &addr, "/healthz", &[], None).status, 200);
}

/// A monitor under its own systemd unit (`ExecReload=kill -HUP`): the new configuration
/// is checked by the binary itself, then the process starts again with it under the same
/// pid; an invalid one changes nothing and its reports carry an alert until fixed.
#[test]
fn a_monitor_alone_reloads_on_sighup_with_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fake.toml");
    let logs = dir.path().join("logs");
    std::fs::write(&cfg, "label = \"one\"\n").unwrap();
    let child = Command::new(bin("qmoi-fake-monitor"))
        .arg("--config")
        .arg(&cfg)
        .arg("--report-dir")
        .arg(&logs)
        .arg("--log-dir")
        .arg(&logs)
        .args(["--component", "system_health"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let pid = child.0.id();
    let report = logs.join("system_health_latest.json");
    let message =
        || read_json(&report).and_then(|r| r["checks"][0]["message"].as_str().map(str::to_string)).unwrap_or_default();
    let alert = || {
        read_json(&report).and_then(|r| {
            r["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["fingerprint"] == "system_health/config_reload")
                .map(|a| a["detail"].as_str().unwrap_or_default().to_string())
        })
    };
    wait_for(Duration::from_secs(10), "the first configuration", || message().contains("(one)").then_some(()));

    std::fs::write(&cfg, "label = \"two\"\n").unwrap();
    signal(pid, Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the new configuration", || message().contains("(two)").then_some(()));
    assert!(child.0.try_wait().unwrap().is_none(), "the same process (pid {pid}) runs on");

    std::fs::write(&cfg, "label = \"three\"\nfrobnicate = true\n").unwrap();
    signal(pid, Signal::SIGHUP);
    let detail = wait_for(Duration::from_secs(10), "the reload alert", alert);
    assert!(detail.contains("frobnicate"), "{detail}");
    assert!(message().contains("(two)"), "the previous configuration keeps running: {}", message());
    assert!(child.0.try_wait().unwrap().is_none());

    std::fs::write(&cfg, "label = \"four\"\n").unwrap();
    signal(pid, Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the fixed configuration", || {
        (message().contains("(four)") && alert().is_none()).then_some(())
    });
    assert!(child.0.try_wait().unwrap().is_none());
    signal(pid, Signal::SIGTERM);
    let status = wait_for(Duration::from_secs(10), "the monitor to stop", || child.0.try_wait().unwrap());
    assert!(status.success(), "{status}");
}
