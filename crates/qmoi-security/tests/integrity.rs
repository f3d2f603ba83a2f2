//! File integrity on real temp trees: every attribute kind, baseline tampering,
//! incremental vs full rehash, real-time detection, unreadable and special files, accept.

mod common;

use common::{Site, message_of, names, only, status_of};
use qmoi_testkit::find_check as check;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn tree_site(extra_integrity: &str) -> Site {
    let site = Site::new(&format!(
        "{}[integrity]\nrealtime = true\ndebounce = \"100ms\"\n{extra_integrity}\n[[integrity.paths]]\npath = \"tree\"\n",
        only(&["integrity"])
    ));
    for (name, text) in [
        ("content.txt", "aaaa"),
        ("grow.log", "line\n"),
        ("mode.txt", "m"),
        ("suid.bin", "#!/bin/sh\n"),
        ("mtime.txt", "t"),
        ("inode.txt", "same content"),
        ("typed", "a file for now"),
        ("owner.txt", "o"),
        ("gone.txt", "g"),
        ("sub/deep.conf", "x=1"),
    ] {
        site.write(&format!("tree/{name}"), text);
    }
    std::os::unix::fs::symlink("content.txt", site.path("tree/link")).unwrap_or_else(|e| panic!("symlink: {e}"));
    site
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn file_check(site: &Site, report: &serde_json::Value, rel: &str) -> (String, String) {
    let name = format!("file:{}", site.path(rel).display());
    let c = check(report, &name).unwrap_or_else(|| panic!("no check {name} in {:?}", names(report)));
    (c["status"].as_str().unwrap_or_default().to_string(), c["message"].as_str().unwrap_or_default().to_string())
}

#[test]
fn every_attribute_change_is_reported_with_old_and_new_values() {
    let site = tree_site("");
    let first = site.once();
    assert_eq!(status_of(&first, "integrity:baseline").as_deref(), Some("ok"));
    assert!(message_of(&first, "integrity:baseline").contains("baseline created with 13 paths"), "{first}");
    assert!(site.path("data/security_baseline.qmb").exists());

    let p = |rel: &str| site.path(rel);
    std::fs::write(p("tree/content.txt"), "bbbb").unwrap();
    std::fs::write(p("tree/grow.log"), "line\nline 2\n").unwrap();
    set_mode(&p("tree/mode.txt"), 0o600);
    set_mode(&p("tree/suid.bin"), 0o4755);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(p("tree/mtime.txt")).and_then(|f| f.set_modified(old)).unwrap();
    // Same content and mtime under a new inode (a replaced file).
    let mtime = std::fs::metadata(p("tree/inode.txt")).and_then(|m| m.modified()).unwrap();
    std::fs::write(p("tree/inode.new"), "same content").unwrap();
    std::fs::File::options().write(true).open(p("tree/inode.new")).and_then(|f| f.set_modified(mtime)).unwrap();
    std::fs::rename(p("tree/inode.new"), p("tree/inode.txt")).unwrap();
    std::fs::remove_file(p("tree/link")).unwrap();
    std::os::unix::fs::symlink("mode.txt", p("tree/link")).unwrap();
    std::fs::remove_file(p("tree/typed")).unwrap();
    std::fs::create_dir(p("tree/typed")).unwrap();
    if common::is_root() {
        std::os::unix::fs::chown(p("tree/owner.txt"), Some(65534), Some(65534)).unwrap();
    } else {
        eprintln!("NOTICE: not root: owner/group changes cannot be made by this test");
    }
    std::fs::remove_file(p("tree/gone.txt")).unwrap();
    site.write("tree/new.txt", "new");

    let r = site.once();
    let (s, m) = file_check(&site, &r, "tree/content.txt");
    assert_eq!(s, "warning");
    assert!(m.contains("hash ") && !m.contains("size"), "same size, new content: {m}");
    let (_, m) = file_check(&site, &r, "tree/grow.log");
    assert!(m.contains("size 5 → 12") && m.contains("hash "), "{m}");
    let (_, m) = file_check(&site, &r, "tree/mode.txt");
    assert!(m.contains("mode 0644 → 0600"), "{m}");
    let (s, m) = file_check(&site, &r, "tree/suid.bin");
    assert_eq!(s, "critical", "gaining setuid is critical: {m}");
    assert!(m.contains("suid none → setuid"), "{m}");
    let (_, m) = file_check(&site, &r, "tree/mtime.txt");
    assert!(m.contains("mtime ") && m.contains("→ 2001-09-09 01:46:40.000"), "{m}");
    let (_, m) = file_check(&site, &r, "tree/inode.txt");
    assert!(m.contains("inode ") && !m.contains("hash"), "{m}");
    let (_, m) = file_check(&site, &r, "tree/link");
    assert!(m.contains("link content.txt → mode.txt"), "{m}");
    let (_, m) = file_check(&site, &r, "tree/typed");
    assert!(m.contains("type file → dir"), "{m}");
    if common::is_root() {
        let (_, m) = file_check(&site, &r, "tree/owner.txt");
        assert!(m.contains("owner 0 → 65534") && m.contains("group 0 → 65534"), "{m}");
    }
    let (_, m) = file_check(&site, &r, "tree/gone.txt");
    assert!(m.ends_with("removed"), "{m}");
    let (_, m) = file_check(&site, &r, "tree/new.txt");
    assert!(m.ends_with("added"), "{m}");
    // Untouched files are not findings; the report says what changed in details too.
    assert!(check(&r, &format!("file:{}", site.path("tree/sub/deep.conf").display())).is_none());
    assert_eq!(r["status"], "critical");
    assert_eq!(r["details"]["integrity"]["totals"]["added"], 1);
    assert_eq!(r["details"]["integrity"]["totals"]["removed"], 1);
    let alerts = r["alerts"].as_array().map_or(0, Vec::len);
    assert!(alerts >= 11, "one alert per finding: {alerts}");
}

#[test]
fn a_tampered_baseline_is_critical_until_recreated() {
    let site = tree_site("");
    site.once();
    let path = site.path("data/security_baseline.qmb");
    let text = std::fs::read_to_string(&path).unwrap();
    // Hide a change: rewrite the recorded size of a file in the sealed body.
    let forged = text.replacen("\"s\":4,", "\"s\":5,", 1);
    assert_ne!(forged, text, "the baseline records sizes as \"s\"");
    std::fs::write(&path, forged).unwrap();

    let out = site.run(&["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    let r = site.once();
    assert_eq!(status_of(&r, "integrity:baseline").as_deref(), Some("critical"));
    assert!(message_of(&r, "integrity:baseline").contains("HMAC does not match"), "{r}");
    // --accept refuses to build on a tampered baseline; --init-baseline starts over.
    let out = site.run(&["--accept"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--init-baseline"));
    let out = site.run(&["--init-baseline"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Baseline created: 13 paths"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = site.once();
    assert_eq!(status_of(&r, "integrity:baseline").as_deref(), Some("ok"), "{r}");
    // A baseline sealed with another key is tampering too.
    site.write("data/security.key", &"ab".repeat(32));
    let r = site.once();
    assert_eq!(status_of(&r, "integrity:baseline").as_deref(), Some("critical"));
}

#[test]
fn incremental_scans_rehash_only_changed_files_and_full_scans_rehash_all() {
    let site = Site::new(&format!(
        "{}[integrity]\nrealtime = false\n[[integrity.paths]]\npath = \"tree\"\n",
        only(&["integrity"])
    ));
    for i in 0..40 {
        site.write(&format!("tree/f{i}"), &format!("file {i}"));
    }
    let first = site.once();
    assert_eq!(first["details"]["integrity"]["last_scan"]["hashed_files"], 40);
    site.write("tree/f7", "changed content");
    let r = site.once();
    let scan = &r["details"]["integrity"]["last_scan"];
    assert_eq!(scan["mode"], "incremental");
    assert_eq!(scan["hashed_files"], 1, "only the changed file is rehashed: {scan}");
    assert!(check(&r, &format!("file:{}", site.path("tree/f7").display())).is_some());
    let out = site.run(&["--once", "--full"]);
    assert!(out.status.success());
    let r = site.report().unwrap_or_default();
    let scan = &r["details"]["integrity"]["last_scan"];
    assert_eq!(scan["mode"], "full");
    assert_eq!(scan["hashed_files"], 40, "a full scan trusts no metadata: {scan}");
    assert!(r["details"]["integrity"]["last_full_rehash"].is_string());
}

#[test]
fn a_write_is_reported_in_real_time_between_runs() {
    let mut site = tree_site("");
    site.start(&["--interval", "1h"]);
    site.wait_report(Duration::from_secs(20), "the first report", |r| check(r, "integrity:baseline").is_some());
    site.write("tree/sub/deep.conf", "x=2");
    site.write("tree/fresh/dir/new.txt", "created with its folder");
    let deep = format!("file:{}", site.path("tree/sub/deep.conf").display());
    let fresh = format!("file:{}", site.path("tree/fresh/dir/new.txt").display());
    let r = site.wait_report(Duration::from_secs(2), "both changes within 2 s, long before the next run", |r| {
        check(r, &deep).is_some() && check(r, &fresh).is_some()
    });
    assert!(message_of(&r, &deep).contains("hash "), "{r}");
    assert!(r["details"]["integrity"]["realtime"]["events"].as_u64().unwrap_or(0) >= 1);
    // Restoring the content clears the finding, again without waiting for a run.
    std::fs::write(site.path("tree/sub/deep.conf"), "x=1").unwrap();
    site.wait_report(Duration::from_secs(2), "the restored file to stop being a content change", |r| {
        !message_of(r, &deep).contains("hash ")
    });
}

#[test]
fn unreadable_special_and_looping_paths_are_reported_never_a_crash() {
    let site = tree_site("");
    std::fs::create_dir_all(site.path("data")).unwrap();
    std::fs::create_dir_all(site.path("logs")).unwrap();
    site.write("tree/secret.txt", "s");
    site.write("tree/closed/inside.txt", "i");
    set_mode(&site.path("tree/secret.txt"), 0o000);
    set_mode(&site.path("tree/closed"), 0o000);
    nix::unistd::mkfifo(&site.path("tree/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    std::os::unix::fs::symlink("loop-b", site.path("tree/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", site.path("tree/loop-b")).unwrap();
    let mut cmd = site.cmd();
    if common::is_root() {
        // Root reads everything: run as nobody, as the monitor runs on a host without root.
        for d in [site.dir.path(), &site.path("data"), &site.path("logs")] {
            set_mode(d, 0o777);
        }
        let exe = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        cmd = std::process::Command::new("setpriv");
        cmd.current_dir(site.dir.path())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(exe)
            .args(args);
    }
    let out = cmd.arg("--once").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = site.report().unwrap_or_else(|| panic!("no report"));
    assert_eq!(status_of(&r, "integrity:scan").as_deref(), Some("ok"));
    assert!(message_of(&r, "integrity:scan").contains("2 unreadable"), "{}", message_of(&r, "integrity:scan"));
    let unreadable = r["details"]["integrity"]["unreadable"].to_string();
    assert!(unreadable.contains("secret.txt") && unreadable.contains("permission denied"), "{unreadable}");
    assert!(unreadable.contains("closed"), "{unreadable}");
    assert_eq!(r["details"]["integrity"]["totals"]["unreadable"], 2);
    set_mode(&site.path("tree/closed"), 0o755);
}

#[test]
fn accepted_changes_leave_the_report_and_others_stay() {
    let site = tree_site("");
    site.once();
    site.write("tree/content.txt", "cccc");
    site.write("tree/sub/deep.conf", "x=3");
    let r = site.once();
    let content = format!("file:{}", site.path("tree/content.txt").display());
    let deep = format!("file:{}", site.path("tree/sub/deep.conf").display());
    assert!(check(&r, &content).is_some() && check(&r, &deep).is_some());
    // As the check names it: `file:<path>`.
    let out = site.run(&["--accept", &format!("file:{}", site.path("tree/sub").display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Accepted 1 file change"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = site.once();
    assert!(check(&r, &deep).is_none(), "accepted");
    assert!(check(&r, &content).is_some(), "not accepted");
    // Accepting again: nothing left there, and the user is told so.
    let out = site.run(&["--accept", "tree/sub"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Nothing to accept under tree/sub"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn many_changes_become_one_summary_alert_beyond_max_alerts() {
    let site = Site::new(&format!(
        "{}[integrity]\nrealtime = false\nmax_alerts = 3\nmax_listed = 5\n[[integrity.paths]]\npath = \"tree\"\n",
        only(&["integrity"])
    ));
    site.write("tree/keep", "k");
    site.once();
    for i in 0..20 {
        site.write(&format!("tree/n{i:02}"), "new");
    }
    let r = site.once();
    let files = names(&r).iter().filter(|n| n.starts_with("file:")).count();
    assert_eq!(files, 3);
    assert!(message_of(&r, "integrity:more").starts_with("17 more changed paths"), "{r}");
    assert_eq!(r["details"]["integrity"]["totals"]["added"], 20);
    assert_eq!(r["details"]["integrity"]["added"].as_array().map_or(0, Vec::len), 5);
}

#[test]
fn a_missing_hmac_key_file_is_a_configuration_error_naming_it() {
    let site = Site::new(&format!("hmac_key_file = \"secrets/none.key\"\n{}", only(&[])));
    // --validate finds it too: it builds the monitor (without creating anything).
    for mode in ["--validate", "--once"] {
        let out = site.run(&[mode]);
        assert_eq!(out.status.code(), Some(2), "{mode}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("hmac_key_file") && err.contains("secrets/none.key"), "{mode}: {err}");
    }
    assert!(!site.path("data/security.key").exists(), "no generated key when a key file is configured");
    // A valid config: --validate says so and creates no key file, baseline or report.
    let site = Site::new(&only(&[]));
    let out = site.run(&["--validate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!site.path("data").exists(), "--validate writes nothing under data/");
}

#[test]
fn invalid_rules_are_configuration_errors_naming_the_key() {
    let site = Site::new(
        "[integrity]\n[[integrity.paths]]\npath = \"tree\"\ncheck = [\"hash\", \"colour\"]\nexclude = [\"a[\"]\n",
    );
    let out = site.run(&["--validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("integrity.paths[0].check") && err.contains("unknown attribute 'colour'"), "{err}");
    assert!(err.contains("invalid glob 'a['"), "{err}");
    assert!(err.contains("security.toml"), "names the file: {err}");
}

/// What held in the adversarial run, kept: 100,000 new files in a watched tree are one
/// summary alert and a bounded memory, not 100,000 alerts.
#[test]
fn a_hundred_thousand_new_files_keep_alerts_and_memory_bounded() {
    let site = Site::new(&format!(
        "{}[integrity]\nrealtime = false\nmax_alerts = 20\n[[integrity.paths]]\npath = \"tree\"\n",
        only(&["integrity"])
    ));
    site.write("tree/keep", "k");
    site.once();
    for d in 0..10 {
        let dir = site.path(&format!("tree/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..10_000 {
            std::fs::write(dir.join(format!("f{i:05}")), b"").unwrap();
        }
    }
    let r = site.once();
    // 100,000 files and their 10 folders.
    assert_eq!(r["details"]["integrity"]["totals"]["added"], 100_010, "{}", r["details"]["integrity"]["totals"]);
    let files = names(&r).iter().filter(|n| n.starts_with("file:")).count();
    assert_eq!(files, 20);
    assert!(
        message_of(&r, "integrity:more").starts_with("99990 more changed paths"),
        "{}",
        message_of(&r, "integrity:more")
    );
    // The largest child this test process has waited for (other tests' runs are smaller).
    let max_rss_kib =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u.max_rss());
    eprintln!("qmoi-security --once over 100,000 new files: max RSS {max_rss_kib} KiB");
    // Measured: 62 MiB (debug build).
    assert!(max_rss_kib < 128 * 1024, "max RSS {max_rss_kib} KiB");
}
