//! `[[plugins]]` with the real Monitoring Plugins of Debian's `monitoring-plugins-basic`
//! (`check_load`, `check_disk`, `check_procs`, `check_tcp` against a port this test
//! listens on and one nobody does) and with scripts that misbehave as plugins do: one
//! that hangs with a child of its own, one that floods its output, one that exits with a
//! code no plugin should. The real `qmoi-system-health --once` writes the report read here.

use qmoi_testkit::read_json;
use std::path::Path;
use std::process::Command;

const PLUGINS: &str = "/usr/lib/nagios/plugins";

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("write {name}: {e}"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("chmod: {e}"));
    p.display().to_string()
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    qmoi_testkit::check(report, &format!("plugin:{name}"))
}

fn metric(report: &serde_json::Value, key: &str) -> Option<f64> {
    report["metrics"][key].as_f64()
}

#[test]
fn real_plugins_and_misbehaving_ones_become_checks_and_metrics() {
    if !qmoi_testkit::require_tool(&[&format!("{PLUGINS}/check_tcp")], "apt install monitoring-plugins-basic") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port().to_string();
    let closed = qmoi_testkit::free_port().to_string();
    let pidfile = d.join("hang.pid");
    let hang = script(d, "hang.sh", &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()));
    let loud = script(d, "loud.sh", "echo 'LOUD OK | big=1'\nhead -c 1000000 /dev/zero | tr '\\0' x\nexit 0");
    let odd = script(d, "odd.sh", "echo 'ODD something'\nexit 7");
    let plugin = |name: &str, cmd: &str, args: &[&str], extra: &str| {
        let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
        format!("[[plugins]]\nname = \"{name}\"\ncommand = \"{cmd}\"\nargs = [{}]\n{extra}\n", args.join(", "))
    };
    let config = [
        "connectivity = []\n[disk]\nmounts = [\"/\"]\n".to_string(),
        plugin("load", &format!("{PLUGINS}/check_load"), &["-w", "1000,1000,1000", "-c", "2000,2000,2000"], ""),
        plugin("disk", &format!("{PLUGINS}/check_disk"), &["-w", "0%", "-c", "0%", "-p", "/"], ""),
        plugin("procs", &format!("{PLUGINS}/check_procs"), &["-w", "1:", "-c", "1:"], ""),
        plugin("tcp_open", &format!("{PLUGINS}/check_tcp"), &["-H", "127.0.0.1", "-p", &open], ""),
        plugin("tcp_closed", &format!("{PLUGINS}/check_tcp"), &["-H", "127.0.0.1", "-p", &closed], ""),
        plugin("tcp_soft", &format!("{PLUGINS}/check_tcp"), &["-H", "127.0.0.1", "-p", &closed], "critical = false"),
        plugin("hang", &hang, &[], "timeout = \"1s\""),
        plugin("loud", &loud, &[], ""),
        plugin("odd", &odd, &[], ""),
        plugin("missing", "qmoi-no-such-plugin", &[], ""),
    ]
    .concat();
    std::fs::write(d.join("sh.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qmoi-system-health"))
        .current_dir(d)
        .args(["--once", "--config", "sh.toml"])
        .output()
        .unwrap();
    let r = read_json(&d.join("logs/system_health_latest.json"))
        .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)));

    let load = check(&r, "load");
    assert_eq!(load["status"], "ok", "{load}");
    assert!(load["message"].as_str().unwrap().starts_with("load: LOAD OK"), "{load}");
    assert!(metric(&r, "qmoi_plugin_value{plugin=\"load\",label=\"load1\",unit=\"\"}").is_some(), "{}", r["metrics"]);
    assert_eq!(metric(&r, "qmoi_plugin_warning{plugin=\"load\",label=\"load1\",unit=\"\"}"), Some(1000.0));
    assert_eq!(metric(&r, "qmoi_plugin_status{plugin=\"load\"}"), Some(0.0));

    // check_disk's "/=…B;…;…;0;size": bytes, with the file system's size as max.
    let used = metric(&r, "qmoi_plugin_value{plugin=\"disk\",label=\"/\",unit=\"bytes\"}").unwrap_or(0.0);
    let size = metric(&r, "qmoi_plugin_max{plugin=\"disk\",label=\"/\",unit=\"bytes\"}").unwrap_or(0.0);
    assert!(used > 0.0 && size > used, "{}", r["metrics"]);

    assert_eq!(check(&r, "procs")["status"], "ok");
    assert!(metric(&r, "qmoi_plugin_value{plugin=\"procs\",label=\"procs\",unit=\"\"}").unwrap_or(0.0) >= 1.0);

    let tcp = check(&r, "tcp_open");
    assert_eq!(tcp["status"], "ok", "{tcp}");
    let time = metric(&r, "qmoi_plugin_value{plugin=\"tcp_open\",label=\"time\",unit=\"seconds\"}");
    assert!(time.is_some_and(|t| (0.0..10.0).contains(&t)), "{}", r["metrics"]);

    let closed = check(&r, "tcp_closed");
    assert_eq!(closed["status"], "critical", "{closed}");
    assert!(closed["message"].as_str().unwrap().contains("Connection refused"), "{closed}");
    assert_eq!(metric(&r, "qmoi_plugin_status{plugin=\"tcp_closed\"}"), Some(2.0));
    assert_eq!(check(&r, "tcp_soft")["status"], "warning", "critical = false caps it");

    // Killed at its timeout with its own child: unknown, and nothing of it is left.
    let hang = check(&r, "hang");
    assert_eq!(hang["status"], "unknown", "{hang}");
    assert!(hang["message"].as_str().unwrap().contains("no answer within 1s"), "{hang}");
    let sleeper = std::fs::read_to_string(&pidfile).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.trim())).unwrap_or_default();
    assert!(stat.is_empty() || stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')), "{stat}");

    let loud = check(&r, "loud");
    assert_eq!(loud["status"], "ok", "{loud}");
    let rows = r["details"]["plugins"].as_array().unwrap();
    let row = rows.iter().find(|p| p["name"] == "loud").unwrap();
    assert_eq!(row["output_truncated"], true, "{row}");
    assert!(r.to_string().len() < 200_000, "the flood must not reach the report");

    let odd = check(&r, "odd");
    assert_eq!(odd["status"], "unknown", "{odd}");
    assert!(odd["message"].as_str().unwrap().contains("not a plugin exit status"), "{odd}");
    let missing = check(&r, "missing");
    assert_eq!(missing["status"], "unknown", "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("cannot run qmoi-no-such-plugin"), "{missing}");
    drop(listener);
}

#[test]
fn plugin_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[plugins]]\nname = \"a b\"\ncommand = \"/nonexistent/check_x\"\ntimeout = \"20m\"\n\
                [[plugins]]\nname = \"dup\"\ncommand = \"check_x\"\ninterval = \"5s\"\ntimeout = \"10s\"\n\
                [[plugins]]\nname = \"dup\"\ncommand = \"check_y\"\n";
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qmoi-system-health"))
        .current_dir(dir.path())
        .args(["--validate", "--config", "bad.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "plugins[0].name",
        "plugins[0].command",
        "'/nonexistent/check_x' does not exist",
        "plugins[0].timeout",
        "plugins[1].interval",
        "plugins[2].name",
        "used twice",
    ] {
        assert!(err.contains(want), "expected '{want}' in: {err}");
    }
}
