//! Fault injection on the real stack: a monitor stopped with SIGSTOP, the report folder's
//! file system full, state files corrupted. Each test injects one fault into real
//! processes and files, checks that nothing exits that should not, that nothing torn is
//! left behind, that the fault is named, and that everything recovers when it goes away.
//! The file-system tests mount a small tmpfs (root, as CI runs) and skip with a note
//! without it.

use nix::sys::signal::Signal;
use qmoi_testkit::{Stack, alive, read_json, signal, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FAST: &str = "[dashboard]\nport = 0\n[restart]\nbackoff_initial = \"200ms\"\nstop_timeout = \"1s\"\n\
                    [report]\ninterval = 1\n[monitoring_components.system_health]\ninterval = 1\n";

/// A tmpfs of `size` mounted on `dir` for the life of the value (lazily unmounted when
/// dropped, also when the test fails). None when this process may not mount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var_os("QMOI_REQUIRE_EXTERNAL").is_some() {
                panic!("cannot mount a tmpfs on {} (QMOI_REQUIRE_EXTERNAL is set: run as root)", dir.display());
            }
            eprintln!("skipped: cannot mount a tmpfs (not root)");
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }

    /// Fill it to the last byte: a file of zeros written until ENOSPC.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let p = self.0.join("filler");
        let mut f = std::fs::File::create(&p).unwrap_or_else(|e| panic!("create filler: {e}"));
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block, byte by byte.
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_monitor_stopped_with_sigstop_is_found_stale_and_killed() {
    let mut stack = Stack::new(&format!("{FAST}stale_after = \"3s\"\n"));
    stack.start();
    let first = stack.running_pid("system_health");
    signal(first, Signal::SIGSTOP);
    // SIGTERM cannot reach a stopped process: the group gets SIGKILL after stop_timeout.
    let c = wait_for(Duration::from_secs(20), "a stale restart", || {
        let c = stack.component("system_health");
        (c["restarts"].as_u64().unwrap_or(0) >= 1 && c["state"] == "running").then_some(c)
    });
    let reason = c["recent_restarts"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("report not updated for") && reason.contains("stale_after 3s"), "{reason}");
    assert!(c["last_exit"].as_str().unwrap_or_default().starts_with("killed after 1s"), "{c}");
    assert!(!alive(first), "the stopped monitor was killed");
    assert_ne!(stack.pid_of("system_health"), Some(first));
    // One restart, not a burst: the new one reports.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(stack.component("system_health")["restarts"], 1);
}

#[test]
fn a_full_report_folder_keeps_every_process_and_the_last_reports_and_recovers() {
    let mut stack = Stack::new(FAST);
    let Some(fs) = Tmpfs::mount(&stack.path("logs"), "4m") else { return };
    let sup = stack.start();
    let mon = stack.running_pid("system_health");
    let report = stack.path("logs/system_health_latest.json");
    wait_for(Duration::from_secs(10), "a report", || read_json(&report));
    let filler = fs.fill();
    std::thread::sleep(Duration::from_secs(6));
    // Nobody exited; what is there is a whole report (the last one written).
    assert!(alive(sup), "the supervisor is alive: {}", stack.supervisor_stderr());
    assert!(read_json(&report).is_some(), "the last report is whole");
    // The monitor is not restarted (that cannot make room): the status says why.
    assert!(alive(mon), "the monitor kept running");
    let c = stack.component("system_health");
    assert_eq!((c["restarts"].as_u64(), c["state"].as_str()), (Some(0), Some("stale")), "{c}");
    let s = stack.status();
    let reasons = s["verdict"]["reasons"].to_string();
    assert!(reasons.contains("logs is full (") && reasons.contains("a report needs"), "the verdict names it: {s}");
    // Space comes back: reports are fresh again, by themselves.
    std::fs::remove_file(&filler).unwrap();
    let before = std::fs::metadata(&report).and_then(|m| m.modified()).unwrap();
    wait_for(Duration::from_secs(15), "a fresh report", || {
        std::fs::metadata(&report).and_then(|m| m.modified()).ok().filter(|m| *m > before)
    });
    let c = wait_for(Duration::from_secs(5), "running again", || {
        let c = stack.component("system_health");
        (c["state"] == "running").then_some(c)
    });
    assert_eq!((c["pid"].as_u64(), c["restarts"].as_u64()), (Some(u64::from(mon)), Some(0)), "{c}");
    assert!(alive(sup));
    // The supervisor's own report is written again too.
    wait_for(Duration::from_secs(10), "a fresh master report", || {
        std::fs::metadata(stack.path("logs/master_monitor_latest.json"))
            .and_then(|m| m.modified())
            .ok()
            .filter(|m| *m > before)
    });
}

