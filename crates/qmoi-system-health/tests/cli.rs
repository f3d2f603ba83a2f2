//! The real `qmoi-system-health` binary: --check, --once, --validate, config errors,
//! required processes (a real process and pidfile), TCP connectivity to a real listener,
//! and SIGTERM.

use nix::sys::signal::Signal;
use qmoi_testkit::{read_json, signal, wait_for};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn sh(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qmoi-system-health"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run qmoi-system-health: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

/// A config with only the mount `/` and no default DNS check, plus `extra`.
fn cfg(extra: &str) -> String {
    format!("connectivity = []\n[disk]\nmounts = [\"/\"]\n{extra}")
}

#[test]
fn check_prints_a_table_and_exits_with_the_nagios_code() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "ok.toml", &cfg(""));
    let out = sh(dir.path(), &["--check", "--config", "ok.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STATUS") && text.contains("cpu_usage") && text.contains("disk_usage:/"), "{text}");
    let code = out.status.code().unwrap_or(-1);
    let first = text.lines().next().unwrap_or_default();
    let expected = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::try_from(code).unwrap_or(3).min(3)];
    assert!(first.contains(&format!(": {expected} — ")), "exit {code} but: {first}");
    // Any disk usage above 0.001% is over these thresholds: a warning, then critical.
    // (Other checks may be worse on a busy machine, e.g. load: the exit code is the worst.)
    write(dir.path(), "warn.toml", &cfg("warning = 0.001\ncritical = 100\n"));
    let out = sh(dir.path(), &["--check", "--config", "warn.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table_status(&text, "disk_usage:/"), Some("warning".into()), "{text}");
    assert_eq!(out.status.code(), Some(worst_code(&text)), "{text}");
    write(dir.path(), "crit.toml", &cfg("warning = 0.001\ncritical = 0.002\n"));
    let out = sh(dir.path(), &["--check", "--config", "crit.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(critical ≥ 0%)"));
    assert!(!dir.path().join("logs/system_health_latest.json").exists(), "--check writes no report");
    Ok(())
}

/// The status column of one check in the `--check` table.
fn table_status(text: &str, check: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let st = f.next()?;
        (f.next()? == check).then(|| st.to_string())
    })
}

/// The Nagios code of the worst status in the `--check` table.
fn worst_code(text: &str) -> i32 {
    let rank = |s: &str| match s {
        "critical" => 3,
        "warning" => 2,
        "unknown" => 1,
        _ => 0,
    };
    let worst = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| ["ok", "warning", "critical", "unknown"].contains(s))
        .max_by_key(|s| rank(s))
        .unwrap_or("ok");
    match worst {
        "critical" => 2,
        "warning" => 1,
        "unknown" => 3,
        _ => 0,
    }
}

