//! The real `qmoi-heartbeat` daemon, pinged by a shell script with real `curl` lines as
//! cron jobs call them: every URL form (Healthchecks' uuid and slug forms, start / fail /
//! log / exit status, `rid`, Uptime Kuma push), every failure kind (late, failed, exit
//! status, too often, too short, too long), the answers for bad URLs, a wrapped command
//! (`--run`), and a restart of the daemon that keeps every check's state.

use qmoi_testkit::{free_port, read_json, signal, wait_for};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const KEY: &str = "project-ping-key-0123";

fn uuid(n: u32) -> String {
    format!("5a7c1e2b-0000-4000-8000-{n:012}")
}

fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_qmoi-heartbeat"))
        .current_dir(dir)
        .args(["--config", "hb.toml", "--report-dir", "logs", "--log-dir", "logs"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start qmoi-heartbeat: {e}"))
}

fn report(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("logs/heartbeats_latest.json")).unwrap_or_default()
}

fn status(r: &serde_json::Value, name: &str) -> (String, String) {
    let c = qmoi_testkit::find_check(r, &format!("heartbeat:{name}")).cloned().unwrap_or_default();
    (c["status"].as_str().unwrap_or("-").to_string(), c["message"].as_str().unwrap_or("").to_string())
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap_or_else(|e| panic!("sh: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn curl_pings_every_form_every_failure_and_a_restart_keeps_state() {
    if !qmoi_testkit::require_tool(&["curl"], "apt install curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let check =
        |name: &str, n: u32, extra: &str| format!("[[checks]]\nname = \"{name}\"\nuuid = \"{}\"\n{extra}\n", uuid(n));
    let config = [
        format!("interval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\nping_key = \"{KEY}\"\nmax_body = 100\n"),
        check("nightly", 1, "period = \"2s\"\ngrace = \"1s\""),
        check("fails", 2, ""),
        check("exits", 3, ""),
        check("often", 4, "period = \"1h\"\nmin_interval = \"1h\""),
        check("short", 5, "min_duration = \"10s\""),
        check("long", 6, "max_duration = \"1s\"\nlevel = \"warning\""),
        check("overlap", 7, ""),
        "[[checks]]\nname = \"slug\"\ncron = \"0 3 * * *\"\ntz = \"Europe/Berlin\"\n".into(),
        "[[checks]]\nname = \"kuma\"\npush_token = \"kuma-push-token-0123\"\n".into(),
        check("wrapped", 8, ""),
        check("fresh", 9, ""),
    ]
    .concat();
    std::fs::write(d.join("hb.toml"), config).unwrap();
    let mut daemon = start(d);
    wait_for(Duration::from_secs(10), "the listener", || {
        sh(&format!("curl -s -o /dev/null -w '%{{http_code}}' {base}/ping/x")).eq("404").then_some(())
    });

    // A job's crontab lines, as operators write them.
    let u = |n: u32| format!("{base}/ping/{}", uuid(n));
    let script = format!(
        "set -e\n\
         c() {{ curl -fsS -m 10 --retry 3 \"$@\"; echo; }}\n\
         c {nightly}\n\
         c --data-raw 'disk full on /var' {fails}/fail\n\
         c -X POST --data-binary 'rsync: connection unexpectedly closed' {exits}/3\n\
         c {often}; c {often}\n\
         c {short}/start; c {short}\n\
         c {long}/start\n\
         c '{overlap}/start?rid=a'; c '{overlap}/start?rid=b'; c '{overlap}?rid=b'\n\
         c {base}/ping/{KEY}/slug; c {base}/ping/{KEY}/slug/log\n\
         c -I {base}/ping/{KEY}/slug\n\
         c '{base}/api/push/kuma-push-token-0123?status=down&msg=boom&ping=12'\n\
         head -c 300 /dev/zero | tr '\\0' y | curl -fsS --data-binary @- {fresh}/log; echo\n",
        nightly = u(1),
        fails = u(2),
        exits = u(3),
        often = u(4),
        short = u(5),
        long = u(6),
        overlap = u(7),
        fresh = u(9),
    );
    let out = sh(&script);
    assert_eq!(out.matches("OK").count(), 16, "{out}");
    let code = |path: &str| sh(&format!("curl -s -o /dev/null -w '%{{http_code}}' '{base}{path}'"));
    assert_eq!(code("/ping/nobody-knows-this-key-00"), "404");
    assert_eq!(code(&format!("/ping/{}/sometimes", uuid(1))), "400");
    assert_eq!(code(&format!("/ping/{}/256", uuid(1))), "400");
    assert_eq!(code("/api/push/wrong-token-000000000"), "404");
    assert_eq!(sh(&format!("curl -s -o /dev/null -w '%{{http_code}}' -X DELETE {}", u(1))), "405");

    // A wrapped command: start, the command's own output, its exit status with the tail.
    let wrapped = Command::new(env!("CARGO_BIN_EXE_qmoi-heartbeat"))
        .current_dir(d)
        .args([
            "--config",
            "hb.toml",
            "--run",
            "wrapped",
            "--",
            "sh",
            "-c",
            "echo dumping; echo 'pg_dump: error' >&2; exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(wrapped.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&wrapped.stdout).contains("dumping"), "{wrapped:?}");

    let r = wait_for(Duration::from_secs(15), "every failure reported", || {
        let r = report(d);
        let s = |n| status(&r, n).0;
        (s("nightly") == "critical" && s("long") == "warning" && s("wrapped") == "critical").then_some(r)
    });
    let m = |n| status(&r, n).1;
    assert!(m("nightly").contains("late: last success"), "{}", m("nightly"));
    assert_eq!(status(&r, "fails").0, "critical");
    assert!(m("fails").contains("reported a failure") && m("fails").ends_with("disk full on /var"), "{}", m("fails"));
    assert!(m("exits").contains("exited with status 3") && m("exits").contains("rsync: connection"), "{}", m("exits"));
    assert!(m("often").contains("ran too often"), "{}", m("often"));
    assert!(m("short").contains("ran too short"), "{}", m("short"));
    assert!(m("long").contains("running too long"), "{}", m("long"));
    assert_eq!(status(&r, "overlap").0, "ok", "{}", m("overlap"));
    assert_eq!(status(&r, "slug").0, "ok", "{}", m("slug"));
    assert!(m("slug").contains("cron '0 3 * * *' (Europe/Berlin)"), "{}", m("slug"));
    assert!(m("kuma").contains("reported a failure") && m("kuma").ends_with("boom"), "{}", m("kuma"));
    assert!(
        m("wrapped").contains("exited with status 4") && m("wrapped").contains("pg_dump: error"),
        "{}",
        m("wrapped")
    );
    assert!(m("fresh").contains("waiting for its first ping") || status(&r, "fresh").0 == "ok");
    // Alerts, one per check, with the body in their detail; metrics.
    let alerts = r["alerts"].as_array().cloned().unwrap_or_default();
    let fp: Vec<&str> = alerts.iter().filter_map(|a| a["fingerprint"].as_str()).collect();
    assert!(fp.contains(&"heartbeats/heartbeat:fails"), "{fp:?}");
    assert_eq!(r["metrics"]["qmoi_heartbeat_up{check=\"fails\"}"], 0.0);
    assert_eq!(r["metrics"]["qmoi_heartbeat_last_exit_status{check=\"exits\"}"], 3.0);
    assert_eq!(r["metrics"]["qmoi_heartbeat_pings_total{check=\"slug\",kind=\"log\"}"], 1.0);
    let row = |n: &str| r["details"]["checks"].as_array().unwrap().iter().find(|c| c["name"] == n).cloned().unwrap();
    assert_eq!(row("overlap")["last_duration_s"].as_f64().map(|d| d < 5.0), Some(true));
    assert_eq!(row("overlap")["running"], 1, "run a is still open");
    assert_eq!(row("fresh")["last_ping"]["body"].as_str().map(str::len), Some(100), "the body is capped");
    assert_eq!(row("exits")["recent_runs"][0]["kind"], "exit 3");

    // A restart keeps every check's state.
    signal(daemon.id(), nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.wait();
    let before = std::fs::metadata(d.join("logs/heartbeats_latest.json")).and_then(|m| m.modified()).ok();
    daemon = start(d);
    let r = wait_for(Duration::from_secs(15), "a report after the restart", || {
        let now = std::fs::metadata(d.join("logs/heartbeats_latest.json")).and_then(|m| m.modified()).ok();
        (now != before).then(|| report(d))
    });
    assert_eq!(status(&r, "fails").0, "critical", "{}", status(&r, "fails").1);
    assert!(status(&r, "exits").1.contains("exited with status 3"));
    assert_eq!(r["metrics"]["qmoi_heartbeat_pings_total{check=\"often\",kind=\"success\"}"], 2.0);
    // And it goes back to ok with a success.
    sh(&format!("curl -fsS {}", u(2)));
    wait_for(Duration::from_secs(10), "fails back to ok", || (status(&report(d), "fails").0 == "ok").then_some(()));
    signal(daemon.id(), nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.wait();
}