/// `data/` full: the notifier's outbox, the dashboard's history and the heartbeat
/// database cannot grow. Nobody exits or is restarted; when space returns every database
/// passes SQLite's integrity check.
#[test]
fn a_full_data_folder_keeps_every_process_and_leaves_the_databases_whole() {
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[report]\ninterval = 1\n\
         [monitoring_components.notification]\ninterval = 1\ncommand = \"{}\"\n\
         [monitoring_components.heartbeats]\ninterval = 1\ncommand = \"{}\"\n{}",
        qmoi_testkit::bin("qmoi-notify").display(),
        qmoi_testkit::bin("qmoi-heartbeat").display(),
        qmoi_testkit::fake_component("system_health", &["--mode", "warn"], "")
    ));
    stack.write("config/notification.toml", "interval = 1\n[channels.internal]\nenabled = true\n");
    stack.write(
        "config/heartbeats.toml",
        "interval = 1\nlisten = \"127.0.0.1:0\"\n[[checks]]\nname = \"nightly\"\nuuid = \"0123456789abcdef0123\"\n",
    );
    let Some(fs) = Tmpfs::mount(&stack.path("data"), "8m") else { return };
    let sup = stack.start();
    let pids: Vec<u32> =
        ["notification", "heartbeats", "system_health"].iter().map(|id| stack.running_pid(id)).collect();
    std::thread::sleep(Duration::from_secs(2));
    let filler = fs.fill();
    std::thread::sleep(Duration::from_secs(8));
    assert!(alive(sup), "{}", stack.supervisor_stderr());
    for (id, pid) in ["notification", "heartbeats", "system_health"].iter().zip(&pids) {
        assert!(alive(*pid), "{id} kept running");
        assert_eq!(stack.component(id)["restarts"], 0, "{id} was not restarted");
    }
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    for db in ["notification.db", "heartbeats.db", "history.db"] {
        let out =
            Command::new("sqlite3").arg(stack.path(&format!("data/{db}"))).arg("PRAGMA integrity_check;").output();
        match out {
            Ok(o) => assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "ok",
                "{db}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("sqlite3: {e}"),
        }
    }
    // Written again: the notifier's report is fresh.
    let report = stack.path("logs/notification_latest.json");
    let t = std::time::SystemTime::now();
    wait_for(Duration::from_secs(10), "a fresh notifier report", || {
        std::fs::metadata(&report).and_then(|m| m.modified()).ok().filter(|m| *m > t)
    });
}

/// The wall clock jumps an hour forward, then back (an NTP step, a VM resumed), for the
/// supervisor and its monitors (libfaketime; the monotonic clock is left alone, as it is
/// in such jumps). Report files keep the kernel's real times, so the supervisor sees its
/// reports an hour old, then an hour in the future: no monitor may be restarted for it.
#[test]
fn a_jump_of_the_wall_clock_restarts_nothing() {
    let lib = Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
    if !lib.exists() {
        assert!(std::env::var_os("QMOI_REQUIRE_EXTERNAL").is_none(), "libfaketime (Debian faketime) is required");
        eprintln!("skipped: no libfaketime");
        return;
    }
    let mut stack = Stack::new(FAST);
    let offset = stack.path("faketime");
    std::fs::write(&offset, "+0\n").unwrap_or_else(|e| panic!("{e}"));
    stack.env = vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".into(), offset.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    stack.start();
    stack.running_pid("system_health");
    std::thread::sleep(Duration::from_secs(2));
    for jump in ["+3600", "+0"] {
        std::fs::write(&offset, format!("{jump}\n")).unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(6));
        let c = stack.component("system_health");
        assert_eq!((c["restarts"].as_u64(), c["state"].as_str()), (Some(0), Some("running")), "after {jump}: {c}");
    }
}

/// `/healthz` answered 200 (false on any error).
fn healthz(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut buf = [0u8; 32];
    s.write_all(req.as_bytes()).is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"))
}

/// `name` was moved aside to `name.corrupt-<time>` in `dir`, as it was.
fn set_aside(dir: &Path, name: &str, len: usize) {
    let aside: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}.corrupt-"))))
        .collect();
    assert_eq!(aside.len(), 1, "{name} set aside once: {aside:?}");
    assert_eq!(std::fs::metadata(&aside[0]).map(|m| m.len() as usize).unwrap_or(0), len, "kept as it was");
}