#[test]
fn once_writes_a_report_in_the_documented_shape() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "c.toml", &cfg("warning = 0.001\ncritical = 100\n"));
    let out = sh(dir.path(), &["--once", "--config", "c.toml", "--report-dir", "out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&dir.path().join("out/system_health_latest.json")).unwrap_or_default();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["component"], "system_health");
    // The report's status is the worst of its checks (load may be high on a busy machine).
    let rank = |s: &str| ["ok", "unknown", "warning", "critical"].iter().position(|x| *x == s).unwrap_or(0);
    let worst = r["checks"]
        .as_array()
        .map(|c| c.iter().map(|c| rank(c["status"].as_str().unwrap_or(""))).max().unwrap_or(0))
        .unwrap_or(0);
    assert_eq!(rank(r["status"].as_str().unwrap_or("")), worst, "{r}");
    assert!(r["generated_at"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{}", r["generated_at"]);
    let disk = r["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "disk_usage:/").cloned())
        .unwrap_or_default();
    assert_eq!(disk["status"], "warning");
    assert_eq!(disk["unit"], "percent");
    assert_eq!(disk["warning"], 0.001);
    let alert = r["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["fingerprint"] == "system_health/disk_usage:/").cloned())
        .unwrap_or_default();
    assert_eq!(alert["level"], "warning");
    assert!(r["metrics"]["qmoi_disk_used_ratio{mount=\"/\"}"].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)));
    assert!(r["metrics"]["qmoi_memory_used_ratio"].is_number());
    // Each concern says how long it took.
    for concern in ["cpu", "load", "memory", "disk", "network", "connectivity", "processes", "fds", "uptime"] {
        let key = format!("qmoi_check_duration_seconds{{concern=\"{concern}\"}}");
        assert!(r["metrics"][&key].as_f64().is_some_and(|v| v >= 0.0), "{key} in {}", r["metrics"]);
    }
    assert!(r["details"]["disks"][0]["mount"] == "/");
    // A history copy is written beside it.
    let hist = std::fs::read_dir(dir.path().join("out"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("system_health_report_"))
        .count();
    assert_eq!(hist, 1);
    // The log file is there too.
    assert!(dir.path().join("logs/system_health_monitor.log").exists());
    Ok(())
}

#[test]
fn required_processes_and_tcp_connectivity_against_real_things() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut sleeper = Command::new("sleep").arg("30").spawn()?;
    write(dir.path(), "sleep.pid", &format!("{}\n", sleeper.id()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let open = listener.local_addr()?;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let extra = format!(
        r#"
[[connectivity]]
name = "open"
kind = "tcp"
target = "{open}"
[[connectivity]]
name = "closed"
kind = "tcp"
target = "{closed}"
level = "critical"
[[processes]]
name = "sleep"
[[processes]]
name = "by-pidfile"
pidfile = "sleep.pid"
[[processes]]
name = "qmoi-no-such-process"
level = "warning"
"#
    );
    let text = format!("[disk]\nmounts = [\"/\"]\n{extra}");
    write(dir.path(), "c.toml", &text);
    let out = sh(dir.path(), &["--once", "--config", "c.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&dir.path().join("logs/system_health_latest.json")).unwrap_or_default();
    let check = |name: &str| {
        r["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name).cloned()).unwrap_or_default()
    };
    assert_eq!(check("connectivity:open")["status"], "ok");
    assert_eq!(check("connectivity:closed")["status"], "critical");
    assert!(check("connectivity:closed")["message"].as_str().is_some_and(|m| m.contains("cannot connect")));
    assert_eq!(check("process:sleep")["status"], "ok");
    assert_eq!(check("process:by-pidfile")["status"], "ok");
    assert_eq!(check("process:qmoi-no-such-process")["status"], "warning");
    assert_eq!(r["status"], "critical");
    sleeper.kill()?;
    sleeper.wait()?;
    let out = sh(dir.path(), &["--once", "--config", "c.toml"]);
    assert!(out.status.success());
    let r = read_json(&dir.path().join("logs/system_health_latest.json")).unwrap_or_default();
    let pf = r["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "process:by-pidfile").cloned())
        .unwrap_or_default();
    assert_eq!(pf["status"], "critical");
    assert!(pf["message"].as_str().is_some_and(|m| m.contains("is gone")), "{pf}");
    drop(listener);
    Ok(())
}

#[test]
fn config_errors_exit_2_naming_file_line_and_key() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "typo.toml", "interval = 60\n[cpu]\nwarnign = 80\n");
    let out = sh(dir.path(), &["--validate", "--config", "typo.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("typo.toml") && err.contains("line 3, column 1") && err.contains("unknown field `warnign`"),
        "{err}"
    );
    write(dir.path(), "bad.toml", "interval = 0\n[memory]\nwarning = 90\ncritical = 80\n");
    let out = sh(dir.path(), &["--once", "--config", "bad.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("2 problems") && err.contains("key 'interval'") && err.contains("key 'memory'"), "{err}");
    let out = sh(dir.path(), &["--check", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    write(
        dir.path(),
        "env.toml",
        "[[connectivity]]\nname = \"x\"\nkind = \"dns\"\ntarget = \"${QMOI_TEST_UNSET_VAR}\"\n",
    );
    let out = sh(dir.path(), &["--validate", "--config", "env.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'QMOI_TEST_UNSET_VAR' is not set"));
    write(dir.path(), "good.json", "{\"interval\": 30, \"disk\": {\"warning\": 80, \"critical\": 90}}");
    assert_eq!(sh(dir.path(), &["--validate", "--config", "good.json"]).status.code(), Some(0));
    Ok(())
}

#[test]
fn runs_every_interval_and_stops_cleanly_on_sigterm() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "c.toml", &cfg(""));
    let mut child = Command::new(env!("CARGO_BIN_EXE_qmoi-system-health"))
        .current_dir(dir.path())
        .args(["--config", "c.toml", "--interval", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let latest = dir.path().join("logs/system_health_latest.json");
    let first = wait_for(Duration::from_secs(5), "first report", || {
        read_json(&latest).and_then(|r| r["generated_at"].as_str().map(String::from))
    });
    wait_for(Duration::from_secs(5), "a second report", || {
        read_json(&latest).and_then(|r| r["generated_at"].as_str().map(String::from)).filter(|t| *t != first)
    });
    // A second daemon for the same report folder is refused while the first runs (it
    // would overwrite its reports); --once and --check are not daemons and still work.
    let second = sh(dir.path(), &["--config", "c.toml", "--interval", "1"]);
    assert_eq!(second.status.code(), Some(3), "{}", String::from_utf8_lossy(&second.stderr));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("another system_health monitor (pid {})", child.id())), "{err}");
    assert!(sh(dir.path(), &["--config", "c.toml", "--check"]).status.code().is_some_and(|c| c < 3));
    signal(child.id(), Signal::SIGTERM);
    let status = wait_for(Duration::from_secs(5), "exit", || child.try_wait().ok().flatten());
    assert_eq!(status.code(), Some(0));
    assert!(read_json(&latest).is_some());
    Ok(())
}

/// `--debug` and `--verbose` change what goes to stderr: debug lines (each report
/// written) only with `--debug`, the informational start and stop lines with `--verbose`
/// too, and neither without them (a path that had no test).
#[test]
fn debug_and_verbose_change_what_stderr_shows() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "ok.toml", &format!("interval = 1\n{}", cfg("")));
    let run = |flag: Option<&str>| -> std::io::Result<String> {
        let mut args = vec!["--config", "ok.toml", "--report-dir", "logs", "--log-dir", "logs"];
        args.extend(flag);
        let err_path = dir.path().join("stderr.txt");
        let report = dir.path().join("logs/system_health_latest.json");
        let _ = std::fs::remove_file(&report);
        let child = Command::new(env!("CARGO_BIN_EXE_qmoi-system-health"))
            .current_dir(dir.path())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()?;
        wait_for(Duration::from_secs(15), "a report", || read_json(&report));
        signal(child.id(), Signal::SIGTERM);
        let _ = child.wait_with_output();
        std::fs::read_to_string(&err_path)
    };
    let quiet = run(None)?;
    let verbose = run(Some("--verbose"))?;
    let debug = run(Some("--debug"))?;
    assert!(!quiet.contains("INFO") && !quiet.contains("DEBUG"), "{quiet}");
    assert!(
        verbose.contains("INFO") && verbose.contains("Monitor started.") && !verbose.contains("DEBUG"),
        "{verbose}"
    );
    assert!(debug.contains("DEBUG") && debug.contains("Report written."), "{debug}");
    Ok(())
}

/// Zombies are counted (a path that had no test): three children of this test that exit
/// unreaped are in `qmoi_zombie_processes` and reach a warning threshold of 3.
#[test]
fn zombie_processes_are_counted() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("logs/system_health_latest.json");
    let once = |extra: &str| -> std::io::Result<serde_json::Value> {
        write(dir.path(), "z.toml", &cfg(extra));
        let out = sh(dir.path(), &["--once", "--config", "z.toml", "--report-dir", "logs", "--log-dir", "logs"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        read_json(&report).ok_or_else(|| std::io::Error::other("no report"))
    };
    // Children that exit and are not waited for stay zombies until reaped below.
    let mut kids: Vec<std::process::Child> = (0..3).map(|_| Command::new("true").spawn()).collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let r = once("[zombies]\nwarning = 3\ncritical = 1000000\n")?;
    let n = r["metrics"]["qmoi_zombie_processes"].as_f64().unwrap_or(0.0);
    assert!(n >= 3.0, "{n} zombies with three unreaped children");
    let c = r["checks"].as_array().and_then(|a| a.iter().find(|c| c["name"] == "zombies").cloned()).unwrap_or_default();
    assert_eq!(c["status"], "warning", "{c}");
    for k in &mut kids {
        let _ = k.wait();
    }
    Ok(())
}

/// Packet errors on an interface. No interface here makes errors on demand, so the test
/// gives one the counters of a failing card: a veth interface in a private network and
/// mount namespace, whose sysfs statistics files are bind-mounted from files the test
/// writes. The binary, its sysfs reading and the rate it computes are real; only the
/// numbers are the test's. Needs root (CI runs as root).
#[test]
fn interface_errors_are_a_check_with_their_rate() {
    if !nix::unistd::geteuid().is_root() {
        assert!(!qmoi_testkit::require_external(), "the interface-errors test needs root (CI runs as root)");
        eprintln!("skipped: not root");
        return;
    }
    if !qmoi_testkit::require_tool(&["unshare", "ip", "mount"], "apt-get install util-linux iproute2 mount") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats");
    std::fs::create_dir(&stats).unwrap();
    let counters = |rx_packets: u64, rx_errors: u64| {
        for (f, v) in [
            ("rx_packets", rx_packets),
            ("tx_packets", 500),
            ("rx_errors", rx_errors),
            ("tx_errors", 0),
            ("rx_bytes", rx_packets * 100),
            ("tx_bytes", 50_000),
        ] {
            std::fs::write(stats.join(f), format!("{v}\n")).unwrap();
        }
    };
    counters(1000, 0);
    write(dir.path(), "c.toml", &cfg(""));
    let binds: String = ["rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_bytes", "tx_bytes"]
        .iter()
        .map(|f| format!(" && mount --bind {0}/{f} /sys/class/net/qe0/statistics/{f}", stats.display()))
        .collect();
    let script = format!(
        "ip link add qe0 type veth peer name qe1 && ip link set qe0 up && ip link set qe1 up && mount -t sysfs sysfs /sys{binds} && \
         exec {} --config c.toml --interval 1s --report-dir logs --log-dir logs",
        env!("CARGO_BIN_EXE_qmoi-system-health")
    );
    // unshare execs sh, which execs the monitor: the child's pid is the monitor's.
    let mut child = Command::new("unshare")
        .args(["--net", "--mount", "sh", "-c", &script])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let latest = dir.path().join("logs/system_health_latest.json");
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            signal(self.0.id(), Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
    let stop = Stop(&mut child);
    let first = wait_for(Duration::from_secs(20), "a first report seeing qe0", || {
        read_json(&latest).filter(|r| r["metrics"].get("qmoi_network_up{interface=\"qe0\"}").is_some())
    });
    assert!(
        !first["checks"].as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "interface_errors:qe0")),
        "no errors yet: {first}"
    );
    // 1000 more packets received, 100 of them errors, none sent: 10 % of the traffic since
    // the last run, above the 5 % critical.
    counters(2000, 100);
    let r = wait_for(Duration::from_secs(20), "the interface_errors check", || {
        read_json(&latest)
            .filter(|r| r["checks"].as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "interface_errors:qe0")))
    });
    let c = r["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "interface_errors:qe0")).cloned();
    let c = c.unwrap_or_default();
    assert_eq!(c["status"], "critical", "{c}");
    assert!(c["message"].as_str().is_some_and(|m| m.contains("(100 errors in 1000 packets)")), "{c}");
    assert_eq!(r["metrics"]["qmoi_network_receive_errors_total{interface=\"qe0\"}"], 100.0, "{r}");
    let alert = r["alerts"].as_array().and_then(|a| {
        a.iter().find(|a| a["level"] == "critical" && a["detail"].as_str().is_some_and(|d| d.contains("qe0")))
    });
    assert!(alert.is_some(), "a critical alert naming qe0: {r}");
    // No more errors: the check is gone at the next run.
    counters(3000, 100);
    wait_for(Duration::from_secs(20), "the check to clear", || {
        read_json(&latest).filter(|r| {
            r["checks"].as_array().is_some_and(|c| !c.iter().any(|c| c["name"] == "interface_errors:qe0"))
                && r["metrics"]["qmoi_network_receive_errors_total{interface=\"qe0\"}"] == 100.0
        })
    });
    drop(stop);
}
