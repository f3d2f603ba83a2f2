//! Network activity and threat detection against real sockets, real processes and real
//! (synthetic but realistic) log files.

mod common;

use common::{Site, message_of, names, only, status_of};
use qmoi_testkit::find_check as check;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

#[test]
fn a_new_listener_appears_with_its_pid() {
    let site = Site::new(&format!("{}[network]\nlearn = true\n", only(&["network"])));
    let first = site.once();
    assert_eq!(status_of(&first, "network:listeners").as_deref(), Some("ok"), "{first}");
    assert!(site.path("data/security_host.json").exists(), "the listeners were learned");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let r = site.once();
    let name = format!("listener:tcp:127.0.0.1:{port}");
    assert_eq!(status_of(&r, &name).as_deref(), Some("warning"), "{:?}", names(&r));
    let msg = message_of(&r, &name);
    assert!(msg.contains(&format!("pid {}", std::process::id())), "the owning process is named: {msg}");
    let row = r["details"]["network"]["listeners"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["port"] == port))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["pid"], std::process::id());
    assert_eq!(row["known"], false);
    // Accepted: no longer a finding. Closed: gone from the listing.
    let out = site.run(&["--accept"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = site.once();
    assert!(check(&r, &name).is_none());
    drop(listener);
}

#[test]
fn an_allowed_listener_is_not_a_finding_and_a_denied_destination_is_critical() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let site = Site::new(&format!(
        "{}[network]\nlearn = false\nallow = [\"tcp:127.0.0.1:{port}\"]\ndeny = [\"127.0.0.1:{port}\"]\n",
        only(&["network"])
    ));
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    let (_server_side, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    let r = site.once();
    assert!(check(&r, &format!("listener:tcp:127.0.0.1:{port}")).is_none(), "allowed");
    let name = format!("network:denied:127.0.0.1:{port}");
    assert_eq!(status_of(&r, &name).as_deref(), Some("critical"), "{:?}", names(&r));
    assert!(message_of(&r, &name).contains(&format!("matches deny rule '127.0.0.1:{port}'")));
    assert!(r["details"]["network"]["established"].as_u64().unwrap_or(0) >= 2);
    // Three connections to the same denied destination are one finding (it was one per
    // connection, all with the same name).
    let more: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}")))
        .collect();
    let r = site.once();
    assert_eq!(names(&r).iter().filter(|n| **n == name).count(), 1, "{:?}", names(&r));
    let msg = message_of(&r, &name);
    assert!(msg.starts_with(&format!("3 connections → 127.0.0.1:{port}")) && msg.contains(" match deny rule"), "{msg}");
    drop(more);
    drop(client);
}

#[test]
fn a_process_running_a_deleted_binary_from_a_temp_dir_is_flagged() {
    let site = Site::new(&format!(
        "{}[processes]\nsuspicious_dirs = [\"/tmp\", \"/var/tmp\", \"/dev/shm\"]\n",
        only(&["processes"])
    ));
    // tempfile puts the copy under $TMPDIR (normally /tmp); name the folder it is in.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("innocent-sleep");
    std::fs::copy("/bin/sleep", &copy).unwrap_or_else(|e| panic!("copy /bin/sleep: {e}"));
    // Another test thread forking while the copy's write descriptor is open gives that
    // child a copy of it, and exec fails with ETXTBSY until it execs too: retry briefly.
    let mut tries = 0;
    let mut child = loop {
        match std::process::Command::new(&copy).arg("30").spawn() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.unwrap_or_else(|e| panic!("spawn: {e}")),
        }
    };
    std::fs::remove_file(&copy).unwrap();
    let r = site.once();
    let _ = child.kill();
    let _ = child.wait();
    // One finding per executable, named after it (not the pid: it survives restarts).
    let name = format!("process:{} (deleted)", copy.display());
    let msg = message_of(&r, &name);
    assert!(msg.contains("innocent-sleep") && msg.contains("deleted"), "{msg} / {:?}", names(&r));
    assert!(msg.contains(&format!("pid {}", child.id())), "{msg}");
    let in_tmp = copy.starts_with("/tmp");
    assert_eq!(
        status_of(&r, &name).as_deref(),
        Some(if in_tmp { "critical" } else { "warning" }),
        "from /tmp: critical; elsewhere deleted only: warning ({msg})"
    );
}