#[test]
fn unreadable_databases_and_state_are_set_aside_named_and_started_anew() {
    let notify = qmoi_testkit::bin("qmoi-notify");
    let heartbeat = qmoi_testkit::bin("qmoi-heartbeat");
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[report]\ninterval = 1\n\
         [monitoring_components.notification]\ninterval = 1\ncommand = \"{}\"\n\
         [monitoring_components.heartbeats]\ninterval = 1\ncommand = \"{}\"\n",
        notify.display(),
        heartbeat.display()
    ));
    stack.write("config/notification.toml", "interval = 1\n[channels.internal]\nenabled = true\n");
    stack.write(
        "config/heartbeats.toml",
        "interval = 1\nlisten = \"127.0.0.1:0\"\n[[checks]]\nname = \"nightly\"\nuuid = \"0123456789abcdef0123\"\n",
    );
    // Garbage where each database is, and a truncated one for the dashboard.
    let garbage: Vec<u8> = (0..6000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    stack.write("data/.keep", "");
    std::fs::write(stack.path("data/notification.db"), &garbage).unwrap();
    std::fs::write(stack.path("data/heartbeats.db"), &garbage[..4000]).unwrap();
    let mut sqlite_header = b"SQLite format 3\0".to_vec();
    sqlite_header.extend_from_slice(&garbage[..2000]);
    std::fs::write(stack.path("data/history.db"), &sqlite_header).unwrap();
    let sup = stack.start();
    for id in ["notification", "heartbeats"] {
        stack.running_pid(id);
    }
    // Each one says what it found, in a check of its own report or an alert of the
    // supervisor's, and nothing restarted.
    let said = |file: &str, name: &str| {
        wait_for(Duration::from_secs(20), &format!("{name} to say so"), || {
            let r = read_json(&stack.path(file))?;
            let text = r.to_string();
            (text.contains(&format!("data/{name} was unreadable")) && text.contains("started empty")).then_some(r)
        })
    };
    said("logs/notification_latest.json", "notification.db");
    said("logs/heartbeats_latest.json", "heartbeats.db");
    let master = said("logs/master_monitor_latest.json", "history.db");
    assert!(master["alerts"].to_string().contains("master_monitor/database:history"), "{master}");
    set_aside(&stack.path("data"), "notification.db", 6000);
    set_aside(&stack.path("data"), "heartbeats.db", 4000);
    set_aside(&stack.path("data"), "history.db", sqlite_header.len());
    assert!(alive(sup));
    for id in ["notification", "heartbeats"] {
        assert_eq!(stack.component(id)["restarts"], 0, "{id} started once");
    }
    // The new databases work: the dashboard answers from its history.
    let h = qmoi_testkit::http("GET", &stack.dashboard_addr(), "/api/alerts", &[], None);
    assert_eq!(h.status, 200, "{}", h.body);
}

/// Descriptors run short (a limit of 64, as a crowded host or a bad unit file gives):
/// the dashboard serves at most half of them, a flood of idle connections makes room for
/// `/healthz`, a killed monitor is spawned again, the control socket answers.
#[test]
fn a_low_descriptor_limit_leaves_room_for_the_supervisors_own_work() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(std::env::var_os("QMOI_REQUIRE_EXTERNAL").is_none(), "prlimit (util-linux) is required");
        eprintln!("skipped: no prlimit");
        return;
    }
    let mut stack = Stack::new(FAST);
    let err = std::fs::File::create(stack.path("supervisor.err")).unwrap_or_else(|e| panic!("{e}"));
    // prlimit execs the supervisor: the child's pid is the supervisor's.
    let child = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(qmoi_testkit::bin("qmoi-supervisor"))
        .arg("start")
        .current_dir(stack.path(""))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("prlimit: {e}"));
    let sup = child.id();
    stack.child = Some(child);
    let first = stack.running_pid("system_health");
    let addr = stack.dashboard_addr();
    let metrics = qmoi_testkit::http("GET", &addr, "/metrics", &[], None).body;
    assert!(metrics.contains("qmoi_dashboard_connections_max 32"), "half of 64: {metrics}");
    let flood: Vec<std::net::TcpStream> = (0..100).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    assert!(!flood.is_empty());
    // Room is made for it (the longest-idle connection goes); a try may meet a reset
    // while the flood is still being accepted.
    wait_for(Duration::from_secs(10), "/healthz under the flood", || healthz(&addr).then_some(()));
    signal(first, Signal::SIGKILL);
    let second = wait_for(Duration::from_secs(15), "system_health again", || {
        stack.pid_of("system_health").filter(|p| *p != first)
    });
    assert!(alive(second) && alive(sup));
    assert!(stack.supervisor_stderr().lines().all(|l| !l.contains("panicked")), "{}", stack.supervisor_stderr());
    drop(flood);
}