/// Spawn `exe` (a fresh copy: another test thread forking while it was open for writing
/// makes exec fail with ETXTBSY for a moment) with `args`, in `dir`.
fn spawn_copy(exe: &Path, args: &[&str], dir: &Path) -> std::process::Child {
    for _ in 0..100 {
        match std::process::Command::new(exe)
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(std::time::Duration::from_millis(20)),
            r => return r.unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display())),
        }
    }
    panic!("{} stayed busy", exe.display())
}

fn copy_exe(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// Regression (first run): on a fresh clone under /tmp, QMOI's own binaries were 16
/// critical findings, one per process. Now the stack's own programs (beside the monitor's
/// executable, by inode; a second stack of the same build, by content) are not findings,
/// and a stranger's processes are one finding per executable, listing the pids.
#[test]
fn qmoi_own_processes_are_not_findings_and_strangers_are_grouped() {
    let site = Site::new(&format!(
        "{}[processes]\nsuspicious_dirs = [\"/tmp\", \"/var/tmp\", \"/dev/shm\"]\n",
        only(&["processes"])
    ));
    let root = tempfile::Builder::new().prefix("qmoi-own").tempdir_in("/tmp").unwrap();
    let ours = root.path().join("clone/target/release");
    let second = root.path().join("second/bin");
    let stranger = root.path().join("stranger");
    copy_exe(&qmoi_testkit::bin("qmoi-security"), &ours.join("qmoi-security"));
    copy_exe(&qmoi_testkit::bin("qmoi-fake-monitor"), &ours.join("qmoi-fake-monitor"));
    copy_exe(&qmoi_testkit::bin("qmoi-fake-monitor"), &second.join("qmoi-fake-monitor"));
    copy_exe(Path::new("/bin/sleep"), &stranger.join("miner"));
    let hang = ["--mode", "hang", "--component", "backup"];
    let mut children = vec![
        spawn_copy(&ours.join("qmoi-fake-monitor"), &hang, root.path()),
        spawn_copy(&second.join("qmoi-fake-monitor"), &hang, &second),
    ];
    let strangers: Vec<u32> = (0..5)
        .map(|_| {
            let c = spawn_copy(&stranger.join("miner"), &["30"], root.path());
            let pid = c.id();
            children.push(c);
            pid
        })
        .collect();
    let out = std::process::Command::new(ours.join("qmoi-security"))
        .current_dir(site.path(""))
        .args(["--config", "security.toml", "--report-dir", "logs", "--log-dir", "logs", "--once"])
        .env_remove("QMOI_SECURITY_KEY")
        .output()
        .unwrap();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = site.report().unwrap_or_else(|| panic!("no report"));
    // The machine's own processes may be findings too (a sandbox's memfd): look at ours.
    let here = root.path().display().to_string();
    let findings: Vec<String> =
        names(&r).into_iter().filter(|n| n.starts_with("process:") && n.contains(&here)).collect();
    let miner = format!("process:{}", stranger.join("miner").display());
    assert_eq!(findings, vec![miner.clone()], "only the stranger, once");
    let msg = message_of(&r, &miner);
    assert!(msg.starts_with("5 processes of miner (pids "), "{msg}");
    for pid in &strangers {
        assert!(msg.contains(&pid.to_string()), "{msg}");
    }
    assert_eq!(status_of(&r, &miner).as_deref(), Some("critical"));
    let summary = message_of(&r, "processes");
    assert!(summary.contains("of QMOI's own not counted"), "{summary}");
}

#[test]
fn account_group_and_sudoers_changes_are_critical_until_accepted() {
    let site = Site::new(&format!(
        "{}[accounts]\npasswd = \"etc/passwd\"\ngroup = \"etc/group\"\nshadow = \"etc/shadow\"\nsudoers = [\"etc/sudoers\", \"etc/sudoers.d\"]\n",
        only(&["accounts"])
    ));
    site.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n");
    site.write("etc/group", "root:x:0:\nsudo:x:27:alice\n");
    site.write("etc/shadow", "root:$y$j9T$abc:19000:0:99999:7:::\nalice:$y$j9T$def:19000:0:99999:7:::\n");
    site.write("etc/sudoers", "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n");
    site.write("etc/sudoers.d/README", "# drop-ins\n");
    let first = site.once();
    assert!(message_of(&first, "accounts").contains("2 accounts, 2 groups, 2 sudoers files"), "{first}");
    // A backdoor account with uid 0, alice into a new group, a password change, a sudoers drop-in.
    let mut f = std::fs::OpenOptions::new().append(true).open(site.path("etc/passwd")).unwrap();
    writeln!(f, "toor:x:0:0::/root:/bin/sh").unwrap();
    site.write("etc/group", "root:x:0:\nsudo:x:27:alice,toor\n");
    site.write("etc/shadow", "root:$y$j9T$CHANGED:19001:0:99999:7:::\nalice:$y$j9T$def:19000:0:99999:7:::\n");
    site.write("etc/sudoers.d/toor", "toor ALL=(ALL) NOPASSWD: ALL\n");
    let r = site.once();
    assert_eq!(status_of(&r, "account:toor").as_deref(), Some("critical"));
    assert!(message_of(&r, "account:toor").contains("uid=0"), "{}", message_of(&r, "account:toor"));
    let root = message_of(&r, "account:root");
    assert!(
        root.contains("(shadow entry)") && !root.contains("CHANGED"),
        "password changes are shown without the hash: {root}"
    );
    assert!(message_of(&r, "group:sudo").contains("members=alice,toor"));
    let drop_in = format!("sudoers:{}", "etc/sudoers.d/toor");
    assert_eq!(status_of(&r, &drop_in).as_deref(), Some("critical"), "{:?}", names(&r));
    assert!(check(&r, "account:alice").is_none());
    let text = std::fs::read_to_string(site.path("data/security_host.json")).unwrap_or_default();
    assert!(!text.contains("$y$"), "the baseline keeps no password hashes");
    assert!(site.run(&["--accept"]).status.success());
    let r = site.once();
    assert!(names(&r).iter().all(|n| !n.starts_with("account:") && !n.starts_with("sudoers:")), "{:?}", names(&r));
}

#[test]
fn one_finding_is_accepted_by_its_check_name_and_the_others_stay() {
    let site = Site::new(&format!(
        "{}[accounts]\npasswd = \"etc/passwd\"\ngroup = \"etc/group\"\nshadow = \"etc/shadow\"\nsudoers = []\n[kernel_modules]\nfile = \"modules\"\n",
        only(&["accounts", "kernel_modules"])
    ));
    site.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    site.write("etc/group", "root:x:0:\n");
    site.write("modules", "ext4 999424 1 - Live 0x0\n");
    site.once();
    site.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndeploy:x:1001:1001::/home/deploy:/bin/sh\n");
    site.write("modules", "ext4 999424 1 - Live 0x0\nwireguard 98304 0 - Live 0x0\n");
    let r = site.once();
    assert!(check(&r, "account:deploy").is_some() && check(&r, "module:wireguard").is_some());
    let out = site.run(&["--accept", "account:deploy"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Accepted into the host baseline: account:deploy"));
    let r = site.once();
    assert!(check(&r, "account:deploy").is_none(), "accepted");
    assert!(check(&r, "module:wireguard").is_some(), "not accepted: still a finding");
    let out = site.run(&["--accept", "module:nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kernel module nope is loaded now"));
    let out = site.run(&["--accept", "module:wireguard"]);
    assert!(out.status.success());
    assert!(check(&site.once(), "module:wireguard").is_none());
}

#[test]
fn a_kernel_module_loaded_after_the_baseline_is_reported() {
    let site = Site::new(&format!("{}[kernel_modules]\nfile = \"modules\"\n", only(&["kernel_modules"])));
    site.write("modules", "ext4 999424 1 - Live 0x0000000000000000\nnf_tables 282624 0 - Live 0x0000000000000000\n");
    let first = site.once();
    assert!(message_of(&first, "kernel_modules").contains("2 modules loaded, 0 new"));
    site.write(
        "modules",
        "ext4 999424 1 - Live 0x0000000000000000\nnf_tables 282624 0 - Live 0x0000000000000000\nrootkit_x 16384 0 - Live 0x0000000000000000\n",
    );
    let r = site.once();
    assert_eq!(status_of(&r, "module:rootkit_x").as_deref(), Some("warning"));
}

fn sshd_lines(addr: &str, n: usize, start_port: u16) -> String {
    let mut s = String::new();
    for i in 0..n {
        let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let port = start_port + i as u16;
        if i % 2 == 0 {
            s.push_str(&format!("{t} web-01 sshd[{}]: Invalid user oracle from {addr} port {port}\n", 4000 + i));
        } else {
            s.push_str(&format!(
                "{t} web-01 sshd[{}]: Failed password for root from {addr} port {port} ssh2\n",
                4000 + i
            ));
        }
    }
    s
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap_or_else(|e| panic!("{e}"));
    f.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn ssh_brute_force_across_log_rotation_raises_then_clears() {
    let mut site = Site::new(&format!(
        "{}[auth_log]\nfiles = [\"log/auth.log\"]\nfind_time = \"4s\"\nmax_retry = 5\n",
        only(&["auth_log"])
    ));
    let log = site.path("log/auth.log");
    site.write("log/auth.log", "Nov 27 09:00:00 web-01 sshd[1]: Server listening on 0.0.0.0 port 22.\n");
    site.start(&["--interval", "1s"]);
    site.wait_report(Duration::from_secs(20), "the first report", |r| check(r, "auth_log").is_some());
    // Three attempts, then logrotate renames the file; sshd's syslog still writes one line
    // to the old file before reopening, then two more to the new file: six in the window.
    append(&log, &sshd_lines("203.0.113.77", 3, 50000));
    append(
        &log,
        "2026-11-27T09:00:01.000000+00:00 web-01 sshd[9]: Accepted publickey for alice from 198.51.100.4 port 1 ssh2\n",
    );
    site.wait_report(Duration::from_secs(10), "3 failures counted", |r| {
        r["metrics"]["qmoi_security_auth_failures"].as_f64() == Some(3.0)
    });
    let rotated = site.path("log/auth.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, &sshd_lines("203.0.113.77", 1, 50010));
    append(&log, &sshd_lines("203.0.113.77", 2, 50020));
    let name = "auth:bruteforce:203.0.113.77";
    let r = site.wait_report(Duration::from_secs(10), "the brute-force alert", |r| check(r, name).is_some());
    assert_eq!(status_of(&r, name).as_deref(), Some("warning"));
    let msg = message_of(&r, name);
    assert!(msg.starts_with("6 failed SSH logins from 203.0.113.77"), "{msg}");
    assert!(msg.contains("oracle") && msg.contains("root"), "users tried are listed: {msg}");
    let alerts = r["alerts"].to_string();
    assert!(alerts.contains("security/auth:bruteforce:203.0.113.77"), "{alerts}");
    // Nothing more from that address: the window passes and the alert clears.
    site.wait_report(Duration::from_secs(15), "the alert to clear after find_time", |r| {
        check(r, "auth_log").is_some() && check(r, name).is_none()
    });
}

#[test]
fn a_missing_auth_log_is_said_plainly() {
    let site = Site::new(&format!("{}[auth_log]\nfiles = [\"no/such.log\"]\n", only(&["auth_log"])));
    let r = site.once();
    assert_eq!(status_of(&r, "auth_log").as_deref(), Some("ok"));
    assert!(message_of(&r, "auth_log").contains("not monitored: none of no/such.log exists"));
}

/// The connection-spike alert (a path that had no test): after five runs learn the usual
/// count of established connections, 300 new loopback connections (600 sockets) are a
/// spike; closed again, the warning clears.
#[test]
fn a_connection_spike_warns_and_clears() {
    let mut site =
        Site::new(&format!("{}[network]\nlearn = false\nspike_factor = 3\nspike_min = 100\n", only(&["network"])));
    site.start(&["--interval", "1s"]);
    let runs = |r: &serde_json::Value| r["generated_at"].as_str().map(str::to_string);
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    // Five samples of the usual count (the running average needs them).
    site.wait_report(Duration::from_secs(30), "six reports", |r| {
        if let Some(g) = runs(r) {
            seen.borrow_mut().insert(g);
        }
        seen.borrow().len() >= 6
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut conns = Vec::new();
    for _ in 0..300 {
        let c = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
        let (s, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        conns.push((c, s));
    }
    let r = site.wait_report(Duration::from_secs(15), "the spike", |r| {
        status_of(r, "network:connections").as_deref() == Some("warning")
    });
    let msg = message_of(&r, "network:connections");
    assert!(msg.contains("established connections") && msg.contains("× the running average"), "{msg}");
    drop(conns);
    site.wait_report(Duration::from_secs(15), "the spike to clear", |r| {
        status_of(r, "network:connections").as_deref() == Some("ok")
    });
}
